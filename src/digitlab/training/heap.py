"""glibc's heap, tuned for training: large activation buffers are reused, not mapped anew.

By default glibc serves every allocation above 128 KiB with a fresh mmap and unmaps it on
free, until its dynamic threshold has seen large frees; how soon it adapts depends on what the
process allocated before. A convnet step allocates and frees megabytes of activations, so a
step can pay page faults on fresh zeroed pages each time. On our 2-core CPU one epoch of a
small convnet at batch 256 took 5.8-7.9 s that way and 4.6-4.7 s with the two settings below
(docs/benchmarks.md). They are process-wide: large blocks up to 32 MiB come from the heap, and
up to 64 MiB of freed heap stays with the process instead of going back to the system.

A user who set MALLOC_MMAP_THRESHOLD_ or MALLOC_TRIM_THRESHOLD_ keeps their own settings; on
other platforms and C libraries nothing changes.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters, from glibc's malloc.h
MMAP_THRESHOLD = 32 << 20  # glibc's largest allowed value on 64-bit systems
TRIM_THRESHOLD = 64 << 20
USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def tune_heap() -> bool:
    """Set the two thresholds once per process; whether they are set (by this or an earlier
    call). False where the user set them, or where there is no glibc mallopt."""
    global _tuned
    if _tuned is None:
        _tuned = _set_thresholds()
    return _tuned


_tuned: bool | None = None


def _set_thresholds() -> bool:
    if not sys.platform.startswith("linux") or any(key in os.environ for key in USER_SETTINGS):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # musl and others: no libc.so.6 or no mallopt
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))

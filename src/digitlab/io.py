"""Files: atomic writes, strict JSON, folder locks, and a clear error for an unwritable place.

Atomic writes go to a temp file in the same folder (`.<name>.<random>.tmp`), are fsynced, then
renamed over the target: a reader sees the old file or the new one, never half of one, even
after a SIGKILL (which may leave the temp behind; `remove_orphan_temps` clears those).
JSON never holds NaN or Infinity (not JSON, and most parsers refuse them): they become null.
"""

from __future__ import annotations

import errno
import json
import math
import os
import tempfile
from pathlib import Path

from digitlab.errors import UsageError
from digitlab.i18n import _

try:
    import fcntl
except ImportError:  # Windows: msvcrt's byte-range lock instead of flock
    fcntl = None
    import msvcrt


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


UMASK = _umask()  # read once: os.umask can only be read by setting it
LOCK_NAME = ".lock"


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~UMASK)  # mkstemp makes 0600; give the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def remove_orphan_temps(folder: str | Path) -> list[Path]:
    """Delete the temps (`.<name>.<random>.tmp`) a killed atomic write left under `folder`.
    Only call it while holding the folder's lock: a live writer's temp looks the same."""
    orphans = [p for p in Path(folder).rglob(".*.tmp") if p.is_file()]
    for path in orphans:
        path.unlink(missing_ok=True)
    return orphans


def finite_json(value: object) -> object:
    """`value` with every NaN or Infinity float replaced by None (null), at any depth."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    return value


def dumps_json(value: object, indent: int | None = None) -> str:
    """Strict JSON: non-finite floats become null (allow_nan=False then guards the rule)."""
    return json.dumps(finite_json(value), indent=indent, allow_nan=False)


def write_json(path: str | Path, obj: object) -> None:
    atomic_write_text(path, dumps_json(obj, indent=2) + "\n")


def read_jsonl(path: str | Path) -> list:
    """Every line of a JSONL file ([] when it does not exist)."""
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def write_jsonl(path: str | Path, rows: list) -> None:
    """A whole JSONL file, one line per row, written atomically (a resume's rewrite)."""
    atomic_write_text(path, "".join(dumps_json(row) + "\n" for row in rows))


def append_jsonl(path: str | Path, obj: object) -> None:
    """One line per call; a line is written whole by one write() of a small buffer."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(dumps_json(obj) + "\n")


def cannot_write(path: str | Path, error: OSError) -> UsageError:
    """The one-line error for a place we cannot write (read-only, not a folder, no space)."""
    return UsageError(_("cannot write to {path}: {reason}; choose a writable folder").format(
        path=path, reason=error.strerror or error))


def check_destination(out: Path, force: bool, example: str) -> None:
    """Refuse, before any work, a folder as an output file (`example` names a file to suggest
    in it), and an existing file (or link) without --force."""
    if out.is_dir():
        raise UsageError(_("--out {path} is a folder; give a file name such as {example}")
                         .format(path=out, example=out / example))
    if (out.exists() or out.is_symlink()) and not force:
        raise UsageError(_("{path} already exists; pass --force to overwrite it, or choose "
                           "another --out").format(path=out))


def ensure_writable(folder: str | Path) -> Path:
    """Create `folder` (and its parents) and prove a file can be written in it, or raise a
    UsageError naming it: before any work, not as a traceback half way through."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-test.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise cannot_write(folder, e) from None
    return folder


def check_writable(folder: str | Path) -> Path:
    """Like ensure_writable for a folder that exists, but without writing anything there (so
    a refused command leaves it untouched, mtime included): access(2), which knows
    permissions and read-only mounts, though not every reason a write can fail."""
    folder = Path(folder)
    if not os.access(folder, os.W_OK | os.X_OK):
        code = errno.EROFS if _read_only(folder) else errno.EACCES
        raise cannot_write(folder, OSError(code, os.strerror(code)))
    return folder


def _read_only(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (AttributeError, OSError):  # no statvfs on Windows
        return False


class FolderLock:
    """An exclusive lock on FOLDER/.lock, taken without waiting and held until `release()`.

    flock belongs to the open file: a second open of the same file, in this process or
    another, cannot take it while the first holds it. The kernel drops it when the process
    dies, so a kill -9 never leaves a folder locked. The file itself is never deleted:
    deleting it would let a late opener lock a fresh file while an early one holds the old.
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self._fd: int | None = None

    def acquire(self) -> bool:
        """True when this lock now holds the folder, False when someone else does."""
        fd = os.open(self.folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666 & ~UMASK)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            else:
                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES, errno.EDEADLK):
                return False
            raise
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the file drops the lock
            self._fd = None

"""training/heap.py: glibc's mmap and trim thresholds, set once per process for training,
never over a user's own MALLOC_* settings, and a no-op where there is no glibc."""

import sys

import pytest

from digitlab.training import heap


@pytest.fixture
def fresh(monkeypatch):
    """An undecided module, as in a new process, with no user settings in the environment."""
    monkeypatch.setattr(heap, "_tuned", None)
    for key in heap.USER_SETTINGS:
        monkeypatch.delenv(key, raising=False)


class FakeMallopt:
    """Records the calls; takes argtypes and restype as ctypes functions do."""

    def __init__(self, result: int = 1):
        self.calls, self.result = [], result

    def __call__(self, param, value):
        self.calls.append((param, value))
        return self.result


class FakeLibc:
    def __init__(self):
        self.mallopt = FakeMallopt()

    @property
    def calls(self):
        return self.mallopt.calls


@pytest.fixture
def libc(monkeypatch):
    fake = FakeLibc()
    monkeypatch.setattr(heap.sys, "platform", "linux")
    monkeypatch.setattr(heap.ctypes, "CDLL", lambda name: fake)
    return fake


def test_sets_both_thresholds_once(fresh, libc):
    assert heap.tune_heap() is True
    assert heap.tune_heap() is True  # decided once: no second call to mallopt
    assert libc.calls == [(heap.M_MMAP_THRESHOLD, 32 << 20), (heap.M_TRIM_THRESHOLD, 64 << 20)]


@pytest.mark.parametrize("key", heap.USER_SETTINGS)
def test_a_users_own_setting_is_kept(fresh, libc, monkeypatch, key):
    monkeypatch.setenv(key, "131072")
    assert heap.tune_heap() is False
    assert libc.calls == []


def test_a_refused_value_reports_false(fresh, libc):
    libc.mallopt.result = 0
    assert heap.tune_heap() is False


def test_no_glibc_is_a_no_op(fresh, monkeypatch):
    def missing(name):
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(heap.sys, "platform", "linux")
    monkeypatch.setattr(heap.ctypes, "CDLL", missing)
    assert heap.tune_heap() is False


@pytest.mark.parametrize("platform", ["darwin", "win32"])
def test_other_platforms_are_left_alone(fresh, libc, monkeypatch, platform):
    monkeypatch.setattr(heap.sys, "platform", platform)
    assert heap.tune_heap() is False
    assert libc.calls == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_the_real_mallopt_accepts_the_values(fresh):
    import ctypes

    try:
        found = hasattr(ctypes.CDLL("libc.so.6"), "mallopt")
    except OSError:
        found = False
    if not found:
        pytest.skip("no glibc here (musl or another C library)")
    assert heap.tune_heap() is True


def test_training_tunes_the_heap(fresh, monkeypatch, tmp_path):
    """train() asks for it before anything is allocated for the run."""
    from rich.console import Console

    from digitlab.config import Config
    from digitlab.config.loading import apply_overrides
    from digitlab.training import train

    calls = []
    monkeypatch.setattr("digitlab.training.loop.tune_heap", lambda: calls.append(True))
    cfg = apply_overrides(Config(), {"data.name": "digits", "train.epochs": 1,
                                     "train.out": str(tmp_path / "run")})
    train(cfg, console=Console(quiet=True))
    assert calls == [True]

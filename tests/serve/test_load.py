"""benchmarks/load_serve.py end to end, with a handful of requests: it starts a real server,
answers with plausible figures, and leaves no server behind. No speed is asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from helpers import REPO

SCRIPT = REPO / "benchmarks" / "load_serve.py"
REQUESTS = 12


def test_load_serve_reports_plausible_figures(digits_run):
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--run", str(digits_run), "--requests", str(REQUESTS),
         "--concurrency", "1,4", "--case-seconds", "60", "--warmup", "2", "--json"],
        capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(done.stdout)["results"]
    assert [(r["case"], r["concurrency"]) for r in results] == [
        ("png", 1), ("png", 4), ("json", 1), ("json", 4)]
    for r in results:
        assert r["requests"] == r["ok"] == REQUESTS and r["errors"] == 0, r
        assert 0 < r["p50_ms"] <= r["p95_ms"] <= r["p99_ms"] < 60_000, r
        assert r["rps"] > 0 and r["seconds"] > 0
        assert abs(r["rps"] * r["seconds"] - REQUESTS) < 0.5, r  # rps counts what was timed
        for rss in (r["rss_before_mib"], r["rss_after_mib"]):
            assert 30 < rss < 16_384, r  # a Python process with torch loaded, in MiB
        if r["concurrency"] == 1:
            # one at a time: the wall time covers every latency, and half of them are at
            # least p50, so requests/s cannot exceed 2 / p50
            assert r["rps"] <= 2000 / r["p50_ms"], r


def test_load_serve_refuses_bad_arguments():
    for args in (["--requests", "0"], ["--concurrency", "1,x"], ["--case-seconds", "0"],
                 ["--warmup", "-1"]):
        done = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 2 and "error:" in done.stderr, (args, done.stderr)

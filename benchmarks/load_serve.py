"""A bounded loopback load test of `digitlab serve`: POST /predict with a PNG upload and with
JSON pixels, at concurrency 1 and 16. Reports requests/s, p50/p95/p99 latency, the error count
and the server's resident memory (VmRSS) before and after each case.

    python benchmarks/load_serve.py [--run RUN_DIR] [--requests 2000] [--concurrency 1,16]
                                    [--case-seconds 120] [--warmup 20] [--json]

Without --run it trains a tiny model first (`digitlab train --dataset digits --epochs 1`, a
few seconds) into a temporary folder. The server is a `python -m digitlab serve` child on a
free 127.0.0.1 port; it is always stopped, and each case stops after --requests requests or
--case-seconds, whichever comes first. Clients are threads, each with one keep-alive
http.client connection, in this process: on a small machine they share the CPU with the
server, as a browser on the same laptop would.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

START_SECONDS = 90  # for the server to answer /healthz (it loads torch and the model)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid: int) -> float | None:
    """A process's resident memory from /proc (Linux); None where there is no /proc."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024  # kB -> MiB
    except OSError:
        return None
    return None


def drawn_digit() -> bytes:
    """A PNG like the page sends: a white "7" stroked on a black 280x280 canvas."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (280, 280), "black")
    ImageDraw.Draw(image).line([(70, 60), (210, 60), (120, 230)], fill="white", width=20)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def request_bodies() -> dict[str, tuple[str, bytes]]:
    """case name -> (Content-Type, body), built once so the clients only send bytes."""
    from digitlab.inference.preprocess import preprocess

    png = drawn_digit()
    boundary = "digitlab-load-test"
    multipart = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                 f"filename=\"digit.png\"\r\nContent-Type: image/png\r\n\r\n").encode() + png + \
        f"\r\n--{boundary}--\r\n".encode()
    pixels = json.dumps({"pixels": preprocess(png).tolist()}).encode()
    return {"png": (f"multipart/form-data; boundary={boundary}", multipart),
            "json": ("application/json", pixels)}


def die_with_parent() -> None:
    """In the server child (Linux): SIGTERM when this script dies, even by SIGKILL."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # elsewhere the finally in load_test is what stops the server


def start_server(run: Path, port: int, log: Path) -> subprocess.Popen:
    """`python -m digitlab serve RUN --port PORT` on 127.0.0.1, once /healthz answers."""
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "digitlab", "serve", str(run), "--port",
                                 str(port), "--device", "cpu"], stdout=out,
                                stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"load_serve: the server exited with {proc.returncode}:\n"
                             f"{log.read_text(errors='replace')}")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return proc
        except OSError:
            pass
        finally:
            connection.close()
        time.sleep(0.25)
    stop(proc)
    raise SystemExit(f"load_serve: the server did not answer within {START_SECONDS} s")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


class Tickets:
    """Hands out at most `count` request numbers, and none after `deadline` (monotonic s)."""

    def __init__(self, count: int, deadline: float) -> None:
        self.left, self.deadline, self.lock = count, deadline, threading.Lock()

    def take(self) -> bool:
        with self.lock:
            if self.left <= 0 or time.monotonic() > self.deadline:
                return False
            self.left -= 1
            return True


def client(port: int, body: tuple[str, bytes], tickets: Tickets, latencies: list[float],
           errors: list[str]) -> None:
    """Send POST /predict while tickets last, on one keep-alive connection."""
    content_type, data = body
    headers = {"Content-Type": content_type}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        while tickets.take():
            start = time.perf_counter()
            try:
                connection.request("POST", "/predict", body=data, headers=headers)
                response = connection.getresponse()
                answer = response.read()
            except (OSError, http.client.HTTPException) as e:
                errors.append(type(e).__name__)
                connection.close()  # reconnects on the next request
                continue
            if response.status == 200 and answer.startswith(b'{"label":'):
                latencies.append(time.perf_counter() - start)  # list.append is thread-safe
            else:
                errors.append(f"HTTP {response.status}")
    finally:
        connection.close()


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    return ordered[max(0, min(len(ordered) - 1, round(q / 100 * len(ordered)) - 1))]


def run_case(port: int, pid: int, name: str, body: tuple[str, bytes], concurrency: int,
             requests: int, seconds: float, warmup: int) -> dict:
    warm = Tickets(warmup, time.monotonic() + seconds)
    client(port, body, warm, [], [])
    rss_before = rss_mib(pid)
    latencies: list[float] = []
    errors: list[str] = []
    tickets = Tickets(requests, time.monotonic() + seconds)
    threads = [threading.Thread(target=client, args=(port, body, tickets, latencies, errors),
                                daemon=True) for _ in range(concurrency)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    ordered = sorted(latencies)
    ms = [1000 * percentile(ordered, q) if ordered else None for q in (50, 95, 99)]
    return {"case": name, "concurrency": concurrency, "requests": len(latencies) + len(errors),
            "ok": len(latencies), "errors": len(errors), "error_kinds": sorted(set(errors)),
            "seconds": round(elapsed, 6), "rps": round(len(latencies) / elapsed, 1),
            "p50_ms": ms[0], "p95_ms": ms[1], "p99_ms": ms[2],
            "rss_before_mib": rss_before, "rss_after_mib": rss_mib(pid)}


def train_tiny(folder: Path) -> Path:
    run = folder / "run"
    subprocess.run([sys.executable, "-m", "digitlab", "train", "--dataset", "digits",
                    "--epochs", "1", "--out", str(run)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    return run


def load_test(run: Path | None, requests: int, concurrencies: list[int], seconds: float,
              warmup: int) -> list[dict]:
    bodies = request_bodies()
    with tempfile.TemporaryDirectory(prefix="digitlab-load-") as tmp:
        run = run or train_tiny(Path(tmp))
        port = free_port()
        proc = start_server(run, port, Path(tmp) / "serve.log")
        try:
            return [run_case(port, proc.pid, name, body, concurrency, requests, seconds, warmup)
                    for name, body in bodies.items() for concurrency in concurrencies]
        finally:
            stop(proc)


def print_table(results: list[dict]) -> None:
    def number(value, digits: int) -> str:
        return "-" if value is None else f"{value:,.{digits}f}"

    print("| case | concurrency | requests | errors | req/s | p50 ms | p95 ms | p99 ms "
          "| RSS before MiB | RSS after MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['case']} | {r['concurrency']} | {r['requests']:,} | {r['errors']} "
              f"| {number(r['rps'], 1)} | {number(r['p50_ms'], 1)} | {number(r['p95_ms'], 1)} "
              f"| {number(r['p99_ms'], 1)} | {number(r['rss_before_mib'], 0)} "
              f"| {number(r['rss_after_mib'], 0)} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, help="a run directory or checkpoint (default: "
                        "train a tiny digits model first)")
    parser.add_argument("--requests", type=int, default=2000, help="timed requests per case")
    parser.add_argument("--concurrency", default="1,16", help="comma-separated (default 1,16)")
    parser.add_argument("--case-seconds", type=float, default=120.0,
                        help="stop a case after this many seconds (default 120)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed requests before each "
                        "case (default 20): the first calls pay for lazy imports and caches")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    try:
        concurrencies = [int(c) for c in args.concurrency.split(",")]
    except ValueError:
        parser.error(f"--concurrency: expected numbers like 1,16, got {args.concurrency!r}")
    if args.requests < 1 or min(concurrencies) < 1 or args.warmup < 0 \
            or not 0 < args.case_seconds <= 3600:
        parser.error("--requests and --concurrency must be positive, --warmup not negative, "
                     "--case-seconds in (0, 3600]")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally that stops it
    results = load_test(args.run, args.requests, concurrencies, args.case_seconds, args.warmup)
    if args.json:
        print(json.dumps({"cpu_count": os.cpu_count(), "results": results}, indent=2))
    else:
        print_table(results)
    return 1 if any(r["errors"] for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())

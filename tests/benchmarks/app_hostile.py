"""A --static request's latency beside a CPU-bound WSGI application, by GIL switch interval and threads.

The event loop gives up the GIL on every system call and must take it back to go on; a
CPU-bound application thread keeps it for up to the switch interval (``sys.setswitchinterval``,
5 ms by default) each time, and with several such threads the loop may lose the race more than
once. This prints the static p50/p99 for each setting, the server pinned to one core (taskset)
and this client on the other, as tests/test_app_hostile.py measures loosely:

    python3 tests/benchmarks/app_hostile.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import List, Optional

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

sys.path[:0] = [REPO, os.path.join(REPO, "tests")]
from test_app_hostile import CPU_APP  # noqa: E402  (the test's application: one copy)


def start(folder: str, threads: int, interval: Optional[str]) -> "tuple[subprocess.Popen[bytes], int]":
    args = [sys.executable, "-m", "reactor", "--app", "cpu_app:app", "--app-dir", folder, "--port", "0"]
    args += ["--static", "/static=%s" % os.path.join(folder, "static"), "--threads", str(threads)]
    args += ["--log-level", "warning"] + (["--switch-interval", interval] if interval else [])
    if shutil.which("taskset"):
        args = ["taskset", "-c", "0"] + args
    log = os.path.join(folder, "server.log")
    with open(log, "wb") as stderr:
        proc = subprocess.Popen(args, cwd=folder, stderr=stderr, env=dict(os.environ, PYTHONPATH=REPO))
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with open(log, encoding="utf-8", errors="replace") as file:
            match = re.search(r"127\.0\.0\.1:(\d+)/", file.read())
        if match:
            return proc, int(match.group(1))
        time.sleep(0.05)
    raise SystemExit("the server did not start; see %s" % log)


def latencies(port: int, seconds: float) -> List[float]:
    """Keep-alive GETs one after another for ``seconds``; a new connection when the server closes one."""
    request = b"GET /static/tiny.css HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % port
    samples: List[float] = []
    sock = None
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if sock is None:
            sock = socket.create_connection(("127.0.0.1", port))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        started = time.perf_counter()
        sock.sendall(request)
        data = b""
        while not data.endswith(b"p{}"):
            data += sock.recv(65536)
        samples.append((time.perf_counter() - started) * 1000)
        if b"Connection: close" in data:  # the last of --keepalive-max
            sock.close()
            sock = None
    if sock is not None:
        sock.close()
    return sorted(samples)


def burn(port: int, stop: threading.Event) -> None:
    while not stop.is_set():
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(b"GET /cpu HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n" % port)
        while sock.recv(65536):
            pass
        sock.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    options = parser.parse_args()
    if shutil.which("taskset"):
        os.sched_setaffinity(0, {1})  # the client on the other core
    folder = tempfile.mkdtemp(prefix="reactor-app-hostile-")
    with open(os.path.join(folder, "cpu_app.py"), "w") as file:
        file.write(CPU_APP)
    os.mkdir(os.path.join(folder, "static"))
    with open(os.path.join(folder, "static", "tiny.css"), "w") as file:
        file.write("p{}")
    print("%-8s %-16s %10s %10s %10s" % ("threads", "switch interval", "requests", "p50 ms", "p99 ms"))
    try:
        for threads in (1, 2, 4):
            for interval in (None, "0.001", "0.0005"):
                proc, port = start(folder, threads, interval)
                stop = threading.Event()
                burners = [threading.Thread(target=burn, args=(port, stop), daemon=True) for _ in range(threads + 1)]
                for burner in burners:
                    burner.start()
                time.sleep(0.5)  # every application thread busy
                try:
                    samples = latencies(port, options.seconds)
                finally:
                    stop.set()
                    for burner in burners:
                        burner.join(10)
                    proc.terminate()
                    proc.wait()
                print(
                    "%-8d %-16s %10d %10.2f %10.2f"
                    % (
                        threads,
                        interval or "default (0.005)",
                        len(samples),
                        samples[len(samples) // 2],
                        samples[min(len(samples) - 1, int(len(samples) * 0.99))],
                    ),
                    flush=True,
                )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()

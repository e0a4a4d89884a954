"""Hostile clients against an application: slow uploaders, a slow reader, and a CPU-bound application.

What they cost is what the design promises: a slow uploader costs a connection and never
an application thread (the loop buffers the body before the call); a slow reader costs a
block or two of memory and no thread (the response is pulled as the client reads); and a
``--static`` request never waits for the application pool. Each test runs a few seconds,
bounded; timings are measured, and each is compared with the same measurement taken
without the hostile load in the same run, so a slow or busy machine moves both.
"""

from __future__ import annotations

import os
import socket
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import List

import pytest

from conftest import REPO, CliServer, wait_for

JSON_ACCESS_LOG = True  # every response these tests provoke must log one line json.loads reads (conftest)

ENV = dict(os.environ, PYTHONPATH=str(REPO))


def percentile(samples: List[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def timed_gets(port: int, path: str, count: int, expect: bytes) -> List[float]:
    """Milliseconds of ``count`` keep-alive GETs of ``path``, one after the other.

    A connection carries at most 100 (the server's default ``--keepalive-max``): then another.
    """
    samples: List[float] = []
    while count > 0:
        samples += _timed_gets_on_one_connection(port, path, min(count, 100), expect)
        count -= 100
    return samples


def _timed_gets_on_one_connection(port: int, path: str, count: int, expect: bytes) -> List[float]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    request = b"GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (path.encode(), port)
    samples = []
    try:
        for _ in range(count):
            started = time.perf_counter()
            sock.sendall(request)
            data = b""
            while not data.endswith(expect):
                chunk = sock.recv(65536)
                assert chunk, "the server closed the connection"
                data += chunk
            samples.append((time.perf_counter() - started) * 1000)
    finally:
        sock.close()
    return samples


def rss_bytes(pid: int) -> int:
    for line in Path("/proc/%d/status" % pid).read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS for %d" % pid)


# -- 100 uploaders at 1 byte a second ---------------------------------------------------------


@pytest.mark.serial
def test_a_hundred_slow_uploaders_hold_no_application_thread(make_server):
    calls: List[str] = []

    def app(environ, start_response):
        calls.append(environ["PATH_INFO"])
        body = environ["wsgi.input"].read() or environ["PATH_INFO"].encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]

    running = make_server(wsgi_app=app)
    baseline = timed_gets(running.port, "/fast", 20, b"\r\n\r\n/fast")  # the same request before the uploaders come
    uploaders = []
    for _ in range(100):
        sock = socket.create_connection(("127.0.0.1", running.port), timeout=10)
        sock.sendall(b"POST /upload HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Length: 1000\r\n\r\n" % running.port)
        uploaders.append(sock)
    stop = threading.Event()

    def trickle() -> None:  # one byte a second on each connection
        while not stop.wait(1.0):
            for sock in uploaders:
                sock.sendall(b"x")

    trickler = threading.Thread(target=trickle, daemon=True)
    trickler.start()
    try:
        wait_for(lambda: running.call(lambda: len(running.server.sessions)) == 100, what="100 uploads under way")
        samples: List[float] = []
        deadline = time.monotonic() + 2.5  # two or three bytes from each uploader
        while time.monotonic() < deadline:
            samples += timed_gets(running.port, "/fast", 10, b"\r\n\r\n/fast")
            busy, pending = running.call(lambda: (running.server.app_pool.busy, running.server.app_pool.pending))
            assert (busy, pending) == (0, 0), "an uploader holds an application thread"
    finally:
        stop.set()
        trickler.join(5)
        for sock in uploaders:
            sock.close()
    assert set(calls) == {"/fast"}  # no upload reached the application: none is complete
    median = statistics.median(samples)
    sys.stderr.write("fast request median %.2f ms beside 100 uploaders at 1 B/s\n" % median)
    bound = max(50.0, 3 * statistics.median(baseline))
    assert median < bound, "a fast request took %.1f ms (median) beside 100 slow uploaders" % median


# -- a slow reader of a 100 MiB stream --------------------------------------------------------

STREAM_APP = """
produced = [0]

def app(environ, start_response):
    if environ["PATH_INFO"] == "/count":
        body = str(produced[0]).encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]
    start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(100 << 20))])

    def blocks():
        for _ in range(100):
            produced[0] += 1
            yield bytes(1 << 20)  # 1 MiB, made as it is asked for

    return blocks()
"""


@pytest.fixture
def app_dir(tmp_path):
    folder = tmp_path / "apps"
    folder.mkdir()
    (folder / "stream_app.py").write_text(STREAM_APP)
    (folder / "cpu_app.py").write_text(CPU_APP)
    (folder / "static").mkdir()
    (folder / "static" / "tiny.css").write_text("p{}")
    return folder


def count(port: int) -> int:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        sock.sendall(b"GET /count HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n" % port)
        data = b""
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        return int(data.rpartition(b"\r\n\r\n")[2])
    finally:
        sock.close()


def test_a_slow_reader_of_a_100_mib_stream_costs_a_block_or_two(app_dir):
    cli = CliServer(
        ["--app", "stream_app:app", "--app-dir", str(app_dir), "--port", "0", "--log-level", "warning"],
        cwd=app_dir,
        env=ENV,
    )
    try:
        assert cli.port, cli.output
        assert count(cli.port) == 0
        before = rss_bytes(cli.proc.pid)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
        sock.settimeout(10)
        sock.connect(("127.0.0.1", cli.port))
        sock.sendall(b"GET /stream HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % cli.port)
        received = 0
        started = time.monotonic()
        while time.monotonic() - started < 3.0:  # 16 KiB a second, for three seconds
            received += len(sock.recv(16 * 1024))
            time.sleep(max(0.0, started + received / (16 * 1024) - time.monotonic()))
        grown = rss_bytes(cli.proc.pid) - before
        produced = count(cli.port)
        sock.close()
        sys.stderr.write(
            "slow reader: %d KiB read in 3 s, %d MiB made, RSS grew %.1f MiB\n"
            % (received // 1024, produced, grown / 2**20)
        )
        assert received < 256 * 1024
        # Made: what the kernel's send buffer holds (tcp_wmem allows up to 4 MiB), one block in the
        # outbox and one ahead; not the 100 MiB a server that buffers the response would pull at once.
        assert produced <= 10, "%d MiB made for a client that read %d KiB" % (produced, received // 1024)
        assert grown < 32 * 1024 * 1024, "RSS grew by %.1f MiB" % (grown / 2**20)
    finally:
        cli.stop()


# -- a CPU-bound application beside --static ---------------------------------------------------

CPU_APP = """
import time

def app(environ, start_response):
    spin_until = time.perf_counter() + 0.2  # pure Python work: it holds the GIL but at switch intervals
    n = 0
    while time.perf_counter() < spin_until:
        n += 1
    body = b"%d" % n
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
"""


@pytest.mark.serial
def test_a_cpu_bound_application_does_not_hold_up_static_files(app_dir):
    """--static requests never wait for the application pool, and the GIL lets them through.

    Each CPU-bound request holds an application thread for 200 ms: a static request that
    waited for the pool would take that long. What a static request does wait for is the
    GIL, several times (each system call of the loop gives it up): a CPU-bound thread may
    keep it for the switch interval each time, 5 ms by default, hence ``--switch-interval``
    (0.0005 here). The bound is loose for a shared machine; tests/benchmarks/app_hostile.py
    measures the p99 pinned to a core, with and without the setting.
    """
    args = ["--app", "cpu_app:app", "--app-dir", str(app_dir), "--static", "/static=%s" % (app_dir / "static")]
    args += ["--threads", "2", "--switch-interval", "0.0005", "--port", "0", "--log-level", "warning"]
    cli = CliServer(args, cwd=app_dir, env=ENV)
    stop = threading.Event()
    cpu_requests = [0]

    def burn() -> None:  # keep both application threads busy
        while not stop.is_set():
            sock = socket.create_connection(("127.0.0.1", cli.port), timeout=10)
            sock.sendall(b"GET /cpu HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n" % cli.port)
            while sock.recv(65536):
                pass
            sock.close()
            cpu_requests[0] += 1

    burners = []
    try:
        assert cli.port, cli.output
        baseline = timed_gets(cli.port, "/static/tiny.css", 200, b"p{}")
        burners = [threading.Thread(target=burn, daemon=True) for _ in range(3)]
        for burner in burners:
            burner.start()
        wait_for(lambda: cpu_requests[0] >= 2, what="the CPU-bound requests to be running")
        # At least 300 GETs, and for as long as two more CPU-bound requests take (400 ms of
        # computing at least): the application is busy all along, however fast the GETs are.
        busy_from = cpu_requests[0]
        deadline = time.monotonic() + 60
        loaded: List[float] = []
        while len(loaded) < 300 or cpu_requests[0] < busy_from + 2:
            assert time.monotonic() < deadline, "the CPU-bound requests stopped finishing"
            loaded += timed_gets(cli.port, "/static/tiny.css", 50, b"p{}")
    finally:
        stop.set()
        for burner in burners:
            burner.join(10)
        cli.stop()
    median, p99 = statistics.median(loaded), percentile(loaded, 0.99)
    sys.stderr.write("static median %.2f ms, p99 %.2f ms beside a CPU-bound application\n" % (median, p99))
    # A static request that waited for an application thread would wait for most of a 200 ms
    # request: the median would be near that, not a few ms. The tail (p99) on a shared machine
    # follows whatever else runs on it (97 ms once in a CI rehearsal, beside other test runs),
    # so it is printed here and judged by the benchmark, pinned to a core.
    assert median < max(50.0, 3 * statistics.median(baseline)), median

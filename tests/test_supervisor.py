"""``--workers N``: a real supervisor over real worker processes, driven by real signals.

Every test starts ``python -m reactor --workers 2`` on 127.0.0.1 port 0 (the supervisor
opens the one listening socket, so the port is chosen once for every worker) and reads
its stderr on a thread, so a chatty log never blocks it. Which worker answered, and
every worker's counters, come from the status page. Each wait is a poll with a deadline.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List

import pytest

from conftest import REPO, stop_process, wait_for

STARTUP = re.compile(r"http://127\.0\.0\.1:(\d+)/ \((?:(\d+) workers)?")  # one process: no count


class Supervised:
    """``python -m reactor --workers ...`` with stderr collected by a thread."""

    def __init__(
        self,
        args: List[str],
        pass_fds=(),
        timeout_s: float = 15.0,
        command=None,
        new_session: bool = False,
        wait: bool = True,
    ) -> None:
        self.proc = subprocess.Popen(
            (command or [sys.executable, "-m", "reactor"]) + ["--port", "0", "--status-path", "/_status", *args],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            pass_fds=pass_fds,
            start_new_session=new_session,
        )
        self._chunks: List[bytes] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.port = 0
        deadline = time.monotonic() + timeout_s
        while wait and not self.port and time.monotonic() < deadline and self.proc.poll() is None:
            match = STARTUP.search(self.output)
            if match:
                self.port = int(match.group(1))
            time.sleep(0.01)

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for chunk in iter(lambda: os.read(self.proc.stderr.fileno(), 65536), b""):  # type: ignore[union-attr]
            self._chunks.append(chunk)

    @property
    def output(self) -> str:
        return b"".join(self._chunks).decode("utf-8", "replace")

    def status(self) -> dict:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", "/_status", headers={"Accept": "application/json"})
            return json.loads(conn.getresponse().read())
        finally:
            conn.close()

    def worker_pids(self) -> List[int]:
        """The workers' PIDs as the supervisor's children (from /proc), sorted."""
        children = Path("/proc/%d/task/%d/children" % (self.proc.pid, self.proc.pid))
        return sorted(int(pid) for pid in children.read_text().split())

    def wait(self, timeout_s: float = 20.0) -> int:
        status = self.proc.wait(timeout_s)
        self._reader.join(5)
        return status

    def stop(self) -> None:
        stop_process(self.proc)
        self._reader.join(5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()


@pytest.fixture
def supervise(site):
    started: List[Supervised] = []

    def start(*args: str, pass_fds=(), command=None, new_session=False, wait=True) -> Supervised:
        running = Supervised(
            ["-d", str(site), *args], pass_fds=pass_fds, command=command, new_session=new_session, wait=wait
        )
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


class ClientLoop:
    """Threads making one request per new connection until stopped; counts outcomes."""

    def __init__(self, port: int, threads: int = 2, path: str = "/index.html") -> None:
        self.port = port
        self.path = path
        self.ok = 0
        self.failures: List[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        for thread in self._threads:
            thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            try:
                conn.request("GET", self.path)
                response = conn.getresponse()
                response.read()
                if response.status == 200:
                    self.ok += 1
                else:
                    self.failures.append("status %d" % response.status)
            except (OSError, http.client.HTTPException) as exc:
                self.failures.append(repr(exc))
            finally:
                conn.close()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(15)


def _cpu_ticks(pid: int) -> int:
    """utime + stime of ``pid`` in clock ticks, from /proc/PID/stat (fields 14 and 15)."""
    fields = Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


# -- serving ------------------------------------------------------------------------------------


def test_both_workers_serve_a_fair_share(supervise):
    running = supervise("--workers", "2", "--worker-timeout", "2", "--log-level", "warning")
    assert running.port, running.output
    pids = running.worker_pids()
    assert len(pids) == 2
    before = {pid: _cpu_ticks(pid) for pid in pids}
    total = 2000

    def client(count: int) -> None:
        for _ in range(count):
            conn = http.client.HTTPConnection("127.0.0.1", running.port, timeout=10)
            conn.request("GET", "/index.html", headers={"Connection": "close"})
            assert conn.getresponse().read()
            conn.close()

    threads = [threading.Thread(target=client, args=(total // 4,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    # The scoreboard is written on each heartbeat (every 0.5 s here): wait for both.
    status = wait_for(
        lambda: (lambda s: s if s["workers"]["accepted"] >= total else None)(running.status()),
        timeout_s=10,
        what="both workers' counts on the scoreboard",
    )
    each = {row["pid"]: row["accepted"] for row in status["workers"]["each"]}
    assert sorted(each) == pids
    assert status["worker"]["pid"] in pids and status["worker"]["number"] in (1, 2)
    shares = {pid: accepted / sum(each.values()) for pid, accepted in each.items()}
    assert min(shares.values()) >= 0.20, shares
    assert all(_cpu_ticks(pid) > before[pid] for pid in pids)  # both did the work, by the kernel's count


def test_the_status_page_says_which_worker_answered(supervise):
    running = supervise("--workers", "2", "--log-level", "warning")
    assert running.port, running.output
    pids = running.worker_pids()
    seen: Dict[int, int] = {}
    deadline = time.monotonic() + 10
    while len(seen) < 2 and time.monotonic() < deadline:
        worker = running.status()["worker"]
        seen[worker["pid"]] = worker["number"]
    assert sorted(seen) == pids
    assert sorted(seen.values()) == [1, 2]
    each = running.status()["workers"]["each"]
    assert [row["taking"] for row in each] == [True, True], each  # both serving: both take connections


def test_the_status_page_shows_a_draining_worker_as_not_taking(supervise):
    running = supervise("--workers", "2", "--log-level", "warning")
    assert running.port, running.output
    wait_for(lambda: running.status()["workers"]["count"] == 2, what="both workers on the scoreboard")
    held = socket.create_connection(("127.0.0.1", running.port), timeout=10)
    held.sendall(b"GET / HTTP/1.1\r\n")  # half a request: its worker drains until the head times out
    try:
        wait_for(lambda: running.status()["workers"]["open"] >= 2, what="the held connection counted")
        before = running.worker_pids()
        os.kill(running.proc.pid, signal.SIGHUP)  # a rolling reload: the old workers drain

        def old_not_taking() -> "dict | None":
            rows = running.status()["workers"]["each"]
            return next((row for row in rows if row["pid"] in before and not row["taking"] and row["open"]), None)

        drained = wait_for(old_not_taking, what="a draining old worker shown as not taking connections")
        assert drained["open"] >= 1
        assert any(row["taking"] for row in running.status()["workers"]["each"])  # the new ones do
    finally:
        held.close()


def _accept_queue(port: int) -> int:
    """Connections waiting in the kernel's accept queue of the listener on ``port`` (Linux's /proc/net/tcp)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].endswith(":%04X" % port) and fields[3] == "0A":  # local address, state LISTEN
            return int(fields[4].split(":")[1], 16)  # rx_queue: the accept backlog for a listener
    raise AssertionError("no listener on port %d" % port)


def _answered_by(client: socket.socket, port: int) -> int:
    """The PID of the worker holding keep-alive connection ``client``, from the status page."""
    client.sendall(b"GET /_status HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAccept: application/json\r\n\r\n" % port)
    data = b""
    while b"\r\n\r\n" not in data:
        data += client.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
    while len(body) < length:
        body += client.recv(65536)
    return json.loads(body)["worker"]["pid"]


def _burst_shares(supervise) -> List[int]:
    """Ten connections while one of two workers is stopped: how many each worker holds, sorted."""
    running = supervise("--workers", "2", "--log-level", "warning")
    assert running.port, running.output
    wait_for(lambda: running.status()["workers"]["count"] == 2, what="both workers on the scoreboard")
    # The one to stop is the one that did not answer last: it holds no status-page connection.
    idle = running.status()["worker"]["pid"]
    (busy,) = set(running.worker_pids()) - {idle}
    total = 10
    clients: List[socket.socket] = []
    os.kill(busy, signal.SIGSTOP)  # busy in a long callback, as far as the listener can tell
    try:
        clients = [socket.create_connection(("127.0.0.1", running.port), timeout=10) for _ in range(total)]
        deadline = time.monotonic() + 10
        while _accept_queue(running.port) == total:  # no sleep: the idle worker defers for 50 ms only
            assert time.monotonic() < deadline, "the idle worker accepted nothing"
    finally:
        os.kill(busy, signal.SIGCONT)
    try:
        holders = [_answered_by(client, running.port) for client in clients]
    finally:
        for client in clients:
            client.close()
    running.stop()
    return sorted(holders.count(pid) for pid in (idle, busy))


@pytest.mark.serial
def test_a_burst_of_keepalive_connections_is_shared_even_when_one_worker_is_busy(supervise):
    """The worker idle in select first would take the whole burst; it takes its share and leaves the rest.

    It leaves the rest for 50 ms (``_DEFER_LIMIT_S``), then takes them: a stuck peer must not
    hold clients back. When this test's own process is starved of the CPU (a loaded machine)
    and resumes the stopped worker later than that, the idle worker rightly takes all ten; so
    up to five fresh servers are tried, and one fair share is required. The code before the
    gate gave 10/0 three times out of three.
    """
    tries = []
    for _ in range(5):
        counts = _burst_shares(supervise)
        tries.append(counts)
        if counts[1] - counts[0] <= 2:  # ACCEPT_SLACK + 1: 5/5 or 6/4 of ten
            break
    assert tries[-1][1] - tries[-1][0] <= 2, tries


@pytest.mark.serial
def test_a_stuck_peer_does_not_hold_the_other_worker_back(supervise):
    # --worker-timeout 4: a beat a second, a peer left out of the gate once two beats are missed,
    # killed after four; a connection no peer takes is taken after 50 ms whatever the heartbeats say.
    running = supervise("--workers", "2", "--worker-timeout", "4", "--log-level", "warning")
    assert running.port, running.output
    wait_for(lambda: running.status()["workers"]["count"] == 2, what="both workers on the scoreboard")
    serving, stuck = running.worker_pids()
    os.kill(stuck, signal.SIGSTOP)  # it may still hold one status-page connection: at most 1 open
    stopped = time.monotonic()
    held: List[socket.socket] = []
    try:
        held = [socket.create_connection(("127.0.0.1", running.port), timeout=10) for _ in range(5)]
        assert [_answered_by(client, running.port) for client in held] == [serving] * 5
        waited_s = time.monotonic() - stopped
        assert stuck in running.worker_pids()  # served before the stuck worker was killed, not because of it
    finally:
        with contextlib.suppress(ProcessLookupError):  # killed after all: the assertion above says so
            os.kill(stuck, signal.SIGCONT)
        for client in held:
            client.close()
    assert waited_s < 1.0  # five connections in all; queued at most 50 ms behind the stuck peer


# -- faults ---------------------------------------------------------------------------------------


def test_a_worker_killed_with_kill_9_is_replaced_and_requests_keep_succeeding(supervise):
    running = supervise("--workers", "2")
    assert running.port, running.output
    old = running.worker_pids()
    loop = ClientLoop(running.port)
    try:
        wait_for(lambda: loop.ok >= 20, what="requests before the kill")
        os.kill(old[0], signal.SIGKILL)
        killed = time.monotonic()
        new = wait_for(
            lambda: (lambda p: p if len(p) == 2 and old[0] not in p else None)(running.worker_pids()),
            what="a replacement worker",
        )
        assert time.monotonic() - killed < 2.0
        assert old[1] in new
        ok_after_replacement = loop.ok
        wait_for(lambda: loop.ok >= ok_after_replacement + 50, what="requests after the replacement")
    finally:
        loop.stop()
    # Only requests the killed worker held when it died may fail.
    assert len(loop.failures) <= 2, loop.failures
    wait_for(lambda: "serving" in running.output.rsplit("was killed by SIGKILL", 1)[-1], what="the new worker serving")


def test_a_stuck_worker_is_killed_after_the_worker_timeout_and_replaced(supervise):
    running = supervise("--workers", "2", "--worker-timeout", "1")
    assert running.port, running.output
    old = running.worker_pids()
    os.kill(old[0], signal.SIGSTOP)  # its loop stops: no more heartbeats
    stopped = time.monotonic()
    new = wait_for(
        lambda: (lambda p: p if len(p) == 2 and old[0] not in p else None)(running.worker_pids()),
        what="the stuck worker replaced",
    )
    assert 1.0 <= time.monotonic() - stopped < 5.0
    assert old[1] in new
    assert "(--worker-timeout 1); killing it" in running.output
    assert running.status()["workers"]["count"] == 2


def test_a_worker_that_cannot_start_stops_the_supervisor_without_a_fork_storm(supervise, site):
    (site / "uploads").rename(site / "uploads.moved")
    (site / "uploads").write_text("a file where the uploads folder should be")
    running = supervise("--workers", "2")
    status = running.wait(20)
    output = running.output
    assert status == 1, output
    assert "cannot start" in output and "not a directory" in output, output
    forks = output.count(") booting")
    assert 2 <= forks <= 4, output  # the first two, then retries with a back-off until the limit
    assert "workers cannot start (3 failures in a row)" in output
    assert "serving" not in output.split("workers cannot start")[0].replace("booting", "")


def test_a_port_in_use_is_one_error_line_and_no_fork(supervise):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "reactor", "--workers", "2", "--port", str(taken.getsockname()[1])],
            cwd=REPO,
            capture_output=True,
            timeout=20,
        )
    finally:
        taken.close()
    assert proc.returncode == 1
    assert b"cannot listen on 127.0.0.1:" in proc.stderr and b"address already in use" in proc.stderr
    assert b"booting" not in proc.stderr


# -- signals --------------------------------------------------------------------------------------


def test_sighup_replaces_every_worker_with_no_failed_request(supervise):
    running = supervise("--workers", "2", "--log-level", "warning")
    assert running.port, running.output
    old = set(running.worker_pids())
    loop = ClientLoop(running.port, threads=3)
    try:
        wait_for(lambda: loop.ok >= 30, what="requests before the reload")
        running.proc.send_signal(signal.SIGHUP)
        wait_for(
            lambda: (lambda p: len(p) == 2 and not p & old)(set(running.worker_pids())),
            what="two new workers and the old ones gone",
        )
        ok_after = loop.ok
        wait_for(lambda: loop.ok >= ok_after + 30, what="requests after the reload")
    finally:
        loop.stop()
    assert loop.failures == []
    assert loop.ok > 60
    assert running.proc.poll() is None


def test_sigttin_adds_a_worker_and_sigttou_removes_one(supervise):
    running = supervise("--workers", "2", "--log-level", "warning")
    assert running.port, running.output
    running.proc.send_signal(signal.SIGTTIN)
    wait_for(lambda: len(running.worker_pids()) == 3, what="a third worker")
    wait_for(lambda: running.status()["workers"]["count"] == 3, what="three workers on the scoreboard")
    for left in (2, 1):  # one at a time: two pending signals of one kind are delivered once
        running.proc.send_signal(signal.SIGTTOU)
        wait_for(lambda left=left: len(running.worker_pids()) == left, what="%d worker(s) left" % left)
    assert running.status()["worker"]["number"] == 1


def _post(port: int, body: bytes) -> "tuple[int, bytes]":
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        conn.request("POST", "/upload", body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_sigterm_with_uploads_and_downloads_in_flight_drains_and_exits_0(supervise, site):
    big = site / "big.bin"
    big.write_bytes(os.urandom(8 * 1024 * 1024))
    running = supervise("--workers", "2", "--log-level", "warning", "--shutdown-timeout", "10")
    assert running.port, running.output
    stored: Dict[str, bytes] = {}
    downloads: List[int] = []
    errors: List[str] = []
    stop = threading.Event()
    started = threading.Barrier(7)

    def uploader(n: int) -> None:
        started.wait(10)
        i = 0
        while not stop.is_set():
            i += 1
            body = json.dumps({"uploader": n, "i": i, "pad": "x" * 300_000}).encode()
            try:
                status, answer = _post(running.port, body)
            except (OSError, http.client.HTTPException):
                return  # refused after the drain began: never a 201, so nothing to check
            if status == 201:
                stored[json.loads(answer)["file"]] = body

    def downloader() -> None:
        started.wait(10)
        conn = http.client.HTTPConnection("127.0.0.1", running.port, timeout=20)
        conn.request("GET", "/big.bin")
        response = conn.getresponse()
        sock = response.fp  # read slowly, so the download is still going when SIGTERM lands
        received = 0
        try:
            while True:
                piece = sock.read(256 * 1024)
                if not piece:
                    break
                received += len(piece)
                time.sleep(0.01)
        except OSError as exc:
            errors.append(repr(exc))
        downloads.append(received)
        conn.close()

    threads = [threading.Thread(target=uploader, args=(n,)) for n in range(4)]
    threads += [threading.Thread(target=downloader) for _ in range(2)]
    for thread in threads:
        thread.start()
    started.wait(10)
    wait_for(lambda: len(stored) >= 10, what="uploads stored before SIGTERM")
    running.proc.send_signal(signal.SIGTERM)
    stop.set()
    assert running.wait(20) == 0, running.output
    for thread in threads:
        thread.join(20)
    assert errors == []
    assert downloads == [big.stat().st_size] * 2  # both downloads complete
    for name, body in stored.items():
        assert (site / "uploads" / name).read_bytes() == body  # every 201 on disk, complete
    assert not list((site / "uploads").glob(".upload-*"))


def test_a_second_sigterm_stops_at_once(supervise, site):
    running = supervise("--workers", "2", "--shutdown-timeout", "30")
    assert running.port, running.output
    hold = socket.create_connection(("127.0.0.1", running.port), timeout=5)
    hold.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # a request that never ends holds the drain
    wait_for(lambda: running.status()["workers"]["open"] >= 2, what="the held connection counted")
    running.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: "draining 2 worker(s)" in running.output, what="the drain")
    began = time.monotonic()
    running.proc.send_signal(signal.SIGTERM)
    assert running.wait(10) == 128 + signal.SIGTERM
    assert time.monotonic() - began < 3
    hold.close()


def _slow_download(port: int, received: List[int], started: threading.Event) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    conn.request("GET", "/big.bin")
    response = conn.getresponse()
    total = 0
    while True:
        piece = response.read(256 * 1024)
        if not piece:
            break
        total += len(piece)
        started.set()
        time.sleep(0.02)
    received.append(total)
    conn.close()


def test_sigterm_to_the_whole_process_group_still_drains(supervise, site):
    """systemd's default KillMode (control-group) signals every process: a worker's second SIGTERM,
    the supervisor's relay, must not cut its in-flight requests short."""
    big = site / "big.bin"
    big.write_bytes(os.urandom(4 * 1024 * 1024))
    running = supervise("--workers", "2", new_session=True)
    assert running.port, running.output
    received: List[int] = []
    started = threading.Event()
    download = threading.Thread(target=_slow_download, args=(running.port, received, started))
    download.start()
    assert started.wait(10)
    os.killpg(running.proc.pid, signal.SIGTERM)
    assert running.wait(20) == 0, running.output
    download.join(20)
    assert received == [big.stat().st_size]


def test_sigint_as_from_a_terminal_drains_once_and_exits_0(supervise):
    """Ctrl-C sends SIGINT to the whole process group; workers leave it to the supervisor."""
    running = supervise("--workers", "2")
    assert running.port, running.output
    os.killpg(os.getpgid(running.proc.pid), 0)  # the group exists
    for pid in running.worker_pids() + [running.proc.pid]:
        os.kill(pid, signal.SIGINT)  # what the terminal does, one process at a time
    assert running.wait(15) == 0, running.output
    assert "SIGINT received; draining" in running.output


# -- sockets handed down ---------------------------------------------------------------------------


def _listening_socket() -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    return sock


@pytest.mark.parametrize("workers", ["1", "2"])
def test_fd_serves_on_a_socket_the_test_passes_down(supervise, workers):
    sock = _listening_socket()
    port = sock.getsockname()[1]
    try:
        running = supervise("--workers", workers, "--fd", str(sock.fileno()), pass_fds=(sock.fileno(),))
        assert running.port == port, running.output
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/index.html")
        assert conn.getresponse().status == 200
        conn.close()
    finally:
        sock.close()


def test_systemd_listen_fds_is_used_for_this_pid_only(supervise):
    """LISTEN_FDS=1 with LISTEN_PID naming this process: serve on fd 3 (sd_listen_fds(3))."""
    sock = _listening_socket()
    port = sock.getsockname()[1]
    as_systemd_does = (
        "import os, sys; os.dup2(int(sys.argv[1]), 3); os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS='1');"
        "sys.argv[:2] = ['reactor']; from reactor.cli import main; sys.exit(main())"
    )
    try:
        running = supervise(
            "--workers",
            "2",
            command=[sys.executable, "-c", as_systemd_does, str(sock.fileno())],
            pass_fds=(sock.fileno(),),
        )
    finally:
        sock.close()  # the server's copy is the only one left
    assert running.port == port, running.output
    assert _get_ok(port)
    running.proc.send_signal(signal.SIGTERM)
    assert running.wait(15) == 0


@pytest.mark.skipif(shutil.which("systemd-socket-activate") is None, reason="needs systemd-socket-activate")
def test_under_systemd_socket_activation(supervise):
    """systemd's own tool opens the socket and passes it as LISTEN_FDS=1, fd 3.

    It refuses port 0, so the port is one the kernel just picked and released (a small race).
    """
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    activate = [shutil.which("systemd-socket-activate"), "-l", "127.0.0.1:%d" % port, sys.executable, "-m", "reactor"]
    running = supervise("--workers", "2", command=activate, wait=False)
    wait_for(lambda: "Listening on 127.0.0.1:%d" % port in running.output, what="systemd-socket-activate")
    assert _get_ok(port)  # the first connection starts the service, as systemd does; it waits in the queue
    wait_for(lambda: "http://127.0.0.1:%d/ (2 workers" % port in running.output, what="the startup line")
    assert len(running.worker_pids()) == 2
    running.proc.send_signal(signal.SIGTERM)
    assert running.wait(15) == 0


def _get_ok(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/index.html")
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False


@pytest.mark.parametrize("value", ["0", "-1", "many", "2.5"])
def test_bad_worker_counts_are_one_usage_line_and_exit_2(value):
    proc = subprocess.run(
        [sys.executable, "-m", "reactor", "--workers", value], cwd=REPO, capture_output=True, timeout=20
    )
    assert proc.returncode == 2
    lines = proc.stderr.decode().strip().splitlines()
    # The program is named as typed: python, python3 or python3.11, then -m reactor.
    assert len(lines) <= 2 and re.match(r"python[0-9.]* -m reactor: --workers: ", lines[0]), proc.stderr
    env = dict(os.environ, REACTOR_WORKERS=value)
    proc = subprocess.run([sys.executable, "-m", "reactor"], cwd=REPO, capture_output=True, timeout=20, env=env)
    assert proc.returncode == 2 and b"REACTOR_WORKERS" in proc.stderr


def test_fd_that_is_not_a_listening_socket_is_a_usage_error():
    proc = subprocess.run(
        [sys.executable, "-m", "reactor", "--fd", "0"],
        cwd=REPO,
        capture_output=True,
        timeout=20,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 2
    assert b"--fd: file descriptor 0 is not a socket" in proc.stderr


def test_workers_auto_is_the_cpu_count(supervise):
    running = supervise("--workers", "auto", "--log-level", "warning")
    assert running.port, running.output
    expected = os.cpu_count() or 1
    if expected == 1:
        pytest.skip("one CPU: 'auto' is a single process")
    assert STARTUP.search(running.output).group(2) == str(expected)
    assert len(running.worker_pids()) == expected


def test_a_graceful_stop_leaves_a_shared_accept_queue_to_the_other_processes(site):
    """With listen(sock), queued connections belong to every process on the socket: no 503 for them."""
    from reactor.config import Config
    from reactor.server import Server

    shared = _listening_socket()
    port = shared.getsockname()[1]
    server = Server(Config(host="127.0.0.1", port=0, root=site, max_connections=16))
    server.listen(shared.dup())
    clients = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(3)]
    try:
        server.shutdown(graceful=True)  # its loop never ran: all three still wait in the queue
        server.close()
        shared.settimeout(5)
        accepted = [shared.accept()[0] for _ in clients]  # another process takes them over
        for client in clients:
            client.setblocking(False)
            with pytest.raises(BlockingIOError):
                client.recv(1)  # no 503, no close: the client still waits for an answer
        for sock in accepted:
            sock.close()
    finally:
        for client in clients:
            client.close()
        shared.close()


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_access_log_lines_from_two_workers_never_interleave(supervise, log_format):
    running = supervise("--workers", "2", "--log-format", log_format)
    assert running.port, running.output
    agents = ["agent-%d-%s" % (n, chr(ord("a") + n) * 3000) for n in range(4)]  # long lines, under PIPE_BUF

    def client(agent: str) -> None:
        for _ in range(100):
            conn = http.client.HTTPConnection("127.0.0.1", running.port, timeout=10)
            conn.request("GET", "/index.html", headers={"User-Agent": agent, "Connection": "close"})
            conn.getresponse().read()
            conn.close()

    threads = [threading.Thread(target=client, args=(agent,)) for agent in agents]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    wait_for(lambda: running.output.count("/index.html") >= 400, what="400 access-log lines")
    access = [text for text in running.output.splitlines() if "/index.html" in text]
    assert len(access) == 400
    agent = re.compile(r"agent-\d-([a-d])\1{2999}")
    if log_format == "json":
        entries = [json.loads(text) for text in access]  # one object a line: nothing of another line inside
        assert all(agent.fullmatch(entry["user_agent"]) and entry["target"] == "/index.html" for entry in entries)
        writers = {entry["worker"] for entry in entries}
        # The supervisor's and the workers' own messages too: every whole line is one object.
        whole = running.output[: running.output.rindex("\n")].splitlines()
        messages = [json.loads(text) for text in whole if "/index.html" not in text]
        assert {"reactor.supervisor", "reactor"} <= {entry["logger"] for entry in messages}, messages
    else:
        line = re.compile(
            r'127\.0\.0\.1 - - \[[^]]+\] "GET /index\.html HTTP/1\.1" 200 \d+ "-" "(agent-\d-([a-d])\2{2999})"'
            r" \d+\.\d{3} ([a-z2-7]{8})-\d+-1$"
        )
        assert all(line.match(text) for text in access), [text[:120] for text in access if not line.match(text)][:3]
        writers = {line.match(text).group(3) for text in access}  # a worker's request ids share its prefix
    assert len(writers) == 2, writers  # both workers wrote: else there was nothing to interleave
    assert len({pid for pid in running.worker_pids()}) == 2


def _units_in_the_docs() -> Dict[str, str]:
    """The ``ini`` blocks of docs/workers.md, by the file name on their first line."""
    text = (REPO / "docs" / "workers.md").read_text(encoding="utf-8")
    units = {}
    for block in re.findall(r"```ini\n(.*?)```", text, re.DOTALL):
        first, _, body = block.partition("\n")
        units[first.rsplit("/", 1)[-1]] = body
    return units


def test_the_systemd_units_in_the_docs_are_valid(tmp_path):
    units = _units_in_the_docs()
    assert sorted(units) == ["reactor.service", "reactor.socket"]
    from reactor.cli import build_parser

    exec_start = re.search(r"^ExecStart=\S+ -m reactor (.*)$", units["reactor.service"], re.MULTILINE)
    assert exec_start, units["reactor.service"]
    args = build_parser().parse_args(exec_start.group(1).split())  # exits 2 on a flag we do not have
    assert args.workers >= 1
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze not installed")
    for name, body in units.items():
        (tmp_path / name).write_text(body)
    check = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / "reactor.socket"), str(tmp_path / "reactor.service")],
        capture_output=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stderr
    assert b"reactor." not in check.stderr, check.stderr  # no warning about our units


def _gone(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie waiting for its new parent counts as exited)."""
    try:
        return Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def test_workers_stop_when_the_supervisor_is_killed(supervise):
    """No orphans serving forever: each worker's heartbeat notices its parent is gone, and drains."""
    running = supervise("--workers", "2", "--worker-timeout", "2")
    assert running.port, running.output
    pids = running.worker_pids()
    running.proc.kill()
    running.wait(10)
    wait_for(lambda: all(_gone(pid) for pid in pids), timeout_s=10, what="the orphaned workers to exit")
    wait_for(lambda: running.output.count("the supervisor is gone; stopping") == 2, what="both workers' notices")


def test_the_html_status_page_lists_every_worker(supervise):
    running = supervise("--workers", "2", "--worker-timeout", "2", "--log-level", "warning")
    assert running.port, running.output
    pids = running.worker_pids()
    wait_for(lambda: running.status()["workers"]["count"] == 2, what="both workers on the scoreboard")
    conn = http.client.HTTPConnection("127.0.0.1", running.port, timeout=10)
    conn.request("GET", "/_status", headers={"Accept": "text/html"})
    page = conn.getresponse().read().decode()
    conn.close()
    assert "Answered by" in page
    assert sorted(int(pid) for pid in re.findall(r"#[12], pid (\d+)", page)) == pids

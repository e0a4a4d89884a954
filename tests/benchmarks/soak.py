"""A bounded soak: mixed load for N minutes, then proof that nothing leaked or was lost.

Starts ``python -m reactor`` on a free loopback port over a temporary document root,
and runs ``--clients`` client threads until the time is up. Each thread picks, at
random: keep-alive GETs of a small file and of a 1 MiB file, a byte range, a 304
revalidation, a gzip GET, a JSON upload, a malformed request, a request abandoned
half-way (head or body), and a response abandoned half-way (the client resets). Every
``--interval`` seconds it prints the server's RSS and open descriptors
(``/proc/<pid>/status``, ``/proc/<pid>/fd``), the requests done and how many of them
in the last interval (a server that slows down as it runs shows there). Meanwhile a
janitor thread does what an operator would: once the uploads it knows of pass
``JANITOR_BYTES``, it deletes the oldest half by hand, so the default 256 MiB
``--max-uploads-bytes`` never fills and uploads go on being stored (the server must
notice the room the deletions freed; an upload refused with ``507`` meanwhile is counted
as such, not as a wrong answer).

When the load stops it checks that

1. the open descriptors return to the baseline taken after the warm-up (within a
   bounded wait: lingering closes take up to 2 s);
2. RSS returns to within ``--rss-slack-mib`` of that baseline (the allocator keeps
   some memory, so not exactly);
3. every upload answered ``201`` is on disk under its name, byte for byte;
4. the server logged no traceback and no ERROR line;
5. no request got an answer it should not have (a 5xx, a wrong body).

Run from the repository root:
    python tests/benchmarks/soak.py --minutes 10
    tox -e soak -- --minutes 10

Exit status 0 when every check passed, 1 otherwise. ``tests/test_soak.py`` runs a
30-second version of the same thing in the normal test run.
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import http.client
import json
import os
import random
import re
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, TextIO, Tuple

REPO = Path(__file__).resolve().parent.parent.parent
SMALL_BYTES = 2 * 1024
LARGE_BYTES = 1024 * 1024
TEXT_BYTES = 200 * 1024
START_TIMEOUT_S = 20.0
SETTLE_TIMEOUT_S = 20.0
JANITOR_BYTES = 96 * 1024 * 1024  # past this the janitor deletes the oldest half of the uploads
JANITOR_EVERY_S = 5.0


@dataclasses.dataclass
class Report:
    """What a soak run measured, and whether each check passed."""

    seconds: float = 0.0
    requests: int = 0
    counts: Dict[str, int] = dataclasses.field(default_factory=dict)
    unexpected: List[str] = dataclasses.field(default_factory=list)  # the first 50
    unexpected_count: int = 0
    samples: List[Tuple[float, int, int, int]] = dataclasses.field(default_factory=list)  # (t, RSS, fds, requests)
    baseline_rss: int = 0
    baseline_fds: int = 0
    peak_rss: int = 0
    peak_fds: int = 0
    final_rss: int = 0
    final_fds: int = 0
    uploads: int = 0
    lost_uploads: List[str] = dataclasses.field(default_factory=list)
    log_problems: List[str] = dataclasses.field(default_factory=list)
    rss_slack: int = 0

    @property
    def fds_returned(self) -> bool:
        return self.final_fds <= self.baseline_fds

    @property
    def rss_returned(self) -> bool:
        return self.final_rss <= self.baseline_rss + self.rss_slack

    @property
    def passed(self) -> bool:
        return (
            self.fds_returned
            and self.rss_returned
            and not self.lost_uploads
            and not self.log_problems
            and not self.unexpected
        )


# -- the server ------------------------------------------------------------------------------


def make_site(base: Path) -> Tuple[Path, Dict[str, bytes]]:
    root = base / "site"
    (root / "uploads").mkdir(parents=True)
    rng = random.Random(7)
    files = {
        "small.txt": bytes(rng.choice(b"abcdefghij \n") for _ in range(SMALL_BYTES)),
        "large.bin": rng.randbytes(LARGE_BYTES),
        "text.txt": b"".join(b"line %d of a text that compresses\n" % i for i in range(TEXT_BYTES // 32))[:TEXT_BYTES],
    }
    for name, data in files.items():
        (root / name).write_bytes(data)
    (root / "index.html").write_bytes(b"<!doctype html><title>soak</title>\n")
    return root, files


class ServerProcess:
    """``python -m reactor`` with its stderr in a file (a pipe could fill and block it)."""

    def __init__(self, root: Path, log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "reactor", "--port", "0", "-d", str(root), "--log-level", "warning"],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )
        self.port = 0
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.port:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not start: %s" % self.log_text()[-2000:])
            match = re.search(r"http://[^\s/]+:(\d+)/", self.log_text())
            if match:
                self.port = int(match.group(1))
            else:
                time.sleep(0.05)  # polling the log file for the startup line, bounded above

    def log_text(self) -> str:
        return self.log_path.read_text("utf-8", "replace")

    def rss(self) -> int:
        with open("/proc/%d/status" % self.proc.pid) as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def fds(self) -> int:
        return len(os.listdir("/proc/%d/fd" % self.proc.pid))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(15)
        self._log.close()


# -- the clients --------------------------------------------------------------------------------


class Client:
    """One load thread: a keep-alive connection and a random mix of actions."""

    def __init__(
        self,
        port: int,
        files: Dict[str, bytes],
        seed: int,
        report: Report,
        lock: threading.Lock,
        stored: Dict[str, bytes],
    ) -> None:
        self.port = port
        self.host = "127.0.0.1:%d" % port
        self.files = files
        self.rng = random.Random(seed)
        self.seed = seed
        self.report = report
        self.lock = lock
        self.stored = stored
        self.conn: Optional[http.client.HTTPConnection] = None
        self.etags: Dict[str, str] = {}
        self.n = 0
        self.actions: List[Tuple[int, Callable[[], None]]] = [
            (30, self.get_small),
            (8, self.get_large),
            (8, self.get_range),
            (10, self.revalidate),
            (8, self.get_gzip),
            (16, self.upload),
            (6, self.malformed),
            (6, self.abandon_request),
            (4, self.abandon_response),
        ]

    # helpers

    def count(self, name: str) -> None:
        with self.lock:
            self.report.counts[name] = self.report.counts.get(name, 0) + 1
            self.report.requests += 1

    def wrong(self, what: str) -> None:
        with self.lock:
            self.report.unexpected_count += 1
            if len(self.report.unexpected) < 50:
                self.report.unexpected.append(what)

    def request(
        self, method: str, path: str, body: Optional[bytes] = None, headers: Optional[Dict[str, str]] = None
    ) -> Tuple[int, Dict[str, str], bytes]:
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                response = self.conn.getresponse()
                data = response.read()
                fields = {name.lower(): value for name, value in response.getheaders()}
                if response.will_close:
                    self.conn.close()
                    self.conn = None
                return response.status, fields, data
            except (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine):
                # The server may close an idle keep-alive connection between two requests
                # (keep-alive max, timeout): retry once on a new one, as clients do.
                self.conn.close()
                self.conn = None
                if attempt == 2 or method == "POST":
                    raise
        raise AssertionError("unreachable")

    def raw(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=30)

    # actions

    def get_small(self) -> None:
        status, _fields, body = self.request("GET", "/small.txt")
        if status != 200 or body != self.files["small.txt"]:
            self.wrong("GET /small.txt: %d, %d bytes" % (status, len(body)))
        self.count("get small")

    def get_large(self) -> None:
        status, _fields, body = self.request("GET", "/large.bin")
        if status != 200 or body != self.files["large.bin"]:
            self.wrong("GET /large.bin: %d, %d bytes" % (status, len(body)))
        self.count("get 1 MiB")

    def get_range(self) -> None:
        size = len(self.files["large.bin"])
        first = self.rng.randrange(size - 1)
        last = min(size - 1, first + self.rng.randrange(1, 70_000))
        status, _fields, body = self.request("GET", "/large.bin", headers={"Range": "bytes=%d-%d" % (first, last)})
        if status != 206 or body != self.files["large.bin"][first : last + 1]:
            self.wrong("range %d-%d: %d, %d bytes" % (first, last, status, len(body)))
        self.count("range")

    def revalidate(self) -> None:
        name = self.rng.choice(["small.txt", "large.bin"])
        etag = self.etags.get(name)
        if etag is None:
            status, fields, _body = self.request("HEAD", "/" + name)
            etag = self.etags[name] = fields.get("etag", "")
        status, _fields, body = self.request("GET", "/" + name, headers={"If-None-Match": etag})
        if status != 304 or body:
            self.wrong("If-None-Match on %s: %d" % (name, status))
        self.count("304")

    def get_gzip(self) -> None:
        status, fields, body = self.request("GET", "/text.txt", headers={"Accept-Encoding": "gzip"})
        if status != 200 or fields.get("content-encoding") != "gzip" or gzip.decompress(body) != self.files["text.txt"]:
            self.wrong("gzip GET /text.txt: %d" % status)
        self.count("gzip")

    def upload(self) -> None:
        self.n += 1
        document = json.dumps({"client": self.seed, "n": self.n, "pad": "x" * self.rng.randrange(10, 20_000)})
        data = document.encode()
        status, _fields, body = self.request("POST", "/upload", body=data, headers={"Content-Type": "application/json"})
        if status == 201:
            name = json.loads(body)["file"]
            with self.lock:
                self.stored[name] = data
        elif status == 507 and b"--max-uploads-bytes" in body:
            self.count("upload refused: quota full")  # until the server sees what the janitor deleted
            return
        else:
            self.wrong("upload: %d %r" % (status, body[:100]))
        self.count("upload")

    def malformed(self) -> None:
        host = self.host.encode()
        raw = self.rng.choice(
            [
                b"GET / HTTP/1.1\r\nHost : " + host + b"\r\n\r\n",
                b"GET / HTTP/1.1\r\nHost: " + host + b"\r\nX: a\x00b\r\n\r\n",
                b"GET /\x7f HTTP/1.1\r\nHost: " + host + b"\r\n\r\n",
                b"POST /upload HTTP/1.1\r\nHost: " + host + b"\r\nContent-Type: application/json\r\n"
                b'Transfer-Encoding: chunked\r\n\r\n5 \r\n{"a":\r\n0\r\n\r\n',
                b"GET / HTTP/1.1\r\nHost: " + host + b"\r\nX-Big: " + b"x" * 9000 + b"\r\n\r\n",
                b"GET / HTTP/3.0\r\nHost: " + host + b"\r\n\r\n",
            ]
        )
        with self.raw() as sock:
            sock.sendall(raw)
            reply = b""
            while True:
                try:
                    chunk = sock.recv(65536)
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                reply += chunk
        status = int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/1.1 ") else 0
        if not (400 <= status < 500 or status == 505):
            self.wrong("malformed request answered %r" % reply[:60])
        self.count("malformed")

    def abandon_request(self) -> None:
        host = self.host.encode()
        raw = self.rng.choice(
            [
                b"GET /small.txt HTTP/1.1\r\nHost: " + host + b"\r\nAccept: */*\r\n",
                b"POST /upload HTTP/1.1\r\nHost: " + host + b"\r\nContent-Type: application/json\r\n"
                b'Content-Length: 5000\r\n\r\n{"cut": "sho',
            ]
        )
        sock = self.raw()
        sock.sendall(raw)
        if self.rng.random() < 0.5:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST
        sock.close()
        self.count("abandoned request")

    def abandon_response(self) -> None:
        sock = self.raw()
        sock.sendall(b"GET /large.bin HTTP/1.1\r\nHost: " + self.host.encode() + b"\r\n\r\n")
        sock.recv(self.rng.randrange(1, 65536))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST
        sock.close()
        self.count("abandoned response")

    def warm_up(self) -> None:
        for _weight, action in self.actions:
            action()

    def run(self, stop: threading.Event) -> None:
        weights = [weight for weight, _action in self.actions]
        actions = [action for _weight, action in self.actions]
        while not stop.is_set():
            action = self.rng.choices(actions, weights)[0]
            try:
                action()
            except (OSError, http.client.HTTPException, ValueError) as exc:
                self.wrong("%s: %r" % (action.__name__, exc))
                if self.conn is not None:
                    self.conn.close()
                    self.conn = None
        self.close()

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


# -- the run ------------------------------------------------------------------------------------


def mib(n: int) -> str:
    return "%.1f MiB" % (n / 2**20)


def run(
    seconds: float, interval_s: float = 30.0, clients: int = 8, rss_slack_mib: float = 16.0, out: TextIO = sys.stdout
) -> Report:
    """Soak a fresh server for ``seconds``; print a line every ``interval_s``; return the Report."""
    report = Report(rss_slack=int(rss_slack_mib * 2**20))
    lock = threading.Lock()
    stored: Dict[str, bytes] = {}
    with tempfile.TemporaryDirectory(prefix="reactor-soak-") as tmp:
        root, files = make_site(Path(tmp))
        server = ServerProcess(root, Path(tmp) / "server.log")
        try:
            load = [Client(server.port, files, seed, report, lock, stored) for seed in range(clients)]
            for client in load:  # fills the caches, so the baseline includes them
                client.warm_up()
                client.close()
            wait_settled(server, None)
            report.baseline_rss, report.baseline_fds = server.rss(), server.fds()
            print(
                "soak: %d clients for %.0f s against pid %d; baseline RSS %s, %d descriptors"
                % (clients, seconds, server.proc.pid, mib(report.baseline_rss), report.baseline_fds),
                file=out,
            )
            stop = threading.Event()
            threads = [threading.Thread(target=client.run, args=(stop,), daemon=True) for client in load]
            threads.append(threading.Thread(target=janitor, args=(root / "uploads", stored, lock, report, stop)))
            started = time.monotonic()
            for thread in threads:
                thread.start()
            next_report = started + interval_s
            while True:
                now = time.monotonic()
                if now - started >= seconds:
                    break
                time.sleep(max(0.0, min(next_report, started + seconds) - now))  # the load runs meanwhile
                if time.monotonic() >= next_report:
                    sample(server, report, started, out)
                    next_report += interval_s
            stop.set()
            for thread in threads:
                thread.join(60)
            report.seconds = time.monotonic() - started
            sample(server, report, started, out)
            report.final_fds, report.final_rss = wait_settled(server, report.baseline_fds)
            report.uploads = len(stored)
            for name, data in stored.items():
                path = root / "uploads" / name
                if not path.is_file() or path.read_bytes() != data:
                    report.lost_uploads.append(name)
            report.log_problems = [
                line for line in server.log_text().splitlines() if "Traceback" in line or " ERROR " in line
            ][:20]
        finally:
            server.stop()
    print_summary(report, out)
    return report


def janitor(
    uploads: Path, stored: Dict[str, bytes], lock: threading.Lock, report: Report, stop: threading.Event
) -> None:
    """An operator keeping uploads/ small: past JANITOR_BYTES, delete the oldest half by hand."""
    while not stop.wait(JANITOR_EVERY_S):
        with lock:
            if sum(map(len, stored.values())) < JANITOR_BYTES:
                continue
            oldest = list(stored)[: len(stored) // 2]  # dicts keep insertion order
            for name in oldest:
                del stored[name]  # no longer checked at the end
        for name in oldest:
            (uploads / name).unlink()
        with lock:
            report.counts["uploads deleted by hand"] = report.counts.get("uploads deleted by hand", 0) + len(oldest)


def sample(server: ServerProcess, report: Report, started: float, out: TextIO) -> None:
    rss, fds = server.rss(), server.fds()
    elapsed = time.monotonic() - started
    requests = report.requests  # read without the lock: a progress line may be a request behind
    before = report.samples[-1] if report.samples else (0.0, 0, 0, 0)
    report.samples.append((elapsed, rss, fds, requests))
    report.peak_rss = max(report.peak_rss, rss)
    report.peak_fds = max(report.peak_fds, fds)
    print(
        "  %6.0f s  %8d requests (%5.0f/s; %7d in the last %3.0f s)  RSS %10s  %4d descriptors  %d unexpected"
        % (
            elapsed,
            requests,
            requests / max(elapsed, 1e-9),
            requests - before[3],
            elapsed - before[0],
            mib(rss),
            fds,
            report.unexpected_count,
        ),
        file=out,
    )


def wait_settled(server: ServerProcess, baseline_fds: Optional[int]) -> Tuple[int, int]:
    """Wait (bounded) until the server holds no more descriptors than ``baseline_fds``.

    With no baseline yet, until the count stops changing. Returns (fds, RSS).
    """
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    last = -1
    while True:
        fds = server.fds()
        if baseline_fds is not None and fds <= baseline_fds:
            break
        if baseline_fds is None and fds == last:
            break
        if time.monotonic() > deadline:
            break
        last = fds
        time.sleep(0.25)  # lingering closes and keep-alive ends take up to a few seconds
    return server.fds(), server.rss()


def print_summary(report: Report, out: TextIO) -> None:
    counts = ", ".join("%s %d" % item for item in sorted(report.counts.items()))
    print("soak: %d requests in %.0f s (%s)" % (report.requests, report.seconds, counts), file=out)
    print(
        "  descriptors: baseline %d, peak %d, after %d  %s"
        % (report.baseline_fds, report.peak_fds, report.final_fds, "ok" if report.fds_returned else "LEAK"),
        file=out,
    )
    print(
        "  RSS: baseline %s, peak %s, after %s (slack %s)  %s"
        % (
            mib(report.baseline_rss),
            mib(report.peak_rss),
            mib(report.final_rss),
            mib(report.rss_slack),
            "ok" if report.rss_returned else "GREW",
        ),
        file=out,
    )
    print(
        "  uploads: %d answered 201, %d missing or different  %s"
        % (report.uploads, len(report.lost_uploads), "ok" if not report.lost_uploads else "LOST"),
        file=out,
    )
    print(
        "  server log: %d traceback/ERROR lines  %s"
        % (len(report.log_problems), "ok" if not report.log_problems else "PROBLEMS"),
        file=out,
    )
    for line in report.log_problems[:5]:
        print("    " + line, file=out)
    print(
        "  unexpected answers: %d  %s" % (report.unexpected_count, "ok" if not report.unexpected else "WRONG"), file=out
    )
    for line in report.unexpected[:5]:
        print("    " + line, file=out)
    print("soak: %s" % ("PASS" if report.passed else "FAIL"), file=out)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long the load runs (default 10)")
    parser.add_argument("--interval", type=float, default=30.0, help="seconds between progress lines (default 30)")
    parser.add_argument("--clients", type=int, default=8, help="client threads (default 8)")
    parser.add_argument(
        "--rss-slack-mib", type=float, default=16.0, help="how far above the baseline RSS may end (default 16)"
    )
    args = parser.parse_args(argv)
    if not sys.platform.startswith("linux"):
        print("soak: needs /proc (Linux)", file=sys.stderr)
        return 2
    report = run(args.minutes * 60, args.interval, args.clients, args.rss_slack_mib)
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())

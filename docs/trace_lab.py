#!/usr/bin/env python3
"""The trace lab of docs/trace.md: run one scenario against ``python3 -m reactor --trace``.

Each scenario starts the server on port 0 in a child process, plays a client step by
step (each step waits, bounded, for the trace line that shows the server got there, so
the order of lines is the same on every run), and prints the trace of the connection it
studies, from its accept to its close, with what differs between runs masked: the
milliseconds column becomes ``t``, the port ``PORT``, the access-log date ``DATE``, its
duration ``MS`` and the random prefix of its request id ``ID``, and a timer's remaining
time ``N.Ns``.

    python3 docs/trace_lab.py cache-hit         # print one scenario's trace
    python3 docs/trace_lab.py --list            # the scenarios
    python3 docs/trace_lab.py --write           # rewrite every lab block (docs/trace.md, docs/second-protocol.md)
    python3 docs/trace_lab.py --check           # exit 1 if a block differs

tests/test_docs.py runs every scenario and compares it with its page line for line (see :func:`same`).
"""

from __future__ import annotations

import base64
import os
import re
import select
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import docgen

_PORT = re.compile(r"https?://127\.0\.0\.1:(\d+)/")
_TRACE = re.compile(r"^ *\d+\.\d{3} (#\d+|--) (.*)$")
_ACCESS = re.compile(r'^\S+ - - \[[^]]+\] "')


class Server:
    """``python -m reactor --port 0 --trace ARGS`` in a child process; its stderr as it comes."""

    def __init__(self, args: List[str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "reactor", "--port", "0", "--trace", *args],
            cwd=str(docgen.REPO),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.err = b""
        self.port = int(self.wait_for(_PORT).group(1))
        self.connections = 0  # connections made so far: the server numbers them #1, #2, ...

    def wait_for(self, pattern: "re.Pattern[str] | str", timeout_s: float = 10.0) -> "re.Match[str]":
        """Read stderr until ``pattern`` matches it (bounded); raise TimeoutError if not."""
        if isinstance(pattern, str):
            pattern = re.compile(re.escape(pattern))
        deadline = time.monotonic() + timeout_s
        assert self.proc.stderr is not None
        while True:
            match = pattern.search(self.err.decode("utf-8", "replace"))
            if match:
                return match
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.proc.poll() is not None:
                raise TimeoutError("trace never showed %r:\n%s" % (pattern.pattern, self.err.decode()))
            ready, _, _ = select.select([self.proc.stderr], [], [], remaining)
            if ready:
                self.err += os.read(self.proc.stderr.fileno(), 65536)

    def connect(self) -> socket.socket:
        """Connect, and wait until the server has accepted and waits for the request.

        The server tries its first ``recv`` as it accepts; waiting for it to register
        makes that try find nothing on every run, so the trace is the same each time.
        """
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        self.connections += 1
        self.wait_for("#%d selector register read" % self.connections)
        return sock

    @property
    def host(self) -> bytes:
        """The Host field line: ephemeral ports have five digits, so byte counts stay the same."""
        return b"Host: 127.0.0.1:%d\r\n" % self.port

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            _out, rest = self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _out, rest = self.proc.communicate()
        self.err += rest or b""
        return self.err.decode("utf-8", "replace")


_BUFFERED: Dict[int, bytes] = {}  # socket fd -> bytes read past the last response


def read_response(sock: socket.socket) -> bytes:
    """Read one response whose body has a Content-Length (bounded by the socket timeout).

    Bytes past it (a pipelined second response) are kept for the next call.
    """
    data = _BUFFERED.pop(sock.fileno(), b"")
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    match = re.search(rb"\r\ncontent-length: *(\d+)", head, re.I)
    size = int(match.group(1)) if match else 0
    while len(body) < size:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    if len(body) > size:
        _BUFFERED[sock.fileno()] = body[size:]
    return head + b"\r\n\r\n" + body[:size]


def get(server: Server, path: str) -> bytes:
    return b"GET %s HTTP/1.1\r\n%sUser-Agent: lab\r\n\r\n" % (path.encode(), server.host)


def warm(server: Server, *paths: str) -> None:
    """Connection #1 asks for ``paths`` (filling the hot-file cache), then closes."""
    sock = server.connect()
    for path in paths:
        sock.sendall(get(server, path))
        read_response(sock)
    _BUFFERED.pop(sock.fileno(), None)
    sock.close()
    server.wait_for(re.compile(r"#1 state \S+ -> closed"))


def closed_by_client(server: Server, sock: socket.socket, conn: int) -> None:
    _BUFFERED.pop(sock.fileno(), None)
    sock.close()
    server.wait_for(re.compile(r"#%d state \S+ -> closed" % conn))


# -- the scenarios: each returns the id of the connection to show -----------------------


def cache_hit(server: Server) -> int:
    warm(server, "/sample.txt")
    sock = server.connect()
    sock.sendall(get(server, "/sample.txt"))
    read_response(sock)
    server.wait_for("#2 state writing -> idle")
    closed_by_client(server, sock, 2)
    return 2


def pipelined_pair(server: Server) -> int:
    warm(server, "/sample.txt", "/notes.txt")
    sock = server.connect()
    sock.sendall(get(server, "/sample.txt") + get(server, "/notes.txt"))
    read_response(sock)
    read_response(sock)
    server.wait_for(re.compile(r"#2 state writing -> idle"))
    closed_by_client(server, sock, 2)
    return 2


def early_415(server: Server) -> int:
    sock = server.connect()
    sock.sendall(
        b"POST /upload HTTP/1.1\r\n%sUser-Agent: lab\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n"
        % server.host
    )
    read_response(sock)  # before a byte of the body was sent
    server.wait_for("#1 state writing -> closing")
    sock.sendall(b"x" * 1000)  # the client starts its body anyway: the lingering close reads it away
    server.wait_for("#1 recv 1000 bytes")
    closed_by_client(server, sock, 1)
    return 1


def bare_lf(server: Server) -> int:
    sock = server.connect()
    sock.sendall(b"GET / HTTP/1.1\nHost: 127.0.0.1\n\n")
    read_response(sock)
    server.wait_for(re.compile(r"#1 state writing -> \S+"))
    closed_by_client(server, sock, 1)
    return 1


def slow_client(server: Server) -> int:
    sock = server.connect()
    sock.sendall(b"GET / HTTP/1.1\r\n%s" % server.host)  # and never the empty line
    read_response(sock)  # the 408, after --header-timeout
    server.wait_for("#1 state writing -> closing")
    closed_by_client(server, sock, 1)
    return 1


def pipelined_behind_app(server: Server) -> int:
    """A request held by the application, and a second one sent meanwhile: the put-off drop of the read interest."""
    sock = server.connect()
    sock.sendall(get(server, "/held"))
    server.wait_for("#1 app pool submit")
    sock.sendall(get(server, "/next"))  # pipelined while the application holds the first
    server.wait_for("#1 selector unregister")
    release(Path(server.site.name) / "go")  # type: ignore[attr-defined]
    read_response(sock)
    read_response(sock)
    server.wait_for(re.compile(r"(?s)GET /next.*#1 state writing -> idle"))
    closed_by_client(server, sock, 1)
    return 1


def release(fifo: Path, timeout_s: float = 10.0) -> None:
    """Write a byte into ``fifo`` once the application has it open for reading (bounded)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # ENXIO while no reader has it open
            break
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError("the application never opened %s" % fifo) from None
            time.sleep(0.01)
    os.write(fd, b"x")
    os.close(fd)


#: The application of the pipelined-behind-app run: GET /held waits for a byte in the
#: FIFO ``go`` beside it, any other path is answered at once.
HELD_APP = """\
import os

GO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "go")


def app(environ, start_response):
    if environ["PATH_INFO"] == "/held":
        with open(GO, "rb") as fifo:  # until the lab writes a byte
            fifo.read(1)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "3")])
    return [b"ok\\n"]
"""


def cache_revalidation(server: Server) -> int:
    warm(server, "/sample.txt")
    time.sleep(1.1)  # the cache's check interval (reactor.handlers.cache.VALID_S) passes
    sock = server.connect()
    sock.sendall(get(server, "/sample.txt"))
    read_response(sock)
    server.wait_for("pool result current_stamp: cached /sample.txt")
    closed_by_client(server, sock, 2)
    return 2


class _TLS:
    """A throwaway CA and server certificate from trustme, in a temporary folder."""

    def __init__(self) -> None:
        import trustme  # a test dependency: tests/requirements.txt

        self.folder = tempfile.TemporaryDirectory()
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        folder = Path(self.folder.name)
        self.ca = str(folder / "ca.pem")
        self.cert = str(folder / "cert.pem")
        self.key = str(folder / "key.pem")
        ca.cert_pem.write_to_path(self.ca)
        cert.cert_chain_pems[0].write_to_path(self.cert)
        cert.private_key_pem.write_to_path(self.key)


def tls_handshake(server: Server) -> int:
    """An HTTPS request (``--cacert`` trust), sent once the server has finished its handshake.

    By hand: ``curl --cacert ca.pem https://127.0.0.1:8443/sample.txt``. The script uses
    Python's ssl client instead so that it can wait for the server's ``handshake done``
    before sending the request: curl sends it as soon as it can, in the same ``recv`` as
    its last handshake message or not, depending on timing.
    """
    ca = server.tls.ca  # type: ignore[attr-defined]
    context = ssl.create_default_context(cafile=ca)
    context.set_alpn_protocols(["http/1.1"])  # as curl offers
    for conn in (1, 2):  # #1 warms the cache; #2 is the one shown
        raw = server.connect()
        sock = context.wrap_socket(raw, server_hostname="127.0.0.1")
        server.wait_for("#%d tls handshake done" % conn)
        sock.sendall(get(server, "/sample.txt"))
        read_response(sock)
        server.wait_for("#%d state writing -> idle" % conn)
        _BUFFERED.pop(sock.fileno(), None)
        sock.unwrap()  # close_notify, then close
        sock.close()
        server.wait_for(re.compile(r"#%d state \S+ -> closed" % conn))
    return 2


# -- a second protocol (docs/second-protocol.md) ------------------------------------------

_MASK = b"\x37\xfa\x21\x3d"  # a client's masking key: fixed, so the bytes are the same every run


def _frame(opcode: int, payload: bytes) -> bytes:
    """A client's frame (RFC 6455 §5.2): FIN, masked, a payload under 126 bytes."""
    masked = bytes(byte ^ _MASK[index & 3] for index, byte in enumerate(payload))
    return bytes((0x80 | opcode, 0x80 | len(payload))) + _MASK + masked


def _handshake(server: Server, path: str) -> bytes:
    key = base64.b64encode(b"the lab's 16 B k").decode()
    return (
        "GET %s HTTP/1.1\r\n%sUser-Agent: lab\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path, server.host.decode(), key)
    ).encode()


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    data = _BUFFERED.pop(sock.fileno(), b"")
    while len(data) < size:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    if len(data) > size:
        _BUFFERED[sock.fileno()] = data[size:]
    return data[:size]


def _close_handshake(server: Server, sock: socket.socket, conn: int, before: bytes = b"") -> None:
    """Send ``before`` and a Close (1000), read the server's Close and its EOF, then close too."""
    sock.sendall(before + _frame(0x8, (1000).to_bytes(2, "big") + b"bye"))
    assert _read_exactly(sock, 4) == b"\x88\x02\x03\xe8", "the server's Close echoes the code"
    assert sock.recv(1) == b"", "the server shuts its write side after the closing handshake"
    server.wait_for("#%d state open -> lingering" % conn)
    closed_by_client(server, sock, conn)


def websocket_upgrade(server: Server) -> int:
    """A WebSocket at /echo: a text frame right behind the handshake, a Ping after a second of silence, a Close.

    By hand: ``python3 -m websockets ws://127.0.0.1:8080/echo`` (the websockets library's
    client) against ``python3 -m reactor --trace --websocket /echo=reactor.websocket:Echo``.
    """
    sock = server.connect()
    sock.sendall(_handshake(server, "/echo") + _frame(0x1, b"hello"))  # the frame rides behind the request
    head = read_response(sock)
    assert head.startswith(b"HTTP/1.1 101 "), head
    assert _read_exactly(sock, 7) == b"\x81\x05hello"
    assert _read_exactly(sock, 2) == b"\x89\x00", "a Ping once the client has been silent"
    _close_handshake(server, sock, 1, before=_frame(0xA, b""))  # its Pong and a Close in one write
    return 1


def live_reload(server: Server) -> int:
    """``--live-reload`` on a folder of its own: a socket hears hello; a saved page is one inotify read, one message.

    The page is saved as editors do, written beside the folder and renamed over the old
    one, so the kernel reports one event (``IN_MOVED_TO``) on every run.
    """
    site = Path(server.site.name) / "site"  # type: ignore[attr-defined]
    sock = server.connect()
    sock.sendall(_handshake(server, "/__reactor__/livereload"))
    head = read_response(sock)
    assert head.startswith(b"HTTP/1.1 101 "), head
    hello = _read_exactly(sock, 2)
    assert b'"hello"' in _read_exactly(sock, hello[1]), "a socket first hears hello"
    draft = site.parent / "index.html.new"
    draft.write_bytes(b"<!doctype html><title>lab</title><body><p>edited</p></body>\n")
    os.replace(draft, site / "index.html")
    head = _read_exactly(sock, 2)
    assert b'"reload"' in _read_exactly(sock, head[1]), "a saved page is a reload message"
    _close_handshake(server, sock, 1)
    return 1


class _Site:
    """A folder with one page, for --live-reload to watch (beside it, room to write a page before
    renaming it in), and the application :data:`HELD_APP` with its FIFO."""

    def __init__(self) -> None:
        self.folder = tempfile.TemporaryDirectory()
        self.name = self.folder.name
        site = Path(self.name) / "site"
        site.mkdir()
        (site / "index.html").write_bytes(b"<!doctype html><title>lab</title><body><p>first</p></body>\n")
        (Path(self.name) / "lab_app.py").write_text(HELD_APP, encoding="utf-8")
        os.mkfifo(Path(self.name) / "go")


Scenario = Tuple[Callable[[Server], int], List[str]]
SCENARIOS: Dict[str, Scenario] = {
    "cache-hit": (cache_hit, []),
    "pipelined-pair": (pipelined_pair, []),
    "early-415": (early_415, []),
    "bare-lf": (bare_lf, []),
    "tls-handshake": (tls_handshake, ["--tls-cert", "{cert}", "--tls-key", "{key}"]),
    "slow-client": (slow_client, ["--header-timeout", "1"]),
    "cache-revalidation": (cache_revalidation, []),
    "pipelined-behind-app": (pipelined_behind_app, ["--app", "lab_app:app", "--app-dir", "{site}"]),
    "websocket-upgrade": (
        websocket_upgrade,
        [
            "--websocket",
            "/echo=reactor.websocket:Echo",
            "--websocket-ping-interval",
            "1",
            "--websocket-ping-timeout",
            "10",
        ],
    ),
    "live-reload": (live_reload, ["--live-reload", "-d", "{site}/site"]),
}
#: The page each scenario's recording is kept in (docs/trace.md unless named here).
PAGES = {"websocket-upgrade": "second-protocol.md", "live-reload": "second-protocol.md"}
#: Scenarios whose order of lines depends on thread timing: shown, compared by kind only.
RACY = {"cache-revalidation", "pipelined-behind-app"}


def mask(line: str) -> str:
    """A trace or access-log line with what differs between runs replaced."""
    match = _TRACE.match(line)
    if match:
        who, what = match.groups()
        what = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", what)
        what = re.sub(r"in \d+\.\ds", "in N.Ns", what)
        what = re.sub(r'"epoch": \d+', '"epoch": N', what)  # live reload's epochs start at the clock's milliseconds
        return "t %s %s" % (who, what)
    line = re.sub(r" \d+\.\d{3} [a-z2-7]{8}(-\d+-\d+)$", r" MS ID\1", line)  # the duration, the id's random prefix
    return re.sub(r"\[[^]]+\]", "[DATE]", line, count=1)


def run(name: str) -> List[str]:
    """The masked trace lines (and access-log lines) of scenario ``name``.

    The cache trusts an entry for a second (``reactor.handlers.cache.VALID_S``) and
    serves it for two (``EXPIRE_S``): on a machine so loaded that a step takes longer,
    a run would show a revalidation it is not about (or miss the one it is about), so
    such a run is played again, up to three times.
    """
    for _attempt in range(3):
        lines = _run_once(name)
        revalidated = any("(revalidate cached" in line for line in lines)
        if revalidated == (name == "cache-revalidation"):
            break
    return lines


def _run_once(name: str) -> List[str]:
    play, args = SCENARIOS[name]
    tls = _TLS() if "{cert}" in args else None
    if tls is not None:
        args = [a.format(cert=tls.cert, key=tls.key) for a in args]
    site = _Site() if any("{site}" in a for a in args) else None
    if site is not None:
        args = [a.format(site=site.name) for a in args]
    server = Server(args)
    server.tls = tls  # type: ignore[attr-defined]
    server.site = site  # type: ignore[attr-defined]
    try:
        conn = play(server)
    finally:
        output = server.stop()
        for made in (tls, site):
            if made is not None:
                made.folder.cleanup()
    shown: List[str] = []
    me = "#%d" % conn
    started = False
    handshaking = False
    for line in output.splitlines():
        match = _TRACE.match(line)
        if match:
            who, what = match.groups()
            if who == me and what.startswith("accepted"):
                started = True
            if not started or who not in (me, "--"):
                continue
            if what == "tls handshake begins":
                handshaking = True
            elif what.startswith("tls handshake done"):
                handshaking = False
            if handshaking:  # certificates and key shares are new each run: their sizes vary by a byte or two
                line = re.sub(r"(recv|send) \d+ bytes", r"\1 N bytes", line)
            shown.append(mask(line.rstrip()))
            if who == me and re.match(r"state \S+ -> closed", what):
                break
        elif started and _ACCESS.match(line):
            shown.append(mask(line.rstrip()))
    return shown


def block(name: str) -> str:
    return "```text\n$ python3 docs/trace_lab.py %s\n%s\n```\n" % (name, "\n".join(run(name)))


def render() -> docgen.Blocks:
    blocks: docgen.Blocks = {}
    for name in SCENARIOS:
        blocks.setdefault(PAGES.get(name, "trace.md"), {})["lab-" + name] = block(name)
    return blocks


def recorded(name: str) -> str:
    """The block of scenario ``name`` as its page (docs/trace.md, or the one :data:`PAGES` names) has it now."""
    page = (docgen.DOCS / PAGES.get(name, "trace.md")).read_text(encoding="utf-8")
    text = page.split("<!-- BEGIN GENERATED lab-%s:" % name, 1)[1].split("-->\n", 1)[1]
    return text.split("<!-- END GENERATED", 1)[0]


#: A waker byte drained a pass after its callback ran: when it shows depends on how fast the
#: worker thread wrote it (a job of an earlier connection may drain in the studied one's lines).
LATE_WAKER = "t -- event read waker (its callback already ran in the previous pass)"


def same(name: str, old: str, new: str) -> bool:
    """Whether two blocks of ``name`` agree: line for line, leaving out a :data:`LATE_WAKER`
    line; for a RACY run in any order, leaving out every waker line (its place and cause
    are the race)."""
    if name not in RACY:
        return [line for line in old.splitlines() if line != LATE_WAKER] == [
            line for line in new.splitlines() if line != LATE_WAKER
        ]

    def lines(text: str) -> List[str]:
        return sorted(line for line in text.splitlines() if "event read waker" not in line)

    return lines(old) == lines(new)


def check() -> int:
    stale = [name for name in SCENARIOS if not same(name, recorded(name), block(name))]
    for name in stale:
        print("docs/trace.md: the %s run differs; run python3 docs/trace_lab.py --write" % name, file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    argv = sys.argv[1:]
    if argv == ["--list"]:
        print("\n".join(SCENARIOS))
    elif argv == ["--write"]:
        sys.exit(docgen.main(render, []))
    elif argv == ["--check"]:
        sys.exit(check())
    elif len(argv) == 1 and argv[0] in SCENARIOS:
        try:
            print("\n".join(run(argv[0])))
        except ModuleNotFoundError as exc:  # trustme, for the TLS run's throwaway certificate
            sys.exit("%s needs %s: python3 -m pip install %s" % (argv[0], exc.name, exc.name))
    else:
        sys.exit(
            "usage: python3 docs/trace_lab.py SCENARIO | --list | --write | --check\nscenarios: %s"
            % ", ".join(SCENARIOS)
        )

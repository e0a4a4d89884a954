"""Shared fixtures: real servers on 127.0.0.1 with ephemeral ports, and hypothesis profiles.

- ``make_server(**config)`` starts a :class:`reactor.server.Server` on its own thread
  (the loop thread) over a private copy of ``resources/``; it is listening before the
  fixture returns, so no test waits or sleeps for readiness. ``make_server(wsgi_app=app)``
  hosts a WSGI application instead (``--app``).
- ``server`` is one such server with the default configuration.
- ``run_cli(*args)`` starts ``python -m reactor`` as a real process and waits (bounded)
  for its startup line, which names the port.
- ``raw`` helpers talk to a server through a plain socket for bytes no client would send.

Both transports: a test module that sets ``BOTH_TRANSPORTS = True`` runs each of its
tests that use a server twice, over plain TCP and over TLS (a certificate from a
throwaway ``trustme`` CA). ``running.connect()``, ``running.http()`` and ``fetch`` then
speak TLS, so the same test body covers both.

Hypothesis profiles: ``ci`` (bounded, the default) and ``fuzz`` (long); choose with
``HYPOTHESIS_PROFILE=fuzz``.
"""

from __future__ import annotations

import contextlib
import fcntl
import http.client
import os
import re
import select
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterator, List, Optional

import pytest
from hypothesis import HealthCheck, settings

from reactor import log as logmod
from reactor.config import Config
from reactor.server import Server

REPO = Path(__file__).resolve().parent.parent
RESOURCES = REPO / "resources"

settings.register_profile(
    "ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.register_profile(
    "fuzz", max_examples=200_000, deadline=None, suppress_health_check=list(HealthCheck), print_blob=True
)
settings.register_profile("dev", max_examples=50, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


# -- tests that must run alone ------------------------------------------------------------
# `tox` runs the suite on two processes (pytest-xdist, `-n 2`). A test marked `serial`
# judges wall-clock time against the server (a 50 ms deferral, a median against a bound),
# so while it runs no other test does: every test holds a shared lock on a file all
# workers see, a serial test an exclusive one. A turnstile in front keeps a serial test
# from waiting forever behind a stream of shared holders.


@pytest.fixture(autouse=True)
def _serial_tests_run_alone(request, tmp_path_factory) -> Iterator[None]:
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the run's folder, above each worker's
    serial = request.node.get_closest_marker("serial") is not None
    with open(shared / "reactor-tests.turnstile", "a") as turnstile, open(shared / "reactor-tests.lock", "a") as lock:
        fcntl.flock(turnstile, fcntl.LOCK_EX)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX if serial else fcntl.LOCK_SH)
        finally:
            if not serial:
                fcntl.flock(turnstile, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            with contextlib.suppress(OSError):
                fcntl.flock(turnstile, fcntl.LOCK_UN)


class TLSFiles:
    """A throwaway CA and a server certificate for localhost and 127.0.0.1 (PEM files)."""

    def __init__(self, directory: Path) -> None:
        import trustme  # test-only

        self.ca = trustme.CA()
        issued = self.ca.issue_cert("localhost", "127.0.0.1", "::1")
        self.cert = directory / "cert.pem"
        self.key = directory / "key.pem"
        self.ca_file = directory / "ca.pem"
        issued.cert_chain_pems[0].write_to_path(str(self.cert))
        for blob in issued.cert_chain_pems[1:]:
            blob.write_to_path(str(self.cert), append=True)
        issued.private_key_pem.write_to_path(str(self.key))
        self.ca.cert_pem.write_to_path(str(self.ca_file))

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        return context


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    return TLSFiles(tmp_path_factory.mktemp("tls"))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "transport" in metafunc.fixturenames:
        # plain_only: the test is about TCP itself (the accept path, select() on raw bytes).
        both = getattr(metafunc.module, "BOTH_TRANSPORTS", False) and not metafunc.definition.get_closest_marker(
            "plain_only"
        )
        metafunc.parametrize("transport", ["plain", "tls"] if both else ["plain"], indirect=True)


@pytest.fixture
def transport(request: pytest.FixtureRequest) -> str:
    """``"plain"`` or ``"tls"``: what the servers of this test speak (see BOTH_TRANSPORTS)."""
    return str(request.param)


class RunningServer:
    """A server running on a background thread; ``host``, ``port``, ``root``, ``url``.

    ``tls`` is the client-side SSLContext when the server speaks HTTPS, else None.
    """

    def __init__(self, server: Server, thread: threading.Thread, tls: Optional[ssl.SSLContext] = None) -> None:
        self.server = server
        self.thread = thread
        self.host, self.port = server.address
        self.root = Path(server.config.root)
        self.url = server.url
        self.tls = tls
        self.ca_file = ""  # set by make_server over TLS

    @property
    def threaded_tls(self) -> Optional[ssl.SSLContext]:
        """A client SSLContext, at most TLS 1.2, for websockets' sync client (None over TCP).

        That client reads on a background thread while its caller writes, on one SSLSocket,
        and an OpenSSL connection is not safe for that. Under TLS 1.3 the server's session
        tickets arrive just after the handshake, as the client writes its request: about
        once in 500 connections on a loaded machine the request never left the client, or
        reached the server as a record it could not decrypt (``BAD_RECORD_TYPE``), the
        server's trace showing nothing wrong on its side. TLS 1.2 sends nothing after the
        handshake, which removes that race (0 of 3,000 then), not every one: a write racing a
        read still can, so it serves a client that mostly reads (the live-reload listener);
        tests/test_websocket_tls.py uses websockets' asyncio client instead. Single-threaded
        clients (``connect``, ``RawWebSocket``) keep TLS 1.3.
        """
        if self.tls is None:
            return None
        context = ssl.create_default_context(cafile=self.ca_file)
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        return context

    def connect(self, timeout: float = 5.0, rcvbuf: Optional[int] = None) -> socket.socket:
        """A connected client socket with a bounded timeout (TLS, handshake done, if the server speaks it).

        ``rcvbuf`` shrinks the receive buffer before connecting (for clients that never read).
        """
        if rcvbuf is None:
            sock = socket.create_connection((self.host, self.port), timeout=timeout)
        else:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.settimeout(timeout)
            sock.connect((self.host, self.port))
        if self.tls is not None:
            return self.tls.wrap_socket(sock, server_hostname=self.host)
        return sock

    @property
    def curl_args(self) -> List[str]:
        """What curl needs to trust this server (``--cacert`` over TLS; nothing otherwise)."""
        return ["--cacert", self.ca_file] if self.ca_file else []

    def http(self, timeout: float = 5.0) -> http.client.HTTPConnection:
        """An http.client connection of the right kind (HTTPS when the server speaks it)."""
        if self.tls is not None:
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=self.tls)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def call(self, fn: Callable[[], object], timeout: float = 5.0) -> object:
        """Run ``fn`` on the loop thread and return its result (to inspect state safely)."""
        done = threading.Event()
        box: List[object] = []

        def run() -> None:
            try:
                box.append(fn())
            except BaseException as exc:  # pragma: no cover - surfaced below
                box.append(exc)
            done.set()

        self.server.loop.call_soon_threadsafe(run)
        assert done.wait(timeout), "loop thread did not answer"
        if isinstance(box[0], BaseException):
            raise box[0]
        return box[0]

    def stop(self, graceful: bool = False, timeout: float = 15.0) -> None:
        if self.thread.is_alive():
            self.server.loop.call_soon_threadsafe(self.server.shutdown, graceful)
            self.thread.join(timeout)
        assert not self.thread.is_alive(), "server thread did not stop"


def copy_resources(destination: Path) -> Path:
    """A private copy of the sample site, so tests never write into the repo."""
    root = destination / "site"
    shutil.copytree(RESOURCES, root, ignore=shutil.ignore_patterns("upload_*.json", ".quota"))
    return root


@pytest.fixture
def site(tmp_path: Path) -> Path:
    return copy_resources(tmp_path)


@pytest.fixture
def make_server(site: Path, transport: str, tls_files: TLSFiles) -> Iterator[Callable[..., RunningServer]]:
    started: List[RunningServer] = []

    def make(wsgi_app: Optional[Callable[..., object]] = None, **overrides: object) -> RunningServer:
        """A server of ``Config(**overrides)``; with ``wsgi_app``, hosting that WSGI application (``--app``)."""
        options: dict = dict(host="127.0.0.1", port=0, root=site)
        if transport == "tls":
            options.update(tls_cert_file=tls_files.cert, tls_key_file=tls_files.key)
        if wsgi_app is not None:
            options.update(app="tests:app")
        options.update(overrides)
        server = Server(Config(**options), wsgi_app=wsgi_app)  # type: ignore[arg-type]
        server.listen()
        if logmod.access_log.enabled:  # a test that logs (access_log_to, JSON_ACCESS_LOG): as python -m reactor does
            server.loop.add_pass_callback(logmod.access_log.flush)
        thread = threading.Thread(target=server.serve_forever, name="reactor-loop", daemon=True)
        thread.start()
        running = RunningServer(server, thread, tls_files.client_context() if server.config.tls else None)
        if server.config.tls:
            running.ca_file = str(tls_files.ca_file)
        started.append(running)
        return running

    yield make
    for running in started:
        running.stop()


@pytest.fixture
def access_log_to(tmp_path: Path) -> Iterator[Callable[[str], Callable[[], List[str]]]]:
    """``lines = access_log_to("json")`` turns the process's access log on, into a file, for
    the servers made after it; ``lines()`` closes it (every line written) and returns them."""
    path = tmp_path / "access.log"

    def start(log_format: str) -> Callable[[], List[str]]:
        logmod.access_log.open(str(path), log_format=log_format)

        def lines() -> List[str]:
            logmod.access_log.close()
            return path.read_text(encoding="ascii").splitlines()

        return lines

    yield start
    logmod.access_log.close()
    logmod.access_log.format = "text"


@pytest.fixture(autouse=True)
def json_access_log(request: pytest.FixtureRequest) -> Iterator[None]:
    """In modules that set ``JSON_ACCESS_LOG = True`` (or in every module, with
    ``REACTOR_TEST_JSON_ACCESS_LOG=1``), the in-process servers log in the JSON format,
    and every response they log must give one line that ``json.loads`` reads, with its
    status and request id."""
    wanted = getattr(request.module, "JSON_ACCESS_LOG", False) or os.environ.get("REACTOR_TEST_JSON_ACCESS_LOG") == "1"
    if not wanted or logmod.access_log.enabled or "access_log_to" in request.fixturenames:
        yield
        return
    import json

    access = logmod.access_log
    path = request.getfixturevalue("tmp_path") / "json-access.log"
    records: List[logmod.AccessRecord] = []
    write = access.write

    def recording(record: logmod.Record) -> None:
        records.append(logmod.AccessRecord(*record))
        write(record)

    access.open(str(path), log_format="json")
    access.write = recording  # type: ignore[method-assign]
    try:
        yield
    finally:
        del access.write
        access.close()
        access.format = "text"
    lines = path.read_bytes().decode("ascii").splitlines()
    assert len(lines) == len(records), "%d responses logged, %d lines" % (len(records), len(lines))
    got = sorted((entry["request_id"], entry["status"]) for entry in map(json.loads, lines))
    assert got == sorted((record.request_id, record.status) for record in records)


@pytest.fixture
def server(make_server: Callable[..., RunningServer]) -> RunningServer:
    return make_server()


def stop_process(proc: "subprocess.Popen[bytes]", timeout_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if ``proc`` has not exited within ``timeout_s``."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout_s)


class CliServer:
    """``python -m reactor`` (or ``command``) as a child process; ``port`` is read from its startup line."""

    STARTUP = re.compile(rb"https?://[^\s/]+:(\d+)/")

    def __init__(
        self,
        args: List[str],
        cwd: Path,
        env: Optional[dict] = None,
        timeout: float = 15.0,
        command: Optional[List[str]] = None,
    ) -> None:
        self.proc = subprocess.Popen(
            [*(command or [sys.executable, "-m", "reactor"]), *args],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        self.output = b""
        self.port = 0
        deadline = time.monotonic() + timeout
        while not self.port:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.proc.poll() is not None:
                break
            ready, _, _ = select.select([self.proc.stderr], [], [], remaining)
            if ready:
                chunk = os.read(self.proc.stderr.fileno(), 4096)  # type: ignore[union-attr]
                if not chunk:
                    break
                self.output += chunk
                match = self.STARTUP.search(self.output)
                if match:
                    self.port = int(match.group(1))

    def read_available(self, timeout: float = 0.1) -> bytes:
        """All of stderr so far, waiting up to ``timeout`` for more (the process goes on)."""
        while select.select([self.proc.stderr], [], [], timeout)[0]:
            chunk = os.read(self.proc.stderr.fileno(), 65536)  # type: ignore[union-attr]
            if not chunk:
                break
            self.output += chunk
            timeout = 0
        return self.output

    def read_stderr(self, timeout: float = 10.0) -> bytes:
        """Everything written to stderr until the process exits (waits up to ``timeout``)."""
        try:
            _out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _out, err = self.proc.communicate()
        self.output += err
        return self.output

    def stop(self) -> None:
        stop_process(self.proc)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def run_cli(tmp_path: Path) -> Iterator[Callable[..., CliServer]]:
    started: List[CliServer] = []

    def run(*args: str, env: Optional[dict] = None) -> CliServer:
        cli = CliServer(list(args), cwd=REPO, env=env)
        started.append(cli)
        return cli

    yield run
    for cli in started:
        cli.stop()


# -- raw socket helpers -------------------------------------------------------------------


def half_close(sock: socket.socket) -> socket.socket:
    """End the client's sending side: FIN, or over TLS close_notify (waiting for the server's).

    Returns the socket to go on reading from (the plain one, once TLS is unwrapped).
    """
    if isinstance(sock, ssl.SSLSocket):
        return sock.unwrap()
    sock.shutdown(socket.SHUT_WR)
    return sock


def recv_until_closed(sock: socket.socket, limit: int = 64 * 1024 * 1024) -> bytes:
    """Read until the peer closes (or resets) the connection; bounded by the socket timeout."""
    chunks = []
    total = 0
    while total < limit:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


class RawClient:
    """A plain-socket HTTP/1.1 client for bytes no library would send.

    ``response()`` reads one response from the connection's buffer, so pipelined
    responses that arrive in one segment are returned one by one.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        #: A Host value the server accepts (its own address and port).
        try:
            self.host = "%s:%d" % sock.getpeername()[:2]
        except OSError:  # already disconnected
            self.host = ""

    def get(self, target: str, extra: str = "", version: str = "1.1") -> "RawClient":
        """Send a GET with a valid Host; ``extra`` holds more field lines with CRLFs."""
        return self.send(("GET %s HTTP/%s\r\nHost: %s\r\n%s\r\n" % (target, version, self.host, extra)).encode())

    def send(self, data: bytes) -> "RawClient":
        self.sock.sendall(data)
        return self

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed; buffered %r" % self.buf[:200])
        self.buf += chunk

    def response(self, head_only: bool = False) -> "tuple[int, dict, bytes]":
        """(status, fields, body) of the next response; fields lower-cased, last one wins.

        Raises EOFError if the connection closes first. ``head_only`` for HEAD.
        """
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        fields = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        if head_only or status in (204, 304) or 100 <= status < 200:
            return status, fields, b""
        length = int(fields.get("content-length", "0"))
        while len(self.buf) < length:
            self._fill()
        body, self.buf = self.buf[:length], self.buf[length:]
        return status, fields, body

    def at_eof(self) -> bool:
        """True if the server closes the connection (EOF or reset) with nothing more sent."""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return not self.buf
                self.buf += chunk
        except ConnectionResetError:
            return not self.buf

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def raw_to() -> Iterator[Callable[[RunningServer], RawClient]]:
    """``raw_to(running)`` opens a new RawClient to ``running``; all are closed afterwards."""
    clients: List[RawClient] = []

    def connect(running: RunningServer) -> RawClient:
        client = RawClient(running.connect())
        clients.append(client)
        return client

    yield connect
    for client in clients:
        client.close()


@pytest.fixture
def raw(server: RunningServer, raw_to: Callable[[RunningServer], RawClient]) -> Callable[[], RawClient]:
    """``raw()`` opens a new RawClient to the default ``server``."""
    return lambda: raw_to(server)


# -- small helpers shared by the test modules ----------------------------------------


def wait_for(predicate, timeout_s: float = 10.0, what: str = "condition"):
    """Poll ``predicate`` until it is true; fail after ``timeout_s`` (never a fixed sleep)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out waiting for %s" % what
        time.sleep(0.01)


def fetch(server, method, path, headers=None, timeout_s: float = 10.0, body=None):
    """One request on a fresh http.client connection (HTTPS if the server speaks it): (response, body)."""
    conn = server.http(timeout=timeout_s)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response, response.read()
    finally:
        conn.close()


def access_record(
    request_line: Optional[str] = "GET / HTTP/1.1",
    fields: tuple = (),
    status: int = 200,
    body_bytes: int = 5,
    started: float = 1_700_000_000.25,
    duration_s: float = 0.000412,
    **overrides: object,
):
    """A :class:`reactor.log.AccessRecord` as the connection makes one, its head made from
    ``request_line`` (none when it is None or not a request-line the parser would take)."""
    from reactor.abnf import REQUEST_LINE
    from reactor.events import RequestHead, TargetForm
    from reactor.log import AccessRecord

    head = None
    match = REQUEST_LINE.fullmatch(request_line or "")
    if match:  # what the parser would have made a head of
        method, target, _major, minor = match.groups()
        version = "1.0" if minor == "0" else "1.1"
        head = RequestHead(
            method, target, TargetForm.ORIGIN, target, None, version, tuple(fields), True, 0, False, False
        )
    values = dict(
        client="127.0.0.1",
        client_port=40000,
        started=started,
        finished=started + duration_s,
        request_line=request_line,
        head=head,
        status=status,
        body_bytes=body_bytes,
        request_body_bytes=0,
        tls_version=None,
        request_id="k7f3q9x2-1-1",
    )
    values.update(overrides)
    return AccessRecord(**values)

"""Limits and back-pressure: connection limit, EMFILE, backlog, the pool's bounded queue,
and clients that never read a large response.

Everything runs over loopback with bounded waits. Two tests drive a real
``python -m reactor`` process, to lower its descriptor limit (``prlimit``) and to read
its memory use (``/proc/<pid>/status``) without the test's own allocations in the way.
"""

from __future__ import annotations

import dataclasses
import errno
import http.client
import importlib
import logging
import os
import re
import resource
import select
import socket
import ssl
import subprocess
import sys
import threading
import time

import pytest

import reactor.server
from conftest import REPO, RawClient, RunningServer, wait_for
from reactor.cli import build_parser, config_from_args
from reactor.config import Config, default_max_connections
from reactor.connection import ConnState
from reactor.handlers import upload
from reactor.handlers.quota import LEDGER_NAME
from reactor.loop import EVENT_WRITE

BOTH_TRANSPORTS = True  # each test with a server runs over plain TCP and over TLS (conftest)

LARGE_FILE_BYTES = 32 * 1024 * 1024
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs /proc and prlimit")


def request_bytes(port: int, target: str = "/notes.txt", method: str = "GET") -> bytes:
    return b"%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (method.encode(), target.encode(), port)


def open_count(srv) -> int:
    return srv.call(lambda: len(srv.server.sessions))


# -- the connection limit --------------------------------------------------------------------


def test_past_max_connections_new_clients_get_503_with_retry_after(make_server):
    srv = make_server(max_connections=2)
    held = [srv.connect(), srv.connect()]
    wait_for(lambda: open_count(srv) == 2, what="two connections")
    if srv.tls is not None:  # no plain-text answer a TLS client could read: closed before the handshake
        with pytest.raises((ssl.SSLError, ConnectionError)):
            srv.connect()
    else:
        extra = RawClient(srv.connect())
        extra.send(request_bytes(srv.port))
        status, fields, _body = extra.response()
        assert status == 503
        assert fields["retry-after"] == "1"
        assert fields["connection"] == "close"
        assert extra.at_eof()
    # The held connections are still served, and a freed slot is used again.
    first = RawClient(held[0])
    assert first.send(request_bytes(srv.port)).response()[0] == 200
    held[1].close()
    wait_for(lambda: open_count(srv) == 1, what="the slot to free")
    again = RawClient(srv.connect())
    assert again.send(request_bytes(srv.port)).response()[0] == 200


def test_default_max_connections_follows_the_descriptor_limit():
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert Config().max_connections == default_max_connections()
    if soft != resource.RLIM_INFINITY:
        assert 16 <= default_max_connections() < soft
    # In a process with a low limit the default shrinks with it.
    code = (
        "import resource\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))\n"
        "from reactor.config import Config\n"
        "print(Config().max_connections)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, timeout=30, check=True)
    assert 16 <= int(out.stdout) < 256


def test_backlog_defaults_to_128_and_reaches_listen(make_server, monkeypatch):
    assert config_from_args(build_parser().parse_args([])).backlog == 128
    assert config_from_args(build_parser().parse_args(["--backlog", "7"])).backlog == 7
    seen = []
    real_listen = socket.socket.listen

    def listen(self, *args):
        seen.append(args)
        return real_listen(self, *args)

    monkeypatch.setattr(socket.socket, "listen", listen)
    make_server()
    make_server(backlog=7)
    assert seen == [(128,), (7,)]


def test_limit_options_reach_the_config():
    args = build_parser().parse_args("--max-connections 5 --pool-queue 3 --pool-size 2".split())
    config = config_from_args(args)
    assert (config.max_connections, config.pool_queue_max, config.pool_size) == (5, 3, 2)


# -- EMFILE ------------------------------------------------------------------------------------


class _OutOfDescriptors:
    """Stands in for the listening socket: every accept() fails with EMFILE."""

    def __init__(self, real: socket.socket) -> None:
        self.real = real
        self.calls = 0
        self.third_call = threading.Event()

    def fileno(self) -> int:
        return self.real.fileno()

    def accept(self):
        self.calls += 1
        if self.calls >= 3:
            self.third_call.set()
        raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))

    def close(self) -> None:
        self.real.close()


@pytest.mark.plain_only  # the accept path is the same for both; a TLS client would wait for its handshake
def test_emfile_on_accept_pauses_instead_of_spinning(make_server, monkeypatch, caplog):
    monkeypatch.setattr(reactor.server, "_ACCEPT_PAUSE_S", 0.05)
    caplog.set_level(logging.INFO, logger="reactor")
    srv = make_server()
    server = srv.server
    passes = []
    real_select = server.loop.selector.select

    def counting_select(timeout=None):
        passes.append(timeout)
        return real_select(timeout)

    fake = _OutOfDescriptors(server._listener)

    def inject():
        server.loop.selector.select = counting_select  # type: ignore[method-assign]
        server._pause_accepting()
        server._listener = fake
        server._resume_accepting()

    srv.call(inject)
    waiting = RawClient(srv.connect())  # sits in the backlog meanwhile
    waiting.send(request_bytes(srv.port))
    assert fake.third_call.wait(10)
    # Three accept attempts, 0.05 s apart. A spinning loop would have made thousands
    # of passes by now; a paused one makes a few per attempt.
    assert len(passes) < 60, len(passes)
    warnings = [r for r in caplog.records if "accept failed" in r.getMessage()]
    assert len(warnings) == 1  # once per episode, not once per attempt

    def restore():
        server._pause_accepting()
        server._listener = fake.real
        server._resume_accepting()

    srv.call(restore)
    assert waiting.response()[0] == 200
    wait_for(lambda: any("accepting again" in r.getMessage() for r in caplog.records), what="recovery log")


def _cpu_s(pid: int) -> float:
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _drain_stderr(cli) -> bytes:
    stderr = b""
    while select.select([cli.proc.stderr], [], [], 0)[0]:
        chunk = os.read(cli.proc.stderr.fileno(), 65536)
        if not chunk:
            break
        stderr += chunk
    return stderr


@linux_only
def test_real_descriptor_exhaustion_refuses_fast_without_spinning(run_cli, site):
    """At the descriptor limit new clients get 503 at once (the reserve descriptor), not a hang."""
    cli = run_cli("--port", "0", "-d", str(site), "--max-connections", "1000", "--log-level", "warning")
    assert cli.port, cli.output
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.prlimit(cli.proc.pid, resource.RLIMIT_NOFILE, (40, hard))
    # OPTIONS * needs no file, so only connections use descriptors.
    ping = b"OPTIONS * HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % cli.port
    clients = []
    for _ in range(60):
        sock = socket.create_connection(("127.0.0.1", cli.port), timeout=10)
        sock.sendall(ping)
        clients.append(sock)
    answered, refused, waiting = [], [], list(clients)
    # Every client is answered, served or refused, within a bounded time; measure the CPU.
    cpu_before, wall_before = _cpu_s(cli.proc.pid), time.monotonic()
    while waiting:
        ready, _, _ = select.select(waiting, [], [], 5.0)
        assert ready, "%d clients left hanging at the descriptor limit" % len(waiting)
        for sock in ready:
            status, fields, _ = RawClient(sock).response()
            waiting.remove(sock)
            if status == 204:
                answered.append(sock)
            else:
                assert status == 503 and fields["retry-after"] == "1"
                refused.append(sock)
    wall = time.monotonic() - wall_before
    assert answered and refused, "the limit should stop accepts part-way (%d answered)" % len(answered)
    assert wall < 3.0, "refusals took %.2f s" % wall
    cpu_used = _cpu_s(cli.proc.pid) - cpu_before
    # Idle at the limit: no spinning on the level-triggered listener.
    time.sleep(0.5)  # a measurement window, not a wait for the server
    idle_cpu = _cpu_s(cli.proc.pid) - cpu_before - cpu_used
    assert idle_cpu < 0.25, "server used %.2f s CPU in 0.5 s while out of descriptors" % idle_cpu
    # An upload and a GET on a connection already open: 503 with Retry-After, not 500.
    for request in (
        b"POST /upload HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
        b'Content-Length: 8\r\n\r\n{"n": 1}' % cli.port,
        b"GET /index.html HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % cli.port,
    ):
        client = RawClient(answered[0])
        client.send(request)
        status, fields, body = client.response()
        assert (status, fields.get("retry-after")) == (503, "1"), body
    stderr = _drain_stderr(cli)
    assert stderr.count(b"accept failed") == 1, stderr  # once per episode
    assert b"ERROR" not in stderr, stderr
    assert not [name for name in os.listdir(site / "uploads") if name not in (".gitkeep", LEDGER_NAME)]
    # Freeing descriptors lets new clients in, and uploads are stored again.
    for sock in answered + refused:
        sock.close()
    conn = wait_for(lambda: _upload_once(cli.port), what="an upload to succeed after descriptors free up")
    assert conn == 201
    cli.proc.terminate()
    assert cli.proc.wait(10) == 0


def _upload_once(port: int) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/upload", body=b'{"n": 2}', headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        return response.status if response.status == 201 else 0
    finally:
        conn.close()


# -- the worker pool's bounded queue -------------------------------------------------------------


def test_saturated_pool_answers_503_and_warns_once_per_episode(make_server, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="reactor")
    release = threading.Event()
    started = threading.Event()
    real_store = upload.store_upload

    def blocked_store(directory, body, quota=None):
        started.set()
        assert release.wait(10)
        return real_store(directory, body, quota)

    monkeypatch.setattr(upload, "store_upload", blocked_store)
    srv = make_server(pool_size=1, pool_queue_max=1)
    document = b'{"n": 1}'

    def post(conn):
        conn.request("POST", "/upload", body=document, headers={"Content-Type": "application/json"})

    def saturation_warnings():
        return [r for r in caplog.records if "saturated" in r.getMessage()]

    for episode in (1, 2):
        started.clear()
        release.clear()
        first = srv.http(timeout=10)
        post(first)  # occupies the only worker
        assert started.wait(10)
        for _ in range(3):
            other = srv.http(timeout=10)
            post(other)
            response = other.getresponse()
            response.read()
            assert response.status == 503
            assert response.getheader("Retry-After") == "1"
            other.request("GET", "/notes.txt")  # file reads use the pool too
            response = other.getresponse()
            response.read()
            assert response.status == 503
        assert len(saturation_warnings()) == episode
        release.set()
        response = first.getresponse()
        response.read()
        assert response.status == 201
        wait_for(lambda: not srv.call(lambda: srv.server.pool.saturated), what="the episode to end")
    stored = list((srv.root / "uploads").glob("upload_*.json"))
    assert len(stored) == 2  # refused uploads left nothing


# -- clients that never read a large response ----------------------------------------------------


def _stalled_client(srv, target: str = "/big.bin") -> socket.socket:
    sock = srv.connect(timeout=10, rcvbuf=4096)  # and never reads
    sock.sendall(request_bytes(srv.port, target))
    return sock


@pytest.mark.parametrize("sendfile", [True, False], ids=["sendfile", "pool-blocks"])
def test_never_reading_client_does_not_delay_others_and_buffers_are_bounded(make_server, sendfile):
    srv = make_server(sendfile=sendfile)
    with open(srv.root / "big.bin", "wb") as f:
        f.truncate(LARGE_FILE_BYTES)
    stalled = [_stalled_client(srv) for _ in range(3)]

    def blocked():  # responses waiting for the socket to drain, no read in flight
        return [
            c
            for c in srv.server.sessions.values()
            if c.state is ConnState.WRITING and c.transport._mask == EVENT_WRITE and not c.transport._block_pending
        ]

    wait_for(lambda: len(srv.call(blocked)) == 3, what="three stalled responses")
    started = time.monotonic()
    for _ in range(20):
        conn = srv.http(timeout=5)
        conn.request("GET", "/")
        response = conn.getresponse()
        assert response.status == 200 and response.read()
        conn.close()
    assert time.monotonic() - started < 5

    def queued_bytes():
        return [sum(len(item) for item in c.transport._outbox) for c in srv.server.sessions.values()]

    # What the server holds for a stalled client: at most two pool blocks (256 KiB each:
    # one draining, the next read ahead) plus the head, whatever the file size.
    assert max(srv.call(queued_bytes)) <= 2 * 256 * 1024 + 4096
    for sock in stalled:
        sock.close()


def _rss_bytes(pid: int) -> int:
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class _CliTarget:
    """What _stalled_client needs of a server started with run_cli."""

    def __init__(self, port: int, tls: "ssl.SSLContext | None") -> None:
        self.host, self.port, self.tls = "127.0.0.1", port, tls

    connect = RunningServer.connect
    http = RunningServer.http


@linux_only
@pytest.mark.parametrize("flags", [[], ["--no-sendfile"], ["tls"]], ids=["sendfile", "pool-blocks", "tls"])
def test_server_memory_stays_flat_with_clients_that_never_read(run_cli, site, flags, tls_files):
    with open(site / "big.bin", "wb") as f:
        f.truncate(LARGE_FILE_BYTES)
    tls = None
    if flags == ["tls"]:  # blocks encrypted on the loop: at most a block or two each
        flags = ["--tls-cert", str(tls_files.cert), "--tls-key", str(tls_files.key)]
        tls = tls_files.client_context()
    cli = run_cli("--port", "0", "-d", str(site), "--log-level", "warning", *flags)
    assert cli.port, cli.output
    target = _CliTarget(cli.port, tls)
    # Warm up: one complete download, so allocator pools and the worker threads exist.
    warm = target.http(timeout=30)
    warm.request("GET", "/big.bin")
    response = warm.getresponse()
    assert len(response.read()) == LARGE_FILE_BYTES
    before = _rss_bytes(cli.proc.pid)
    stalled = [_stalled_client(target) for _ in range(4)]
    for sock in stalled:  # each has started to receive its 32 MiB
        assert select.select([sock], [], [], 10)[0]
    conn = target.http(timeout=5)
    conn.request("GET", "/")
    response = conn.getresponse()
    assert response.status == 200 and response.read()
    growth = _rss_bytes(cli.proc.pid) - before
    # Holding even one file whole would add 32 MiB; four would add 128 MiB.
    assert growth < 8 * 1024 * 1024, "RSS grew by %d bytes" % growth
    for sock in stalled:
        sock.close()


# -- the docs page's table ------------------------------------------------------------------------

ROBUSTNESS_DOC = REPO / "docs" / "robustness.md"
#: Every limit and timeout this issue covers must appear in the table.
DOCUMENTED_FIELDS = {
    "header_timeout_s",
    "body_timeout_s",
    "keepalive_timeout_s",
    "send_timeout_s",
    "linger_timeout_s",
    "shutdown_timeout_s",
    "keepalive_max_requests",
    "max_connections",
    "backlog",
    "pool_size",
    "pool_queue_max",
    "max_request_line_bytes",
    "max_header_section_bytes",
    "max_field_lines",
    "max_body_bytes",
}


def _table_rows(text: str, first_cell: str) -> list:
    rows = []
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and re.match(first_cell, cells[0]):
            rows.append([cell.strip("`") for cell in cells])
    return rows


def test_robustness_doc_matches_the_code():
    text = ROBUSTNESS_DOC.read_text(encoding="utf-8")
    parser = build_parser()
    options = {option: action for action in parser._actions for option in action.option_strings}
    defaults = Config(max_connections=1)
    seen = set()
    for option, field, default, _effect in _table_rows(text, r"`--|\(none\)"):
        if field.startswith("(none"):  # an option with no Config field (the supervisor's --worker-timeout)
            assert option in options and not hasattr(defaults, options[option].dest), option
            assert float(parser.get_default(options[option].dest)) == float(default), option
            continue
        assert field in {f.name for f in dataclasses.fields(Config)}, field
        seen.add(field)
        if option != "(none)":
            assert option in options, option
            if getattr(defaults, field) is None:  # derived from another setting, said in words
                assert parser.get_default(options[option].dest) is None and not default[:1].isdigit(), option
                continue
            assert parser.get_default(options[option].dest) is not None
        if field == "max_connections":
            assert "ulimit -n" in default
            continue
        assert float(default) == getattr(defaults, field), (field, default)
        if option != "(none)":
            assert float(parser.get_default(options[option].dest)) == float(default), option
    assert DOCUMENTED_FIELDS <= seen, DOCUMENTED_FIELDS - seen
    constants = _table_rows(text, r"`(server|connection|transport|loop)\.[_A-Z]")
    assert len(constants) == 5
    for name, value, _purpose in constants:
        module_name, _, attribute = name.partition(".")
        module = importlib.import_module("reactor." + module_name)
        assert float(value) == getattr(module, attribute), name

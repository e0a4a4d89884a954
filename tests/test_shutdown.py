"""Graceful stop: stop accepting, close idle connections, finish in-flight requests with
``Connection: close``, exit 0 within the shutdown timeout; a second signal exits at once.

In-process tests call ``Server.shutdown`` on the loop thread; the others send real
signals to ``python -m reactor`` and check what clients and the disk saw.
"""

from __future__ import annotations

import http.client
import json
import os
import select
import signal
import socket
import threading
import time

import pytest

from conftest import RawClient, wait_for
from reactor.handlers import upload


def begin_stop(srv) -> None:
    srv.server.loop.call_soon_threadsafe(srv.server.shutdown, True)


def refused(port: int) -> bool:
    """True once nothing listens on ``port``.

    A probe that reached the backlog just as the listener closed is reset rather than
    refused; that also means the listener is gone.
    """
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except (ConnectionRefusedError, ConnectionResetError):
        return True
    return False


@pytest.fixture
def blocked_uploads(monkeypatch):
    """Make upload jobs wait for ``release``; ``started`` is set when one is running."""
    gate = type("Gate", (), {})()
    gate.started = threading.Event()
    gate.release = threading.Event()
    real_store = upload.store_upload

    def store(directory, body, quota=None):
        gate.started.set()
        assert gate.release.wait(10)
        return real_store(directory, body, quota)

    monkeypatch.setattr(upload, "store_upload", store)
    yield gate
    gate.release.set()


def start_upload(port: int, body: bytes = b'{"in": "flight"}') -> http.client.HTTPConnection:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", "/upload", body=body, headers={"Content-Type": "application/json"})
    return conn


# -- in process --------------------------------------------------------------------------------


def test_stop_closes_idle_finishes_in_flight_and_refuses_new(make_server, blocked_uploads):
    srv = make_server()
    idle = RawClient(srv.connect())
    assert idle.send(b"GET /notes.txt HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % srv.port).response()[0] == 200
    busy = start_upload(srv.port)
    assert blocked_uploads.started.wait(10)
    begin_stop(srv)
    assert idle.at_eof()  # the idle keep-alive connection is closed at once
    assert refused(srv.port)  # nothing new is accepted
    assert srv.thread.is_alive()  # still finishing the upload
    blocked_uploads.release.set()
    response = busy.getresponse()
    answer = json.loads(response.read())
    assert response.status == 201
    assert response.getheader("Connection") == "close"
    assert (srv.root / "uploads" / answer["file"]).read_bytes() == b'{"in": "flight"}'
    srv.thread.join(10)
    assert not srv.thread.is_alive()


def test_request_arriving_on_an_open_connection_during_the_stop_is_answered_with_close(make_server):
    srv = make_server()
    client = RawClient(srv.connect())
    client.send(b"GET /notes.txt HTTP/1.1\r\n")  # in flight: its header section has begun
    wait_for(lambda: srv.call(lambda: any(c.parser.in_message for c in srv.server.sessions.values())))
    begin_stop(srv)
    wait_for(lambda: refused(srv.port), what="the listener to close")
    client.send(b"Host: 127.0.0.1:%d\r\n\r\n" % srv.port)
    status, fields, _body = client.response()
    assert status == 200
    assert fields["connection"] == "close"
    assert client.at_eof()
    srv.thread.join(10)
    assert not srv.thread.is_alive()


def test_connections_waiting_in_the_backlog_get_503(make_server):
    srv = make_server()
    srv.call(srv.server._pause_accepting)
    waiting = RawClient(srv.connect())  # completes in the kernel; never accepted
    waiting.send(b"GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % srv.port)
    begin_stop(srv)
    status, fields, _body = waiting.response()
    assert status == 503
    assert fields["retry-after"] == "1"
    assert waiting.at_eof()
    srv.thread.join(10)
    assert not srv.thread.is_alive()


def test_stop_gives_up_on_unfinished_requests_after_the_timeout(make_server):
    srv = make_server(shutdown_timeout_s=0.3)
    stuck = srv.connect()
    stuck.sendall(b"GET / HTTP/1.1\r\n")  # and never finishes it
    wait_for(lambda: srv.call(lambda: any(c.parser.in_message for c in srv.server.sessions.values())))
    begin_stop(srv)
    srv.thread.join(10)
    assert not srv.thread.is_alive()
    stuck.settimeout(5)
    try:
        assert stuck.recv(100) == b""
    except ConnectionResetError:
        pass


def test_a_stuck_worker_job_does_not_hold_the_stop(make_server, blocked_uploads):
    srv = make_server(shutdown_timeout_s=0.3)
    start_upload(srv.port)
    assert blocked_uploads.started.wait(10)
    begin_stop(srv)
    srv.thread.join(10)
    assert not srv.thread.is_alive()
    assert srv.server.workers_finished is False
    blocked_uploads.release.set()


# -- real processes and real signals ----------------------------------------------------------


def wait_for_output(cli, needle: bytes, timeout_s: float = 10.0) -> None:
    """Read the server's stderr (bounded) until ``needle`` appears."""
    deadline = time.monotonic() + timeout_s
    while needle not in cli.output:
        remaining = deadline - time.monotonic()
        assert remaining > 0, "no %r in %r" % (needle, cli.output[-2000:])
        if select.select([cli.proc.stderr], [], [], remaining)[0]:
            chunk = os.read(cli.proc.stderr.fileno(), 65536)
            assert chunk, "server exited: %r" % cli.output[-2000:]
            cli.output += chunk


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_finishes_the_request_in_flight_and_exits_0(run_cli, site, signum):
    cli = run_cli("--port", "0", "-d", str(site), "--shutdown-timeout", "30", "--trace")
    assert cli.port, cli.output
    sock = socket.create_connection(("127.0.0.1", cli.port), timeout=10)
    client = RawClient(sock)
    client.send(b"GET /notes.txt HTTP/1.1\r\n")
    wait_for_output(cli, b"#1 state idle -> reading-headers")  # accepted and in flight
    idle = RawClient(socket.create_connection(("127.0.0.1", cli.port), timeout=10))
    assert idle.send(b"OPTIONS * HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % cli.port).response()[0] == 204
    cli.proc.send_signal(signum)
    wait_for_output(cli, b"received; finishing in-flight requests")
    assert idle.at_eof()
    assert cli.proc.poll() is None  # waiting for the request in flight
    client.send(b"Host: 127.0.0.1:%d\r\n\r\n" % cli.port)
    status, fields, _body = client.response()
    assert status == 200 and fields["connection"] == "close"
    assert cli.proc.wait(10) == 0


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_second_signal_exits_at_once(run_cli, site, signum):
    cli = run_cli("--port", "0", "-d", str(site), "--shutdown-timeout", "60", "--trace")
    assert cli.port, cli.output
    stuck = socket.create_connection(("127.0.0.1", cli.port), timeout=10)
    stuck.sendall(b"GET / HTTP/1.1\r\n")  # keeps the graceful stop waiting
    wait_for_output(cli, b"#1 state idle -> reading-headers")
    cli.proc.send_signal(signum)
    wait_for_output(cli, b"received; finishing in-flight requests")
    assert cli.proc.poll() is None
    cli.proc.send_signal(signum)
    assert cli.proc.wait(5) == 128 + signum  # far sooner than the 60 s shutdown timeout
    stuck.close()


def test_sigterm_during_a_load_of_uploads_loses_none(run_cli, site):
    cli = run_cli("--port", "0", "-d", str(site), "--log-level", "warning", "--shutdown-timeout", "10")
    assert cli.port, cli.output
    created: dict = {}
    closing = []
    lock = threading.Lock()

    def uploader(worker: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", cli.port, timeout=15)
        for n in range(100_000):
            body = json.dumps({"worker": worker, "n": n, "pad": "y" * 20_000}).encode()
            try:
                conn.request("POST", "/upload", body=body, headers={"Content-Type": "application/json"})
                response = conn.getresponse()
                answer = response.read()
            except (OSError, http.client.HTTPException):
                conn.close()
                try:  # the server closed an idle connection; is it still accepting?
                    conn = http.client.HTTPConnection("127.0.0.1", cli.port, timeout=15)
                    conn.connect()
                    continue
                except OSError:
                    return  # refused: the server has stopped accepting
            with lock:
                if response.status == 201:
                    created[json.loads(answer)["file"]] = body
                if response.getheader("Connection") == "close":
                    closing.append(response.status)
            if response.getheader("Connection") == "close":
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", cli.port, timeout=15)

    threads = [threading.Thread(target=uploader, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    wait_for(lambda: len(created) >= 100, timeout_s=60, what="100 uploads")
    # One upload surely in flight at the signal: the server has read its head (it said 100
    # Continue) and waits for the body. The uploaders may all sit between two requests.
    in_flight = RawClient(socket.create_connection(("127.0.0.1", cli.port), timeout=15))
    last = json.dumps({"in": "flight", "pad": "z" * 20_000}).encode()
    in_flight.send(
        b"POST /upload HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n" % (in_flight.host.encode(), len(last))
    )
    assert in_flight.response()[0] == 100
    cli.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: refused(cli.port), what="the listener to close")
    status, fields, answer = in_flight.send(last).response()
    assert status == 201 and fields["connection"] == "close"
    created[json.loads(answer)["file"]] = last
    assert cli.proc.wait(20) == 0
    for thread in threads:
        thread.join(20)
        assert not thread.is_alive()
    uploads = site / "uploads"
    for name, body in created.items():  # every 201 has its file, byte for byte
        assert (uploads / name).read_bytes() == body
    for path in uploads.glob("upload_*.json"):  # and every file is complete JSON
        json.loads(path.read_bytes())
    assert not list(uploads.glob(".upload-*"))  # no write was cut short
    assert all(status in (201, 503) for status in closing), closing

"""Timeouts over loopback: slowloris, stalled bodies, idle keep-alive, clients that stop reading.

Every test configures small timeouts (a fraction of a second) and then waits on the
socket, with a bounded timeout, for the 408 or the end of stream; nothing sleeps a
fixed time. The last tests check the timer heap stays small on a busy long-lived
connection and under connection churn (one timer per connection, lazy re-arm, and
compaction of cancelled entries).
"""

from __future__ import annotations

import http.client
import logging
import select
import socket
import time

import pytest

from conftest import RawClient, wait_for
from reactor.cli import build_parser, config_from_args
from reactor.connection import ConnState
from reactor.loop import EventLoop

BOTH_TRANSPORTS = True  # each test with a server runs over plain TCP and over TLS (conftest)

SHORT_S = 0.3
LARGE_FILE_BYTES = 32 * 1024 * 1024


def host(srv) -> bytes:
    return b"127.0.0.1:%d" % srv.port


def closed_quietly(sock: socket.socket) -> bool:
    """True if the server ends the stream without sending a byte."""
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True


def get_ok(conn: http.client.HTTPConnection) -> None:
    conn.request("GET", "/")
    response = conn.getresponse()
    response.read()
    assert response.status == 200


# -- header section, message body, idle --------------------------------------------------


@pytest.mark.plain_only  # select() on the raw socket: over TLS a session ticket would wake it
def test_slowloris_is_cut_off_while_a_normal_client_is_served(make_server):
    srv = make_server(header_timeout_s=SHORT_S)
    slow = srv.connect()
    # One byte of the header section after every request of the normal client: the
    # slow client keeps "making progress", which must not extend its deadline.
    dribble = b"GET / HTTP/1.1\r\nHost: " + host(srv) + b"\r\nX-Slow: " + b"a" * 4000
    normal = srv.http(timeout=5)
    served = sent = 0
    deadline = time.monotonic() + 10
    while not select.select([slow], [], [], 0)[0]:
        assert time.monotonic() < deadline, "the slow client was never cut off"
        if sent < len(dribble):
            try:
                slow.send(dribble[sent : sent + 1])
                sent += 1
            except OSError:
                break
        get_ok(normal)
        served += 1
    client = RawClient(slow)
    status, fields, _body = client.response()
    assert status == 408
    assert fields["connection"] == "close"
    assert client.at_eof()
    assert served >= 2  # others were answered while the slow client dribbled
    get_ok(normal)


def test_header_section_deadline_counts_from_the_first_byte(make_server):
    srv = make_server(header_timeout_s=SHORT_S, keepalive_timeout_s=30)
    sock = srv.connect()
    sock.sendall(b"GET / HTTP/1.1\r\n")
    status, _fields, _body = RawClient(sock).response()
    assert status == 408


def test_stalled_message_body_gets_408_and_close(make_server):
    srv = make_server(body_timeout_s=SHORT_S, header_timeout_s=30)
    sock = srv.connect()
    sock.sendall(
        b"POST /upload HTTP/1.1\r\nHost: " + host(srv) + b"\r\nContent-Type: application/json\r\n"
        b'Content-Length: 100\r\n\r\n{"partial": '
    )
    client = RawClient(sock)
    status, fields, _body = client.response()
    assert status == 408
    assert fields["connection"] == "close"
    assert client.at_eof()
    assert list((srv.root / "uploads").glob("upload_*")) == []


def test_body_progress_extends_the_deadline(make_server):
    srv = make_server(body_timeout_s=30, header_timeout_s=30, min_body_rate=0)
    body = b'{"a": 1, "b": 22222222}'
    sock = srv.connect()
    sock.sendall(
        b"POST /upload HTTP/1.1\r\nHost: " + host(srv) + b"\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body) + body[:5]
    )

    def reading_body():
        conns = list(srv.server.sessions.values())
        return conns and conns[0].state is ConnState.READING_BODY and conns[0].timer.when

    first = wait_for(lambda: srv.call(reading_body), what="the body to be read")
    sock.sendall(body[5:7])
    wait_for(lambda: (srv.call(reading_body) or 0) > first, what="the deadline to move")
    sock.sendall(body[7:])
    status, _fields, _body = RawClient(sock).response()
    assert status == 201


def test_idle_keep_alive_connection_is_closed_quietly(make_server):
    srv = make_server(keepalive_timeout_s=SHORT_S)
    sock = srv.connect()
    client = RawClient(sock)
    client.send(b"GET / HTTP/1.1\r\nHost: " + host(srv) + b"\r\n\r\n")
    status, fields, _body = client.response()
    assert status == 200 and "keep-alive" in fields
    assert closed_quietly(sock)  # no 408: an idle client did nothing wrong
    wait_for(lambda: not srv.call(lambda: len(srv.server.sessions)), what="the table to empty")


def test_connection_that_never_sends_is_closed_quietly(make_server):
    srv = make_server(keepalive_timeout_s=SHORT_S)
    assert closed_quietly(srv.connect())


# -- clients that stop reading -------------------------------------------------------------


@pytest.mark.parametrize("sendfile", [True, False], ids=["sendfile", "pool-blocks"])
def test_client_that_stops_reading_is_closed_after_send_timeout(make_server, caplog, sendfile):
    srv = make_server(send_timeout_s=SHORT_S, sendfile=sendfile)
    with open(srv.root / "big.bin", "wb") as f:
        f.truncate(LARGE_FILE_BYTES)
    caplog.set_level(logging.INFO, logger="reactor")
    sock = srv.connect(rcvbuf=4096)
    sock.sendall(b"GET /big.bin HTTP/1.1\r\nHost: " + host(srv) + b"\r\n\r\n")
    wait_for(lambda: not srv.call(lambda: len(srv.server.sessions)), what="the non-reader to be closed")
    assert any("stopped reading" in r.getMessage() for r in caplog.records)
    sock.close()


# -- configuration -------------------------------------------------------------------------


def test_every_timeout_is_a_command_line_option():
    args = build_parser().parse_args(
        "--header-timeout 0.1 --body-timeout 0.2 --keepalive-timeout 0.3 "
        "--send-timeout 0.4 --shutdown-timeout 0.5".split()
    )
    config = config_from_args(args)
    assert (
        config.header_timeout_s,
        config.body_timeout_s,
        config.keepalive_timeout_s,
        config.send_timeout_s,
        config.shutdown_timeout_s,
    ) == (0.1, 0.2, 0.3, 0.4, 0.5)


def test_default_timeouts_match_the_issue():
    config = config_from_args(build_parser().parse_args([]))
    assert config.header_timeout_s == 10
    assert config.body_timeout_s == 30
    assert config.keepalive_timeout_s == 30
    assert config.send_timeout_s == 60
    assert config.shutdown_timeout_s == 10


def test_header_timeout_flag_reaches_the_running_server(run_cli, site):
    cli = run_cli("--port", "0", "-d", str(site), "--header-timeout", str(SHORT_S))
    assert cli.port, cli.output
    sock = socket.create_connection(("127.0.0.1", cli.port), timeout=5)
    sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1")
    status, _fields, _body = RawClient(sock).response()
    assert status == 408
    sock.close()


# -- the timer heap stays bounded ----------------------------------------------------------


def test_busy_keep_alive_connection_keeps_the_timer_heap_small(make_server):
    # Timeouts short enough to fire and re-arm many times during the run.
    srv = make_server(keepalive_timeout_s=0.2, header_timeout_s=0.05, keepalive_max_requests=100_000)
    conn = srv.http(timeout=5)
    most = 0
    for i in range(1500):
        get_ok(conn)
        if i % 100 == 0:
            most = max(most, srv.call(lambda: srv.server.loop.pending_timers))
    assert most <= 8, most


def test_connection_churn_does_not_pile_up_cancelled_timers(make_server):
    srv = make_server()
    # A connection mid-header holds the earliest deadline, so cancelled entries behind
    # it cannot simply be popped off the top of the heap.
    holder = srv.connect()
    holder.sendall(b"GET / HTTP/1.1\r\n")
    wait_for(lambda: srv.call(lambda: srv.server.loop.pending_timers), what="the holder's timer")
    request = b"GET /notes.txt HTTP/1.1\r\nHost: " + host(srv) + b"\r\n\r\n"
    for _ in range(600):
        sock = srv.connect()
        client = RawClient(sock)
        client.send(request)
        assert client.response()[0] == 200
        sock.close()  # the server sees EOF while IDLE and cancels a 30 s timer
    wait_for(lambda: srv.call(lambda: len(srv.server.sessions)) == 1, what="the churn to close")
    loop = srv.server.loop
    # Each connection cancelled timers 10-30 s in the future; without compaction they
    # would all still be in the heap (more than 600).
    assert srv.call(lambda: loop.pending_timers) <= 140


def test_loop_compacts_cancelled_timers_and_keeps_the_live_ones():
    loop = EventLoop()
    fired = []
    try:
        far = loop.time() + 3600
        handles = [loop.call_at(far + i, fired.append, i) for i in range(1000)]
        for handle in handles[:900]:
            handle.cancel()
            handle.cancel()  # twice is harmless
        assert loop.pending_timers <= 2 * 100 + 1
        assert 0 <= loop.cancelled_timers <= loop.pending_timers // 2 + 1
        due = [loop.call_at(0, fired.append, "due-%d" % i) for i in range(3)]
        due[1].cancel()
        loop.run_once()
        assert fired == ["due-0", "due-2"]
        for handle in due:
            handle.cancel()  # after firing: must not disturb the count
        for handle in handles[900:]:
            handle.cancel()
        assert 0 <= loop.cancelled_timers <= loop.pending_timers
        loop.call_at(0, fired.append, "last")
        loop.run_once()
        assert fired[-1] == "last"
        assert loop.pending_timers <= 65 and loop.cancelled_timers == loop.pending_timers
    finally:
        loop.close()

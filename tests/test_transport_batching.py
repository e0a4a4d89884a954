"""write(more=True): the responses to pipelined requests leave the transport in one send."""

from __future__ import annotations

import socket

import pytest

from conftest import recv_until_closed
from reactor.loop import EventLoop
from reactor.stats import Stats
from reactor.transport import _DEFER_BYTES, Transport

JSON_ACCESS_LOG = True  # every response these tests provoke must log one line json.loads reads (conftest)


@pytest.fixture
def pair():
    loop = EventLoop()
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.settimeout(5)
    transport = Transport(loop, ours, None, Stats(), None, 1, "peer", sendfile=False)
    yield transport, theirs
    transport.close()
    theirs.close()
    loop.close()


def nothing_sent(peer: socket.socket) -> bool:
    peer.setblocking(False)
    try:
        peer.recv(1)
    except BlockingIOError:
        return True
    finally:
        peer.settimeout(5)
    return False


def test_kept_back_bytes_leave_with_the_next_write(pair):
    transport, peer = pair
    transport.write(b"first ", more=True)
    transport.write(b"second ", more=True)
    assert nothing_sent(peer) and not transport.writing()  # the exchange may go on to the next request
    transport.write(b"third")
    assert peer.recv(100) == b"first second third"


def test_flush_sends_what_was_kept_back(pair):
    transport, peer = pair
    transport.write(b"only", more=True)
    assert nothing_sent(peer)
    transport.flush()
    assert peer.recv(100) == b"only" and not transport.writing()
    transport.flush()  # nothing kept back: nothing happens
    assert nothing_sent(peer)


def test_no_more_than_the_bound_is_kept_back(pair):
    transport, peer = pair
    block = b"x" * (_DEFER_BYTES // 2)
    transport.write(block, more=True)
    transport.write(block, more=True)
    assert nothing_sent(peer)
    transport.write(b"y", more=True)  # past the bound: everything goes now
    got = b""
    while len(got) < len(block) * 2 + 1:
        got += peer.recv(1 << 20)
    assert got == block * 2 + b"y"


def test_nothing_is_kept_back_behind_bytes_the_socket_did_not_take(pair):
    """A client that does not read still holds up the exchange: writing stays true."""
    transport, peer = pair
    big = b"z" * (8 << 20)  # more than the socket buffers take
    transport.write(big)
    assert transport.writing()
    transport.write(b"small", more=True)
    assert transport.writing()


def test_close_sends_what_was_kept_back(pair):
    transport, peer = pair
    transport.write(b"last words", more=True)
    transport.close()
    assert peer.recv(100) == b"last words"


# -- through a real server ---------------------------------------------------------------


def _batch(port: int, names, tail: bytes = b"") -> bytes:
    host = b"127.0.0.1:%d" % port
    return b"".join(b"GET /%s HTTP/1.1\r\nHost: %s\r\n\r\n" % (name.encode(), host) for name in names) + tail


def test_a_bad_request_inside_a_batch_comes_after_the_good_answers(server, raw):
    client = raw()
    client.send(_batch(server.port, ["sample.txt", "notes.txt"], b"GET /\x01 HTTP/1.1\r\n\r\n"))
    for name in ("sample.txt", "notes.txt"):
        status, _fields, body = client.response()
        assert status == 200 and body == (server.root / name).read_bytes()
    status, fields, _body = client.response()
    assert status == 400 and fields["connection"] == "close"
    assert client.at_eof()


def test_a_batch_followed_by_the_end_of_stream_is_answered_whole(server):
    sock = server.connect()
    sock.sendall(_batch(server.port, ["sample.txt"] * 5))
    sock.shutdown(socket.SHUT_WR)  # FIN right after the batch: the server reads both at once
    data = recv_until_closed(sock)
    sock.close()
    assert data.count(b"HTTP/1.1 200 OK") == 5
    assert data.endswith((server.root / "sample.txt").read_bytes())

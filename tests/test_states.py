"""The connection state machine: the transition table and the one place that enforces it."""

from __future__ import annotations

import socket

import pytest

from reactor.connection import NEXT, Collaborators, Connection, ConnState, InvalidTransition
from reactor.loop import EVENT_READ, EVENT_WRITE
from reactor.sessions import SessionTable
from reactor.stats import Stats

JSON_ACCESS_LOG = True  # every response these tests provoke must log one line json.loads reads (conftest)


def test_every_state_has_an_entry_and_closed_and_upgraded_are_terminal():
    assert set(NEXT) == set(ConnState)
    assert NEXT[ConnState.CLOSED] == frozenset()
    assert NEXT[ConnState.UPGRADED] == frozenset()  # the transport has a new owner: nothing more here
    assert [state for state, targets in NEXT.items() if ConnState.UPGRADED in targets] == [ConnState.WRITING]
    for state, targets in NEXT.items():
        assert targets <= set(ConnState)
        if state not in (ConnState.CLOSED, ConnState.UPGRADED):
            assert ConnState.CLOSED in targets  # any live connection can be closed


def test_every_state_is_reachable_from_the_first():
    seen = {ConnState.HANDSHAKING}
    frontier = [ConnState.HANDSHAKING]
    while frontier:
        for target in NEXT[frontier.pop()]:
            if target not in seen:
                seen.add(target)
                frontier.append(target)
    assert seen == set(ConnState)


class _App:
    def route(self, conn, request):
        raise AssertionError("no request is routed here")


@pytest.fixture
def conn(conn_and_peer):
    """A started Connection over a socketpair, and the list of sessions that left the table."""
    connection, closed, _peer = conn_and_peer
    return connection, closed


@pytest.fixture
def conn_and_peer():
    from reactor.config import Config
    from reactor.loop import EventLoop
    from reactor.transport import Transport

    loop = EventLoop()
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    closed = []

    class Table(SessionTable):
        def discard(self, session):
            closed.append(session)  # what leaves the table, in order
            super().discard(session)

    sessions = Table()
    ctx = Collaborators(Config(), loop, None, Stats(), None, sessions)
    ctx.app = _App()
    connection = Connection(ctx, Transport(loop, ours, None, ctx.stats, None, 1, "test", False), 1)
    sessions.add(connection)
    connection.start()
    yield connection, closed, theirs
    connection.transport.close()
    theirs.close()
    loop.close()


@pytest.mark.parametrize("old", list(ConnState))
@pytest.mark.parametrize("new", list(ConnState))
def test_set_state_allows_exactly_the_table(conn, old, new):
    conn, _closed = conn
    conn.state = old  # place it directly; only set_state's checking is under test
    if old is ConnState.CLOSED:
        conn.transport.close()
    if new is ConnState.READING_BODY:
        from reactor.connection import Request

        conn.request = Request(None, None)
    if new in NEXT[old]:
        conn.set_state(new)
        assert conn.state is new
    else:
        with pytest.raises(InvalidTransition):
            conn.set_state(new)
        assert conn.state is old


def test_interest_follows_state(conn_and_peer):
    """The exchange says whether it wants input; the transport adds write interest while bytes wait."""
    conn, _closed, peer = conn_and_peer
    selector = conn.loop.selector
    sock = conn.transport.sock
    assert conn.state is ConnState.IDLE  # plain TCP is ready at once
    assert selector.get_key(sock).events == EVENT_READ  # IDLE reads
    conn.set_state(ConnState.READING_HEADERS)
    conn.set_state(ConnState.RESPONDING)
    conn._run()  # the pool is making the response: no more input is taken
    assert selector.get_key(sock).events == EVENT_READ  # but the interest's drop waits for a readable socket
    peer.sendall(b"GET /pipelined HTTP/1.1\r\n")
    conn.loop.run_once()  # readable while nobody reads: dropped now (back-pressure), the bytes left in the kernel
    with pytest.raises(KeyError):
        selector.get_key(sock)
    assert conn.state is ConnState.RESPONDING and conn.parser.buffered_bytes() == 0
    assert sock.recv(100, socket.MSG_PEEK) == b"GET /pipelined HTTP/1.1\r\n"
    conn.transport._outbox.append(b"x")
    conn.transport._update_interest()
    assert selector.get_key(sock).events == EVENT_WRITE
    conn.set_state(ConnState.WRITING)
    conn._run()  # the client must read first: write interest only, no input taken meanwhile
    assert conn.state is ConnState.WRITING
    assert selector.get_key(sock).events == EVENT_WRITE
    conn.transport._outbox.clear()


def test_a_response_made_before_the_client_sends_more_costs_no_interest_change(conn_and_peer, monkeypatch):
    """IDLE -> RESPONDING -> IDLE with a quiet client leaves the selector as it was."""
    conn, _closed, _peer = conn_and_peer
    selector = conn.loop.selector
    calls = []
    for name in ("register", "modify", "unregister"):
        real = getattr(selector, name)
        monkeypatch.setattr(selector, name, lambda *a, real=real, name=name: calls.append(name) or real(*a))
    conn.set_state(ConnState.READING_HEADERS)
    conn.set_state(ConnState.RESPONDING)
    conn._run()
    conn.transport.set_reading(True)  # what the return to IDLE asks
    assert calls == []
    assert selector.get_key(conn.transport.sock).events == EVENT_READ


def test_close_unregisters_and_reports_once(conn):
    conn, closed = conn
    conn.close()
    conn.close()
    assert conn.state is ConnState.CLOSED
    assert closed == [conn]
    assert conn.transport.sock.fileno() == -1
    assert all(key.fileobj is not conn.transport.sock for key in conn.loop.selector.get_map().values())
    assert conn.transport.protocol is None  # no reference cycle is left for the collector


def test_closed_connections_are_freed_without_the_cycle_collector(make_server):
    """A closed connection, its transport and its timer hold no reference cycle: reference
    counting frees them at once (with many connections the cyclic collector runs late)."""
    import gc

    from conftest import fetch, wait_for

    running = make_server()
    fetch(running, "GET", "/sample.txt")  # warm-up: caches and worker threads exist
    gc.collect()
    gc.disable()
    try:
        for _ in range(20):
            response, _body = fetch(running, "GET", "/sample.txt", {"Connection": "close"})
            assert response.status == 200
        wait_for(lambda: not running.call(lambda: len(running.server.sessions)), what="every connection to close")
        alive = running.call(lambda: sum(1 for o in gc.get_objects() if isinstance(o, Connection)))
    finally:
        gc.enable()
    assert alive == 0, "%d closed connections wait for the cycle collector" % alive

"""The connection state machine: the transition table and the one place that enforces it."""

from __future__ import annotations

import socket

import pytest

from reactor.connection import NEXT, ConnState, Connection, InvalidTransition
from reactor.loop import EVENT_READ, EVENT_WRITE
from reactor.stats import Stats


def test_every_state_has_an_entry_and_closed_is_terminal():
    assert set(NEXT) == set(ConnState)
    assert NEXT[ConnState.CLOSED] == frozenset()
    for state, targets in NEXT.items():
        assert targets <= set(ConnState)
        if state is not ConnState.CLOSED:
            assert ConnState.CLOSED in targets  # any live connection can be closed


def test_every_state_is_reachable_from_idle():
    seen = {ConnState.IDLE}
    frontier = [ConnState.IDLE]
    while frontier:
        for target in NEXT[frontier.pop()]:
            if target not in seen:
                seen.add(target)
                frontier.append(target)
    assert seen == set(ConnState)


class _FakeServer:
    """Just enough of Server for a Connection on a socketpair (no network)."""

    def __init__(self, loop, config):
        self.loop = loop
        self.config = config
        self.closed = []
        self.stopping = False
        self.tracer = None
        self.stats = Stats()

    def connection_closed(self, conn):
        self.closed.append(conn)


@pytest.fixture
def conn():
    from reactor.config import Config
    from reactor.loop import EventLoop

    loop = EventLoop()
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    connection = Connection(_FakeServer(loop, Config()), ours, "test", 1)
    connection.start()
    yield connection
    connection.close()
    theirs.close()
    loop.close()


@pytest.mark.parametrize("old", list(ConnState))
@pytest.mark.parametrize("new", list(ConnState))
def test_set_state_allows_exactly_the_table(conn, old, new):
    conn.state = old  # place it directly; only set_state's checking is under test
    if old is ConnState.CLOSED:
        conn._mask = 0
    if new in NEXT[old]:
        conn.set_state(new)
        assert conn.state is new
    else:
        with pytest.raises(InvalidTransition):
            conn.set_state(new)
        assert conn.state is old


def test_interest_follows_state(conn):
    selector = conn.loop.selector
    assert selector.get_key(conn.sock).events == EVENT_READ  # IDLE reads
    conn.set_state(ConnState.READING_HEADERS)
    assert selector.get_key(conn.sock).events == EVENT_READ
    conn.set_state(ConnState.WRITING)  # nothing queued yet: not registered at all
    with pytest.raises(KeyError):
        selector.get_key(conn.sock)
    conn._outbox.append(b"x")
    conn._update_interest()
    assert selector.get_key(conn.sock).events == EVENT_WRITE
    conn._outbox.clear()
    conn.set_state(ConnState.IDLE)
    assert selector.get_key(conn.sock).events == EVENT_READ


def test_close_unregisters_and_reports_once(conn):
    conn.close()
    conn.close()
    assert conn.state is ConnState.CLOSED
    assert conn.server.closed == [conn]
    assert conn.sock.fileno() == -1
    assert all(key.data != conn._on_event_cb for key in conn.loop.selector.get_map().values())

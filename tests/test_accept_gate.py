"""Connection-aware accepting: the gate's decision on a real Scoreboard, and a real Server deferring to a peer.

The server here runs in this process as worker 1 on a thread; worker 2 is a row the test
writes into the same scoreboard (a pid, a heartbeat, whether it takes connections, its
open count), which is all a worker ever sees of its peers. The supervisor's own tests
(``test_supervisor.py``) drive two real worker processes.
"""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from conftest import wait_for
from reactor.config import Config
from reactor.scoreboard import ACCEPT_SLACK, SLOTS, AcceptGate, Scoreboard
from reactor.server import _DEFER_LIMIT_S, AcceptState, Server


def _peer(board: Scoreboard, number: int, open_connections: int, taking: bool = True, beat: bool = True) -> None:
    board.claim(number, 1000 + number)
    if beat:
        board.beat(number, 0, 0, open_connections)
    board.publish(number, open_connections)
    board.set_taking(number, taking)


# -- the table ----------------------------------------------------------------------------


def test_claim_keeps_what_a_worker_wrote_before_it_and_clear_empties_the_slot():
    board = Scoreboard()
    board.beat(3, 7, 8, 9)  # the child beats first: fork returns in either order
    board.set_taking(3, True)
    board.claim(3, 4242)
    slot = board.read(3)
    assert (slot.pid, slot.requests, slot.accepted, slot.open, slot.taking) == (4242, 7, 8, 9, True)
    assert slot.heartbeat > 0
    assert [s.number for s in board.live()] == [3]
    board.clear(3)
    slot = board.read(3)
    assert (slot.pid, slot.heartbeat, slot.open, slot.taking) == (0, 0.0, 0, False)
    assert list(board.live()) == []


def test_readers_scan_up_to_the_highest_claimed_slot_only():
    board = Scoreboard()
    for number in (1, 2, 5):
        board.claim(number, 100 + number)
    assert [s.number for s in board.live()] == [1, 2, 5]
    board.clear(5)
    assert [s.number for s in board.live()] == [1, 2]
    board.claim(SLOTS, 999)
    assert [s.number for s in board.live()] == [1, 2, SLOTS]
    board.clear(1)
    board.clear(SLOTS)
    assert [s.number for s in board.live()] == [2]


def test_fewest_open_counts_live_peers_that_take_connections():
    board = Scoreboard()
    _peer(board, 1, 50)  # this worker: never its own peer
    _peer(board, 2, 9)
    _peer(board, 3, 4)
    _peer(board, 4, 0, taking=False)  # draining, stopping or out of descriptors
    _peer(board, 5, 1, beat=False)  # never beat: booting, or its heartbeat is stale
    _peer(board, 6, 2)
    board.clear(6)  # reaped
    since = time.monotonic() - 1.0
    assert board.fewest_open(1, since) == 4
    assert board.fewest_open(3, since) == 9
    assert board.fewest_open(1, time.monotonic() + 1.0) is None  # every heartbeat older than that


# -- the gate's decision ----------------------------------------------------------------------


def test_a_worker_defers_only_past_the_least_loaded_peer_plus_the_slack():
    board = Scoreboard()
    gate = AcceptGate(board, 1, stale_s=2.0, slack=1)
    _peer(board, 2, 3)
    _peer(board, 3, 6)
    assert not gate.should_defer(3)
    assert not gate.should_defer(4)  # within the slack of worker 2
    assert gate.should_defer(5)
    board.publish(2, 8)  # worker 2 took more: worker 3 is now the least loaded
    assert not gate.should_defer(7)
    assert gate.should_defer(8)


def test_the_least_loaded_worker_never_defers():
    board = Scoreboard()
    gates = [AcceptGate(board, number, stale_s=2.0) for number in (1, 2, 3)]
    for counts in [(0, 0, 0), (5, 0, 9), (3, 3, 3), (10, 2, 2), (1, 40, 7)]:
        for number, held in enumerate(counts, start=1):
            _peer(board, number, held)
        least = counts.index(min(counts))
        assert not gates[least].should_defer(counts[least]), counts
        assert any(not gate.should_defer(held) for gate, held in zip(gates, counts))


def test_stale_not_taking_and_cleared_peers_hold_no_one_back():
    board = Scoreboard()
    gate = AcceptGate(board, 1, stale_s=0.05)
    _peer(board, 2, 0)
    assert gate.should_defer(5)
    board.set_taking(2, False)  # a draining worker, e.g. an old one during a SIGHUP reload
    assert not gate.should_defer(5)
    board.set_taking(2, True)
    wait_for(lambda: not gate.should_defer(5), timeout_s=5, what="worker 2's heartbeat to go stale")
    board.beat(2, 0, 0, 0)
    assert gate.should_defer(5)
    board.clear(2)  # reaped after kill -9
    assert not gate.should_defer(5)


def test_a_lone_worker_has_no_peer_to_defer_to():
    board = Scoreboard()
    _peer(board, 1, 0)
    assert not AcceptGate(board, 1, stale_s=2.0).should_defer(10_000)


def test_a_gate_outside_the_table_is_refused():
    with pytest.raises(ValueError):
        AcceptGate(Scoreboard(), SLOTS + 1, stale_s=1.0)


# -- a real server with a gate ----------------------------------------------------------------


class GatedServer:
    """Worker 1's server on a thread, its scoreboard shared with the test."""

    def __init__(self, root) -> None:
        self.board = Scoreboard()
        self.board.claim(1, os.getpid())
        self.board.beat(1, 0, 0, 0)
        self.server = Server(
            Config(host="127.0.0.1", port=0, root=root), accept_gate=AcceptGate(self.board, 1, stale_s=5.0)
        )
        self.port = self.server.listen()[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.clients: list[socket.socket] = []

    def connect(self) -> socket.socket:
        client = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        self.clients.append(client)
        return client

    def on_loop(self, fn):
        done = threading.Event()
        box: list = []
        self.server.loop.call_soon_threadsafe(lambda: (box.append(fn()), done.set()))
        assert done.wait(5)
        return box[0]

    def accepted(self) -> int:
        return self.on_loop(lambda: self.server.stats.accepted)

    def state(self) -> AcceptState:
        return self.on_loop(lambda: self.server.accept_state)

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        self.server.loop.call_soon_threadsafe(self.server.shutdown, False)
        self.thread.join(10)


@pytest.fixture
def gated(site):
    running = GatedServer(site)
    yield running
    running.stop()


def _get(client: socket.socket, port: int) -> bytes:
    client.sendall(b"GET /index.html HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % port)
    return client.recv(65536)


def test_a_worker_over_its_share_leaves_new_connections_to_the_peer_then_takes_them_back(gated):
    _peer(gated.board, 2, 0)  # a live peer with no connection
    assert gated.board.read(1).taking
    first = [gated.connect() for _ in range(ACCEPT_SLACK + 1)]
    wait_for(lambda: gated.accepted() == ACCEPT_SLACK + 1, what="the first connections accepted")
    assert gated.state() is AcceptState.DEFERRING
    assert gated.board.read(1).open == ACCEPT_SLACK + 1  # published at accept, not at the next beat
    assert gated.board.read(1).taking  # deferring for a moment still counts as taking
    waiting = gated.connect()  # queued in the kernel for the peer
    time.sleep(_DEFER_LIMIT_S / 3)  # a bounded look: some rechecks pass and the connection stays queued
    assert gated.accepted() == ACCEPT_SLACK + 1
    gated.board.publish(2, ACCEPT_SLACK + 1)  # the peer caught up
    assert _get(waiting, gated.port).startswith(b"HTTP/1.1 200")
    assert gated.accepted() == ACCEPT_SLACK + 2
    for client in first:
        assert _get(client, gated.port).startswith(b"HTTP/1.1 200")


def test_a_connection_no_peer_takes_is_taken_after_the_limit(gated):
    _peer(gated.board, 2, 0)  # live, its heartbeat fresh for the whole test, but it never accepts
    first = [gated.connect() for _ in range(ACCEPT_SLACK + 1)]
    wait_for(lambda: gated.accepted() == ACCEPT_SLACK + 1, what="the first connections accepted")
    queued = time.monotonic()
    late = [gated.connect() for _ in range(3)]
    assert all(_get(client, gated.port).startswith(b"HTTP/1.1 200") for client in late)
    assert _DEFER_LIMIT_S <= time.monotonic() - queued < 1.0  # all three in one batch after the limit
    assert gated.state() is AcceptState.DEFERRING  # the peer still holds fewer
    assert all(_get(client, gated.port).startswith(b"HTTP/1.1 200") for client in first)


def test_closing_its_own_connections_brings_a_deferring_worker_back(gated):
    _peer(gated.board, 2, 0)  # stays at 0 for the whole test
    first = [gated.connect() for _ in range(ACCEPT_SLACK + 1)]
    wait_for(lambda: gated.accepted() == ACCEPT_SLACK + 1, what="the first connections accepted")
    waiting = gated.connect()
    first[0].close()
    assert _get(waiting, gated.port).startswith(b"HTTP/1.1 200")
    wait_for(lambda: gated.board.read(1).open == ACCEPT_SLACK + 1, what="the close and the accept published")


def test_without_a_live_peer_the_worker_accepts_everything(gated):
    _peer(gated.board, 2, 0, taking=False)
    clients = [gated.connect() for _ in range(8)]
    wait_for(lambda: gated.accepted() == 8, what="all eight accepted")
    assert gated.state() is AcceptState.ACCEPTING
    assert all(_get(client, gated.port).startswith(b"HTTP/1.1 200") for client in clients)


def test_a_stopping_worker_stops_counting_as_a_peer(gated):
    assert gated.board.read(1).taking
    gated.server.loop.call_soon_threadsafe(gated.server.shutdown, True)
    wait_for(lambda: not gated.board.read(1).taking, what="taking cleared at the stop")
    assert AcceptGate(gated.board, 2, stale_s=5.0).should_defer(10) is False

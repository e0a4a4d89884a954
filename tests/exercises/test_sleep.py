"""Exercise 1 (docs/exercises.md): GET /_sleep?ms=N answers later without blocking the loop."""

import select
import time

from conftest import RawClient, wait_for


def _not_yet_answered(sleeper: RawClient) -> None:
    """Fail with the right reason if the /_sleep answer is already there."""
    readable, _, _ = select.select([sleeper.sock], [], [], 0)
    if readable:
        status, _, body = sleeper.response()
        assert status != 404, "GET /_sleep is not routed yet (404): start with reactor.handlers.Application.route"
        raise AssertionError("the /_sleep answer (%d %r) came before another client was served" % (status, body))


def test_sleep_does_not_block_other_clients(server):
    sleeper = RawClient(server.connect(timeout=10))
    started = time.monotonic()
    sleeper.get("/_sleep?ms=1500")
    other = RawClient(server.connect(timeout=10))
    status, _, body = other.get("/sample.txt").response()
    assert status == 200
    _not_yet_answered(sleeper)  # the other client was served while the sleeper still waits
    status, _, body = sleeper.response()
    assert status == 200
    assert body == b"slept 1500 ms\n"
    assert time.monotonic() - started >= 1.5, "answered before the time was up"


def test_sleep_validates_its_argument(server):
    client = RawClient(server.connect())
    for bad in ("-1", "lots", "5001", ""):
        status = client.get("/_sleep?ms=%s" % bad).response()[0]
        assert status == 400, "ms=%r: expected 400, got %d" % (bad, status)
    assert client.get("/_sleep?ms=0").response()[:3:2] == (200, b"slept 0 ms\n")


def test_the_connection_stays_usable_after_a_sleep(server):
    client = RawClient(server.connect(timeout=10))
    assert client.get("/_sleep?ms=50").response()[0] == 200
    assert client.get("/sample.txt").response()[0] == 200  # keep-alive: the machine moved on


def test_a_client_that_leaves_during_the_sleep_costs_nothing_afterwards(server):
    """The connection is unregistered while it waits, so it sees the disconnect only when
    it answers; then the answer is dropped or fails, and the connection must close."""
    probe = RawClient(server.connect())
    assert probe.get("/_sleep?ms=0").response()[0] == 200, "GET /_sleep is not routed yet"
    wait_for(lambda: server.call(lambda: len(server.server.sessions)) == 1, what="the probe to stay open")
    gone = RawClient(server.connect(timeout=10))
    gone.get("/_sleep?ms=300")
    wait_for(lambda: server.call(lambda: len(server.server.sessions)) == 2, what="the sleeper to be accepted")
    gone.close()
    wait_for(lambda: server.call(lambda: len(server.server.sessions)) == 1, timeout_s=5,
             what="the sleeper's connection to close after its timer fired")
    assert probe.get("/sample.txt").response()[0] == 200

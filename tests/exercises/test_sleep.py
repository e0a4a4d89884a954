"""Exercise 1 (docs/exercises.md): GET /_sleep?ms=N answers later without blocking the loop."""

import select

from conftest import RawClient


def test_sleep_does_not_block_other_clients(server):
    sleeper = RawClient(server.connect(timeout=10))
    sleeper.get("/_sleep?ms=1500")
    other = RawClient(server.connect(timeout=10))
    status, _, body = other.get("/sample.txt").response()
    assert status == 200
    # The other client was served while the sleeper is still waiting for its answer.
    readable, _, _ = select.select([sleeper.sock], [], [], 0)
    assert not readable, "the /_sleep answer came before another client was served"
    status, _, body = sleeper.response()
    assert status == 200
    assert body == b"slept 1500 ms\n"


def test_sleep_validates_its_argument(server):
    client = RawClient(server.connect())
    assert client.get("/_sleep?ms=-1").response()[0] == 400
    assert client.get("/_sleep?ms=lots").response()[0] == 400

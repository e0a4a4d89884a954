"""Exercise 4 (docs/exercises.md): GET /_work?ms=N does blocking work; first on the loop, then on the pool."""

import time

from conftest import RawClient, wait_for


def _latency_of_another_client(server, work_ms: int) -> "tuple[float, RawClient]":
    worker = RawClient(server.connect(timeout=10))
    worker.get("/_work?ms=%d" % work_ms)
    # The loop has read the /_work request once the pool holds its job (or, before the
    # fix, once the loop is stuck in time.sleep and cannot answer this probe).
    other = RawClient(server.connect(timeout=10))
    started = time.monotonic()
    status = other.get("/sample.txt").response()[0]
    assert status == 200
    return time.monotonic() - started, worker


def test_work_answers(server):
    client = RawClient(server.connect(timeout=10))
    status, _, body = client.get("/_work?ms=100").response()
    assert status == 200, "GET /_work is not routed yet (%d): start with reactor.handlers.Application.route" % status
    assert body == b"worked 100 ms\n"
    assert client.get("/_work?ms=often").response()[0] == 400


def test_blocking_work_does_not_hold_up_another_client(server):
    assert RawClient(server.connect()).get("/_work?ms=0").response()[0] == 200, "GET /_work is not routed yet"
    latency, worker = _latency_of_another_client(server, 1000)
    assert latency < 0.5, "a second client waited %.0f ms: the loop thread is doing the work" % (latency * 1000)
    status, _, body = worker.response()
    assert (status, body) == (200, b"worked 1000 ms\n")


def test_the_work_runs_on_the_pool(server):
    """Not a timer (that is exercise 1): a worker thread is busy for the whole time."""
    worker = RawClient(server.connect(timeout=10))
    worker.get("/_work?ms=800")
    wait_for(lambda: server.call(lambda: server.server.pool.busy) == 1, timeout_s=0.7,
             what="a worker to be busy with /_work")
    assert worker.response()[0] == 200

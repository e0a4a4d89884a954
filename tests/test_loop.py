"""The event loop on its own, once per selector class available here."""

from __future__ import annotations

import selectors
import socket
import threading

import pytest

from reactor.loop import EVENT_READ, EventLoop

SELECTORS = [
    getattr(selectors, name)
    for name in ("SelectSelector", "PollSelector", "EpollSelector", "DevpollSelector", "KqueueSelector")
    if hasattr(selectors, name)
]


@pytest.fixture(params=SELECTORS, ids=lambda cls: cls.__name__)
def loop(request):
    loop = EventLoop(request.param())
    yield loop
    loop.close()


def test_call_soon_runs_in_order_and_later_ones_wait_a_pass(loop):
    seen = []

    def again():
        seen.append("again")

    def first():
        seen.append("first")
        loop.call_soon(again)  # queued during the pass: runs on the next one

    loop.call_soon(first)
    loop.call_soon(seen.append, "second")
    loop.run_once()
    assert seen == ["first", "second"]
    loop.run_once()
    assert seen == ["first", "second", "again"]


def test_timers_fire_in_deadline_order_and_cancel(loop):
    seen = []
    now = loop.time()
    loop.call_at(now + 0.02, seen.append, "b")
    loop.call_at(now + 0.01, seen.append, "a")
    cancelled = loop.call_at(now + 0.015, seen.append, "x")
    cancelled.cancel()
    loop.call_at(now + 0.03, loop.stop)
    loop.run()
    assert seen == ["a", "b"]


def test_call_soon_threadsafe_wakes_a_sleeping_select(loop):
    seen = []
    started = threading.Event()

    def from_thread():
        started.wait(5)
        loop.call_soon_threadsafe(seen.append, "woken")
        loop.call_soon_threadsafe(loop.stop)

    thread = threading.Thread(target=from_thread)
    thread.start()
    loop.call_soon(started.set)
    loop.run()  # no timers: without the waker, select would sleep forever
    thread.join(5)
    assert seen == ["woken"]


def test_io_callbacks_get_the_mask_and_errors_do_not_stop_the_loop(loop):
    a, b = socket.socketpair()
    masks = []
    errors = []
    loop.exception_handler = lambda exc, context: errors.append(exc)

    def on_ready(mask):
        masks.append(mask)
        a.recv(10)
        raise ValueError("boom")

    loop.selector.register(a, EVENT_READ, on_ready)
    b.send(b"x")
    loop.run_once()
    loop.call_soon(masks.append, "after")
    loop.run_once()
    assert masks == [EVENT_READ, "after"]
    assert len(errors) == 1 and isinstance(errors[0], ValueError)
    loop.selector.unregister(a)
    a.close()
    b.close()

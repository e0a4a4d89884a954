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


def test_waker_wake_during_drain_is_not_lost():
    """A wake() from another thread that lands while the loop drains must still wake it."""
    from reactor.loop import Waker

    waker = Waker()
    real_recv = waker._recv

    class RecvThatRaces:
        raced = False

        def recv(self, size):
            if not self.raced:  # the other thread's wake() lands inside drain()
                self.raced = True
                waker.wake()
            return real_recv.recv(size)

    waker.wake()
    waker._recv = RecvThatRaces()
    waker.drain()
    waker._recv = real_recv
    waker.wake()  # a later hand-off must make the waker readable again
    with selectors.DefaultSelector() as selector:
        selector.register(waker, EVENT_READ)
        assert selector.select(timeout=2), "wake-up lost: select would sleep forever"
    waker.close()


def test_waker_never_loses_a_wake_up_under_contention(loop):
    """Many threads hand callbacks over while the loop sleeps in select with no timers."""
    total = 4 * 2000
    seen = []
    done = threading.Event()

    def record(i):
        seen.append(i)
        if len(seen) == total:
            done.set()
            loop.stop()

    def producer(base):
        for i in range(2000):
            loop.call_soon_threadsafe(record, base + i)

    threads = [threading.Thread(target=producer, args=(n * 2000,)) for n in range(4)]
    for thread in threads:
        thread.start()

    def force_stop():  # bypasses the waker's pending flag, which a lost wake-up leaves stuck
        loop._stopping = True
        loop._waker._send.send(b"\0")

    watchdog = threading.Timer(10, force_stop)  # bounds the test if a wake-up is lost
    watchdog.start()
    loop.run()
    watchdog.cancel()
    for thread in threads:
        thread.join(5)
    assert done.is_set() and sorted(seen) == list(range(total))


def test_pass_callbacks_run_at_the_end_of_every_pass(loop):
    seen = []
    loop.call_soon(seen.append, "ready")
    loop.add_pass_callback(lambda: seen.append("end"))
    loop.run_once()
    loop.call_soon(seen.append, "ready")
    loop.run_once()
    assert seen == ["ready", "end", "ready", "end"]
    broken = []
    loop.exception_handler = lambda exc, context: broken.append(context)

    def fails():
        raise RuntimeError("boom")

    loop.add_pass_callback(fails)
    loop.call_soon(seen.append, "ready")  # (a pass with nothing ready would sleep in select)
    loop.run_once()  # one that raises is reported and the loop goes on
    assert seen[-1] == "end" and broken and "end-of-pass" in broken[0]
    loop.remove_pass_callback(fails)
    loop.call_soon(seen.append, "ready")
    loop.run_once()
    assert len(broken) == 1

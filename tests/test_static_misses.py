"""The miss path: every uncached request is a worker-pool round trip, many at once.

Also the regression test for a lost wake-up in the loop's Waker (found through this
path: with the cache off, 50 concurrent clients got a few dozen responses a second,
and a lone request could wait for a pool result forever).
"""

from __future__ import annotations

import concurrent.futures
import http.client
import threading

from reactor.loop import EventLoop

JSON_ACCESS_LOG = True  # every response these tests provoke must log one line json.loads reads (conftest)


def test_no_wake_up_is_lost_when_threads_race():
    loop = EventLoop()
    thread = threading.Thread(target=loop.run, name="test-loop", daemon=True)
    thread.start()
    try:
        for _ in range(300):
            barrier = threading.Barrier(4)

            def worker(barrier=barrier):
                barrier.wait()
                loop.call_soon_threadsafe(lambda: None)

            workers = [threading.Thread(target=worker) for _ in range(3)]
            for each in workers:
                each.start()
            barrier.wait()
            for each in workers:
                each.join()
            done = threading.Event()
            loop.call_soon_threadsafe(done.set)
            # Nothing else will wake the loop: only the waker can deliver this.
            assert done.wait(5.0), "call_soon_threadsafe did not wake the loop"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5.0)
        loop.close()


def test_many_concurrent_misses_are_all_answered(make_server):
    running = make_server(cache_max_bytes=0)
    expected = (running.root / "index.html").read_bytes()

    def client(_index):
        conn = http.client.HTTPConnection(running.host, running.port, timeout=10)
        bodies = []
        for _ in range(10):
            conn.request("GET", "/index.html")
            response = conn.getresponse()
            bodies.append((response.status, response.read()))
        conn.close()
        return bodies

    with concurrent.futures.ThreadPoolExecutor(50) as executor:
        results = list(executor.map(client, range(50)))
    assert all(body == (200, expected) for bodies in results for body in bodies)

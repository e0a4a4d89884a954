"""The hot-file cache: hits answered on the loop thread, revalidated on the pool.

A spy on the worker pool records which jobs run, so "a hit never leaves the loop
thread" is checked directly rather than timed. Freshness is tested by ageing an entry
(moving its ``checked_at`` back on the loop thread), not by sleeping.
"""

from __future__ import annotations

import gzip
import time

import pytest

from conftest import fetch
from reactor.handlers import cache as cachemod
from reactor.handlers.cache import HotCache
from reactor.handlers.files import SMALL_FILE_BYTES

BOTH_TRANSPORTS = True  # each test with a server runs over plain TCP and over TLS (conftest)
JSON_ACCESS_LOG = True  # every response these tests provoke must log one line json.loads reads (conftest)

TEXT = ("".join("cached line %d\n" % i for i in range(300))).encode()


class PoolSpy:
    """Records the name of every job submitted to the server's worker pool."""

    def __init__(self, running, monkeypatch):
        self.jobs = []
        pool = running.server.pool
        real_submit = pool.submit

        def submit(job, args, callback):
            self.jobs.append(getattr(job, "__name__", repr(job)))
            return real_submit(job, args, callback)

        monkeypatch.setattr(pool, "submit", submit)


@pytest.fixture
def cached(make_server, monkeypatch):
    running = make_server()
    (running.root / "app.js").write_bytes(TEXT)
    running.static = running.server.app.static
    running.spy = PoolSpy(running, monkeypatch)
    return running


def entry_of(running, key):
    return running.call(lambda: running.static.cache._entries.get(key))


def age(running, key, seconds):
    """Pretend the entry for ``key`` was last checked ``seconds`` ago."""

    def move_back():
        entry = running.static.cache._entries[key]
        entry.checked_at = time.monotonic() - seconds

    running.call(move_back)


def wait_until(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)  # polling with a deadline: nothing to wait on for a pool job's side effect
    return predicate()


@pytest.fixture
def no_expiry(monkeypatch):
    """Entries aged past VALID_S stay servable however slow this machine is right now."""
    monkeypatch.setattr(cachemod, "EXPIRE_S", 3600.0)


def test_hits_never_leave_the_loop_thread(cached, no_expiry):
    first, body = fetch(cached, "GET", "/app.js")
    assert body == TEXT and cached.spy.jobs == ["open_file"]
    etag = first.getheader("ETag")
    fetch(cached, "GET", "/app.js", {"Accept-Encoding": "gzip"})  # makes the gzip form once
    assert cached.spy.jobs == ["open_file", "gzip_body"]
    del cached.spy.jobs[:]
    for _ in range(3):
        response, body = fetch(cached, "GET", "/app.js")
        assert response.status == 200 and body == TEXT
        response, body = fetch(cached, "HEAD", "/app.js")
        assert response.status == 200 and body == b"" and response.getheader("Content-Length") == str(len(TEXT))
        response, body = fetch(cached, "GET", "/app.js", {"If-None-Match": etag})
        assert response.status == 304 and body == b""
        response, body = fetch(cached, "GET", "/app.js", {"Range": "bytes=10-19"})
        assert response.status == 206 and body == TEXT[10:20]
        response, body = fetch(cached, "GET", "/app.js", {"Range": "bytes=0-1,-2"})
        assert response.status == 206 and response.getheader("Content-Type").startswith("multipart/byteranges")
        response, body = fetch(cached, "GET", "/app.js", {"Range": "bytes=99999-"})
        assert response.status == 416
        response, body = fetch(cached, "GET", "/app.js", {"Accept-Encoding": "gzip"})
        assert response.getheader("Content-Encoding") == "gzip" and gzip.decompress(body) == TEXT
        response, body = fetch(cached, "GET", "/app.js", {"If-Match": '"other"'})
        assert response.status == 412
    assert "open_file" not in cached.spy.jobs and "gzip_body" not in cached.spy.jobs
    # At most the background revalidation, if this test ran for over a second.
    assert set(cached.spy.jobs) <= {"current_stamp"}


def test_cached_and_uncached_responses_are_the_same(cached):
    miss, miss_body = fetch(cached, "GET", "/app.js")
    hit, hit_body = fetch(cached, "GET", "/app.js")

    def strip(response):
        return [(k, v) for k, v in response.getheaders() if k not in ("Date", "Keep-Alive", "X-Request-ID")]

    assert strip(miss) == strip(hit) and miss_body == hit_body


def test_an_expired_entry_is_reloaded_at_once(cached):
    fetch(cached, "GET", "/app.js")
    (cached.root / "app.js").write_bytes(b"edited\n")
    age(cached, "/app.js", cachemod.EXPIRE_S)
    response, body = fetch(cached, "GET", "/app.js")
    assert body == b"edited\n"


def test_a_stale_entry_is_served_while_the_pool_revalidates(cached, no_expiry):
    first, _ = fetch(cached, "GET", "/app.js")
    (cached.root / "app.js").write_bytes(b"edited\n")
    age(cached, "/app.js", cachemod.VALID_S + 0.05)
    _, body = fetch(cached, "GET", "/app.js")
    assert body == TEXT  # the cached copy, within the staleness bound
    assert "current_stamp" in cached.spy.jobs
    assert wait_until(lambda: entry_of(cached, "/app.js") is None)  # the change dropped it
    response, body = fetch(cached, "GET", "/app.js")
    assert body == b"edited\n"
    assert response.getheader("ETag") != first.getheader("ETag")


def test_an_unchanged_file_is_renewed_not_reloaded(cached, no_expiry):
    fetch(cached, "GET", "/app.js")
    entry = entry_of(cached, "/app.js")
    age(cached, "/app.js", cachemod.VALID_S + 0.05)
    old_check = entry.checked_at
    fetch(cached, "GET", "/app.js")
    assert wait_until(lambda: entry.checked_at > old_check)
    assert entry_of(cached, "/app.js") is entry
    assert cached.spy.jobs.count("open_file") == 1
    assert cached.spy.jobs.count("current_stamp") == 1  # one revalidation in flight at most


def test_a_deleted_file_is_404_after_expiry(cached):
    fetch(cached, "GET", "/app.js")
    (cached.root / "app.js").unlink()
    age(cached, "/app.js", cachemod.EXPIRE_S)
    assert fetch(cached, "GET", "/app.js")[0].status == 404


def test_the_cache_is_bounded_in_bytes(make_server):
    running = make_server(cache_max_bytes=20_000)
    for i in range(30):
        (running.root / ("f%02d.txt" % i)).write_bytes(b"%02d" % i * 1000)
    for i in range(30):
        assert fetch(running, "GET", "/f%02d.txt" % i)[1] == b"%02d" % i * 1000
    cache = running.server.app.static.cache
    size, count, evictions = running.call(lambda: (cache.size_bytes, len(cache), cache.evictions))
    assert size <= 20_000
    assert evictions == 30 - count > 0
    assert running.call(lambda: "/f29.txt" in cache and "/f00.txt" not in cache)  # least recently used go first


def test_large_files_are_not_cached(make_server):
    running = make_server()
    (running.root / "large.bin").write_bytes(b"x" * (SMALL_FILE_BYTES + 1))
    fetch(running, "GET", "/large.bin")
    assert not running.call(lambda: "/large.bin" in running.server.app.static.cache)


def test_cache_can_be_turned_off(make_server, monkeypatch):
    running = make_server(cache_max_bytes=0)
    spy = PoolSpy(running, monkeypatch)
    assert running.server.app.static.cache is None
    for _ in range(3):
        assert fetch(running, "GET", "/sample.txt")[0].status == 200
    assert spy.jobs == ["open_file"] * 3


# -- the cache object ------------------------------------------------------------------------


class FakeIdentity:
    def __init__(self, size):
        self.data = b"x" * size


class FakeEntry:
    def __init__(self, size, checked_at=0.0):
        self.identity = FakeIdentity(size)
        self.size = size
        self.checked_at = checked_at
        self.cost_bytes = 0
        self.extra = 0

    def body_bytes(self):
        return self.size + self.extra


def test_hot_cache_lru_and_bounds():
    cache = HotCache(max_bytes=3 * (100 + cachemod.ENTRY_OVERHEAD_BYTES), entry_max_bytes=1000)
    for key in "abc":
        cache.put(key, FakeEntry(100))
    assert cache.get("a", now=0.5) is not None  # a is now the most recent
    cache.put("d", FakeEntry(100))
    assert "b" not in cache and {"a", "c", "d"} <= {k for k in "abcd" if k in cache}
    assert cache.size_bytes == 3 * (100 + cachemod.ENTRY_OVERHEAD_BYTES)
    grown = cache.get("c", now=0.5)
    grown.extra = 50
    cache.resized("c", grown)
    assert cache.size_bytes <= cache.max_bytes and cache.evictions == 2


def test_hot_cache_expiry():
    cache = HotCache(max_bytes=10_000, entry_max_bytes=1000)
    cache.put("a", FakeEntry(10, checked_at=100.0))
    assert cache.get("a", now=100.0 + cachemod.EXPIRE_S - 0.01) is not None
    assert cache.get("a", now=100.0 + cachemod.EXPIRE_S) is None
    assert "a" not in cache and cache.size_bytes == 0


def test_hot_cache_admits_small_files_only():
    cache = HotCache(max_bytes=10_000, entry_max_bytes=1000)
    assert cache.admits(FakeEntry(1000)) and not cache.admits(FakeEntry(1001))

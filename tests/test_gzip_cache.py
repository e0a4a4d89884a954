"""The shared gzip forms: one compression per file version, a bounded number in flight,
a memory budget (issue 15 item 1). Unit tests with a stand-in pool, then a real server.
"""

from __future__ import annotations

import base64
import concurrent.futures
import errno
import gzip
import random
import socket
import threading
from typing import Any, Callable, List, Optional, Tuple

import pytest

from conftest import fetch, wait_for
from reactor.handlers import compress, files
from reactor.handlers.gzip_cache import ENTRY_OVERHEAD_BYTES, GzipCache

#: The server tests run over plain TCP and over TLS (conftest): a streamed body goes through both transports.
BOTH_TRANSPORTS = True
JSON_ACCESS_LOG = True  # every response these tests provoke must log one line json.loads reads (conftest)


class FakePool:
    """Holds submitted jobs until the test finishes them; refuses when ``full``."""

    def __init__(self) -> None:
        self.jobs: List[Tuple[Callable[..., Any], Tuple[Any, ...], Callable[[Any], None]]] = []
        self.full = False

    def submit(self, job: Callable[..., Any], args: Tuple[Any, ...], callback: Callable[[Any], None]) -> bool:
        if self.full:
            return False
        self.jobs.append((job, args, callback))
        return True

    def finish(self, index: int = 0) -> None:
        job, args, callback = self.jobs.pop(index)
        future: "concurrent.futures.Future[Any]" = concurrent.futures.Future()
        try:
            future.set_result(job(*args))
        except Exception as exc:
            future.set_exception(exc)
        callback(future)


class Answers:
    def __init__(self) -> None:
        self.got: List[Tuple[Optional[bytes], Optional[BaseException]]] = []

    def __call__(self, body: Optional[bytes], error: Optional[BaseException]) -> None:
        self.got.append((body, error))


def test_requests_for_one_file_version_share_one_compression_and_one_body() -> None:
    pool, cache, answers = FakePool(), GzipCache(1 << 20, 3), Answers()
    calls = []

    def job(data: bytes) -> bytes:
        calls.append(data)
        return gzip.compress(data)

    for _ in range(300):
        cache.compress(pool, '"v1"', job, (b"x" * 1000,), answers)  # type: ignore[arg-type]
    assert len(pool.jobs) == 1 and cache.joined == 299
    pool.finish()
    assert len(calls) == 1 and len(answers.got) == 300
    bodies = {id(body) for body, _error in answers.got}
    assert len(bodies) == 1  # the very same object, not 300 copies
    assert cache.get('"v1"') == (True, answers.got[0][0])
    assert cache.in_flight == 0


def test_compressions_in_flight_are_bounded_and_queued_in_order() -> None:
    pool, cache, answers = FakePool(), GzipCache(1 << 20, 3), Answers()
    for n in range(6):
        cache.compress(pool, '"v%d"' % n, bytes, (n,), answers)  # type: ignore[arg-type]
    assert len(pool.jobs) == 3 and cache.in_flight == 3
    pool.finish()
    assert len(pool.jobs) == 3  # the fourth started as the first ended
    assert [args for _job, args, _cb in pool.jobs] == [(1,), (2,), (3,)]
    while pool.jobs:
        pool.finish()
    assert len(answers.got) == 6 and cache.in_flight == 0


def test_a_pool_of_one_still_compresses() -> None:
    pool, cache, answers = FakePool(), GzipCache(1 << 20, 0), Answers()
    cache.compress(pool, '"v"', bytes, (3,), answers)  # type: ignore[arg-type]
    assert len(pool.jobs) == 1


def test_the_budget_evicts_the_least_recently_used_and_skips_what_cannot_fit() -> None:
    pool, answers = FakePool(), Answers()
    cache = GzipCache(3 * (1000 + ENTRY_OVERHEAD_BYTES), 3)
    for n in range(3):
        cache.compress(pool, '"v%d"' % n, bytes, (1000,), answers)  # type: ignore[arg-type]
        pool.finish()
    assert len(cache) == 3 and cache.size_bytes == 3 * (1000 + ENTRY_OVERHEAD_BYTES)
    assert cache.get('"v0"')[0]  # now the most recently used
    cache.compress(pool, '"v3"', bytes, (1000,), answers)  # type: ignore[arg-type]
    pool.finish()
    assert [cache.get(etag)[0] for etag in ('"v0"', '"v1"', '"v2"', '"v3"')] == [True, False, True, True]
    cache.compress(pool, '"huge"', bytes, (10_000,), answers)  # type: ignore[arg-type]
    pool.finish()
    assert answers.got[-1][0] == bytes(10_000)  # served to its waiters...
    assert cache.get('"huge"') == (False, None)  # ...but not kept
    assert cache.size_bytes <= cache.max_bytes


def test_no_gain_is_remembered_and_a_changed_file_is_not_kept() -> None:
    pool, cache, answers = FakePool(), GzipCache(1 << 20, 3), Answers()
    cache.compress(pool, '"v"', lambda: None, (), answers)
    pool.finish()
    assert answers.got == [(None, None)] and cache.get('"v"') == (True, None)
    cache.compress(pool, '"w"', bytes, (5,), answers, keep=False)  # type: ignore[arg-type]
    pool.finish()
    assert answers.got[-1] == (bytes(5), None) and cache.get('"w"') == (False, None)


def test_errors_and_a_full_pool_reach_every_waiter() -> None:
    pool, cache, answers = FakePool(), GzipCache(1 << 20, 3), Answers()

    def broken() -> bytes:
        raise OSError(errno.EIO, "Input/output error")

    cache.compress(pool, '"v"', broken, (), answers)
    cache.compress(pool, '"v"', broken, (), answers)
    pool.finish()
    assert [type(error) for _body, error in answers.got] == [OSError, OSError]
    assert cache.get('"v"') == (False, None)  # a failure is not remembered
    pool.full = True
    cache.compress(pool, '"v"', broken, (), answers)
    body, error = answers.got[-1]
    assert body is None and error.status == 503 and ("Retry-After", "1") in error.headers and cache.in_flight == 0


def test_a_failing_waiter_does_not_strand_the_others(caplog: pytest.LogCaptureFixture) -> None:
    pool, cache, answers = FakePool(), GzipCache(1 << 20, 3), Answers()

    def bad(body: Optional[bytes], error: Optional[BaseException]) -> None:
        raise RuntimeError("a bug")

    cache.compress(pool, '"v"', bytes, (1,), bad)  # type: ignore[arg-type]
    cache.compress(pool, '"v"', bytes, (1,), answers)  # type: ignore[arg-type]
    pool.finish()
    assert answers.got == [(bytes(1), None)]
    assert any(record.exc_info for record in caplog.records)


# -- a real server -------------------------------------------------------------------------

TEXT = b"".join(b"line %d of a large text file\n" % i for i in range(40_000))  # about 1.2 MB


@pytest.mark.parametrize("path, size", [("/large.txt", len(TEXT)), ("/small.txt", 100_000)])
def test_concurrent_requests_for_a_file_cause_one_compression(make_server, path: str, size: int) -> None:
    running = make_server()
    (running.root / path[1:]).write_bytes(TEXT[:size])
    forms = running.server.app.static.gzip_forms
    barrier = threading.Barrier(20)
    bodies: List[bytes] = []

    def client() -> None:
        conn = running.http(timeout=10)
        try:
            barrier.wait(10)
            conn.request("GET", path, headers={"Accept-Encoding": "gzip"})
            response = conn.getresponse()
            assert response.getheader("Content-Encoding") == "gzip"
            bodies.append(response.read())
        finally:
            conn.close()

    threads = [threading.Thread(target=client) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert len(bodies) == 20 and all(gzip.decompress(body) == TEXT[:size] for body in bodies)
    assert running.call(lambda: forms.compressions) == 1
    # A HEAD, and a later GET, are answered from the shared form.
    response, body = fetch(running, "HEAD", path, {"Accept-Encoding": "gzip"})
    assert int(response.getheader("Content-Length")) == len(bodies[0]) and body == b""
    assert fetch(running, "GET", path, {"Accept-Encoding": "gzip"})[1] == bodies[0]
    assert running.call(lambda: forms.compressions) == 1


def test_an_edited_file_is_compressed_again(make_server) -> None:
    running = make_server()
    target = running.root / "large.txt"
    target.write_bytes(TEXT)
    first = fetch(running, "GET", "/large.txt", {"Accept-Encoding": "gzip"})[1]
    target.write_bytes(TEXT.upper())
    second = fetch(running, "GET", "/large.txt", {"Accept-Encoding": "gzip"})[1]
    assert gzip.decompress(first) == TEXT and gzip.decompress(second) == TEXT.upper()


def test_a_compression_failure_is_500_and_exhaustion_503(make_server, monkeypatch: pytest.MonkeyPatch) -> None:
    running = make_server()
    (running.root / "large.txt").write_bytes(TEXT)
    (running.root / "other.txt").write_bytes(TEXT[::-1])
    codes = iter([errno.EIO, errno.EMFILE])

    def failing(entry: files.Entry) -> Optional[bytes]:
        code = next(codes)
        raise OSError(code, "injected")

    monkeypatch.setattr(files, "gzip_body", failing)
    response, _ = fetch(running, "GET", "/large.txt", {"Accept-Encoding": "gzip"})
    assert response.status == 500
    response, _ = fetch(running, "GET", "/other.txt", {"Accept-Encoding": "gzip"})
    assert response.status == 503 and response.getheader("Retry-After") == "1"


@pytest.mark.parametrize("path", ["/large.txt", "/small.txt"])
def test_a_pool_that_refuses_the_compression_is_503_at_once(make_server, path: str) -> None:
    running = make_server()
    (running.root / "large.txt").write_bytes(TEXT)
    (running.root / "small.txt").write_bytes(TEXT[:100_000])
    assert fetch(running, "GET", path)[0].status == 200  # the small one is now in the hot-file cache
    pool = running.server.pool
    real_submit = pool.submit

    def submit(job: Callable[..., Any], args: Tuple[Any, ...], callback: Callable[[Any], None]) -> bool:
        return False if job is files.gzip_body else real_submit(job, args, callback)

    pool.submit = submit  # type: ignore[method-assign]
    conn = running.http(timeout=10)
    try:
        for _ in range(2):  # and the connection goes on
            conn.request("GET", path, headers={"Accept-Encoding": "gzip"})
            response = conn.getresponse()
            response.read()
            assert response.status == 503 and response.getheader("Retry-After") == "1"
    finally:
        conn.close()


# -- a form too large for the budget is streamed --------------------------------------------

#: 3 MiB of base64 text: gzip makes it about 2.3 MiB, more than the kernel's socket buffers hold.
BIG_TEXT = b"\n".join(base64.b64encode(random.Random(3).randbytes(57)) for _ in range(41_000))


@pytest.fixture
def streaming(make_server):
    running = make_server(gzip_cache_max_bytes=256 * 1024)
    (running.root / "big.txt").write_bytes(BIG_TEXT)
    return running


def test_a_form_larger_than_the_budget_is_streamed_chunked(streaming) -> None:
    conn = streaming.http(timeout=10)
    try:
        for _ in range(2):  # twice on one connection: the chunked body ends cleanly
            conn.request("GET", "/big.txt", headers={"Accept-Encoding": "gzip"})
            response = conn.getresponse()
            body = response.read()
            assert response.status == 200
            assert response.getheader("Content-Encoding") == "gzip"
            assert response.getheader("Transfer-Encoding") == "chunked"
            assert response.getheader("Content-Length") is None
            assert gzip.decompress(body) == BIG_TEXT
    finally:
        conn.close()
    forms = streaming.server.app.static.gzip_forms
    assert streaming.call(lambda: (forms.compressions, len(forms))) == (0, 0)  # nothing kept
    # The same bytes as the whole form would be: the ETag stays a strong one.
    assert body == compress.gzip_bytes(BIG_TEXT)


def test_a_streamed_form_to_http_1_0_is_identity_and_to_head_has_no_body(streaming, raw_to) -> None:
    client = raw_to(streaming)
    client.send(b"GET /big.txt HTTP/1.0\r\nAccept-Encoding: gzip\r\n\r\n")
    status, fields, body = client.response()
    assert status == 200 and "content-encoding" not in fields and body == BIG_TEXT
    client = raw_to(streaming)
    client.send(b"HEAD /big.txt HTTP/1.1\r\nHost: %s\r\nAccept-Encoding: gzip\r\n\r\n" % client.host.encode())
    status, fields, _ = client.response(head_only=True)
    assert status == 200 and fields["content-encoding"] == "gzip"
    client.send(b"GET /small.txt HTTP/1.1\r\nHost: %s\r\n\r\n" % client.host.encode())
    assert client.response()[0] == 404  # the next response follows the head directly


def test_a_client_that_never_reads_a_streamed_form_holds_a_block_or_two(make_server, monkeypatch) -> None:
    from reactor.server import Server
    from reactor.transport import BLOCK_BYTES

    serve_socket = Server._serve_socket

    def small_send_buffer(self: Server, sock: socket.socket, *peer: object) -> None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)  # else the kernel takes it all
        serve_socket(self, sock, *peer)

    monkeypatch.setattr(Server, "_serve_socket", small_send_buffer)
    streaming = make_server(gzip_cache_max_bytes=256 * 1024)
    # Random bytes, so the form is about as large as the file (7 MiB), more than the kernel holds.
    (streaming.root / "big.txt").write_bytes(random.Random(4).randbytes(7 * 1024 * 1024))
    sock = streaming.connect(timeout=10, rcvbuf=4096)
    try:
        sock.sendall(b"GET /big.txt HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAccept-Encoding: gzip\r\n\r\n" % streaming.port)
        assert sock.recv(1024).startswith(b"HTTP/1.1 200 ")

        def queued() -> int:
            (conn,) = streaming.server.sessions.values()
            transport = conn.transport
            return sum(len(data) for data in transport._outbox) if transport._outbox else -1

        def stalled() -> bool:  # bytes wait for the client, and no block is being made
            return streaming.call(queued) > 0 and not streaming.call(
                lambda: next(iter(streaming.server.sessions.values())).transport._block_pending
            )

        wait_for(stalled, what="the stream to stall on the client")
        assert streaming.call(queued) <= 2 * BLOCK_BYTES
    finally:
        sock.close()

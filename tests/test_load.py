"""Load over loopback, bounded in count and time: 1000 concurrent clients each complete a
request; 2000 idle keep-alive connections do not slow a fresh client down.

Both need a few thousand descriptors in this one process (clients and the in-process
server), so the soft RLIMIT_NOFILE is raised to the hard limit for the test, and the
test is skipped if the hard limit is too low.
"""

from __future__ import annotations

import asyncio
import http.client
import resource
import socket
import time

import pytest

from conftest import RawClient, wait_for


@pytest.fixture
def descriptors():
    """Raise the soft descriptor limit to the hard one; ``need(n)`` skips below n."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    def need(count: int) -> None:
        if hard != resource.RLIM_INFINITY and hard < count:
            pytest.skip("needs %d descriptors; the hard limit is %d" % (count, hard))

    yield need
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def _concurrent_requests(port: int, count: int) -> list:
    request = b"GET /notes.txt HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % port
    streams = await asyncio.gather(*(asyncio.open_connection("127.0.0.1", port) for _ in range(count)))
    # All connections are open before the first request goes out.
    for _reader, writer in streams:
        writer.write(request)

    async def finish(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> tuple:
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        body = await reader.readexactly(length)
        writer.close()
        return status, len(body)

    return await asyncio.gather(*(finish(reader, writer) for reader, writer in streams))


def test_1000_concurrent_clients_each_complete_a_request(descriptors, make_server):
    descriptors(2 * 1000 + 200)
    srv = make_server()
    size = (srv.root / "notes.txt").stat().st_size
    results = asyncio.run(asyncio.wait_for(_concurrent_requests(srv.port, 1000), 60))
    assert results == [(200, size)] * 1000
    wait_for(lambda: not srv.call(lambda: len(srv.server.sessions)), what="all connections to close")


@pytest.mark.serial
def test_2000_idle_connections_do_not_delay_a_fresh_client(descriptors, make_server):
    descriptors(2 * 2000 + 200)
    srv = make_server()
    request = b"GET /notes.txt HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % srv.port
    idle = []
    try:
        # In batches the backlog (128) can hold: a connect that overflows it waits for a
        # SYN retransmit (1 s), which measures this test process, not the server.
        for _ in range(20):
            for _ in range(100):
                idle.append(RawClient(socket.create_connection((srv.host, srv.port), timeout=30)))
            count = len(idle)
            wait_for(lambda count=count: srv.call(lambda: len(srv.server.sessions)) == count, what="accepts")
        for start in range(0, len(idle), 500):  # one request each: keep-alive connections proper
            batch = idle[start : start + 500]
            for client in batch:
                client.send(request)
            for client in batch:
                assert client.response()[0] == 200
        wait_for(lambda: srv.call(lambda: len(srv.server.sessions)) == 2000, what="2000 open connections")
        started = time.monotonic()
        conn = http.client.HTTPConnection(srv.host, srv.port, timeout=5)
        conn.request("GET", "/")
        response = conn.getresponse()
        body = response.read()
        elapsed = time.monotonic() - started
        assert response.status == 200 and body
        assert elapsed < 1.0, "a fresh client waited %.3f s" % elapsed
        conn.close()
        # The idle ones were not dropped to make room.
        assert srv.call(lambda: len(srv.server.sessions)) >= 2000
        assert idle[0].send(request).response()[0] == 200
    finally:
        for client in idle:
            client.close()

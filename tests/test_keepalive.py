"""Persistence (RFC 9112 §9.3), Keep-Alive limits, pipelining, and many clients on one loop."""

from __future__ import annotations

import shutil
import subprocess
import threading

import pytest

from conftest import RawClient, half_close
from reactor.config import Config

BOTH_TRANSPORTS = True  # each test with a server runs over plain TCP and over TLS (conftest)


def request(version="1.1", extra=""):
    return ("GET /sample.txt HTTP/%s\r\n%s\r\n" % (version, extra)).encode()  # HTTP/1.0 needs no Host


def test_http11_persists_by_default_with_keep_alive_field(raw):
    client = raw()
    for n in range(3):
        status, fields, _ = client.get("/sample.txt").response()
        assert status == 200
        assert "connection" not in fields
        assert fields["keep-alive"] == "timeout=30, max=%d" % (100 - n)


def test_http11_client_that_sends_keep_alive_gets_it_back(raw):
    client = raw()
    for n, value in enumerate(["keep-alive", "Keep-Alive", "TE, keep-alive"]):
        status, fields, _ = client.get("/sample.txt", "Connection: %s\r\nTE: trailers\r\n" % value).response()
        assert status == 200
        assert fields["connection"] == "keep-alive"
        assert fields["keep-alive"] == "timeout=30, max=%d" % (100 - n)  # still counting down


def test_the_last_response_closes_even_if_keep_alive_was_asked(make_server, raw_to):
    client = raw_to(make_server(keepalive_max_requests=2))
    assert client.get("/sample.txt", "Connection: keep-alive\r\n").response()[1]["connection"] == "keep-alive"
    assert client.get("/sample.txt", "Connection: keep-alive\r\n").response()[1]["connection"] == "close"


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_with_connection_keep_alive_sees_it(server):
    command = ["curl", *server.curl_args, "-sS", "-D", "-", "-o", "/dev/null", "-H", "Connection: keep-alive"]
    result = subprocess.run([*command, server.url + "sample.txt"], capture_output=True, timeout=30)
    assert b"\r\nConnection: keep-alive\r\n" in result.stdout


def test_http11_connection_close_closes(raw):
    client = raw()
    status, fields, _ = client.get("/sample.txt", "Connection: close\r\n").response()
    assert status == 200
    assert fields["connection"] == "close"
    assert "keep-alive" not in fields
    assert client.at_eof()


def test_http10_closes_unless_keep_alive(raw):
    client = raw()
    status, fields, _ = client.send(request("1.0")).response()
    assert fields["connection"] == "close"
    assert client.at_eof()
    client = raw()
    for _ in range(2):
        status, fields, _ = client.send(request("1.0", "Connection: keep-alive\r\n")).response()
        assert status == 200
        assert fields["connection"] == "keep-alive"
        assert fields["keep-alive"].startswith("timeout=30")


def test_every_response_has_date_server_content_length(raw):
    client = raw()
    for target in ("/", "/missing", "/sample.txt"):
        client.get(target)
        _, fields, body = client.response()
        assert fields["date"].endswith(" GMT") and len(fields["date"]) == 29  # IMF-fixdate
        assert fields["server"].startswith("reactor")
        assert fields["content-length"] == str(len(body))


def test_max_requests_per_connection(make_server):
    server = make_server(keepalive_max_requests=5)
    client = RawClient(server.connect())
    for n in range(1, 6):
        _, fields, _ = client.get("/sample.txt").response()
        if n < 5:
            assert fields["keep-alive"] == "timeout=30, max=%d" % (5 - n + 1)
        else:
            assert fields["connection"] == "close"
    assert client.at_eof()


def test_default_100th_response_closes(raw):
    """The seed's limit: "Maximum 100 requests per connection" (Keep-Alive: max=100)."""
    client = raw()
    for _ in range(100):  # pipelined: the replies fit the socket buffers
        client.get("/sample.txt")
    for n in range(1, 101):
        _, fields, _ = client.response()
        assert fields.get("connection") == ("close" if n == 100 else None), n
        assert ("keep-alive" in fields) == (n < 100) and Config().keepalive_max_requests == 100
    assert client.at_eof()


def test_idle_connection_is_closed_after_keepalive_timeout(make_server):
    server = make_server(keepalive_timeout_s=0.3)
    client = RawClient(server.connect(timeout=5))
    _, fields, _ = client.get("/sample.txt").response()
    assert fields["keep-alive"].startswith("timeout=0")
    assert client.at_eof()  # closed by the server well before the 5 s socket timeout


def test_pipelined_requests_answered_in_order(raw, server):
    client = raw()
    targets = ["/sample.txt", "/missing", "/notes.txt", "/sample.json"]
    client.send(b"".join(("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (t, client.host)).encode() for t in targets))
    statuses = []
    for target in targets:
        status, _, body = client.response()
        statuses.append(status)
        if status == 200:
            assert body == (server.root / target[1:]).read_bytes()
    assert statuses == [200, 404, 200, 200]


def test_request_split_across_many_reads(raw):
    client = raw()
    data = ("GET /sample.txt HTTP/1.1\r\nHost: %s\r\n\r\n" % client.host).encode()
    for i in range(len(data)):
        client.sock.sendall(data[i : i + 1])
    assert client.response()[0] == 200


def test_fifty_concurrent_keepalive_clients_one_loop_thread(server):
    loop_threads = set()
    errors = []
    barrier = threading.Barrier(50, timeout=10)

    def client(i):
        try:
            conn = server.http(timeout=10)
            barrier.wait()
            for _ in range(5):
                conn.request("GET", "/sample.txt")
                response = conn.getresponse()
                assert response.status == 200
                response.read()
            conn.close()
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(50)]
    before = {t.name for t in threading.enumerate()}
    for t in threads:
        t.start()
    loop_threads.add(server.call(lambda: threading.current_thread().name))
    for t in threads:
        t.join(30)
    assert not errors
    assert loop_threads == {"reactor-loop"}
    # The server added no thread per connection: only its loop and the fixed pool.
    server_threads = {t.name for t in threading.enumerate()} - before
    assert all(name.startswith("reactor-worker") for name in server_threads)
    assert len(server_threads) <= server.server.config.pool_size


def test_connection_table_empties_after_clients_leave(server):
    sockets = [server.connect() for _ in range(10)]
    for sock in sockets:
        RawClient(sock).get("/sample.txt").response()
    assert server.call(lambda: len(server.server.sessions)) == 10
    for sock in sockets:
        rest = half_close(sock)  # FIN, or close_notify over TLS
        assert RawClient(rest).at_eof()
        rest.close()
    assert server.call(lambda: len(server.server.sessions)) == 0


def test_huge_keepalive_max_is_just_a_number(make_server):
    """The Keep-Alive strings are cached per response number, never built for the whole range."""
    server = make_server(keepalive_max_requests=10**9)
    client = RawClient(server.connect())
    for n in range(1, 4):
        _, fields, _ = client.get("/sample.txt").response()
        assert fields["keep-alive"] == "timeout=30, max=%d" % (10**9 - n + 1)
    assert len(server.server.context._keep_alive_values) == 3

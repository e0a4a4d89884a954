"""Exercise 3 (docs/exercises.md): X-Request-Id = "<connection id>-<request number>" on every response."""

import re

from conftest import RawClient, recv_until_closed


def test_request_ids_count_per_connection(server):
    first = RawClient(server.connect())
    ids = [first.get("/sample.txt").response()[1]["x-request-id"] for _ in range(3)]
    conn_ids = {value.split("-")[0] for value in ids}
    assert len(conn_ids) == 1
    assert [value.split("-")[1] for value in ids] == ["1", "2", "3"]
    second = RawClient(server.connect())
    other = second.get("/missing").response()[1]["x-request-id"]
    assert other.split("-")[0] not in conn_ids and other.endswith("-1")


def test_error_responses_carry_the_id_too(server):
    client = RawClient(server.connect())
    status, fields, _ = client.send(b"NOT A REQUEST\r\n\r\n").response()
    assert status == 400
    assert fields["x-request-id"].endswith("-1")


def test_100_continue_carries_the_id_of_its_request(server):
    """An interim response is a response too (RFC 9110 §15.2), and it does not go through respond()."""
    client = RawClient(server.connect())
    client.send(
        b"POST /upload HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
        b"Expect: 100-continue\r\n\r\n" % client.host.encode()
    )
    status, interim, _ = client.response()
    assert status == 100
    assert "x-request-id" in interim, "the 100 Continue was sent without X-Request-Id"
    status, final, _ = client.send(b"{}").response()
    assert status == 201
    assert interim["x-request-id"] == final["x-request-id"]


def test_the_503_at_max_connections_carries_an_id(make_server):
    """The server refuses before a Connection exists (Server._refuse); the id still names it."""
    running = make_server(max_connections=1)
    held = RawClient(running.connect())
    assert held.get("/sample.txt").response()[0] == 200
    refused = running.connect()
    refused.sendall(b"GET / HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (running.host.encode(), running.port))
    answer = recv_until_closed(refused)
    assert answer.startswith(b"HTTP/1.1 503 "), answer[:100]
    match = re.search(rb"\r\nX-Request-Id: *(\d+)-(\d+)\r\n", answer, re.I)
    assert match, "the 503 sent at --max-connections has no X-Request-Id"
    assert match.group(1) != held.get("/sample.txt").response()[1]["x-request-id"].split("-")[0].encode()
    refused.close()

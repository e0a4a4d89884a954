"""The request id (issue 25): every response carries ``X-Request-ID``.

The client's own when it sent a sane one (1-200 letters, digits and ``-._:/+=@``), else
``<prefix>-<connection>-<number>``: a random prefix per server, then two counters. Errors,
the interim ``100 Continue`` and the ``503`` sent at ``--max-connections`` carry one too.
"""

from __future__ import annotations

import re

import pytest

from conftest import RawClient, recv_until_closed, wait_for

ID = re.compile(r"[a-z2-7]{8}-(\d+)-(\d+)")  # the server's own ids: prefix, connection, request number


def ids_of(client: RawClient, count: int, target: str = "/sample.txt", extra: str = "") -> list:
    return [client.get(target, extra).response()[1]["x-request-id"] for _ in range(count)]


def test_every_response_carries_an_id_that_counts_requests_per_connection(server, raw):
    first, second = raw(), raw()
    ids = ids_of(first, 3) + ids_of(second, 1, "/missing") + ids_of(first, 1, "/sample.txt", "If-None-Match: *\r\n")
    matches = [ID.fullmatch(value) for value in ids]
    assert all(matches), ids
    assert len({value.split("-")[0] for value in ids}) == 1  # one prefix per server
    assert [m.group(2) for m in matches] == ["1", "2", "3", "1", "4"]
    assert matches[0].group(1) == matches[4].group(1) != matches[3].group(1)
    status, fields, _ = first.send(b"HEAD /sample.txt HTTP/1.1\r\nHost: %s\r\n\r\n" % first.host.encode()).response(
        head_only=True
    )
    assert status == 200 and fields["x-request-id"].endswith("-5")


def test_errors_interim_responses_and_refusals_carry_an_id_too(make_server, raw_to):
    running = make_server(max_connections=1)
    first = raw_to(running)
    status, fields, _ = first.send(b"NOT A REQUEST\r\n\r\n").response()
    assert status == 400 and ID.fullmatch(fields["x-request-id"]).group(2) == "1"
    first.close()
    wait_for(lambda: not running.call(lambda: len(running.server.sessions)), what="the first connection to close")

    client = raw_to(running)
    client.send(
        b"POST /upload HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
        b"Expect: 100-continue\r\n\r\n" % client.host.encode()
    )
    status, interim, _ = client.response()
    assert status == 100 and ID.fullmatch(interim["x-request-id"])
    status, final, _ = client.send(b"{}").response()
    assert status == 201 and final["x-request-id"] == interim["x-request-id"]

    refused = running.connect()  # the one connection allowed is held by ``client``
    refused.sendall(b"GET / HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (running.host.encode(), running.port))
    answer = recv_until_closed(refused)
    refused.close()
    assert answer.startswith(b"HTTP/1.1 503 ")
    refused_id = re.search(rb"\r\nX-Request-ID: ([^\r]+)\r\n", answer).group(1).decode()
    assert ID.fullmatch(refused_id) and refused_id.split("-")[0] == final["x-request-id"].split("-")[0]
    assert refused_id not in (final["x-request-id"], fields["x-request-id"])


@pytest.mark.parametrize(
    "sent, kept",
    [
        ("abc", True),
        ("f81d4fae-7dec-11d0-a765-00a0c91e6bf6", True),
        ("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=1", False),  # ";" and "=" pairs: not one id
        ("YmFzZTY0Lz0r+/=", True),
        ("a" * 200, True),
        ("a" * 201, False),
        ("two words", False),
        ('quote"d', False),
        ("back\\slash", False),
        ("caf\xe9", False),
        ("", False),
    ],
)
def test_a_sane_incoming_id_is_kept_any_other_replaced(server, raw, sent, kept):
    client = raw()
    line = ("X-Request-ID: %s\r\n" % sent).encode("latin-1")
    got = client.send(b"GET /sample.txt HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (client.host.encode(), line)).response()
    assert got[0] == 200
    assert (got[1]["x-request-id"] == sent) is kept
    if not kept:
        assert ID.fullmatch(got[1]["x-request-id"])


def test_two_id_field_lines_are_not_one_id(server, raw):
    client = raw()
    value = client.get("/sample.txt", "X-Request-ID: one\r\nX-Request-ID: two\r\n").response()[1]["x-request-id"]
    assert ID.fullmatch(value)


def test_an_applications_own_id_is_dropped_for_the_servers(make_server):
    """A WSGI application's X-Request-ID would make two (RFC 9110 §5.3): the server's, which the log names, stays."""

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Request-ID", "from-the-app")])
        return [environ.get("HTTP_X_REQUEST_ID", "none").encode()]

    running = make_server(wsgi_app=app)
    for sent, shown in ((b"X-Request-ID: from-the-client\r\n", b"from-the-client"), (b"", b"none")):
        sock = running.connect()
        sock.sendall(
            b"GET / HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n%s\r\n"
            % (running.host.encode(), running.port, sent)
        )
        head, _, body = recv_until_closed(sock).partition(b"\r\n\r\n")
        sock.close()
        ids = re.findall(rb"\r\nX-Request-ID: ([^\r]*)", head, re.IGNORECASE)
        assert head.startswith(b"HTTP/1.1 200 ") and body == shown  # the application sees the client's id
        assert len(ids) == 1 and (ids[0] == b"from-the-client" if sent else ID.fullmatch(ids[0].decode())), head

"""The framing decision and the persistence decision, as tables; then the wire, read back by h11.

:func:`reactor.framing.response_framing` says how a response's body is delimited (RFC 9112 §6.3)
and whether body bytes follow the head; :func:`reactor.framing.persists` whether the connection
stays open (RFC 9112 §9.3). The property at the end builds responses of every kind in a real
server and parses what it sends with h11, an independent implementation, as the client.
"""

from __future__ import annotations

import itertools

import h11
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reactor.framing import (
    CHUNKED,
    CHUNKED_HEAD,
    CLOSE_DELIMITED,
    CLOSE_DELIMITED_HEAD,
    LENGTH,
    LENGTH_HEAD,
    NO_BODY,
    BodyFraming,
    persists,
    response_framing,
)
from reactor.response import IterableStream, Response

JSON_ACCESS_LOG = True  # every response these tests provoke must log one line json.loads reads (conftest)

STATUSES = [100, 101, 103, 200, 201, 204, 206, 301, 304, 400, 404, 500, 503]
METHODS = ["GET", "HEAD", "POST"]
VERSIONS = ["1.0", "1.1", None]  # None: no request-line was parsed (a 400 for a bad one)
LENGTHS = [None, 0, 13]  # None: a stream of unknown length; else bytes, a file, or a stream that states it


# (status, method, version, length) -> decision, for the rows that pin each rule down.
TABLE = [
    ((101, "GET", "1.1", None), NO_BODY),  # a switch: no body, no Content-Length
    ((100, "GET", "1.1", 0), NO_BODY),
    ((204, "GET", "1.1", 13), NO_BODY),  # whatever the handler made, a 204 has no body
    ((304, "GET", "1.0", 13), NO_BODY),
    ((304, "HEAD", "1.1", None), NO_BODY),
    ((200, "GET", "1.1", 13), LENGTH),
    ((200, "GET", "1.1", 0), LENGTH),  # Content-Length: 0, not chunked
    ((200, "GET", "1.0", 13), LENGTH),
    ((404, "POST", None, 13), LENGTH),  # an error before the request-line was read
    ((200, "HEAD", "1.1", 13), LENGTH_HEAD),  # the GET's Content-Length, no body
    ((200, "GET", "1.1", None), CHUNKED),
    ((500, "POST", "1.1", None), CHUNKED),
    ((200, "HEAD", "1.1", None), CHUNKED_HEAD),
    ((200, "GET", "1.0", None), CLOSE_DELIMITED),  # no chunked coding for HTTP/1.0
    ((200, "GET", None, None), CLOSE_DELIMITED),
    ((200, "HEAD", "1.0", None), CLOSE_DELIMITED_HEAD),
]


@pytest.mark.parametrize("case, expected", TABLE, ids=[repr(case) for case, _ in TABLE])
def test_framing_table(case, expected):
    status, method, version, length = case
    assert response_framing(method == "HEAD", version, status, length) == expected


@pytest.mark.parametrize(
    "status, method, version, length", list(itertools.product(STATUSES, METHODS, VERSIONS, LENGTHS))
)
def test_framing_rules_hold_for_every_combination(status, method, version, length):
    kind, send_body = response_framing(method == "HEAD", version, status, length)
    if status < 200 or status in (204, 304):
        assert (kind, send_body) == (BodyFraming.NO_BODY, False)  # RFC 9110 §6.4.1, §8.6
        return
    assert send_body is (method != "HEAD")  # RFC 9110 §9.3.2
    if length is not None:
        assert kind is BodyFraming.CONTENT_LENGTH
    elif version == "1.1":
        assert kind is BodyFraming.CHUNKED  # RFC 9112 §7.1
    else:
        assert kind is BodyFraming.CLOSE_DELIMITED  # RFC 9112 §6.3 rule 8


def keep(framing=LENGTH, complete=True, client=True, close=False, responses=1, max_requests=100, stopping=False):
    return persists(framing, complete, client, close, responses, max_requests, stopping)


def test_persistence_table():
    assert keep() is True
    assert keep(complete=False) is False  # the unread rest of the request would be taken for the next
    assert keep(client=False) is False  # Connection: close, or HTTP/1.0 without keep-alive
    assert keep(close=True) is False
    assert keep(responses=99) is True and keep(responses=100) is False  # the 100th is the last
    assert keep(stopping=True) is False
    assert keep(framing=CLOSE_DELIMITED) is False  # the body ends with the connection
    assert keep(framing=CLOSE_DELIMITED_HEAD) is True  # a HEAD's message ends with its head
    assert keep(framing=CHUNKED) is True and keep(framing=NO_BODY) is True


# -- the wire, read back by h11 ------------------------------------------------------------

KINDS = ["bytes", "stream", "stream-stating-length"]


@pytest.fixture
def answering(make_server, monkeypatch):
    """A server whose /case/N answers with the response described by ``specs[N]``."""
    running = make_server()
    app = running.server.app
    original = app.route
    specs = {}

    def route(conn, request):
        path = request.head.path
        if not path.startswith("/case/"):
            return original(conn, request)
        status, kind, body, fields = specs[int(path[6:])]
        if kind == "bytes":
            response = Response(status, fields, body)
        else:
            if kind == "stream-stating-length":
                fields = [*fields, ("Content-Length", str(len(body)))]
            blocks = [body[i : i + 5] for i in range(0, len(body), 5)] + [b""]
            response = Response(status, fields, stream=IterableStream(blocks, pool=conn.ctx.app_pool))
        request.route = lambda conn, request: response
        return None

    monkeypatch.setattr(app, "route", route)
    running.specs = specs
    return running


FIELD_NAMES = st.sampled_from(
    ["X-Test", "Cache-Control", "Content-Type", "X-Trace-Id"]
)  # not X-Request-ID: the server adds it
FIELD_VALUES = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-=; ", min_size=1, max_size=20).map(str.strip)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    status=st.sampled_from([200, 201, 204, 206, 304, 404, 500]),
    kind=st.sampled_from(KINDS),
    body=st.binary(max_size=40),
    method=st.sampled_from(["GET", "HEAD"]),
    version=st.sampled_from(["1.0", "1.1"]),
    fields=st.lists(st.tuples(FIELD_NAMES, FIELD_VALUES.filter(bool)), max_size=3, unique_by=lambda f: f[0]),
)
def test_what_goes_on_the_wire_parses_back_with_h11(answering, status, kind, body, method, version, fields):
    number = len(answering.specs)
    answering.specs[number] = (status, kind, body, fields)
    target = "/case/%d" % number
    client = h11.Connection(our_role=h11.CLIENT)
    # h11 writes only HTTP/1.1; an HTTP/1.0 request goes out by hand, and h11 is told the same method.
    client.send(h11.Request(method=method, target=target, headers=[("Host", "127.0.0.1:%d" % answering.port)]))
    sock = answering.connect()
    try:
        host = b"Host: 127.0.0.1:%d\r\n" % answering.port
        if version == "1.0":
            host += b"Connection: keep-alive\r\n"  # so that only the framing can make it close
        sock.sendall(b"%s %s HTTP/%s\r\n%s\r\n" % (method.encode(), target.encode(), version.encode(), host))
        response, data, ended = None, b"", False
        while not ended:
            event = client.next_event()
            if event is h11.NEED_DATA:
                try:
                    chunk = sock.recv(65536)
                except (TimeoutError, ConnectionResetError):
                    chunk = b""
                client.receive_data(chunk)
            elif isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data):
                data += event.data
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                ended = True
    finally:
        sock.close()
    assert response is not None and response.status_code == status
    got = {name.decode().lower(): value.decode() for name, value in response.headers}
    for name, value in fields:
        assert got[name.lower()] == value
    no_body = method == "HEAD" or status in (204, 304)
    assert data == (b"" if no_body else body)
    if status in (204, 304):
        assert "content-length" not in got and "transfer-encoding" not in got
    elif kind == "stream" and version == "1.1":
        assert got["transfer-encoding"] == "chunked" and "content-length" not in got  # also for HEAD: what GET gets
    elif kind == "stream":  # HTTP/1.0: close-delimited, unless HEAD (its message ends with the head)
        assert "transfer-encoding" not in got and "content-length" not in got
        assert (got.get("connection") == "close") is (method == "GET")
    else:  # bytes, or a stream that states its length: that length, once, for HEAD too
        assert got["content-length"] == str(len(body)) and "transfer-encoding" not in got

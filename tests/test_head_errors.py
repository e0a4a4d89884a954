"""No content in any response to HEAD, errors included (RFC 9110 §9.3.2; issue 15 item 3).

A client that keeps the connection reads whatever follows a response head to HEAD as the
start of the next response, so parse errors, limits, timeouts and 5xx answers must all
leave out their body, as the 404 path always did. The corpus's head errors run here again
with their GET turned into HEAD.
"""

from __future__ import annotations

import socket
import threading
from typing import Callable, Dict, Iterator, Tuple

import pytest
from corpus import Case
from test_malformed import CORPUS_HOSTS, HEAD_ERRORS

from conftest import RawClient, RunningServer, copy_resources, recv_until_closed
from reactor.config import Config
from reactor.handlers.static import StaticFiles
from reactor.server import Server as ReactorServer

JSON_ACCESS_LOG = True  # every response these tests provoke must log one line json.loads reads (conftest)

Server = Callable[..., RunningServer]

#: The corpus's head errors sent by GET, resent as HEAD.
HEAD_CASES = [case for case in HEAD_ERRORS if case.raw.startswith(b"GET ")]


def as_head(raw: bytes) -> bytes:
    assert raw.startswith(b"GET ")
    return b"HEAD " + raw[4:]


def assert_bodiless(client: RawClient, status: int) -> Dict[str, str]:
    """One response head with ``status``, nothing after it, then the end of the stream."""
    got, fields, _ = client.response(head_only=True)
    assert got == status
    assert client.at_eof(), "bytes after the head of a response to HEAD: %r" % client.buf[:80]
    return fields


@pytest.fixture(scope="module")
def head_servers(tmp_path_factory: pytest.TempPathFactory) -> "Iterator[Dict[Tuple, RunningServer]]":
    servers: Dict[Tuple, RunningServer] = {}
    root = copy_resources(tmp_path_factory.mktemp("head"))
    for case in HEAD_CASES:
        key = tuple(sorted(case.limits.items()))
        if key not in servers:
            config = Config(host="127.0.0.1", port=0, root=root, allowed_hosts=CORPUS_HOSTS, **case.limits)
            server = ReactorServer(config)
            server.listen()
            thread = threading.Thread(target=server.serve_forever, name="reactor-loop", daemon=True)
            thread.start()
            servers[key] = RunningServer(server, thread)
    yield servers
    for running in servers.values():
        running.stop()


def test_the_corpus_has_head_errors_to_turn_into_head() -> None:
    assert len(HEAD_CASES) >= 40
    assert {case.status for case in HEAD_CASES} >= {400, 414, 431, 505}


@pytest.mark.parametrize("case", HEAD_CASES, ids=lambda case: case.source)
def test_corpus_error_to_head_has_no_body(case: Case, head_servers: "Dict[Tuple, RunningServer]") -> None:
    client = RawClient(head_servers[tuple(sorted(case.limits.items()))].connect())
    try:
        client.send(as_head(case.raw))
        if case.eof:
            client.sock.shutdown(socket.SHUT_WR)
        got, _fields, _ = client.response(head_only=True)
        assert 400 <= got < 600
        assert client.at_eof(), "bytes after the head of a response to HEAD: %r" % client.buf[:80]
    finally:
        client.close()


@pytest.mark.parametrize(
    "field_line",
    [b"Bad : v", b"X-A: 1\r\n folded", b": empty name", b"X-A: a\x00b"],
    ids=["space-before-colon", "obs-fold", "empty-name", "nul-in-value"],
)
def test_400_to_head_from_the_issue(field_line: bytes, raw: Callable[[], RawClient]) -> None:
    client = raw()
    client.send(b"HEAD /foo HTTP/1.1\r\nHost: " + client.host.encode() + b"\r\n" + field_line + b"\r\n\r\n")
    fields = assert_bodiless(client, 400)
    assert int(fields["content-length"]) > 0  # the length a GET would get, but no bytes


def test_header_timeout_to_head_has_no_body(make_server: Server, raw_to: Callable[[RunningServer], RawClient]) -> None:
    client = raw_to(make_server(header_timeout_s=0.3))
    client.send(b"HEAD / HTTP/1.1\r\nHost: " + client.host.encode() + b"\r\n")  # never the empty line
    assert_bodiless(client, 408)


def test_body_timeout_and_413_to_head_have_no_body(
    make_server: Server, raw_to: Callable[[RunningServer], RawClient]
) -> None:
    running = make_server(body_timeout_s=0.3, max_body_bytes=100)
    client = raw_to(running)
    client.send(b"HEAD / HTTP/1.1\r\nHost: " + client.host.encode() + b"\r\nContent-Length: 5\r\n\r\nab")
    assert_bodiless(client, 408)
    client = raw_to(running)
    client.send(b"HEAD / HTTP/1.1\r\nHost: " + client.host.encode() + b"\r\nContent-Length: 101\r\n\r\n")
    assert_bodiless(client, 413)


def test_500_to_head_has_no_body(
    make_server: Server, raw_to: Callable[[RunningServer], RawClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: StaticFiles, conn: object, request: object) -> None:
        raise RuntimeError("a bug in a handler")

    monkeypatch.setattr(StaticFiles, "get", broken)
    client = raw_to(make_server())
    client.send(b"HEAD / HTTP/1.1\r\nHost: " + client.host.encode() + b"\r\n\r\n")
    assert_bodiless(client, 500)


def test_503_from_a_saturated_pool_to_head_has_no_body(
    make_server: Server, raw_to: Callable[[RunningServer], RawClient]
) -> None:
    running = make_server(cache_max_bytes=0)
    running.server.pool.submit = lambda job, args, callback: False  # type: ignore[method-assign]
    client = raw_to(running)
    client.send(b"HEAD /index.html HTTP/1.1\r\nHost: " + client.host.encode() + b"\r\nConnection: close\r\n\r\n")
    fields = assert_bodiless(client, 503)
    assert fields["retry-after"] == "1"


@pytest.mark.parametrize("method", [b"HEAD", b"GET"])
def test_refusal_at_the_connection_limit_honours_head(method: bytes, tmp_path) -> None:
    server = ReactorServer(Config(host="127.0.0.1", port=0, root=copy_resources(tmp_path)))
    ours, theirs = socket.socketpair()
    try:
        theirs.settimeout(5)
        theirs.sendall(method + b" / HTTP/1.1\r\nHost: a\r\n\r\n")
        server._refuse(ours)
        reply = recv_until_closed(theirs)
    finally:
        theirs.close()
        server.pool.shutdown()
        server.loop.close()
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 ")
    assert b"\r\nRetry-After: 1" in head
    assert (body == b"") == (method == b"HEAD")

"""Heads of hot files made from cached parts are byte for byte what the general path makes."""

from __future__ import annotations

import time

import pytest

from reactor.config import Config
from reactor.connection import SERVER_NAME, Collaborators
from reactor.events import RequestHead, TargetForm
from reactor.response import FrozenFields
from reactor.serializer import http_date, response_head
from reactor.sessions import SessionTable
from reactor.stats import Stats

JSON_ACCESS_LOG = True  # every response these tests provoke must log one line json.loads reads (conftest)

FIELDS = FrozenFields((("Content-Type", "text/plain; charset=utf-8"), ("ETag", '"abc"'), ("Accept-Ranges", "bytes")))


@pytest.fixture(autouse=True)
def _one_second(monkeypatch):
    """Both paths read the clock; at a second's turn between them their Date lines differ."""
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now)


def collaborators(config):
    return Collaborators(config, None, None, Stats(), None, SessionTable())


def request_head(http_version, request_id=None):
    """A RequestHead with what the persistence fields and the id depend on."""
    return RequestHead(
        "GET", "/", TargetForm.ORIGIN, "/", "h", http_version, (), True, 0, False, False, frozenset(), request_id
    )


ID_START = b"X-Request-ID: k7f3q9x2-7-"  # what the connection makes once (Connection._id_start)


def cached(ctx, status, fields, length, keep_alive, say_keep_alive, responses, request_id=None):
    # HTTP/1.0 must be told it persists; a 1.1 client that did not ask is not.
    head = request_head("1.0" if say_keep_alive else "1.1", request_id)
    return ctx.cached_head(status, fields, length, keep_alive, head, responses, ID_START)


def general(ctx, status, fields, length, keep_alive, say_keep_alive, responses, request_id=None):
    """What Connection.respond builds for a response with a list of fields."""
    lines = [
        ("Date", http_date()),
        ("Server", SERVER_NAME),
        *fields,
        *ctx.config.added_fields,
        ("Content-Length", str(length)),
        ("X-Request-ID", request_id or "k7f3q9x2-7-%d" % responses),
    ]
    if keep_alive:
        if say_keep_alive:
            lines.append(("Connection", "keep-alive"))
        lines.append(("Keep-Alive", ctx.keep_alive_value(responses)))
    else:
        lines.append(("Connection", "close"))
    return response_head(status, lines)


@pytest.mark.parametrize(
    "config", [Config(), Config(cors=True, extra_headers=(("X-Test", "1"),))], ids=["plain", "added-fields"]
)
@pytest.mark.parametrize("keep_alive, say_keep_alive", [(True, False), (True, True), (False, False)])
@pytest.mark.parametrize("request_id", [None, "client-id-1"], ids=["own-id", "client-id"])
def test_cached_head_equals_the_general_path(config, keep_alive, say_keep_alive, request_id):
    ctx = collaborators(config)
    for responses in (1, 2, 99, 2000):  # 2000: past the per-response-number cache
        for status, length in ((200, 1024), (200, 1024), (206, 10), (200, 7)):
            got = cached(ctx, status, FIELDS, length, keep_alive, say_keep_alive, responses, request_id)
            assert got == general(ctx, status, FIELDS, length, keep_alive, say_keep_alive, responses, request_id)


def test_a_new_tuple_of_fields_gets_its_own_head():
    """A file's new version comes with new fields (a new ETag): never the old head."""
    ctx = collaborators(Config())
    old = cached(ctx, 200, FIELDS, 5, True, False, 1)
    newer = FrozenFields((FIELDS[0], ("ETag", '"def"'), FIELDS[2]))
    new = cached(ctx, 200, newer, 5, True, False, 1)
    assert b'"abc"' in old and b'"def"' in new and b'"abc"' not in new


def test_a_field_that_could_inject_another_is_refused_on_the_cached_path_too():
    ctx = collaborators(Config())
    with pytest.raises(ValueError):
        cached(ctx, 200, FrozenFields((("X-Bad", "a\r\nSet-Cookie: x"),)), 5, True, False, 1)


def test_hot_file_heads_over_keep_alive(raw):
    """Through a real server: the same file twice, then its new version, on one connection."""
    client = raw()
    first = client.get("/sample.txt").response()
    second = client.get("/sample.txt").response()
    assert first[0] == second[0] == 200 and first[2] == second[2]
    assert first[1]["etag"] == second[1]["etag"]
    assert first[1]["keep-alive"].endswith("max=100") and second[1]["keep-alive"].endswith("max=99")
    assert set(first[1]) == set(second[1])

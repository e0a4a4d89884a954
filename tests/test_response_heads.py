"""Heads of hot files made from cached parts are byte for byte what the general path makes."""

from __future__ import annotations

import pytest

from reactor.config import Config
from reactor.connection import SERVER_NAME, Collaborators
from reactor.serializer import http_date, response_head
from reactor.stats import Stats

FIELDS = (("Content-Type", "text/plain; charset=utf-8"), ("ETag", '"abc"'), ("Accept-Ranges", "bytes"))


def general(ctx, status, fields, length, keep_alive, say_keep_alive, responses):
    """What Connection.respond builds for a response with a list of fields."""
    lines = [
        ("Date", http_date()),
        ("Server", SERVER_NAME),
        *fields,
        *ctx.config.added_fields,
        ("Content-Length", str(length)),
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
def test_cached_head_equals_the_general_path(config, keep_alive, say_keep_alive):
    ctx = Collaborators(config, None, None, Stats(), None, None, lambda conn: None)
    for responses in (1, 2, 99, 2000):  # 2000: past the per-response-number cache
        for status, length in ((200, 1024), (200, 1024), (206, 10), (200, 7)):
            got = ctx.cached_head(status, FIELDS, length, keep_alive, say_keep_alive, responses)
            assert got == general(ctx, status, FIELDS, length, keep_alive, say_keep_alive, responses)


def test_a_new_tuple_of_fields_gets_its_own_head():
    """A file's new version comes with new fields (a new ETag): never the old head."""
    ctx = Collaborators(Config(), None, None, Stats(), None, None, lambda conn: None)
    old = ctx.cached_head(200, FIELDS, 5, True, False, 1)
    newer = (FIELDS[0], ("ETag", '"def"'), FIELDS[2])
    new = ctx.cached_head(200, newer, 5, True, False, 1)
    assert b'"abc"' in old and b'"def"' in new and b'"abc"' not in new


def test_a_field_that_could_inject_another_is_refused_on_the_cached_path_too():
    ctx = Collaborators(Config(), None, None, Stats(), None, None, lambda conn: None)
    with pytest.raises(ValueError):
        ctx.cached_head(200, (("X-Bad", "a\r\nSet-Cookie: x"),), 5, True, False, 1)


def test_hot_file_heads_over_keep_alive(raw):
    """Through a real server: the same file twice, then its new version, on one connection."""
    client = raw()
    first = client.get("/sample.txt").response()
    second = client.get("/sample.txt").response()
    assert first[0] == second[0] == 200 and first[2] == second[2]
    assert first[1]["etag"] == second[1]["etag"]
    assert first[1]["keep-alive"].endswith("max=100") and second[1]["keep-alive"].endswith("max=99")
    assert set(first[1]) == set(second[1])

"""Validators and conditional requests (RFC 9110 §8.8, §13): ETag, Last-Modified, 304, 412.

Real requests with http.client against an in-process server; the hot-file cache is
off where a test edits files, so each request sees the disk (the cache has its own
tests in test_static_cache.py).
"""

from __future__ import annotations

import email.utils
import os
import re
import time

import pytest

from conftest import fetch
from reactor.handlers import conditional
from reactor.handlers.conditional import Conditions, evaluate, parse_entity_tags, parse_http_date

BOTH_TRANSPORTS = True  # each test with a server runs over plain TCP and over TLS (conftest)
JSON_ACCESS_LOG = True  # every response these tests provoke must log one line json.loads reads (conftest)


@pytest.fixture
def uncached(make_server):
    return make_server(cache_max_bytes=0)


# -- validators on 200 -------------------------------------------------------------------


def test_strong_etag_and_last_modified_on_200(server):
    response, body = fetch(server, "GET", "/sample.txt")
    assert response.status == 200
    etag = response.getheader("ETag")
    assert re.fullmatch(r'"[0-9a-f]+-[0-9a-f]+-[0-9a-f]+"', etag), etag  # strong: no W/
    info = os.stat(server.root / "sample.txt")
    assert etag == conditional.make_etag(info.st_ino, info.st_size, info.st_mtime_ns)
    assert email.utils.parsedate_to_datetime(response.getheader("Last-Modified")).timestamp() == int(info.st_mtime)
    again, _ = fetch(server, "GET", "/sample.txt")
    assert again.getheader("ETag") == etag


def test_etag_changes_when_the_file_changes(uncached):
    path = uncached.root / "sample.txt"
    first, _ = fetch(uncached, "GET", "/sample.txt")
    path.write_bytes(b"new content\n")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 5_000_000_000))
    second, body = fetch(uncached, "GET", "/sample.txt")
    assert body == b"new content\n"
    assert second.getheader("ETag") != first.getheader("ETag")


def test_last_modified_is_never_in_the_future(uncached):
    path = uncached.root / "sample.txt"
    future = time.time() + 3600
    os.utime(path, (future, future))
    response, _ = fetch(uncached, "GET", "/sample.txt")
    last_modified = email.utils.parsedate_to_datetime(response.getheader("Last-Modified")).timestamp()
    assert last_modified <= time.time() + 1


# -- If-None-Match and If-Modified-Since → 304 --------------------------------------------


@pytest.fixture
def validators(server):
    response, _ = fetch(server, "GET", "/sample.txt")
    return response.getheader("ETag"), response.getheader("Last-Modified")


@pytest.mark.parametrize(
    "template",
    ["{etag}", "W/{etag}", '"other", {etag}', '"a", "b" , W/{etag}, "c"', "*", ", {etag},"],
)
def test_if_none_match_matching_is_304_with_validators_and_no_body(server, validators, template):
    etag, last_modified = validators
    conn = server.http(timeout=5)
    conn.request("GET", "/sample.txt", headers={"If-None-Match": template.format(etag=etag)})
    response = conn.getresponse()
    assert response.status == 304
    assert response.read() == b""
    assert response.getheader("ETag") == etag
    assert response.getheader("Last-Modified") == last_modified
    assert response.getheader("Content-Length") is None
    assert response.getheader("Content-Type") is None  # §15.4.5: no representation metadata
    # The connection stays usable: a 304 has no body to frame.
    conn.request("GET", "/sample.txt")
    follow = conn.getresponse()
    assert follow.status == 200 and follow.read() == (server.root / "sample.txt").read_bytes()
    conn.close()


@pytest.mark.parametrize("value", ['"nope"', '"a", W/"b"', "not-a-tag", '"unterminated'])
def test_if_none_match_not_matching_or_malformed_is_200(server, validators, value):
    response, body = fetch(server, "GET", "/sample.txt", {"If-None-Match": value})
    assert response.status == 200
    assert body == (server.root / "sample.txt").read_bytes()


def test_head_with_if_none_match_is_304(server, validators):
    etag, _ = validators
    response, body = fetch(server, "HEAD", "/sample.txt", {"If-None-Match": etag})
    assert response.status == 304 and body == b""


def test_if_modified_since(server, validators):
    _etag, last_modified = validators
    response, body = fetch(server, "GET", "/sample.txt", {"If-Modified-Since": last_modified})
    assert response.status == 304 and body == b""
    later = email.utils.formatdate(email.utils.parsedate_to_datetime(last_modified).timestamp() + 60, usegmt=True)
    if email.utils.parsedate_to_datetime(later).timestamp() <= time.time():
        assert fetch(server, "GET", "/sample.txt", {"If-Modified-Since": later})[0].status == 304
    earlier = email.utils.formatdate(email.utils.parsedate_to_datetime(last_modified).timestamp() - 1, usegmt=True)
    assert fetch(server, "GET", "/sample.txt", {"If-Modified-Since": earlier})[0].status == 200


@pytest.mark.parametrize(
    "value",
    [
        "yesterday",
        "Sun, 06 Nov 1994 08:49:37 +0100",  # not GMT
        "{lm}, {lm}",  # a list: more than one member (§13.1.3)
        "Fri, 31 Dec 9999 23:59:59 GMT",  # in the future
    ],
)
def test_invalid_if_modified_since_is_ignored(server, validators, value):
    _etag, last_modified = validators
    response, _ = fetch(server, "GET", "/sample.txt", {"If-Modified-Since": value.format(lm=last_modified)})
    assert response.status == 200


def test_if_none_match_takes_precedence_over_if_modified_since(server, validators):
    _etag, last_modified = validators
    response, _ = fetch(server, "GET", "/sample.txt", {"If-None-Match": '"stale"', "If-Modified-Since": last_modified})
    assert response.status == 200  # §13.2.2 step 3: If-Modified-Since is not evaluated


# -- If-Match and If-Unmodified-Since → 412 -----------------------------------------------


def test_if_match(server, validators):
    etag, _ = validators
    assert fetch(server, "GET", "/sample.txt", {"If-Match": etag})[0].status == 200
    assert fetch(server, "GET", "/sample.txt", {"If-Match": '"x", ' + etag})[0].status == 200
    assert fetch(server, "GET", "/sample.txt", {"If-Match": "*"})[0].status == 200
    response, body = fetch(server, "GET", "/sample.txt", {"If-Match": '"other"'})
    assert response.status == 412
    assert b"If-Match" in body
    # If-Match uses the strong comparison: a weak tag never matches (§13.1.1).
    assert fetch(server, "GET", "/sample.txt", {"If-Match": "W/" + etag})[0].status == 412
    assert fetch(server, "GET", "/sample.txt", {"If-Match": "garbage"})[0].status == 412


def test_if_unmodified_since(server, validators):
    etag, last_modified = validators
    stamp = email.utils.parsedate_to_datetime(last_modified).timestamp()
    earlier = email.utils.formatdate(stamp - 10, usegmt=True)
    assert fetch(server, "GET", "/sample.txt", {"If-Unmodified-Since": last_modified})[0].status == 200
    assert fetch(server, "GET", "/sample.txt", {"If-Unmodified-Since": earlier})[0].status == 412
    assert fetch(server, "GET", "/sample.txt", {"If-Unmodified-Since": "garbage"})[0].status == 200
    # If-Match present: If-Unmodified-Since is not evaluated (§13.2.2 step 2).
    both = {"If-Match": etag, "If-Unmodified-Since": earlier}
    assert fetch(server, "GET", "/sample.txt", both)[0].status == 200


def test_if_match_failure_wins_over_if_none_match(server, validators):
    etag, _ = validators
    response, _ = fetch(server, "GET", "/sample.txt", {"If-Match": '"other"', "If-None-Match": etag})
    assert response.status == 412  # step 1 comes before step 3


def test_repeated_if_none_match_field_lines_form_one_list(server, raw, validators):
    etag, _ = validators
    client = raw()
    client.send(
        b'GET /sample.txt HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nIf-None-Match: "a"\r\nIf-None-Match: %s\r\n\r\n'
        % (server.port, etag.encode())
    )
    status, fields, body = client.response()
    assert status == 304 and body == b""


# -- the parsing underneath ---------------------------------------------------------------


def test_parse_http_date_accepts_the_three_formats():
    expected = 784111777
    assert parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT") == expected
    assert parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT") == expected
    assert parse_http_date("Sun Nov  6 08:49:37 1994") == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "Sun, 06 Nov 1994 08:49:37",
        "Sun, 06 Nov 1994 08:49:37 UTC",
        "Sun, 32 Nov 1994 08:49:37 GMT",
        "Sun, 06 Foo 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 25:49:37 GMT",
        "1994-11-06T08:49:37Z",
    ],
)
def test_parse_http_date_refuses_the_rest(value):
    assert parse_http_date(value) is None


def test_parse_entity_tags():
    assert parse_entity_tags('"a", W/"b",, "c"') == [(False, '"a"'), (True, '"b"'), (False, '"c"')]
    assert parse_entity_tags('""') == [(False, '""')]
    assert parse_entity_tags('"a" "b"') is None
    assert parse_entity_tags("a") is None
    assert parse_entity_tags('w/"a"') is None  # weak = %s"W/": case-sensitive


def test_evaluate_follows_the_precedence_of_section_13_2_2():
    etag = '"abc"'
    now = time.time()
    lm = int(now) - 100
    lm_date = email.utils.formatdate(lm, usegmt=True)

    def status(method="GET", **fields):
        return evaluate(Conditions({k.replace("_", "-"): v for k, v in fields.items()}), etag, lm, method, now)

    assert status() is None
    assert status(if_none_match=etag) == 304
    assert status("HEAD", if_none_match=etag) == 304
    assert status("DELETE", if_none_match=etag) == 412  # not GET/HEAD: 412 instead of 304
    assert status(if_modified_since=lm_date) == 304
    assert status("DELETE", if_modified_since=lm_date) is None  # ignored for other methods
    assert status(if_match='"zzz"', if_none_match=etag) == 412
    assert status(if_match=etag, if_none_match=etag) == 304
    assert status(if_unmodified_since=email.utils.formatdate(lm - 1, usegmt=True)) == 412

"""Exercise 3 (docs/exercises.md): Server-Timing: app;dur=<milliseconds> on every final response."""

import re

from conftest import RawClient

TIMING = re.compile(r"app;dur=(\d+(?:\.\d+)?)")


def duration_ms(fields: dict) -> float:
    match = TIMING.fullmatch(fields.get("server-timing", ""))
    assert match, "no Server-Timing: app;dur=N in %r" % fields
    return float(match.group(1))


def test_every_final_response_says_how_long_it_took(server):
    client = RawClient(server.connect())
    for target in ("/sample.txt", "/sample.txt", "/missing"):  # the second comes from the hot-file cache
        status, fields, _ = client.get(target).response()
        assert status in (200, 404)
        assert 0 <= duration_ms(fields) < 5000


def test_a_request_that_could_not_be_parsed_gets_one_too(server):
    client = RawClient(server.connect())
    status, fields, _ = client.send(b"NOT A REQUEST\r\n\r\n").response()
    assert status == 400 and duration_ms(fields) >= 0


def test_an_interim_response_has_none(server):
    client = RawClient(server.connect())
    client.send(
        b"POST /upload HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
        b"Expect: 100-continue\r\n\r\n" % client.host.encode()
    )
    status, interim, _ = client.response()
    assert status == 100 and "server-timing" not in interim
    status, final, _ = client.send(b"{}").response()
    assert status == 201 and duration_ms(final) >= 0

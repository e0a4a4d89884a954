"""Unit tests of the sans-I/O request parser (no sockets).

The table of raw requests lives in ``tests/corpus/*.http`` (see ``corpus/__init__.py``
for the format); every case runs whole and byte by byte. The tests below it cover the
parser's API: pausing between requests, the sticky error, end of stream, and the
attributes the connection reads.
"""

from __future__ import annotations

from typing import List

import pytest
from corpus import CASES, INVALID, Case, describe, expected_steps, run_case

from reactor.errors import ProtocolError
from reactor.events import (
    NEED_DATA,
    PAUSED,
    BodyData,
    EndOfStream,
    RequestEnd,
    RequestHead,
    TargetForm,
)
from reactor.parser import RequestParser

GET = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"


def case_id(case: Case) -> str:
    return case.source


# -- the corpus --------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_corpus_case_whole(case: Case) -> None:
    want = expected_steps(case)
    assert describe(run_case(case), want) == want, case.rfc


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_corpus_case_byte_by_byte(case: Case) -> None:
    """Where the bytes are cut changes nothing, not even which error is reported."""
    want = expected_steps(case)
    pieces = [case.raw[i : i + 1] for i in range(len(case.raw))]
    assert describe(run_case(case, pieces), want) == want, case.rfc


@pytest.mark.parametrize("case", INVALID, ids=case_id)
def test_corpus_errors_have_one_line_reasons(case: Case) -> None:
    parser = RequestParser(**case.limits)
    parser.feed(case.raw)
    if case.eof:
        parser.feed(b"")
    with pytest.raises(ProtocolError) as info:
        for _ in range(100):  # bounded: a parser that stops raising must not hang the test
            event = parser.next_event()
            if event is PAUSED:
                parser.start_next_cycle()
            elif event is NEED_DATA or isinstance(event, EndOfStream):
                break
    error = info.value
    assert error.status == case.status
    assert error.close is True
    assert error.reason and "\n" not in error.reason and "\r" not in error.reason
    assert len(error.reason) <= 120


def test_corpus_covers_every_status_the_parser_raises() -> None:
    statuses = {case.status for case in INVALID}
    assert statuses == {400, 413, 414, 417, 431, 501, 505}


# -- one request, event by event -----------------------------------------------------


def test_events_of_a_request_with_body() -> None:
    parser = RequestParser()
    parser.feed(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhel")
    head = parser.next_event()
    assert isinstance(head, RequestHead)
    assert head == RequestHead(
        method="POST",
        target="/upload",
        target_form=TargetForm.ORIGIN,
        path="/upload",
        authority="a",
        http_version="1.1",
        fields=(("host", "a"), ("content-length", "5")),
        keep_alive=True,
        content_length=5,
        chunked=False,
        expect_continue=False,
    )
    assert head.has_body
    assert parser.next_event() == BodyData(b"hel")
    assert parser.next_event() is NEED_DATA
    parser.feed(b"lo")
    assert parser.next_event() == BodyData(b"lo")
    assert parser.next_event() == RequestEnd()
    assert parser.next_event() is PAUSED


def test_head_get_joins_repeated_fields_and_defaults() -> None:
    parser = RequestParser()
    parser.feed(b"GET / HTTP/1.1\r\nHost: a\r\nAccept: a\r\nX: 1\r\naccept: b\r\n\r\n")
    head = parser.next_event()
    assert isinstance(head, RequestHead)
    assert head.get("accept") == "a, b"
    assert head.get("x") == "1"
    assert head.get("missing") is None
    assert head.get("missing", "d") == "d"
    assert not head.has_body


def test_events_iterator_stops_when_data_is_needed_and_when_paused() -> None:
    parser = RequestParser()
    parser.feed(GET[:10])
    assert list(parser.events()) == []
    parser.feed(GET[10:] + GET)
    events = list(parser.events())
    assert [type(event) for event in events] == [RequestHead, RequestEnd]
    assert list(parser.events()) == []  # paused, although a second request is buffered
    parser.start_next_cycle()
    assert [type(event) for event in parser.events()] == [RequestHead, RequestEnd]


def test_request_line_is_kept_for_the_log() -> None:
    parser = RequestParser()
    assert parser.request_line is None
    parser.feed(GET)
    parser.next_event()
    assert parser.request_line == "GET / HTTP/1.1"
    parser.next_event()
    parser.start_next_cycle()
    assert parser.request_line is None


def test_request_line_is_kept_when_the_request_is_rejected() -> None:
    parser = RequestParser()
    parser.feed(b"GET /x HTTP/1.1\r\n\r\n")
    with pytest.raises(ProtocolError):
        parser.next_event()
    assert parser.request_line == "GET /x HTTP/1.1"


# -- pipelining and back-pressure ----------------------------------------------------


def test_parser_pauses_after_each_request_and_parses_nothing_ahead() -> None:
    parser = RequestParser()
    parser.feed(GET * 3)
    assert isinstance(parser.next_event(), RequestHead)
    assert isinstance(parser.next_event(), RequestEnd)
    for _ in range(3):
        assert parser.next_event() is PAUSED
    assert parser.buffered_bytes() == 2 * len(GET)  # the next two requests, untouched
    assert parser.start_next_cycle() is True  # the next request is there already
    assert isinstance(parser.next_event(), RequestHead)
    assert isinstance(parser.next_event(), RequestEnd)
    assert parser.start_next_cycle() is True
    parser.next_event()
    parser.next_event()
    assert parser.start_next_cycle() is False  # nothing buffered: wait for input
    assert parser.next_event() is NEED_DATA


def test_start_next_cycle_before_the_request_is_complete_is_an_error() -> None:
    parser = RequestParser()
    with pytest.raises(RuntimeError):
        parser.start_next_cycle()
    parser.feed(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\n")
    parser.next_event()
    with pytest.raises(RuntimeError):
        parser.start_next_cycle()


def test_detach_hands_over_the_bytes_behind_a_complete_request() -> None:
    """After a 101 the parser gives up what it holds, in order, and parses nothing more (h11's trailing_data)."""
    parser = RequestParser()
    upgrade = b"GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    parser.feed(upgrade + b"\x81\x85frame")
    parser.feed(b" GET / HTTP/1.1\r\n\r\n")  # looks like a request: it is the next protocol's all the same
    events = list(parser.events())
    assert [type(e) for e in events] == [RequestHead, RequestEnd]
    assert parser.next_event() is PAUSED
    assert parser.detach() == b"\x81\x85frame GET / HTTP/1.1\r\n\r\n"
    assert parser.buffered_bytes() == 0 and parser.next_event() is PAUSED


def test_detach_before_the_request_is_complete_is_an_error() -> None:
    parser = RequestParser()
    parser.feed(b"GET / HTTP/1.1\r\nHost: a\r\n")
    with pytest.raises(RuntimeError):
        parser.detach()


def test_in_message_tells_whether_a_request_has_started() -> None:
    parser = RequestParser()
    assert not parser.in_message
    parser.feed(b"G")
    assert parser.in_message
    parser.feed(GET[1:])
    parser.next_event()
    parser.next_event()
    assert parser.next_event() is PAUSED
    parser.start_next_cycle()
    assert not parser.in_message
    assert parser.buffered_bytes() == 0


def test_head_request_is_known_from_the_request_line_or_the_first_bytes() -> None:
    """For answering errors without content (RFC 9110 §9.3.2), even before the head is complete."""
    parser = RequestParser(max_header_section_bytes=64)
    assert not parser.head_request
    parser.feed(b"HEAD / HTTP/1.1\r\nHost: a\r\n")
    assert parser.next_event() is NEED_DATA
    assert parser.head_request and parser.request_line is None
    parser.feed(b"X-Long: " + b"x" * 100)
    with pytest.raises(ProtocolError):
        parser.next_event()
    assert parser.head_request
    parser = RequestParser()
    parser.feed(b"HEAD / HTTP/1.1\r\nHost : a\r\n\r\nGET / HTTP/1.1\r\n")
    with pytest.raises(ProtocolError):
        parser.next_event()
    assert parser.request_line == "HEAD / HTTP/1.1" and parser.head_request
    parser = RequestParser()
    parser.feed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nHEAD / HTTP/1.1\r\n\r\n")
    assert isinstance(parser.next_event(), RequestHead)
    assert not parser.head_request


def test_empty_lines_are_counted_per_request() -> None:
    parser = RequestParser()
    parser.feed(b"\r\n" * 8 + GET)
    assert [type(event) for event in parser.events()] == [RequestHead, RequestEnd]
    parser.start_next_cycle()
    parser.feed(b"\r\n" * 8 + GET)
    assert [type(event) for event in parser.events()] == [RequestHead, RequestEnd]


# -- errors ------------------------------------------------------------------------


def test_error_is_sticky() -> None:
    parser = RequestParser()
    parser.feed(b"GET / HTTP/1.1\r\nHost : a\r\n\r\n")
    with pytest.raises(ProtocolError) as first:
        parser.next_event()
    parser.feed(GET)
    for _ in range(3):
        with pytest.raises(ProtocolError) as again:
            parser.next_event()
        assert again.value is first.value


def test_content_length_with_thousands_of_digits_is_413_not_a_crash() -> None:
    # int() refuses strings over 4300 digits on Python 3.11+; the parser never asks it.
    parser = RequestParser()
    parser.feed(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n")
    with pytest.raises(ProtocolError) as info:
        parser.next_event()
    assert info.value.status == 413


def test_content_length_of_zeros_only_is_zero() -> None:
    parser = RequestParser()
    parser.feed(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 000\r\n\r\n")
    head = parser.next_event()
    assert isinstance(head, RequestHead) and head.content_length == 0
    assert parser.next_event() == RequestEnd()


@pytest.mark.parametrize(
    "value, status",
    [
        (b"gzip, chunked", 501),
        (b"chunked, chunked", 400),
        (b"chunked, gzip", 400),
        (b"gzip", 400),
        (b", chunked", 400),
    ],
)
def test_transfer_coding_statuses(value: bytes, status: int) -> None:
    parser = RequestParser()
    parser.feed(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: " + value + b"\r\n\r\n")
    with pytest.raises(ProtocolError) as info:
        parser.next_event()
    assert info.value.status == status


# -- end of stream -------------------------------------------------------------------


def test_end_of_stream_is_reported_once_per_call_and_stays() -> None:
    parser = RequestParser()
    parser.feed(b"")
    assert parser.next_event() == EndOfStream()
    assert parser.next_event() == EndOfStream()


def test_end_of_stream_after_a_paused_request() -> None:
    parser = RequestParser()
    parser.feed(GET)
    parser.feed(b"")
    assert [type(event) for event in parser.events()] == [RequestHead, RequestEnd]
    assert parser.next_event() is PAUSED
    parser.start_next_cycle()
    assert parser.next_event() == EndOfStream()


def test_a_complete_request_before_the_end_of_stream_is_still_parsed() -> None:
    parser = RequestParser()
    parser.feed(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi")
    parser.feed(b"")
    assert [type(event) for event in parser.events()] == [RequestHead, BodyData, RequestEnd]


def test_feeding_after_the_end_of_stream_is_a_bug() -> None:
    parser = RequestParser()
    parser.feed(b"")
    with pytest.raises(RuntimeError):
        parser.feed(GET)


# -- chunked transfer coding -----------------------------------------------------------


def test_chunk_data_is_handed_over_as_it_arrives() -> None:
    parser = RequestParser()
    parser.feed(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc")
    head = parser.next_event()
    assert isinstance(head, RequestHead) and head.chunked and head.content_length is None
    assert parser.next_event() == BodyData(b"abc")
    assert parser.next_event() is NEED_DATA
    parser.feed(b"defghijklmnop\r")
    assert parser.next_event() == BodyData(b"defghijklmnop")
    assert parser.next_event() is NEED_DATA  # the CR of the CRLF is here, its LF is not
    parser.feed(b"\n0\r\n\r\n")
    assert parser.next_event() == RequestEnd()


def test_body_data_is_never_empty() -> None:
    parser = RequestParser()
    raw = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    events: List[object] = []
    for i in range(len(raw)):
        parser.feed(raw[i : i + 1])
        events.extend(parser.events())
    bodies = [event for event in events if isinstance(event, BodyData)]
    assert all(body.data for body in bodies)
    assert b"".join(body.data for body in bodies) == b"abcde"


def test_empty_lines_then_end_of_stream_is_a_clean_close():
    """RFC 9112 §2.2: empty lines before a request-line are ignored, even when none follows."""
    from reactor.events import EndOfStream
    from reactor.parser import RequestParser

    parser = RequestParser()
    parser.feed(b"\r\n\r\n")
    parser.feed(b"")
    assert parser.next_event() == EndOfStream()


def test_the_tchar_pattern_is_defined_once():
    """Every token pattern (field names, codings, range units) is built from abnf.TCHAR."""
    from pathlib import Path

    import reactor

    tchar = "-!#$%&'*+.^_`|~0-9A-Za-z"
    sources = sorted(Path(reactor.__file__).parent.rglob("*.py"))
    holders = [path.name for path in sources if tchar in path.read_text(encoding="utf-8")]
    assert holders == ["abnf.py"], holders


def test_host_values_found_valid_are_remembered_in_a_bounded_set() -> None:
    """The Host check runs its regex once per distinct value; the memory of it stays small."""
    from reactor import parser as parser_module

    def host_status(value: bytes) -> int:
        parser = RequestParser()
        parser.feed(b"GET / HTTP/1.1\r\nHost: " + value + b"\r\n\r\n")
        try:
            parser.next_event()
        except ProtocolError as exc:
            return exc.status
        return 200

    parser_module._VALID_HOSTS.clear()
    assert host_status(b"example.com:8080") == 200
    assert "example.com:8080" in parser_module._VALID_HOSTS
    assert host_status(b"example.com:8080") == 200  # now from the set
    assert host_status(b"exa mple.com") == 400
    assert host_status(b"a/b") == 400
    assert "a/b" not in parser_module._VALID_HOSTS  # an invalid value is never remembered
    long_name = "a" * (parser_module._VALID_HOST_MAX_CHARS + 1)
    assert host_status(long_name.encode()) == 200
    assert long_name not in parser_module._VALID_HOSTS  # nor a long one: the set stays small in bytes too
    for number in range(3 * parser_module._VALID_HOSTS_MAX):
        assert host_status(b"h%d.example:%d" % (number, number)) == 200
        assert len(parser_module._VALID_HOSTS) <= parser_module._VALID_HOSTS_MAX
    assert host_status(b"a/b") == 400  # still checked after the set was emptied and refilled
    assert host_status(b"example.com:8080") == 200

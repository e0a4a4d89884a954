"""The sans-I/O WebSocket codec (reactor.websocket), without sockets: the frame corpus, whole and byte by byte,
and the encoder, the unmasking, the close payloads and the accept key.

With tests/test_websocket_props.py these take every branch of reactor/websocket.py
(tox checks 100%, as for the HTTP parser).
"""

from __future__ import annotations

import os

import pytest
from corpus.frames import CASES, INVALID, MASK, Case, expected_steps, run

from reactor.events import NEED_DATA
from reactor.websocket import (
    BINARY,
    CLOSE,
    PING,
    TEXT,
    Close,
    CloseCode,
    Echo,
    FrameParser,
    Message,
    WebSocketError,
    accept_key,
    broadcast,
    close_payload,
    encode_close,
    encode_frame,
    encode_message,
    parse_close,
    unmask,
)


def _id(case: Case) -> str:
    return case.source


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_corpus_whole(case: Case) -> None:
    assert run(case.parser(), [case.data]) == expected_steps(case), case.title


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_corpus_byte_by_byte(case: Case) -> None:
    """A byte at a time gives the same events: nothing waits for a frame's end that could be known before."""
    data = case.data
    if len(data) > 4096:  # the 64 KiB cases: every 997th cut is enough
        pieces = [data[i : i + 997] for i in range(0, len(data), 997)]
    else:
        pieces = [data[i : i + 1] for i in range(len(data))]
    assert run(case.parser(), pieces) == expected_steps(case), case.title


@pytest.mark.parametrize("case", INVALID, ids=_id)
def test_an_error_is_sticky(case: Case) -> None:
    parser = case.parser()
    steps = run(parser, [case.data])
    assert steps[-1] == ("error", case.error)
    parser.feed(encode_frame(TEXT, b"more", mask=MASK))
    with pytest.raises(WebSocketError) as again:
        parser.next_event()
    assert again.value.code == case.error
    assert parser.buffered_bytes() == 0  # nothing kept after the failure


def test_the_fail_fast_cases_fail_before_the_frame_is_complete() -> None:
    """Autobahn 6.4.x: the connection fails when the bad byte arrives, not when the frame would have ended."""
    for case in CASES:
        if "cut=" in case.title or case.title.startswith("an invalid byte fails") or "surrogate" in case.title:
            frame = case.frames[-1]
            parser = case.parser()
            parser.feed(frame)
            with pytest.raises(WebSocketError) as failed:
                parser.next_event()
            assert failed.value.code == CloseCode.INVALID_DATA


def test_in_message_and_buffered_bytes() -> None:
    parser = FrameParser()
    parser.feed(encode_frame(TEXT, b"ab", fin=False, mask=MASK))
    assert parser.next_event() is NEED_DATA
    assert parser.in_message()
    parser.feed(encode_frame(0, b"c", mask=MASK)[:3])
    assert parser.next_event() is NEED_DATA
    assert parser.buffered_bytes() == 3
    parser.feed(encode_frame(0, b"c", mask=MASK)[3:])
    assert parser.next_event() == Message("abc")
    assert not parser.in_message()


def test_a_large_frame_is_unmasked_as_it_arrives() -> None:
    """A frame larger than one read: each piece is unmasked (and decoded) at once, nothing buffered raw."""
    payload = os.urandom(200_000)
    data = encode_frame(BINARY, payload, mask=MASK)
    parser = FrameParser()
    for start in range(0, len(data), 65536):
        parser.feed(data[start : start + 65536])
        event = parser.next_event()
        assert parser.buffered_bytes() == 0
    assert event == Message(payload)


def test_max_fragments_default_scales_with_the_message_limit() -> None:
    assert FrameParser(1024).max_fragments == 65536
    assert FrameParser(16 * 1024 * 1024).max_fragments == 262144
    assert FrameParser(100, max_fragments=3).max_fragments == 3


# -- the encoder -------------------------------------------------------------------------


@pytest.mark.parametrize("size, header", [(0, b"\x81\x00"), (125, b"\x81\x7d"), (126, b"\x81\x7e\x00\x7e")])
def test_encode_frame_lengths(size: int, header: bytes) -> None:
    assert encode_frame(TEXT, b"x" * size) == header + b"x" * size


def test_encode_frame_eight_byte_length_and_flags() -> None:
    frame = encode_frame(BINARY, b"\x00" * 65536, fin=False, rsv=5)
    assert frame[:10] == b"\x52\x7f" + (65536).to_bytes(8, "big")


def test_encode_frame_masks_only_when_asked() -> None:
    frame = encode_frame(TEXT, b"Hello", mask=b"\x37\xfa\x21\x3d")
    assert frame == b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"  # RFC 6455 §5.7
    with pytest.raises(ValueError):
        encode_frame(TEXT, b"x", mask=b"abc")


def test_encode_message() -> None:
    assert encode_message("Hello") == b"\x81\x05Hello"  # RFC 6455 §5.7, unmasked
    assert encode_message(b"\x00") == b"\x82\x01\x00"
    assert encode_message(bytearray(b"ab")) == b"\x82\x02ab"
    with pytest.raises(TypeError):
        encode_message(3)  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 1000, 16 * 1024, 16 * 1024 + 1, 100_001])
def test_unmask_both_ways_agree_with_a_byte_loop(size: int) -> None:
    data = os.urandom(size)
    mask = os.urandom(4)
    expected = bytes(byte ^ mask[index % 4] for index, byte in enumerate(data))
    assert unmask(data, mask) == expected
    assert unmask(bytearray(data), mask) == expected
    assert unmask(expected, mask) == data


def test_close_payload_and_encode_close() -> None:
    assert close_payload(None) == b""
    assert close_payload(1000, "bye") == b"\x03\xe8bye"
    long = close_payload(1001, "é" * 100)  # 200 bytes of UTF-8: cut at a character boundary
    assert len(long) == 2 + 122 and long[2:].decode("utf-8") == "é" * 61
    assert encode_close(1000) == b"\x88\x02\x03\xe8"
    assert encode_close(None) == b"\x88\x00"
    for code in (999, 1004, 1005, 1006, 1015, 1016, 2999, 5000):
        with pytest.raises(ValueError):
            close_payload(code)


def test_parse_close() -> None:
    assert parse_close(b"") == Close(1005, "")
    assert parse_close(b"\x0f\xa0hi") == Close(4000, "hi")
    with pytest.raises(WebSocketError) as bad:
        parse_close(b"\x03\xe8\xff")
    assert bad.value.code == 1007 and str(bad.value) == "1007 the close reason is not UTF-8"


def test_accept_key_is_rfc_6455s_example() -> None:
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # §1.3


def test_control_frame_constants() -> None:
    assert (CLOSE, PING) == (8, 9)


# -- the endpoint API's shapes -----------------------------------------------------------


class Recorder:
    """A stand-in session: what Echo and broadcast call."""

    def __init__(self, accept: bool = True) -> None:
        self.sent: list = []
        self.frames: list = []
        self.accept = accept
        self.request_path = "/"
        self.peer = "127.0.0.1"

    def send(self, message):
        self.sent.append(message)
        return True

    def send_frame(self, frame: bytes) -> bool:
        self.frames.append(frame)
        return self.accept

    def close(self, code: int = 1000, reason: str = "") -> None:
        pass


def test_echo_sends_back_what_it_got() -> None:
    echo, session = Echo(), Recorder()
    echo.on_open(session)
    echo.on_message(session, "text")
    echo.on_message(session, b"bytes")
    echo.on_close(session, 1000, "")
    assert session.sent == ["text", b"bytes"]


def test_broadcast_encodes_once_and_counts_who_took_it() -> None:
    sessions = [Recorder(), Recorder(accept=False), Recorder()]
    assert broadcast(sessions, "hi") == 2
    frames = [session.frames[0] for session in sessions]
    assert frames[0] == b"\x81\x02hi"
    assert frames[0] is frames[1] is frames[2]  # one frame object for every receiver

"""Property tests of the WebSocket frame parser with hypothesis (no sockets).

- round trip and split invariance: generated streams (messages in any fragmentation,
  control frames between fragments, any masks), encoded by us, give the same events
  however the bytes are cut;
- the same streams encoded by wsproto's client give the same events;
- totality: any bytes give events or WebSocketError with a close code, nothing else;
- differential against wsproto (a test-only oracle): valid streams, and streams with
  bytes changed, give the same events and the same close code. Where they differ, it
  is in one direction only, and on purpose: reactor fails earlier (a bad first byte, a
  length's top bit, a UTF-16 surrogate's second byte), and accepts close code 1014
  (registered with IANA after wsproto's list was made). See docs/websocket.md.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import List, Optional, Tuple, Union

from corpus.frames import VALID, Step, as_step, expected_steps, run
from hypothesis import example, given, settings
from hypothesis import strategies as st
from wsproto.frame_protocol import FrameProtocol, Opcode, ParseFailed

from reactor.events import NEED_DATA
from reactor.websocket import (
    BINARY,
    CLOSE,
    CONTINUATION,
    PING,
    PONG,
    TEXT,
    CloseCode,
    FrameParser,
    WebSocketError,
    close_payload,
    encode_frame,
)

UNLIMITED = 2**63  # no message limit: wsproto has none to compare with
# A third of the profile's examples for the tests that generate whole streams (the fuzz profile still runs thousands).
HEAVY = settings(max_examples=max(20, settings.default.max_examples // 3))


@dataclasses.dataclass
class Item:
    """One thing a client sends: a message (in fragments) or a control frame."""

    kind: str  # "text", "binary", "ping", "pong", "close"
    data: Union[str, bytes]
    cuts: List[int]  # where a message is cut into fragments (sorted positions in its payload)
    code: Optional[int] = None  # for "close"
    interleaved: Optional[Tuple[str, bytes]] = None  # a ping or pong between two fragments


texts = st.text(st.characters(codec="utf-8"), max_size=40)
payloads = st.binary(max_size=60)
control_payloads = st.binary(max_size=125)
close_codes = st.sampled_from(
    [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 3000, 3999, 4000, 4999]
)


@st.composite
def items(draw: st.DrawFn) -> Item:
    kind = draw(st.sampled_from(["text", "binary", "binary", "ping", "pong"]))
    if kind in ("ping", "pong"):
        return Item(kind, draw(control_payloads), [])
    data: Union[str, bytes] = draw(texts) if kind == "text" else draw(payloads)
    size = len(data.encode("utf-8") if isinstance(data, str) else data)
    cuts = sorted(set(draw(st.lists(st.integers(0, size), max_size=4))))
    interleaved = None
    if cuts and draw(st.booleans()):
        interleaved = (draw(st.sampled_from(["ping", "pong"])), draw(st.binary(max_size=10)))
    return Item(kind, data, cuts, interleaved=interleaved)


@st.composite
def streams(draw: st.DrawFn) -> "Tuple[List[Item], List[bytes]]":
    """Items (maybe ending in a Close) and a mask for each frame."""
    sent = draw(st.lists(items(), max_size=6))
    if draw(st.booleans()):
        reason = draw(st.text(st.characters(codec="utf-8"), max_size=20).filter(lambda r: len(r.encode()) <= 123))
        sent.append(Item("close", reason, [], code=draw(close_codes)))
    masks = draw(st.lists(st.binary(min_size=4, max_size=4), min_size=1, max_size=3))
    return sent, masks


def encode(sent: List[Item], masks: List[bytes]) -> "Tuple[bytes, List[Step]]":
    """Our encoding of ``sent`` (every frame masked) and the events it must give."""
    out: List[bytes] = []
    steps: List[Step] = []
    mask_iter = itertools.cycle(masks)
    for item in sent:
        if item.kind in ("ping", "pong"):
            out.append(encode_frame(PING if item.kind == "ping" else PONG, item.data, mask=next(mask_iter)))  # type: ignore[arg-type]
            steps.append((item.kind, item.data))
        elif item.kind == "close":
            out.append(encode_frame(CLOSE, close_payload(item.code, item.data), mask=next(mask_iter)))  # type: ignore[arg-type]
            steps.append(("close", item.code, item.data))
        else:
            raw = item.data.encode("utf-8") if isinstance(item.data, str) else item.data
            bounds = [0, *item.cuts, len(raw)]
            pieces = [raw[a:b] for a, b in zip(bounds, bounds[1:])]
            for index, piece in enumerate(pieces):
                opcode = (TEXT if item.kind == "text" else BINARY) if index == 0 else CONTINUATION
                out.append(encode_frame(opcode, piece, fin=index == len(pieces) - 1, mask=next(mask_iter)))
                if index == 0 and item.interleaved is not None and len(pieces) > 1:
                    kind, data = item.interleaved
                    out.append(encode_frame(PING if kind == "ping" else PONG, data, mask=next(mask_iter)))
                    steps.append((kind, data))
            steps.append((item.kind, item.data))
    return b"".join(out), steps


def split(data: bytes, cuts: List[int]) -> List[bytes]:
    bounds = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:])]


@HEAVY
@given(stream=streams(), cuts=st.lists(st.integers(0, 10_000), max_size=12))
def test_round_trip_and_split_invariance(stream, cuts) -> None:
    sent, masks = stream
    data, steps = encode(sent, masks)
    assert run(FrameParser(), [data]) == [*steps, ("need",)]
    assert run(FrameParser(), split(data, cuts)) == [*steps, ("need",)]


@given(case=st.sampled_from(VALID), cuts=st.lists(st.integers(0, 10_000), max_size=8))
def test_corpus_cases_are_split_invariant(case, cuts) -> None:
    assert run(case.parser(), split(case.data, cuts)) == expected_steps(case)


# -- wsproto as an oracle --------------------------------------------------------------


def wsproto_encode(sent: List[Item]) -> "Tuple[bytes, List[Step]]":
    """wsproto's client encoding of ``sent``: masked with its own random keys."""
    client = FrameProtocol(client=True, extensions=[])
    out = bytearray()
    steps: List[Step] = []
    for item in sent:
        if item.kind == "ping":
            out += client.ping(item.data)  # type: ignore[arg-type]
            steps.append(("ping", item.data))
        elif item.kind == "pong":
            out += client.pong(item.data)  # type: ignore[arg-type]
            steps.append(("pong", item.data))
        elif item.kind == "close":
            out += client.close(item.code, item.data)  # type: ignore[arg-type]
            steps.append(("close", item.code, item.data))
        else:
            data = item.data
            bounds = [0, *item.cuts, len(data)]
            pieces = [data[a:b] for a, b in zip(bounds, bounds[1:])]  # wsproto cuts text by characters
            for index, piece in enumerate(pieces):
                out += client.send_data(piece, fin=index == len(pieces) - 1)
            steps.append((item.kind, item.data))
    return bytes(out), steps


@HEAVY
@given(stream=streams())
def test_what_wsproto_sends_parses_the_same(stream) -> None:
    sent, _masks = stream
    for item in sent:
        item.interleaved = None  # wsproto's client refuses a control frame between fragments
    data, steps = wsproto_encode(sent)
    assert run(FrameParser(), [data]) == [*steps, ("need",)]


def wsproto_run(data: bytes) -> List[Step]:
    """What wsproto's server side makes of ``data``: whole messages, control frames, then need or error."""
    server = FrameProtocol(client=False, extensions=[])
    server.receive_bytes(data)
    steps: List[Step] = []
    parts: list = []
    try:
        for frame in server.received_frames():
            if frame.opcode is Opcode.PING:
                steps.append(("ping", bytes(frame.payload)))
            elif frame.opcode is Opcode.PONG:
                steps.append(("pong", bytes(frame.payload)))
            elif frame.opcode is Opcode.CLOSE:
                code, reason = frame.payload
                steps.append(("close", int(code), reason))
                return steps  # wsproto parses nothing after a Close
            else:
                parts.append(frame.payload)
                if frame.message_finished:
                    if frame.opcode is Opcode.TEXT:
                        steps.append(("text", "".join(parts)))
                    else:
                        steps.append(("binary", b"".join(bytes(p) for p in parts)))
                    parts = []
    except ParseFailed as exc:
        steps.append(("error", int(exc.code)))
        return steps
    steps.append(("need",))
    return steps


def ours_until_close(data: bytes) -> List[Step]:
    steps = run(FrameParser(UNLIMITED), [data])
    for index, taken in enumerate(steps):
        if taken[0] == "close":
            return steps[: index + 1]
    return steps


def agree(ours: List[Step], theirs: List[Step]) -> None:
    """The same events, and the same end, except for the deliberate differences (module docstring)."""
    if ours == theirs:
        return
    # reactor accepts 1014 where wsproto fails with 1002: the same up to that Close.
    if ours[-1][:2] == ("close", 1014) and theirs[-1] == ("error", 1002):
        assert ours[:-1] == theirs[:-1]
        return
    # reactor fails earlier, where the bytes so far can never become valid: wsproto still waits.
    assert ours[:-1] == theirs[:-1], (ours, theirs)
    assert theirs[-1] == ("need",) and ours[-1][0] == "error", (ours, theirs)
    assert ours[-1][1] in (CloseCode.PROTOCOL_ERROR, CloseCode.INVALID_DATA)


@HEAVY
@given(stream=streams())
def test_valid_streams_agree_with_wsproto(stream) -> None:
    sent, masks = stream
    data, steps = encode(sent, masks)
    agree(ours_until_close(data), wsproto_run(data))


@HEAVY
@given(stream=streams(), edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=3))
@example(stream=([Item("text", "ab", [])], [b"\x00" * 4]), edits=[(0, 0xC1)])  # RSV1
@example(stream=([Item("close", "", [], code=1000)], [b"\x00" * 4]), edits=[(7, 0xF6)])  # close code 1014
def test_changed_streams_agree_with_wsproto(stream, edits) -> None:
    """A valid stream with a few bytes replaced: both parsers see the same events and fail the same way."""
    sent, masks = stream
    data, _steps = encode(sent, masks)
    if not data:
        data = b"\x81\x80\x00\x00\x00\x00"
    changed = bytearray(data)
    for position, value in edits:
        changed[position % len(changed)] = value
    agree(ours_until_close(bytes(changed)), wsproto_run(bytes(changed)))


# -- totality ----------------------------------------------------------------------


@given(data=st.binary(max_size=300), cuts=st.lists(st.integers(0, 300), max_size=5))
@example(data=b"\x81\xfe\x00\x7e" + b"\x00" * 4, cuts=[])
def test_any_bytes_give_events_or_a_close_code(data, cuts) -> None:
    parser = FrameParser(max_message_bytes=200)
    for piece in split(data, cuts):
        parser.feed(piece)
        while True:
            try:
                event = parser.next_event()
            except WebSocketError as exc:
                assert exc.code in (1002, 1007, 1009)
                return
            if event is NEED_DATA:
                break
            as_step(event)  # one of the four events

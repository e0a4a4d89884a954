"""Autobahn|Testsuite's case groups 1-7, 9 and 10, reproduced against the live server with a raw client.

The real suite (``tox -e autobahn``, docs/websocket.md) needs Python 2.7; these are its cases
as this suite can run them anywhere, each asserting the outcome Autobahn grades OK, the
strict one: where the ``websockets`` library is graded NON-STRICT (3.2, 3.3, 4.1.3-4.2.4,
5.15: a valid message in front of a bad frame is echoed before the connection fails; 6.4.x:
bad UTF-8 fails at the first bad byte, before the frame or the message ends) and where it
fails 7.1.5 (a Close between two fragments is answered with 1000).

Each case sends frames (masked, as a client must), whole, frame by frame, or in chops of N
bytes, and expects the server's frames in order, then either an open connection (we close
with 1000 and expect it echoed) or a Close with one of the codes given, and EOF: the
server closes the TCP connection (Autobahn: "it is preferred that the server close").
Group 9 uses 1 MiB and 4 MiB messages, fragmented and chopped (8 and 16 MiB are left to
the real suite); its round-trip cases (9.7, 9.8) send 200 messages instead of 1000.
"""

from __future__ import annotations

import os
import threading
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import pytest
from wsclient import RawWebSocket

from conftest import RunningServer, copy_resources, wait_for
from reactor.config import Config
from reactor.server import Server
from reactor.websocket import BINARY, CLOSE, CONTINUATION, PING, PONG, TEXT, encode_frame

Expected = Tuple[str, bytes]  # ("text" | "binary" | "pong", payload)
Chop = Union[None, int, str]  # None: all at once; N: chops of N bytes; "frames": one send per frame


def f(opcode: int, payload: bytes = b"", fin: bool = True, rsv: int = 0) -> bytes:
    """One masked frame."""
    return encode_frame(opcode, payload, fin=fin, mask=os.urandom(4), rsv=rsv)


def close_frame(code: Optional[int], reason: bytes = b"") -> bytes:
    payload = b"" if code is None else code.to_bytes(2, "big") + reason
    return f(CLOSE, payload)


class Case:
    """Frames to send and the outcome Autobahn grades OK.

    ``end``: "open" (the server keeps the connection: we close it with 1000), ("fail",
    codes) (the server fails the connection with one of ``codes``), or ("close", codes)
    (our Close in ``frames`` is answered with one of ``codes``; None stands for an empty one).
    """

    def __init__(
        self,
        case_id: str,
        frames: Sequence[bytes],
        expected: Sequence[Expected] = (),
        end: Union[str, Tuple[str, Iterable[Optional[int]]]] = "open",
        chop: Chop = None,
    ) -> None:
        self.id = case_id
        self.frames = list(frames)
        self.expected = list(expected)
        self.end = end
        self.chop = chop


HELLO = b"Hello, world!"
VALID_UTF8 = "Hello-µ@ßöäüàá-UTF-8!!".encode()
KOSME = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"  # κόσμε
BAD_UTF8 = KOSME + b"\xed\xa0\x80" + b"edited"  # invalid at the surrogate


def fail(*codes: int) -> Tuple[str, Tuple[int, ...]]:
    return ("fail", codes)


def closed(*codes: Optional[int]) -> Tuple[str, Tuple[Optional[int], ...]]:
    return ("close", codes)


def group_1() -> List[Case]:
    cases = []
    for minor, (opcode, kind) in enumerate([(TEXT, "text"), (BINARY, "binary")], 1):
        byte = b"*" if opcode == TEXT else b"\xfe"
        for number, size in enumerate([0, 125, 126, 127, 128, 65535, 65536], 1):
            cases.append(Case("1.%d.%d" % (minor, number), [f(opcode, byte * size)], [(kind, byte * size)]))
        cases.append(Case("1.%d.8" % minor, [f(opcode, byte * 65536)], [(kind, byte * 65536)], chop=997))
    return cases


def group_2() -> List[Case]:
    return [
        Case("2.1", [f(PING)], [("pong", b"")]),
        Case("2.2", [f(PING, b"Hello, world!")], [("pong", b"Hello, world!")]),
        Case("2.3", [f(PING, b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff")], [("pong", b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff")]),
        Case("2.4", [f(PING, b"\xfe" * 125)], [("pong", b"\xfe" * 125)]),
        Case("2.5", [f(PING, b"\xfe" * 126)], [], fail(1002)),
        Case("2.6", [f(PING, b"\xfe" * 125)], [("pong", b"\xfe" * 125)], chop=1),
        Case("2.7", [f(PONG)]),
        Case("2.8", [f(PONG, b"unsolicited pong payload")]),
        Case("2.9", [f(PONG, b"unsolicited pong payload"), f(PING, b"ping payload")], [("pong", b"ping payload")]),
        Case("2.10", [f(PING, b"payload-%d" % i) for i in range(10)], [("pong", b"payload-%d" % i) for i in range(10)]),
        Case(
            "2.11",
            [f(PING, b"payload-%d" % i) for i in range(10)],
            [("pong", b"payload-%d" % i) for i in range(10)],
            chop=1,
        ),
    ]


def group_3() -> List[Case]:
    echo = [("text", HELLO)]
    return [
        Case("3.1", [f(TEXT, HELLO, rsv=1)], [], fail(1002)),
        Case("3.2", [f(TEXT, HELLO), f(TEXT, HELLO, rsv=2), f(PING)], echo, fail(1002)),
        Case("3.3", [f(TEXT, HELLO), f(TEXT, HELLO, rsv=3), f(PING)], echo, fail(1002), chop="frames"),
        Case("3.4", [f(TEXT, HELLO), f(TEXT, HELLO, rsv=4), f(PING)], echo, fail(1002), chop=1),
        Case("3.5", [f(BINARY, b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff", rsv=5)], [], fail(1002)),
        Case("3.6", [f(PING, HELLO, rsv=6)], [], fail(1002)),
        Case("3.7", [f(CLOSE, rsv=7)], [], fail(1002)),
    ]


def group_4() -> List[Case]:
    cases = []
    for major, opcodes in ((1, (3, 4, 5, 6, 7)), (2, (11, 12, 13, 14, 15))):
        for minor, opcode in enumerate(opcodes, 1):
            if minor <= 2:  # a reserved opcode alone (with a payload in x.2)
                frames = [f(opcode, b"reserved opcode payload" if minor == 2 else b"")]
                cases.append(Case("4.%d.%d" % (major, minor), frames, [], fail(1002)))
            else:  # after a valid message: the message is echoed first (strict), no pong
                payload = HELLO if minor >= 4 else b""
                frames = [f(TEXT, HELLO), f(opcode, payload), f(PING)]
                cases.append(
                    Case(
                        "4.%d.%d" % (major, minor),
                        frames,
                        [("text", HELLO)],
                        fail(1002),
                        chop=1 if minor == 5 else None,
                    )
                )
    return cases


def group_5() -> List[Case]:
    two = [f(TEXT, b"fragment1", fin=False), f(CONTINUATION, b"fragment2")]
    with_ping = [f(TEXT, b"fragment1", fin=False), f(PING, b"ping payload"), f(CONTINUATION, b"fragment2")]
    nothing_to_continue_fin = [f(CONTINUATION, b"non-continuation payload"), f(TEXT, HELLO)]
    nothing_to_continue = [f(CONTINUATION, b"non-continuation payload", fin=False), f(TEXT, HELLO)]
    message = [("text", b"fragment1fragment2")]
    repeated = [
        f(CONTINUATION, b"fragment1", fin=False),
        f(TEXT, b"fragment2", fin=False),
        f(CONTINUATION, b"fragment3"),
    ]
    repeated_fin = [f(CONTINUATION, b"fragment1"), f(TEXT, b"fragment2", fin=False), f(CONTINUATION, b"fragment3")]
    return [
        Case("5.1", [f(PING, b"fragment1", fin=False), f(CONTINUATION, b"fragment2")], [], fail(1002)),
        Case("5.2", [f(PONG, b"fragment1", fin=False), f(CONTINUATION, b"fragment2")], [], fail(1002)),
        Case("5.3", two, message),
        Case("5.4", two, message, chop="frames"),
        Case("5.5", two, message, chop=1),
        Case("5.6", with_ping, [("pong", b"ping payload"), *message]),
        Case("5.7", with_ping, [("pong", b"ping payload"), *message], chop="frames"),
        Case("5.8", with_ping, [("pong", b"ping payload"), *message], chop=1),
        Case("5.9", nothing_to_continue_fin, [], fail(1002)),
        Case("5.10", nothing_to_continue_fin, [], fail(1002), chop="frames"),
        Case("5.11", nothing_to_continue_fin, [], fail(1002), chop=1),
        Case("5.12", nothing_to_continue, [], fail(1002)),
        Case("5.13", nothing_to_continue, [], fail(1002), chop="frames"),
        Case("5.14", nothing_to_continue, [], fail(1002), chop=1),
        Case(
            "5.15",
            [*two, f(CONTINUATION, b"fragment3", fin=False), f(TEXT, b"fragment4")],
            message,
            fail(1002),
        ),
        Case("5.16", repeated * 2, [], fail(1002)),
        Case("5.17", repeated_fin * 2, [], fail(1002)),
        Case("5.18", [f(TEXT, b"fragment1", fin=False), f(TEXT, b"fragment2")], [], fail(1002)),
    ]


def utf8_sequences() -> List[bytes]:
    """The byte sequences of Autobahn's 6.5-6.23 (from Markus Kuhn's UTF-8 decoder test), made here."""
    seqs = [b"hello\x24world", b"hello\xc2\xa2world", b"hello\xe2\x82\xacworld", b"hello\xf0\xa4\xad\xa2world", KOSME]
    seqs += [KOSME[:end] for end in range(1, len(KOSME) + 1)]  # every prefix
    seqs += [b"\x00", b"\xc2\x80", b"\xe0\xa0\x80", b"\xf0\x90\x80\x80"]  # the first of each length
    seqs += [b"\xf8\x88\x80\x80\x80", b"\xfc\x84\x80\x80\x80\x80"]  # 5 and 6 bytes
    seqs += [b"\x7f", b"\xdf\xbf", b"\xef\xbf\xbf", b"\xf4\x8f\xbf\xbf"]  # the last of each length
    seqs += [b"\xf7\xbf\xbf\xbf", b"\xfb\xbf\xbf\xbf\xbf", b"\xfd\xbf\xbf\xbf\xbf\xbf"]
    seqs += [b"\xed\x9f\xbf", b"\xee\x80\x80", b"\xef\xbf\xbd", b"\xf4\x8f\xbf\xbf", b"\xf4\x90\x80\x80"]
    seqs += [b"\x80", b"\xbf"] + [bytes([0x80, 0xBF] * 3)[:n] for n in range(2, 7)]  # continuation bytes alone
    seqs.append(bytes(range(0x80, 0xBF)))
    for low, high in ((0xC0, 0xDF), (0xE0, 0xEF), (0xF0, 0xF7), (0xF8, 0xFB), (0xFC, 0xFD)):  # lonely starts
        seqs.append(b"".join(bytes([byte, 0x20]) for byte in range(low, high)))
    cut = [b"\xc0", b"\xe0\x80", b"\xf0\x80\x80", b"\xf8\x80\x80\x80", b"\xfc\x80\x80\x80\x80"]
    cut += [b"\xdf", b"\xef\xbf", b"\xf7\xbf\xbf", b"\xfb\xbf\xbf\xbf", b"\xfd\xbf\xbf\xbf\xbf"]
    seqs += cut + [b"".join(cut)]  # last continuation byte missing, and all of them together
    seqs += [b"\xfe", b"\xff", b"\xfe\xfe\xff\xff"]  # impossible bytes
    for last in (b"\xaf", b"\xbf", b"\x80"):  # overlong '/', the largest overlongs, overlong NUL
        top = b"\xbf" if last == b"\xbf" else b"\x80"
        if last == b"\xbf":
            seqs += [
                b"\xc1\xbf",
                b"\xe0\x9f\xbf",
                b"\xf0\x8f\xbf\xbf",
                b"\xf8\x87\xbf\xbf\xbf",
                b"\xfc\x83\xbf\xbf\xbf\xbf",
            ]
        else:
            seqs += [b"\xc0" + last, b"\xe0" + top + last, b"\xf0" + top * 2 + last, b"\xf8" + top * 3 + last]
            seqs.append(b"\xfc" + top * 4 + last)
    highs = [b"\xed\xa0\x80", b"\xed\xad\xbf", b"\xed\xae\x80", b"\xed\xaf\xbf"]
    lows = [b"\xed\xb0\x80", b"\xed\xbe\x80", b"\xed\xbf\xbf"]
    seqs += highs + lows  # single surrogates
    seqs += [high + low for high in highs for low in (b"\xed\xb0\x80", b"\xed\xbf\xbf")]  # paired ones
    seqs += [b"\xef\xbf\xbe", b"\xef\xbf\xbf"]  # non-characters: valid UTF-8
    for first in (0xF0, 0xF1, 0xF2, 0xF3, 0xF4):
        for second in (0x8F, 0x9F, 0xAF, 0xBF):
            if first == 0xF4 and second != 0x8F or first == 0xF0 and second == 0x8F:
                continue  # past U+10FFFF, or overlong
            seqs += [bytes([first, second, 0xBF, last]) for last in (0xBE, 0xBF)]
    seqs += [bytes([0xEF, 0xBF, last]) for last in range(0xB9, 0xC0)]  # specials
    return seqs


def is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def group_6() -> List[Case]:
    fragments_of_1 = [
        f(TEXT if i == 0 else CONTINUATION, VALID_UTF8[i : i + 1], fin=i == len(VALID_UTF8) - 1)
        for i in range(len(VALID_UTF8))
    ]
    bad_fragments_of_1 = [
        f(TEXT if i == 0 else CONTINUATION, BAD_UTF8[i : i + 1], fin=i == len(BAD_UTF8) - 1)
        for i in range(len(BAD_UTF8))
    ]
    cases = [
        Case("6.1.1", [f(TEXT)], [("text", b"")]),
        Case("6.1.2", [f(TEXT, fin=False), f(CONTINUATION, fin=False), f(CONTINUATION)], [("text", b"")]),
        Case(
            "6.1.3",
            [f(TEXT, fin=False), f(CONTINUATION, b"middle frame payload", fin=False), f(CONTINUATION)],
            [("text", b"middle frame payload")],
        ),
        Case("6.2.1", [f(TEXT, VALID_UTF8)], [("text", VALID_UTF8)]),
        Case("6.2.2", [f(TEXT, VALID_UTF8[:12], fin=False), f(CONTINUATION, VALID_UTF8[12:])], [("text", VALID_UTF8)]),
        Case("6.2.3", [f(TEXT, VALID_UTF8)], [("text", VALID_UTF8)], chop=1),
        Case("6.2.4", fragments_of_1, [("text", VALID_UTF8)]),
        Case("6.3.1", [f(TEXT, BAD_UTF8)], [], fail(1007)),
        Case("6.3.2", bad_fragments_of_1, [], fail(1007)),
    ]
    for number, seq in enumerate(utf8_sequences(), 1):
        if is_utf8(seq):
            cases.append(Case("6.x.%d" % number, [f(TEXT, seq)], [("text", seq)]))
        else:
            cases.append(Case("6.x.%d" % number, [f(TEXT, seq)], [], fail(1007)))
    return cases


def group_7() -> List[Case]:
    cases = [
        Case("7.1.1", [f(TEXT, b"Hello World!"), close_frame(1000)], [("text", b"Hello World!")], closed(1000)),
        Case("7.1.2", [close_frame(1000), f(CLOSE)], [], closed(1000)),  # the second Close is ignored
        Case("7.1.3", [close_frame(1000), f(PING)], [], closed(1000)),  # no pong after a Close
        Case("7.1.4", [close_frame(1000), f(TEXT, b"Hello World!")], [], closed(1000)),  # no echo after a Close
        Case(
            "7.1.5",
            [f(TEXT, b"fragment1", fin=False), close_frame(1000), f(CONTINUATION, b"fragment2")],
            [],
            closed(1000),
        ),
        Case(
            "7.1.6",
            [f(TEXT, b"BAsd7&jh23" * 26215 + b"BA"), f(TEXT, b"Hello World!"), close_frame(1000), f(PING)],
            [("text", b"BAsd7&jh23" * 26215 + b"BA"), ("text", b"Hello World!")],
            closed(1000),
        ),
        Case("7.3.1", [f(CLOSE)], [], closed(None, 1000)),
        Case("7.3.2", [f(CLOSE, b"a")], [], fail(1002)),
        Case("7.3.3", [close_frame(1000)], [], closed(1000)),
        Case("7.3.4", [close_frame(1000, b"Hello World!")], [], closed(1000)),
        Case("7.3.5", [close_frame(1000, b"*" * 123)], [], closed(1000)),
        Case("7.3.6", [close_frame(1000, b"*" * 124)], [], fail(1002)),
        Case("7.5.1", [close_frame(1000, BAD_UTF8)], [], fail(1002, 1007)),
    ]
    for number, code in enumerate([1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999], 1):
        cases.append(Case("7.7.%d" % number, [close_frame(code)], [], closed(1000, code)))
    for number, code in enumerate([0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999], 1):
        cases.append(Case("7.9.%d" % number, [close_frame(code)], [], fail(1002)))
    cases.append(Case("7.13.1", [close_frame(5000)], [], fail(1002)))  # informational in Autobahn
    cases.append(Case("7.13.2", [close_frame(65535)], [], fail(1002)))
    return cases


def group_10() -> List[Case]:
    payload = b"*" * 65536
    frames = [
        f(TEXT if i == 0 else CONTINUATION, payload[i : i + 1300], fin=i + 1300 >= 65536) for i in range(0, 65536, 1300)
    ]
    return [Case("10.1.1", frames, [("text", payload)])]


ALL = group_1() + group_2() + group_3() + group_4() + group_5() + group_6() + group_7() + group_10()


def run_case(running, case: Case) -> None:
    ws = RawWebSocket(running.connect(timeout=10), "/")
    data = b"".join(case.frames)
    if case.chop == "frames":
        for frame in case.frames:
            ws.send(frame)
    else:
        ws.send(data, chop=case.chop)  # type: ignore[arg-type]
    kinds = {TEXT: "text", BINARY: "binary", PONG: "pong"}
    for expected in case.expected:
        frame = ws.recv_frame()
        assert (kinds.get(frame.opcode), frame.payload) == expected, (case.id, frame[:2], frame.payload[:40])
        assert frame.fin, case.id  # the server never fragments
    if case.end == "open":
        ws.send(close_frame(1000))
        codes: Iterable[Optional[int]] = (1000,)
    else:
        codes = case.end[1]  # type: ignore[index]
    close = ws.recv_frame()
    assert close.opcode == CLOSE, (case.id, close)
    assert close.close_code in codes, (case.id, close.close_code, codes)
    assert ws.at_eof(), "%s: the server did not close the TCP connection" % case.id
    ws.close()


@pytest.fixture(scope="module")
def echo_server(tmp_path_factory):
    """One server for the module (cases are independent connections), Echo at /, 16 MiB messages."""
    root = copy_resources(tmp_path_factory.mktemp("autobahn"))
    server = Server(
        Config(
            host="127.0.0.1",
            port=0,
            root=root,
            websocket_endpoints=(("/", "reactor.websocket:Echo"),),
            websocket_max_message_bytes=16 * 1024 * 1024,
        )
    )
    server.listen()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    running = RunningServer(server, thread)
    yield running
    running.stop()


GROUPS: Dict[str, List[Case]] = {}
for _case in ALL:
    GROUPS.setdefault(_case.id.split(".")[0], []).append(_case)


@pytest.mark.parametrize("group", sorted(GROUPS, key=int))
def test_autobahn_group(echo_server, group):
    """Every case of the group, each on its own connection (one test per group keeps the report short)."""
    for case in GROUPS[group]:
        run_case(echo_server, case)


# -- cases that need a pause, or a look at the server between two sends ---------------------


def _session(running):
    """The one WebSocket session open on ``running``, or None."""
    found = running.call(lambda: [s for s in running.server.sessions.values() if s.label == "websocket"])
    return found[0] if len(found) == 1 else None


@pytest.mark.parametrize("case_id", ["6.4.1", "6.4.2", "6.4.3", "6.4.4"])
def test_autobahn_6_4_bad_utf8_fails_at_the_first_bad_byte(echo_server, case_id):
    """Part 1 is accepted (the connection stays open); part 2 brings the Close 1007 before part 3 is sent."""
    whole = KOSME + b"\xf4\x90\x80\x80" + b"edited"
    cut1, cut2 = (11, 15) if case_id in ("6.4.1", "6.4.3") else (12, 13)
    parts = [whole[:cut1], whole[cut1:cut2], whole[cut2:]]
    ws = RawWebSocket(echo_server.connect(), "/")
    if case_id in ("6.4.1", "6.4.2"):  # three frames
        ws.send(f(TEXT, parts[0], fin=False))
        ws.send(f(PING, b"still open?"))
        assert ws.recv_frame() == (PONG, True, b"still open?")  # part 1 accepted
        ws.send(f(CONTINUATION, parts[1], fin=False))
    else:  # three chops of one frame
        frame = f(TEXT, whole)
        header = len(frame) - len(whole)
        session = wait_for(lambda: _session(echo_server), what="the session")
        before = echo_server.call(lambda: session.received_at)
        ws.send(frame[: header + cut1])
        wait_for(lambda: echo_server.call(lambda: session.received_at) > before, what="part 1 to arrive")
        assert echo_server.call(session.phase) == "open"  # part 1 accepted
        ws.send(frame[header + cut1 : header + cut2])
    close = ws.expect_close()  # before part 3
    assert close.close_code == 1007
    assert ws.at_eof()


@pytest.mark.parametrize("case_id", ["5.19", "5.20"])
def test_autobahn_5_19_pings_are_answered_before_the_fragmented_message_ends(echo_server, case_id):
    fragments = [b"fragment%d" % i for i in range(1, 6)]
    ws = RawWebSocket(echo_server.connect(), "/")
    first = [f(TEXT, fragments[0], fin=False), f(CONTINUATION, fragments[1], fin=False), f(PING, b"pongme 1!")]
    for frame in first if case_id == "5.20" else [b"".join(first)]:
        ws.send(frame)
    assert ws.recv_frame() == (PONG, True, b"pongme 1!")  # before the message is complete
    rest = [
        f(CONTINUATION, fragments[2], fin=False),
        f(CONTINUATION, fragments[3], fin=False),
        f(PING, b"pongme 2!"),
        f(CONTINUATION, fragments[4]),
    ]
    for frame in rest if case_id == "5.20" else [b"".join(rest)]:
        ws.send(frame)
    assert ws.recv_frame() == (PONG, True, b"pongme 2!")
    assert ws.recv_frame() == (TEXT, True, b"".join(fragments))
    ws.send(close_frame(1000))
    assert ws.recv_frame().close_code == 1000
    assert ws.at_eof()


# -- group 9: 1 MiB and 4 MiB messages, fragmented and chopped -------------------------------

MIB = 1024 * 1024
TEXT_FILL = b"BAsd7&jh23"
BINARY_FILL = b"\x00\xfe\x23\xfa\xf0"


def _fill(pattern: bytes, size: int) -> bytes:
    return (pattern * (size // len(pattern) + 1))[:size]


def _echo(running, frames: Sequence[bytes], expected: Tuple[int, bytes], chop: Optional[int] = None) -> None:
    ws = RawWebSocket(running.connect(timeout=30), "/")
    ws.send(b"".join(frames), chop=chop)
    assert ws.recv_message() == expected
    ws.send(close_frame(1000))
    assert ws.recv_frame().close_code == 1000
    assert ws.at_eof()


@pytest.mark.parametrize("opcode", [TEXT, BINARY], ids=["9.1", "9.2"])
@pytest.mark.parametrize("size", [64 * 1024, 256 * 1024, MIB, 4 * MIB])
def test_autobahn_9_1_and_9_2_large_messages(echo_server, opcode, size):
    payload = _fill(TEXT_FILL if opcode == TEXT else BINARY_FILL, size)
    _echo(echo_server, [f(opcode, payload)], (opcode, payload))


@pytest.mark.parametrize("opcode", [TEXT, BINARY], ids=["9.3", "9.4"])
@pytest.mark.parametrize("fragment", [64, 4096, 256 * 1024, 4 * MIB])
def test_autobahn_9_3_and_9_4_a_4_mib_message_in_fragments(echo_server, opcode, fragment):
    """4 MiB in fragments of 64 bytes is 65,536 frames: the fragment cap must allow it."""
    payload = (b"*" if opcode == TEXT else b"\xfe") * (4 * MIB)
    frames = [
        encode_frame(
            opcode if start == 0 else CONTINUATION,
            payload[start : start + fragment],
            fin=start + fragment >= len(payload),
            mask=b"\x01\x02\x03\x04",
        )
        for start in range(0, len(payload), fragment)
    ]
    _echo(echo_server, frames, (opcode, payload))


@pytest.mark.parametrize("opcode", [TEXT, BINARY], ids=["9.5", "9.6"])
@pytest.mark.parametrize("chop", [64, 2048])
def test_autobahn_9_5_and_9_6_a_1_mib_message_in_chops(echo_server, opcode, chop):
    payload = _fill(TEXT_FILL if opcode == TEXT else BINARY_FILL, MIB)
    _echo(echo_server, [f(opcode, payload)], (opcode, payload), chop=chop)


@pytest.mark.parametrize("opcode", [TEXT, BINARY], ids=["9.7", "9.8"])
@pytest.mark.parametrize("size", [0, 256, 4096])
def test_autobahn_9_7_and_9_8_round_trips(echo_server, opcode, size):
    payload = (b"*" if opcode == TEXT else b"\xfe") * size
    ws = RawWebSocket(echo_server.connect(), "/")
    frame = encode_frame(opcode, payload, mask=b"\x11\x22\x33\x44")
    for _ in range(200):
        ws.send(frame)
        assert ws.recv_message() == (opcode, payload)
    ws.send(close_frame(1000))
    assert ws.recv_frame().close_code == 1000

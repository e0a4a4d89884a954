"""The WebSocket frame corpus: frames a client sends and what each must give (``frames.ws``).

Cases are separated by ``##`` title lines, as in the request corpus::

    ## a ping between the fragments of a text message is answered at once
    rfc: RFC 6455 §5.4
    | text fin=0 "Hel"
    | ping "?"
    | cont "lo"
    > ping "?"
    > text "Hello"

- ``| `` lines are frames from a client, masked with a fixed key unless ``unmasked``:
  an opcode (``text``, ``binary``, ``cont``, ``close``, ``ping``, ``pong``, or a number
  0-15), then any of ``fin=0``, ``rsv=N`` (0-7), ``unmasked``, ``len=N`` (announce N
  and send no payload: the header alone), ``cut=K`` (announce the whole payload, send only
  its first K bytes), ``len16``/``len64`` (write the length in 2
  or 8 bytes whatever its size), and a payload: a double-quoted string with Python
  escapes standing for bytes (``"\\xce\\xba"``), optionally repeated (``"ab"*3``). For
  ``close``, ``code=N`` puts a close code in front of the payload. ``| raw "..."`` is
  bytes sent as they are.
- ``limits:`` passes keyword arguments to :class:`~reactor.websocket.FrameParser`.
- ``> `` lines are the expected events in order: ``text "..."`` (the payload's
  escapes decoded as UTF-8), ``binary "..."``, ``ping "..."``, ``pong "..."``,
  ``close CODE "reason"`` (the peer's Close; 1005 without a code), ``need`` (the parser
  waits for more), or ``error CODE``: the parser fails with that close code, and
  nothing comes after it.

The cases are parser tests (``tests/test_websocket_codec.py``), integration tests
against a live server that echoes (``tests/test_websocket.py``: every ``error`` case must
bring a Close frame with its code), and seeds for the property tests.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path
from typing import Dict, List, Tuple, Union

from reactor.events import NEED_DATA
from reactor.websocket import (
    BINARY,
    CLOSE,
    CONTINUATION,
    PING,
    PONG,
    TEXT,
    Close,
    FrameParser,
    Message,
    Ping,
    Pong,
    WebSocketError,
    unmask,
)

HERE = Path(__file__).resolve().parent
MASK = b"\x37\xfa\x21\x3d"
OPCODES = {"cont": CONTINUATION, "text": TEXT, "binary": BINARY, "close": CLOSE, "ping": PING, "pong": PONG}
_PAYLOAD = re.compile(r'("(?:[^"\\]|\\.)*")(?:\*(\d+))?$')

#: An expected or observed step: ("text", str), ("binary", bytes), ("ping", bytes),
#: ("pong", bytes), ("close", code, reason), ("need",), ("error", code).
Step = Tuple[object, ...]


def literal(text: str) -> bytes:
    """A double-quoted corpus payload (Python escapes, standing for bytes) → bytes."""
    return ast.literal_eval("b" + text) if text.isascii() else ast.literal_eval(text).encode("utf-8")


def payload_of(tokens: List[str]) -> bytes:
    """The payload a frame line ends with (``"..."`` or ``"..."*N``), or b"" if it has none."""
    if tokens and tokens[-1].startswith('"'):
        match = _PAYLOAD.match(tokens[-1])
        if match is None:
            raise ValueError("bad payload %r" % tokens[-1])
        return literal(match.group(1)) * int(match.group(2) or 1)
    return b""


def frame(line: str) -> bytes:
    """The bytes of one ``| `` line."""
    tokens = _split(line)
    if tokens[0] == "raw":
        return payload_of(tokens[1:])
    opcode = OPCODES[tokens[0]] if tokens[0] in OPCODES else int(tokens[0])
    options = dict(token.split("=", 1) for token in tokens[1:] if "=" in token and not token.startswith('"'))
    flags = {token for token in tokens[1:] if "=" not in token and not token.startswith('"')}
    payload = payload_of(tokens[1:])
    if "code" in options:
        payload = int(options["code"]).to_bytes(2, "big") + payload
    first = (0 if options.get("fin") == "0" else 0x80) | int(options.get("rsv", "0")) << 4 | opcode
    masked = 0 if "unmasked" in flags else 0x80
    size = int(options["len"]) if "len" in options else len(payload)
    if "len" in options:
        payload = b""
    if "len64" in flags or size > 65535:
        header = bytes((first, masked | 127)) + size.to_bytes(8, "big")
    elif "len16" in flags or size > 125:
        header = bytes((first, masked | 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((first, masked | size))
    body = payload if not masked else MASK + unmask(payload, MASK)
    if "cut" in options:  # the header announces the whole payload; only its start is sent
        body = body[: int(options["cut"]) + (4 if masked else 0)]
    return header + body


def _split(line: str) -> List[str]:
    """Tokens of a line: words, and quoted payloads kept whole (with a ``*N`` behind them)."""
    return re.findall(r'"(?:[^"\\]|\\.)*"(?:\*\d+)?|\S+', line)


def step(line: str) -> Step:
    """One ``> `` line as a step."""
    tokens = _split(line)
    kind = tokens[0]
    if kind == "text":
        return ("text", payload_of(tokens[1:]).decode("utf-8"))
    if kind in ("binary", "ping", "pong"):
        return (kind, payload_of(tokens[1:]))
    if kind == "close":
        return ("close", int(tokens[1]), payload_of(tokens[2:]).decode("utf-8"))
    if kind == "error":
        return ("error", int(tokens[1]))
    if kind == "need":
        return ("need",)
    raise ValueError("unknown step %r" % line)


@dataclasses.dataclass
class Case:
    title: str
    source: str  # file:line
    frames: List[bytes]
    expected: List[Step]
    rfc: str = ""
    limits: Dict[str, int] = dataclasses.field(default_factory=dict)

    @property
    def data(self) -> bytes:
        return b"".join(self.frames)

    @property
    def error(self) -> Union[int, None]:
        last = self.expected[-1] if self.expected else None
        return int(last[1]) if last is not None and last[0] == "error" else None  # type: ignore[call-overload]

    def parser(self) -> FrameParser:
        return FrameParser(**self.limits)


def load(path: Path) -> List[Case]:
    cases: List[Case] = []
    current = None
    for number, raw_line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw_line.strip()
        if not line or (line.startswith("#") and not line.startswith("##")):
            continue
        if line.startswith("##"):
            current = Case(line[2:].strip(), "%s:%d" % (path.name, number), [], [])
            cases.append(current)
        elif current is None:
            raise ValueError("%s:%d: a line before the first ## title" % (path.name, number))
        elif line.startswith("| "):
            current.frames.append(frame(line[2:]))
        elif line.startswith("> "):
            current.expected.append(step(line[2:]))
        elif line.startswith("rfc:"):
            current.rfc = line[4:].strip()
        elif line.startswith("limits:"):
            current.limits = {k: int(v) for k, v in (item.split("=") for item in line[7:].split())}
        else:
            raise ValueError("%s:%d: cannot read %r" % (path.name, number, line))
    return cases


def as_step(event: object) -> Step:
    if isinstance(event, Message):
        return ("text" if isinstance(event.data, str) else "binary", event.data)
    if isinstance(event, Ping):
        return ("ping", event.payload)
    if isinstance(event, Pong):
        return ("pong", event.payload)
    if isinstance(event, Close):
        return ("close", event.code, event.reason)
    raise TypeError(event)


def run(parser: FrameParser, pieces: List[bytes]) -> List[Step]:
    """Feed ``pieces`` one by one, collecting events; ends with ("need",) or ("error", code)."""
    steps: List[Step] = []
    for piece in pieces:
        parser.feed(piece)
        while True:
            try:
                event = parser.next_event()
            except WebSocketError as exc:
                steps.append(("error", exc.code))
                return steps
            if event is NEED_DATA:
                break
            steps.append(as_step(event))
    steps.append(("need",))
    return steps


def expected_steps(case: Case) -> List[Step]:
    """What ``run`` must give: the case's steps, with a final ("need",) unless it ends in an error."""
    steps = list(case.expected)
    if not steps or steps[-1][0] not in ("error", "need"):
        steps.append(("need",))
    return steps


CASES = load(HERE / "frames.ws")
INVALID = [case for case in CASES if case.error is not None]
VALID = [case for case in CASES if case.error is None]

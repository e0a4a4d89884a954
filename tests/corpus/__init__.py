"""The request corpus: raw requests and the events or the status each must produce.

Every ``*.http`` file in this directory holds cases separated by ``##`` title lines::

    ## absolute-form: the authority comes from the request-target
    rfc: RFC 9112 §3.2.2
    limits: max_request_line_bytes=32
    eof: yes
    | GET http://example.com/x HTTP/1.1\\r\\n
    | Host: other\\r\\n
    | \\r\\n
    > head GET http://example.com/x form=absolute path=/x authority=example.com
    > end

- ``| `` lines are the raw bytes, concatenated without the file's own newlines and with
  Python escapes decoded (``\\r\\n``, ``\\t``, ``\\x00``, ``\\\\``), so every CR, LF and
  trailing space is explicit.
- ``rfc:`` names the rule the case checks; ``limits:`` passes keyword arguments to
  :class:`~reactor.parser.RequestParser`; ``eof: yes`` means the client then closes its
  sending side. Lines starting with ``#`` are comments.
- ``> `` lines are the expected outcome, in order:

  - ``head METHOD TARGET key=value ...``: a RequestHead; the keys given are compared
    (``form`` origin/absolute/authority/asterisk, ``path``, ``authority`` with ``-``
    for None, ``version``, ``keep_alive`` yes/no, ``length`` with ``-`` for None,
    ``chunked`` yes/no, ``continue`` yes/no);
  - ``field name: value`` after a head: if any are given, they are all the fields;
  - ``body BYTES``: the message body (BodyData joined), escaped like the raw lines;
    a request without this line must have an empty body;
  - ``end``: RequestEnd; ``trailer name: value`` lines after it are all the trailers;
  - ``eos``: EndOfStream; ``need``: the parser waits for more bytes;
  - ``error STATUS``: a ProtocolError with that status, and nothing after it.

A case is valid when it has no ``error`` line. The cases double as integration tests
(``tests/test_malformed.py`` sends the invalid ones to a real server) and as seeds for
the property tests.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from reactor.errors import ProtocolError
from reactor.events import NEED_DATA, PAUSED, BodyData, EndOfStream, RequestEnd, RequestHead
from reactor.parser import RequestParser

HERE = Path(__file__).resolve().parent

#: One observed or expected step: ("head", RequestHead-or-dict), ("body", bytes),
#: ("end", trailers), ("eos",), ("need",), ("error", status).
Step = Tuple[object, ...]


def unescape(text: str) -> bytes:
    """Decode the Python escapes of a corpus line into bytes."""
    return text.encode("latin-1").decode("unicode_escape").encode("latin-1")


@dataclasses.dataclass(frozen=True)
class Case:
    """One corpus case (see the module docstring for the format)."""

    name: str
    source: str  # "file.http:line"
    rfc: str
    raw: bytes
    eof: bool
    limits: Dict[str, int]
    expected: Tuple[Step, ...]

    @property
    def status(self) -> Optional[int]:
        """The error status the case ends with, or None for a valid case."""
        last = self.expected[-1]
        return int(last[1]) if last[0] == "error" else None  # type: ignore[call-overload]

    @property
    def requests_before_error(self) -> int:
        """How many requests complete (``end``) before the outcome."""
        return sum(1 for step in self.expected if step[0] == "end")

    def __str__(self) -> str:
        return "%s (%s)" % (self.name, self.source)


def _parse_expectation(text: str) -> Step:
    kind, _, rest = text.partition(" ")
    if kind == "head":
        parts = rest.split(" ")
        attrs: Dict[str, str] = {"method": parts[0], "target": parts[1]}
        for part in parts[2:]:
            key, _, value = part.partition("=")
            attrs[key] = value
        return ("head", attrs)
    if kind in ("field", "trailer"):
        name, _, value = rest.partition(":")
        return (kind, name.strip(), unescape(value.strip(" ")).decode("latin-1"))
    if kind == "body":
        return ("body", unescape(rest))
    if kind == "error":
        return ("error", int(rest))
    if kind in ("end", "eos", "need"):
        return (kind,)
    raise ValueError("unknown expectation %r" % text)


def _group(steps: List[Step]) -> Tuple[Step, ...]:
    """Fold field/trailer lines into the head or end before them."""
    out: List[Step] = []
    for step in steps:
        if step[0] == "field":
            head = out[-1]
            assert head[0] == "head", "field line must follow a head"
            head[1].setdefault("fields", []).append((step[1], step[2]))  # type: ignore[union-attr]
        elif step[0] == "trailer":
            end = out[-1]
            assert end[0] == "end", "trailer line must follow end"
            out[-1] = ("end", end[1] + ((step[1], step[2]),) if len(end) > 1 else ((step[1], step[2]),))
        else:
            out.append(step)
    return tuple(out)


def load_file(path: Path) -> List[Case]:
    cases: List[Case] = []
    current: Optional[dict] = None

    def finish() -> None:
        if current is not None:
            cases.append(
                Case(
                    name=current["name"],
                    source=current["source"],
                    rfc=current["rfc"],
                    raw=b"".join(current["raw"]),
                    eof=current["eof"],
                    limits=current["limits"],
                    expected=_group(current["expected"]),
                )
            )

    for number, line in enumerate(path.read_text("utf-8").splitlines(), 1):
        if line.startswith("## "):
            finish()
            current = dict(
                name=line[3:].strip(), source="%s:%d" % (path.name, number), rfc="",
                raw=[], eof=False, limits={}, expected=[],
            )
        elif not line.strip() or line.startswith("#"):
            continue
        elif current is None:
            raise ValueError("%s:%d: text before the first case" % (path.name, number))
        elif line.startswith("| "):
            if not line.isascii():
                raise ValueError("%s:%d: raw lines are ASCII; write other bytes as \\xNN" % (path.name, number))
            current["raw"].append(unescape(line[2:]))
        elif line.startswith("> "):
            current["expected"].append(_parse_expectation(line[2:]))
        elif line.startswith("rfc:"):
            current["rfc"] = line[4:].strip()
        elif line.startswith("eof:"):
            current["eof"] = line[4:].strip() == "yes"
        elif line.startswith("limits:"):
            for item in line[7:].split():
                key, _, value = item.partition("=")
                current["limits"][key] = int(value)
        else:
            raise ValueError("%s:%d: cannot read %r" % (path.name, number, line))
    finish()
    return cases


def load_cases() -> List[Case]:
    """All cases of all ``*.http`` files, in file order."""
    cases: List[Case] = []
    for path in sorted(HERE.glob("*.http")):
        cases.extend(load_file(path))
    return cases


CASES = load_cases()
VALID = [case for case in CASES if case.status is None]
INVALID = [case for case in CASES if case.status is not None]


# -- running a case --------------------------------------------------------------------


def run(parser: RequestParser, pieces: Iterable[bytes], eof: bool) -> Tuple[Step, ...]:
    """Feed ``pieces`` one by one (then EOF if asked), draining events after each.

    Returns the normalised outcome: heads as RequestHead, each request's BodyData joined
    into one ("body", bytes) step (omitted when empty), ("end", trailers), ("eos",),
    then ("need",) if the parser is left waiting, or ("error", status).
    """
    out: List[Step] = []
    body = bytearray()

    def drain() -> bool:
        while True:
            event = parser.next_event()
            if event is NEED_DATA:
                return True
            if event is PAUSED:
                parser.start_next_cycle()
                continue
            kind = type(event)
            if kind is BodyData:
                body.extend(event.data)  # type: ignore[union-attr]
                continue
            if kind is RequestEnd:
                if body:
                    out.append(("body", bytes(body)))
                    body.clear()
                out.append(("end", event.trailers))  # type: ignore[union-attr]
            elif kind is RequestHead:
                out.append(("head", event))
            else:
                assert kind is EndOfStream
                out.append(("eos",))
                return False

    try:
        waiting = True
        for piece in pieces:
            if piece:  # b"" would mean the end of stream
                parser.feed(piece)
                waiting = drain()
        if eof:
            parser.feed(b"")
            waiting = drain()
        if waiting and parser.in_message:
            if body:
                out.append(("body", bytes(body)))
            out.append(("need",))
    except ProtocolError as error:
        if body:
            out.append(("body", bytes(body)))
        out.append(("error", error.status))
    return tuple(out)


def run_case(case: Case, pieces: Optional[Sequence[bytes]] = None) -> Tuple[Step, ...]:
    """Run ``case`` through a fresh parser, whole or in the given pieces."""
    return run(RequestParser(**case.limits), [case.raw] if pieces is None else pieces, case.eof)


_HEAD_KEYS = {
    "method": lambda head: head.method,
    "target": lambda head: head.target,
    "form": lambda head: head.target_form.name.lower(),
    "path": lambda head: head.path,
    "authority": lambda head: "-" if head.authority is None else head.authority,
    "version": lambda head: head.http_version,
    "keep_alive": lambda head: "yes" if head.keep_alive else "no",
    "length": lambda head: "-" if head.content_length is None else str(head.content_length),
    "chunked": lambda head: "yes" if head.chunked else "no",
    "continue": lambda head: "yes" if head.expect_continue else "no",
}


def describe(outcome: Sequence[Step], expected: Sequence[Step]) -> Tuple[Step, ...]:
    """``outcome`` reduced to what ``expected`` asks about, for a readable comparison."""
    reduced: List[Step] = []
    for index, step in enumerate(outcome):
        want = expected[index] if index < len(expected) else None
        if step[0] == "head" and want is not None and want[0] == "head":
            head = step[1]
            keys = want[1]
            attrs = {key: _HEAD_KEYS[key](head) for key in keys if key != "fields"}  # type: ignore[union-attr]
            if "fields" in keys:  # type: ignore[operator]
                attrs["fields"] = [tuple(pair) for pair in head.fields]  # type: ignore[union-attr]
            reduced.append(("head", attrs))
        elif step[0] == "head":
            reduced.append(("head", {"method": step[1].method, "target": step[1].target}))  # type: ignore[union-attr]
        elif step[0] == "end" and not step[1]:
            reduced.append(("end",))
        else:
            reduced.append(step)
    return tuple(reduced)


def expected_steps(case: Case) -> Tuple[Step, ...]:
    """The expectations of ``case`` in the shape :func:`describe` produces."""
    steps: List[Step] = []
    for step in case.expected:
        if step[0] == "head":
            attrs = dict(step[1])  # type: ignore[call-overload]
            for key in attrs:
                if key != "fields":
                    attrs[key] = unescape(attrs[key]).decode("latin-1")
            steps.append(("head", attrs))
        else:
            steps.append(step)
    return tuple(steps)

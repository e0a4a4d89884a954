"""Property tests of the sans-I/O parser with hypothesis (no sockets).

- split-invariance: however the bytes are cut, the events are the same;
- round-trip: generated requests, written by us and by h11's client, parse back equal
  (the first inside the split-invariance test of valid requests);
- totality: any bytes give events or the parser's own ProtocolError, nothing else;
- chunked: any chunking of a body decodes to the body; limits give 413 and 431;
- differential against h11: valid requests give the same method, target, fields and
  body; invalid ones are rejected by both, except for the short list of deliberate
  differences below (also in docs/parser.md), which is checked in both directions.

The ``ci`` hypothesis profile (the default) keeps this file to a few seconds; run the
``fuzz`` profile (``tox -e fuzz``) to search for an hour.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import h11
import pytest
from corpus import CASES, Case, Step, run, run_case
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from reactor.errors import ProtocolError
from reactor.events import RequestHead
from reactor.parser import RequestParser

# A fraction of the profile's examples for the tests that also run h11 on each example.
HEAVY = settings(max_examples=max(20, settings.default.max_examples // 2))

TCHAR = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
VCHAR = "".join(map(chr, range(0x21, 0x7F)))
OBS_TEXT = "".join(map(chr, range(0x80, 0x100)))
UNRESERVED = "abcdefghijklmnopqrstuvwxyz0123456789-._~"
# Fields the parser acts on; generated only where a request needs them.
SPECIAL_FIELDS = {"host", "content-length", "transfer-encoding", "connection", "expect"}


# -- a model of a valid request ------------------------------------------------------


@dataclasses.dataclass
class Request:
    """A valid request and what the parser must make of it."""

    method: str
    target: str
    version: str  # "1.0" or "1.1"
    fields: List[Tuple[str, str]]  # as sent (names in any case), framing fields included
    body: bytes
    chunked: bool
    chunk_sizes: List[int]  # how ``body`` is cut into chunks, when chunked
    chunk_exts: List[str]
    trailers: List[Tuple[str, str]]
    ows: List[Tuple[str, str]]  # whitespace written around each field value

    def serialize(self) -> bytes:
        """The request as bytes, written plainly (CRLF, single SP, OWS around values)."""
        lines = ["%s %s HTTP/%s" % (self.method, self.target, self.version)]
        for (name, value), (before, after) in zip(self.fields, self.ows):
            lines.append("%s:%s%s%s" % (name, before, value, after))
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if not self.chunked:
            return head + self.body
        out = [head]
        offset = 0
        for size, ext in zip(self.chunk_sizes, self.chunk_exts):
            out.append(b"%x%s\r\n" % (size, ext.encode("latin-1")))
            out.append(self.body[offset : offset + size] + b"\r\n")
            offset += size
        out.append(b"0\r\n")
        out.extend(("%s: %s\r\n" % pair).encode("latin-1") for pair in self.trailers)
        out.append(b"\r\n")
        return b"".join(out)

    def expected(self) -> Tuple[Step, ...]:
        """The outcome :func:`summary` must give for this request."""
        steps: List[Step] = [
            ("head", self.method, self.target, self.version, tuple((n.lower(), v) for n, v in self.fields))
        ]
        if self.body:
            steps.append(("body", self.body))
        steps.append(("end", tuple((n.lower(), v) for n, v in self.trailers)))
        return tuple(steps)


def summary(outcome: Sequence[Step]) -> Tuple[Step, ...]:
    """Reduce a :func:`corpus.run` outcome to what a request model predicts."""
    out: List[Step] = []
    for step in outcome:
        if step[0] == "head":
            head = step[1]
            assert isinstance(head, RequestHead)
            out.append(("head", head.method, head.target, head.http_version, head.fields))
        else:
            out.append(step)
    return tuple(out)


def parse(raw: bytes, pieces: Optional[Sequence[bytes]] = None, eof: bool = False, **limits: int) -> Tuple[Step, ...]:
    return run(RequestParser(**limits), [raw] if pieces is None else pieces, eof)


def split_at(data: bytes, cuts: Sequence[int]) -> List[bytes]:
    """``data`` cut at the given offsets (taken modulo its length, in order)."""
    points = sorted({cut % (len(data) + 1) for cut in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:])]


# -- strategies ------------------------------------------------------------------------

tokens = st.text(TCHAR, min_size=1, max_size=10)
methods = st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"]) | tokens.filter(
    lambda method: method != "CONNECT"
)
hosts = st.builds(
    lambda name, port: name + port,
    st.text(UNRESERVED, min_size=1, max_size=12),
    st.sampled_from(["", ":80", ":8080", ":"]),
) | st.sampled_from(["[::1]", "[2001:db8::7]:443", "127.0.0.1:8000"])
origin_targets = st.builds(lambda rest: "/" + rest, st.text(VCHAR, max_size=30))
absolute_targets = st.builds(
    lambda scheme, host, rest: "%s://%s%s" % (scheme, host, rest),
    st.sampled_from(["http", "https", "HTTP"]),
    hosts.filter(lambda host: not host.startswith(":")),
    st.just("") | origin_targets | st.builds(lambda q: "?" + q, st.text(VCHAR, max_size=10)),
)
field_names = tokens.filter(lambda name: name.lower() not in SPECIAL_FIELDS)
field_values = st.builds(
    lambda words, gaps: "".join(word + gap for word, gap in zip(words, gaps + [""])).rstrip(" \t"),
    st.lists(st.text(VCHAR + OBS_TEXT, min_size=1, max_size=8), max_size=4),
    st.lists(st.sampled_from([" ", "\t", "  ", " \t "]), max_size=4),
)
ascii_values = field_values.filter(lambda value: value.isascii())
ows = st.tuples(st.sampled_from(["", " ", "\t", "  "]), st.sampled_from(["", " ", "\t", " \t"]))
# chunk-ext with and without BWS around ";" and "=" (RFC 9112 §7.1.1); h11 refuses BWS.
h11_chunk_exts = st.sampled_from(["", ";a", ";name=value", ';q="x \\" y"', ";a=1;b"])
chunk_exts = h11_chunk_exts | st.sampled_from([' ; q = "x \\" y"', "\t;a"])


@st.composite
def requests(
    draw: st.DrawFn,
    versions: Sequence[str] = ("1.1", "1.0"),
    values: st.SearchStrategy[str] = field_values,
    plain_ows: bool = False,
    max_body: int = 300,
    exts: st.SearchStrategy[str] = chunk_exts,
) -> Request:
    """A valid request: any method but CONNECT, origin- or absolute-form, Host as the
    version needs it, a few fields, and no body, a Content-Length body or a chunked one."""
    version = draw(st.sampled_from(versions))
    method = draw(methods)
    target = draw(origin_targets | absolute_targets)
    fields = draw(st.lists(st.tuples(field_names, values), max_size=6))
    if version == "1.1" or draw(st.booleans()):
        host_name = draw(st.sampled_from(["Host", "host", "HOST"]))
        fields.insert(draw(st.integers(0, len(fields))), (host_name, draw(hosts)))
    framing = draw(st.sampled_from(["none", "length", "chunked"]))
    body = b"" if framing == "none" else draw(st.binary(max_size=max_body))
    chunk_sizes: List[int] = []
    ext_list: List[str] = []
    trailers: List[Tuple[str, str]] = []
    if framing == "length":
        fields.insert(draw(st.integers(0, len(fields))), ("Content-Length", str(len(body))))
    elif framing == "chunked":
        fields.insert(draw(st.integers(0, len(fields))), ("Transfer-Encoding", "chunked"))
        cuts = draw(st.lists(st.integers(0, len(body)), max_size=6))
        points = sorted(set(cuts) | {0, len(body)})
        chunk_sizes = [b - a for a, b in zip(points, points[1:]) if b > a]
        ext_list = [draw(exts) for _ in chunk_sizes]
        trailers = draw(st.lists(st.tuples(field_names, values), max_size=2))
    spacing = [("", "") if plain_ows else draw(ows) for _ in fields]
    # A 1.0 request keeps the connection only when asked; either way is valid.
    return Request(
        method, target, version, fields, body, framing == "chunked", chunk_sizes, ext_list, trailers, spacing
    )


# -- split-invariance ---------------------------------------------------------------


@given(request=requests(), cuts=st.lists(st.integers(min_value=0), max_size=12))
def test_split_invariance_of_valid_requests(request: Request, cuts: List[int]) -> None:
    """A generated request, written out, parses back to itself (the round-trip through
    our own writer), and gives the same events however it is cut."""
    raw = request.serialize()
    whole = parse(raw)
    assert summary(whole) == request.expected()
    assert parse(raw, split_at(raw, cuts)) == whole


@given(batch=st.lists(requests(versions=("1.1",)), min_size=2, max_size=3), cuts=st.lists(st.integers(0), max_size=12))
def test_split_invariance_of_pipelined_requests(batch: List[Request], cuts: List[int]) -> None:
    raw = b"".join(request.serialize() for request in batch)
    expected = tuple(step for request in batch for step in request.expected())
    assert summary(parse(raw)) == expected
    assert summary(parse(raw, split_at(raw, cuts))) == expected


@given(case=st.sampled_from(CASES), cuts=st.lists(st.integers(min_value=0), max_size=8))
def test_split_invariance_of_the_corpus(case: Case, cuts: List[int]) -> None:
    """Valid or not, every corpus case gives the same outcome however it is cut."""
    assert run_case(case, split_at(case.raw, cuts)) == run_case(case)


def mutate(raw: bytes, edits: List[Tuple[int, int, bytes]]) -> bytes:
    """Apply (position, delete-count, insert) edits to ``raw``, positions modulo its length."""
    data = bytearray(raw)
    for position, delete, insert in edits:
        at = position % (len(data) + 1)
        data[at : at + delete] = insert
    return bytes(data)


edits = st.lists(
    st.tuples(
        st.integers(min_value=0),
        st.integers(0, 3),
        st.binary(max_size=3) | st.sampled_from([b"\r\n", b"\n", b"\r", b" ", b":", b"\x00", b"0", b"\r\n\r\n"]),
    ),
    min_size=1,
    max_size=3,
)


@given(request=requests(), changes=edits, cuts=st.lists(st.integers(min_value=0), max_size=8), eof=st.booleans())
def test_split_invariance_of_damaged_requests(
    request: Request, changes: List[Tuple[int, int, bytes]], cuts: List[int], eof: bool
) -> None:
    """Damaged requests too: the events before an error, and whether there is an error,
    do not depend on the cuts. (With several faults, which status comes may.)"""
    raw = mutate(request.serialize(), changes)
    whole = parse(raw, eof=eof)
    cut = parse(raw, split_at(raw, cuts), eof=eof)
    if whole[-1][0] == "error" or cut[-1][0] == "error":
        assert whole[-1][0] == cut[-1][0] == "error"
        assert whole[:-1] == cut[:-1]
    else:
        assert cut == whole


# -- round-trip ----------------------------------------------------------------------


def h11_client_bytes(request: Request, data_pieces: List[bytes]) -> bytes:
    """The bytes h11's client writes for ``request``, sending the body in ``data_pieces``."""
    client = h11.Connection(h11.CLIENT)
    out = [
        client.send(
            h11.Request(
                method=request.method,
                target=request.target,
                headers=[(name, value.encode("latin-1")) for name, value in request.fields],
            )
        )
    ]
    for piece in data_pieces:
        if piece:
            out.append(client.send(h11.Data(data=piece)))
    out.append(client.send(h11.EndOfMessage(headers=[(n, v.encode("latin-1")) for n, v in request.trailers])))
    return b"".join(chunk for chunk in out if chunk)


@HEAVY
@given(request=requests(versions=("1.1",)), cuts=st.lists(st.integers(min_value=0), max_size=5))
def test_round_trip_through_h11_client(request: Request, cuts: List[int]) -> None:
    """h11 writes the request (its own chunk boundaries and spacing); we parse it back."""
    raw = h11_client_bytes(request, split_at(request.body, cuts))
    outcome = summary(parse(raw))
    head = outcome[0]
    assert head[:4] == ("head", request.method, request.target, "1.1")
    fields = [(name.lower(), value) for name, value in request.fields]
    # h11 writes Host first (RFC 9110 §7.2 says a client SHOULD), the rest in order.
    assert head[4] == tuple(sorted(fields, key=lambda field: field[0] != "host"))
    assert outcome[1:] == request.expected()[1:]


# -- totality ------------------------------------------------------------------------

tiny_limits = st.fixed_dictionaries(
    {},
    optional={
        "max_request_line_bytes": st.integers(1, 64),
        "max_header_section_bytes": st.integers(1, 128),
        "max_field_lines": st.integers(0, 4),
        "max_body_bytes": st.integers(0, 64),
        "max_chunk_line_bytes": st.integers(1, 16),
    },
)


def check_total(pieces: Sequence[bytes], eof: bool, limits: Dict[str, int]) -> None:
    """Feed ``pieces``; only events, NEED_DATA, PAUSED or ProtocolError may come out."""
    parser = RequestParser(**limits)
    outcome = run(parser, pieces, eof)  # any other exception fails the test
    if outcome and outcome[-1][0] == "error":
        assert outcome[-1][1] in (400, 413, 414, 417, 431, 501, 505)
        with pytest.raises(ProtocolError):
            parser.next_event()  # and it stays


@given(
    raw=st.binary(max_size=512),
    cuts=st.lists(st.integers(min_value=0), max_size=6),
    eof=st.booleans(),
    limits=tiny_limits,
)
@example(
    raw=b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n", cuts=[], eof=False, limits={}
)
def test_totality_on_arbitrary_bytes(raw: bytes, cuts: List[int], eof: bool, limits: Dict[str, int]) -> None:
    check_total(split_at(raw, cuts), eof, limits)


@given(
    request=requests(),
    changes=edits,
    cuts=st.lists(st.integers(min_value=0), max_size=6),
    eof=st.booleans(),
    limits=tiny_limits,
)
def test_totality_on_damaged_requests(
    request: Request, changes: List[Tuple[int, int, bytes]], cuts: List[int], eof: bool, limits: Dict[str, int]
) -> None:
    raw = mutate(request.serialize(), changes)
    check_total(split_at(raw, cuts), eof, limits)


# -- chunked decoding and limits ------------------------------------------------------


@given(
    body=st.binary(max_size=4000),
    cuts=st.lists(st.integers(min_value=0), max_size=20),
    exts=st.lists(chunk_exts, max_size=20),
    max_body_bytes=st.integers(0, 5000),
    feed_cuts=st.lists(st.integers(min_value=0), max_size=6),
)
def test_chunked_decoding_equals_the_body(
    body: bytes, cuts: List[int], exts: List[str], max_body_bytes: int, feed_cuts: List[int]
) -> None:
    chunks = split_at(body, cuts)
    chunks = [chunk for chunk in chunks if chunk]
    raw = bytearray(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
    for index, chunk in enumerate(chunks):
        ext = exts[index] if index < len(exts) else ""
        raw += b"%X%s\r\n%s\r\n" % (len(chunk), ext.encode(), chunk)
    raw += b"0\r\n\r\n"
    outcome = parse(bytes(raw), split_at(bytes(raw), feed_cuts), max_body_bytes=max_body_bytes)
    if len(body) <= max_body_bytes:
        assert outcome[1:] == ((("body", body),) if body else ()) + (("end", ()),)
    else:
        assert outcome[-1] == ("error", 413)
        # Nothing beyond the limit was handed over.
        got = b"".join(step[1] for step in outcome if step[0] == "body")  # type: ignore[misc]
        assert len(got) <= max_body_bytes and body.startswith(got)


@given(
    trailers=st.lists(st.tuples(field_names, ascii_values), max_size=6),
    max_header_section_bytes=st.integers(30, 300),
    max_field_lines=st.integers(1, 6),
    cuts=st.lists(st.integers(min_value=0), max_size=6),
)
def test_trailer_section_limits(
    trailers: List[Tuple[str, str]], max_header_section_bytes: int, max_field_lines: int, cuts: List[int]
) -> None:
    """A trailer section is held to the header section's limits (RFC 9112 §7.1.2)."""
    # HTTP/1.0 needs no Host, so the header section is 30 bytes and one field line.
    head = b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"
    section = b"".join(b"%s: %s\r\n" % (n.encode(), v.encode()) for n, v in trailers) + b"\r\n"
    raw = head + b"0\r\n" + section
    outcome = parse(
        raw, split_at(raw, cuts), max_header_section_bytes=max_header_section_bytes, max_field_lines=max_field_lines
    )
    if len(section) > max_header_section_bytes or len(trailers) > max_field_lines:
        assert outcome[-1] == ("error", 431)
    else:
        assert outcome[-1] == ("end", tuple((n.lower(), v) for n, v in trailers))


@given(
    request=requests(values=ascii_values, plain_ows=True),
    max_request_line_bytes=st.integers(1, 80),
    max_header_section_bytes=st.integers(1, 200),
    max_field_lines=st.integers(0, 8),
    cuts=st.lists(st.integers(min_value=0), max_size=6),
)
def test_head_limits_are_exact(
    request: Request, max_request_line_bytes: int, max_header_section_bytes: int, max_field_lines: int, cuts: List[int]
) -> None:
    """414 past the request-line limit, else 431 past the section or line-count limit,
    at exactly the documented byte counts, however the bytes arrive."""
    raw = request.serialize()
    line_bytes = raw.index(b"\r\n")
    section_bytes = raw.index(b"\r\n\r\n") + 2 - line_bytes  # field lines + the empty line
    limits = dict(
        max_request_line_bytes=max_request_line_bytes,
        max_header_section_bytes=max_header_section_bytes,
        max_field_lines=max_field_lines,
        max_body_bytes=10_000,
    )
    outcome = parse(raw, split_at(raw, cuts), **limits)
    if line_bytes > max_request_line_bytes:
        assert outcome == (("error", 414),)
    elif section_bytes > max_header_section_bytes or len(request.fields) > max_field_lines:
        assert outcome == (("error", 431),)
    else:
        assert summary(outcome)[0][0] == "head"


# -- differential against h11 ---------------------------------------------------------


def h11_outcome(raw: bytes, eof: bool = True) -> Tuple[Step, ...]:
    """What h11's server side makes of ``raw``: the first request, in summary() shape."""
    server = h11.Connection(h11.SERVER)
    server.receive_data(raw)
    if eof:
        server.receive_data(b"")
    out: List[Step] = []
    body = bytearray()
    try:
        while True:
            event = server.next_event()
            if event is h11.NEED_DATA or event is h11.PAUSED or type(event) is h11.ConnectionClosed:
                out.append(("need",))
                return tuple(out)
            if type(event) is h11.Request:
                fields = tuple((name.decode("latin-1"), value.decode("latin-1")) for name, value in event.headers)
                out.append(("head", event.method.decode(), event.target.decode(), event.http_version.decode(), fields))
            elif type(event) is h11.Data:
                body += event.data
            elif type(event) is h11.EndOfMessage:
                if body:
                    out.append(("body", bytes(body)))
                trailers = tuple((n.decode("latin-1"), v.decode("latin-1")) for n, v in event.headers)
                out.append(("end", trailers))
                return tuple(out)
    except h11.RemoteProtocolError:
        out.append(("error",))
        return tuple(out)


def rejects(outcome: Sequence[Step]) -> bool:
    return outcome[-1][0] == "error"


def first_request(outcome: Sequence[Step]) -> Tuple[Step, ...]:
    """The steps up to and including the first request's end (h11 looks at one request)."""
    for index, step in enumerate(outcome):
        if step[0] == "end":
            return tuple(outcome[: index + 1])
    return tuple(outcome)


@HEAVY
@given(request=requests(versions=("1.1", "1.0"), exts=h11_chunk_exts))
def test_differential_valid_requests_agree_with_h11(request: Request) -> None:
    raw = request.serialize()
    ours = summary(parse(raw))
    theirs = h11_outcome(raw)
    assert ours == theirs == request.expected()


Mutation = Callable[[Request, bytes], Optional[bytes]]


def _field_line(request: Request) -> Optional[bytes]:
    """The serialized first field line that is not Host or a framing field, if any."""
    for (name, value), (before, after) in zip(request.fields, request.ows):
        if name.lower() not in SPECIAL_FIELDS:
            return ("%s:%s%s%s\r\n" % (name, before, value, after)).encode("latin-1")
    return None


def _replace_field(request: Request, raw: bytes, new: Callable[[bytes], bytes]) -> Optional[bytes]:
    line = _field_line(request)
    if line is None:
        return None
    return raw.replace(line, new(line), 1)


def _head_end(raw: bytes) -> int:
    return raw.index(b"\r\n\r\n")


def _sub_field(raw: bytes, name: bytes, new_line: bytes) -> Optional[bytes]:
    """Replace the first field line called ``name`` (any case) in the header section."""
    end = _head_end(raw)
    changed, count = re.subn(rb"(?im)^" + name + rb":[^\r\n]*", new_line, raw[:end], count=1)
    return changed + raw[end:] if count else None


def _add_field(raw: bytes, line: bytes) -> bytes:
    """Add a field line right after the request-line."""
    return raw.replace(b"\r\n", b"\r\n" + line + b"\r\n", 1)


def _first_chunk_line_end(raw: bytes) -> int:
    return raw.index(b"\r\n", _head_end(raw) + 4)


def _first_chunk_size_end(request: Request, raw: bytes) -> int:
    return _head_end(raw) + 4 + len("%x" % request.chunk_sizes[0])


#: Faults both parsers must reject: (name, mutation). A mutation returns None when the
#: request has nothing to damage that way.
BOTH_REJECT: Dict[str, Mutation] = {
    "whitespace before colon": lambda r, raw: _replace_field(r, raw, lambda line: line.replace(b":", b" :", 1)),
    "NUL in a field value": lambda r, raw: _replace_field(r, raw, lambda line: line[:-2] + b"\x00x\r\n"),
    "bare CR in a field value": lambda r, raw: _replace_field(r, raw, lambda line: line[:-2] + b"x\rx\r\n"),
    # every colon goes: a value may hold one too ("0: :" less its first colon is still a field line)
    "field line without colon": lambda r, raw: _replace_field(r, raw, lambda line: line.replace(b":", b"")),
    "field name not a token": lambda r, raw: _replace_field(r, raw, lambda line: b"(" + line),
    "whitespace before the first field line": lambda r, raw: raw.replace(b"\r\n", b"\r\n ", 1),
    "method not a token": lambda r, raw: b"(" + raw,
    "two spaces after the method": lambda r, raw: raw.replace(b" ", b"  ", 1),
    "obs-text in the request-target": lambda r, raw: raw.replace(b" ", b" /\xe9", 1),
    "malformed HTTP-version": lambda r, raw: raw.replace(b" HTTP/1.", b" HTTP/11.", 1),
    "lower-case HTTP-name": lambda r, raw: raw.replace(b" HTTP/1.", b" http/1.", 1),
    "missing Host in HTTP/1.1": lambda r, raw: (
        None
        if r.version != "1.1"
        else b"".join(
            line
            for line in raw[: _head_end(raw) + 2].splitlines(keepends=True)
            if not line.lower().startswith(b"host:")
        )
        + raw[_head_end(raw) + 2 :]
    ),
    "two Host field lines": lambda r, raw: _add_field(raw, b"Host: a\r\nHost: b"),
    "conflicting Content-Length": lambda r, raw: (
        None if r.chunked else _add_field(raw, b"Content-Length: 1\r\nContent-Length: 2")
    ),
    "Content-Length with a sign": lambda r, raw: _sub_field(
        raw, b"content-length", b"Content-Length: +%d" % len(r.body)
    ),
    "transfer coding other than chunked": lambda r, raw: _sub_field(
        raw, b"transfer-encoding", b"Transfer-Encoding: gzip"
    ),
    "chunk-size not hex": lambda r, raw: (
        None if not r.chunk_sizes else raw[: _head_end(raw) + 4] + b"zz" + raw[_head_end(raw) + 4 :]
    ),
    "chunk-data without CRLF": lambda r, raw: (
        None
        if not r.chunk_sizes
        else raw[: _first_chunk_line_end(raw) + 2 + r.chunk_sizes[0]]
        + b"XX"
        + raw[_first_chunk_line_end(raw) + 4 + r.chunk_sizes[0] :]
    ),
    "closed inside the header section": lambda r, raw: raw[: _head_end(raw) + 2],
    "closed inside the body": lambda r, raw: (
        None if not r.chunked and len(r.body) < 2 else raw[: _head_end(raw) + 4 + 1]
    ),
}


@HEAVY
@given(request=requests(versions=("1.1", "1.0"), exts=h11_chunk_exts), fault=st.sampled_from(sorted(BOTH_REJECT)))
def test_differential_invalid_requests_are_rejected_by_both(request: Request, fault: str) -> None:
    # Give every request a plain field line to damage.
    request.fields.append(("X-Probe", "probe"))
    request.ows.append((" ", ""))
    raw = BOTH_REJECT[fault](request, request.serialize())
    assume(raw is not None)
    assert raw is not None
    ours = parse(raw, eof=True)
    assert rejects(first_request(ours)), ours
    assert rejects(h11_outcome(raw)), fault


#: The deliberate differences from h11 (docs/parser.md lists them with reasons): each
#: turns a valid request into one that reactor rejects and h11 accepts, except the last,
#: which reactor accepts and h11 rejects. If h11 changes, this test says which entry to
#: update in the documentation.
DIFFERENCES: Dict[str, Mutation] = {
    "bare LF line endings": lambda r, raw: (
        raw[: _head_end(raw) + 4].replace(b"\r\n", b"\n") + raw[_head_end(raw) + 4 :]
    ),
    "obs-fold continuation line": lambda r, raw: _replace_field(r, raw, lambda line: line + b" folded\r\n"),
    "control character in a field value": lambda r, raw: _replace_field(
        r, raw, lambda line: line[:-2] + b"\x01\x7f\r\n"
    ),
    "Transfer-Encoding with Content-Length": lambda r, raw: (
        None if not r.chunked else _add_field(raw, b"Content-Length: 3")
    ),
    "asterisk-form with a method other than OPTIONS": lambda r, raw: (
        None if r.method == "OPTIONS" else raw.replace(b" " + r.target.encode() + b" ", b" * ", 1)
    ),
    "authority-form with a method other than CONNECT": lambda r, raw: raw.replace(
        b" " + r.target.encode() + b" ", b" example.com:80 ", 1
    ),
    "Host that is not uri-host [:port]": lambda r, raw: (
        _sub_field(raw, b"host", b"Host: a b") or _add_field(raw, b"Host: a b")
    ),
    "expectation other than 100-continue": lambda r, raw: _add_field(raw, b"Expect: fly"),
    "chunk extension outside the grammar": lambda r, raw: (
        None if not r.chunk_sizes else raw[: _first_chunk_line_end(raw)] + b";a b" + raw[_first_chunk_line_end(raw) :]
    ),
    "chunk-size over 16 hex digits": lambda r, raw: (
        None if not r.chunk_sizes else raw[: _head_end(raw) + 4] + b"0" * 16 + raw[_head_end(raw) + 4 :]
    ),
    "HTTP major version other than 1": lambda r, raw: raw.replace(b" HTTP/1.", b" HTTP/2.", 1),
    "whitespace before the CRLF of a chunk-size line": lambda r, raw: (
        None if not r.chunk_sizes else raw[: _first_chunk_line_end(raw)] + b" " + raw[_first_chunk_line_end(raw) :]
    ),
}
#: reactor accepts, h11 rejects.
ACCEPTED_DIFFERENCES: Dict[str, Mutation] = {
    "empty lines before the request-line": lambda r, raw: b"\r\n\r\n" + raw,
    "whitespace before a chunk extension": lambda r, raw: (
        None
        if not r.chunk_sizes
        else raw[: _first_chunk_size_end(r, raw)] + b" ;a" + raw[_first_chunk_size_end(r, raw) :]
    ),
}


@HEAVY
@given(request=requests(versions=("1.1", "1.0"), exts=h11_chunk_exts), difference=st.sampled_from(sorted(DIFFERENCES)))
def test_deliberate_differences_reactor_rejects_h11_accepts(request: Request, difference: str) -> None:
    request.fields.append(("X-Probe", "probe"))
    request.ows.append((" ", ""))
    raw = DIFFERENCES[difference](request, request.serialize())
    assume(raw is not None)
    assert raw is not None
    assert rejects(first_request(parse(raw, eof=True))), difference
    assert not rejects(h11_outcome(raw)), "h11 now rejects %r too: update docs/parser.md" % difference


@given(
    request=requests(versions=("1.1", "1.0"), exts=h11_chunk_exts),
    difference=st.sampled_from(sorted(ACCEPTED_DIFFERENCES)),
)
def test_deliberate_differences_reactor_accepts_h11_rejects(request: Request, difference: str) -> None:
    raw = ACCEPTED_DIFFERENCES[difference](request, request.serialize())
    assume(raw is not None)
    assert raw is not None
    assert summary(parse(raw)) == request.expected()
    assert rejects(h11_outcome(raw)), "h11 now accepts %r too: update docs/parser.md" % difference

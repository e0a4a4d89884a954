"""Byte ranges (RFC 9110 §14): parse ``Range``, answer 206 or 416, build multipart bodies.

:func:`parse_range` turns a ``Range`` field value into the satisfiable byte ranges of
a representation of ``size`` bytes:

- ``None``: ignore the field and send the whole representation with 200. That is the
  answer to a malformed value, a unit other than ``bytes``, an empty representation
  (no byte range of it can be written in a Content-Range), and requests for more than
  :data:`MAX_RANGES` pieces (§14.2 lets a server ignore those: they are how range
  requests are abused for denial of service);
- ``[]``: none of the ranges is satisfiable → 416 with ``Content-Range: bytes */size``;
- ``[(first, last), ...]``: inclusive offsets, clamped to the representation.

Overlapping ranges are merged (sorted) before anything is sent, so a client cannot
make the server send the same bytes many times over (§14.2 allows coalescing). One
range left → a 206 with ``Content-Range``; several → ``multipart/byteranges``
(:func:`multipart_body`, §14.6), built in memory and so limited to
:data:`MULTIPART_MAX_BYTES` of file data; a larger multi-range request gets the whole
file with 200, which the RFC also allows. A single range of any size is sent straight
from the file (``os.sendfile``), so ranges of files larger than memory cost nothing.
"""

from __future__ import annotations

import re
import secrets
from typing import Callable, List, Optional, Tuple

from reactor.abnf import TCHAR

Ranges = List[Tuple[int, int]]

#: More range-specs than this in one request and the field is ignored (200).
MAX_RANGES = 64
#: File bytes a multipart/byteranges body may hold; more and the whole file is sent.
MULTIPART_MAX_BYTES = 1024 * 1024

# ranges-specifier = range-unit "=" range-set; range-set = 1#range-spec  (§14.1.1)
_RANGES_SPECIFIER = re.compile(r"(" + TCHAR + r"+)=(.*)", re.DOTALL)
# range-spec = int-range / suffix-range; int-range = first-pos "-" [ last-pos ];
# suffix-range = "-" suffix-length; each element with OWS, then a comma or the end.
_RANGE_SPEC = re.compile(r"[ \t]*(?:([0-9]+)-([0-9]*)|-([0-9]+))?[ \t]*(?:,|\Z)")


def parse_range(value: str, size: int) -> Optional[Ranges]:
    """The satisfiable byte ranges that ``value`` asks of ``size`` bytes (see module doc).

    Returns None (ignore the field), ``[]`` (416) or inclusive ``(first, last)`` pairs,
    overlapping ones merged.
    """
    match = _RANGES_SPECIFIER.fullmatch(value.strip())
    if match is None or match.group(1).lower() != "bytes" or size <= 0:
        return None
    range_set = match.group(2)
    specs = 0
    satisfiable: Ranges = []
    position = 0
    end = len(range_set)
    while position < end:
        spec = _RANGE_SPEC.match(range_set, position)
        if spec is None or spec.end() == position:
            return None
        position = spec.end()
        first_pos, last_pos, suffix_length = spec.groups()
        if first_pos is not None:
            first = _number(first_pos)
            last = _number(last_pos) if last_pos else size - 1
            if last_pos and last < first:
                return None  # an invalid range-spec makes the whole field invalid (§14.1.1)
            if first < size:
                satisfiable.append((first, min(last, size - 1)))
        elif suffix_length is not None:
            length = _number(suffix_length)
            if length > 0:
                satisfiable.append((max(0, size - length), size - 1))
        else:
            continue  # an empty list element (§5.6.1)
        specs += 1
        if specs > MAX_RANGES:
            return None
    if specs == 0:
        return None  # "bytes=" names no range at all
    return _coalesce(satisfiable)


def _number(digits: str) -> int:
    """1*DIGIT as an int; beyond 18 digits (past any file size) a stand-in of 2**63.

    Keeps int() away from thousands of digits, which Python refuses (and which would
    cost quadratic time before it did).
    """
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= 18 else 2**63


def _coalesce(ranges: Ranges) -> Ranges:
    """Merge overlapping or touching ranges; keep the client's order when none do."""
    if len(ranges) < 2:
        return ranges
    ordered = sorted(ranges)
    if all(ordered[i][1] + 1 < ordered[i + 1][0] for i in range(len(ordered) - 1)):
        return ranges
    merged = [ordered[0]]
    for first, last in ordered[1:]:
        previous_first, previous_last = merged[-1]
        if first <= previous_last + 1:
            merged[-1] = (previous_first, max(previous_last, last))
        else:
            merged.append((first, last))
    return merged


def content_range(first: int, last: int, size: int) -> str:
    """The Content-Range field value ``bytes first-last/size`` (§14.4)."""
    return "bytes %d-%d/%d" % (first, last, size)


def unsatisfied_range(size: int) -> str:
    """The Content-Range of a 416: ``bytes */size`` (§14.4, §15.5.17)."""
    return "bytes */%d" % size


def total_bytes(ranges: Ranges) -> int:
    """How many bytes of the file the ranges cover."""
    return sum(last - first + 1 for first, last in ranges)


def new_boundary() -> str:
    """A multipart boundary that cannot occur in the parts' headers (RFC 2046 §5.1.1)."""
    return "reactor-" + secrets.token_hex(12)


def multipart_body(
    boundary: str, content_type: str, size: int, ranges: Ranges, read: Callable[[int, int], bytes]
) -> bytes:
    """A ``multipart/byteranges`` body (§14.6) for ``ranges`` of a ``size``-byte file.

    ``read(offset, length)`` returns the file's bytes; it runs once per range, so with
    an open file it belongs on a worker. Each part carries Content-Type and
    Content-Range; the body ends with the close-delimiter.
    """
    delimiter = ("--%s\r\n" % boundary).encode("ascii")
    pieces = []
    for first, last in ranges:
        pieces.append(delimiter)
        pieces.append(
            ("Content-Type: %s\r\nContent-Range: %s\r\n\r\n" % (content_type, content_range(first, last, size))).encode(
                "latin-1"
            )
        )
        pieces.append(read(first, last - first + 1))
        pieces.append(b"\r\n")
    pieces.append(("--%s--\r\n" % boundary).encode("ascii"))
    return b"".join(pieces)

"""Turn responses into bytes: status-line, field lines, dates (RFC 9112 §4, RFC 9110 §5.6.7).

Sans-I/O like the parser. Reason phrases come from :class:`http.HTTPStatus` and dates
from :func:`email.utils.formatdate`; both are cached because every response needs them.
"""

from __future__ import annotations

import email.utils
import http
import time
from typing import Dict, Optional, Sequence, Tuple

_STATUS_LINES: Dict[int, bytes] = {}


def status_line(status: int) -> bytes:
    """``HTTP/1.1 <status> <reason-phrase>\\r\\n`` for a three-digit status (RFC 9112 §4)."""
    line = _STATUS_LINES.get(status)
    if line is None:
        try:
            phrase = http.HTTPStatus(status).phrase
        except ValueError:
            phrase = ""
        line = _STATUS_LINES[status] = ("HTTP/1.1 %03d %s\r\n" % (status, phrase)).encode("ascii")
    return line


def reason_phrase(status: int) -> str:
    """The reason phrase for ``status``, or ``""`` if it is unregistered."""
    return status_line(status)[13:-2].decode("ascii")


def field_lines(fields: Sequence[Tuple[str, str]]) -> bytes:
    """Serialize field lines, each ending with CRLF (``b""`` for none); no status-line, no empty line.

    Field values are encoded as ISO-8859-1. Raises ValueError if a name or value holds
    CR, LF or NUL, which would let one field inject another (RFC 9110 §5.5), and
    UnicodeEncodeError for a character outside ISO-8859-1.
    """
    if not fields:
        return b""
    text = "\r\n".join(map(": ".join, fields))
    # The join put exactly len(fields) - 1 CRLFs in; any other CR, LF (or a NUL) came
    # from a name or value. Three scans in C instead of one check per field.
    separators = len(fields) - 1
    if text.count("\n") > separators or text.count("\r") > separators or "\0" in text:
        raise ValueError("CR, LF or NUL in a response field")
    return (text + "\r\n").encode("latin-1")


def response_head(status: int, fields: Sequence[Tuple[str, str]]) -> bytes:
    """Serialize a status-line and field lines, ending with the empty line (see :func:`field_lines`)."""
    return status_line(status) + field_lines(fields) + b"\r\n"


class _DateCache:
    """The IMF-fixdate for the current second, formatted once a second (RFC 9110 §5.6.7)."""

    __slots__ = ("_second", "_value")

    def __init__(self) -> None:
        self._second = -1
        self._value = ""

    def __call__(self, now: Optional[float] = None) -> str:
        if now is None:
            now = time.time()
        second = int(now)
        if second != self._second:
            self._value = email.utils.formatdate(second, usegmt=True)
            self._second = second
        return self._value


#: ``http_date()`` → ``"Sat, 21 Nov 2026 13:37:00 GMT"`` for now. The bound method, not the
#: instance: Python calls a method directly but an instance's ``__call__`` through a slot.
http_date = _DateCache().__call__


def format_http_date(timestamp: float) -> str:
    """The IMF-fixdate for a POSIX timestamp in seconds (RFC 9110 §5.6.7)."""
    return email.utils.formatdate(timestamp, usegmt=True)

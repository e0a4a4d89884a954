"""Events the sans-I/O parser produces (see :mod:`reactor.parser`).

A request is ``RequestHead``, zero or more ``BodyData``, then ``RequestEnd``.
``EndOfStream`` reports that the client closed its sending side between requests.
Events are immutable named tuples: cheap to build on the hot path, easy to compare
in property tests.
"""

from __future__ import annotations

import enum
from typing import FrozenSet, NamedTuple, Optional, Tuple, Union

Fields = Tuple[Tuple[str, str], ...]


class TargetForm(enum.Enum):
    """The four forms of request-target (RFC 9112 §3.2)."""

    ORIGIN = "origin-form"  # /path?query
    ABSOLUTE = "absolute-form"  # http://authority/path?query
    AUTHORITY = "authority-form"  # host:port, CONNECT only
    ASTERISK = "asterisk-form"  # *, OPTIONS only


class RequestHead(NamedTuple):
    """The request-line and header section of one request (RFC 9112 §3, §5).

    - ``method``: the method token, case-sensitive (``"GET"``).
    - ``target``: the request-target as sent; for absolute-form, ``path`` and
      ``authority`` hold its parts.
    - ``path``: origin-form path and query (``"/a%20b?x=1"``), still percent-encoded;
      ``"*"`` for asterisk-form and ``""`` for authority-form.
    - ``authority``: the authority the client addressed (absolute-form authority,
      else the Host field value); ``None`` for HTTP/1.0 without Host.
    - ``http_version``: ``"1.0"`` or ``"1.1"`` (1.x with x > 1 is handled as 1.1).
    - ``fields``: ``(name, value)`` pairs in order received; names lower-cased, values
      decoded as ISO-8859-1 with surrounding whitespace removed.
    - ``keep_alive``: whether the client allows the connection to persist (RFC 9112 §9.3).
    - ``content_length``: the framing length in bytes, or ``None`` when ``chunked``.
    - ``chunked``: the message body uses the chunked transfer coding (RFC 9112 §7.1).
    - ``expect_continue``: the client sent ``Expect: 100-continue`` (RFC 9110 §10.1.1).
    - ``connection_options``: the Connection field's options, lower-cased
      (``{"keep-alive"}``; RFC 9110 §7.6.1), empty without one.
    - ``request_id``: the client's ``X-Request-ID`` when it is one field line of 1-200
      letters, digits and ``-._:/+=@`` (:data:`reactor.abnf.REQUEST_ID`), else None (the
      server then makes one).
    """

    method: str
    target: str
    target_form: TargetForm
    path: str
    authority: Optional[str]
    http_version: str
    fields: Fields
    keep_alive: bool
    content_length: Optional[int]
    chunked: bool
    expect_continue: bool
    connection_options: FrozenSet[str] = frozenset()
    request_id: Optional[str] = None

    def get(self, name: str, default: Optional[str] = None) -> Optional[str]:
        """The value of field ``name`` (lower-case), repeated lines joined with ", "."""
        values = [value for key, value in self.fields if key == name]
        if not values:
            return default
        return ", ".join(values)

    @property
    def has_body(self) -> bool:
        """True when a message body follows (chunked, or a non-zero Content-Length)."""
        return self.chunked or bool(self.content_length)


class BodyData(NamedTuple):
    """A piece of the message body, transfer coding removed (``data`` is never empty)."""

    data: bytes


class RequestEnd(NamedTuple):
    """The message body is complete; ``trailers`` holds a chunked trailer section."""

    trailers: Fields = ()


class EndOfStream(NamedTuple):
    """The client closed its sending side at a message boundary."""


Event = Union[RequestHead, BodyData, RequestEnd, EndOfStream]


class _Sentinel(enum.Enum):
    NEED_DATA = "need-data"  # feed more bytes
    PAUSED = "paused"  # a request is complete; call start_next_cycle() after responding


NEED_DATA = _Sentinel.NEED_DATA
PAUSED = _Sentinel.PAUSED

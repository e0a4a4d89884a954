"""How a response is framed and whether the connection persists: two decisions, made in one place.

Sans-I/O, like the parser: plain values in, a decision out. The connection asks
:func:`response_framing` which field delimits the message body (RFC 9112 §6.1-§6.3) and
whether body bytes follow the head at all, then :func:`persists` whether the connection
stays open for another request (RFC 9112 §9.3). h11's ``_body_framing`` and
``_keep_alive`` are the model: every rule that decides the bytes on the wire sits here,
tested as a table (``tests/test_framing.py``), instead of inside the code that writes.
"""

from __future__ import annotations

import enum
from typing import Optional, Tuple


class BodyFraming(enum.Enum):
    """How the end of a response's message body is found (RFC 9112 §6.3)."""

    NO_BODY = "no body"  # 1xx, 204, 304: the message ends with the head; no Content-Length
    CONTENT_LENGTH = "content-length"  # Content-Length: N, then exactly N bytes
    CHUNKED = "chunked"  # Transfer-Encoding: chunked (HTTP/1.1 only)
    CLOSE_DELIMITED = "close-delimited"  # no framing field: the body ends when the connection closes

    __hash__ = object.__hash__  # identity hashing, as ConnState's: no Python-level call


#: A decision: the framing the head announces, and whether body bytes follow it. They
#: differ for HEAD (RFC 9110 §9.3.2): the head announces what a GET would get, and
#: nothing follows. Decisions are preallocated, so deciding allocates nothing.
Framing = Tuple[BodyFraming, bool]

NO_BODY: Framing = (BodyFraming.NO_BODY, False)
LENGTH: Framing = (BodyFraming.CONTENT_LENGTH, True)
LENGTH_HEAD: Framing = (BodyFraming.CONTENT_LENGTH, False)
CHUNKED: Framing = (BodyFraming.CHUNKED, True)
CHUNKED_HEAD: Framing = (BodyFraming.CHUNKED, False)
CLOSE_DELIMITED: Framing = (BodyFraming.CLOSE_DELIMITED, True)
CLOSE_DELIMITED_HEAD: Framing = (BodyFraming.CLOSE_DELIMITED, False)  # nothing announced, nothing sent

_BODYLESS_STATUSES = frozenset({204, 304})


def response_framing(head_request: bool, http_version: Optional[str], status: int, length: Optional[int]) -> Framing:
    """Frame a response of ``status`` whose body is ``length`` bytes (None: not known in advance).

    ``head_request``: the request's method is HEAD; ``http_version``: the request's
    ("1.0", "1.1"; None when no request-line was parsed, e.g. a 400 for a bad one).

    - 1xx, 204 and 304 have no body and carry no Content-Length (RFC 9110 §8.6,
      §15.2, §15.3.5, §15.4.5): :data:`NO_BODY`.
    - A known length is sent as Content-Length: :data:`LENGTH`.
    - An unknown length is chunked for an HTTP/1.1 request (RFC 9112 §7.1) and, for an
      HTTP/1.0 one (or none), delimited by closing the connection (§6.3 rule 8).
    - A response to HEAD announces what a GET would get and sends no body: the
      ``*_HEAD`` decisions. Its message ends with the head even when a GET's would be
      close-delimited, so a HEAD never forces a close.
    """
    if status < 200 or status in _BODYLESS_STATUSES:
        return NO_BODY
    if length is not None:
        return LENGTH_HEAD if head_request else LENGTH
    if http_version == "1.1":
        return CHUNKED_HEAD if head_request else CHUNKED
    return CLOSE_DELIMITED_HEAD if head_request else CLOSE_DELIMITED


def persists(
    framing: Framing,
    complete: bool,
    client_keep_alive: bool,
    close_asked: bool,
    responses: int,
    max_requests: int,
    stopping: bool,
) -> bool:
    """Whether the connection stays open after this response (RFC 9112 §9.3, §9.6).

    It does only if the request was read to its end (``complete``: else its unread rest
    would be taken for the next request), the client wants it (``client_keep_alive``:
    HTTP/1.1 without ``Connection: close``, or HTTP/1.0 with ``keep-alive``), the
    response did not ask to close (``close_asked``), this is not the last of
    ``max_requests`` responses (``responses`` counts this one), the server is not
    stopping, and the body does not end with the connection.
    """
    return (
        complete
        and client_keep_alive
        and not close_asked
        and responses < max_requests
        and not stopping
        and framing is not CLOSE_DELIMITED  # decisions are the constants above: one identity test
    )

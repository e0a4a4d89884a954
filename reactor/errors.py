"""Errors that become HTTP responses.

A :class:`ProtocolError` carries the status code the server answers with and a one-line
reason for the client and the log. The parser raises it for malformed input
(RFC 9112); handlers raise :class:`HTTPError` for requests that are well-formed but
refused (RFC 9110). Anything else escaping the parser is a bug.
"""

from __future__ import annotations

import errno

#: Running out of descriptors or memory: back-pressure, answered 503 with Retry-After, not a bug.
EXHAUSTED_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM})


class HTTPError(Exception):
    """A request that is answered with ``status`` and a one-line ``reason``.

    ``headers`` are extra response fields (for example ``Allow`` on a 405).
    ``close`` asks the connection to close after the response.
    """

    def __init__(
        self,
        status: int,
        reason: str,
        *,
        headers: tuple[tuple[str, str], ...] = (),
        close: bool = False,
    ) -> None:
        super().__init__(status, reason)
        self.status = status
        self.reason = reason
        self.headers = headers
        self.close = close

    def __str__(self) -> str:
        return f"{self.status} {self.reason}"


class ProtocolError(HTTPError):
    """The byte stream violates HTTP/1.1 message syntax or framing (RFC 9112).

    After one, the connection can no longer find message boundaries: it answers once
    with ``Connection: close`` and closes, so ``close`` is always true.
    """

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(status, reason, close=True)


def busy(reason: str = "server busy; try again shortly") -> HTTPError:
    """The 503 for a server that cannot take this request now (a full pool, no descriptors), with ``Retry-After: 1``."""
    return HTTPError(503, reason, headers=(("Retry-After", "1"),))

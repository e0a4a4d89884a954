"""What a handler answers with: a status, fields, and a body in memory or in a file."""

from __future__ import annotations

import os
from typing import Optional, Sequence, Tuple

from reactor.errors import HTTPError
from reactor.serializer import reason_phrase


class FileBody:
    """``length`` bytes of an open file descriptor from ``offset``, sent in bounded pieces.

    The connection owns the descriptor once it has the response and closes it when the
    body is sent or the connection dies.
    """

    __slots__ = ("fd", "offset", "remaining")

    def __init__(self, fd: int, offset: int, length: int) -> None:
        self.fd = fd
        self.offset = offset
        self.remaining = length

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class Response:
    """A final response: ``status``, extra ``fields``, then ``body`` bytes or ``file``.

    The connection adds Date, Server, Content-Length, Connection and Keep-Alive.
    ``close`` asks for the connection to close after it.
    """

    __slots__ = ("status", "fields", "body", "file", "close")

    def __init__(
        self,
        status: int,
        fields: Sequence[Tuple[str, str]] = (),
        body: bytes = b"",
        file: Optional[FileBody] = None,
        close: bool = False,
    ) -> None:
        self.status = status
        self.fields = list(fields)
        self.body = body
        self.file = file
        self.close = close

    @property
    def content_length(self) -> int:
        return self.file.remaining if self.file is not None else len(self.body)

    @classmethod
    def error(
        cls, status: int, reason: str, fields: Sequence[Tuple[str, str]] = (), close: bool = False
    ) -> "Response":
        """A one-line ``text/plain`` error body: ``"404 Not Found: <reason>"``."""
        body = ("%d %s: %s\n" % (status, reason_phrase(status), reason)).encode("utf-8", "replace")
        return cls(status, [("Content-Type", "text/plain; charset=utf-8"), *fields], body, close=close)

    @classmethod
    def from_error(cls, exc: HTTPError) -> "Response":
        """The answer to a refused request: ``exc``'s status, reason, extra fields and ``close``."""
        return cls.error(exc.status, exc.reason, exc.headers, close=exc.close)

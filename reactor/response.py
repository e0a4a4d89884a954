"""What a handler answers with: a status, fields, and a body in memory, in a file, or made as it goes."""

from __future__ import annotations

import errno
import os
import typing
from typing import Optional, Sequence, Tuple, Union

from reactor.errors import HTTPError
from reactor.serializer import reason_phrase

_RWF_NOWAIT = getattr(os, "RWF_NOWAIT", 0)
_HAVE_NOWAIT = bool(_RWF_NOWAIT) and hasattr(os, "preadv")  # Linux; elsewhere every block goes by the pool


class FileBody:
    """``length`` bytes of an open file descriptor from ``offset``, sent in bounded pieces.

    The connection owns the descriptor once it has the response and closes it when the
    body is sent or the connection dies.
    """

    __slots__ = ("fd", "offset", "remaining", "nowait", "_scratch")

    def __init__(self, fd: int, offset: int, length: int) -> None:
        self.fd = fd
        self.offset = offset
        self.remaining = length
        self.nowait = _HAVE_NOWAIT  # whether read_cached may try the page cache
        self._scratch: Optional[bytearray] = None  # read_cached(reuse=True)'s one buffer

    def read_block(self, max_bytes: int) -> bytes:
        """Worker: the next block, at most ``max_bytes`` (``os.pread``); ``b""`` once all is read.

        This is how a file body goes when ``sendfile`` cannot (``--no-sendfile``, TLS): as a
        :class:`StreamBody` of known length. Raises OSError, and ConnectionAbortedError
        when the file has shrunk, so the promised Content-Length cannot be met.
        """
        if not self.remaining:
            return b""
        block = os.pread(self.fd, min(max_bytes, self.remaining), self.offset)
        if not block:
            raise ConnectionAbortedError("file truncated while sending")
        self.offset += len(block)
        self.remaining -= len(block)
        return block

    def read_cached(self, max_bytes: int, reuse: bool = False) -> Optional[Union[bytes, bytearray, memoryview]]:
        """Loop thread: the next block if the page cache holds it, else None; never waits for a disk.

        ``preadv2(RWF_NOWAIT)`` (Linux 4.14+) copies what is cached at the offset and fails
        with EAGAIN rather than start a read from the device; then the block has to be
        read on a worker (:meth:`read_block`). A short block means only its start was
        cached. Where the flag is missing or the file's system refuses it, this returns
        None (and ``nowait`` turns False). Returns ``b""`` once all is read. Raises
        ConnectionAbortedError when the file has shrunk, and OSError for a failing read.

        ``reuse``: the caller is done with a block before it asks for the next (TLS
        encrypts it at once), so every block is read into one buffer, kept until
        :meth:`close`, instead of a new zero-filled one each time.
        """
        if not self.remaining:
            return b""
        if not self.nowait:
            return None
        want = min(max_bytes, self.remaining)
        block: Union[bytearray, memoryview]
        if reuse:
            scratch = self._scratch
            if scratch is None or len(scratch) < want:
                scratch = self._scratch = bytearray(max(want, max_bytes))
            block = memoryview(scratch)[:want]
        else:
            block = bytearray(want)
        try:
            size = os.preadv(self.fd, (block,), self.offset, _RWF_NOWAIT)
        except BlockingIOError:
            return None  # not in the page cache: a worker reads it
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                raise
            self.nowait = False  # this file system cannot: the rest of the file goes by the pool
            return None
        if not size:
            raise ConnectionAbortedError("file truncated while sending")
        if size < want:
            if isinstance(block, memoryview):
                block = block[:size]
            else:
                del block[size:]
        self.offset += size
        self.remaining -= size
        return block  # send() and SSLObject.write() take it as it is, without a copy

    def close(self) -> None:
        self._scratch = None
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class StreamBody(typing.Protocol):
    """A message body of unknown length, made one bounded block at a time.

    ``read_block(max_bytes)`` runs on a worker and returns the next block (at most about
    ``max_bytes``), ``b""`` at the end; the transport asks for the next block only when
    the last one has been handed to the kernel. ``close()`` releases what the body holds;
    whoever has the body calls it exactly once, on the loop thread, never while a
    ``read_block`` is running.
    """

    def read_block(self, max_bytes: int) -> bytes: ...

    def close(self) -> None: ...


class ChunkedStream:
    """``inner`` framed with the chunked transfer coding (RFC 9112 §7.1), for HTTP/1.1."""

    __slots__ = ("inner", "_ended")

    def __init__(self, inner: StreamBody) -> None:
        self.inner = inner
        self._ended = False

    def read_block(self, max_bytes: int) -> bytes:
        if self._ended:
            return b""
        data = self.inner.read_block(max_bytes)
        if not data:
            self._ended = True
            return b"0\r\n\r\n"  # last-chunk, no trailer section
        return b"%x\r\n%s\r\n" % (len(data), data)

    def close(self) -> None:
        self.inner.close()


class Response:
    """A final response: ``status``, extra ``fields``, then ``body`` bytes, ``file`` or ``stream``.

    The connection adds Date, Server, Content-Length (or, for a ``stream``, the chunked
    transfer coding), Connection and Keep-Alive. ``close`` asks for the connection to
    close after it.
    """

    __slots__ = ("status", "fields", "body", "file", "stream", "close")

    def __init__(
        self,
        status: int,
        fields: Sequence[Tuple[str, str]] = (),
        body: bytes = b"",
        file: Optional[FileBody] = None,
        close: bool = False,
        stream: Optional[StreamBody] = None,
    ) -> None:
        self.status = status
        # A tuple is kept as it is: immutable, it lets the connection reuse the head it
        # serialized for it last time (a hot file's fields are one tuple per version).
        self.fields: Sequence[Tuple[str, str]] = fields if type(fields) is tuple else list(fields)
        self.body = body
        self.file = file
        self.stream = stream
        self.close = close

    def release(self) -> None:
        """Close the file or stream body of a response that will not be sent."""
        if self.file is not None:
            self.file.close()
        if self.stream is not None:
            self.stream.close()

    @property
    def content_length(self) -> int:
        return self.file.remaining if self.file is not None else len(self.body)

    @classmethod
    def error(cls, status: int, reason: str, fields: Sequence[Tuple[str, str]] = (), close: bool = False) -> "Response":
        """A one-line ``text/plain`` error body: ``"404 Not Found: <reason>"``."""
        body = ("%d %s: %s\n" % (status, reason_phrase(status), reason)).encode("utf-8", "replace")
        return cls(status, [("Content-Type", "text/plain; charset=utf-8"), *fields], body, close=close)

    @classmethod
    def from_error(cls, exc: HTTPError) -> "Response":
        """The answer to a refused request: ``exc``'s status, reason, extra fields and ``close``."""
        return cls.error(exc.status, exc.reason, exc.headers, close=exc.close)

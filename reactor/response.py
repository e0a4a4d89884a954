"""What a handler answers with: a status, fields, and a body in memory, in a file, or made as it goes.

A body made as it goes is a :class:`StreamBody`: blocks made one at a time on a pool
(the disk pool unless the stream names another, as an application's does), pulled by
the transport only as fast as the client reads. :class:`IterableStream` makes one of
any iterable of bytes; :class:`FramedStream` is what the connection wraps around it to
put it on the wire (chunked, or exactly the Content-Length it announced).
"""

from __future__ import annotations

import errno
import logging
import os
import typing
from concurrent.futures import CancelledError
from typing import Any, Callable, Generic, Iterable, Iterator, Optional, Sequence, Tuple, TypeVar, Union

from reactor.errors import EXHAUSTED_ERRNOS, HTTPError, busy
from reactor.serializer import reason_phrase
from reactor.sessions import Session

log = logging.getLogger("reactor.response")

_RWF_NOWAIT = getattr(os, "RWF_NOWAIT", 0)
_HAVE_NOWAIT = bool(_RWF_NOWAIT) and hasattr(os, "preadv")  # Linux; elsewhere every block goes by the pool


T = TypeVar("T")


class Outcome(Generic[T]):
    """What a pool job came to, handed to its callback: the value it returned or the exception it raised.

    The part of :class:`concurrent.futures.Future` that a finished job needs, made once
    per job without its lock and condition: :meth:`result` returns the value or raises
    the exception, :meth:`exception` gives the exception (None), and :meth:`cancelled`
    is true for a job dropped unrun at a stop (its exception is then ``CancelledError``).
    """

    __slots__ = ("value", "error")

    def __init__(self, value: Optional[T], error: Optional[BaseException] = None) -> None:
        self.value = value
        self.error = error

    def result(self) -> T:
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]

    def exception(self) -> Optional[BaseException]:
        return self.error

    def cancelled(self) -> bool:
        return type(self.error) is CancelledError


#: A job's callback: runs on the loop thread with the job's :class:`Outcome`.
Done = Callable[[Outcome[Any]], None]


class Pool(typing.Protocol):
    """A bounded pool of threads (:class:`reactor.workers.WorkerPool`) as its users see it.

    ``submit(job, args, callback)`` runs ``job(*args)`` on a pool thread and then
    ``callback(outcome)`` on the loop thread (an :class:`Outcome`); it returns False,
    running nothing, when the pool is saturated or shut down. ``bounded=False`` skips
    the saturation check, for clean-up that must run whatever the load (a stream's
    ``close()``).
    """

    def submit(self, job: Callable[..., Any], args: Tuple[Any, ...], callback: Done, bounded: bool = True) -> bool: ...


class FileBody:
    """``length`` bytes of an open file descriptor from ``offset``, sent in bounded pieces.

    The connection owns the descriptor once it has the response and closes it when the
    body is sent or the connection dies.
    """

    __slots__ = ("fd", "offset", "remaining", "nowait", "_scratch")

    #: Blocks the page cache does not hold are read on the transport's (disk) pool.
    pool: Optional[Pool] = None

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


class AbortedStream(ConnectionAbortedError):
    """A stream that cannot go on and has logged why: the connection is aborted, quietly.

    An application's iterable that raised after the head was sent is logged once, with
    its traceback and request-line, where it raised; the transport then only ends the
    connection (without the last chunk, so the client sees the body is incomplete).
    """


class MemoryBody:
    """``data``, a body already in memory, handed out a block at a time (a stream of known length).

    Over TLS a large body goes this way, so that it is encrypted a block at a time as the
    socket takes it (:meth:`read_cached`, on the loop thread) rather than all at once: a
    compressed file shared by many clients stays one copy, and no single call spends
    milliseconds encrypting megabytes while others wait.
    """

    __slots__ = ("_data", "offset", "remaining")

    pool: Optional[Pool] = None  # never read on a pool: every block is at hand

    def __init__(self, data: Union[bytes, bytearray, memoryview]) -> None:
        self._data = memoryview(data)
        self.offset = 0
        self.remaining = len(self._data)

    def read_cached(self, max_bytes: int, reuse: bool = False) -> memoryview:
        """The next block, at most ``max_bytes``, without a copy; empty at the end."""
        block = self._data[self.offset : self.offset + min(max_bytes, self.remaining)]
        self.offset += len(block)
        self.remaining -= len(block)
        return block

    def read_block(self, max_bytes: int) -> bytes:
        return bytes(self.read_cached(max_bytes))

    def close(self) -> None:
        self._data = memoryview(b"")
        self.remaining = 0


class StreamBody(typing.Protocol):
    """A message body of unknown length, made one bounded block at a time.

    ``read_block(max_bytes)`` runs on ``pool`` (None: the server's disk pool) and returns
    the next block (about ``max_bytes``, more if the maker's own pieces are larger),
    ``b""`` at the end; the transport asks for the next block only when the last one has
    been handed to the kernel. ``close()`` releases what the body holds; whoever has the
    body calls it exactly once, on ``pool`` as well (:func:`close_stream`), never while a
    ``read_block`` is running. Either may raise: the connection is then aborted.
    """

    pool: Optional[Pool]

    def read_block(self, max_bytes: int) -> bytes: ...

    def close(self) -> None: ...


def _log_close_failure(future: Outcome[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("closing a response body failed", exc_info=future.exception())


def close_stream(stream: StreamBody) -> None:
    """Call ``stream.close()`` once, on the stream's own pool (loop thread only).

    An application's ``close()`` may block (Django closes database connections there),
    so it runs where the stream's blocks were made. A stream without a pool, or whose
    pool is shut down (the server is stopping), is closed here and now.
    """
    pool = stream.pool
    if pool is None or not pool.submit(stream.close, (), _log_close_failure, bounded=False):
        try:
            stream.close()
        except Exception:
            log.exception("closing a response body failed")


class IterableStream:
    """A :class:`StreamBody` over any iterable of bytes (a generator, a WSGI application iterable).

    Each ``read_block`` takes the next non-empty item: an empty one is skipped, never read
    as the end (PEP 3333: a server must not treat an empty string as the end). Items are
    passed on whole, whatever ``max_bytes`` says. ``close()`` calls the iterable's own
    ``close()`` if it has one, once. Raises TypeError for an item that is not bytes.
    """

    __slots__ = ("pool", "_iterable", "_iterator", "_closed")

    def __init__(self, iterable: Iterable[bytes], pool: Optional[Pool] = None) -> None:
        self.pool = pool
        self._iterable = iterable
        self._iterator: Optional[Iterator[bytes]] = None
        self._closed = False

    def read_block(self, max_bytes: int) -> bytes:
        iterator = self._iterator
        if iterator is None:
            iterator = self._iterator = iter(self._iterable)
        for item in iterator:
            if type(item) is not bytes and not isinstance(item, bytes):
                raise TypeError("a body block must be bytes, not %s" % type(item).__name__)
            if item:
                return item
        return b""

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        close = getattr(self._iterable, "close", None)
        if close is not None:
            close()


class FramedStream:
    """A stream as the wire carries it: chunked (RFC 9112 §7.1), or exactly the ``length`` announced.

    With ``length`` (the response's Content-Length), surplus bytes are cut and logged once,
    and a body that ends short raises ConnectionAbortedError: the client would wait
    for the missing bytes forever, so the connection is aborted instead (PEP 3333,
    "Handling the Content-Length Header"). ``body_bytes`` counts the bytes of the
    message body passed on (without the chunked coding), for the access log.
    """

    __slots__ = ("inner", "pool", "chunked", "remaining", "body_bytes", "_ended")

    def __init__(self, inner: StreamBody, chunked: bool, length: Optional[int] = None) -> None:
        self.inner = inner
        self.pool = inner.pool
        self.chunked = chunked
        self.remaining = length  # bytes still owed to a stated Content-Length, or None
        self.body_bytes = 0
        self._ended = False

    def read_block(self, max_bytes: int) -> bytes:
        if self._ended:
            return b""
        data = b"" if self.remaining == 0 else self.inner.read_block(max_bytes)
        remaining = self.remaining
        if remaining is not None:
            if len(data) > remaining:
                log.warning(
                    "response body longer than its Content-Length (%d bytes): the rest is cut",
                    self.body_bytes + remaining,
                )
                data = data[:remaining]
            if not data and remaining:
                raise ConnectionAbortedError("response body ended %d bytes short of its Content-Length" % remaining)
            self.remaining = remaining - len(data)
        if not data:
            self._ended = True
            return b"0\r\n\r\n" if self.chunked else b""  # last-chunk, no trailer section
        self.body_bytes += len(data)
        if self.chunked:
            return b"%x\r\n%s\r\n" % (len(data), data)
        if self.remaining == 0:
            self._ended = True  # all owed bytes are out: the end need not be asked for
        return data

    def close(self) -> None:
        self.inner.close()


class FrozenFields(Tuple[Tuple[str, str], ...]):
    """Response fields made once and sent with many responses: a hot file's, one per file version.

    The connection serializes the head of a response whose fields are these (with its
    status and length) once and reuses the bytes (:meth:`reactor.connection.Collaborators.cached_head`),
    so they must never change: a tuple, named so that a handler says it means it.
    """

    __slots__ = ()


#: ``upgrade(transport, data)``: make the session a protocol switch hands the transport to;
#: ``data`` holds the bytes that arrived behind the request, for the new protocol to read first.
Upgrade = Callable[[Any, bytes], Session]


class Response:
    """A final response: ``status``, extra ``fields``, then ``body`` bytes, ``file`` or ``stream``.

    The connection adds Date, Server, the framing field (Content-Length, or for a
    ``stream`` of unknown length the chunked transfer coding; a stream whose ``fields``
    state a Content-Length is held to it), X-Request-ID (so ``fields`` must not hold one:
    a handler passing on an application's fields drops it), Connection and Keep-Alive.
    ``close`` asks for the connection to close after it.

    ``upgrade`` makes a ``101 Switching Protocols`` (RFC 9110 §15.2.2) hand the transport
    over: once the 101 is in the kernel, ``upgrade(transport, data)`` makes the session
    of the new protocol (see :data:`Upgrade`). Only a 101 may carry it, and a 101 must.
    """

    __slots__ = ("status", "fields", "body", "file", "stream", "close", "upgrade")

    def __init__(
        self,
        status: int,
        fields: Sequence[Tuple[str, str]] = (),
        body: bytes = b"",
        file: Optional[FileBody] = None,
        close: bool = False,
        stream: Optional[StreamBody] = None,
        upgrade: Optional[Upgrade] = None,
    ) -> None:
        self.status = status
        # FrozenFields are kept as they are (the head made for them is reused); anything
        # else is copied into a list the connection may change.
        self.fields: Sequence[Tuple[str, str]] = fields if type(fields) is FrozenFields else list(fields)
        self.body = body
        self.file = file
        self.stream = stream
        self.close = close
        self.upgrade = upgrade

    def release(self) -> None:
        """Close the file or stream body of a response that will not be sent (a stream on its own pool)."""
        if self.file is not None:
            self.file.close()
            self.file = None
        if self.stream is not None:
            close_stream(self.stream)
            self.stream = None

    @property
    def content_length(self) -> int:
        return self.file.remaining if self.file is not None else len(self.body)

    def stated_length(self) -> Optional[int]:
        """A stream's Content-Length from its ``fields``, taken out of them; None if there is none.

        The framing adds the field back, so it is sent once. Raises ValueError for a value
        that is not one decimal length (RFC 9110 §8.6), or several that differ.
        """
        fields = self.fields
        values = [value for name, value in fields if name.lower() == "content-length"]
        if not values:
            return None
        lengths = {value.strip() for value in values}
        (value,) = lengths if len(lengths) == 1 else (None,)
        if value is None or not value.isdigit() or not value.isascii():
            raise ValueError("bad Content-Length in response fields: %r" % ", ".join(values))
        self.fields = [(name, v) for name, v in fields if name.lower() != "content-length"]
        return int(value)

    @classmethod
    def error(cls, status: int, reason: str, fields: Sequence[Tuple[str, str]] = (), close: bool = False) -> "Response":
        """A one-line ``text/plain`` error body: ``"404 Not Found: <reason>"``."""
        body = ("%d %s: %s\n" % (status, reason_phrase(status), reason)).encode("utf-8", "replace")
        return cls(status, [("Content-Type", "text/plain; charset=utf-8"), *fields], body, close=close)

    @classmethod
    def from_error(cls, exc: HTTPError) -> "Response":
        """The answer to a refused request: ``exc``'s status, reason, extra fields and ``close``."""
        return cls.error(exc.status, exc.reason, exc.headers, close=exc.close)

    @classmethod
    def for_exception(cls, exc: BaseException) -> Optional["Response"]:
        """The answer an exception from a handler or a job stands for, or None for a bug.

        HTTPError is its own answer; running out of descriptors or memory (EMFILE, ENFILE,
        ENOMEM) is a 503 with ``Retry-After``, like a saturated pool. Anything else is a
        bug: the caller logs it and answers 500.
        """
        if isinstance(exc, HTTPError):
            return cls.from_error(exc)
        if isinstance(exc, OSError) and exc.errno in EXHAUSTED_ERRNOS:
            log.warning("%s; answering 503", exc)
            return cls.from_error(busy())
        return None

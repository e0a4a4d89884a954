"""A WSGI application (PEP 3333) on the application pool, with the loop doing every byte of socket I/O.

Theory of operation
-------------------
The loop owns the socket from the first byte to the last; an application thread owns
only the call. :class:`HostedApplication` routes every request that is not for the
status page or a ``--static`` prefix to the application, in three steps.

**The request, on the loop.** A message body is read by the loop before the
application is called, as the static handler's uploads are: in memory up to
:data:`SPOOL_BYTES`, past that written to an anonymous temporary file through the disk
pool (:class:`RequestBody`). So a client that uploads at one byte a second holds a
connection, as any slow client does, and never an application thread; the body
timeout, the minimum rate and ``--max-body-bytes`` apply as for every request.

**The first job, on the application pool** (:meth:`HostedApplication.first_job`): make
the environ (:class:`reactor.wsgi.EnvironMaker`), call the application, and drain its
iterable until ``start_response`` has been called and there are bytes to send, or the
iterable ends, or its stated Content-Length is reached, or :data:`FIRST_BYTES` are
collected. A list or tuple is known not to block and is drained whole (up to the
budget), and one whose ``len()`` is 1 is whole with its first item (PEP 3333); a
generator is read only up to its first non-empty block, since its next one may take the
application minutes (a stream of events). Most responses end there: the
job closes the iterable itself, on its own thread, and hands the loop a finished
:class:`~reactor.response.Response` with a Content-Length, one wake-up of the loop.

**The rest, pulled** (:class:`AppStream`): a response that did not end in the first job
becomes a :class:`~reactor.response.StreamBody` on the application pool, and the
transport asks for each next block only once the last one is in the kernel (it reads
one ahead). A client that reads slowly costs a block or two of memory, not a thread.
Every pull runs in the :mod:`contextvars` context of its first job, and ``close()`` runs
once, on the pool, in that context, whether the body ended, failed, or the client left
(the transport watches for its EOF while a block is being made).

With ``--threads 0`` the same jobs run on the loop thread (an application that never
blocks saves the hand-off; :class:`reactor.workers.InlinePool`).
"""

from __future__ import annotations

import contextvars
import dataclasses
import importlib
import io
import ipaddress
import logging
import os
import stat
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any, BinaryIO, Callable, Dict, Iterable, Iterator, List, NamedTuple, Optional, Tuple, Union

from reactor import log as logmod
from reactor.config import Config
from reactor.connection import Connection, ConnState, Request
from reactor.errors import HTTPError, busy
from reactor.events import RequestHead
from reactor.handlers import Application
from reactor.handlers.static import StaticFiles
from reactor.response import AbortedStream, FileBody, IterableStream, Pool, Response
from reactor.workers import InlinePool
from reactor.wsgi import EnvironMaker, FileWrapper, StartResponse, WSGIApp, empty_input, split_script_name

log = logging.getLogger("reactor.app")

#: Request bodies up to this size stay in memory; larger ones go to a temporary file.
SPOOL_BYTES = 512 * 1024
#: The first job collects at most about this much of a response before it hands over.
FIRST_BYTES = 1024 * 1024
_WILDCARDS = frozenset({"0.0.0.0", "::", ""})
_RESPONDING = ConnState.RESPONDING
_TRUSTED_CACHE_MAX = 256


class AppLoadError(Exception):
    """The application named by ``--app`` cannot be imported or called: the message is the one line to show."""


def load_application(spec: str, factory: bool = False, app_dir: Optional[Union[str, Path]] = None) -> WSGIApp:
    """Import ``MODULE:CALLABLE`` (``CALLABLE`` may be dotted) and return the application.

    ``app_dir`` goes first on ``sys.path`` (None: the current directory). With
    ``factory``, ``CALLABLE()`` is called with no arguments and returns the application.
    Raises AppLoadError with one line naming ``spec`` and what went wrong, with the
    ``file:line`` where the module raised; the cause is chained for a debug traceback.
    """
    module_name, colon, attribute = spec.partition(":")
    if not colon or not module_name or not attribute:
        raise AppLoadError("%s: expected MODULE:CALLABLE, as in hello:app or mysite.wsgi:application" % spec)
    directory = os.path.abspath(app_dir if app_dir is not None else os.getcwd())
    if directory not in sys.path:
        sys.path.insert(0, directory)
    try:
        target: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise AppLoadError("%s: no module named %r (looked in %s first)" % (spec, exc.name, directory)) from exc
        raise AppLoadError("%s: %s%s" % (spec, _describe(exc), _where(exc))) from exc
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise AppLoadError("%s: %s%s" % (spec, _describe(exc), _where(exc))) from exc
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise AppLoadError("%s: %s has no attribute %r" % (spec, module_name, part)) from None
    if factory:
        try:
            target = target()
        except Exception as exc:
            raise AppLoadError("%s(): %s%s" % (spec, _describe(exc), _where(exc))) from exc
    if not callable(target):
        raise AppLoadError("%s: it is not callable (a %s)%s" % (spec, type(target).__name__, _factory_hint(factory)))
    return target  # type: ignore[no-any-return]


def _describe(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return "%s: %s" % (type(exc).__name__, text) if text else type(exc).__name__


def _where(exc: BaseException) -> str:
    """`` (file:line)`` where ``exc`` was raised: the innermost frame, or a SyntaxError's own place."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return " (%s:%s)" % (exc.filename, exc.lineno)
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    last = frames[-1]
    return " (%s:%d)" % (last.filename, last.lineno or 0)


def _factory_hint(factory: bool) -> str:
    return "" if factory else "; if it makes the application, add --factory"


# -- the request body, on the loop ---------------------------------------------------------


def _spool(file: Optional[BinaryIO], chunks: List[bytes]) -> BinaryIO:
    """Disk pool: append ``chunks`` to the body's temporary file, made on first use; return the file."""
    if file is None:
        file = tempfile.TemporaryFile(prefix="reactor-body-")  # unlinked at once: nothing is left behind
    file.writelines(chunks)
    return file


class RequestBody:
    """A request's message body as the loop receives it (``body += data``): memory, then a temporary file.

    Up to ``spool_bytes`` it stays in memory. Past that everything is written, in order,
    to an anonymous temporary file by jobs on ``pool`` (the disk pool), one at a time:
    what arrives meanwhile waits for the next job. :meth:`finish` calls back once the
    last byte is written; :meth:`open` gives ``wsgi.input``. Loop thread only.
    """

    __slots__ = ("pool", "spool_bytes", "size", "error", "_memory", "_file", "_pending", "_writing", "_then")

    def __init__(self, pool: Pool, spool_bytes: int = SPOOL_BYTES) -> None:
        self.pool = pool
        self.spool_bytes = spool_bytes
        self.size = 0  # bytes received
        self.error: Optional[BaseException] = None  # a write that failed; the request is answered 500
        self._memory: Optional[bytearray] = bytearray()  # None once spooling
        self._file: Optional[BinaryIO] = None
        self._pending: List[bytes] = []  # received, not yet handed to a write job
        self._writing = False
        self._then: Optional[Callable[[Optional[BaseException]], None]] = None

    @property
    def spooled(self) -> bool:
        return self._memory is None

    def __iadd__(self, data: bytes) -> "RequestBody":
        self.size += len(data)
        memory = self._memory
        if memory is not None:
            if len(memory) + len(data) <= self.spool_bytes:
                memory += data
                return self
            self._pending = [bytes(memory)]
            self._memory = None
        self._pending.append(bytes(data))
        self._write_next()
        return self

    def _write_next(self) -> None:
        if self._writing or not self._pending or self.error is not None:
            return
        chunks, self._pending = self._pending, []
        self._writing = True
        if not self.pool.submit(_spool, (self._file, chunks), self._written, bounded=False):
            self._writing = False
            self.error = RuntimeError("the disk pool is shut down")
            self._settle()

    def _written(self, future: Any) -> None:
        self._writing = False
        try:
            self._file = future.result()
        except Exception as exc:  # ENOSPC, EIO: the application cannot have this body
            self.error = exc
        self._write_next()
        self._settle()

    def _settle(self) -> None:
        then = self._then
        if then is not None and not self._writing and (not self._pending or self.error is not None):
            self._then = None
            then(self.error)

    def finish(self, then: Callable[[Optional[BaseException]], None]) -> None:
        """Call ``then(error)`` once every byte received is in the file (at once if nothing is being written)."""
        self._then = then
        self._settle()

    def open(self) -> BinaryIO:
        """Application thread: ``wsgi.input``, positioned at the start (after :meth:`finish` said so)."""
        if self._memory is not None:
            return io.BytesIO(self._memory)
        file = self._file
        assert file is not None
        file.seek(0)  # flushes what the buffer holds
        return file


# -- the response, pulled --------------------------------------------------------------------


class AppStream:
    """The rest of an application's response, a :class:`~reactor.response.StreamBody` on the application pool.

    ``first`` is what the first job collected; then each ``read_block`` takes the next
    non-empty item of the iterable (with anything ``write()`` added meanwhile), run in
    ``context``. An item that is not bytes, or an exception, is logged once with the
    request-line and ends the connection (:class:`~reactor.response.AbortedStream`):
    the client sees an incomplete body, never a complete-looking one. ``close()`` closes
    the iterable and the request's ``wsgi.input``, once, in ``context``.
    """

    __slots__ = ("pool", "_first", "_iterator", "_iterable", "_context", "_start", "_input", "_where", "_closed")

    def __init__(
        self,
        pool: Pool,
        first: bytes,
        iterator: Iterator[bytes],
        iterable: Iterable[bytes],
        context: contextvars.Context,
        start: StartResponse,
        body: BinaryIO,
        where: Tuple[int, Optional[str]],
    ) -> None:
        self.pool: Optional[Pool] = pool
        self._first: Optional[bytes] = first or None
        self._iterator = iterator
        self._iterable = iterable
        self._context = context
        self._start = start
        self._input = body
        self._where = where  # (connection id, request-line) for the log
        self._closed = False

    def read_block(self, max_bytes: int) -> bytes:
        first = self._first
        if first is not None:
            self._first = None
            return first
        try:
            return self._context.run(self._next)
        except Exception as exc:
            log.error(
                "#%d the application failed after the response began, handling %r; aborting the connection",
                *self._where,
                exc_info=exc,
            )
            raise AbortedStream("the application failed during the response") from exc

    def _next(self) -> bytes:
        start = self._start
        for item in self._iterator:
            if type(item) is not bytes and not isinstance(item, bytes):
                raise TypeError("the application yielded %s, not bytes" % type(item).__name__)
            if start.written:  # write() during this step: those bytes go first
                return start.take_written() + item
            if item:
                return item
        return start.take_written()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._context.run(_close_application, self._iterable, self._input, self._where)


def _close_application(iterable: Iterable[bytes], body: BinaryIO, where: Tuple[int, Optional[str]]) -> None:
    """Call the iterable's ``close()`` (PEP 3333) and close ``wsgi.input``; log a failure (with the request-line)."""
    try:
        close = getattr(iterable, "close", None)
        if close is not None:
            close()
    except Exception as exc:
        log.error("#%d the application's close() failed, handling %r", *where, exc_info=exc)
    finally:
        body.close()


def _is_single(iterable: Iterable[bytes]) -> bool:
    try:
        return len(iterable) == 1  # type: ignore[arg-type]
    except Exception:
        return False


def _empty() -> IterableStream:
    """A body with nothing to send: a HEAD answer's, whose length the head states."""
    return IterableStream(())


# -- routing -------------------------------------------------------------------------------


class HostedApplication(Application):
    """The routes of ``--app``: the status page, ``--static`` prefixes, then the WSGI application.

    ``wsgi_app`` is the application; ``port`` the port bound. Every method but CONNECT
    goes to the application, on every path outside the static prefixes and inside
    ``--root-path`` (outside it: 404). The Host check and ``--cors`` preflights apply
    as for files.
    """

    def __init__(self, config: Config, port: int, snapshot: Callable[[], Dict[str, Any]], wsgi_app: WSGIApp) -> None:
        super().__init__(config, port, snapshot)
        self.wsgi_app = wsgi_app
        #: (URL prefix, its handler), longest prefix first.
        self.mounts: List[Tuple[str, StaticFiles]] = [
            (prefix, mount_files(config, prefix, folder))
            for prefix, folder in sorted(config.static_mounts, key=lambda mount: -len(mount[0]))
        ]
        self.root_path = config.root_path
        self.wildcard = config.host in _WILDCARDS
        self.environ = EnvironMaker(
            config.host,
            port,
            config.root_path,
            multithread=config.app_threads > 1,
            multiprocess=config.workers > 1,
            # JSON log lines on stderr: what the application writes there becomes such lines too
            errors=logmod.ErrorStream(logging.getLogger("reactor.app.errors"))
            if logmod.access_log.format == "json"
            else None,
        )
        self.proxies = proxy_networks(config.forwarded_allow_ips)
        self._trusted: Dict[str, bool] = {}
        self.debug = log.isEnabledFor(logging.DEBUG)
        self._inline: Optional[InlinePool] = None

    def route(self, conn: Connection, request: Request) -> Optional[Response]:
        """Pick the status page, a static prefix or the application; refuse CONNECT (501) and foreign Hosts (403).

        Raises HTTPError 403, 404 (outside ``--root-path``) or 501.
        """
        head = request.head
        assert head is not None
        method = head.method
        if method == "CONNECT":
            raise HTTPError(501, "CONNECT is not supported; this is not a proxy")
        self.check_host(head.authority, conn)
        if method == "OPTIONS" and self.answer_options(request):
            return None
        target = head.path
        query_at = target.find("?")
        path = target if query_at < 0 else target[:query_at]
        if path == self.config.status_path:
            return self.status.route(conn, request)
        for prefix, files in self.mounts:
            if path.startswith(prefix) and (len(path) == len(prefix) or path[len(prefix)] == "/"):
                rest = target[len(prefix) :]  # "", "/x.css", "?v=2" or "/x.css?v=2"
                request.head = head._replace(path=rest if rest.startswith("/") else "/" + rest)
                return files.route(conn, request)
        if split_script_name(path, self.root_path) is None:
            raise HTTPError(404, "%s is outside the application's --root-path %s" % (path[:100], self.root_path))
        request.route = self.call
        if head.chunked or head.content_length:
            request.want_body(RequestBody(conn.ctx.pool))
        return None

    # -- the call

    def call(self, conn: Connection, request: Request) -> Optional[Response]:
        """The request is complete: call the application on its pool (or here, with ``--threads 0``).

        A body spooled to a file is first written to its end, on the disk pool.
        """
        body = request.body
        if isinstance(body, RequestBody) and body.spooled:
            conn.respond_when(lambda answer: body.finish(lambda error: self._spooled(conn, request, answer, error)))
            return None
        args = self._job_args(conn, request)
        pool = conn.ctx.app_pool
        if pool is None:
            return self.first_job(*args)
        conn.run_in_pool(self.first_job, args, _response, pool)
        return None

    def _spooled(
        self,
        conn: Connection,
        request: Request,
        answer: Callable[[Response], None],
        error: Optional[BaseException],
    ) -> None:
        """The spooled body is all on disk (or could not be written): now the application."""
        if conn.state is not _RESPONDING or conn.request is not request:
            return  # the client has gone
        if error is not None:
            log.error("#%d cannot keep the request body of %r: %s", conn.id, request.request_line, error)
            answer(Response.error(500, "the request body could not be stored", close=True))
            return
        args = self._job_args(conn, request)
        pool = conn.ctx.app_pool
        if pool is None:
            answer(self.first_job(*args))
        elif not pool.submit(self.first_job, args, lambda future: answer(_result(future))):
            answer(Response.from_error(busy()))

    def _job_args(self, conn: Connection, request: Request) -> "Tuple[AppCall]":
        """What the first job needs, as plain values read on the loop thread."""
        peer = conn.client
        trusted = False
        if self.proxies:
            trusted = self._trusted.get(peer)  # type: ignore[assignment]
            if trusted is None:
                trusted = self._is_proxy(peer)
        transport = conn.transport
        call = _new_tuple(
            AppCall,
            (
                request.head,
                request.body,
                (conn.id, request.request_line),
                peer,
                transport.peer_port,
                transport.secure,
                trusted,
                conn.local_host if self.wildcard else None,
                conn.ctx.app_pool or self._inline_pool(conn),
            ),
        )
        return (call,)

    def _inline_pool(self, conn: Connection) -> Pool:
        if self._inline is None:
            self._inline = InlinePool(conn.loop)
        return self._inline

    def _is_proxy(self, peer: str) -> bool:
        try:
            address = ipaddress.ip_address(peer.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        trusted = any(address in network for network in self.proxies if network.version == address.version)
        if len(self._trusted) >= _TRUSTED_CACHE_MAX:
            self._trusted.clear()
        self._trusted[peer] = trusted
        return trusted

    def first_job(self, call: "AppCall") -> Response:
        """Application pool: call the application and make the Response (PEP 3333), in a context of its own.

        Returns a finished response with a Content-Length when the iterable ended (or
        reached its stated length) within the first :data:`FIRST_BYTES`, else one whose
        rest is an :class:`AppStream`. An exception from the application before any
        byte could be sent is a 500 with ``Connection: close``: logged once with its
        traceback and the request-line, shown in the body only at ``--log-level debug``.
        """
        context = contextvars.Context()  # each request starts clean, whichever thread runs it
        return context.run(self._start, context, call)

    def _start(self, context: contextvars.Context, call: "AppCall") -> Response:
        head, body, where, pool = call.head, call.body, call.where, call.pool
        target = head.path
        query_at = target.find("?")
        path, query = (target, "") if query_at < 0 else (target[:query_at], target[query_at + 1 :])
        path_info = split_script_name(path, self.root_path) or ""
        body_input = empty_input() if body is None else body.open()
        environ = self.environ.make(
            head,
            path_info,
            query,
            body_input,
            None if body is None and head.content_length is None else (0 if body is None else body.size),
            call.peer,
            call.peer_port,
            call.secure,
            call.trusted,
        )
        if call.server_name is not None:
            environ["SERVER_NAME"] = call.server_name
        start = StartResponse()
        try:
            iterable = self.wsgi_app(environ, start)
        except Exception as exc:
            body_input.close()
            return self._failed(exc, where)
        try:
            if type(iterable) is FileWrapper and start.status is not None:
                response = self._file_response(iterable, start, head.method == "HEAD")
                if response is not None:
                    body_input.close()
                    return response
            return self._drain(iterable, start, head.method == "HEAD", context, body_input, where, pool)
        except Exception as exc:
            _close_application(iterable, body_input, where)
            return self._failed(exc, where)

    def _drain(
        self,
        iterable: Iterable[bytes],
        start: StartResponse,
        head_request: bool,
        context: contextvars.Context,
        body_input: BinaryIO,
        where: Tuple[int, Optional[str]],
        pool: Pool,
    ) -> Response:
        """Collect the response's first bytes (see the module docstring) and decide how it leaves."""
        chunks = start.written  # write() before the return, then the iterable's items
        iterator = iter(iterable)
        kind = type(iterable)
        eager = kind is list or kind is tuple  # cannot block: take it all
        # PEP 3333: an iterable whose len() is 1 is whole with its first bytestring.
        single = not eager and getattr(kind, "__len__", None) is not None and _is_single(iterable)
        finished = False
        while True:
            if start.status is not None:
                total = start.written_bytes
                length = start.length
                if total >= FIRST_BYTES or (length is not None and total >= length) or (total and not eager):
                    break
            try:
                item = next(iterator)
            except StopIteration:
                finished = True
                break
            if type(item) is not bytes and not isinstance(item, bytes):
                raise TypeError("the application yielded %s, not bytes" % type(item).__name__)
            if item:
                chunks.append(item)
                start.written_bytes += len(item)
                if single:
                    finished = True
                    break
        status = start.status
        if status is None:
            raise RuntimeError("the application returned without calling start_response()")
        fields = start.fields
        length = start.length
        data = start.take_written()
        if status == 204 or status == 304:
            _close_application(iterable, body_input, where)
            if length is not None:
                fields = [field for field in fields if field[0].lower() != "content-length"]
            return Response(status, fields)  # no body, whatever it yielded (RFC 9110 §6.4.1)
        if finished or head_request or (length is not None and len(data) >= length):
            _close_application(iterable, body_input, where)
            if length is None:
                if head_request and not finished:
                    return Response(status, fields, stream=_empty())  # a GET would be chunked: say so
                return Response(status, fields, data)
            if head_request:
                return Response(status, fields, stream=_empty())  # announces the stated length
            if len(data) >= length:
                if len(data) > length:
                    log.warning(
                        "#%d response of %r longer than its Content-Length (%d bytes): the rest is cut",
                        where[0],
                        where[1],
                        length,
                    )
                fields = [field for field in fields if field[0].lower() != "content-length"]
                return Response(status, fields, data[:length] if len(data) > length else data)
            return Response(status, fields, stream=IterableStream((data,)))  # short: the connection aborts at the end
        start.sent = True  # the head leaves with these bytes: from now on exc_info re-raises
        return Response(
            status, fields, stream=AppStream(pool, data, iterator, iterable, context, start, body_input, where)
        )

    @staticmethod
    def _file_response(wrapper: FileWrapper, start: StartResponse, head_request: bool) -> Optional[Response]:
        """``wsgi.file_wrapper`` around a regular file: the static path's FileBody (sendfile), or None to iterate.

        The body starts at the file's current position and runs to its end, or to the
        stated Content-Length. The application's file is closed here (its own
        ``close()``, once); the response sends from a duplicate descriptor.
        """
        filelike = wrapper.filelike
        try:
            fd = filelike.fileno()
            info = os.fstat(fd)
        except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
            return None
        if not stat.S_ISREG(info.st_mode) or start.written:
            return None
        tell = getattr(filelike, "tell", None)
        offset = tell() if tell is not None else os.lseek(fd, 0, os.SEEK_CUR)
        length = max(0, info.st_size - offset) if start.length is None else start.length
        duplicate = os.dup(fd)
        try:
            wrapper.close()
        except BaseException:
            os.close(duplicate)
            raise
        status = start.status
        assert status is not None
        fields = [field for field in start.fields if field[0].lower() != "content-length"]
        if head_request or status == 204 or status == 304:
            os.close(duplicate)
            if status == 204 or status == 304:
                return Response(status, fields)
            return Response(status, [*fields, ("Content-Length", str(length))], stream=_empty())
        return Response(status, fields, file=FileBody(duplicate, offset, length))

    def _failed(self, exc: BaseException, where: Tuple[int, Optional[str]]) -> Response:
        """A 500 for an application that raised before its response began, logged once."""
        log.error("#%d the application raised, handling %r", *where, exc_info=exc)
        reason = "the application raised an exception"
        if self.debug:
            reason += "\n\n" + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        return Response.error(500, reason, close=True)


class AppCall(NamedTuple):
    """What the first job is handed: plain values read on the loop thread (never the connection)."""

    head: RequestHead
    body: Optional[RequestBody]  # None: no message body
    where: Tuple[int, Optional[str]]  # (connection id, request-line), for the log
    peer: str
    peer_port: int
    secure: bool
    trusted: bool  # the peer is a proxy of --forwarded-allow-ips
    server_name: Optional[str]  # SERVER_NAME when the listener is a wildcard address
    pool: Pool  # where the rest of the response is pulled


_new_tuple = tuple.__new__  # a NamedTuple without its Python-level __new__ (as the parser makes RequestHead)


def _response(result: Response) -> Response:
    """``on_result`` of the first job: its result is the response."""
    return result


def _result(future: Any) -> Response:
    try:
        return future.result()  # type: ignore[no-any-return]
    except Exception as exc:  # a bug in first_job itself (it answers the application's own errors)
        log.error("application job failed", exc_info=exc)
        return Response.error(500, "internal server error", close=True)


def mount_files(config: Config, prefix: str, folder: Path) -> StaticFiles:
    """The static handler for ``--static PREFIX=DIR``: its own root, every file shown inline.

    CSS and JavaScript must load in a page, so nothing is an attachment; there is no
    upload folder. Redirects (a folder named without its slash) keep the prefix.
    """
    mounted = StaticFiles(dataclasses.replace(config, root=folder, attachments=False, uploads=False))
    mounted.prefix = prefix
    return mounted


def proxy_networks(values: Tuple[str, ...]) -> List[Union[ipaddress.IPv4Network, ipaddress.IPv6Network]]:
    """``--forwarded-allow-ips`` as networks: addresses and CIDR ranges, ``*`` for every peer.

    Raises ValueError for a value that is neither.
    """
    networks: List[Union[ipaddress.IPv4Network, ipaddress.IPv6Network]] = []
    for value in values:
        value = value.strip()
        if value == "*":
            networks += [ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")]
        elif value:
            networks.append(ipaddress.ip_network(value, strict=False))
    return networks

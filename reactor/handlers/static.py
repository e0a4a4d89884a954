"""Static files under the document root: GET, HEAD and OPTIONS (RFC 9110 §9.3, §13, §14).

Theory of operation
-------------------
A request for a file is answered in one of two ways.

**Hit** (loop thread only): the hot-file cache (:mod:`reactor.handlers.cache`) holds
the file, so :meth:`StaticFiles.get` answers at once from memory. The only work is
string work: collect the few request fields that matter (:func:`conditions_from_fields`,
one pass), then :func:`choose` and :func:`build_response`.

**Miss** (pool, then loop): :func:`open_file` runs on a worker. It resolves and opens the
file (:mod:`reactor.handlers.files`), runs the same :func:`choose`, and makes exactly
the body that decision needs (read several ranges for a multipart body, read or open a
precompressed sidecar) so the loop thread never reads the disk. Back on the loop
thread, a small file enters the cache and :func:`build_response` makes the Response; a
large file's body is its open descriptor, sent with ``os.sendfile`` from the right
offset, so a range of a file larger than memory costs no more than a whole small one.

**Gzip made on the fly** (hit or miss): the form comes from the
:class:`~reactor.handlers.gzip_cache.GzipCache`, keyed by the identity ETag. If it is
not known yet, the request waits for the one compression of that file version (started
by the first request that needed it, on the pool, with a bound on how many run at once),
and every waiting request is answered with the same ``bytes``.

:func:`choose` is the heart, a pure function of the file and the request:

1. pick the form: a valid ``Range`` means identity (ranges are never encoded), else
   gzip if Accept-Encoding allows it and the file is worth compressing
   (:mod:`reactor.handlers.compress`);
2. evaluate the preconditions against that form's ETag (RFC 9110 §13.2.2, in
   :mod:`reactor.handlers.conditional`) → 304 or 412;
3. apply the Range, subject to ``If-Range`` (:mod:`reactor.handlers.ranges`) → 206,
   416, or 200 with everything.

With ``--live-reload`` an HTML file's identity form is the page with the live-reload
script (:mod:`reactor.handlers.livereload`), with an ETag of its own, and ``entry.ranged``
is the file as it is on disk: a Range request gets parts of the file, never of the page.

Every response for a file carries its validators (``ETag``, ``Last-Modified``),
``Accept-Ranges: bytes``, ``X-Content-Type-Options: nosniff`` and, for compressible
types, ``Vary: Accept-Encoding``. HTML is shown inline; other files carry
``Content-Disposition: attachment`` so browsers download them (``--inline`` turns that
off). ``OPTIONS`` on any path is 204 with ``Allow``.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from typing import Any, Callable, List, Optional, Tuple

from reactor.config import Config
from reactor.connection import Connection, Request
from reactor.errors import HTTPError
from reactor.handlers import cache as cachemod
from reactor.handlers import compress, files, listing, livereload, ranges
from reactor.handlers.conditional import NO_CONDITIONS, Conditions, conditions_from_fields, evaluate, if_range_passes
from reactor.handlers.files import Entry, Listing, Options, Redirect, split_path
from reactor.handlers.gzip_cache import GzipCache
from reactor.response import FileBody, Outcome, Response
from reactor.watch import Batch

__all__ = ["ALLOW", "StaticFiles", "choose", "build_response", "split_path"]

log = logging.getLogger("reactor.static")

ALLOW = "GET, HEAD, OPTIONS"
_HTML = "text/html; charset=utf-8"

#: (status, send gzip, byte ranges for a 206)
Decision = Tuple[int, bool, Optional[ranges.Ranges]]


def choose(entry: Entry, method: str, conditions: Conditions, now_s: float) -> Decision:
    """Decide the response to a GET or HEAD of ``entry`` (see the module docstring).

    Returns ``(status, use_gzip, ranges)``: 200 (whole, gzip or not), 206 with the
    ranges, 304, 412 or 416. ``now_s`` is the POSIX time, for date validators. A valid
    Range selects ``entry.ranged`` (for a page with the live-reload script: the file as
    it is on disk), so its preconditions and If-Range compare that form's ETag, and a
    304 or 412 to it comes back with the ranges (``build_response`` answers for that form).
    """
    byte_ranges = None
    if conditions.range is not None:
        byte_ranges = ranges.parse_range(conditions.range, entry.size)
    use_gzip = False
    gzip = entry.gzip
    if byte_ranges is None and gzip is not None and conditions.accept_encoding is not None:
        wanted, identity_ok = compress.negotiate(conditions.accept_encoding)
        use_gzip = wanted and (entry.size >= compress.MIN_COMPRESS_BYTES or not identity_ok or gzip.sidecar is not None)
    if conditions.has_preconditions:
        if use_gzip and gzip is not None:
            etag = gzip.etag
        else:
            etag = entry.identity.etag if byte_ranges is None else entry.ranged.etag
        failed = evaluate(conditions, etag, entry.last_modified_s, method, now_s)
        if failed is not None:
            return failed, use_gzip, byte_ranges
    if byte_ranges is None:
        return 200, use_gzip, None
    if conditions.if_range is not None and not if_range_passes(
        conditions.if_range, entry.ranged.etag, entry.last_modified_s, now_s
    ):
        return 200, False, None  # the client's copy is outdated: send it all (§13.1.5)
    if not byte_ranges:
        return 416, False, None
    if len(byte_ranges) > 1 and ranges.total_bytes(byte_ranges) > ranges.MULTIPART_MAX_BYTES:
        return 200, False, None  # documented: big multi-range requests get the whole file
    return 206, False, byte_ranges


def build_response(
    entry: Entry,
    status: int,
    use_gzip: bool,
    byte_ranges: Optional[ranges.Ranges],
    multipart: Optional[Tuple[str, bytes]] = None,
) -> Response:
    """The Response for a :func:`choose` decision. Loop thread; no I/O.

    A large file's descriptor moves into the Response's FileBody (the connection
    closes it). ``multipart`` is a ``(boundary, body)`` a worker already read for a
    large file; for a file in memory the body is made here.
    """
    if status == 200:
        variant = entry.gzip if use_gzip and entry.gzip is not None else entry.identity
        if variant.data is not None:
            return Response(200, variant.fields, variant.data)
        return Response(200, variant.fields, file=FileBody(variant.take_fd(), 0, variant.size))
    ranged = entry.ranged  # ranges (and answers to a Range's preconditions) are of this form
    if status == 206:
        assert byte_ranges
        if len(byte_ranges) == 1:
            first, last = byte_ranges[0]
            fields = ranged.fields + (("Content-Range", ranges.content_range(first, last, entry.size)),)
            if ranged.data is not None:
                return Response(206, fields, ranged.data[first : last + 1])
            return Response(206, fields, file=FileBody(ranged.take_fd(), first, last - first + 1))
        if multipart is None:
            boundary = ranges.new_boundary()
            data = ranged.data
            assert data is not None
            body = ranges.multipart_body(
                boundary,
                entry.content_type,
                entry.size,
                byte_ranges,
                lambda offset, length: data[offset : offset + length],
            )
        else:
            boundary, body = multipart
        fields = (("Content-Type", "multipart/byteranges; boundary=" + boundary),) + ranged.meta_fields
        return Response(206, fields, body)
    if status == 304:
        if use_gzip and entry.gzip is not None:
            variant = entry.gzip
        else:
            variant = entry.identity if byte_ranges is None else ranged
        return Response(304, variant.not_modified_fields)
    if status == 416:
        return Response.error(
            416,
            "no byte range requested is within the %d-byte file" % entry.size,
            [("Content-Range", ranges.unsatisfied_range(entry.size)), ("Accept-Ranges", "bytes")],
        )
    return Response.error(412, "the file is not in the state the request expects (If-Match, If-Unmodified-Since)")


# -- worker jobs ----------------------------------------------------------------------------


class Loaded:
    """A worker's answer for a file: the entry, the decision, and any body it prepared."""

    __slots__ = ("entry", "status", "use_gzip", "ranges", "multipart")

    def __init__(self, entry: Entry, decision: Decision, multipart: Optional[Tuple[str, bytes]]) -> None:
        self.entry = entry
        self.status, self.use_gzip, self.ranges = decision
        self.multipart = multipart

    def close(self) -> None:
        self.entry.close()


class Page:
    """An HTML page made on a worker: a directory listing (200) or ``404.html`` (404)."""

    __slots__ = ("status", "body")

    def __init__(self, status: int, body: bytes) -> None:
        self.status = status
        self.body = body

    def close(self) -> None:
        pass


def open_file(
    options: Options,
    key: str,
    segments: List[str],
    slash: bool,
    method: str,
    conditions: Conditions,
    query: str = "",
    epoch: int = -1,
) -> object:
    """Worker: find, open and decide; return Loaded, Page or Redirect.

    ``query`` only orders a directory listing (``?sort=size&order=desc``); ``epoch`` is
    the live-reload epoch (-1: off) a page's script is made for.

    Raises HTTPError (403, 404 without a 404.html, 500) or OSError (→ 500).
    """
    checked_at = time.monotonic()
    try:
        found = files.locate(options, segments, slash)
        if isinstance(found, Redirect):
            return found
        if isinstance(found, Listing):
            url_path = "/" + "".join(segment + "/" for segment in segments)
            try:
                page = listing.render_listing(found.directory, url_path, options.dotfiles, query)
            except OSError as exc:  # a folder we may not list (EACCES), or gone meanwhile
                raise files.refused(exc, found.directory) from None
            return Page(200, page)
        entry = files.open_entry(options, found, key, segments, slash, checked_at, epoch)
    except HTTPError as exc:
        if exc.status == 404:
            return not_found_page(options, exc.reason)
        raise
    try:
        return _prepare(entry, method, conditions)
    except BaseException:
        entry.close()
        raise


def _prepare(entry: Entry, method: str, conditions: Conditions) -> Loaded:
    """Worker: decide, then make the body the decision needs and close what it doesn't."""
    decision = choose(entry, method, conditions, time.time())
    status, use_gzip, byte_ranges = decision
    gzip = entry.gzip
    # A sidecar is read here; compressing is left to the loop thread's GzipCache, which
    # shares one compression among every request for the same file version.
    if status == 200 and use_gzip and gzip is not None and not gzip.ready and gzip.sidecar is not None:
        if gzip.size > files.SMALL_FILE_BYTES:
            files.open_sidecar(entry)
        else:
            body = files.gzip_body(entry)
            if body is None:  # the sidecar is no smaller: never try it again
                entry.gzip = None
                decision = choose(entry, method, conditions, time.time())
            else:
                gzip.set_data(body)
    multipart = None
    if status == 206 and byte_ranges is not None and len(byte_ranges) > 1 and entry.ranged.data is None:
        boundary = ranges.new_boundary()
        body = ranges.multipart_body(
            boundary, entry.content_type, entry.size, byte_ranges, functools.partial(files.read_range, entry)
        )
        multipart = (boundary, body)
    return Loaded(entry, decision, multipart)


def not_found_page(options: Options, reason: str) -> Page:
    """Worker: the root's 404.html as a 404 Page; raises HTTPError(404) if there is none."""
    body = files.read_not_found_page(options)
    if body is None:
        raise HTTPError(404, reason)
    return Page(404, body)


# -- the handler ------------------------------------------------------------------------


class StaticFiles:
    """GET, HEAD and OPTIONS of files under ``config.root``, with the hot-file cache."""

    def __init__(self, config: Config) -> None:
        self.options = Options.from_config(config)
        #: The URL path this handler's root is mounted at (``--static /static=DIR``); "" at the top.
        self.prefix = ""
        self.cache: Optional[cachemod.HotCache] = None
        if config.cache_max_bytes > 0:
            self.cache = cachemod.HotCache(config.cache_max_bytes, files.SMALL_FILE_BYTES)
        # At most pool_size - 1 compressions at once: a worker stays free for other jobs.
        self.gzip_forms = GzipCache(config.gzip_cache_max_bytes, config.pool_size - 1)
        #: Live reload: the epoch of the last batch of changes (pages are made for it); -1 when off.
        self.epoch = -1

    def route(self, conn: Connection, request: Request) -> Optional[Response]:
        """Refuse methods other than GET, HEAD and OPTIONS (405); route the others.

        Raises HTTPError 405.
        """
        head = request.head
        assert head is not None
        method = head.method
        if method == "GET" or method == "HEAD":
            request.route = self.get
            return None
        if method == "OPTIONS":
            request.route = self._options
            return None
        raise HTTPError(405, "%s is not allowed here" % method, headers=(("Allow", ALLOW),))

    @staticmethod
    def _options(conn: Connection, request: Request) -> Response:
        return Response(204, [("Allow", ALLOW)])

    def get(self, conn: Connection, request: Request) -> Optional[Response]:
        """GET or HEAD: answer a cache hit now; send a miss to the pool (None).

        Raises HTTPError 400 or 403 (an unsafe path).
        """
        head = request.head
        assert head is not None
        path, _, query = head.path.partition("?")
        cache = self.cache
        if cache is not None:
            now = time.monotonic()
            entry = cache.get(path, now)
            if entry is not None:
                if now - entry.checked_at >= cachemod.VALID_S and not entry.revalidating:
                    self._revalidate(conn, path, entry)
                conditions = conditions_from_fields(head.fields)
                if conditions is NO_CONDITIONS:  # the common case, kept short
                    identity = entry.identity
                    return Response(200, identity.fields, identity.data)  # type: ignore[arg-type]
                response = self._answer(path, entry, head.method, conditions)
                if response is not None:
                    return response
                return self._gzip_then_answer(conn, path, entry, head.method, conditions, owned=False)
        try:
            segments = split_path(path, self.options.dotfiles)
        except HTTPError as exc:
            if exc.status != 404:
                raise
            self._not_found(exc.reason, conn, request)
            return None
        self._serve(path, segments, path.endswith("/"), query, conn, request)
        return None

    # -- hits

    def _answer(self, key: str, entry: Entry, method: str, conditions: Conditions) -> Optional[Response]:
        """A cached entry's response, or None when it needs a gzip form not made yet."""
        decision = choose(entry, method, conditions, time.time())
        status, use_gzip, byte_ranges = decision
        gzip = entry.gzip
        if status == 200 and use_gzip and gzip is not None and not gzip.ready:
            known, body = self.gzip_forms.get(entry.identity.etag)
            if not known:
                return None
            return self._with_gzip_form(key, entry, method, conditions, body)
        return build_response(entry, status, use_gzip, byte_ranges)

    def _gzip_then_answer(
        self,
        conn: Connection,
        key: str,
        entry: Entry,
        method: str,
        conditions: Conditions,
        owned: bool,
    ) -> Optional[Response]:
        """Answer with ``entry``'s gzip form: now if it is known, else (returning None) once made.

        ``owned``: the entry is this request's own (a miss), to be closed once answered.
        """
        etag = entry.identity.etag
        known, body = self.gzip_forms.get(etag)
        if known:
            try:
                return self._with_gzip_form(key, entry, method, conditions, body)
            finally:
                if owned:
                    entry.close()

        def wait(answer: Callable[[Response], None]) -> None:
            waiter = functools.partial(self._gzip_made, answer, key, entry, method, conditions, owned)
            self.gzip_forms.compress(conn.pool, etag, files.gzip_body, (entry,), waiter, keep=entry.cacheable)

        conn.respond_when(wait)
        return None

    def _gzip_made(
        self,
        answer: Callable[[Response], None],
        key: str,
        entry: Entry,
        method: str,
        conditions: Conditions,
        owned: bool,
        body: Optional[bytes],
        error: Optional[BaseException],
    ) -> None:
        """The compression a request waited for has ended: answer it (loop thread)."""
        try:
            if error is None:
                response = self._with_gzip_form(key, entry, method, conditions, body)
            else:
                answer_to = Response.for_exception(error)
                if answer_to is None:
                    log.error("compressing %s failed", entry.path, exc_info=error)
                    answer_to = Response.error(500, "internal server error", close=True)
                response = answer_to
        finally:
            if owned:
                entry.close()  # any descriptor the response did not take
        answer(response)

    def _with_gzip_form(
        self, key: str, entry: Entry, method: str, conditions: Conditions, body: Optional[bytes]
    ) -> Response:
        """Give ``entry`` its gzip form (None: gzip does not help) and answer from it."""
        gzip = entry.gzip
        if gzip is not None and not gzip.ready:
            if body is None:
                entry.gzip = None  # gzip does not help this file
            else:
                gzip.set_data(body)
            if self.cache is not None:
                self.cache.resized(key, entry)
        decision = choose(entry, method, conditions, time.time())
        return build_response(entry, *decision)

    def _revalidate(self, conn: Connection, key: str, entry: Entry) -> None:
        """Ask the pool whether the cached file changed; serve the cached copy meanwhile."""
        entry.revalidating = True
        job_args = (self.options, entry.segments, entry.slash)
        tracer = conn.tracer
        if tracer:
            tracer.revalidate(conn, files.current_stamp, key, conn.pool)
        callback = functools.partial(self._revalidated, key, entry, tracer)
        if not conn.pool.submit(files.current_stamp, job_args, callback):
            entry.revalidating = False  # pool saturated: try again on a later hit

    def _revalidated(
        self,
        key: str,
        entry: Entry,
        tracer: Any,
        future: "Outcome[Tuple[float, Optional[files.Stamp]]]",
    ) -> None:
        entry.revalidating = False
        cache = self.cache
        if cache is None:
            return
        try:
            checked_at, stamp = future.result()
        except Exception:  # a failed check proves nothing: drop the entry
            stamp = None
            checked_at = 0.0
        fresh = stamp is not None and stamp == entry.stamp
        if tracer:
            tracer.revalidated(files.current_stamp, key, fresh)
        if fresh:
            entry.checked_at = checked_at
        else:
            cache.remove(key, entry)

    # -- misses

    def _serve(
        self, key: str, segments: List[str], slash: bool, query: str, conn: Connection, request: Request
    ) -> None:
        head = request.head
        assert head is not None
        conditions = conditions_from_fields(head.fields)
        conn.run_in_pool(
            open_file,
            (self.options, key, segments, slash, head.method, conditions, query, self.epoch),
            functools.partial(self._respond, conn, key, query, head.method, head.http_version, conditions),
        )

    def _not_found(self, reason: str, conn: Connection, request: Request) -> None:
        conn.run_in_pool(not_found_page, (self.options, reason), self._page)

    def _respond(
        self,
        conn: Connection,
        key: str,
        query: str,
        method: str,
        http_version: str,
        conditions: Conditions,
        result: object,
    ) -> Optional[Response]:
        if isinstance(result, Loaded):
            entry = result.entry
            if entry.epoch != self.epoch:
                entry.cacheable = False  # read before the last change was told: serve it, don't keep it
            try:
                cache = self.cache
                if cache is not None and entry.cacheable and cache.admits(entry):
                    cache.put(key, entry)
                gzip = entry.gzip
                if result.status == 200 and result.use_gzip and gzip is not None and not gzip.ready:
                    if entry.identity.fd >= 0 and entry.size > self.gzip_forms.max_bytes:
                        try:
                            return self._stream_gzip(entry, http_version)  # takes the descriptor
                        finally:
                            entry.close()
                    # The entry (and its descriptor) now belongs to _gzip_then_answer.
                    return self._gzip_then_answer(conn, key, entry, method, conditions, owned=True)
            except BaseException:
                entry.close()
                raise
            try:
                return build_response(entry, result.status, result.use_gzip, result.ranges, result.multipart)
            finally:
                entry.close()  # whatever descriptor the response did not take
        if isinstance(result, Redirect):
            location = self.prefix + result.location + ("?" + query if query else "")
            return Response(
                308,
                [
                    ("Location", location),
                    ("Content-Type", "text/plain; charset=utf-8"),
                    ("X-Content-Type-Options", "nosniff"),
                ],
                ("Moved to %s\n" % location).encode("utf-8"),
            )
        assert isinstance(result, Page)
        return self._page(result)

    @staticmethod
    def _stream_gzip(entry: Entry, http_version: str) -> Response:
        """A gzip form too large to keep: made block by block as it is sent, chunked.

        An HTTP/1.0 client, which cannot take chunked, gets the identity form instead
        (a body ended by closing the connection could not be told from a truncated one).
        """
        gzip = entry.gzip
        assert gzip is not None
        if http_version == "1.0":
            return Response(200, entry.identity.fields, file=FileBody(entry.identity.take_fd(), 0, entry.size))
        return Response(200, gzip.fields, stream=compress.GzipStream(entry.identity.take_fd(), entry.size))

    def _page(self, page: Page) -> Response:
        fields = [("Content-Type", _HTML), ("X-Content-Type-Options", "nosniff")]
        body = page.body
        if self.options.live_reload:
            fields.append(("Cache-Control", "no-store"))
            if page.status == 200:  # a listing reloads when a file comes or goes
                body = livereload.inject(body, self.epoch)
        return Response(page.status, fields, body)

    def forget(self, batch: Batch) -> None:
        """Live reload: files changed (loop thread, before anyone is told).

        The hot-file cache and the gzip forms forget every changed file (by its real
        path and by the request path it was cached under, a folder's files with it)
        and every page made with the script of an older epoch; all of them after an
        overflow. Answers to requests already on the pool are served but not kept.
        """
        self.epoch = batch.epoch
        cache = self.cache
        if cache is None or not cache:
            return
        root = self.options.root
        changed = {rel.rstrip("/") for rel in batch.paths}
        real = {os.path.join(root, rel) for rel in changed}
        folders = tuple(os.path.join(root, rel) + os.sep for rel in changed)

        def stale(entry: files.Entry) -> bool:
            path = entry.path
            return (
                batch.overflow
                or entry.identity is not entry.ranged  # a page: its script names an older epoch
                or path in real
                or path + files.GZIP_SUFFIX in real
                or "/".join(entry.segments) in changed
                or path.startswith(folders)
            )

        for entry in cache.forget(stale):
            self.gzip_forms.remove(entry.identity.etag)

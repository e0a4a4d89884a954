"""``--live-reload``: pages reload themselves when a file under the folder changes.

Theory of operation
-------------------
Four parts, from the disk to the browser:

1. **The watcher** (:class:`reactor.watch.Watcher`) turns changes on disk into batches:
   an epoch that grows by one per batch and the changed paths. In one process
   :class:`LoopWatch` drives it on the server's loop: inotify's descriptor sits in the
   selector beside the sockets, listings of new folders and polling scans run on the
   disk pool, the debounce deadline is one :class:`~reactor.deadline.Deadline`. Under
   ``--workers`` the supervisor drives the one watcher and writes each batch down a pipe
   to every worker, where :class:`FeedReader` reads it (the pipe is one more descriptor).

2. **The hub** (:class:`LiveReload`) takes each batch: the static handler forgets the
   changed files (hot-file cache and gzip forms) and every page it injected at an older
   epoch, *then* the message goes to every open socket, so the reload it causes gets the
   new bytes. The messages are JSON text: ``{"type": "hello", "epoch": N}`` first, then
   ``{"type": "css", "paths": [...], "epoch": N}`` when every changed file is a
   stylesheet, else ``{"type": "reload", "paths": [...], "epoch": N}``. Paths are URL
   paths (``/css/site.css``), exact, sorted; new and deleted files count, a folder ends
   with ``/``. After an overflow of the kernel's queue the paths are ``[]``: unknown.

3. **The injection** (:func:`inject`): every full HTML response (a 200 to GET or HEAD
   for ``text/html``) carries ``<script src="/__reactor__/livereload.js"
   data-epoch="N">`` before its last ``</body>`` (ASCII case ignored; appended when
   there is none). The static handler builds the page once per file version and epoch
   (:func:`reactor.handlers.files.open_entry`), with its own ETag, so HEAD, gzip and
   ``If-None-Match`` work on it as on any file; ranges are of the file as it is on
   disk, with the file's ETag, and a precompressed ``.gz`` beside a page is not used
   (it lacks the script). HTML gets ``Cache-Control: no-store``.

4. **The client** (:data:`CLIENT_JS`, served at :data:`SCRIPT_PATH`) connects to
   :data:`SOCKET_PATH` on the page's own origin (``wss:`` under ``https:``), reconnects
   with back-off (0.25 s doubling to 5 s), closes its socket while the tab is hidden and
   reconnects when it is shown. It knows the epoch its page was served at: a ``hello``
   with a later epoch reloads (a change while it was away), a ``reload`` reloads unless
   its epoch is not newer, a ``css`` swaps the matching stylesheets in place (a fresh
   ``<link>`` with ``?livereload=N``, the old one removed once the new one loaded; all
   same-origin ones when none matches, for ``@import``).
"""

from __future__ import annotations

import codecs
import hashlib
import json
import logging
import os
import urllib.parse
from typing import TYPE_CHECKING, Any, Callable, Optional, Set

from reactor.deadline import Deadline
from reactor.handlers.upload import UPLOADS_DIR
from reactor.loop import EVENT_READ, EventLoop
from reactor.response import FrozenFields, Outcome, Pool, Response
from reactor.trace import Tracer
from reactor.watch import Batch, Feed, IgnoreRules, Watcher, scan_tree
from reactor.websocket import Sender, broadcast

if TYPE_CHECKING:  # pragma: no cover
    from reactor.config import Config

log = logging.getLogger("reactor.livereload")

#: Where everything of reactor's own lives; a site's files never start with it.
PREFIX = "/__reactor__/"
SCRIPT_PATH = PREFIX + "livereload.js"
SOCKET_PATH = PREFIX + "livereload"

CLIENT_JS = r"""// reactor --live-reload: reload this page when a file changes (see reactor/handlers/livereload.py).
(() => {
  "use strict";
  const script = document.currentScript;
  let current = Number(script && script.dataset.epoch) || 0;  // the epoch this page was served at
  const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/__reactor__/livereload";
  const FIRST_DELAY_MS = 250, MAX_DELAY_MS = 5000;
  let socket = null, delay = FIRST_DELAY_MS, timer = 0;

  function connect() {
    clearTimeout(timer);
    if (socket || document.hidden) return;  // hidden: nothing until the tab is shown again
    const ws = socket = new WebSocket(url);
    ws.onopen = () => { delay = FIRST_DELAY_MS; };
    ws.onmessage = (event) => { try { handle(JSON.parse(event.data)); } catch (error) { console.error(error); } };
    ws.onclose = () => {
      if (socket !== ws) return;
      socket = null;
      if (!document.hidden) {
        timer = setTimeout(connect, delay);
        delay = Math.min(delay * 2, MAX_DELAY_MS);
      }
    };
  }

  function handle(message) {
    if (message.type === "hello") {
      if (message.epoch > current) location.reload();  // changed while we were away
    } else if (message.type === "reload") {
      if (!(message.epoch <= current)) location.reload();
    } else if (message.type === "css") {
      swap(message.paths, message.epoch);
      current = Math.max(current, message.epoch);
    }
  }

  function sameOrigin(link) {
    try { return new URL(link.href, location.href).origin === location.origin; } catch (error) { return false; }
  }

  function swap(paths, epoch) {
    const wanted = new Set(paths.map((path) => decodeURIComponent(path)));
    const links = Array.from(document.querySelectorAll('link[rel~="stylesheet"][href]')).filter(sameOrigin);
    let chosen = links.filter((link) => wanted.has(decodeURIComponent(new URL(link.href, location.href).pathname)));
    if (!chosen.length) chosen = links;  // an @import'ed sheet: refresh them all
    for (const link of chosen) {
      const fresh = link.cloneNode();
      const target = new URL(link.href, location.href);
      target.searchParams.set("livereload", String(epoch));
      fresh.href = target.href;
      const done = () => link.remove();
      fresh.addEventListener("load", done, {once: true});
      fresh.addEventListener("error", done, {once: true});
      link.after(fresh);  // the old sheet stays until the new one has loaded: no flash
    }
  }

  document.addEventListener("visibilitychange", () => {
    if (document.hidden) {
      if (socket) { const ws = socket; socket = null; ws.close(1000, "hidden"); }
    } else {
      delay = FIRST_DELAY_MS;
      connect();
    }
  });
  window.addEventListener("pagehide", () => { if (socket) socket.close(1000, "leaving"); });
  connect();
})();
"""

_CLIENT_BODY = CLIENT_JS.encode("utf-8")
_CLIENT_FIELDS = FrozenFields(
    (
        ("Content-Type", "text/javascript; charset=utf-8"),
        ("Cache-Control", "no-cache"),
        ("ETag", '"%s"' % hashlib.sha256(_CLIENT_BODY).hexdigest()[:16]),
        ("X-Content-Type-Options", "nosniff"),
    )
)
_URL_SAFE = "/!$&'()*+,;=:@"  # RFC 3986 pchar: what needs no percent-encoding in a path


def script_tag(epoch: int) -> str:
    """The element injected into pages served at ``epoch``."""
    return '<script src="%s" data-epoch="%d"></script>' % (SCRIPT_PATH, epoch)


def inject(page: bytes, epoch: int) -> bytes:
    """``page`` (HTML bytes) with :func:`script_tag` before its last ``</body>``, or at its end.

    ``</body`` is found whatever its ASCII case and must end the tag name (``>``, ``/``
    or white space after it); the last one wins, so a ``</body>`` written inside an
    earlier script is passed over. A page with a UTF-16 byte order mark gets the tag in
    UTF-16; anything else is taken as ASCII-compatible (UTF-8, Latin-1, ...).
    """
    encoding, unit = "utf-8", 1
    if page.startswith(codecs.BOM_UTF16_LE):
        encoding, unit = "utf-16-le", 2
    elif page.startswith(codecs.BOM_UTF16_BE):
        encoding, unit = "utf-16-be", 2
    needle = "</body".encode(encoding)
    enders = [char.encode(encoding) for char in "> \t\n\r\f/"]
    tag = script_tag(epoch).encode(encoding)
    lowered = page.lower()
    end = len(page)
    while True:
        at = lowered.rfind(needle, 0, end)
        if at < 0:
            return page + tag
        after = lowered[at + len(needle) : at + len(needle) + unit]
        if at % unit == 0 and (not after or after in enders):
            return page[:at] + tag + page[at:]
        end = at + len(needle) - 1  # "</bodyguard>" or a misaligned match: look further back


def url_path(rel: str) -> str:
    """A path relative to the folder (``/``-separated) as the URL path that names it."""
    return "/" + urllib.parse.quote(os.fsencode(rel), safe=_URL_SAFE)


def message_for(batch: Batch) -> str:
    """The JSON text a batch is told as (see the module docstring)."""
    paths = [url_path(rel) for rel in batch.paths]
    only_css = bool(paths) and not batch.overflow and all(rel.lower().endswith(".css") for rel in batch.paths)
    kind = "css" if only_css else "reload"
    return json.dumps({"type": kind, "paths": [] if batch.overflow else paths, "epoch": batch.epoch})


def hello(epoch: int) -> str:
    return json.dumps({"type": "hello", "epoch": epoch})


def make_watcher(config: "Config") -> Watcher:
    """The watcher ``config`` asks for (``--watch``, ``--watch-interval``, ``--live-reload-ignore``).

    Walks the folder (watches, or a first listing): call it before serving. Raises
    OSError for ``--watch inotify`` where inotify cannot start.
    """
    return Watcher(
        str(config.root),
        IgnoreRules(config.live_reload_ignore, top=(UPLOADS_DIR,)),  # the server writes uploads there itself
        mode=config.watch,
        interval_s=config.watch_interval_s,
    )


class LiveReload:
    """The hub of one server process: the epoch, the open sockets, what a batch does.

    ``forget(batch)`` is the static handler's (:meth:`reactor.handlers.static.StaticFiles.forget`):
    it runs before a message goes out. :meth:`socket` is the WebSocket endpoint's factory
    (mounted at :data:`SOCKET_PATH`, behind the handshake's Origin check). Loop thread only.
    """

    def __init__(self, forget: Callable[[Batch], None]) -> None:
        self.forget = forget
        self.epoch = 0
        self.sockets: Set[Sender] = set()  # the open WebSocket sessions at SOCKET_PATH
        self._source: "Optional[LoopWatch | FeedReader]" = None
        self.tracer: Optional[Tracer] = None

    def start(self, loop: EventLoop, pool: Pool, source: "Watcher | Feed", tracer: Optional[Tracer] = None) -> None:
        """Follow ``source``: a :class:`Watcher` of our own, or the supervisor's :class:`Feed`.

        ``tracer`` (``--trace``) is told of the watcher's wake-ups and of each message sent.
        """
        self.epoch = source.epoch
        self.tracer = tracer
        if isinstance(source, Feed):
            self._source = FeedReader(loop, source.fd, self.changed)
        else:
            self._source = LoopWatch(loop, pool, source, self.changed, tracer)
        self.forget(Batch(self.epoch, ()))  # the static handler learns the epoch pages are made at
        self._source.start()

    def changed(self, batch: Batch) -> None:
        """A batch: forget what changed, then tell every socket."""
        self.epoch = batch.epoch
        self.forget(batch)
        message = message_for(batch)
        if self.tracer:  # before the sends, which the transports trace
            self.tracer.line(None, "live reload: %s to %d socket(s)" % (message, len(self.sockets)))
        sent = broadcast(self.sockets, message)  # one frame for all; a receiver too far behind is closed (1008)
        log.debug("epoch %d: %s to %d of %d socket(s)", batch.epoch, message, sent, len(self.sockets))

    def socket(self) -> "Listener":
        """A handler for one new WebSocket at :data:`SOCKET_PATH` (the endpoint's factory)."""
        return Listener(self)

    def join(self, session: Sender) -> None:
        """A socket opened: it hears ``hello`` now and every batch from now on."""
        self.sockets.add(session)
        session.send(hello(self.epoch))

    def leave(self, session: Sender) -> None:
        self.sockets.discard(session)

    @staticmethod
    def script() -> Response:
        """The client, :data:`CLIENT_JS`, as a 200 (to GET or HEAD)."""
        return Response(200, _CLIENT_FIELDS, _CLIENT_BODY)

    def close(self) -> None:
        if self._source is not None:
            self._source.close()
            self._source = None


class Listener:
    """One tab's WebSocket (a :class:`reactor.websocket.Handler`): joins the hub, listens, leaves.

    The client has nothing to say; what it sends is ignored.
    """

    __slots__ = ("hub",)

    def __init__(self, hub: LiveReload) -> None:
        self.hub = hub

    def on_open(self, session: Sender) -> None:
        self.hub.join(session)

    def on_message(self, session: Sender, message: "str | bytes") -> None:
        pass

    def on_close(self, session: Sender, code: int, reason: str) -> None:
        self.hub.leave(session)


class LoopWatch:
    """Drives a :class:`Watcher` on the server's loop (one process; see the module docstring)."""

    def __init__(
        self,
        loop: EventLoop,
        pool: Pool,
        watcher: Watcher,
        on_batch: Callable[[Batch], None],
        tracer: Optional[Tracer] = None,
    ) -> None:
        self.loop = loop
        self.pool = pool
        self.watcher = watcher
        self.on_batch = on_batch
        self.tracer = tracer
        self.timer = Deadline(loop, self._on_timer)
        self._registered = -1  # the descriptor in the selector
        self._busy = False  # a listing or a scan is on the pool
        self._closed = False

    def start(self) -> None:
        fd = self.watcher.fileno()
        if fd >= 0:
            self.loop.selector.register(fd, EVENT_READ, self._on_readable)
            self._registered = fd
        self._settle()

    def _on_readable(self, mask: int) -> None:
        now = self.loop.now
        self.watcher.read(now)
        if self.tracer:
            due = self.watcher.deadline()
            pending = ", ".join(sorted(self.watcher.debounce.paths)) or "nothing to report"
            when = "" if due is None else "; the batch is due in %.0f ms unless more comes" % ((due - now) * 1000)
            self.tracer.line(None, "event read inotify: %s%s" % (pending, when))
        self._settle()

    def _on_timer(self) -> None:
        watcher = self.watcher
        now = self.loop.now
        batch = watcher.take(now)
        if batch is not None:
            log.info("changed: %s", batch.describe())
            self.on_batch(batch)
        if watcher.backend == "poll" and not self._busy and now >= watcher.next_scan_at:
            self._submit(scan_tree, (watcher.root, watcher.rules), self._scanned)
        self._settle()

    def _settle(self) -> None:
        """Start what is due on the pool, and set the timer for the next thing to do."""
        watcher = self.watcher
        if self._registered >= 0 and watcher.fileno() != self._registered:
            self.loop.selector.unregister(self._registered)  # fell back to polling
            self._registered = -1
        if not self._busy and watcher.new_dirs:
            self._submit(watcher.add_trees, (watcher.take_new_dirs(),), self._walked)
        when = watcher.deadline()
        if watcher.backend == "poll" and not self._busy:
            when = watcher.next_scan_at if when is None else min(when, watcher.next_scan_at)
        self.timer.cancel()
        self.timer.when = when
        self.timer.settle()

    def _submit(self, job: Callable[..., Any], args: "tuple[Any, ...]", done: Callable[[Any], None]) -> None:
        self._busy = True
        if not self.pool.submit(job, args, lambda future: self._done(future, done), bounded=False):
            self._busy = False  # the pool is shut down: the server is stopping

    def _done(self, future: "Outcome[Any]", done: Callable[[Any], None]) -> None:
        self._busy = False
        if self._closed:
            return  # the server stopped meanwhile
        try:
            done(future.result())
        except Exception:
            log.exception("watching %s failed", self.watcher.root)
        self._settle()

    def _walked(self, walk: Any) -> None:
        self.watcher.trees_added(walk, self.loop.now)

    def _scanned(self, snapshot: Any) -> None:
        self.watcher.scanned(snapshot, self.loop.now)

    def close(self) -> None:
        self._closed = True
        if self._registered >= 0:
            self.loop.selector.unregister(self._registered)
            self._registered = -1
        self.timer.close()
        self.watcher.close()


class FeedReader:
    """A worker's end of the supervisor's pipe: each line is a :class:`Batch` (``--workers``)."""

    def __init__(self, loop: EventLoop, fd: int, on_batch: Callable[[Batch], None]) -> None:
        self.loop = loop
        self.fd = fd
        self.on_batch = on_batch
        self.buffer = bytearray()

    def start(self) -> None:
        os.set_blocking(self.fd, False)
        self.loop.selector.register(self.fd, EVENT_READ, self._on_readable)

    def _on_readable(self, mask: int) -> None:
        try:
            data = os.read(self.fd, 65536)
        except (BlockingIOError, InterruptedError):
            return
        if not data:  # the supervisor is gone; the heartbeat notices too
            self.close()
            return
        self.buffer += data
        for batch in Batch.decode(self.buffer):
            self.on_batch(batch)

    def close(self) -> None:
        if self.fd >= 0:
            self.loop.selector.unregister(self.fd)
            os.close(self.fd)
            self.fd = -1

"""``--trace``: one line per thing the loop does for a connection, for people studying it.

Theory of operation
-------------------
A :class:`Tracer` writes lines like these to stderr::

      12.345 #3 event read
      12.346 #3 recv 78 bytes
      12.346 #3 state idle -> reading-headers
      12.347 #3 timer armed reading-headers 10.0s
      12.350 #3 parser RequestHead GET / HTTP/1.1
      12.351 #3 pool submit open_file (queued 0, busy 0 of 4)
      13.002 -- event read waker (a worker result)
      13.002 #3 pool result open_file

The first column is milliseconds of ``time.monotonic()`` since the server started;
the second is the connection id (``--`` for the listener and the loop's waker); the
rest names what happened: a selector event, a change of selector interest, a state
transition, a parser event, a pool hand-off, a timer, bytes received or sent.

Tracing costs nothing when it is off: the server's ``tracer`` is None and every trace
point in the code is guarded by ``if self.tracer:``, so no string is formatted and no
function is called. Every method here runs on the loop thread.
"""

from __future__ import annotations

import functools
import sys
import time
from typing import Any, Callable, Optional, TextIO

from reactor.events import NEED_DATA, PAUSED, BodyData, EndOfStream, RequestEnd, RequestHead
from reactor.loop import EVENT_READ, EVENT_WRITE, EventLoop, Waker
from reactor.response import Outcome, Response

# Trace points take the connection, a session or its transport: anything with an ``id``,
# which names the line; everything else they print is passed as a plain value. This
# module sits below all of them, so it names none.
Traced = Any

_MASKS = {0: "none", EVENT_READ: "read", EVENT_WRITE: "write", EVENT_READ | EVENT_WRITE: "read+write"}


def job_name(job: Callable[..., Any]) -> str:
    """A short name for a pool job: the function's name (``functools.partial`` unwrapped)."""
    while isinstance(job, functools.partial):
        job = job.func
    return getattr(job, "__name__", type(job).__name__)


def waker_cause(ready: Any) -> str:
    """What woke the loop, read from the callbacks queued for this pass.

    Other threads queue work with ``call_soon_threadsafe``: the pool a job's result
    (``WorkerPool._finished``, whose callback is a cache revalidation's
    ``StaticFiles._revalidated`` or a connection's), a signal handler a stop or a
    reload. The names are read, not imported: this module sits below all of them.
    """
    causes = []
    for callback, args in ready:
        name = getattr(callback, "__name__", "")
        if name == "_finished" and args:
            cause = "a cache revalidation" if job_name(args[0]) == "_revalidated" else "a worker result"
        elif "stop" in name:
            cause = "a stop signal"
        elif name == "reload_tls":
            cause = "a reload signal"
        else:
            continue  # queued by the loop thread itself (call_soon): it needs no wake-up
        if cause not in causes:
            causes.append(cause)
    return ", ".join(causes) or "its callback already ran in the previous pass"


class Tracer:
    """Writes trace lines to ``stream`` (stderr unless given); times count from creation.

    Creating a tracer for ``loop`` also wraps the loop's :class:`~reactor.loop.Waker` so
    that wake-ups from worker threads appear as selector events.
    """

    def __init__(self, loop: Optional[EventLoop] = None, stream: Optional[TextIO] = None) -> None:
        self.stream: TextIO = stream if stream is not None else sys.stderr
        self.started = time.monotonic()
        if loop is not None:
            self._watch_waker(loop)

    # -- output -------------------------------------------------------------------------

    def line(self, conn_id: Optional[int], text: str) -> None:
        """Write one line: milliseconds since start, ``#id`` (or ``--``), ``text``.

        A line that cannot be written (stderr a closed pipe: ``--trace | head`` after
        ``head`` exits) is dropped: the trace must not break the code it watches (it is
        written from inside the loop's callbacks, the waker's drain among them).
        """
        ms = (time.monotonic() - self.started) * 1000.0
        who = "--" if conn_id is None else "#%d" % conn_id
        try:
            self.stream.write("%9.3f %s %s\n" % (ms, who, text))
            self.stream.flush()
        except (OSError, ValueError):  # ValueError: the stream was closed
            pass

    # -- the loop and the listener ------------------------------------------------------

    def _watch_waker(self, loop: EventLoop) -> None:
        for key in list(loop.selector.get_map().values()):
            if isinstance(key.fileobj, Waker):
                drain = key.data

                def traced_drain(mask: int, drain: Callable[[int], None] = drain) -> None:
                    self.line(None, "event read waker (%s)" % waker_cause(loop._ready))
                    drain(mask)

                loop.selector.modify(key.fileobj, key.events, traced_drain)

    def listening(self, address: Any) -> None:
        self.line(None, "listening on %s:%d" % (address[0], address[1]))

    def listener_ready(self) -> None:
        self.line(None, "event read listener (accepting)")

    # -- a connection -------------------------------------------------------------------

    def accepted(self, conn: Traced, peer: str) -> None:
        self.line(conn.id, "accepted from %s" % peer)

    def event(self, conn: Traced, mask: int) -> None:
        self.line(conn.id, "event %s" % _MASKS.get(mask, mask))

    def interest(self, conn: Traced, old: int, new: int) -> None:
        if new == 0:
            self.line(conn.id, "selector unregister (nothing to send yet; input waits in the kernel)")
        else:
            verb = "register" if old == 0 else "modify"
            self.line(conn.id, "selector %s %s" % (verb, _MASKS.get(new, new)))

    def state(self, conn: Traced, old: Any, new: Any) -> None:
        self.line(conn.id, "state %s -> %s" % (old.value, new.value))

    def recv(self, conn: Traced, size: int) -> None:
        self.line(conn.id, "recv %d bytes" % size if size else "recv EOF (client closed its side)")

    def send(self, conn: Traced, sent: int, queued: int) -> None:
        if sent < queued:
            self.line(conn.id, "send %d of %d bytes (socket buffer full)" % (sent, queued))
        else:
            self.line(conn.id, "send %d bytes" % sent)

    def sendfile(self, conn: Traced, sent: int, remaining: int) -> None:
        self.line(conn.id, "sendfile %d bytes (%d to go)" % (sent, remaining))

    def tls(self, conn: Traced, text: str) -> None:
        self.line(conn.id, "tls " + text)

    def parser(self, conn: Traced, event: object) -> None:
        kind = type(event)
        if kind is RequestHead:
            head: RequestHead = event  # type: ignore[assignment]
            text = "RequestHead %s %s HTTP/%s" % (head.method, head.target[:200], head.http_version)
        elif kind is BodyData:
            text = "BodyData %d bytes" % len(event.data)  # type: ignore[attr-defined]
        elif kind is RequestEnd:
            text = "RequestEnd"
        elif kind is EndOfStream:
            text = "EndOfStream"
        elif event is NEED_DATA:
            text = "need-data"
        elif event is PAUSED:
            text = "paused (until the response is sent)"
        else:
            text = repr(event)
        self.line(conn.id, "parser " + text)

    def respond(self, conn: Traced, response: Response, keep_alive: bool) -> None:
        if response.upgrade is not None:
            after = "then another protocol"  # a 101: the transport goes to the upgrade's session
        else:
            after = "keep-alive" if keep_alive else "then close"
        self.line(conn.id, "respond %d, %d body bytes, %s" % (response.status, response.content_length, after))

    def fail(self, conn: Traced, exc: Exception) -> None:
        self.line(conn.id, "error %s" % exc)

    def lost(self, conn: Traced, exc: BaseException) -> None:
        self.line(conn.id, "connection lost: %s" % (getattr(exc, "strerror", None) or exc))

    # -- timers -------------------------------------------------------------------------

    def timer_armed(
        self, conn: Traced, state: str, delay_s: float, fires_at: Optional[float], deadline: Optional[float]
    ) -> None:
        """A state's deadline is set, ``delay_s`` from now; a timer set earlier (``fires_at``) may fire first."""
        if fires_at is not None and deadline is not None and fires_at < deadline:
            self.line(
                conn.id,
                "deadline %s %.1fs (armed timer fires first, in %.1fs, and re-arms)"
                % (state, delay_s, fires_at - time.monotonic()),
            )
        else:
            self.line(conn.id, "deadline %s %.1fs" % (state, delay_s))

    def timer_set(self, conn: Traced, fires_at: Optional[float]) -> None:
        """A timer was pushed: the session waits with this deadline."""
        if fires_at is not None:
            self.line(conn.id, "timer armed, fires in %.1fs" % (fires_at - time.monotonic()))

    def timer_fired(self, conn: Traced, state: str, deadline: Optional[float]) -> None:
        """A timer fired, before the session acts: expired, early and re-arming, or with no deadline."""
        if deadline is None:
            self.line(conn.id, "timer fired (no deadline; ignored)")
        elif time.monotonic() < deadline:
            self.line(conn.id, "timer fired early; re-armed for the deadline in %.1fs" % (deadline - time.monotonic()))
        else:
            self.line(conn.id, "timer fired: %s timed out" % state)

    # -- the worker pool ----------------------------------------------------------------

    def pool_submit(self, conn: Traced, job: Callable[..., Any], pool: Any) -> None:
        """A job goes to ``pool`` (a :class:`~reactor.workers.WorkerPool`: its queue and busy threads are shown)."""
        which = "pool" if getattr(pool, "name", "worker") == "worker" else "%s pool" % pool.name
        self.line(
            conn.id,
            "%s submit %s (queued %d, busy %d of %d)"
            % (which, job_name(job), max(0, pool.pending - pool.busy), pool.busy, pool.size),
        )

    def revalidate(self, conn: Traced, job: Callable[..., Any], path: str, pool: Any) -> None:
        """A cache hit older than its check interval: the file is re-checked on the pool."""
        self.line(
            conn.id,
            "pool submit %s (revalidate cached %s; queued %d, busy %d of %d)"
            % (job_name(job), path[:200], max(0, pool.pending - pool.busy), pool.busy, pool.size),
        )

    def revalidated(self, job: Callable[..., Any], path: str, fresh: bool) -> None:
        """The re-check came back; it belongs to no connection."""
        verdict = "unchanged, entry renewed" if fresh else "changed or gone, entry dropped"
        self.line(None, "pool result %s: cached %s %s" % (job_name(job), path[:200], verdict))

    def pool_result(self, conn: Traced, job: Callable[..., Any], future: "Outcome[Any]", stale: bool) -> None:
        text = "pool result " + job_name(job)
        if not future.cancelled() and future.exception() is not None:
            text += " raised %s" % future.exception()
        if stale:
            text += "; dropped (the connection closed or moved on)"
        self.line(conn.id, text)

"""``--status-path /_status``: what the loop is doing now, like nginx's stub_status.

The page shows the state machine at work: how many connections are in each
:class:`~reactor.connection.ConnState`, requests answered, responses by status class,
bytes sent, the worker pool's queue and busy workers, and the uptime. It is JSON, or a
small HTML page when the client's Accept field prefers ``text/html`` over
``application/json`` (RFC 9110 §12.5.1), as a browser's does.

Under a supervisor (``--workers N``) each process answers for itself, so the page says
which one answered (``worker``: its number and PID) and adds ``workers``: every worker's
counters from the shared :class:`~reactor.scoreboard.Scoreboard` (as of its last
heartbeat, about a second old; the answering worker's own are exact) and their totals.

Only loopback clients get it (403 otherwise): connection counts and timings are not for
the internet. The answer is built on the loop thread from plain counters
(:class:`reactor.stats.Stats`) plus one pass over the connection table; nothing touches
the disk, so nothing goes to the pool.
"""

from __future__ import annotations

import html
import ipaddress
import json
import os
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from reactor import __version__
from reactor.connection import Connection, ConnState, Request
from reactor.errors import HTTPError
from reactor.loop import EventLoop
from reactor.response import Response
from reactor.scoreboard import this_worker
from reactor.sessions import Session
from reactor.stats import Stats
from reactor.workers import WorkerPool

ALLOW = "GET, HEAD"
_GONE = frozenset({ConnState.CLOSED, ConnState.UPGRADED})  # such connections have left the table
_FIELDS = [("Cache-Control", "no-store"), ("Vary", "Accept"), ("X-Content-Type-Options", "nosniff")]


def is_loopback(client: str) -> bool:
    """True for 127.0.0.0/8, ::1 and IPv4-mapped loopback (``::ffff:127.0.0.1``)."""
    try:
        address = ipaddress.ip_address(client.split("%", 1)[0])
    except ValueError:
        return False  # not an IP address (e.g. "-" for a Unix socket peer)
    mapped = getattr(address, "ipv4_mapped", None)
    return bool(address.is_loopback or (mapped is not None and mapped.is_loopback))


def _media_ranges(accept: str) -> List[Tuple[str, str, float]]:
    """``(type, subtype, q)`` for each media-range of an Accept field value (RFC 9110 §12.5.1)."""
    ranges = []
    for element in accept.split(","):
        media_range, *params = element.split(";")
        kind, _, subtype = media_range.strip().lower().partition("/")
        if not kind or not subtype:
            continue
        q = 1.0
        for param in params:
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    q = min(1.0, max(0.0, float(value)))
                except ValueError:
                    q = 0.0
        ranges.append((kind, subtype, q))
    return ranges


def _quality(ranges: List[Tuple[str, str, float]], kind: str, subtype: str) -> float:
    """The q of ``kind/subtype``: from the most specific range that matches it, else 0."""
    best_specificity, best_q = -1, 0.0
    for range_kind, range_subtype, q in ranges:
        if range_kind == kind and range_subtype == subtype:
            specificity = 2
        elif range_kind == kind and range_subtype == "*":
            specificity = 1
        elif range_kind == "*" and range_subtype == "*":
            specificity = 0
        else:
            continue
        if specificity > best_specificity:
            best_specificity, best_q = specificity, q
    return best_q


def prefers_html(accept: Optional[str]) -> bool:
    """True when ``accept`` ranks ``text/html`` strictly above ``application/json``.

    No Accept field, or a tie (``*/*``), means JSON: the format for scripts.
    """
    if not accept:
        return False
    ranges = _media_ranges(accept)
    return _quality(ranges, "text", "html") > _quality(ranges, "application", "json")


def _pool_snapshot(pool: WorkerPool) -> Dict[str, int]:
    busy = pool.busy
    return {"workers": pool.size, "busy": busy, "queued": max(0, pool.pending - busy), "max_pending": pool.max_pending}


def snapshot(
    stats: Stats,
    sessions: Mapping[int, Session],
    pool: WorkerPool,
    loop: EventLoop,
    app_pool: Optional[WorkerPool] = None,
) -> Dict[str, Any]:
    """The status as a JSON-ready dict (the shape is documented in docs/status.md).

    ``sessions`` is the server's live table (id → session): HTTP connections are counted
    by state (``by_state``), and every session by protocol (``by_protocol``, its label).
    ``app_pool``, when the server has one, is shown beside the disk pool.
    """
    by_state = {state.value: 0 for state in ConnState if state not in _GONE}
    by_protocol: Dict[str, int] = {Connection.label: 0}
    for session in sessions.values():
        label = session.label
        by_protocol[label] = by_protocol.get(label, 0) + 1
        if label == Connection.label:
            phase = session.phase()
            by_state[phase] = by_state.get(phase, 0) + 1
    status = {
        "server": "reactor/%s" % __version__,
        "uptime_s": round(stats.uptime_s, 3),
        "connections": {
            "open": len(sessions),
            "by_state": by_state,
            "by_protocol": by_protocol,
            "accepted": stats.accepted,
            "refused": stats.refused,
        },
        "requests": stats.requests,
        "responses": {"%dxx" % n: stats.responses[n] for n in range(1, 6)},
        "sent_bytes": stats.sent_bytes,
        "pool": _pool_snapshot(pool),
        "timers": loop.pending_timers,
        **workers_snapshot(stats.requests, stats.accepted, len(sessions)),
    }
    if app_pool is not None:
        status["app_pool"] = _pool_snapshot(app_pool)
    return status


def workers_snapshot(requests: int, accepted: int, open_connections: int) -> Dict[str, Any]:
    """``worker`` (who answers: number, PID) and, under a supervisor, ``workers``: each one and the totals.

    The arguments are this process's own counters, used for its own row.
    """
    identity = this_worker()
    answering = {"number": identity.number if identity else None, "pid": os.getpid()}
    if identity is None:
        return {"worker": answering}
    now = time.monotonic()
    each: List[Dict[str, Any]] = []
    for slot in identity.scoreboard.live():
        row: Dict[str, Any] = {
            "number": slot.number,
            "pid": slot.pid,
            "requests": slot.requests,
            "accepted": slot.accepted,
            "open": slot.open,
            "heartbeat_age_s": round(now - slot.heartbeat, 3) if slot.heartbeat else None,
            "taking": slot.taking,  # takes new connections (accepting, or deferring to a peer for a moment)
        }
        if slot.number == identity.number:
            row.update(requests=requests, accepted=accepted, open=open_connections, heartbeat_age_s=0.0)
        each.append(row)
    totals = {key: sum(row[key] for row in each) for key in ("requests", "accepted", "open")}
    return {"worker": answering, "workers": {"count": len(each), **totals, "each": each}}


def _rows(pairs: List[Tuple[str, Any]]) -> str:
    return "".join(
        "<tr><th>%s</th><td>%s</td></tr>" % (html.escape(str(name)), html.escape(str(value))) for name, value in pairs
    )


def render_html(status: Dict[str, Any]) -> bytes:
    """A small self-refreshing page for a browser: one table per part of the snapshot."""
    connections = status["connections"]
    pool = status["pool"]
    sections = [
        ("Connections by state", list(connections["by_state"].items()) + [("open", connections["open"])]),
        ("Sessions by protocol", list(connections["by_protocol"].items())),
        (
            "Totals",
            [
                ("accepted", connections["accepted"]),
                ("refused (503)", connections["refused"]),
                ("requests", status["requests"]),
                ("bytes sent", status["sent_bytes"]),
            ],
        ),
        ("Responses by status class", list(status["responses"].items())),
        (
            "Worker pool",
            [
                ("workers", pool["workers"]),
                ("busy", pool["busy"]),
                ("queued", pool["queued"]),
                ("max pending", pool["max_pending"]),
            ],
        ),
        *(
            [("Application pool", [(name.replace("_", " "), value) for name, value in status["app_pool"].items()])]
            if "app_pool" in status
            else []
        ),
        ("Loop", [("timers in the heap", status["timers"]), ("uptime (s)", "%.1f" % status["uptime_s"])]),
        (
            "Answered by",
            [("worker", status["worker"]["number"] or "(single process)"), ("pid", status["worker"]["pid"])],
        ),
    ]
    workers = status.get("workers")
    if workers:
        sections.append(
            (
                "Workers (requests / accepted / open)",
                [
                    (
                        "#%d, pid %d" % (row["number"], row["pid"]),
                        "%d / %d / %d%s"
                        % (row["requests"], row["accepted"], row["open"], "" if row["taking"] else ", not taking"),
                    )
                    for row in workers["each"]
                ]
                + [("total", "%d / %d / %d" % (workers["requests"], workers["accepted"], workers["open"]))],
            )
        )
    body = "".join("<h2>%s</h2><table>%s</table>" % (html.escape(title), _rows(pairs)) for title, pairs in sections)
    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="refresh" content="2"><title>%s status</title>'
        "<style>body{font:15px/1.5 system-ui,sans-serif;margin:1.5rem auto;max-width:32rem;padding:0 1rem}"
        "table{border-collapse:collapse;width:100%%}th,td{border-bottom:1px solid #ddd;padding:.2rem .5rem}"
        "th{text-align:left;font-weight:normal}td{text-align:right;font-variant-numeric:tabular-nums}"
        "h2{font-size:1rem;margin:1.2rem 0 .3rem}</style></head>"
        "<body><h1>%s</h1>%s<p>JSON: ask with <code>Accept: application/json</code>.</p></body></html>\n"
        % (html.escape(status["server"]), html.escape(status["server"]), body)
    )
    return page.encode("utf-8")


class StatusPage:
    """Answers ``config.status_path`` from ``snapshot()`` (no disk, so no pool)."""

    def __init__(self, snapshot: Callable[[], Dict[str, Any]]) -> None:
        self.snapshot = snapshot

    def route(self, conn: Connection, request: Request) -> Optional[Response]:
        """Refuse other clients than loopback (403) and methods other than GET and HEAD (405).

        Raises HTTPError 403 or 405 (with Allow).
        """
        head = request.head
        assert head is not None
        if not is_loopback(conn.client):
            raise HTTPError(403, "the status page is for loopback clients only")
        if head.method not in ("GET", "HEAD"):
            raise HTTPError(405, "%s is not allowed here" % head.method, headers=(("Allow", ALLOW),))
        request.route = self.answer
        return None

    def answer(self, conn: Connection, request: Request) -> Response:
        """The status for a loopback GET or HEAD, as JSON or HTML."""
        head = request.head
        assert head is not None
        status = self.snapshot()
        if prefers_html(head.get("accept")):
            return Response(200, [("Content-Type", "text/html; charset=utf-8"), *_FIELDS], render_html(status))
        body = (json.dumps(status, indent=2) + "\n").encode("utf-8")
        return Response(200, [("Content-Type", "application/json"), *_FIELDS], body)

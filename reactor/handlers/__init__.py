"""What the server does with a well-formed request: policy and routing.

The connection calls :meth:`Application.route` once per request: as soon as the head is
known when a message body follows (so a refusal goes out before the body is read, which
is also how ``Expect: 100-continue`` is answered), or at the end of the request
otherwise. ``route`` either refuses (a 4xx/5xx Response, or HTTPError) or picks the
handler, ``request.route``, which the connection calls when the request is complete,
its message body framed and read: success answers are only made then. Both run on the
loop thread and must not block: anything that touches the disk goes to the worker pool
through :meth:`Connection.run_in_pool`.

Checks in order: a method this server knows (else 501), the Host allow-list against
DNS rebinding (403), a CORS preflight when ``--cors`` is on, then the route: a WebSocket
endpoint (``--websocket``, or :meth:`Application.mount_websocket`; once one is mounted, a
WebSocket handshake to any other path is 404), the status page (``--status-path``),
``/upload`` (405 for POST with ``--no-uploads``) or a static file.
With ``--live-reload``, paths under ``/__reactor__/`` are the live-reload client and its
socket (:mod:`reactor.handlers.livereload`); that check is made only then (the route
method is swapped at start), so it costs nothing when the flag is off.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Dict, FrozenSet, Optional

from reactor.config import Config
from reactor.connection import Connection, Request
from reactor.errors import HTTPError
from reactor.events import TargetForm
from reactor.handlers import cors, livereload, static, status, upload, websocket
from reactor.response import Response

#: Methods defined by RFC 9110 §9 and RFC 5789 (PATCH); others are answered 501.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})
UPLOAD_PATH = "/upload"
_ASTERISK = TargetForm.ASTERISK  # an Enum member read through its class costs a lookup in the metaclass


class Application:
    """Routes requests to the static-file and upload handlers.

    ``port`` is the port actually bound (it matters when the configured port is 0).
    ``snapshot`` returns the status page's numbers (:func:`reactor.handlers.status.snapshot`).
    """

    def __init__(self, config: Config, port: int, snapshot: Callable[[], Dict[str, Any]]) -> None:
        self.config = config
        self.static = static.StaticFiles(config)
        self.upload = upload.Uploads(config)
        self.status = status.StatusPage(snapshot)
        self.websocket = websocket.Endpoints(config)  # raises ValueError for an endpoint that cannot be imported
        self.websockets = self.websocket.factories  # by path; empty (and never looked into) without endpoints
        self.port = port
        self.default_port = 443 if config.tls else 80  # the port browsers leave out of Host
        self.allowed_authorities, self.allowed_names = allowed_hosts(
            config.host, port, config.allowed_hosts, self.default_port
        )
        self.any_host = "*" in config.allowed_hosts  # --allow-host '*': no Host check (warned at start)
        #: The live-reload hub (``--live-reload``), else None.
        self.live: Optional[livereload.LiveReload] = None
        if config.live_reload:
            self.live = livereload.LiveReload(self.static.forget)
            self.mount_websocket(livereload.SOCKET_PATH, self.live.socket)
            self.route = self._route_live  # type: ignore[method-assign]

    def route(self, conn: Connection, request: Request) -> Optional[Response]:
        """Pick the handler (``request.route``) or refuse; None means "go on".

        Raises HTTPError (403, 405, 415, 501) for requests to refuse.
        """
        head = request.head
        assert head is not None
        method = head.method
        if method not in KNOWN_METHODS:
            raise HTTPError(501, "method %s is not implemented" % method[:32])
        if method == "CONNECT":
            raise HTTPError(501, "CONNECT is not supported; this is not a proxy")
        self.check_host(head.authority, conn)
        if method == "OPTIONS" and self.answer_options(request):
            return None
        path, _, _query = head.path.partition("?")
        if self.websockets:  # one test of an empty dict when no endpoint is mounted
            factory = self.websockets.get(path)
            if factory is not None:
                return self.websocket.route(conn, request, factory)
            if head.connection_options and websocket.is_handshake(head):
                raise HTTPError(404, "no WebSocket endpoint at %s" % path[:100])
        if path == self.config.status_path:  # --status-path; None (off) matches no path
            return self.status.route(conn, request)
        if path == UPLOAD_PATH:
            if self.config.uploads:
                return self.upload.route(request)
            if method == "POST":
                raise HTTPError(405, "this server is read-only (--no-uploads)", headers=(("Allow", static.ALLOW),))
        return self.static.route(conn, request)

    def answer_options(self, request: Request) -> bool:
        """Route an OPTIONS request the server answers itself; True if it did.

        A CORS preflight with ``--cors`` (:func:`reactor.handlers.cors.preflight`), or
        ``OPTIONS *``, which asks about the server, not a resource (RFC 9110 §9.3.7; the
        parser admits the asterisk-form for OPTIONS only): 204 with ``Allow``.
        """
        head = request.head
        assert head is not None
        if self.config.cors:
            answer = cors.preflight(head)
            if answer is not None:
                request.route = functools.partial(fixed, answer)
                return True
        if head.target_form is _ASTERISK:
            request.route = functools.partial(fixed, Response(204, [("Allow", cors.METHODS)]))
            return True
        return False

    def mount_websocket(self, path: str, factory: websocket.Factory) -> None:
        """Serve WebSocket connections at ``path``, one handler from ``factory()`` per connection.

        For code that adds an endpoint of its own (``--websocket`` mounts them from the
        command line). Loop thread, or before serving. Raises ValueError for a path that
        does not start with ``/`` or has a query.
        """
        self.websocket.mount(path, factory)

    def _route_live(self, conn: Connection, request: Request) -> Optional[Response]:
        """:meth:`route` with ``--live-reload``: the client script, then the rest (its socket is an endpoint).

        Raises HTTPError (403 for a foreign Host, 404, 405) as :meth:`route` does.
        """
        head = request.head
        assert head is not None and self.live is not None
        if head.path.startswith(livereload.PREFIX):
            path = head.path.partition("?")[0]
            if path == livereload.SCRIPT_PATH:
                self.check_host(head.authority, conn)
                if head.method not in ("GET", "HEAD"):
                    raise HTTPError(405, "%s is not allowed here" % head.method[:32], headers=(("Allow", "GET, HEAD"),))
                request.route = functools.partial(fixed, self.live.script())
                return None
            if path != livereload.SOCKET_PATH:
                self.check_host(head.authority, conn)
                raise HTTPError(404, "no such file")
        return Application.route(self, conn, request)

    def check_host(self, authority: Optional[str], conn: Optional[Connection] = None) -> None:
        """Refuse a Host this server does not answer to (403), against DNS rebinding.

        Accepted: ``localhost:PORT``, ``127.0.0.1:PORT``, ``<--host>:PORT``, each
        ``--allow-host`` value (a name alone matches any port; ``*`` turns the check
        off), and ``<conn.local_host>:PORT``, the IP literal the connection arrived on
        (``[…]`` for IPv6): naming it needs no DNS, so it cannot be a rebinding.
        HTTP/1.0 requests without Host carry no name to check and pass.
        """
        # The allowed authorities are lower-case, as nearly every client sends them: an
        # exact match needs no lower-casing.
        if authority is None or self.any_host or authority in self.allowed_authorities:
            return
        value = authority.lower()
        if value in self.allowed_authorities:
            return
        if self.allowed_names:
            name = _strip_port(value)
            if name in self.allowed_names:
                return
        local = conn.local_host if conn is not None else ""
        if local and value in local_authorities(local, self.port, self.default_port):
            return  # read only on this slow path: the common Host values matched above
        raise HTTPError(403, "Host %r is not allowed; use --allow-host to permit it" % authority[:100])


def fixed(response: Response, conn: Connection, request: Request) -> Response:
    """A handler whose answer was known when the request was routed (OPTIONS, a preflight)."""
    return response


def local_authorities(local_host: str, port: int, default_port: int = 80) -> "tuple[str, ...]":
    """The Host values naming the IP ``local_host`` (from getsockname) and ``port``.

    ``"192.0.2.7"`` gives ``192.0.2.7:PORT``; ``"::1"`` gives ``[::1]:PORT``; an
    IPv4-mapped ``"::ffff:192.0.2.7"`` (an IPv4 client on a dual-stack ``::`` socket)
    gives both forms. On ``default_port`` (80, or 443 for HTTPS) the forms without a
    port are accepted too, as browsers send them.
    """
    ip = local_host.split("%", 1)[0].lower()  # a zone (fe80::1%eth0) never appears in Host
    names = ["[%s]" % ip if ":" in ip else ip]
    if ip.startswith("::ffff:") and "." in ip:
        names.append(ip[len("::ffff:") :])
    forms = ["%s:%d" % (name, port) for name in names]
    if port == default_port:
        forms.extend(names)
    return tuple(forms)


def allowed_hosts(
    host: str, port: int, extra: "tuple[str, ...]", default_port: int = 80
) -> "tuple[FrozenSet[str], FrozenSet[str]]":
    """The exact authorities and the port-less names the Host field may carry.

    On ``default_port`` (80, or 443 for HTTPS) the names without a port are accepted too.
    """
    names = {"localhost", "127.0.0.1", host.lower()}
    if ":" in host and not host.startswith("["):
        names.add("[%s]" % host.lower())  # an IPv6 literal appears bracketed in Host
    authorities = {"%s:%d" % (name, port) for name in names}
    if port == default_port:
        authorities.update(names)  # browsers omit the default port
    bare = set()
    for value in extra:
        value = value.strip().lower()
        if not value:
            continue
        if _strip_port(value) != value:
            authorities.add(value)
        else:
            bare.add(value)
    return frozenset(authorities), frozenset(bare)


def _strip_port(authority: str) -> str:
    if authority.startswith("["):
        end = authority.find("]")
        return authority[: end + 1] if end >= 0 else authority
    return authority.rsplit(":", 1)[0] if ":" in authority else authority

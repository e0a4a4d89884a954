"""WebSocket endpoints: mounted by path, their opening handshake answered by the HTTP exchange (RFC 6455 §4.2).

An endpoint is a path and a factory that makes one handler per connection
(:class:`reactor.websocket.Handler`). ``--websocket PATH=MODULE:FACTORY`` mounts one from
the command line; :meth:`Endpoints.mount` (and :meth:`reactor.handlers.Application.mount_websocket`)
from code.

A GET to a mounted path is checked as a handshake, each fault with its own answer, so a
client can tell what it did wrong:

- another method: 405 with ``Allow: GET``; HTTP/1.0, or a message body: 400;
- no ``Upgrade`` field: 426 with ``Upgrade: websocket`` (a browser that opened the URL);
  an ``Upgrade`` without the ``websocket`` token, or a ``Connection`` without the
  ``upgrade`` option: 400;
- a ``Sec-WebSocket-Version`` missing or other than 13: 426 with ``Sec-WebSocket-Version: 13``;
- a ``Sec-WebSocket-Key`` that is not 16 bytes in base64 (or not exactly one): 400;
- an ``Origin`` that is neither the request's own ``scheme://Host`` nor one given with
  ``--websocket-origin``: 403. Browsers always send Origin on a WebSocket handshake, so
  this is what stops another site's page from talking to the endpoint with the user's
  cookies (the fault of webpack-dev-server's CVE-2018-14732); a client that is not a
  browser sends none and passes.

A subprotocol is chosen only among those the client offers, in the order of the
factory's ``subprotocols`` (if it has that attribute); extension offers are ignored
(none is implemented). The answer is a ``101`` whose upgrade makes a
:class:`~reactor.wsconnection.WebSocketSession` for the handler the factory made. A
handshake to a path where nothing is mounted is 404 (once any endpoint is: a server without
endpoints ignores ``Upgrade`` as RFC 9110 §7.8 allows, and pays nothing for this rule).
"""

from __future__ import annotations

import base64
import binascii
import functools
import importlib
import re
from typing import Callable, Dict, FrozenSet, List, Optional, Tuple

from reactor.config import Config
from reactor.connection import Connection, Request
from reactor.errors import HTTPError
from reactor.events import RequestHead
from reactor.response import Response
from reactor.websocket import Handler, accept_key
from reactor.wsconnection import WebSocketSession

#: An endpoint's factory: called with no arguments once per connection, it returns the handler.
Factory = Callable[[], Handler]

VERSION = "13"  # RFC 6455 §4.1
_UPGRADE_FIELDS = (("Upgrade", "websocket"), ("Connection", "Upgrade"))
_VERSION_FIELDS = (*_UPGRADE_FIELDS, ("Sec-WebSocket-Version", VERSION))
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")
_PORT = re.compile(r"[0-9]{1,5}")
_DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}


def _tokens(value: Optional[str]) -> List[str]:
    """A comma-separated list's members, stripped (RFC 9110 §5.6.1); empty ones dropped."""
    if not value:
        return []
    return [token.strip() for token in value.split(",") if token.strip()]


def is_handshake(head: RequestHead) -> bool:
    """True for a request that asks for a WebSocket: ``Connection: upgrade`` and ``websocket`` in ``Upgrade``."""
    return "upgrade" in head.connection_options and "websocket" in (
        token.lower() for token in _tokens(head.get("upgrade"))
    )


def origin_of(value: str) -> Optional[str]:
    """An origin (RFC 6454 §6.2: ``scheme://host[:port]``) made comparable, or None if ``value`` is not one.

    Scheme and host are lower-cased and a default port is dropped, so
    ``HTTP://Example.com:80`` and ``http://example.com`` are the same origin. ``null``,
    and anything with a path, a query, userinfo or a port that is not a number, is None.
    """
    scheme, sep, rest = value.strip().partition("://")
    scheme = scheme.lower()
    if not sep or not _SCHEME.fullmatch(scheme):
        return None
    return _authority(scheme, rest)


def _authority(scheme: str, authority: str) -> Optional[str]:
    """``scheme://host[:port]`` lower-cased without a default port, or None for a malformed authority."""
    authority = authority.lower()
    if not authority or any(char in authority for char in "/?#@ \t\\"):
        return None
    host, port = authority, ""
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0 or authority[end + 1 :] and not authority[end + 1 :].startswith(":"):
            return None
        host, port = authority[: end + 1], authority[end + 2 :]
    elif ":" in authority:
        host, _, port = authority.rpartition(":")
    if not host or ":" in host and not host.startswith("["):
        return None
    if port:
        if not _PORT.fullmatch(port) or int(port) > 65535:
            return None
        port = str(int(port))
        if port == _DEFAULT_PORTS.get(scheme):
            port = ""
    return "%s://%s%s" % (scheme, host, ":" + port if port else "")


def load_factory(spec: str) -> Factory:
    """Import ``MODULE:NAME`` (NAME may be dotted: ``module:Class.attribute``) and return it.

    Raises ValueError with one line saying what is wrong (the CLI prints it).
    """
    module_name, colon, name = spec.partition(":")
    if not colon or not module_name or not name:
        raise ValueError("%r is not MODULE:FACTORY" % spec)
    try:
        target: object = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError("cannot import %s: %s" % (module_name, exc)) from None
    for part in name.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ValueError("%s has no %s" % (module_name, name)) from None
    if not callable(target):
        raise ValueError("%s is not callable: it must make a handler per connection" % spec)
    return target


def parse_endpoint(text: str) -> Tuple[str, str]:
    """``"/chat=chat:Room"`` → ``("/chat", "chat:Room")``. Raises ValueError for another shape."""
    path, equals, spec = text.partition("=")
    if not equals or not path.startswith("/") or any(char in path for char in "?# "):
        raise ValueError("expected PATH=MODULE:FACTORY with PATH starting with '/' (no '?' or '#'), not %r" % text)
    if ":" not in spec:
        raise ValueError("expected PATH=MODULE:FACTORY, not %r" % text)
    return path, spec


class Endpoints:
    """The WebSocket endpoints by path, and the handshake rules they share.

    ``factories`` maps a path (without query) to its factory; the application reads it
    to route. Made from ``config.websocket_endpoints`` (raises ValueError when one cannot
    be imported) and ``config.websocket_origins``.
    """

    def __init__(self, config: Config) -> None:
        self.factories: Dict[str, Factory] = {}
        origins = {origin_of(value) for value in config.websocket_origins}
        if None in origins:
            raise ValueError("--websocket-origin takes scheme://host[:port] values")
        self.origins: FrozenSet[str] = frozenset(origin for origin in origins if origin is not None)
        for path, spec in config.websocket_endpoints:
            self.mount(path, load_factory(spec))

    def mount(self, path: str, factory: Factory) -> None:
        """Serve WebSocket connections at ``path`` with a handler from ``factory()`` each (replacing any there).

        Raises ValueError for a path that does not start with ``/`` or has a query.
        """
        if not path.startswith("/") or "?" in path or "#" in path:
            raise ValueError("a WebSocket endpoint's path starts with '/' and has no query: %r" % path)
        self.factories[path] = factory

    def route(self, conn: Connection, request: Request, factory: Factory) -> Optional[Response]:
        """Answer a request to a mounted path: a refusal (HTTPError), or ``request.route`` set to the 101."""
        head = request.head
        assert head is not None
        fields, subprotocol = self.handshake(head, conn.secure, getattr(factory, "subprotocols", ()))
        handler = factory()
        upgrade = functools.partial(WebSocketSession, conn.ctx, handler, head, subprotocol)
        response = Response(101, fields, upgrade=upgrade)
        request.route = lambda conn, request: response
        return None

    def handshake(
        self, head: RequestHead, secure: bool, subprotocols: "Tuple[str, ...]" = ()
    ) -> "Tuple[List[Tuple[str, str]], Optional[str]]":
        """Check an opening handshake (RFC 6455 §4.2.1); return the 101's fields and the subprotocol chosen.

        Raises HTTPError: 405, 400, 426 or 403 as the module's docstring lists.
        """
        if head.method != "GET":
            raise HTTPError(405, "a WebSocket handshake is a GET", headers=(("Allow", "GET"),))
        if head.http_version != "1.1":
            raise HTTPError(400, "a WebSocket handshake needs HTTP/1.1")
        if head.has_body:
            raise HTTPError(400, "a WebSocket handshake has no message body")
        upgrade = head.get("upgrade")
        if upgrade is None:
            raise HTTPError(426, "this is a WebSocket endpoint: send Upgrade: websocket", headers=_VERSION_FIELDS)
        if "websocket" not in (token.lower() for token in _tokens(upgrade)):
            raise HTTPError(400, "Upgrade must name websocket")
        if "upgrade" not in head.connection_options:
            raise HTTPError(400, "Connection must list upgrade")
        if head.get("sec-websocket-version") != VERSION:
            raise HTTPError(426, "Sec-WebSocket-Version must be 13", headers=_VERSION_FIELDS)
        keys = [value for name, value in head.fields if name == "sec-websocket-key"]
        if len(keys) != 1 or not _is_key(keys[0]):
            raise HTTPError(400, "Sec-WebSocket-Key must be one 16-byte value in base64")
        origins = [value for name, value in head.fields if name == "origin"]
        if origins and not self.origin_allowed(origins, secure, head.authority):
            raise HTTPError(403, "Origin %r may not open a WebSocket here; see --websocket-origin" % origins[0][:100])
        fields = [*_UPGRADE_FIELDS, ("Sec-WebSocket-Accept", accept_key(keys[0]))]
        offered = _tokens(", ".join(value for name, value in head.fields if name == "sec-websocket-protocol"))
        chosen = next((name for name in subprotocols if name in offered), None)
        if chosen is not None:
            fields.append(("Sec-WebSocket-Protocol", chosen))
        return fields, chosen

    def origin_allowed(self, values: List[str], secure: bool, authority: Optional[str]) -> bool:
        """True if the one ``Origin`` value is the request's own ``scheme://Host`` or listed with ``--websocket-origin``.

        Under TLS the own origin is ``https://``; the comparison is that of
        :func:`origin_of` (case-insensitive scheme and host, default ports dropped).
        """
        if len(values) != 1:
            return False
        origin = origin_of(values[0])
        if origin is None:  # "null" (a sandboxed page, a file: URL) or not an origin at all
            return False
        if origin in self.origins:
            return True
        return authority is not None and origin == _authority("https" if secure else "http", authority)


def _is_key(value: str) -> bool:
    """True for a Sec-WebSocket-Key: 16 bytes in base64 (RFC 6455 §4.1 item 7)."""
    try:
        return len(base64.b64decode(value.strip(), validate=True)) == 16
    except (binascii.Error, ValueError):
        return False

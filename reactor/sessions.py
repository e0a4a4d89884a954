"""The table of sessions: what the server holds for each open client, whatever protocol it speaks.

A session is one client's conversation over one transport: an HTTP/1.1 exchange
(:class:`reactor.connection.Connection`), or, after a protocol switch (a ``101``), the
protocol the exchange handed its transport to. The server needs very little of any of
them, and this module says exactly what (:class:`Session`): an id and a peer for the
logs, a label and a phase for the status page, and three ways to end it, from the
bluntest to the politest.

The table is a dict from id to session with three moves: :meth:`SessionTable.add` at
accept, :meth:`SessionTable.replace` at a protocol switch (same id, new session), and
:meth:`SessionTable.discard` when a session ends. Whoever owns the table hears of each
change through ``changed``; the server uses it to publish its open count and to finish
a graceful stop when the last session is gone.
"""

from __future__ import annotations

import typing
from typing import Callable, Dict, Optional


class InvalidTransition(RuntimeError):
    """A change of state that a session's ``NEXT`` table does not allow (a bug in the server)."""


class Protocol(typing.Protocol):
    """What a transport (:mod:`reactor.transport`) calls on the protocol above it: asyncio's Protocol, in small.

    ``connection_made()`` when bytes can flow (after the TLS handshake; after a protocol
    switch, on the next loop pass); ``data_received(data)`` and ``eof_received()`` with
    what arrives; ``write_drained()`` when all output is in the kernel;
    ``connection_lost(exc)`` once, when the socket failed (the transport is closed then).
    """

    def connection_made(self) -> None: ...

    def data_received(self, data: bytes) -> None: ...

    def eof_received(self) -> None: ...

    def write_drained(self) -> None: ...

    def connection_lost(self, exc: BaseException) -> None: ...


class Session(Protocol, typing.Protocol):
    """What the server's table holds: one client's conversation, of any protocol, over one transport.

    - ``id``: unique in this process, the connection number in every log line;
    - ``peer``: the client's address;
    - ``label``: the protocol, ``"http"`` or ``"websocket"`` (the status page counts by it);
    - ``phase()``: the name of the state it is in (``"idle"``, ``"open"``, ...);
    - ``close()``: end now, politely at the transport level (flush what is queued);
    - ``abort()``: end now, dropping whatever is queued;
    - ``go_away()``: the server is stopping: finish what is under way and end, the
      protocol's own way (HTTP: close if idle, else ``Connection: close`` on the next
      response; WebSocket: a Close frame with 1001). Called once; must not block.
    """

    id: int

    @property
    def peer(self) -> str: ...

    @property
    def label(self) -> str: ...

    def phase(self) -> str: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...

    def go_away(self) -> None: ...


class SessionTable(Dict[int, Session]):
    """The open sessions by id; ``changed()`` is called after every add, replace and discard."""

    def __init__(self, changed: Optional[Callable[[], None]] = None) -> None:
        super().__init__()
        self.changed = changed

    def add(self, session: Session) -> None:
        self[session.id] = session
        if self.changed is not None:
            self.changed()

    def replace(self, old: Session, new: Session) -> None:
        """A protocol switch: ``new`` takes ``old``'s place (and id). Raises KeyError if ``old`` is not here."""
        if self.get(old.id) is not old:
            raise KeyError("session #%d is not in the table" % old.id)
        self[new.id] = new
        if new.id != old.id:
            del self[old.id]
        if self.changed is not None:
            self.changed()

    def discard(self, session: Session) -> None:
        """``session`` ended; a no-op if it is not (or no longer) here."""
        if self.get(session.id) is session:
            del self[session.id]
            if self.changed is not None:
                self.changed()

    def by_label(self) -> Dict[str, int]:
        """How many sessions of each protocol are open: ``{"http": 3, "websocket": 1}``."""
        counts: Dict[str, int] = {}
        for session in self.values():
            counts[session.label] = counts.get(session.label, 0) + 1
        return counts

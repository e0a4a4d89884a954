#!/usr/bin/env python3
"""Write the WebSocket session's state diagram and tables in docs/websocket.md from the code.

Everything comes from :mod:`reactor.wsconnection`: the states and their comments from
``WsState``, the arrows from ``NEXT``, the first state from ``WebSocketSession.__init__``.
Each arrow says what causes it: ``docs/statemoves.py`` follows the state through the
session's methods to find which method makes each move, and :data:`CAUSES` words them.
tests/test_docs.py fails until the page matches.

    python3 docs/make_websocket_diagram.py            # rewrite the generated blocks
    python3 docs/make_websocket_diagram.py --check    # exit 1 if they are stale
"""

from __future__ import annotations

import ast
import inspect
import sys
from typing import Dict, Optional

import docgen
import statemoves
from make_supervisor_diagram import comments

from reactor import wsconnection
from reactor.wsconnection import NEXT, WebSocketSession, WsState

#: What each method that moves a session stands for ("method: from -> to" words one arrow;
#: None strikes out a move the analysis allows but the code cannot make).
CAUSES: Dict[str, Optional[str]] = {
    "connection_made": "the transport is handed over (the next loop pass)",
    "close": "close(code): the handler's, a stop's 1001, a silent peer's 1011, a slow receiver's 1008, a handler's error 1011",
    "_on_close_frame": "the peer's Close, echoed",
    "_on_close_frame: closing -> lingering": "the peer's Close",
    "_fail": "a malformed frame: Close 1002, 1007 or 1009 sent",
    "_fail: closing -> lingering": "a malformed frame",
    "eof_received": "EOF without a Close",
    "eof_received: lingering -> closed": "the peer's EOF",
    "eof_received: opening -> closed": None,  # the transport does not read before connection_made
    "_on_timer": "no Close back within websocket_close_timeout_s",
    "_on_timer: lingering -> closed": "no EOF within linger_timeout_s",
    "connection_lost": "the socket failed",
}
#: ``abort`` is public: the server calls it from any state when a stop runs out of time.
FROM_OUTSIDE = ["a stop past --shutdown-timeout"]


def initial_state() -> WsState:
    """The state ``WebSocketSession.__init__`` assigns to ``self.state``."""
    tree = ast.parse(inspect.getsource(WebSocketSession.__init__).strip())
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Attribute) and t.attr == "state" for t in node.targets)
            and isinstance(node.value, ast.Name)
        ):
            return getattr(wsconnection, node.value.id)  # type: ignore[no-any-return]
    raise LookupError("WebSocketSession.__init__ assigns no initial state")


def machine() -> statemoves.Machine:
    """The session as :mod:`statemoves` reads it: ``abort`` only carries the move for its callers."""
    return statemoves.Machine(
        wsconnection,
        WsState,
        NEXT,
        "WebSocketSession",
        setters={"set_state": 0},
        subjects=("state", "self.state"),
        carriers=("abort",),
    )


def render() -> docgen.Blocks:
    found = machine().causes()
    labels, _anywhere = statemoves.worded(found, CAUSES)
    order = list(WsState)
    notes = comments(WsState)
    table = docgen.table(
        ["state", "meaning", "leaves to"],
        [
            [
                "`%s`" % state.value,
                notes.get(state, ""),
                ", ".join(s.value for s in sorted(NEXT[state], key=order.index)) or "—",
            ]
            for state in order
        ],
    )
    causes = docgen.table(
        ["the arrow says", "method (in `reactor.wsconnection`)", "arrows"],
        statemoves.legend(found, CAUSES, "WebSocketSession", order),
    )
    diagram = statemoves.diagram(WsState, NEXT, initial_state(), labels, (WsState.CLOSED, FROM_OUTSIDE))
    return {
        "websocket.md": {"ws-diagram": diagram, "ws-causes": causes, "ws-table": table},
        "second-protocol.md": {"ws-diagram": diagram},  # the book's chapter 9 draws it too
    }


if __name__ == "__main__":
    sys.exit(docgen.main(render))

#!/usr/bin/env python3
"""Write the connection state diagram and table in docs/states.md from the code.

Everything comes from :mod:`reactor.connection`: the states and their comments from
``ConnState``, the arrows from ``NEXT``, the first state from ``Connection.__init__``,
which methods call ``set_state`` with each state, and which timeout each state arms
(``reactor.connection.TIMEOUT_FIELDS``, and ``self._arm(...config.<field>)`` under a test
of that state). Each arrow is labelled
with what causes it: `docs/statemoves.py` follows the state through each method of
``Connection`` (narrowed by ``if state is ...`` tests and by ``set_state`` calls) to
learn in which states each call to ``set_state``, ``respond``, ``close`` or ``abort`` can
happen, and :data:`CAUSES` says in words what each calling method stands for. Run it
after changing any of those; tests/test_docs.py fails until the committed page matches.

    python3 docs/make_state_diagram.py            # rewrite the generated blocks
    python3 docs/make_state_diagram.py --check    # exit 1 if they are stale
"""

from __future__ import annotations

import ast
import inspect
import io
import sys
import tokenize
from typing import Dict, List, Optional, Set

import docgen
import statemoves

from reactor import connection
from reactor.config import Config
from reactor.connection import NEXT, ConnState

COMMAND = "python3 docs/make_state_diagram.py"


def _source_tree() -> ast.Module:
    return ast.parse(inspect.getsource(connection))


def state_comments() -> Dict[ConnState, str]:
    """The trailing comment of each member in ``class ConnState``."""
    source = inspect.getsource(ConnState)
    comments: Dict[ConnState, str] = {}
    pending: Optional[ConnState] = None
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.NAME and token.string in ConnState.__members__ and token.start[1] == 4:
            pending = ConnState[token.string]
        elif token.type == tokenize.COMMENT and pending is not None:
            comments[pending] = token.string.lstrip("#").strip()
            pending = None
        elif token.type == tokenize.NEWLINE:
            pending = None
    return comments


def _state_of(node: ast.AST) -> Optional[ConnState]:
    """The ConnState a name like ``_IDLE`` or ``ConnState.IDLE`` stands for, if any."""
    if isinstance(node, ast.Name):
        value = getattr(connection, node.id, None)
    elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "ConnState":
        value = ConnState.__members__.get(node.attr)
    else:
        return None
    return value if isinstance(value, ConnState) else None


def _states_of(node: ast.AST) -> Set[ConnState]:
    """The states an argument of ``set_state`` can be: one name, or ``A if test else B``."""
    if isinstance(node, ast.IfExp):
        return _states_of(node.body) | _states_of(node.orelse)
    state = _state_of(node)
    return {state} if state is not None else set()


def initial_state() -> ConnState:
    """The state ``Connection.__init__`` assigns to ``self.state``."""
    for node in ast.walk(_source_tree()):
        if isinstance(node, ast.FunctionDef) and node.name == "__init__":
            for stmt in ast.walk(node):
                if (
                    isinstance(stmt, ast.Assign)
                    and any(isinstance(t, ast.Attribute) and t.attr == "state" for t in stmt.targets)
                    and _state_of(stmt.value) is not None
                ):
                    return _state_of(stmt.value)  # type: ignore[return-value]
    raise LookupError("Connection.__init__ assigns no initial state")


class _Scan(ast.NodeVisitor):
    """Who calls ``set_state(X)``, and which ``_arm(config.field)`` runs under ``X`` tests."""

    def __init__(self) -> None:
        self.functions: List[str] = []
        self.in_function = False
        self.conditions: List[Set[ConnState]] = []
        self.setters: Dict[ConnState, Set[str]] = {state: set() for state in ConnState}
        self.timers: Dict[ConnState, Set[str]] = {
            state: {field} if field else set() for state, field in connection.TIMEOUT_FIELDS.items()
        }

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.functions.append(node.name)
        self.generic_visit(node)
        self.functions.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        nested = self.in_function  # a closure counts as its method (Connection.run_in_pool)
        if not nested:
            self.functions.append(node.name)
        self.in_function = True
        self.generic_visit(node)
        self.in_function = nested
        if not nested:
            self.functions.pop()

    def visit_If(self, node: ast.If) -> None:
        tested = {
            state
            for compare in ast.walk(node.test)
            if isinstance(compare, ast.Compare) and all(isinstance(op, ast.Is) for op in compare.ops)
            for operand in [compare.left, *compare.comparators]
            for state in [_state_of(operand)]
            if state is not None
        }
        self.visit(node.test)
        self.conditions.append(tested)
        for stmt in node.body:
            self.visit(stmt)
        self.conditions.pop()
        for stmt in node.orelse:
            self.visit(stmt)

    def visit_Call(self, node: ast.Call) -> None:
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        if name == "set_state" and node.args:
            for state in _states_of(node.args[0]):
                self.setters[state].add(".".join(self.functions))
        elif name == "_arm" and node.args and isinstance(node.args[0], ast.Attribute):
            field = node.args[0].attr
            tested = [states for states in self.conditions if states]  # the nearest test of the state
            for state in tested[-1] if tested else set():
                self.timers[state].add(field)
        self.generic_visit(node)


#: What each method that moves a connection stands for, as the arrows say it; a key
#: "method: from -> to" words one arrow differently, or with None removes a move the
#: analysis allows but the code cannot make. The generator fails if a method it finds is
#: missing here, or if a key here names no move it finds.
CAUSES: Dict[str, Optional[str]] = {
    "connection_made": "transport ready",
    "data_received": "first bytes",
    "eof_received": "client closed",
    "_on_timer": "timeout",
    "_on_head": "head announces a body",
    "_on_head: reading-body -> writing": "refused from the head",
    "_on_request_end": "request complete, answered on the loop",
    "run_in_pool": "worker pool makes the answer",
    "run_in_pool: responding -> writing": "pool result (or 503, the pool is full)",
    "respond_when": "waits for a compression under way",
    "respond_when: responding -> writing": "the shared compression is done",
    "_fail": "bad input or timeout, error response",
    "_response_done": "response sent, keep-alive",
    "_response_done: writing -> reading-headers": "response sent, next request already buffered",
    "_hand_over": "101 sent: protocol switch",
    "go_away": "server stopping, idle",
    "_close_after_response": "response sent, close",
    "_close_after_response: writing -> closing": "response sent, close, input may follow",
    "_run": "EndOfStream",
    "_run: reading-body -> closed": None,  # EndOfStream comes only between requests
    "connection_lost": "socket error",
    "_internal_error": "a bug (500)",
}
#: ``close`` and ``abort`` are public: the server calls them too when it stops.
FROM_OUTSIDE = ["server stopping"]


def _timer_states() -> Set[ConnState]:
    scan = _Scan()
    scan.visit(_source_tree())
    return {state for state in ConnState if scan.timers[state]}


def machine() -> statemoves.Machine:
    """Connection's machine as :mod:`statemoves` reads it.

    ``close``, ``abort``, ``respond`` and ``_send`` only carry a move out for their callers, so the
    arrows name the callers. ``_on_timer`` runs only in a state that arms a timer.
    """
    return statemoves.Machine(
        connection,
        ConnState,
        NEXT,
        "Connection",
        setters={"set_state": 0},
        subjects=("state", "self.state"),
        carriers=("close", "abort", "respond", "_send"),
        domains={"_on_timer": _timer_states()},
    )


def edge_causes() -> "tuple[Dict[tuple, List[str]], List[str]]":
    """({(from, to): causes in words}, the causes that can close from any state)."""
    words, anywhere = statemoves.worded(machine().causes(), CAUSES, ConnState.CLOSED)
    return words, anywhere + FROM_OUTSIDE


def render_diagram() -> str:
    words, anywhere = edge_causes()
    return statemoves.diagram(ConnState, NEXT, initial_state(), words, (ConnState.CLOSED, anywhere))


def render_table() -> str:
    scan = _Scan()
    scan.visit(_source_tree())
    comments = state_comments()
    defaults = Config(max_connections=1)
    rows = []
    for state in ConnState:
        entered_from = [s.value for s in ConnState if state in NEXT[s]]
        timers = ", ".join("`%s` (%s s)" % (field, getattr(defaults, field)) for field in sorted(scan.timers[state]))
        rows.append(
            [
                "`%s`" % state.value,
                comments.get(state, ""),
                timers or "none",
                ", ".join(entered_from) or "(start)",
                ", ".join("`%s`" % f for f in sorted(scan.setters[state])) or "—",
                ", ".join(s.value for s in sorted(NEXT[state], key=list(ConnState).index)) or "—",
            ]
        )
    return docgen.table(
        ["state", "meaning", "timeout armed", "entered from", "set by (in `reactor.connection`)", "leaves to"], rows
    )


def render_causes() -> str:
    """Which method each arrow's words stand for, so a reader can find the code."""
    rows = statemoves.legend(machine().causes(), CAUSES, "Connection", list(ConnState))
    return docgen.table(["the arrow says", "method (in `reactor.connection`)", "arrows"], rows)


def render() -> docgen.Blocks:
    return {
        "states.md": {
            "states-diagram": render_diagram(),
            "states-causes": render_causes(),
            "states-table": render_table(),
        }
    }


if __name__ == "__main__":
    sys.exit(docgen.main(render))

#!/usr/bin/env python3
"""Write the connection state diagram and table in docs/states.md from the code.

Everything comes from :mod:`reactor.connection`: the states and their comments from
``ConnState``, the arrows from ``NEXT``, the first state from ``Connection.__init__``,
which methods call ``set_state`` with each state, and which timeout each state arms
(``self._arm(...config.<field>)`` under a test of that state). Run it after changing
any of those; tests/test_docs.py fails until the committed page matches.

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
        self.timers: Dict[ConnState, Set[str]] = {state: set() for state in ConnState}

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
            state = _state_of(node.args[0])
            if state is not None:
                self.setters[state].add(".".join(self.functions))
        elif name == "_arm" and node.args and isinstance(node.args[0], ast.Attribute):
            field = node.args[0].attr
            for state in (self.conditions[-1] if self.conditions else set()):
                self.timers[state].add(field)
        self.generic_visit(node)


def render_diagram() -> str:
    order = list(ConnState)
    lines = ["```mermaid", "stateDiagram-v2", "    [*] --> %s" % initial_state().name]
    for state in order:
        lines.append('    state "%s" as %s' % (state.value, state.name))
    for state in order:
        for target in sorted(NEXT[state], key=order.index):
            lines.append("    %s --> %s" % (state.name, target.name))
        if not NEXT[state]:
            lines.append("    %s --> [*]" % state.name)
    lines.append("```")
    return "\n".join(lines) + "\n"


def render_table() -> str:
    scan = _Scan()
    scan.visit(_source_tree())
    comments = state_comments()
    defaults = Config(max_connections=1)
    rows = []
    for state in ConnState:
        entered_from = [s.value for s in ConnState if state in NEXT[s]]
        timers = ", ".join(
            "`%s` (%s s)" % (field, getattr(defaults, field)) for field in sorted(scan.timers[state])
        )
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


def render() -> docgen.Blocks:
    return {"states.md": {"states-diagram": render_diagram(), "states-table": render_table()}}


if __name__ == "__main__":
    sys.exit(docgen.main(render))

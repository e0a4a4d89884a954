#!/usr/bin/env python3
"""Write the connection state diagram and table in docs/states.md from the code.

Everything comes from :mod:`reactor.connection`: the states and their comments from
``ConnState``, the arrows from ``NEXT``, the first state from ``Connection.__init__``,
which methods call ``set_state`` with each state, and which timeout each state arms
(``self._arm(...config.<field>)`` under a test of that state). Each arrow is labelled
with what causes it: :class:`_Moves` follows the state through each method of
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
            for state in _states_of(node.args[0]):
                self.setters[state].add(".".join(self.functions))
        elif name == "_arm" and node.args and isinstance(node.args[0], ast.Attribute):
            field = node.args[0].attr
            tested = [states for states in self.conditions if states]  # the nearest test of the state
            for state in (tested[-1] if tested else set()):
                self.timers[state].add(field)
        self.generic_visit(node)

ALL = frozenset(ConnState)

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
    "_fail": "bad input or timeout, error response",
    "_response_done": "response sent, keep-alive",
    "_response_done: writing -> reading-headers": "response sent, next request already buffered",
    "_close_after_response": "response sent, close",
    "_close_after_response: writing -> closing": "response sent, close, input may follow",
    "_run": "EndOfStream",
    "_run: reading-body -> closed": None,  # EndOfStream comes only between requests
    "connection_lost": "socket error",
    "_internal_error": "a bug (500)",
}
#: ``close`` and ``abort`` are public: the server calls them too when it stops.
FROM_OUTSIDE = ["server stopping"]

#: Methods that only carry a move out for their callers: the arrow names the caller.
_CARRIERS = frozenset({"close", "abort", "respond"})
_EXITS = (ast.Return, ast.Break, ast.Continue, ast.Raise)


def _is_state(node: ast.AST) -> bool:
    """``state`` (the local copy) or ``self.state``."""
    return (isinstance(node, ast.Name) and node.id == "state") or (
        isinstance(node, ast.Attribute) and node.attr == "state" and isinstance(node.value, ast.Name)
    )


def _test_states(test: ast.AST) -> "tuple[frozenset, frozenset]":
    """(states in which ``test`` can be true, states in which it can be false)."""
    if isinstance(test, ast.BoolOp):
        parts = [_test_states(value) for value in test.values]
        if isinstance(test.op, ast.Or):
            return frozenset().union(*(t for t, _ in parts)), frozenset(ALL).intersection(*(f for _, f in parts))
        return frozenset(ALL).intersection(*(t for t, _ in parts)), frozenset().union(*(f for _, f in parts))
    if isinstance(test, ast.Compare) and len(test.ops) == 1 and _is_state(test.left):
        op, right = test.ops[0], test.comparators[0]
        if isinstance(op, (ast.Is, ast.IsNot)) and _state_of(right) is not None:
            named = frozenset({_state_of(right)})
        elif isinstance(op, (ast.In, ast.NotIn)) and isinstance(right, ast.Name):
            value = getattr(connection, right.id, None)
            if not (isinstance(value, frozenset) and all(isinstance(s, ConnState) for s in value)):
                return ALL, ALL
            named = value
        else:
            return ALL, ALL
        if isinstance(op, (ast.Is, ast.In)):
            return named, ALL - named
        return ALL - named, named
    return ALL, ALL


class _Moves:
    """In which states each method of ``Connection`` calls what (a small abstract interpretation).

    A method called by nothing in the class (the transport's callbacks, the timer, the
    handlers' ``run_in_pool``) may run in any state; ``_on_timer`` only in a state that
    arms a timer; any other method in the states its callers call it in. Inside a
    method the states narrow under ``if`` tests of the state, after a test that
    returns, and after a ``set_state``. A closure runs in the states where it is
    defined (``run_in_pool``'s callback, defined after it moved to RESPONDING).
    """

    def __init__(self, timer_states: Set[ConnState]) -> None:
        cls = next(
            node for node in _source_tree().body if isinstance(node, ast.ClassDef) and node.name == "Connection"
        )
        self.methods = {node.name: node for node in cls.body if isinstance(node, ast.FunctionDef)}
        self.timer_states = frozenset(timer_states)
        self.domains: Dict[str, frozenset] = {}
        self.calls: Dict[str, List["tuple[str, frozenset]"]] = {}  # callee -> [(caller, states)]
        self.moves: List["tuple[str, frozenset, frozenset]"] = []  # (method, states before, targets)
        called = {
            node.func.attr
            for method in self.methods.values()
            for node in ast.walk(method)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name) and node.func.value.id == "self"
        }
        for name in self.methods:
            self.domains[name] = ALL if name not in called else frozenset()
        self.domains["_on_timer"] = self.timer_states
        for _ in range(10):  # to a fixed point: domains only grow
            self.calls, self.moves = {}, []
            for name, method in self.methods.items():
                self._block(method.body, self.domains[name], name)
            changed = False
            for name in self.methods:
                if name in called and name != "_on_timer":
                    domain = frozenset().union(*(states for _, states in self.calls.get(name, [])))
                    if domain != self.domains[name]:
                        self.domains[name] = domain
                        changed = True
            if not changed:
                return
        raise RuntimeError("the state analysis did not settle")

    def _block(self, stmts: List[ast.stmt], states: frozenset, name: str) -> frozenset:
        for stmt in stmts:
            states = self._stmt(stmt, states, name)
        return states

    def _stmt(self, stmt: ast.stmt, states: frozenset, name: str) -> frozenset:
        if isinstance(stmt, ast.If):
            true, false = _test_states(stmt.test)
            after_body = self._block(stmt.body, states & true, name)
            after_else = self._block(stmt.orelse, states & false, name)
            out = frozenset()
            if not (stmt.body and isinstance(stmt.body[-1], _EXITS)):
                out |= after_body
            if not (stmt.orelse and isinstance(stmt.orelse[-1], _EXITS)):
                out |= after_else
            return out
        if isinstance(stmt, (ast.While, ast.For)):
            self._block(stmt.body, states | self.domains[name], name)
            return states | self.domains[name]
        if isinstance(stmt, ast.Try):
            after = self._block(stmt.body, states, name)
            for handler in stmt.handlers:
                self._block(handler.body, states | after, name)
            return states | after
        if isinstance(stmt, ast.With):
            return self._block(stmt.body, states, name)
        if isinstance(stmt, ast.FunctionDef):  # a closure: runs later, in the states it was made in
            self._block(stmt.body, states, name)
            return states
        moved: Set[ConnState] = set()
        for node in ast.walk(stmt):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if not (isinstance(node.func.value, ast.Name) and node.func.value.id == "self"):
                continue
            callee = node.func.attr
            if callee == "set_state" and node.args:
                targets = frozenset(_states_of(node.args[0]))
                self.moves.append((name, states, targets))
                moved |= targets
            elif callee in self.methods:
                self.calls.setdefault(callee, []).append((name, states))
        return frozenset(moved) if moved else states

    def causes(self) -> Dict["tuple[ConnState, ConnState]", Set[str]]:
        """{(from, to): names of the methods that cause that move}."""
        edges: Dict["tuple[ConnState, ConnState]", Set[str]] = {}

        def credit(method: str, states: frozenset, targets: frozenset, seen: frozenset) -> None:
            if method in _CARRIERS:
                for caller, caller_states in self.calls.get(method, []):
                    if caller not in seen:
                        credit(caller, caller_states & states, targets, seen | {caller})
                return
            for target in targets:
                for source in states:
                    if target in NEXT[source]:
                        edges.setdefault((source, target), set()).add(method)

        for method, states, targets in self.moves:
            credit(method, states, targets, frozenset({method}))
        return edges


def edge_causes() -> "tuple[Dict[tuple, List[str]], List[str]]":
    """({(from, to): causes in words}, the causes that can close from any state)."""
    scan = _Scan()
    scan.visit(_source_tree())
    timer_states = {state for state in ConnState if scan.timers[state]}
    found = _Moves(timer_states).causes()
    methods_found = {m for methods in found.values() for m in methods}
    keys_found = methods_found | {"%s: %s -> %s" % (m, s.value, d.value) for (s, d), ms in found.items() for m in ms}
    unknown = sorted(methods_found - set(CAUSES))
    if unknown:
        raise LookupError("docs/make_state_diagram.py: say in CAUSES what %s stands for" % unknown)
    unused = sorted(set(CAUSES) - keys_found)
    if unused:
        raise LookupError("docs/make_state_diagram.py: CAUSES names %s, which move nothing now" % unused)
    into_closed = [methods for (source, target), methods in found.items() if target is ConnState.CLOSED]
    anywhere = set.intersection(*into_closed) if into_closed else set()
    order = [key for key in CAUSES if ":" not in key]
    words: Dict[tuple, List[str]] = {}
    for (source, target), methods in found.items():
        if target is ConnState.CLOSED:
            methods = methods - anywhere
        said = []
        for method in sorted(methods, key=order.index):
            text = CAUSES.get("%s: %s -> %s" % (method, source.value, target.value), CAUSES[method])
            if text is not None and text not in said:
                said.append(text)
        words[(source, target)] = said
    return words, [CAUSES[m] for m in sorted(anywhere, key=order.index)] + FROM_OUTSIDE  # type: ignore[misc]


def render_diagram() -> str:
    order = list(ConnState)
    lines = ["```mermaid", "stateDiagram-v2", "    [*] --> %s" % initial_state().name]
    for state in order:
        lines.append('    state "%s" as %s' % (state.value, state.name))
    words, anywhere = edge_causes()
    for state in order:
        for target in sorted(NEXT[state], key=order.index):
            label = " / ".join(words.get((state, target), []))
            lines.append("    %s --> %s%s" % (state.name, target.name, ": " + label if label else ""))
        if not NEXT[state]:
            lines.append("    %s --> [*]" % state.name)
    if anywhere:
        lines.append("    note right of CLOSED: from any state: %s" % " / ".join(anywhere))
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


def render_causes() -> str:
    """Which method each arrow's words stand for, so a reader can find the code."""
    scan = _Scan()
    scan.visit(_source_tree())
    found = _Moves({state for state in ConnState if scan.timers[state]}).causes()
    rows = []
    for key, words in CAUSES.items():
        if ":" in key or words is None:
            continue
        order = list(ConnState)
        arrows = sorted(
            [
                (s, d)
                for (s, d), methods in found.items()
                if key in methods and CAUSES.get("%s: %s -> %s" % (key, s.value, d.value), words) is not None
            ],
            key=lambda edge: (order.index(edge[0]), order.index(edge[1])),
        )
        variants = [CAUSES[k] for k in CAUSES if k.startswith(key + ": ") and CAUSES[k]]
        rows.append([
            " / ".join([words, *variants]),
            "`Connection.%s`" % key,
            ", ".join("%s → %s" % (s.value, d.value) for s, d in arrows),
        ])
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

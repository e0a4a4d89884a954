"""Which method causes each move of a state machine: shared by the docs/make_*_diagram.py scripts.

A small abstract interpretation of one class's source. It follows the state through
each method: a method called by nothing in the class (a callback from outside) may run
in any state; any other method runs in the states its callers call it in; inside a
method the states narrow under ``if`` tests of the state (``is``, ``is not``, ``in``,
``not in`` a set or tuple of members), after a test whose branch returns, and after a
move. A closure runs in the states where it is defined. Each call to a setter records
(method, states before, target states); a call from a *carrier* (a method that only
carries a move out for its callers, such as ``close``) is credited to the callers.

The result over-approximates (a test of something other than the state does not
narrow), which is why each diagram's table of words may strike a move out.
"""

from __future__ import annotations

import ast
import enum
import inspect
from types import ModuleType
from typing import Dict, FrozenSet, Iterable, List, Optional, Set, Tuple

_EXITS = (ast.Return, ast.Break, ast.Continue, ast.Raise)

Edge = Tuple[enum.Enum, enum.Enum]


class Machine:
    """How one state machine appears in its module's source.

    ``states`` is the enum; ``next_table`` the allowed moves; ``cls`` the class whose
    methods move it; ``setters`` maps a method name to the index of its state argument
    (``set_state(new)``: 0); ``subjects`` are the expressions that hold the state
    (``self.state``, a local ``state``, or ``worker.state``), as ``"self.state"``,
    ``"state"``, ``"worker.state"``; ``carriers`` and ``domains`` as described above.
    """

    def __init__(
        self,
        module: ModuleType,
        states: "type[enum.Enum]",
        next_table: Dict[enum.Enum, Iterable[enum.Enum]],
        cls: str,
        setters: Dict[str, int],
        subjects: Iterable[str],
        carriers: Iterable[str] = (),
        domains: Optional[Dict[str, Iterable[enum.Enum]]] = None,
    ) -> None:
        self.module = module
        self.states = states
        self.all: FrozenSet[enum.Enum] = frozenset(states)
        self.next = {state: frozenset(targets) for state, targets in next_table.items()}
        tree = ast.parse(inspect.getsource(module))
        klass = next(node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == cls)
        self.methods = {node.name: node for node in klass.body if isinstance(node, ast.FunctionDef)}
        self.setters = dict(setters)
        self.subjects = set(subjects)
        self.carriers = frozenset(carriers)
        self.fixed = {name: frozenset(states) for name, states in (domains or {}).items()}

    # -- reading expressions -----------------------------------------------------------

    def state_of(self, node: ast.AST) -> Optional[enum.Enum]:
        """The member a name like ``_IDLE`` or ``ConnState.IDLE`` stands for, if any."""
        if isinstance(node, ast.Name):
            value = getattr(self.module, node.id, None)
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            owner = getattr(self.module, node.value.id, None)
            value = owner.__members__.get(node.attr) if owner is self.states else None
        else:
            return None
        return value if isinstance(value, self.states) else None

    def states_of(self, node: ast.AST) -> Set[enum.Enum]:
        """The members an argument can be: one name, or ``A if test else B``."""
        if isinstance(node, ast.IfExp):
            return self.states_of(node.body) | self.states_of(node.orelse)
        state = self.state_of(node)
        return {state} if state is not None else set()

    def _members(self, node: ast.AST) -> Optional[FrozenSet[enum.Enum]]:
        """A set of members: a tuple or set display of them, or a module-level frozenset."""
        if isinstance(node, (ast.Tuple, ast.Set, ast.List)):
            found = [self.state_of(element) for element in node.elts]
            return frozenset(found) if found and all(s is not None for s in found) else None  # type: ignore[arg-type]
        if isinstance(node, ast.Name):
            value = getattr(self.module, node.id, None)
            if isinstance(value, frozenset) and value and all(isinstance(s, self.states) for s in value):
                return value
        return None

    def _is_subject(self, node: ast.AST) -> bool:
        return ast.unparse(node) in self.subjects

    def test_states(self, test: ast.AST) -> "tuple[FrozenSet[enum.Enum], FrozenSet[enum.Enum]]":
        """(states in which ``test`` can be true, states in which it can be false)."""
        every = self.all
        if isinstance(test, ast.BoolOp):
            parts = [self.test_states(value) for value in test.values]
            trues = [t for t, _ in parts]
            falses = [f for _, f in parts]
            if isinstance(test.op, ast.Or):
                return frozenset().union(*trues), every.intersection(*falses)
            return every.intersection(*trues), frozenset().union(*falses)
        if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
            true, false = self.test_states(test.operand)
            return false, true
        if isinstance(test, ast.Compare) and len(test.ops) == 1 and self._is_subject(test.left):
            op, right = test.ops[0], test.comparators[0]
            named: Optional[FrozenSet[enum.Enum]] = None
            if isinstance(op, (ast.Is, ast.IsNot, ast.Eq, ast.NotEq)) and self.state_of(right) is not None:
                named = frozenset({self.state_of(right)})  # type: ignore[arg-type]
            elif isinstance(op, (ast.In, ast.NotIn)):
                named = self._members(right)
            if named is None:
                return every, every
            if isinstance(op, (ast.Is, ast.Eq, ast.In)):
                return named, every - named
            return every - named, named
        return every, every

    # -- following the state -----------------------------------------------------------

    def analyse(self) -> "tuple[List[tuple], Dict[str, List[tuple]]]":
        """(moves, calls): moves as (method, states before, targets); calls as callee -> [(caller, states)]."""
        called = {
            node.func.attr
            for method in self.methods.values()
            for node in ast.walk(method)
            if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "self"
        }
        domains: Dict[str, FrozenSet[enum.Enum]] = {
            name: (self.all if name not in called else frozenset()) for name in self.methods
        }
        domains.update(self.fixed)
        for _ in range(20):  # to a fixed point: domains only grow
            self._moves: List[tuple] = []
            self._calls: Dict[str, List[tuple]] = {}
            self._domains = domains
            for name, method in self.methods.items():
                self._block(method.body, domains[name], name)
            grown = dict(domains)
            for name in self.methods:
                if name in called and name not in self.fixed:
                    grown[name] = frozenset().union(*(states for _, states in self._calls.get(name, [])))
            if grown == domains:
                return self._moves, self._calls
            domains = grown
        raise RuntimeError("the state analysis did not settle")

    def _block(self, stmts: List[ast.stmt], states: FrozenSet[enum.Enum], name: str) -> FrozenSet[enum.Enum]:
        for stmt in stmts:
            states = self._stmt(stmt, states, name)
        return states

    def _stmt(self, stmt: ast.stmt, states: FrozenSet[enum.Enum], name: str) -> FrozenSet[enum.Enum]:
        if isinstance(stmt, ast.If):
            true, false = self.test_states(stmt.test)
            self._calls_in(stmt.test, states, name)
            after_body = self._block(stmt.body, states & true, name)
            after_else = self._block(stmt.orelse, states & false, name)
            out: FrozenSet[enum.Enum] = frozenset()
            if not (stmt.body and isinstance(stmt.body[-1], _EXITS)):
                out |= after_body
            if not (stmt.orelse and isinstance(stmt.orelse[-1], _EXITS)):
                out |= after_else
            return out
        if isinstance(stmt, (ast.While, ast.For)):
            loop_states = states | self._domains[name]  # a pass may start in any state the method runs in
            self._calls_in(stmt.test if isinstance(stmt, ast.While) else stmt.iter, loop_states, name)
            self._block(stmt.body, loop_states, name)
            self._block(stmt.orelse, loop_states, name)
            return loop_states
        if isinstance(stmt, ast.Try):
            after = self._block(stmt.body, states, name)
            for handler in stmt.handlers:
                self._block(handler.body, states | after, name)
            self._block(stmt.orelse, after, name)
            return self._block(stmt.finalbody, states | after, name)
        if isinstance(stmt, ast.With):
            return self._block(stmt.body, states, name)
        if isinstance(stmt, ast.FunctionDef):  # a closure: runs later, in the states it was made in
            self._block(stmt.body, states, name)
            return states
        return self._calls_in(stmt, states, name)

    def _calls_in(self, node: ast.AST, states: FrozenSet[enum.Enum], name: str) -> FrozenSet[enum.Enum]:
        moved: Set[enum.Enum] = set()
        for call in ast.walk(node):
            if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)):
                continue
            if not (isinstance(call.func.value, ast.Name) and call.func.value.id == "self"):
                continue
            callee = call.func.attr
            if callee in self.setters and len(call.args) > self.setters[callee]:
                targets = frozenset(self.states_of(call.args[self.setters[callee]]))
                self._moves.append((name, states, targets))
                moved |= targets
            elif callee in self.methods:
                self._calls.setdefault(callee, []).append((name, states))
        return frozenset(moved) if moved else states

    def causes(self) -> Dict[Edge, Set[str]]:
        """{(from, to): names of the methods that cause that move}."""
        moves, calls = self.analyse()
        edges: Dict[Edge, Set[str]] = {}

        def credit(method: str, states: FrozenSet[enum.Enum], targets: FrozenSet[enum.Enum], seen: frozenset) -> None:
            if method in self.carriers:
                for caller, caller_states in calls.get(method, []):
                    if caller not in seen:
                        credit(caller, caller_states & states, targets, seen | {caller})
                return
            for target in targets:
                for source in states:
                    if target in self.next[source]:
                        edges.setdefault((source, target), set()).add(method)

        for method, states, targets in moves:
            credit(method, states, targets, frozenset({method}))
        return edges


def worded(
    found: Dict[Edge, Set[str]], words: Dict[str, Optional[str]], common_into: Optional[enum.Enum] = None
) -> "tuple[Dict[Edge, List[str]], List[str]]":
    """Each edge's causes in words, from ``words`` ("method", or "method: from -> to" for one
    arrow; None strikes the move out). With ``common_into``, causes found on every edge into
    that state are returned apart (to be written once, as a note). Raises LookupError when a
    method has no words, or a key names no move found.
    """
    methods = {m for ms in found.values() for m in ms}
    keys = methods | {"%s: %s -> %s" % (m, s.value, d.value) for (s, d), ms in found.items() for m in ms}
    unknown = sorted(methods - set(words))
    if unknown:
        raise LookupError("say in the diagram script's CAUSES what %s stands for" % unknown)
    unused = sorted(set(words) - keys)
    if unused:
        raise LookupError("the diagram script's CAUSES names %s, which move nothing now" % unused)
    anywhere: Set[str] = set()
    if common_into is not None:
        into = [ms for (s, d), ms in found.items() if d is common_into]
        anywhere = set.intersection(*into) if into else set()
    order = [key for key in words if ":" not in key]
    said_by_edge: Dict[Edge, List[str]] = {}
    for (source, target), ms in found.items():
        if target is common_into:
            ms = ms - anywhere
        said: List[str] = []
        for method in sorted(ms, key=order.index):
            text = words.get("%s: %s -> %s" % (method, source.value, target.value), words[method])
            if text is not None and text not in said:
                said.append(text)
        said_by_edge[(source, target)] = said
    return said_by_edge, [words[m] for m in sorted(anywhere, key=order.index) if words[m]]  # type: ignore[misc]


def diagram(
    states: "type[enum.Enum]",
    next_table: Dict[enum.Enum, Iterable[enum.Enum]],
    first: enum.Enum,
    labels: Dict[Edge, List[str]],
    note: Optional["tuple[enum.Enum, List[str]]"] = None,
) -> str:
    """A mermaid stateDiagram-v2, each arrow labelled with its causes joined by " / "."""
    order = list(states)
    lines = ["```mermaid", "stateDiagram-v2", "    [*] --> %s" % first.name]
    for state in order:
        lines.append('    state "%s" as %s' % (state.value, state.name))
    for state in order:
        for target in sorted(next_table[state], key=order.index):
            label = " / ".join(labels.get((state, target), []))
            lines.append("    %s --> %s%s" % (state.name, target.name, ": " + label if label else ""))
        if not next_table[state]:
            lines.append("    %s --> [*]" % state.name)
    if note is not None and note[1]:
        lines.append("    note right of %s: from any state: %s" % (note[0].name, " / ".join(note[1])))
    lines.append("```")
    return "\n".join(lines) + "\n"


def legend(
    found: Dict[Edge, Set[str]], words: Dict[str, Optional[str]], owner: str, order: List[enum.Enum]
) -> "List[List[str]]":
    """Rows (the arrow says, method, arrows) for a table that maps each label to its code."""
    rows = []
    for key, text in words.items():
        if ":" in key or text is None:
            continue
        arrows = sorted(
            [
                (s, d)
                for (s, d), ms in found.items()
                if key in ms and words.get("%s: %s -> %s" % (key, s.value, d.value), text) is not None
            ],
            key=lambda edge: (order.index(edge[0]), order.index(edge[1])),
        )
        variants = [words[k] for k in words if k.startswith(key + ": ") and words[k]]
        rows.append(
            [
                " / ".join([text, *variants]),  # type: ignore[list-item]
                "`%s.%s`" % (owner, key),
                ", ".join("%s → %s" % (s.value, d.value) for s, d in arrows),
            ]
        )
    return rows


__all__ = ["Machine", "worded", "diagram", "legend", "Edge"]

#!/usr/bin/env python3
"""Write the supervisor's state diagrams, states table and signal table in docs/workers.md.

Everything comes from :mod:`reactor.supervisor`: the states and their comments from
``SupervisorState`` and ``WorkerState``, the arrows from ``NEXT`` and ``WORKER_NEXT``,
the first states from ``Supervisor.__init__`` and the ``Worker`` record's default, and
the signals from ``SIGNAL_ACTIONS``. tests/test_docs.py fails until the page matches.

    python3 docs/make_supervisor_diagram.py            # rewrite the generated blocks
    python3 docs/make_supervisor_diagram.py --check    # exit 1 if they are stale
"""

from __future__ import annotations

import ast
import enum
import inspect
import io
import sys
import tokenize
from typing import Dict, Set, Type

import docgen

from reactor import supervisor
from reactor.supervisor import NEXT, SIGNAL_ACTIONS, WORKER_NEXT, SupervisorState, Worker, WorkerState


def comments(states: Type[enum.Enum]) -> Dict[enum.Enum, str]:
    """The trailing comment of each member in the enum's class body."""
    found: Dict[enum.Enum, str] = {}
    pending = None
    for token in tokenize.generate_tokens(io.StringIO(inspect.getsource(states)).readline):
        if token.type == tokenize.NAME and token.string in states.__members__ and token.start[1] == 4:
            pending = states[token.string]
        elif token.type == tokenize.COMMENT and pending is not None:
            found[pending] = token.string.lstrip("#").strip()
            pending = None
        elif token.type == tokenize.NEWLINE:
            pending = None
    return found


def supervisor_initial_state() -> SupervisorState:
    """The state ``Supervisor.__init__`` assigns to ``self.state``."""
    tree = ast.parse(inspect.getsource(supervisor.Supervisor.__init__).strip())
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Attribute) and t.attr == "state" for t in node.targets)
            and isinstance(node.value, ast.Attribute)
        ):
            return SupervisorState[node.value.attr]
    raise LookupError("Supervisor.__init__ assigns no initial state")


def render_diagram(states: Type[enum.Enum], table: Dict[enum.Enum, Set[enum.Enum]], first: enum.Enum) -> str:
    order = list(states)
    lines = ["```mermaid", "stateDiagram-v2", "    [*] --> %s" % first.name]
    for state in order:
        lines.append('    state "%s" as %s' % (state.value, state.name))
    for state in order:
        for target in sorted(table[state], key=order.index):
            lines.append("    %s --> %s" % (state.name, target.name))
        if not table[state]:
            lines.append("    %s --> [*]" % state.name)
    lines.append("```")
    return "\n".join(lines) + "\n"


def render_table(states: Type[enum.Enum], table: Dict[enum.Enum, Set[enum.Enum]]) -> str:
    notes = comments(states)
    order = list(states)
    rows = [
        [
            "`%s`" % state.value,
            notes.get(state, ""),
            ", ".join(s.value for s in sorted(table[state], key=order.index)) or "—",
        ]
        for state in order
    ]
    return docgen.table(["state", "meaning", "leaves to"], rows)


def render_signals() -> str:
    rows = [["`%s`" % signum.name, text] for signum, text in SIGNAL_ACTIONS.items()]
    return docgen.table(["signal to the supervisor", "what happens"], rows)


def render() -> docgen.Blocks:
    worker_first = WorkerState(Worker.__dataclass_fields__["state"].default)
    return {
        "workers.md": {
            "supervisor-diagram": render_diagram(SupervisorState, NEXT, supervisor_initial_state()),
            "supervisor-table": render_table(SupervisorState, NEXT),
            "worker-diagram": render_diagram(WorkerState, WORKER_NEXT, worker_first),
            "worker-table": render_table(WorkerState, WORKER_NEXT),
            "signals-table": render_signals(),
        }
    }


if __name__ == "__main__":
    sys.exit(docgen.main(render))

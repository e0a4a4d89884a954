#!/usr/bin/env python3
"""Write the supervisor's state diagrams, states table and signal table in docs/workers.md.

Everything comes from :mod:`reactor.supervisor`: the states and their comments from
``SupervisorState`` and ``WorkerState``, the arrows from ``NEXT`` and ``WORKER_NEXT``,
the first states from ``Supervisor.__init__`` and the ``Worker`` record's default, and
the signals from ``SIGNAL_ACTIONS``. Each arrow says what causes it: ``docs/statemoves.py``
follows the states through ``Supervisor``'s methods to find which method makes each
move, and :data:`CAUSES` and :data:`WORKER_CAUSES` word them. tests/test_docs.py fails
until the page matches.

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
from typing import Any, Dict, Optional, Set, Type

import docgen
import statemoves

from reactor import supervisor
from reactor.server import ACCEPT_NEXT, AcceptState
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


#: What each method that moves the supervisor stands for, as its arrows say it
#: ("method: from -> to" words one arrow; see docs/statemoves.py).
CAUSES: Dict[str, Optional[str]] = {
    "_manage": "every worker serving",
    "_manage: reloading -> running": "every new worker serving",
    "_manage: draining -> stopped": "the last worker exited",
    "_on_reload": "SIGHUP",
    "_on_stop_signal": "SIGTERM or SIGINT",
    "_on_stop_signal: draining -> stopped": "a second SIGTERM or SIGINT, workers killed",
    "_on_boot_failure": "workers cannot start",
    "_abandon_reload": "new workers cannot start, reload abandoned",
}

#: The same for each worker's record, as the supervisor moves it.
WORKER_CAUSES: Dict[str, Optional[str]] = {
    "_on_boot_pipe": "said ready on its boot pipe",
    "_on_retire_requests": "SIGUSR2: it served its --max-requests",
    "_manage": "SIGTTOU, or an old worker after a reload",
    "_manage: retiring -> draining": "its replacement serves",
    "_on_stop_signal": "SIGTERM or SIGINT to the supervisor",
    "_on_boot_failure": "workers cannot start",
    "_abandon_reload": "its reload abandoned",
    "_keep_retiring": "its replacement cannot start",
    "_check_deadlines": "SIGKILL",
    "_check_deadlines: booting -> killed": "not ready within --worker-timeout",
    "_check_deadlines: serving -> killed": "no heartbeat for --worker-timeout",
    "_check_deadlines: retiring -> killed": "no heartbeat for --worker-timeout",
    "_check_deadlines: draining -> killed": "still there after --shutdown-timeout",
}


#: What moves each worker's accept side (``reactor.server.Server._set_accept_state``),
#: one entry per arrow of ``ACCEPT_NEXT``: render_accept_diagram() refuses a table that
#: has an arrow without words here, or words for an arrow it does not have.
ACCEPT_CAUSES: Dict["tuple[AcceptState, AcceptState]", str] = {
    (AcceptState.OFF, AcceptState.ACCEPTING): "listen()",
    (AcceptState.ACCEPTING, AcceptState.PAUSED): "accept failed for lack of descriptors",
    (AcceptState.ACCEPTING, AcceptState.DEFERRING): "a peer holds fewer connections",
    (AcceptState.ACCEPTING, AcceptState.OFF): "a stop",
    (AcceptState.PAUSED, AcceptState.ACCEPTING): "0.5 s later",
    (AcceptState.PAUSED, AcceptState.OFF): "a stop",
    (AcceptState.DEFERRING, AcceptState.ACCEPTING): "no peer holds fewer (rechecked every 2 ms and at each close)",
    (AcceptState.DEFERRING, AcceptState.OFF): "a stop",
}


def render_accept_diagram() -> str:
    edges = {(old, new) for old, targets in ACCEPT_NEXT.items() for new in targets}
    if edges != set(ACCEPT_CAUSES):
        raise SystemExit(
            "ACCEPT_CAUSES and reactor.server.ACCEPT_NEXT differ: %s"
            % sorted("%s -> %s" % (a.value, b.value) for a, b in edges ^ set(ACCEPT_CAUSES))
        )
    labels = {edge: [text] for edge, text in ACCEPT_CAUSES.items()}
    return statemoves.diagram(AcceptState, ACCEPT_NEXT, AcceptState.OFF, labels)


def machine() -> statemoves.Machine:
    """The supervisor's own states; ``_drain_all`` only carries the move for its callers."""
    return statemoves.Machine(
        supervisor,
        SupervisorState,
        NEXT,
        "Supervisor",
        setters={"set_state": 0},
        subjects=("state", "self.state"),
        carriers=("_drain_all",),
    )


def worker_machine() -> statemoves.Machine:
    """Each worker's state, moved by ``_set_worker_state(worker, new)`` through ``_drain`` and ``_kill``."""
    return statemoves.Machine(
        supervisor,
        WorkerState,
        WORKER_NEXT,
        "Supervisor",
        setters={"_set_worker_state": 1},
        subjects=("worker.state", "w.state"),
        carriers=("_drain", "_drain_all", "_kill"),
    )


def render_diagram(states: Type[enum.Enum], table: Dict[enum.Enum, Set[enum.Enum]], first: enum.Enum) -> str:
    if states is SupervisorState:
        found, words = machine().causes(), CAUSES
    else:
        found, words = worker_machine().causes(), WORKER_CAUSES
    labels, _anywhere = statemoves.worded(found, words)
    return statemoves.diagram(states, table, first, labels)


def render_causes(states: Type[enum.Enum]) -> str:
    """Which method of ``Supervisor`` each arrow's words stand for."""
    if states is SupervisorState:
        found, words = machine().causes(), CAUSES
    else:
        found, words = worker_machine().causes(), WORKER_CAUSES
    rows = statemoves.legend(found, words, "Supervisor", list(states))
    return docgen.table(["the arrow says", "method (in `reactor.supervisor`)", "arrows"], rows)


def render_table(states: Type[enum.Enum], table: "Dict[Any, Set[Any]]") -> str:
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
            "supervisor-causes": render_causes(SupervisorState),
            "supervisor-table": render_table(SupervisorState, NEXT),
            "worker-diagram": render_diagram(WorkerState, WORKER_NEXT, worker_first),
            "worker-causes": render_causes(WorkerState),
            "worker-table": render_table(WorkerState, WORKER_NEXT),
            "signals-table": render_signals(),
            "accept-diagram": render_accept_diagram(),
            "accept-table": render_table(AcceptState, ACCEPT_NEXT),
        }
    }


if __name__ == "__main__":
    sys.exit(docgen.main(render))

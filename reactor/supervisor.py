"""The supervisor (gunicorn's "arbiter"): fork worker processes, watch them, signal them.

Theory of operation
-------------------
``--workers N`` with N > 1 runs this process above N workers. It knows no HTTP: it is
handed one listening socket, already open, and a function that serves on it; each
worker is a fork that calls that function (the CLI's, which runs an unchanged
:class:`reactor.server.Server`). All workers accept from the one inherited listener:
the kernel queues new connections there and whichever idle worker wakes first takes
them, so a dead or draining worker leaves nothing stranded in a queue of its own
(``docs/workers.md`` has the measurements against SO_REUSEPORT). A worker holding more
connections than its peers leaves new ones to them for a moment
(:class:`~reactor.scoreboard.AcceptGate`, from :meth:`WorkerHandle.accept_gate`).

The supervisor's own loop is a selector over a self-pipe, which the C-level signal
handler writes each signal's number to (:func:`signal.set_wakeup_fd`), and over one
*boot pipe* per starting worker, on which the worker writes ``ready`` once it serves
or its error if it cannot start. Python-level handlers do nothing; all the work
happens in the loop, between selects, so nothing runs inside a signal handler.

Workers beat a heartbeat into the shared :class:`~reactor.scoreboard.Scoreboard` from a
loop timer; a serving worker silent for ``worker_timeout_s`` is killed (SIGKILL) and
replaced, as is one that dies. A worker that dies before it says ``ready`` is a boot
failure: it is retried after a growing pause, and after :data:`MAX_BOOT_FAILURES` in a
row the supervisor drains the rest and exits 1 with the worker's error, never forking
in a loop.

A worker may ask to be replaced (``--max-requests``: it has served its share, and a
fresh process frees whatever the application leaked): it sets its scoreboard slot's
retire flag and sends SIGUSR2. The supervisor marks it ``retiring``, starts a
replacement, and once that one serves, drains the retiring one, as a reload does for
every worker: no request fails, and the number serving never drops.

A worker whose start fails in a way no retry can mend (:class:`FatalBootError`: the
application cannot be imported) exits with :data:`WORKER_FATAL_ERROR`, and the
supervisor stops at once with its message instead of trying again.

With ``--live-reload`` the supervisor runs the one :class:`~reactor.watch.Watcher` (not
one per worker: one set of kernel watches, one epoch). Its inotify descriptor sits in
the supervisor's selector beside the self-pipe; when polling, the supervisor lists the
folder itself between selects (it has no threads, as it forks; a listing of a site's
folder takes milliseconds). Each debounced batch goes down a *notice pipe* to every
worker as one line (:meth:`reactor.watch.Batch.encode`); a worker forked later starts
from the epoch of its fork. A pipe a worker does not empty keeps the rest in an outbox
written when the pipe is writable again. The supervisor knows what changed, never
what that means for HTTP.

Signals (the table in ``docs/workers.md``): SIGTERM or SIGINT drains every worker
(each finishes its in-flight requests within ``shutdown_timeout_s``) and exits 0; a
second one kills them and exits at once. SIGHUP replaces every worker, rolling: new
workers start and serve first, then the old ones drain. SIGTTIN and SIGTTOU add and
remove a worker. Workers ignore SIGINT, SIGHUP, SIGTTIN and SIGTTOU (a Ctrl-C in a
terminal reaches the whole process group; the supervisor relays what it means).
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import os
import selectors
import signal
import socket
import sys
import time
from typing import Callable, Dict, Iterable, List, Optional

from reactor.scoreboard import MAX_WORKERS, AcceptGate, Scoreboard, WorkerIdentity, set_this_worker
from reactor.watch import Batch, Feed, Watcher, scan_tree

log = logging.getLogger("reactor.supervisor")

#: Boot failures in a row (no worker became ready in between) before the supervisor gives up.
MAX_BOOT_FAILURES = 3
_BOOT_BACKOFF_S = 0.25  # pause before the retry after the first boot failure; doubles each time
_TICK_S = 0.5  # longest select: heartbeat checks and deadlines need no finer grain
_KILL_GRACE_S = 1.0  # past a drain's deadline a worker gets this long before SIGKILL
#: Exit status of a worker that could not start (gunicorn's WORKER_BOOT_ERROR).
WORKER_BOOT_ERROR = 3
#: Exit status of a worker that can never start as configured (gunicorn's APP_LOAD_ERROR).
WORKER_FATAL_ERROR = 4


class FatalBootError(Exception):
    """A worker cannot start, and starting another would fail the same way (the application does not load).

    Its message is the one line the supervisor stops with.
    """


class SupervisorState(enum.Enum):
    STARTING = "starting"  # first workers forked; none is ready yet
    RUNNING = "running"  # keeping N workers; the dead and the stuck are replaced
    RELOADING = "reloading"  # SIGHUP: a new set of workers starts; the old serve until all new are ready
    DRAINING = "draining"  # SIGTERM/SIGINT or a boot failure: every worker finishes and exits
    STOPPED = "stopped"  # no worker left; the exit status is known


NEXT = {
    SupervisorState.STARTING: {SupervisorState.RUNNING, SupervisorState.DRAINING},
    SupervisorState.RUNNING: {SupervisorState.RELOADING, SupervisorState.DRAINING},
    SupervisorState.RELOADING: {SupervisorState.RUNNING, SupervisorState.DRAINING},
    SupervisorState.DRAINING: {SupervisorState.STOPPED},
    SupervisorState.STOPPED: set(),
}


class WorkerState(enum.Enum):
    BOOTING = "booting"  # forked; has not said ready on its boot pipe
    SERVING = "serving"  # accepting connections and beating
    RETIRING = "retiring"  # served its --max-requests; serves on until its replacement serves
    DRAINING = "draining"  # sent SIGTERM: finishing in-flight requests, then exiting
    KILLED = "killed"  # sent SIGKILL (stuck, or past a deadline); waiting to be reaped


WORKER_NEXT = {
    WorkerState.BOOTING: {WorkerState.SERVING, WorkerState.DRAINING, WorkerState.KILLED},
    WorkerState.SERVING: {WorkerState.RETIRING, WorkerState.DRAINING, WorkerState.KILLED},
    WorkerState.RETIRING: {WorkerState.SERVING, WorkerState.DRAINING, WorkerState.KILLED},
    WorkerState.DRAINING: {WorkerState.KILLED},
    WorkerState.KILLED: set(),
}


#: What each signal sent to the supervisor does (docs/workers.md's table is generated from it).
SIGNAL_ACTIONS = {
    signal.SIGTERM: "graceful stop: every worker stops accepting, finishes its in-flight requests within "
    "--shutdown-timeout and exits; then the supervisor exits 0. A second SIGTERM or SIGINT kills the workers "
    "and exits at once (128 + signal number)",
    signal.SIGINT: "the same as SIGTERM (Ctrl-C; the workers ignore the SIGINT the terminal also sends them)",
    signal.SIGHUP: "rolling replace: new workers start; once all of them serve, the old ones drain. Files read at "
    "start (a TLS certificate) are read again by the new workers. Ignored unless running",
    signal.SIGTTIN: "one more worker (at most %d)" % MAX_WORKERS,
    signal.SIGTTOU: "one worker fewer (at least 1): the highest-numbered one drains",
    signal.SIGUSR1: "relayed to every worker: reopen the access log file (logrotate)",
    signal.SIGUSR2: "from a worker that has served its --max-requests: a replacement starts, and once it serves "
    "the old worker drains",
    signal.SIGCHLD: "a worker exited: reap it; replace it if it was serving, back off if it never was",
}


@dataclasses.dataclass
class Worker:
    """The supervisor's record of one child; it leaves the table when reaped."""

    number: int  # 1..; the lowest free one, also its scoreboard slot
    pid: int
    generation: int  # bumped by each SIGHUP; older generations drain
    boot_pipe: Optional[int]  # read end, until EOF
    state: WorkerState = WorkerState.BOOTING
    started: float = 0.0  # monotonic
    ready_at: float = 0.0  # monotonic; 0.0 while it has never been ready
    deadline: float = 0.0  # BOOTING: must be ready by; DRAINING: killed after
    error: str = ""  # what it wrote on its boot pipe instead of "ready"
    killed_from: Optional[WorkerState] = None  # the state it was in when sent SIGKILL
    notice_pipe: Optional[int] = None  # write end of its notice pipe (--live-reload)
    outbox: bytearray = dataclasses.field(default_factory=bytearray)  # notices the pipe did not take yet


class _Outbox:
    """The selector's data for a notice pipe waiting to be writable."""

    __slots__ = ("worker",)

    def __init__(self, worker: Worker) -> None:
        self.worker = worker


class WorkerHandle:
    """What a worker process gets: its number, the listener, and the calls it must make.

    ``ready()`` once it is serving; ``beat(...)`` every ``beat_interval_s`` from its
    loop (it returns False when the supervisor is gone, and the worker should stop).
    ``feed`` is the supervisor's watcher as this worker reads it (``--live-reload``), else None.
    """

    def __init__(
        self,
        number: int,
        listener: socket.socket,
        scoreboard: Scoreboard,
        boot_fd: int,
        parent_pid: int,
        timeout_s: float,
        feed: Optional[Feed] = None,
    ) -> None:
        self.number = number
        self.feed = feed
        self.listener = listener
        self.beat_interval_s = min(1.0, timeout_s / 4)
        self._scoreboard = scoreboard
        self._boot_fd: Optional[int] = boot_fd
        self._parent_pid = parent_pid

    def ready(self) -> None:
        self._say(b"ready\n")

    def failed(self, message: str) -> None:
        self._say(message.encode("utf-8", "replace")[:4000] + b"\n")

    def _say(self, message: bytes) -> None:
        if self._boot_fd is not None:
            try:
                os.write(self._boot_fd, message)  # one write of at most PIPE_BUF: atomic
            except OSError:
                pass  # the supervisor is gone; beat() will notice
            os.close(self._boot_fd)
            self._boot_fd = None

    def beat(self, requests: int, accepted: int, open_connections: int) -> bool:
        self._scoreboard.beat(self.number, requests, accepted, open_connections)
        return os.getppid() == self._parent_pid

    def retire(self) -> None:
        """Ask to be replaced (``--max-requests``); the worker serves on until the supervisor drains it."""
        self._scoreboard.set_retiring(self.number)
        _kill(self._parent_pid, signal.SIGUSR2)

    def accept_gate(self) -> AcceptGate:
        """This worker's share of the listener; a peer that missed two beats in a row is left out."""
        return AcceptGate(self._scoreboard, self.number, stale_s=2 * self.beat_interval_s)


#: A worker's main function: serve on ``handle.listener`` until told to stop; return the exit status.
WorkerMain = Callable[[WorkerHandle], int]


class Supervisor:
    """Keeps ``workers`` processes running ``worker_main`` on ``listener``.

    ``on_running`` is called once, when the first set of workers is ready (the CLI
    prints its startup line then). ``watcher``: batches of changes to tell every
    worker (``--live-reload``); the caller closes it after :meth:`run`. :meth:`run` returns the exit status: 0 after a
    drain asked for by a signal, 1 when workers cannot start, 128 + signal number
    after a second SIGTERM/SIGINT. Must run in the main thread (it installs signal
    handlers), in a process with no other threads (it forks).
    """

    def __init__(
        self,
        listener: socket.socket,
        worker_main: WorkerMain,
        workers: int,
        *,
        worker_timeout_s: float = 30.0,
        shutdown_timeout_s: float = 10.0,
        on_running: Optional[Callable[[], None]] = None,
        watcher: Optional[Watcher] = None,
    ) -> None:
        if not 1 <= workers <= MAX_WORKERS:
            raise ValueError("workers must be 1..%d" % MAX_WORKERS)
        self.listener = listener
        self.worker_main = worker_main
        self.target = workers
        self.worker_timeout_s = worker_timeout_s
        self.shutdown_timeout_s = shutdown_timeout_s
        self.on_running = on_running
        self.state = SupervisorState.STARTING
        self.workers: Dict[int, Worker] = {}  # by pid
        self.generation = 0
        self.scoreboard = Scoreboard()
        self.exit_status = 0
        self.forks = 0  # every fork since start
        self._boot_failures = 0  # in a row; a worker becoming ready resets it
        self._next_spawn = 0.0  # monotonic; a boot failure pushes it back
        self._last_error = ""
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self.watcher = watcher
        self._watch_fd = -1  # the watcher's descriptor while it is in the selector

    # -- states ----------------------------------------------------------------------

    def set_state(self, new: SupervisorState) -> None:
        if new not in NEXT[self.state]:
            raise RuntimeError("supervisor: %s -> %s is not allowed" % (self.state.value, new.value))
        log.debug("supervisor: %s -> %s", self.state.value, new.value)
        self.state = new

    def _set_worker_state(self, worker: Worker, new: WorkerState) -> None:
        if new not in WORKER_NEXT[worker.state]:
            raise RuntimeError("worker %d: %s -> %s is not allowed" % (worker.number, worker.state.value, new.value))
        worker.state = new

    # -- the loop --------------------------------------------------------------------

    def run(self) -> int:
        self._install_signals()
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._watch_settle()
        try:
            log.info("supervisor %d: starting %d workers", os.getpid(), self.target)
            self._manage()
            while self.state is not SupervisorState.STOPPED:
                for key, _mask in self._selector.select(self._timeout()):
                    data = key.data
                    if data is None:
                        self._on_signals()
                    elif self.watcher is not None and data is self.watcher:
                        self.watcher.read(time.monotonic())
                    elif isinstance(data, _Outbox):
                        self._flush_notices(data.worker)
                    else:
                        self._on_boot_pipe(data)
                self._reap()
                self._check_deadlines()
                self._manage()
                self._watch_step()
        finally:
            self._restore_signals()
            for worker in self.workers.values():
                self._close_notice_pipe(worker)
            self._selector.close()
            os.close(self._wake_r)
            os.close(self._wake_w)
        return self.exit_status

    def _timeout(self) -> float:
        timeout = _TICK_S
        now = time.monotonic()
        if self._next_spawn > now:
            timeout = min(timeout, self._next_spawn - now)
        watcher = self.watcher
        if watcher is not None:
            due = watcher.deadline()
            if watcher.backend == "poll":
                due = watcher.next_scan_at if due is None else min(due, watcher.next_scan_at)
            if due is not None:
                timeout = min(timeout, due - now)
        return max(0.0, timeout)

    # -- live reload: the watcher and the notice pipes ------------------------------------

    def _watch_settle(self) -> None:
        """Keep the watcher's descriptor in the selector while it has one (it may fall back to polling)."""
        watcher = self.watcher
        fd = watcher.fileno() if watcher is not None else -1
        if fd == self._watch_fd:
            return
        if self._watch_fd >= 0:
            self._selector.unregister(self._watch_fd)
        if fd >= 0:
            self._selector.register(fd, selectors.EVENT_READ, watcher)
        self._watch_fd = fd

    def _watch_step(self) -> None:
        """List what is due (new folders; the whole folder when polling), tell workers a batch that is due."""
        watcher = self.watcher
        if watcher is None:
            return
        new_dirs = watcher.take_new_dirs()
        if new_dirs:
            watcher.trees_added(watcher.add_trees(new_dirs), time.monotonic())
        now = time.monotonic()
        if watcher.backend == "poll" and now >= watcher.next_scan_at:
            watcher.scanned(scan_tree(watcher.root, watcher.rules), time.monotonic())
        self._watch_settle()
        batch = watcher.take(time.monotonic())
        if batch is not None:
            self._tell_workers(batch)

    def _tell_workers(self, batch: Batch) -> None:
        log.info("changed: %s; telling %d worker(s)", batch.describe(), len(self.workers))
        line = batch.encode()
        for worker in self.workers.values():
            if worker.notice_pipe is not None:
                worker.outbox += line
                self._flush_notices(worker)

    def _flush_notices(self, worker: Worker) -> None:
        """Write what the worker's outbox holds; wait for writability if the pipe is full."""
        fd = worker.notice_pipe
        if fd is None:
            return
        waiting = bool(worker.outbox)
        try:
            while worker.outbox:
                written = os.write(fd, worker.outbox)
                del worker.outbox[:written]
        except BlockingIOError:
            pass
        except OSError:  # EPIPE: it exited; the reap closes the pipe
            worker.outbox.clear()
        registered = fd in self._selector.get_map()
        if worker.outbox and not registered:
            self._selector.register(fd, selectors.EVENT_WRITE, _Outbox(worker))
        elif not worker.outbox and registered and waiting:
            self._selector.unregister(fd)

    def _close_notice_pipe(self, worker: Worker) -> None:
        fd = worker.notice_pipe
        if fd is not None:
            if fd in self._selector.get_map():
                self._selector.unregister(fd)
            os.close(fd)
            worker.notice_pipe = None
            worker.outbox.clear()

    def _install_signals(self) -> None:
        self._saved = {signum: signal.getsignal(signum) for signum in SIGNAL_ACTIONS}
        self._saved_wakeup = signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        for signum in SIGNAL_ACTIONS:
            signal.signal(signum, _note_signal)

    def _restore_signals(self) -> None:
        signal.set_wakeup_fd(self._saved_wakeup)
        for signum, handler in self._saved.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)

    def _on_signals(self) -> None:
        try:
            data = os.read(self._wake_r, 512)
        except BlockingIOError:
            return
        for signum in data:
            if signum == signal.SIGCHLD:
                continue  # _reap runs after every wake-up
            name = signal.Signals(signum).name
            if signum in (signal.SIGTERM, signal.SIGINT):
                self._on_stop_signal(signum, name)
            elif signum == signal.SIGHUP:
                self._on_reload(name)
            elif signum == signal.SIGTTIN:
                if self.target < MAX_WORKERS:
                    self.target += 1
                log.info("%s: %d workers wanted", name, self.target)
            elif signum == signal.SIGTTOU:
                self.target = max(1, self.target - 1)
                log.info("%s: %d workers wanted", name, self.target)
            elif signum == signal.SIGUSR1:
                for worker in self.workers.values():
                    _kill(worker.pid, signal.SIGUSR1)
            elif signum == signal.SIGUSR2:
                self._on_retire_requests()

    def _on_stop_signal(self, signum: int, name: str) -> None:
        if self.state is SupervisorState.DRAINING:
            log.warning("second %s; killing %d worker(s) and exiting now", name, len(self.workers))
            for worker in self.workers.values():
                _kill(worker.pid, signal.SIGKILL)
            self._wait_all()
            self.exit_status = 128 + signum
            self.set_state(SupervisorState.STOPPED)
            return
        log.info("%s received; draining %d worker(s) (send it again to stop at once)", name, len(self.workers))
        self._drain_all()

    def _on_reload(self, name: str) -> None:
        if self.state is not SupervisorState.RUNNING:
            log.warning("%s ignored while %s", name, self.state.value)
            return
        self.generation += 1
        log.info("%s: replacing %d worker(s); the old ones drain once the new ones serve", name, len(self.workers))
        self.set_state(SupervisorState.RELOADING)

    def _on_retire_requests(self) -> None:
        """SIGUSR2: serving workers that set their retire flag are replaced (see the module docstring)."""
        if self.state is SupervisorState.DRAINING or self.state is SupervisorState.STOPPED:
            return
        for worker in self.workers.values():
            if worker.state is WorkerState.SERVING and self.scoreboard.retiring(worker.number):
                self._set_worker_state(worker, WorkerState.RETIRING)
                log.info("worker %d (pid %d) served its --max-requests; replacing it", worker.number, worker.pid)

    # -- workers -----------------------------------------------------------------------

    def _current(self) -> List[Worker]:
        """Workers of the current generation that are not draining."""
        return [
            w
            for w in self.workers.values()
            if w.generation == self.generation and w.state in (WorkerState.BOOTING, WorkerState.SERVING)
        ]

    def _manage(self) -> None:
        """Fork or drain until the current generation has ``target`` workers; finish a reload."""
        state = self.state
        if state in (SupervisorState.DRAINING, SupervisorState.STOPPED):
            if state is SupervisorState.DRAINING and not self.workers:
                self.set_state(SupervisorState.STOPPED)
            return
        current = self._current()
        now = time.monotonic()
        while len(current) < self.target and now >= self._next_spawn:
            try:
                current.append(self._spawn())
            except OSError as exc:  # EAGAIN, ENOMEM, EMFILE: out of processes or memory
                self._on_boot_failure("cannot fork a worker: %s" % _describe(exc), "fork failed (%s)" % _describe(exc))
                return
        for worker in sorted(current, key=lambda w: w.number)[self.target :]:
            self._drain(worker)  # SIGTTOU
        serving = [w for w in current if w.state is WorkerState.SERVING]
        if len(serving) < self.target:
            return
        if state is SupervisorState.STARTING:
            self.set_state(SupervisorState.RUNNING)
            log.info("%d workers serving", len(serving))
            if self.on_running is not None:
                self.on_running()
        elif state is SupervisorState.RELOADING:
            self.set_state(SupervisorState.RUNNING)
            log.info("reload: %d new workers serving; draining the old ones", len(serving))
        if self.state is SupervisorState.RUNNING:
            for worker in list(self.workers.values()):
                if worker.generation != self.generation or worker.state is WorkerState.RETIRING:
                    self._drain(worker)  # its replacement serves

    def _spawn(self) -> Worker:
        numbers = {w.number for w in self.workers.values()}
        number = next(n for n in range(1, 2 * MAX_WORKERS + 1) if n not in numbers)
        boot_r, boot_w = os.pipe()
        notice_r, notice_w = os.pipe() if self.watcher is not None else (-1, -1)
        parent_pid = os.getpid()
        sys.stderr.flush()
        # Until the child has its own handlers, a signal sent to it would run ours and write
        # to our wake-up pipe, as if we had been signalled: keep them blocked across the fork.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNAL_ACTIONS)
        try:
            pid = os.fork()
            if pid == 0:  # the worker; it never returns from here
                os.close(boot_r)
                if notice_w >= 0:
                    os.close(notice_w)
                self._become_worker(number, boot_w, parent_pid, mask, notice_r)
        except OSError:
            for fd in (boot_r, boot_w, notice_r, notice_w):
                if fd >= 0:
                    os.close(fd)
            raise
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        os.close(boot_w)
        if notice_r >= 0:
            os.close(notice_r)
            os.set_blocking(notice_w, False)
        self.forks += 1
        self.scoreboard.claim(number, pid)
        now = time.monotonic()
        worker = Worker(number, pid, self.generation, boot_r, started=now, deadline=now + self.worker_timeout_s)
        if notice_w >= 0:
            worker.notice_pipe = notice_w
        self.workers[pid] = worker
        self._selector.register(boot_r, selectors.EVENT_READ, worker)
        log.info("worker %d (pid %d) booting", number, pid)
        return worker

    def _become_worker(
        self, number: int, boot_fd: int, parent_pid: int, mask: Iterable[int], notice_fd: int = -1
    ) -> None:
        status = WORKER_BOOT_ERROR
        try:
            signal.set_wakeup_fd(-1)
            for signum in (
                signal.SIGINT,
                signal.SIGHUP,
                signal.SIGTTIN,
                signal.SIGTTOU,
                signal.SIGUSR1,
                signal.SIGUSR2,
            ):
                signal.signal(signum, signal.SIG_IGN)  # run_worker sets SIGUSR1 once its access log is ready
            for signum in (signal.SIGTERM, signal.SIGCHLD):
                signal.signal(signum, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # a SIGTERM already pending acts now
            self._selector.close()
            for fd in [self._wake_r, self._wake_w] + [w.boot_pipe for w in self.workers.values() if w.boot_pipe]:
                os.close(fd)
            feed = None
            if self.watcher is not None:  # the supervisor's: its descriptor and the other workers' pipes
                self.watcher.close()
                for worker in self.workers.values():
                    if worker.notice_pipe is not None:
                        os.close(worker.notice_pipe)
                feed = Feed(notice_fd, self.watcher.epoch)
            set_this_worker(WorkerIdentity(number, self.scoreboard))
            handle = WorkerHandle(
                number, self.listener, self.scoreboard, boot_fd, parent_pid, self.worker_timeout_s, feed
            )
            try:
                status = self.worker_main(handle)
            except FatalBootError as exc:
                status = WORKER_FATAL_ERROR
                handle.failed(str(exc))  # the supervisor says it, once
            except BaseException as exc:
                message = "worker %d cannot start: %s" % (number, _describe(exc))
                if handle._boot_fd is None:  # it was serving: a crash, not a boot failure
                    message = "worker %d crashed: %s" % (number, _describe(exc))
                    status = 1
                logging.getLogger("reactor").error("%s", message, exc_info=not isinstance(exc, OSError))
                handle.failed(message)
        finally:
            logging.shutdown()
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(status)

    def _on_boot_pipe(self, worker: Worker) -> None:
        assert worker.boot_pipe is not None
        try:
            data = os.read(worker.boot_pipe, 4096)
        except OSError:
            data = b""
        if data.startswith(b"ready"):
            if worker.state is WorkerState.BOOTING:
                self._set_worker_state(worker, WorkerState.SERVING)
                worker.ready_at = time.monotonic()
                self._boot_failures = 0
                log.info("worker %d (pid %d) serving", worker.number, worker.pid)
        elif data:
            worker.error = data.decode("utf-8", "replace").strip()
        if not data or data.endswith(b"\n"):  # one message, then EOF
            self._close_boot_pipe(worker)

    def _close_boot_pipe(self, worker: Worker) -> None:
        if worker.boot_pipe is not None:
            self._selector.unregister(worker.boot_pipe)
            os.close(worker.boot_pipe)
            worker.boot_pipe = None

    def _drain(self, worker: Worker) -> None:
        if worker.state in (WorkerState.DRAINING, WorkerState.KILLED):
            return
        self._set_worker_state(worker, WorkerState.DRAINING)
        worker.deadline = time.monotonic() + self.shutdown_timeout_s + _KILL_GRACE_S
        _kill(worker.pid, signal.SIGTERM)

    def _drain_all(self) -> None:
        self.set_state(SupervisorState.DRAINING)
        for worker in self.workers.values():
            self._drain(worker)

    def _reap(self) -> None:
        while self.workers:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            worker = self.workers.pop(pid, None)
            if worker is None:
                continue
            self._close_boot_pipe(worker)
            self._close_notice_pipe(worker)
            self.scoreboard.clear(worker.number)
            fatal = os.WIFEXITED(status) and os.WEXITSTATUS(status) == WORKER_FATAL_ERROR
            self._on_exit(worker, _describe_status(status), fatal)

    def _on_exit(self, worker: Worker, how: str, fatal: bool = False) -> None:
        drained = WorkerState.DRAINING in (worker.state, worker.killed_from)
        if drained or self.state is SupervisorState.DRAINING:
            log.info("worker %d (pid %d) %s", worker.number, worker.pid, how)
            return
        if worker.ready_at:
            log.warning("worker %d (pid %d) %s; replacing it", worker.number, worker.pid, how)
            return  # _manage forks a new one
        # Died before it was ready: a boot failure.
        self._on_boot_failure(
            worker.error or "it %s before it was ready" % how,
            "worker %d (pid %d) %s at start" % (worker.number, worker.pid, how),
            fatal=fatal and bool(worker.error),
        )

    def _on_boot_failure(self, error: str, what: str, fatal: bool = False) -> None:
        """Back off before the next fork, and after MAX_BOOT_FAILURES in a row give up (at once if ``fatal``)."""
        self._boot_failures += 1
        self._last_error = error
        if fatal:
            log.error("workers cannot start: %s", error)  # another try would fail the same way
        elif self._boot_failures >= MAX_BOOT_FAILURES:
            log.error("workers cannot start (%d failures in a row): %s", self._boot_failures, self._last_error)
        if fatal or self._boot_failures >= MAX_BOOT_FAILURES:
            retiring = [w for w in self.workers.values() if w.state is WorkerState.RETIRING]
            if self.state is SupervisorState.RELOADING:
                self._abandon_reload()
            elif retiring and self.state is SupervisorState.RUNNING:
                self._keep_retiring(retiring)
            else:
                self.exit_status = 1
                self._drain_all()
            return
        pause = _BOOT_BACKOFF_S * 2 ** (self._boot_failures - 1)
        log.warning("%s; retrying in %.2f s", what, pause)
        self._next_spawn = time.monotonic() + pause

    def _keep_retiring(self, retiring: List[Worker]) -> None:
        """Replacements for --max-requests cannot start: the retiring workers serve on (a restart tries again)."""
        log.error("replacements cannot start; %d retiring worker(s) serve on", len(retiring))
        for worker in retiring:
            self._set_worker_state(worker, WorkerState.SERVING)
            self.scoreboard.set_retiring(worker.number, False)
        self._boot_failures = 0

    def _abandon_reload(self) -> None:
        """New workers cannot start: drain them and keep serving with the old ones."""
        log.error("reload abandoned; the previous workers go on serving")
        for worker in list(self.workers.values()):
            if worker.generation == self.generation:
                self._drain(worker)
        self.generation -= 1
        self._boot_failures = 0
        self.set_state(SupervisorState.RUNNING)

    def _check_deadlines(self) -> None:
        now = time.monotonic()
        for worker in self.workers.values():
            if worker.state is WorkerState.BOOTING and now > worker.deadline:
                worker.error = "not ready after %g s (--worker-timeout)" % self.worker_timeout_s
                log.error("worker %d (pid %d) %s; killing it", worker.number, worker.pid, worker.error)
                self._kill(worker)
            elif worker.state is WorkerState.SERVING or worker.state is WorkerState.RETIRING:
                silent_s = now - max(self.scoreboard.read(worker.number).heartbeat, worker.ready_at)
                if silent_s > self.worker_timeout_s:
                    log.error(
                        "worker %d (pid %d) silent for %.1f s (--worker-timeout %g); killing it",
                        worker.number,
                        worker.pid,
                        silent_s,
                        self.worker_timeout_s,
                    )
                    self._kill(worker)
            elif worker.state is WorkerState.DRAINING and now > worker.deadline:
                log.warning("worker %d (pid %d) still draining at the deadline; killing it", worker.number, worker.pid)
                self._kill(worker)

    def _kill(self, worker: Worker) -> None:
        worker.killed_from = worker.state
        self._set_worker_state(worker, WorkerState.KILLED)
        _kill(worker.pid, signal.SIGKILL)

    def _wait_all(self) -> None:
        for pid in list(self.workers):
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
            worker = self.workers.pop(pid)
            self._close_notice_pipe(worker)
            self.scoreboard.clear(worker.number)


def _note_signal(_signum: int, _frame: object) -> None:
    """Nothing: the C-level handler has already written the number to the wake-up pipe."""


def _kill(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass  # already exited; the reap will tell


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        where = " (%s)" % exc.filename if exc.filename else ""
        return "%s%s" % (exc.strerror.lower(), where)
    return str(exc) or type(exc).__name__


def _describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        try:
            return "was killed by %s" % signal.Signals(signum).name
        except ValueError:
            return "was killed by signal %d" % signum
    return "exited with status %d" % os.waitstatus_to_exitcode(status)

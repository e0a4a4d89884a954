"""WebSocket benchmark (issue 23): reactor's endpoints beside the websockets library, in one run.

Four measurements, each printed as a table, then the issue's targets, MET or NOT MET:

  echo        256-byte text messages echoed, one in flight per connection, on 1 connection
              and on 100: reactor's ``--websocket /echo=reactor.websocket:Echo`` against the
              websockets library's asyncio server (its C speedups installed; peers.py), the
              two taking turns run after run. Messages per second, round-trip p50/p99, CPU
              of server and client. Target: reactor/websockets >= 1.0x on both.
  broadcast   1,000 sockets hear one message, 20 times: p50/p99/max delivery. From a
              client's send to a broadcast endpoint of the live-reload endpoint's shape
              (ws_hub.py: a hello on open, then every message to every socket with
              reactor.websocket.broadcast); and, where this checkout has ``--live-reload``,
              from the save of a file to the live-reload endpoint's message (its debounce,
              50 ms of quiet, included) and from the first socket's delivery to each
              other's (the broadcast alone). Target: p99 under 100 ms.
  idle        N idle sessions (handshake and one echo each), opened on a fresh server:
              its RSS growth / N. Target: at most 4 KiB; websockets measured the same way.
  echo-instructions  instructions per echoed message under callgrind, both servers
              (ws_instructions.py): the echo's ratio without the machine's noise, user space only.
  instructions  the static keep-alive path without these flags, counted by callgrind
              (instructions.py, PYTHONHASHSEED=0): at most 2% over 118,000, the budget of
              the hand-over (issue 21) for all later work together.

The client is this process, pinned to one CPU with the servers on the other (taskset),
and cheap by construction: its frames are built once (masked, as a client's must be),
it counts reply bytes instead of parsing them, and the broadcast's delivery times are
the kernel's receive timestamps (SO_TIMESTAMPNS), not the moment Python got round to a
socket. Its CPU is printed beside the server's, so whether it limits a run shows.
Both servers log the same: warnings and errors to stderr, nothing per message.

Run from the repository root:
    python tests/benchmarks/ws_bench.py                  # 3 runs x 5 s per echo case: about 3 min
    python tests/benchmarks/ws_bench.py --quick          # 1 run x 2 s, 300 idle sessions
    python tests/benchmarks/ws_bench.py --parts echo --runs 5

Exit status: 0 when it measured, whatever the numbers; 1 if a server failed to start or
died (or on a harness error); 2 on bad arguments. Every server started is stopped.
"""

from __future__ import annotations

import argparse
import array
import base64
import hashlib
import os
import re
import resource
import select
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
import servers as srv  # noqa: E402
import ws_instructions  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
PAYLOAD_BYTES = 256
REPLY = b"\x81\x7e" + PAYLOAD_BYTES.to_bytes(2, "big")  # the head of the echo's unmasked text frame
REPLY_BYTES = len(REPLY) + PAYLOAD_BYTES
ECHO_PATH = "/echo"
HUB_PATH = "/hub"
LIVE_PATH = "/__reactor__/livereload"
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux; the socket module does not name it
TARGET_RATIO = 1.0
TARGET_P99_S = 0.100
TARGET_IDLE_BYTES = 4096
INSTRUCTIONS_BASE = 118_000  # SEAM.md: the static keep-alive path before the hand-over
INSTRUCTIONS_CEILING = round(INSTRUCTIONS_BASE * 1.02)
START_TIMEOUT_S = 20.0


# -- frames ---------------------------------------------------------------------------------


def client_frame(opcode: int, payload: bytes) -> bytes:
    """A masked client frame (RFC 6455 §5.2, §5.3), built once per run."""
    mask = os.urandom(4)
    size = len(payload)
    if size < 126:
        head = bytes((0x80 | opcode, 0x80 | size))
    else:
        head = bytes((0x80 | opcode, 0x80 | 126)) + size.to_bytes(2, "big")
    masked = bytes(byte ^ mask[index & 3] for index, byte in enumerate(payload))
    return head + mask + masked


CLOSE_FRAME = client_frame(0x8, (1000).to_bytes(2, "big"))


def split_frames(buf: bytearray) -> List[Tuple[int, bytes]]:
    """Take the whole (unmasked, server) frames off the front of ``buf``: (opcode, payload) each."""
    frames = []
    while len(buf) >= 2:
        size = buf[1] & 0x7F
        start = 2
        if size == 126:
            if len(buf) < 4:
                break
            size = int.from_bytes(buf[2:4], "big")
            start = 4
        elif size == 127:
            if len(buf) < 10:
                break
            size = int.from_bytes(buf[2:10], "big")
            start = 10
        if len(buf) < start + size:
            break
        frames.append((buf[0] & 0x0F, bytes(buf[start : start + size])))
        del buf[: start + size]
    return frames


def handshake(port: int, path: str, timeout_s: float = 10.0) -> Tuple[socket.socket, bytes]:
    """Open a WebSocket (RFC 6455 §4.1) on 127.0.0.1:``port``; the socket and any bytes after the 101."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout_s)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    key = base64.b64encode(os.urandom(16))
    sock.sendall(
        b"GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path.encode(), port, key)
    )
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            sock.close()
            raise ConnectionError("closed before the 101: %r" % data[:200])
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
    if not head.startswith(b"HTTP/1.1 101") or accept not in head:
        sock.close()
        raise ConnectionError("not a WebSocket handshake: %r" % head[:200])
    return sock, rest


def close_all(socks: List[socket.socket]) -> None:
    """Send each a Close (1000) and close it; the servers need not wait for a timeout."""
    for sock in socks:
        try:
            sock.setblocking(True)
            sock.settimeout(1.0)
            sock.sendall(CLOSE_FRAME)
        except OSError:
            pass
    for sock in socks:
        sock.close()


# -- servers --------------------------------------------------------------------------------


Server = srv.Server


def busy_s(server: Server) -> float:
    """CPU seconds the server has used so far, user and system."""
    return sum(server.cpu_seconds() or (0.0, 0.0))


def has_live_reload() -> bool:
    """Whether this checkout's command line has ``--live-reload`` (issue 23's other half)."""
    return "--live-reload" in (REPO / "reactor" / "cli.py").read_text(encoding="utf-8")


def server_command(name: str, port: int, docroot: Path) -> Tuple[List[str], Dict[str, str]]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(HERE)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    reactor = [sys.executable, "-m", "reactor", "--host", "127.0.0.1", "--port", str(port), "-d", str(docroot)]
    reactor += ["--log-level", "warning"]  # no access log: as the peer, warnings and errors only
    if name == "reactor":
        return reactor + ["--websocket", ECHO_PATH + "=reactor.websocket:Echo"], env
    if name == "reactor-hub":
        return reactor + ["--websocket", HUB_PATH + "=ws_hub:Hub"], env
    if name == "reactor-live":
        return reactor + ["--live-reload"], env
    if name == "websockets":
        return [sys.executable, str(HERE / "peers.py"), "websockets", str(port), str(docroot)], env
    raise ValueError(name)


def start(name: str, docroot: Path, tmp: Path, cpu: Optional[int], probe: str) -> Server:
    """Start server ``name`` pinned to ``cpu``; wait (bounded) until a WebSocket opens at ``probe``."""
    port = srv.free_port()
    cmd, env = server_command(name, port, docroot)
    cmd = srv.pin_prefix(cpu) + cmd
    log_path = tmp / ("%s.log" % name)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=str(REPO),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(name=name, port=port, proc=proc, log_path=log_path, pid=proc.pid, cmd=cmd)
    deadline = time.monotonic() + START_TIMEOUT_S
    delay = 0.01
    while True:
        if not server.alive():
            raise srv.ServerError(
                "%s exited before serving:\n%s" % (name, log_path.read_text(errors="replace")[-2000:])
            )
        try:
            sock, _ = handshake(port, probe, timeout_s=2.0)
        except OSError as exc:
            if time.monotonic() > deadline:
                server.stop()
                raise srv.ServerError(
                    "%s did not open a WebSocket within %.0f s: %s" % (name, START_TIMEOUT_S, exc)
                ) from None
            time.sleep(delay)  # a poll interval, not a wait for readiness
            delay = min(delay * 2, 0.2)
            continue
        close_all([sock])
        return server


def wait_quiet(server: Server, timeout_s: float = 5.0) -> None:
    """Until the server's CPU time stops growing for 0.2 s (it has finished with what was sent)."""
    deadline = time.monotonic() + timeout_s
    last = busy_s(server)
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = busy_s(server)
        if now == last:
            return
        last = now


def client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class OtherLoad:
    """User time that other programs took on the two pinned CPUs meanwhile (this machine is shared)."""

    def __init__(self, server: Server, cpus: Tuple[Optional[int], Optional[int]]) -> None:
        self.server = server
        self.cpus = cpus
        self.start = self.snapshot()

    def snapshot(self) -> Tuple[float, float, float, float]:
        server_cpu, client_cpu_id = self.cpus
        busy = [
            (srv.cpu_times(cpu) or (0.0, 0.0))[0] if cpu is not None else 0.0 for cpu in (server_cpu, client_cpu_id)
        ]
        return (
            busy[0],
            busy[1],
            (self.server.cpu_seconds() or (0.0, 0.0))[0],
            resource.getrusage(resource.RUSAGE_SELF).ru_utime,
        )

    def fraction(self, elapsed_s: float) -> float:
        if None in self.cpus:
            return 0.0
        end = self.snapshot()
        on_server = (end[0] - self.start[0]) - (end[2] - self.start[2])
        on_client = (end[1] - self.start[1]) - (end[3] - self.start[3])
        return max(0.0, on_server, on_client) / elapsed_s


# -- echo -----------------------------------------------------------------------------------


@dataclass
class EchoResult:
    messages_per_s: float
    p50_s: float
    p99_s: float
    server_cpu: float  # fraction of one CPU
    client_cpu: float
    other_load: float  # user time of other programs on either pinned CPU, fraction of one CPU (the larger)


CPUS: Tuple[Optional[int], Optional[int]] = (None, None)  # (the servers', the client's) once pinned


def echo_run(server: Server, connections: int, seconds: float, warmup_s: float = 1.0) -> EchoResult:
    """``connections`` sockets, one 256-byte text message in flight on each, for ``seconds``."""
    payload = bytes(0x61 + index % 26 for index in range(PAYLOAD_BYTES))
    frame = client_frame(0x1, payload)
    expected = REPLY + payload
    socks = [handshake(server.port, ECHO_PATH)[0] for _ in range(connections)]
    for sock in socks:  # one checked round trip each: the reply is what the benchmark counts on
        sock.sendall(frame)
        got = b""
        while len(got) < REPLY_BYTES:
            got += sock.recv(65536)
        if got != expected:
            raise srv.ServerError("%s echoed %r" % (server.name, got[:80]))
        sock.setblocking(False)
    poller = select.epoll()
    by_fd = {}
    for sock in socks:
        poller.register(sock.fileno(), select.EPOLLIN)
        by_fd[sock.fileno()] = sock
    have = dict.fromkeys(by_fd, 0)
    sent_at = {}
    clock = time.perf_counter
    start_at = clock()
    for fd, sock in by_fd.items():
        sent_at[fd] = clock()
        sock.send(frame)
    rtts = array.array("d")
    measuring = False
    done = 0
    measure_at = start_at + warmup_s
    end_at = float("inf")
    cpu0 = cpu_client0 = 0.0
    other = OtherLoad(server, CPUS)
    while True:
        now = clock()
        if not measuring and now >= measure_at:
            measuring = True
            done = 0
            del rtts[:]
            cpu0, cpu_client0 = busy_s(server), client_cpu()
            other = OtherLoad(server, CPUS)
            measure_at = now
            end_at = now + seconds
        elif measuring and now >= end_at:
            break
        for fd, _event in poller.poll(0.5):
            data = by_fd[fd].recv(65536)
            if not data:
                raise srv.ServerError("%s closed a connection" % server.name)
            count, have[fd] = divmod(have[fd] + len(data), REPLY_BYTES)
            if count:
                now = clock()
                done += count
                rtts.append(now - sent_at[fd])
                sent_at[fd] = now
                by_fd[fd].send(frame)
    elapsed = clock() - measure_at
    server_cpu = (busy_s(server) - cpu0) / elapsed
    mine = (client_cpu() - cpu_client0) / elapsed
    others = other.fraction(elapsed)
    poller.close()
    if any(have.values()):
        raise srv.ServerError("%s sent something other than whole echoes" % server.name)
    close_all(socks)
    ordered = sorted(rtts)
    return EchoResult(
        done / elapsed, ordered[len(ordered) // 2], ordered[int(len(ordered) * 0.99)], server_cpu, mine, others
    )


# -- broadcast ------------------------------------------------------------------------------


@dataclass
class BroadcastResult:
    label: str
    delays_s: List[float]  # one per delivery, every round
    spreads_s: List[float]  # from the round's first delivery
    client_cpu: float
    server_cpu: float

    def pct(self, values: List[float], fraction: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def kernel_time(ancillary: list) -> Optional[float]:
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
            seconds, nanoseconds = struct.unpack("qq", data[:16])
            return seconds + nanoseconds / 1e9
    return None


class Listeners:
    """``count`` open sockets at ``path``; each round, the time every one of them received one message."""

    def __init__(self, port: int, path: str, count: int) -> None:
        self.socks: List[socket.socket] = []
        self.buffers: Dict[int, bytearray] = {}
        for _ in range(count):
            sock, rest = handshake(port, path)
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            sock.setblocking(False)
            self.socks.append(sock)
            self.buffers[sock.fileno()] = bytearray(rest)
        self.poller = select.epoll()
        self.by_fd = {sock.fileno(): sock for sock in self.socks}
        for fd in self.by_fd:
            self.poller.register(fd, select.EPOLLIN)
        self.ancillary = socket.CMSG_SPACE(16)
        hellos = self.receive(deadline_s=20.0)
        if any(b'"hello"' not in message for message, _ in hellos.values()):
            raise srv.ServerError("a socket's first message was not a hello")

    def receive(self, deadline_s: float = 10.0) -> Dict[int, Tuple[bytes, float]]:
        """Until every socket has one more whole text message: {fd: (message, kernel receive time)}."""
        got: Dict[int, Tuple[bytes, float]] = {}
        for fd, buf in self.buffers.items():  # a message that came with the 101
            frames = split_frames(buf)
            if frames:
                got[fd] = (frames[0][1], time.time())
        deadline = time.monotonic() + deadline_s
        while len(got) < len(self.socks):
            if time.monotonic() > deadline:
                raise srv.ServerError("only %d of %d sockets heard the broadcast" % (len(got), len(self.socks)))
            for fd, _event in self.poller.poll(0.5):
                data, ancillary, _flags, _addr = self.by_fd[fd].recvmsg(65536, self.ancillary)
                if not data:
                    raise srv.ServerError("the server closed a listening socket")
                buf = self.buffers[fd]
                buf += data
                frames = split_frames(buf)
                if frames and fd not in got:
                    got[fd] = (frames[0][1], kernel_time(ancillary) or time.time())
        return got

    def close(self) -> None:
        self.poller.close()
        close_all(self.socks)


def broadcast_rounds(
    server: Server, path: str, clients: int, rounds: int, label: str, trigger: Callable[[int, "Listeners"], float]
) -> BroadcastResult:
    """``rounds`` times: ``trigger`` makes the server broadcast (returning when, in wall-clock time), then time it."""
    listeners = Listeners(server.port, path, clients)
    delays: List[float] = []
    spreads: List[float] = []
    cpu0, client0, wall0 = busy_s(server), client_cpu(), time.monotonic()
    try:
        for number in range(1, rounds + 1):
            sent_at = trigger(number, listeners)
            got = listeners.receive()
            times = [at for _message, at in got.values()]
            first = min(times)
            delays += [at - sent_at for at in times]
            spreads += [at - first for at in times]
        wall = time.monotonic() - wall0
        client, serving = (client_cpu() - client0) / wall, (busy_s(server) - cpu0) / wall
    finally:
        listeners.close()
    return BroadcastResult(label, delays, spreads, client, serving)


def hub_trigger(number: int, listeners: Listeners) -> float:
    """The first socket sends the round's message; the hub broadcasts it to all (the sender too)."""
    message = client_frame(0x1, b'{"type": "reload", "paths": ["/index.html"], "epoch": %d}' % number)
    sock = listeners.socks[0]
    at = time.time()
    sock.send(message)
    return at


def save_trigger(docroot: Path) -> Callable[[int, Listeners], float]:
    """Save a page in the served folder, as an editor would (write, close): live reload tells every socket."""

    def trigger(number: int, listeners: Listeners) -> float:
        with open(docroot / "index.html", "wb") as page:
            page.write(b"<!doctype html><title>bench</title><body><p>version %d</p></body>\n" % number)
        return time.time()

    return trigger


# -- idle -----------------------------------------------------------------------------------


def idle_run(server: Server, sessions: int) -> Tuple[int, int, float]:
    """(RSS before, RSS after, bytes per session) for ``sessions`` idle sessions on a fresh ``server``."""
    payload = b"x" * 16
    frame = client_frame(0x1, payload)
    reply_bytes = 2 + len(payload)

    def open_sessions(count: int) -> List[socket.socket]:
        socks = []
        for _ in range(count):
            sock, rest = handshake(server.port, ECHO_PATH)
            sock.sendall(frame)
            while len(rest) < reply_bytes:
                rest += sock.recv(65536)
            socks.append(sock)
        return socks

    close_all(open_sessions(100))  # warm: code paths taken, arenas made
    wait_quiet(server)
    before = server.rss() or 0
    socks = open_sessions(sessions)
    wait_quiet(server)
    after = server.rss() or 0
    close_all(socks)
    return before, after, (after - before) / sessions


# -- instructions ---------------------------------------------------------------------------


def instructions(runs: int = 3) -> Tuple[Optional[float], str]:
    """Instructions per static keep-alive request (instructions.py under callgrind), the least of ``runs``; or None and why not.

    The count moves by about 1% from run to run (the loop's passes and the client's turns
    do not fall the same way every time): the least of three is the path's cost.
    """
    if shutil.which("valgrind") is None:
        return None, "valgrind is not installed (apt-get install valgrind)"
    env = dict(os.environ, PYTHONHASHSEED="0")
    counts = []
    lines = []
    for _ in range(runs):
        result = subprocess.run(
            [sys.executable, str(HERE / "instructions.py")], capture_output=True, text=True, env=env, timeout=1800
        )
        match = re.search(r"instructions per request[^:]*: (\d+)", result.stdout)
        if result.returncode or match is None:
            return None, (result.stdout + result.stderr)[-500:]
        counts.append(float(match.group(1)))
        lines.append(result.stdout.strip())
    lines.append("least of %d: %.0f (all: %s)" % (runs, min(counts), ", ".join("%.0f" % c for c in counts)))
    return min(counts), "\n".join(lines)


# -- the run --------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return "%.2fms" % (seconds * 1e3) if seconds < 0.01 else "%.1fms" % (seconds * 1e3)


PARTS = ("echo", "broadcast", "idle", "echo-instructions", "instructions")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="echo runs per server and case (medians reported)")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of one echo run")
    parser.add_argument("--connections", default="1,100", help="echo cases: connections, comma-separated")
    parser.add_argument("--broadcast-clients", type=int, default=1000)
    parser.add_argument("--broadcast-rounds", type=int, default=20)
    parser.add_argument("--idle-sessions", type=int, default=2000)
    parser.add_argument("--parts", default=",".join(PARTS), help="which measurements (default: all)")
    parser.add_argument("--quick", action="store_true", help="1 run x 2 s, 300 idle sessions, 5 rounds")
    parser.add_argument("--no-pin", action="store_true", help="do not pin server and client to CPUs")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    if parts - set(PARTS):
        parser.error("--parts takes %s" % ", ".join(PARTS))
    if args.quick:
        args.runs, args.seconds, args.idle_sessions, args.broadcast_rounds = 1, 2.0, 300, 5
    try:
        import websockets  # noqa: F401  (the peer)
        from websockets import speedups  # noqa: F401
    except ImportError as exc:
        parser.error("the peer needs the websockets library with its C speedups: pip install websockets (%s)" % exc)
    cases = [int(value) for value in args.connections.split(",")]
    srv.raise_nofile_limit(4 * max(args.broadcast_clients, args.idle_sessions, *cases) + 1024)

    cpus = srv.allowed_cpus()
    pin = not args.no_pin and bool(shutil.which("taskset")) and len(cpus) >= 2
    server_cpu = cpus[0] if pin else None
    if pin:
        os.sched_setaffinity(0, {cpus[1]})
        global CPUS
        CPUS = (cpus[0], cpus[1])
    print(
        "ws_bench: %s; python %s; websockets %s"
        % (
            "servers on CPU %d, client on CPU %d (taskset)" % (cpus[0], cpus[1]) if pin else "no CPU pinning",
            sys.version.split()[0],
            websockets.__version__,
        )
    )
    print("date: %s" % time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    summary: List[str] = []
    status = 0
    with srv.workspace("reactor-wsbench-") as tmp:
        docroot = tmp / "docroot"
        docroot.mkdir()
        (docroot / "index.html").write_bytes(b"<!doctype html><title>bench</title><body><p>bench</p></body>\n")
        running: List[Server] = []
        try:
            if "echo" in parts:
                summary += echo_part(args, cases, docroot, tmp, server_cpu, running)
            if "broadcast" in parts:
                summary += broadcast_part(args, docroot, tmp, server_cpu, running)
            if "idle" in parts:
                summary += idle_part(args, docroot, tmp, server_cpu, running)
        except srv.ServerError as exc:
            print("error: %s" % exc, file=sys.stderr)
            status = 1
        finally:
            srv.stop_process_groups([server.proc for server in running])
    if "echo-instructions" in parts:
        summary += echo_instructions_part()
    if "instructions" in parts:
        print("\n== instructions per static keep-alive request, no WebSocket flags (instructions.py, callgrind)")
        count, text = instructions()
        print(text)
        if count is None:
            summary.append("instructions: not measured")
        else:
            verdict = "MET" if count <= INSTRUCTIONS_CEILING else "NOT MET"
            summary.append(
                "instructions per static keep-alive request (least of 3) %.0f <= %d (2%% over %d): %s"
                % (count, INSTRUCTIONS_CEILING, INSTRUCTIONS_BASE, verdict)
            )
    print("\n== targets")
    for line in summary:
        print(line)
    return status


def echo_part(
    args: argparse.Namespace, cases: List[int], docroot: Path, tmp: Path, cpu: Optional[int], running: List[Server]
) -> List[str]:
    names = ["reactor", "websockets"]
    servers = {}
    for name in names:
        servers[name] = start(name, docroot, tmp, cpu, ECHO_PATH)
        running.append(servers[name])
    summary = []
    for connections in cases:
        results: Dict[str, List[EchoResult]] = {name: [] for name in names}
        for _run in range(args.runs):
            for name in names:  # round-robin: drift in the machine's speed falls on both
                results[name].append(echo_run(servers[name], connections, args.seconds))
        print(
            "\n== echo: 256-byte text messages, %d connection%s, one message in flight on each (median of %d x %g s)"
            % (connections, "" if connections == 1 else "s", args.runs, args.seconds)
        )
        print("%-12s %10s %10s %10s %12s %7s" % ("server", "msg/s", "rtt p50", "rtt p99", "cpu srv/cli", "others"))
        medians = {}
        for name in names:
            runs = results[name]
            rate = statistics.median(r.messages_per_s for r in runs)
            medians[name] = rate
            print(
                "%-12s %10.0f %10s %10s %6.0f%%/%3.0f%% %6.0f%%"
                % (
                    name,
                    rate,
                    ms(statistics.median(r.p50_s for r in runs)),
                    ms(statistics.median(r.p99_s for r in runs)),
                    100 * statistics.median(r.server_cpu for r in runs),
                    100 * statistics.median(r.client_cpu for r in runs),
                    100 * max(r.other_load for r in runs),
                )
            )
        ratio = medians["reactor"] / medians["websockets"]
        each = ", ".join("%.2f" % (a.messages_per_s / b.messages_per_s) for a, b in zip(*results.values()))
        print("ratio reactor/websockets: %.2fx (run by run: %s)" % (ratio, each))
        summary.append(
            "echo, %d connection%s: reactor/websockets %.2fx >= %.1fx: %s"
            % (
                connections,
                "" if connections == 1 else "s",
                ratio,
                TARGET_RATIO,
                "MET" if ratio >= TARGET_RATIO else "NOT MET",
            )
        )
    for name in names:
        servers[name].stop()
        running.remove(servers[name])
    return summary


def echo_instructions_part() -> List[str]:
    print(
        "\n== instructions per echoed 256-byte message, 1 connection, client included (ws_instructions.py, callgrind)"
    )
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind): not measured")
        return ["echo instructions: not measured"]
    counts = {name: ws_instructions.per_message(name, 2000, 1) for name in ("reactor", "websockets")}
    for name, value in counts.items():
        print("%-12s %10.0f" % (name, value))
    ratio = counts["websockets"] / counts["reactor"]
    print(
        "ratio websockets/reactor: %.2fx (reactor does the same work in %.0f%% of the instructions)"
        % (ratio, 100 / ratio)
    )
    return ["echo, instructions per message: websockets/reactor %.2fx (user space only; not a target)" % ratio]


def broadcast_part(
    args: argparse.Namespace, docroot: Path, tmp: Path, cpu: Optional[int], running: List[Server]
) -> List[str]:
    results = []
    hub = start("reactor-hub", docroot, tmp, cpu, HUB_PATH)
    running.append(hub)
    try:
        results.append(
            broadcast_rounds(
                hub, HUB_PATH, args.broadcast_clients, args.broadcast_rounds, "hub: from the client's send", hub_trigger
            )
        )
    finally:
        hub.stop()
        running.remove(hub)
    if has_live_reload():
        live = start("reactor-live", docroot, tmp, cpu, LIVE_PATH)
        running.append(live)
        try:
            results.append(
                broadcast_rounds(
                    live,
                    LIVE_PATH,
                    args.broadcast_clients,
                    args.broadcast_rounds,
                    "live reload: from the save",
                    save_trigger(docroot),
                )
            )
        finally:
            live.stop()
            running.remove(live)
    else:
        print("\nnote: this checkout has no --live-reload: the broadcast is measured on ws_hub.py's endpoint only")
    print(
        "\n== broadcast: one message to %d sockets, %d rounds (delivery = kernel receive timestamp)"
        % (args.broadcast_clients, args.broadcast_rounds)
    )
    print("%-34s %9s %9s %9s  %-30s %s" % ("from", "p50", "p99", "max", "first->each p50/p99/max", "cpu srv/cli"))
    summary = []
    for result in results:
        d, s = result.delays_s, result.spreads_s
        print(
            "%-34s %9s %9s %9s  %-30s %3.0f%%/%.0f%%"
            % (
                result.label,
                ms(result.pct(d, 0.5)),
                ms(result.pct(d, 0.99)),
                ms(max(d)),
                "%s / %s / %s" % (ms(result.pct(s, 0.5)), ms(result.pct(s, 0.99)), ms(max(s))),
                100 * result.server_cpu,
                100 * result.client_cpu,
            )
        )
        # The hub's clock starts at the send that causes the broadcast. Live reload's starts
        # at the save, 50 ms of debounce before any broadcast: its broadcast is timed from the
        # first delivery instead (on loopback, the first send's segment arrives as it is sent).
        live = result.label.startswith("live")
        p99 = result.pct(s if live else d, 0.99)
        summary.append(
            "broadcast to %d, %s: p99 %s < %s: %s"
            % (
                args.broadcast_clients,
                "live reload, from its first delivery" if live else result.label,
                ms(p99),
                ms(TARGET_P99_S),
                "MET" if p99 < TARGET_P99_S else "NOT MET",
            )
        )
        if live:
            summary.append(
                "  (live reload from the save to each of %d sockets, debounce included: p95 %s; the save-to-message"
                " target, p95 < 100 ms, is livereload_latency.py's, for one socket)"
                % (args.broadcast_clients, ms(result.pct(d, 0.95)))
            )
    return summary


def idle_part(
    args: argparse.Namespace, docroot: Path, tmp: Path, cpu: Optional[int], running: List[Server]
) -> List[str]:
    print(
        "\n== idle sessions: %d opened on a fresh server (handshake and one 16-byte echo each), RSS growth / N"
        % args.idle_sessions
    )
    print("%-12s %12s %12s %18s" % ("server", "RSS before", "RSS after", "bytes per session"))
    per: Dict[str, float] = {}
    for name in ("reactor", "websockets"):
        server = start(name, docroot, tmp, cpu, ECHO_PATH)
        running.append(server)
        try:
            before, after, per[name] = idle_run(server, args.idle_sessions)
        finally:
            server.stop()
            running.remove(server)
        print("%-12s %12s %12s %18.0f" % (name, srv.fmt_bytes(before), srv.fmt_bytes(after), per[name]))
    print("ratio websockets/reactor: %.2fx" % (per["websockets"] / per["reactor"]))
    return [
        "idle session: reactor %.0f bytes <= %d: %s (websockets %.0f bytes)"
        % (
            per["reactor"],
            TARGET_IDLE_BYTES,
            "MET" if per["reactor"] <= TARGET_IDLE_BYTES else "NOT MET",
            per["websockets"],
        )
    ]


if __name__ == "__main__":
    sys.exit(main())

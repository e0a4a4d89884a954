"""Idle keep-alive connections benchmark for issue 6.

Measures what N idle keep-alive connections cost a server, and whether it
still answers a fresh client quickly while holding them:

  1. starts the server (reactor by default; same way as load.py) on a free
     loopback port, pinned to one CPU (this client pins itself to another);
  2. warms it up with a few requests, then reads its RSS (VmRSS) when idle;
  3. opens N connections at a bounded pace (--rate per second), sends one
     `GET / HTTP/1.1` on each and reads the response, so each one is a real
     idle keep-alive connection, and keeps them open;
  4. reads the server's RSS again: growth / N = bytes per idle connection;
  5. times --fresh requests from a fresh client (new connection each),
     sequentially, while the N are held: median and max in ms;
  6. checks how many of the N the server closed meanwhile, closes everything
     and stops the server.

Targets (issue 6): <= 2 KiB of RSS per idle connection, <= 5 ms fresh-client
latency (median; the max is shown too).

Run from the repository root:
    python tests/benchmarks/idle_clients.py --connections 10000
    python tests/benchmarks/idle_clients.py --connections 10000 --rate 2000/s --server nginx

It raises its own RLIMIT_NOFILE soft limit to the hard limit (the server
inherits it). The whole run is bounded by --time-limit seconds.
Exit status: 0 when it measured, whatever the numbers; 1 if the server failed
to start or died; 2 on a setup error (e.g. file descriptor limit too low).
"""

from __future__ import annotations

import argparse
import errno
import os
import selectors
import shlex
import signal
import socket
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import servers as srv  # noqa: E402

TARGET_BYTES_PER_CONN = 2048
TARGET_FRESH_MS = 5.0
MAX_PENDING = 500  # connections being set up at once


class Conn:
    """One client connection: connect, send one request, read the response."""

    __slots__ = ("sock", "state", "buf", "need", "out")

    def __init__(self, sock: socket.socket, request: bytes):
        self.sock = sock
        self.state = "connecting"
        self.buf = b""
        self.need = None  # total bytes of the response, once known
        self.out = request

    def on_readable(self) -> bool:
        """Read what is there; True once a full response is in."""
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("server closed the connection")
        self.buf += data
        if self.need is None and b"\r\n\r\n" in self.buf:
            head, _, _ = self.buf.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            if status != 200:
                raise ConnectionError(f"status {status}")
            length = None
            for line in lines[1:]:
                k, _, v = line.partition(":")
                if k.strip().lower() == "content-length":
                    length = int(v)
            if length is None:
                raise ConnectionError("response without Content-Length")
            self.need = len(head) + 4 + length
        return self.need is not None and len(self.buf) >= self.need


def open_idle_connections(
    port: int, n: int, rate: float, deadline: float, path: str, idle: list[socket.socket]
) -> dict[str, int]:
    """Open N keep-alive connections at RATE per second, one request each.
    Appends the sockets that got a full response to IDLE (so the caller
    can close them whatever happens); returns failure counts."""
    request = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: idle_clients\r\n\r\n").encode()
    sel = selectors.DefaultSelector()
    failures: dict[str, int] = {}
    pending = 0
    started = 0
    t0 = time.monotonic()
    last_report = t0

    def fail(conn: Conn, why: str) -> None:
        nonlocal pending
        failures[why] = failures.get(why, 0) + 1
        sel.unregister(conn.sock)
        conn.sock.close()
        pending -= 1

    try:
        while len(idle) < n and time.monotonic() < deadline and (started < n or pending):
            now = time.monotonic()
            # Start as many as the pace allows, keeping the number in setup bounded.
            allowed = min(n, int((now - t0) * rate) + 1)
            while started < allowed and pending < MAX_PENDING:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                err = s.connect_ex(("127.0.0.1", port))
                started += 1
                if err not in (0, errno.EINPROGRESS):
                    why = "connect " + errno.errorcode.get(err, str(err))
                    failures[why] = failures.get(why, 0) + 1
                    s.close()
                    continue
                sel.register(s, selectors.EVENT_WRITE, Conn(s, request))
                pending += 1
            for key, _ in sel.select(max(0.0, min(0.01, deadline - now))):
                conn: Conn = key.data
                try:
                    if conn.state == "connecting":
                        err = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                        if err:
                            fail(conn, "connect " + errno.errorcode.get(err, str(err)))
                            continue
                        conn.state = "sending"
                    if conn.state == "sending":
                        sent = conn.sock.send(conn.out)
                        conn.out = conn.out[sent:]
                        if not conn.out:
                            conn.state = "reading"
                            sel.modify(conn.sock, selectors.EVENT_READ, conn)
                        continue
                    if conn.on_readable():
                        sel.unregister(conn.sock)
                        pending -= 1
                        idle.append(conn.sock)
                except (OSError, ValueError, IndexError) as e:
                    detail = f" {e}" if isinstance(e, ConnectionError) else ""
                    fail(conn, type(e).__name__ + detail)
            if now - last_report >= 2:
                last_report = now
                print(f"  ... {len(idle)} idle, {pending} in setup, {sum(failures.values())} failed", flush=True)
    finally:
        # Whatever is still in setup (time limit, or interrupted) is dropped.
        for key in list(sel.get_map().values()):
            failures["unfinished at time limit"] = failures.get("unfinished at time limit", 0) + 1
            key.fileobj.close()
        sel.close()
    return failures


def fresh_request_ms(port: int, path: str, timeout: float) -> float:
    """Time one request on a new connection: connect -> full response."""
    t = time.perf_counter()
    status, _ = srv.http_get(port, path, timeout=timeout)
    elapsed = (time.perf_counter() - t) * 1000
    if status != 200:
        raise ConnectionError(f"fresh request got status {status}")
    return elapsed


def count_closed(socks: list[socket.socket]) -> int:
    """How many of SOCKS the server has closed (readable with EOF or error)."""
    closed = 0
    sel = selectors.DefaultSelector()
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
    for key, _ in sel.select(0):
        try:
            if key.fileobj.recv(1, socket.MSG_PEEK) == b"":
                closed += 1
        except OSError:
            closed += 1
    sel.close()
    return closed


def parse_rate(text: str) -> float:
    value = float(text.strip().removesuffix("/s"))
    if value <= 0:
        raise argparse.ArgumentTypeError("rate must be > 0")
    return value


def interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--connections", type=int, default=10000)
    p.add_argument("--rate", type=parse_rate, default=2000.0, help="new connections per second, e.g. 2000/s (default)")
    p.add_argument("--server", default="reactor", choices=srv.ALL_SERVERS)
    p.add_argument("--server-args", default="", help="extra arguments for the server command (one string)")
    p.add_argument("--path", default="/", help="request path (default /)")
    p.add_argument("--fresh", type=int, default=20, help="fresh requests to time")
    p.add_argument("--time-limit", type=float, default=120, help="give up after this many seconds (default 120)")
    args = p.parse_args(argv)
    if args.connections < 1 or args.fresh < 1:
        p.error("--connections and --fresh must be >= 1")

    signal.signal(signal.SIGTERM, interrupt)  # unwind like Ctrl-C: cleanup runs
    signal.signal(signal.SIGINT, interrupt)
    deadline = time.monotonic() + args.time_limit
    needed = args.connections + args.fresh + 256
    nofile = srv.raise_nofile_limit(needed)
    if nofile < needed:
        print(
            f"RLIMIT_NOFILE is {nofile}, need about {needed} for "
            f"{args.connections} connections (raise the hard limit: ulimit -Hn)",
            file=sys.stderr,
        )
        return 2
    reason = srv.missing_reason(args.server)
    if reason:
        print(f"SKIP {srv.LABELS[args.server]}: not installed: {reason}")
        return 2

    cpus = srv.allowed_cpus()
    server_cpu = cpus[0] if len(cpus) >= 2 else None
    if server_cpu is not None:
        os.sched_setaffinity(0, {cpus[1]})
    label = srv.LABELS[args.server]
    print(
        f"idle connections benchmark: {label}, {args.connections} connections at "
        f"{args.rate:g}/s, RLIMIT_NOFILE {nofile}, "
        + (f"server on CPU {cpus[0]}, client on CPU {cpus[1]}" if server_cpu is not None else "no CPU pinning")
    )

    idle: list[socket.socket] = []
    with srv.workspace() as tmp:
        docroot = srv.make_docroot(tmp)
        try:
            server = srv.start_server(
                args.server,
                docroot,
                tmp,
                cpu=server_cpu,
                extra_args=shlex.split(args.server_args),
                # Keep-alive timeout well past the run, for every server.
                idle_timeout=max(600, int(args.time_limit) + 60),
                max_connections=args.connections + args.fresh + 64,
            )
        except srv.ServerError as e:
            print(f"FAIL {label}: could not start: {e}")
            return 1
        try:
            print(f"  started {label} {server.url} pid {server.pid}: {' '.join(server.cmd)}")
            try:
                for _ in range(args.fresh):  # warm-up
                    fresh_request_ms(server.port, args.path, timeout=5)
            except OSError as e:
                print(
                    f"FAIL {label}: warm-up request to {args.path} failed: {type(e).__name__}: {e}\n{server.log_tail()}"
                )
                return 1
            rss_idle = server.rss()
            print(
                f"  RSS when idle (after {args.fresh} warm-up requests): {rss_idle} bytes ({srv.fmt_bytes(rss_idle)})"
            )

            t = time.monotonic()
            failures = open_idle_connections(server.port, args.connections, args.rate, deadline, args.path, idle)
            took = time.monotonic() - t
            if not server.alive():
                print(f"FAIL {label} died while connections were opened\n{server.log_tail()}")
                return 1
            closed_early = count_closed(idle)
            rss_held = server.rss()
            print(
                f"  opened {len(idle)} idle keep-alive connections in {took:.1f}s"
                + (f"; failures: {failures}" if failures else "")
            )
            print(
                f"  RSS with them held: {rss_held} bytes ({srv.fmt_bytes(rss_held)})"
                + (f"; {closed_early} already closed by the server" if closed_early else "")
            )

            times, fresh_errors = [], []
            for _ in range(args.fresh):
                if time.monotonic() > deadline:
                    fresh_errors.append("time limit")
                    break
                try:
                    times.append(fresh_request_ms(server.port, args.path, timeout=5))
                except OSError as e:
                    fresh_errors.append(f"{type(e).__name__}: {e}")
            closed = count_closed(idle)
            rss_end = server.rss()
            alive = server.alive()
        except KeyboardInterrupt:
            print("\ninterrupted; closing connections and stopping the server", file=sys.stderr)
            return 130
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):  # cleanup runs to the end
                signal.signal(sig, signal.SIG_IGN)
            for s in idle:
                s.close()
            server.stop()

    print()
    print(f"== idle keep-alive connections: {label}")
    if not alive:
        print(f"  {label} died during the fresh requests")
        return 1
    held = len(idle) - closed
    print(
        f"  connections held idle:      {len(idle)} of {args.connections} requested"
        f" ({closed} closed by the server before the end)"
    )
    per_conn = None
    held_at_rss = len(idle) - closed_early
    if rss_idle is not None and rss_held is not None and held_at_rss > 0:
        per_conn = (rss_held - rss_idle) / held_at_rss
        print(
            f"  server RSS idle -> held:    {srv.fmt_bytes(rss_idle)} -> "
            f"{srv.fmt_bytes(rss_held)} (+{rss_held - rss_idle} bytes); "
            f"at the end {srv.fmt_bytes(rss_end)}"
        )
        print(f"  RSS growth per connection:  {per_conn:.0f} bytes (over the {held_at_rss} open when RSS was read)")
    if times:
        med, worst = statistics.median(times), max(times)
        print(
            f"  fresh-client request:       median {med:.2f} ms, max {worst:.2f} ms "
            f"over {len(times)} requests while {held} connections were held"
        )
    else:
        med = worst = None
    if fresh_errors:
        print(f"  fresh-request errors:       {len(fresh_errors)} ({fresh_errors[0]})")

    print()
    print("== targets")
    if per_conn is None:
        print(
            f"  n/a      RSS per idle connection <= {TARGET_BYTES_PER_CONN} bytes: "
            f"not measured (no connection held open)"
        )
    else:
        ok = per_conn <= TARGET_BYTES_PER_CONN
        print(
            f"  {'MET' if ok else 'NOT MET':<8} RSS per idle connection <= "
            f"{TARGET_BYTES_PER_CONN} bytes: {per_conn:.0f} bytes "
            f"({held_at_rss} connections)"
        )
    if med is None:
        print(f"  n/a      fresh-client latency <= {TARGET_FRESH_MS:g} ms: not measured")
    else:
        ok = med <= TARGET_FRESH_MS
        print(
            f"  {'MET' if ok else 'NOT MET':<8} fresh-client latency <= "
            f"{TARGET_FRESH_MS:g} ms: median {med:.2f} ms (max {worst:.2f} ms)"
        )
    if len(idle) < args.connections or closed:
        print(f"  note: only {held} of {args.connections} connections were held at the end; the numbers are for those")
    return 0


if __name__ == "__main__":
    sys.exit(main())

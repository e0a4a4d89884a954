"""SO_REUSEPORT against one shared listener: how evenly do forked workers share new connections?

Forks ``--workers`` processes, each running an unchanged :class:`reactor.server.Server`, in
one of two modes:

    shared      the parent opens one listening socket; every child inherits it and
                waits for readability on it (all wake, one wins accept(2))
    reuseport   each child opens its own socket with SO_REUSEPORT on the same port;
                the kernel hashes each new connection's 4-tuple to one of them

Then ``--clients`` threads make ``--connections`` new connections in total (one
``GET /index.html`` each, ``Connection: close``), and each child reports how many it
accepted and the CPU time it used (from wait4's rusage). It also shows what becomes of
connections waiting in a worker's queue when that worker stops (``--stop-test``):
with SO_REUSEPORT they are reset; with a shared listener another worker serves them.

Bounded and loopback only. Run from the repository root:

    python tests/benchmarks/listener_balance.py                 # both modes, 3000 connections
    python tests/benchmarks/listener_balance.py --mode shared --connections 5000
    python tests/benchmarks/listener_balance.py --pin --workers 1    # then --workers 2: the cost of a second
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from reactor.config import Config  # noqa: E402
from reactor.server import Server  # noqa: E402

RESOURCES = Path(__file__).resolve().parents[2] / "resources"


PIN = {"server": None, "client": None}  # CPU sets, with --pin


def child(config: Config, sock: "socket.socket | None", report_fd: int, ready_fd: int) -> None:
    if PIN["server"]:
        os.sched_setaffinity(0, PIN["server"])
    server = Server(config)
    server.listen(sock)

    def stop(_signum: int, _frame: object) -> None:
        server.loop.call_soon_threadsafe(server.shutdown, False)

    signal.signal(signal.SIGTERM, stop)
    os.write(ready_fd, b"r")
    server.serve_forever()
    os.write(report_fd, ("%d %d\n" % (os.getpid(), server.stats.accepted)).encode())
    os._exit(0)


def reuseport_socket(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    return sock


def run(mode: str, workers: int, connections: int, clients: int, root: Path) -> dict:
    holder = reuseport_socket(0)  # picks the port once, for every worker
    port = holder.getsockname()[1]
    if mode == "shared":
        holder.listen(128)
    config = Config(host="127.0.0.1", port=port, root=root, pool_size=1, cache_max_bytes=1 << 20)
    report_r, report_w = os.pipe()
    ready_r, ready_w = os.pipe()
    pids = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            os.close(report_r)
            os.close(ready_r)
            if mode == "shared":
                child(config, holder, report_w, ready_w)
            holder.close()
            sock = reuseport_socket(port)
            sock.listen(128)
            child(config, sock, report_w, ready_w)
        pids.append(pid)
    os.close(report_w)
    os.close(ready_w)
    for _ in range(workers):
        os.read(ready_r, 1)
    if mode == "reuseport":
        holder.close()  # the workers' sockets hold the port now

    failures = [0]
    per_client = connections // clients

    def client() -> None:
        for _ in range(per_client):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                conn.request("GET", "/index.html", headers={"Connection": "close"})
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    failures[0] += 1
            except OSError:
                failures[0] += 1
            finally:
                conn.close()

    if PIN["client"]:
        os.sched_setaffinity(0, PIN["client"])
    started = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    cpu = {}
    for pid in pids:
        os.kill(pid, signal.SIGTERM)
    for pid in pids:
        _pid, _status, usage = os.wait4(pid, 0)
        cpu[pid] = usage.ru_utime + usage.ru_stime
    counts = {}
    with os.fdopen(report_r) as reports:
        for line in reports:
            pid_text, accepted = line.split()
            counts[int(pid_text)] = int(accepted)
    os.close(ready_r)
    total = sum(counts.values())
    return {
        "mode": mode,
        "elapsed_s": elapsed,
        "failures": failures[0],
        "shares": sorted(counts[pid] / total for pid in pids),
        "cpu_s": sum(cpu.values()),
        "per_cpu_s": total / sum(cpu.values()),
    }


def stop_test(mode: str, root: Path) -> "tuple[int, int]":
    """Queue connections while no worker accepts, stop one worker, count what survives.

    Two workers; both are stopped (SIGSTOP) so connections pile up in the accept queue(s);
    then worker 1 closes its listener and exits, worker 2 resumes. Returns (answered, failed).
    """
    holder = reuseport_socket(0)
    port = holder.getsockname()[1]
    if mode == "shared":
        holder.listen(128)
    config = Config(host="127.0.0.1", port=port, root=root, pool_size=1, shutdown_timeout_s=1)
    report_r, report_w = os.pipe()
    ready_r, ready_w = os.pipe()
    pids = []
    for _ in range(2):
        pid = os.fork()
        if pid == 0:
            os.close(report_r)
            if mode == "shared":
                child(config, holder, report_w, ready_w)
            holder.close()
            sock = reuseport_socket(port)
            sock.listen(128)
            child(config, sock, report_w, ready_w)
        pids.append(pid)
    os.close(report_w)
    for _ in range(2):
        os.read(ready_r, 1)
    holder.close()
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    socks = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(40)]
    for sock in socks:
        sock.sendall(b"GET /index.html HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n" % port)
    os.kill(pids[0], signal.SIGKILL)  # its listener closes with the process
    os.waitpid(pids[0], 0)
    os.kill(pids[1], signal.SIGCONT)
    answered = failed = 0
    for sock in socks:
        try:
            data = sock.recv(64)
            ok = data.startswith(b"HTTP/1.1 200")
        except OSError:
            ok = False
        answered += ok
        failed += not ok
        sock.close()
    os.kill(pids[1], signal.SIGTERM)
    os.waitpid(pids[1], 0)
    os.close(report_r)
    os.close(ready_r)
    os.close(ready_w)
    return answered, failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["shared", "reuseport", "both"], default="both")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--pin",
        action="store_true",
        help="workers on the first CPU, the client on the last: the cost per request, not the speed",
    )
    args = parser.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    if args.pin and len(cpus) >= 2:
        PIN["server"], PIN["client"] = {cpus[0]}, {cpus[-1]}
    tmp = Path(tempfile.mkdtemp(prefix="reactor-balance-"))
    try:
        root = tmp / "site"
        shutil.copytree(RESOURCES, root, ignore=shutil.ignore_patterns("upload_*.json"))
        modes = ["shared", "reuseport"] if args.mode == "both" else [args.mode]
        print(
            "%d workers, %d new connections from %d client threads per round"
            % (args.workers, args.connections, args.clients)
        )
        for _ in range(args.rounds):
            for mode in modes:
                result = run(mode, args.workers, args.connections, args.clients, root)
                shares = result["shares"]
                print(
                    "%-9s shares %s  max/min %.2f  %.0f req/server-CPU-s  %.1f s  failures %d"
                    % (
                        mode,
                        " ".join("%.1f%%" % (100 * s) for s in shares),
                        shares[-1] / max(shares[0], 1e-9),
                        result["per_cpu_s"],
                        result["elapsed_s"],
                        result["failures"],
                    )
                )
        for mode in modes:
            answered, failed = stop_test(mode, root)
            print(
                "%-9s 40 queued connections, one of two workers killed: %d answered, %d failed"
                % (mode, answered, failed)
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

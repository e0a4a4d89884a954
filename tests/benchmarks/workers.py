"""Benchmark for issue 11: what does ``--workers 2`` cost per request, and how evenly is the load shared?

On a 2-core machine the load generator needs a core of its own (the server's processes
are pinned to the first CPU and the client to the last, with taskset; ``--no-pin`` to
let them float), so this measures efficiency, not peak throughput: requests answered per CPU-second used by the server's
processes (the supervisor and every worker, from /proc/PID/stat), with ``--workers 1``
and ``--workers 2`` taking turns, and each worker's share of the requests (from the
status page's scoreboard). Targets: 2 workers do at least 0.95x the requests per
CPU-second of 1, and the busiest worker serves at most 1.3x the requests of the idlest.

The client is a separate process of threads on raw sockets (``--connections`` of them),
each sending ``GET /index.html`` and reading the response by its Content-Length:

    keepalive   one connection per thread, reopened when the server closes it
    close       a new connection for every request (``Connection: close``)

Bounded and loopback only. Run from the repository root:

    python tests/benchmarks/workers.py                      # both scenarios, 2 rounds x 5 s
    python tests/benchmarks/workers.py --duration 3 --rounds 1 --scenarios close
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, List

REPO = Path(__file__).resolve().parents[2]
STARTUP = re.compile(rb"http://127\.0\.0\.1:(\d+)/")
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    fields = Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def children(pid: int) -> List[int]:
    return [int(p) for p in Path("/proc/%d/task/%d/children" % (pid, pid)).read_text().split()]


def client_main(port: int, connections: int, duration_s: float, close: bool) -> None:
    """Run in the client process: print ``requests errors``."""
    request = (
        "GET /index.html HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%s\r\n" % (port, "Connection: close\r\n" if close else "")
    ).encode()
    deadline = time.monotonic() + duration_s
    counts = [0] * connections
    errors = [0] * connections

    def run(i: int) -> None:
        sock = None
        buf = b""
        while time.monotonic() < deadline:
            try:
                if sock is None:
                    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
                    buf = b""
                sock.sendall(request)
                while b"\r\n\r\n" not in buf:
                    chunk = sock.recv(65536)
                    if not chunk:
                        raise ConnectionError("closed")
                    buf += chunk
                head, _, buf = buf.partition(b"\r\n\r\n")
                length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
                while len(buf) < length:
                    chunk = sock.recv(65536)
                    if not chunk:
                        raise ConnectionError("closed")
                    buf += chunk
                buf = buf[length:]
                counts[i] += 1
                if close or re.search(rb"(?i)connection: *close", head):
                    sock.close()
                    sock = None
            except OSError:
                errors[i] += 1
                if sock is not None:
                    sock.close()
                sock = None
        if sock is not None:
            sock.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(sum(counts), sum(errors))


def status(port: int) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/_status", headers={"Accept": "application/json"})
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def worker_requests(port: int) -> Dict[int, int]:
    """Requests per worker PID, from the scoreboard (written on each heartbeat)."""
    snapshot = status(port)
    if "workers" not in snapshot:
        return {snapshot["worker"]["pid"]: snapshot["requests"]}
    return {row["pid"]: row["requests"] for row in snapshot["workers"]["each"]}


def pin(cpu: "int | None") -> List[str]:
    """``taskset -c CPU`` (children inherit it), or nothing without taskset or a CPU to pin to."""
    if cpu is None or shutil.which("taskset") is None:
        return []
    return ["taskset", "-c", str(cpu)]


def measure(workers: int, scenario: str, args: argparse.Namespace, root: Path) -> dict:
    server = subprocess.Popen(
        pin(args.server_cpu)
        + [
            sys.executable,
            "-m",
            "reactor",
            "--port",
            "0",
            "--workers",
            str(workers),
            "-d",
            str(root),
            "--log-level",
            "warning",
            "--status-path",
            "/_status",
            "--worker-timeout",
            "2",
        ],
        cwd=REPO,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )
    try:
        output = b""
        deadline = time.monotonic() + 15
        while not STARTUP.search(output):
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("server did not start: %r" % output)
            output += os.read(server.stderr.fileno(), 4096)  # type: ignore[union-attr]
        port = int(STARTUP.search(output).group(1))  # type: ignore[union-attr]
        pids = [server.pid] + (children(server.pid) if workers > 1 else [])
        time.sleep(1.2)  # one heartbeat after start, so the scoreboard's baseline is written
        before_requests = worker_requests(port)
        before_cpu = sum(cpu_s(pid) for pid in pids)
        before_supervisor = cpu_s(server.pid)
        client = subprocess.run(
            pin(args.client_cpu)
            + [
                sys.executable,
                __file__,
                "--client",
                str(port),
                str(args.connections),
                str(args.duration),
                "1" if scenario == "close" else "0",
            ],
            capture_output=True,
            timeout=args.duration + 60,
            check=True,
        )
        used_cpu = sum(cpu_s(pid) for pid in pids) - before_cpu
        supervisor_cpu = cpu_s(server.pid) - before_supervisor if workers > 1 else 0.0
        requests, errors = map(int, client.stdout.split())
        time.sleep(1.2)  # a heartbeat, so every worker's count is on the scoreboard
        after_requests = worker_requests(port)
        per_worker = sorted(after_requests[pid] - before_requests.get(pid, 0) for pid in after_requests)
        return {
            "requests": requests,
            "errors": errors,
            "cpu_s": used_cpu,
            "per_cpu_s": requests / used_cpu,
            "rps": requests / args.duration,
            "per_worker": per_worker,
            "supervisor_cpu_s": supervisor_cpu,
        }
    finally:
        server.terminate()
        server.wait(30)
        server.stderr.close()  # type: ignore[union-attr]


def main(argv: "List[str] | None" = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--client":
        port, connections, duration, close = argv[1:5]
        client_main(int(port), int(connections), float(duration), close == "1")
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of load per measurement")
    parser.add_argument("--rounds", type=int, default=2, help="1 and 2 workers take turns this many times")
    parser.add_argument("--connections", type=int, default=16, help="client threads (one connection each)")
    parser.add_argument("--scenarios", default="keepalive,close")
    parser.add_argument(
        "--no-pin",
        action="store_true",
        help="do not pin the server's processes to the first CPU and the client to the last",
    )
    args = parser.parse_args(argv)
    cpus = sorted(os.sched_getaffinity(0))
    args.server_cpu = args.client_cpu = None
    if not args.no_pin and len(cpus) >= 2:
        args.server_cpu, args.client_cpu = cpus[0], cpus[-1]
    tmp = Path(tempfile.mkdtemp(prefix="reactor-workers-bench-"))
    verdicts = []
    try:
        root = tmp / "site"
        shutil.copytree(REPO / "resources", root, ignore=shutil.ignore_patterns("upload_*.json"))
        print(
            "%d CPUs; server on CPU %s, client on CPU %s; %d client threads; %d round(s) of %g s each\n"
            % (os.cpu_count() or 1, args.server_cpu, args.client_cpu, args.connections, args.rounds, args.duration)
        )
        for scenario in args.scenarios.split(","):
            results: Dict[int, List[dict]] = {1: [], 2: []}
            for _ in range(args.rounds):
                for workers in (1, 2):
                    result = measure(workers, scenario, args, root)
                    results[workers].append(result)
                    print(
                        "%-9s workers=%d  %6.0f req/s  %5.2f server CPU-s (supervisor %.2f)  %6.0f req/CPU-s  "
                        "errors %d  per worker %s"
                        % (
                            scenario,
                            workers,
                            result["rps"],
                            result["cpu_s"],
                            result["supervisor_cpu_s"],
                            result["per_cpu_s"],
                            result["errors"],
                            result["per_worker"],
                        )
                    )
            efficiency = [sum(r["requests"] for r in results[w]) / sum(r["cpu_s"] for r in results[w]) for w in (1, 2)]
            ratio = efficiency[1] / efficiency[0]
            spread = max(max(r["per_worker"]) / max(1, min(r["per_worker"])) for r in results[2])
            verdicts.append(
                "%-9s req/CPU-s 2 vs 1 workers: %.3fx (target >= 0.95: %s); worst max/min share "
                "%.2f (target <= 1.3: %s)"
                % (
                    scenario,
                    ratio,
                    "MET" if ratio >= 0.95 else "NOT MET",
                    spread,
                    "MET" if spread <= 1.3 else "NOT MET",
                )
            )
            print()
        print("\n".join(verdicts))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

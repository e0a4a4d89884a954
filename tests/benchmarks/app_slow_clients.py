"""What slow clients cost each WSGI server: the evidence behind docs/comparison.md's table.

Each server runs ``wsgi_apps:slow_peer`` with 4 application threads (the commands of
app_load.py, servers.py's ``build_app_command``), and for each of two kinds of slow
client this prints how long a fast ``GET /`` then takes (3 s at most), and how much the
server's memory grew:

    uploaders  8 clients each send ``POST /`` with ``Content-Length: 1000000`` and then
               one byte a second (the application reads the whole body)
    readers    8 clients each ask for ``/big`` (20 MiB, made in 64 KiB pieces) and read
               nothing, their receive buffers set to 16 KiB

Twice as many slow clients as threads: a server that lends a thread to a slow client
has none left for the fast request. Bounded: about 10 s per server and kind; loopback only.

    python tests/benchmarks/app_slow_clients.py [--servers reactor-app,waitress-app,...]
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import servers as srv  # noqa: E402

SLOW_CLIENTS = 8
SETTLE_S = 2.0  # slow clients at work before the fast request
FAST_TIMEOUT_S = 3.0


def fast_get(port: int) -> float | None:
    """Seconds for one ``GET /`` on a new connection; None if no answer within FAST_TIMEOUT_S."""
    started = time.monotonic()
    try:
        status, _body = srv.http_get(port, "/", timeout=FAST_TIMEOUT_S)
    except OSError:
        return None
    return time.monotonic() - started if status == 200 else None


def uploaders(port: int, stop: threading.Event) -> list[socket.socket]:
    socks = []
    for _ in range(SLOW_CLIENTS):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Length: 1000000\r\n\r\nx" % port)
        socks.append(sock)

    def trickle() -> None:
        while not stop.wait(1.0):
            for sock in socks:
                try:
                    sock.sendall(b"x")
                except OSError:
                    pass

    threading.Thread(target=trickle, daemon=True).start()
    return socks


def readers(port: int, stop: threading.Event) -> list[socket.socket]:
    socks = []
    for _ in range(SLOW_CLIENTS):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
        sock.settimeout(5)
        sock.connect(("127.0.0.1", port))
        sock.sendall(b"GET /big HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % port)
        socks.append(sock)
    return socks


def measure(name: str, kind: str, tmp: Path, cpu: int | None) -> str:
    server = srv.start_server(name, tmp, tmp, cpu=cpu, app="slow_peer")
    stop = threading.Event()
    socks: list[socket.socket] = []
    try:
        before = server.rss() or 0
        baseline = fast_get(server.port)
        socks = (uploaders if kind == "uploaders" else readers)(server.port, stop)
        time.sleep(SETTLE_S)  # let the slow clients take what they will take
        took = fast_get(server.port)
        grown = (server.rss() or 0) - before
        answer = "no answer in %.0f s" % FAST_TIMEOUT_S if took is None else "%.1f ms" % (took * 1000)
        base = "-" if baseline is None else "%.1f ms" % (baseline * 1000)
        return "%-12s %-10s fast GET: %-18s (alone: %s)  RSS grew %6.1f MiB" % (
            srv.LABELS[name],
            kind,
            answer,
            base,
            grown / 2**20,
        )
    finally:
        stop.set()
        for sock in socks:
            sock.close()
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    every = [n for n in srv.APP_SERVERS if n != "reactor-app-inline"] + ["cheroot"]
    parser.add_argument("--servers", default=",".join(every), help="comma-separated, from: " + ",".join(every))
    args = parser.parse_args()
    cpus = srv.allowed_cpus()
    cpu = cpus[0] if len(cpus) >= 2 else None
    with srv.workspace() as tmp:
        for name in args.servers.split(","):
            reason = srv.missing_reason(name)
            if reason:
                print("SKIP %s: %s" % (name, reason))
                continue
            for kind in ("uploaders", "readers"):
                print(measure(name, kind, tmp, cpu), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

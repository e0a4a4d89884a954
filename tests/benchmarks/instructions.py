"""Instructions per request, counted by callgrind: a repeatable measure for small changes.

Throughput from wrk swings by about ±10% between runs on a shared virtual machine, which
hides a 3% improvement. Instruction counts do not: ``valgrind --tool=callgrind`` counts
what the CPU executes, whatever else the machine is doing, and repeats within about 1%.

Run ``python tests/benchmarks/instructions.py`` (needs valgrind: ``apt-get install
valgrind``). It runs this file's driver twice under callgrind, with N and 2N keep-alive
GETs of a cached 1 KiB file through a real :class:`reactor.server.Server` on loopback,
and prints (I(2N) - I(N)) / N: the instructions of one request, client included, with
start-up and imports cancelled out. Compare two checkouts by running it in each.
``--access-log`` measures the same with the access log on, written to /dev/null by its
writer thread as in ``python -m reactor`` (the difference is what the log costs).
``--close`` sends each request on a new connection with ``Connection: close`` instead
(accept, the exchange, and the close, ``CONNECTIONS`` at a time).

``--drive N`` is the driver itself (what runs under valgrind).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONNECTIONS = 10


def drive(requests: int, root: str, access_log: bool = False, close: bool = False) -> None:
    """Serve ``requests`` GETs over ``CONNECTIONS`` keep-alive connections (or one each), then stop."""
    sys.path.insert(0, REPO)
    import logging

    from reactor import log as logmod
    from reactor.config import Config
    from reactor.server import Server

    logging.getLogger("reactor").setLevel(logging.WARNING)
    server = Server(Config(host="127.0.0.1", port=0, root=root, keepalive_max_requests=10**9))
    if access_log:
        logmod.access_log.open(os.devnull)
        server.loop.add_pass_callback(logmod.access_log.flush)
    host, port = server.listen()
    request = (
        "GET /index.html HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: instructions\r\nAccept: */*\r\n%s\r\n"
        % (host, port, "Connection: close\r\n" if close else "")
    ).encode()

    def client() -> None:
        conns = [socket.create_connection((host, port), timeout=60) for _ in range(CONNECTIONS)]
        for _ in range(requests // CONNECTIONS):
            if close:  # like wrk: each new connection sends its request at once
                for conn in conns:
                    conn.close()
                conns = [socket.create_connection((host, port), timeout=60) for _ in range(CONNECTIONS)]
                for conn in conns:
                    conn.sendall(request)
            else:
                for conn in conns:
                    conn.sendall(request)
            for conn in conns:
                buf = b""
                while True:
                    chunk = conn.recv(65536)
                    assert chunk, "the server closed a keep-alive connection"
                    buf += chunk
                    head, sep, body = buf.partition(b"\r\n\r\n")
                    if sep:
                        length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
                        if len(body) >= length:
                            break
        for conn in conns:
            conn.close()
        server.loop.call_soon_threadsafe(server.shutdown, False)

    thread = threading.Thread(target=client)
    thread.start()
    server.serve_forever()
    thread.join()
    logmod.access_log.close()


def count(requests: int, root: str, access_log: bool = False, close: bool = False) -> int:
    """Instructions callgrind collects for a whole ``--drive requests`` run."""
    result = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            os.path.realpath(sys.executable),
            os.path.abspath(__file__),
            "--drive",
            str(requests),
            "--root",
            root,
        ]
        + (["--access-log"] if access_log else [])
        + (["--close"] if close else []),
        capture_output=True,
        text=True,
        timeout=900,
    )
    match = re.search(r"Collected : (\d+)", result.stderr)
    if result.returncode != 0 or match is None:
        raise SystemExit("callgrind run failed:\n" + result.stderr[-2000:])
    return int(match.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="N (the second run does 2N)")
    parser.add_argument("--access-log", action="store_true", help="with the access log on (to /dev/null)")
    parser.add_argument("--close", action="store_true", help="a new connection per request (Connection: close)")
    parser.add_argument("--drive", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive is not None:
        drive(args.drive, args.root, args.access_log, args.close)
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed: apt-get install valgrind", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as root:
        with open(os.path.join(root, "index.html"), "wb") as page:
            page.write(b"<!doctype html>" + b"x" * (1024 - 15))
        low = count(args.requests, root, args.access_log, args.close)
        high = count(2 * args.requests, root, args.access_log, args.close)
    print(
        "instructions per request (client + server%s%s): %.0f  [(I(%d) - I(%d)) / %d; python %s]"
        % (
            ", access log on" if args.access_log else "",
            ", Connection: close" if args.close else "",
            (high - low) / args.requests,
            2 * args.requests,
            args.requests,
            args.requests,
            sys.version.split()[0],
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

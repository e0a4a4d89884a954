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
writer thread as in ``python -m reactor`` (the difference is what the log costs);
``--log-format json`` does so in the JSON format (issue 25: at most 10% dearer than text).
``--close`` sends each request on a new connection with ``Connection: close`` instead
(accept, the exchange, and the close, ``CONNECTIONS`` at a time). ``--pipeline K`` sends
K requests in one write and the next K once all K responses are in (as the load
benchmark's ``small-pipeline`` does with K = 10).

Only instructions in user space are counted: the kernel's work in ``recv``, ``send``,
``epoll_ctl`` and the rest is not, so a change that saves system calls shows in wrk's
numbers (and ``strace -c``) rather than here.

``--app hello`` (or ``--app flask_hello``) serves ``GET /`` from that application of
``wsgi_apps.py`` instead (as ``--app wsgi_apps:hello``), on 4 application threads, or on
the loop thread with ``--threads 0``. With threads the count also holds the threads'
hand-offs as user space sees them (the pool's queue, the GIL, the waker), and
spreads by a few hundred instructions with how the threads took turns; the kernel's
part of a switch (futex, context switch) is not counted.

``--keep-profiles DIR`` keeps callgrind's two profiles, ``DIR/callgrind.N.out`` and
``DIR/callgrind.2N.out``, for ``callgrind_annotate`` (subtract the first from the second,
function by function, for what one request costs where).

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
from typing import Any, List

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONNECTIONS = 10


def drive(
    requests: int,
    root: str,
    access_log: bool = False,
    close: bool = False,
    pipeline: int = 1,
    app: str = "",
    threads: int = 4,
    log_format: str = "text",
) -> None:
    """Serve ``requests`` GETs over ``CONNECTIONS`` keep-alive connections (or one each), then stop.

    The client runs on the loop thread, at the end of every pass (a pass callback), with
    non-blocking sockets: it reads the responses the pass sent and sends the next
    requests. On loopback a send is in the peer's receive queue when it returns, so the
    run takes the same steps every time; a client thread would make the count depend on
    how the two threads happened to take turns.
    """
    sys.path.insert(0, REPO)
    import logging

    from reactor import log as logmod
    from reactor.config import Config
    from reactor.server import Server

    logging.getLogger("reactor").setLevel(logging.WARNING)
    config = Config(host="127.0.0.1", port=0, root=root, keepalive_max_requests=10**9)
    wsgi_app = None
    if app:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import wsgi_apps

        config = Config(
            host="127.0.0.1", port=0, keepalive_max_requests=10**9, app="wsgi_apps:" + app, app_threads=threads
        )
        wsgi_app = getattr(wsgi_apps, app)
    server = Server(config, wsgi_app=wsgi_app)
    if access_log:
        logmod.access_log.open(os.devnull, log_format=log_format)
        server.loop.add_pass_callback(logmod.access_log.flush)
    host, port = server.listen()
    request = (
        "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: instructions\r\nAccept: */*\r\n%s\r\n"
        % ("/" if app else "/index.html", host, port, "Connection: close\r\n" if close else "")
    ).encode()

    def connect() -> socket.socket:
        sock = socket.create_connection((host, port), timeout=60)  # the kernel completes it; accept comes later
        sock.setblocking(False)
        sock.sendall(request)
        return sock

    if pipeline > 1:
        request *= pipeline  # one write; the counts below go by batches
        requests //= pipeline
    clients: List[List[Any]] = [[connect(), b""] for _ in range(CONNECTIONS)]
    counts = {"sent": CONNECTIONS, "answered": 0}
    length = re.compile(rb"Content-Length: (\d+)")

    def complete_responses(buf: bytes) -> int:
        done = start = 0
        while True:
            end = buf.find(b"\r\n\r\n", start)
            if end < 0:
                return done
            match = length.search(buf, start, end)
            assert match is not None, buf[start:end]
            start = end + 4 + int(match.group(1))
            if start > len(buf):
                return done
            done += 1

    def client_pass() -> None:
        for client in clients:
            sock, buf = client
            if sock is None:
                continue  # its last request was answered
            try:
                chunk = sock.recv(65536)
            except BlockingIOError:
                continue
            buf += chunk
            if complete_responses(buf) < pipeline:
                assert chunk, "the server closed a connection before its response was complete: %r" % buf[:200]
                client[1] = buf
                continue
            client[1] = b""
            counts["answered"] += 1
            if counts["sent"] < requests:
                counts["sent"] += 1
                if close:
                    sock.close()
                    client[0] = connect()
                else:
                    sock.sendall(request)
            else:
                sock.close()
                client[0] = None
        if counts["answered"] >= requests:
            server.loop.remove_pass_callback(client_pass)
            server.shutdown(False)

    server.loop.add_pass_callback(client_pass)
    server.serve_forever()
    logmod.access_log.close()


def count(requests: int, root: str, flags: List[str], out_file: str = os.devnull) -> int:
    """Instructions callgrind collects for a whole ``--drive requests`` run (its profile to ``out_file``).

    ``flags``: the driver's options as this script's command line takes them (``--close``,
    ``--app hello --threads 0``...).
    """
    result = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=" + out_file,
            os.path.realpath(sys.executable),
            os.path.abspath(__file__),
            "--drive",
            str(requests),
            "--root",
            root,
            *flags,
        ],
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
    parser.add_argument(
        "--log-format", choices=["text", "json"], default="text", help="the access log's format (implies --access-log)"
    )
    parser.add_argument("--close", action="store_true", help="a new connection per request (Connection: close)")
    parser.add_argument("--pipeline", type=int, default=1, metavar="K", help="K pipelined requests per write")
    parser.add_argument("--app", default="", help="an application of wsgi_apps.py (hello, flask_hello) on GET /")
    parser.add_argument("--threads", type=int, default=4, help="with --app: application threads (0: the loop's)")
    parser.add_argument("--keep-profiles", metavar="DIR", help="keep callgrind's profiles in DIR (callgrind.N.out)")
    parser.add_argument("--drive", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.log_format != "text":
        args.access_log = True
    if args.drive is not None:
        drive(
            args.drive, args.root, args.access_log, args.close, args.pipeline, args.app, args.threads, args.log_format
        )
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed: apt-get install valgrind", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as root:
        with open(os.path.join(root, "index.html"), "wb") as page:
            page.write(b"<!doctype html>" + b"x" * (1024 - 15))
        flags = (
            (["--access-log", "--log-format", args.log_format] if args.access_log else [])
            + (["--close"] if args.close else [])
            + (["--pipeline", str(args.pipeline)] if args.pipeline > 1 else [])
            + (["--app", args.app, "--threads", str(args.threads)] if args.app else [])
        )
        outs = [os.devnull, os.devnull]
        if args.keep_profiles:
            os.makedirs(args.keep_profiles, exist_ok=True)
            outs = [
                os.path.join(args.keep_profiles, "callgrind.%d.out" % n) for n in (args.requests, 2 * args.requests)
            ]
        low = count(args.requests, root, flags, outs[0])
        high = count(2 * args.requests, root, flags, outs[1])
    print(
        "instructions per request (client + server%s%s%s%s): %.0f  [(I(%d) - I(%d)) / %d; python %s]"
        % (
            ", --app wsgi_apps:%s --threads %d" % (args.app, args.threads) if args.app else "",
            (", access log on (%s)" % args.log_format) if args.access_log else "",
            ", Connection: close" if args.close else "",
            ", %d pipelined" % args.pipeline if args.pipeline > 1 else "",
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

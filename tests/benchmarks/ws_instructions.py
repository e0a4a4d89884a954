"""Instructions per echoed WebSocket message, counted by callgrind: reactor's Echo and the websockets library's.

Wall-clock rates on a shared machine swing by more than the changes worth making to
the WebSocket path; instruction counts do not (see instructions.py, whose method this
follows). ``python tests/benchmarks/ws_instructions.py`` runs a driver twice under
``valgrind --tool=callgrind`` for each server, with N and 2N 256-byte text messages
echoed over ``--connections`` sockets (one message in flight on each), and prints
(I(2N) - I(N)) / N: the instructions of one echoed message, client included, with
start-up, handshakes and imports cancelled out.

Both servers run in the driver's process on their own loop, and so does the client:

- reactor: a :class:`reactor.server.Server` with ``reactor.websocket:Echo`` at ``/echo``;
  the client is a pass callback (as in instructions.py), reading every socket at the
  end of each loop pass and sending the next frame when a reply is whole;
- websockets: its asyncio server (``websockets.asyncio.server.serve``, C speedups for
  masking) with an echo handler; the client's sockets are readers on the same asyncio
  loop (``loop.add_reader``) doing the same.

The client's frames are built once and its replies counted, not parsed, so it costs
the same few hundred instructions a message for both. Only user space is counted: the
kernel's work in ``recv``, ``send`` and ``epoll_wait`` is not (it is about the same for
both: one of each per message and side).

    python tests/benchmarks/ws_instructions.py                      # both, 1 connection
    python tests/benchmarks/ws_instructions.py --connections 100 --servers reactor
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from typing import Any, Callable, List

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAYLOAD = bytes(0x61 + index % 26 for index in range(256))
MASK = b"\x1f\x2e\x3d\x4c"
FRAME = b"\x81\xfe\x01\x00" + MASK + bytes(byte ^ MASK[index & 3] for index, byte in enumerate(PAYLOAD))
REPLY_BYTES = 4 + len(PAYLOAD)
CLOSE = b"\x88\x82" + MASK + bytes(byte ^ MASK[index] for index, byte in enumerate(b"\x03\xe8"))  # 1000
HANDSHAKE = (
    b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
KEY = base64.b64encode(b"0123456789abcdef")


class Client:
    """One socket: the handshake, then a frame out each time a whole reply has come back."""

    __slots__ = ("sock", "head", "have", "upgraded")

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.sock.setblocking(False)
        self.sock.sendall(HANDSHAKE % (port, KEY))
        self.head = b""
        self.have = 0
        self.upgraded = False

    def readable(self) -> int:
        """Read what is there; return how many replies it completed (sending the next frame for each)."""
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return 0
        assert data, "the server closed a connection"
        if not self.upgraded:
            self.head += data
            if b"\r\n\r\n" not in self.head:
                return 0
            head, _, rest = self.head.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 101"), head
            assert not rest
            self.upgraded = True
            self.sock.send(FRAME)
            return 0
        count, self.have = divmod(self.have + len(data), REPLY_BYTES)
        if count:
            self.sock.send(FRAME)
        return count

    def close(self) -> None:
        self.sock.send(CLOSE)  # the end of the run: a closing handshake begun, not a dropped connection
        self.sock.close()


def drive_reactor(messages: int, connections: int) -> None:
    sys.path.insert(0, REPO)
    import logging

    from reactor.config import Config
    from reactor.server import Server

    logging.getLogger("reactor").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as root:
        server = Server(
            Config(host="127.0.0.1", port=0, root=root, websocket_endpoints=(("/echo", "reactor.websocket:Echo"),))
        )
        _host, port = server.listen()
        clients = [Client(port) for _ in range(connections)]
        done = [0]

        def client_pass() -> None:
            for client in clients:
                done[0] += client.readable()
            if done[0] >= messages:
                server.loop.remove_pass_callback(client_pass)
                for client in clients:
                    client.close()
                server.shutdown(False)

        server.loop.add_pass_callback(client_pass)
        server.serve_forever()


def drive_websockets(messages: int, connections: int) -> None:
    import asyncio
    import logging

    from websockets.asyncio.server import serve
    from websockets.exceptions import ConnectionClosed

    logging.basicConfig(level=logging.WARNING)

    async def echo(connection: Any) -> None:
        try:
            async for message in connection:
                await connection.send(message)
        except ConnectionClosed:  # the client's Close came while an echo was on its way
            pass

    async def run() -> None:
        loop = asyncio.get_running_loop()
        finished = loop.create_future()
        async with serve(echo, "127.0.0.1", 0) as server:
            port = list(server.sockets)[0].getsockname()[1]
            clients: List[Client] = []
            done = [0]

            def on_readable(client: Client) -> None:
                done[0] += client.readable()
                if done[0] >= messages and not finished.done():
                    for each in clients:
                        loop.remove_reader(each.sock)
                        each.close()
                    finished.set_result(None)

            for _ in range(connections):
                client = Client(port)
                clients.append(client)
                loop.add_reader(client.sock, on_readable, client)
            await finished

    asyncio.run(run())


DRIVERS: "dict[str, Callable[[int, int], None]]" = {"reactor": drive_reactor, "websockets": drive_websockets}


def count(server: str, messages: int, connections: int) -> int:
    """Instructions callgrind collects for one whole driver run."""
    result = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,  # not its real path: a virtual environment's packages (websockets) come with it
            os.path.abspath(__file__),
            "--drive",
            server,
            "--messages",
            str(messages),
            "--connections",
            str(connections),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env=dict(os.environ, PYTHONHASHSEED="0"),
    )
    match = re.search(r"Collected : (\d+)", result.stderr)
    if result.returncode != 0 or match is None:
        raise SystemExit("callgrind run failed:\n" + result.stderr[-2000:])
    return int(match.group(1))


def per_message(server: str, messages: int, connections: int) -> float:
    low = count(server, messages, connections)
    high = count(server, 2 * messages, connections)
    return (high - low) / messages


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000, help="N (the second run echoes 2N)")
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--servers", default="reactor,websockets")
    parser.add_argument("--drive", choices=sorted(DRIVERS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:
        DRIVERS[args.drive](args.messages, args.connections)
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed: apt-get install valgrind", file=sys.stderr)
        return 2
    results = {}
    for server in args.servers.split(","):
        if server not in DRIVERS:
            parser.error("--servers takes %s" % ",".join(DRIVERS))
        results[server] = per_message(server, args.messages, args.connections)
        print(
            "instructions per echoed message (%s, %d connection%s, client included): %.0f  [python %s]"
            % (server, args.connections, "" if args.connections == 1 else "s", results[server], sys.version.split()[0])
        )
    if len(results) == 2:
        print("ratio websockets/reactor: %.2fx" % (results["websockets"] / results["reactor"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

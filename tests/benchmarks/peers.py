"""The other servers of the load benchmark that need a few lines of Python to run.

    python peers.py ceiling  PORT DOCROOT   a bare selectors loop answering canned bytes
    python peers.py twisted  PORT DOCROOT   twisted.web.static.File, access log off
    python peers.py tornado  PORT DOCROOT   tornado.web.StaticFileHandler, access log off
    python peers.py waitress PORT DOCROOT   waitress with a small WSGI file app (wsgi.file_wrapper)
    python peers.py websockets PORT DOCROOT the websockets library's asyncio server echoing every
                                            message (any path; DOCROOT unused), for ws_bench.py

Each is one process on 127.0.0.1:PORT serving DOCROOT (the ceiling only pretends to:
it answers every request with the bytes of DOCROOT/index.html, read once). load.py
starts them through servers.py; they run until SIGTERM.

The ceiling is what one CPython thread can push through ``recv`` and ``send``: no
parsing beyond counting the ends of request heads, no state, no timers. A real server
can only approach it.
"""

from __future__ import annotations

import mimetypes
import os
import selectors
import signal
import socket
import sys
from pathlib import Path


def ceiling(port: int, docroot: Path) -> None:
    body = (docroot / "index.html").read_bytes()
    head = b"HTTP/1.1 200 OK\r\nServer: ceiling\r\nContent-Type: text/html\r\nContent-Length: %d\r\n" % len(body)
    keep = head + b"\r\n" + body
    close = head + b"Connection: close\r\n\r\n" + body
    selector = selectors.DefaultSelector()
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(1024)
    listener.setblocking(False)
    selector.register(listener, selectors.EVENT_READ)
    partial: dict = {}  # socket -> bytes of an unfinished request head
    while True:
        for key, _mask in selector.select():
            sock = key.fileobj
            if sock is listener:
                for _ in range(64):
                    try:
                        conn, _addr = listener.accept()
                    except BlockingIOError:
                        break
                    conn.setblocking(False)
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    selector.register(conn, selectors.EVENT_READ)
                continue
            try:
                data = sock.recv(65536)  # type: ignore[union-attr]
            except OSError:
                data = b""
            if not data:
                selector.unregister(sock)
                partial.pop(sock, None)
                sock.close()  # type: ignore[union-attr]
                continue
            data = partial.pop(sock, b"") + data
            count = data.count(b"\r\n\r\n")
            rest = data[data.rfind(b"\r\n\r\n") + 4 :] if count else data
            if rest:
                partial[sock] = rest
            if not count:
                continue
            try:
                if b"Connection: close" in data:
                    sock.sendall(close)  # type: ignore[union-attr]
                    selector.unregister(sock)
                    sock.close()  # type: ignore[union-attr]
                else:
                    sock.sendall(keep * count)  # type: ignore[union-attr]  # loopback: it fits
            except OSError:
                selector.unregister(sock)
                sock.close()  # type: ignore[union-attr]


def twisted(port: int, docroot: Path) -> None:
    from twisted.internet import reactor
    from twisted.web import server, static

    class QuietSite(server.Site):
        def log(self, request: object) -> None:  # access log off
            pass

    reactor.listenTCP(port, QuietSite(static.File(str(docroot))), interface="127.0.0.1")  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]


def tornado(port: int, docroot: Path) -> None:
    import tornado.ioloop
    import tornado.web

    app = tornado.web.Application(
        [(r"/(.*)", tornado.web.StaticFileHandler, {"path": str(docroot)})],
        log_function=lambda handler: None,  # access log off
    )
    app.listen(port, "127.0.0.1")
    tornado.ioloop.IOLoop.current().start()


def waitress(port: int, docroot: Path) -> None:
    import waitress as waitress_module

    root = os.path.realpath(docroot)

    def app(environ, start_response):  # type: ignore[no-untyped-def]
        path = os.path.realpath(os.path.join(root, environ["PATH_INFO"].lstrip("/") or "index.html"))
        if not path.startswith(root + os.sep) or not os.path.isfile(path):
            start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "9")])
            return [b"not found"]
        f = open(path, "rb")
        ctype = mimetypes.guess_type(path)[0] or "application/octet-stream"
        start_response("200 OK", [("Content-Type", ctype), ("Content-Length", str(os.fstat(f.fileno()).st_size))])
        return environ["wsgi.file_wrapper"](f, 1024 * 1024)

    waitress_module.serve(app, host="127.0.0.1", port=port, _quiet=True)  # waitress logs no requests


def websockets(port: int, docroot: Path) -> None:
    """The ``websockets`` library's asyncio server (its C speedups mask and unmask), echoing each message.

    Its defaults otherwise: 1 MiB messages, a ping every 20 s, permessage-deflate only if
    the client offers it (ws_bench.py's does not). Logging as reactor's ``--log-level
    warning``: warnings and errors to stderr, nothing per connection or message.
    """
    import asyncio
    import logging

    from websockets.asyncio.server import serve

    logging.basicConfig(level=logging.WARNING)

    async def echo(connection) -> None:  # type: ignore[no-untyped-def]
        async for message in connection:
            await connection.send(message)

    async def run() -> None:
        async with serve(echo, "127.0.0.1", port) as server:
            await server.serve_forever()

    asyncio.run(run())


def main() -> None:
    name, port, docroot = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    peers = {"ceiling": ceiling, "twisted": twisted, "tornado": tornado, "waitress": waitress, "websockets": websockets}
    peers[name](port, docroot)


if __name__ == "__main__":
    main()

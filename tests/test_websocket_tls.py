"""``wss://``: the same endpoints over TLS, with nothing special (each test runs over plain TCP and TLS).

Under TLS the request's own origin is ``https://``: only an https page of this server may
open a WebSocket without ``--websocket-origin``.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import websockets.exceptions
from websockets.asyncio.client import connect as connect_async
from wsclient import RawWebSocket, handshake_request, read_head

from conftest import wait_for
from reactor.websocket import PONG, TEXT

BOTH_TRANSPORTS = True


@pytest.fixture
def echo(make_server):
    return make_server(websocket_endpoints=(("/echo", "reactor.websocket:Echo"),))


def ws_url(running) -> str:
    return "%s://127.0.0.1:%d/echo" % ("wss" if running.tls else "ws", running.port)


# websockets' asyncio client, not its sync one: the sync client reads on a background thread
# while the caller writes on the same SSLSocket, which an OpenSSL connection is not safe for
# (about one connection in 500 lost a request or a Close frame on a loaded machine, whatever
# the server). asyncio drives TLS on one thread, through memory BIOs.


def test_echo_and_the_closing_handshake(echo):
    async def session():
        async with connect_async(ws_url(echo), ssl=echo.tls, open_timeout=10) as ws:
            await ws.send("über TLS" if echo.tls else "over TCP")
            assert await ws.recv() == ("über TLS" if echo.tls else "over TCP")
            await ws.send(b"\x00" * 300_000)  # many TLS records each way
            assert await ws.recv() == b"\x00" * 300_000
            await asyncio.wait_for(await ws.ping(b"x"), 5)
        return ws.protocol.close_rcvd

    assert asyncio.run(session()).code == 1000


def test_frames_behind_the_handshake_and_the_servers_close_first(echo):
    ws = RawWebSocket(echo.connect(), behind=b"\x89\x80abcd")  # a masked empty Ping behind the request
    assert ws.recv_frame() == (PONG, True, b"")
    ws.send_frame(TEXT, b"hi")
    assert ws.recv_message() == (TEXT, b"hi")
    ws.send_close(1000)
    assert ws.expect_close().close_code == 1000
    assert ws.at_eof()  # the server shuts its side first (close_notify, then FIN under TLS)
    ws.close()


@pytest.mark.parametrize("scheme, allowed", [("https", True), ("http", False)])
def test_the_own_origin_follows_the_transport(echo, scheme, allowed):
    own = "https" if echo.tls else "http"
    sock = echo.connect()
    host = "127.0.0.1:%d" % echo.port
    sock.sendall(handshake_request(host, extra="Origin: %s://%s\r\n" % (scheme, host)))
    status = read_head(sock)[0]
    sock.close()
    assert status == (101 if scheme == own else 403)


def test_a_graceful_stop_sends_1001(echo):
    async def session():
        async with connect_async(ws_url(echo), ssl=echo.tls, open_timeout=10) as ws:
            await ws.send("hi")
            assert await ws.recv() == "hi"
            await asyncio.to_thread(
                wait_for, lambda: echo.call(lambda: len(echo.server.sessions)) == 1, what="the session"
            )
            stopper = threading.Thread(target=echo.stop, kwargs={"graceful": True})
            started = time.monotonic()
            stopper.start()
            with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5)
            await asyncio.to_thread(stopper.join, 10)
        return closed.value.rcvd, time.monotonic() - started

    rcvd, took = asyncio.run(session())
    assert rcvd.code == 1001
    assert took < 3

"""WebSocket sessions against a live server, with real clients: the websockets library's sync client,
wsproto, and a raw frame writer (tests/wsclient.py) for what no library sends.

- the opening handshake: every refusal with its status, the Origin rule, subprotocols,
  the bytes behind the handshake, an upgrade after earlier requests;
- echo of text, binary and fragmented messages; pings answered; the closing handshake
  both ways, with the codes ``on_close`` hears;
- the frame corpus's malformed cases each bring a Close with their code;
- limits and liveness: 1009 from a frame's header, 1011 for a silent peer, 1001 at a
  graceful stop (also in the middle of a message, and for ``--workers`` at a reload),
  back-pressure (reading pauses, nothing is lost), 1008 for a slow broadcast receiver;
- the endpoint API: ``--websocket`` from the command line, ``mount_websocket``, handler
  errors (1011), the status page's count.

``wss://`` is in tests/test_websocket_tls.py; Autobahn's case groups in
tests/test_websocket_autobahn.py.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import threading
import time
from typing import List

import pytest
import websockets.exceptions
import wsproto
import wsproto.events
from corpus.frames import CASES, Case
from websockets.sync.client import connect
from wsclient import RawWebSocket, handshake_request, read_head

from conftest import RawClient, wait_for
from reactor.websocket import BINARY, CLOSE, PING, PONG, TEXT, broadcast, encode_frame

JSON_ACCESS_LOG = True  # every response these tests provoke must log one line json.loads reads (conftest)

ECHO = (("/echo", "reactor.websocket:Echo"),)


@pytest.fixture
def ws_server(make_server):
    """``make_server`` with the Echo endpoint at /echo unless told otherwise."""

    def make(**config):
        config.setdefault("websocket_endpoints", ECHO)
        return make_server(**config)

    return make


def url(running, path: str = "/echo") -> str:
    return "ws://%s:%d%s" % (running.host, running.port, path)


def raw(running, path: str = "/echo", **kwargs) -> RawWebSocket:
    return RawWebSocket(running.connect(), path, **kwargs)


class Recorder:
    """A handler that records what the session tells it, and can be told to misbehave."""

    def __init__(self, log: list, fail_on: str = "") -> None:
        self.log = log
        self.fail_on = fail_on

    def on_open(self, session) -> None:
        head = session.request_head  # the handshake's, for on_open to look at
        self.log.append(("open", session.request_path, session.peer, session.subprotocol, head.get("user-agent")))
        if self.fail_on == "open":
            raise RuntimeError("on_open failed on purpose")

    def on_message(self, session, message) -> None:
        assert session.request_head is None  # let go after on_open: idle sessions stay small
        self.log.append(("message", message))
        if self.fail_on == "message":
            raise RuntimeError("on_message failed on purpose")
        if message == "close me":
            session.close(4000, "as asked")
        else:
            session.send(message)

    def on_close(self, session, code: int, reason: str) -> None:
        self.log.append(("close", code, reason))


def mount_recorder(running, path: str = "/rec", fail_on: str = "", subprotocols=()) -> list:
    log: list = []

    def factory() -> Recorder:
        return Recorder(log, fail_on)

    factory.subprotocols = subprotocols  # type: ignore[attr-defined]
    running.call(lambda: running.server.app.mount_websocket(path, factory))
    return log


# -- the opening handshake ----------------------------------------------------------------


def _handshake(running, request: bytes) -> "tuple[int, dict]":
    sock = running.connect()
    try:
        sock.sendall(request)
        status, fields, _rest = read_head(sock)
        return status, fields
    finally:
        sock.close()


def _request(
    running, extra: str = "", path: str = "/echo", drop: str = "", method: str = "GET", version="1.1"
) -> bytes:
    host = "%s:%d" % (running.host, running.port)
    request = handshake_request(host, path, version=version).decode("latin-1")
    if drop:
        request = "\r\n".join(line for line in request.split("\r\n") if not line.lower().startswith(drop.lower()))
    request = request[:-2] + extra + "\r\n"  # extra field lines before the empty line
    return request.replace("GET ", method + " ", 1).encode("latin-1")


@pytest.mark.parametrize(
    "change, status, field",
    [
        ({"method": "POST", "extra": "Content-Length: 0\r\n"}, 405, ("allow", "GET")),
        ({"method": "HEAD"}, 405, ("allow", "GET")),
        ({"version": "1.0"}, 400, None),
        ({"extra": "Content-Length: 2\r\n"}, 400, None),
        ({"drop": "upgrade:"}, 426, ("upgrade", "websocket")),
        ({"drop": "upgrade:", "extra": "Upgrade: h2c\r\n"}, 400, None),
        ({"drop": "connection:"}, 400, None),
        ({"drop": "connection:", "extra": "Connection: keep-alive\r\n"}, 400, None),
        ({"drop": "sec-websocket-version:"}, 426, ("sec-websocket-version", "13")),
        (
            {"drop": "sec-websocket-version:", "extra": "Sec-WebSocket-Version: 8\r\n"},
            426,
            ("sec-websocket-version", "13"),
        ),
        ({"drop": "sec-websocket-key:"}, 400, None),
        (
            {"drop": "sec-websocket-key:", "extra": "Sec-WebSocket-Key: %s\r\n" % base64.b64encode(b"x" * 15).decode()},
            400,
            None,
        ),
        ({"drop": "sec-websocket-key:", "extra": "Sec-WebSocket-Key: not base64!!!!!!!!!!!==\r\n"}, 400, None),
        ({"extra": "Sec-WebSocket-Key: %s\r\n" % base64.b64encode(b"y" * 16).decode()}, 400, None),  # two keys
        ({"path": "/nowhere"}, 404, None),
        ({"path": "/index.html"}, 404, None),  # a file is there, but no endpoint
    ],
)
def test_a_bad_handshake_is_refused_with_the_exact_status(ws_server, change, status, field):
    running = ws_server()
    got, fields = _handshake(running, _request(running, **change))
    assert got == status, change
    if field is not None:
        assert fields.get(field[0]) is not None and field[1] in fields[field[0]], fields
    if status == 426:  # RFC 9110 §15.5.22: a 426 says what to upgrade to
        assert fields["upgrade"] == "websocket" and "upgrade" in fields["connection"].lower()


def test_a_plain_get_of_an_endpoint_is_426_and_other_paths_are_untouched(ws_server):
    running = ws_server()
    client = RawClient(running.connect())
    status, fields, _body = client.get("/echo").response()
    assert status == 426 and fields["upgrade"] == "websocket"
    assert client.get("/index.html").response()[0] == 200  # the same connection goes on


def test_the_101_and_the_bytes_behind_the_handshake_in_one_write(ws_server):
    """Frames sent right behind the handshake (before the 101 came back) belong to the WebSocket."""
    running = ws_server()
    behind = encode_frame(TEXT, b"early", mask=b"abcd") + encode_frame(PING, b"p", mask=b"efgh")
    ws = raw(running, behind=behind)
    assert ws.fields["upgrade"] == "websocket" and ws.fields["connection"] == "Upgrade"
    assert "content-length" not in ws.fields and "sec-websocket-extensions" not in ws.fields
    assert ws.recv_frame() == (TEXT, True, b"early")
    assert ws.recv_frame() == (PONG, True, b"p")
    ws.close()


def test_an_upgrade_after_earlier_requests_on_a_kept_alive_connection(ws_server):
    running = ws_server()
    sock = running.connect()
    client = RawClient(sock)
    assert client.get("/sample.txt").response()[0] == 200
    assert client.get("/index.html").response()[0] == 200
    ws = RawWebSocket(sock)  # the same connection
    ws.send_frame(TEXT, b"still here")
    assert ws.recv_message() == (TEXT, b"still here")
    ws.close()


def test_unknown_extensions_are_ignored_and_a_subprotocol_is_chosen_only_from_those_offered(ws_server):
    running = ws_server()
    mount_recorder(running, "/chat", subprotocols=("chat.v2", "chat.v1"))
    ws = raw(
        running,
        "/chat",
        extra="Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits, x-foo\r\n"
        "Sec-WebSocket-Protocol: chat.v1, chat.v2\r\nSec-WebSocket-Protocol: other\r\n",
    )
    assert "sec-websocket-extensions" not in ws.fields
    assert ws.fields["sec-websocket-protocol"] == "chat.v2"  # the endpoint's preference, among those offered
    ws.close()
    ws = raw(running, "/chat", extra="Sec-WebSocket-Protocol: chat.v3\r\n")
    assert "sec-websocket-protocol" not in ws.fields  # nothing offered is spoken: none is chosen
    ws.close()
    ws = raw(running, "/echo", extra="Sec-WebSocket-Protocol: chat.v1\r\n")
    assert "sec-websocket-protocol" not in ws.fields  # Echo speaks none
    ws.close()


@pytest.mark.parametrize(
    "origin, allowed",
    [
        ("http://127.0.0.1:{port}", True),
        ("HTTP://127.0.0.1:{port}", True),  # scheme and host compare case-insensitively
        ("https://app.example", True),  # --websocket-origin
        ("https://APP.example:443", True),  # the default port is no port
        ("http://localhost:{port}", False),  # another host than the request's Host
        ("null", False),
        ("https://127.0.0.1:{port}", False),  # another scheme
        ("http://127.0.0.1:1", False),  # another port
        ("http://127.0.0.1", False),  # no port is port 80
        ("http://127.0.0.1:{port}.evil.example", False),  # look-alikes
        ("http://127.0.0.1.evil.example:{port}", False),
        ("http://evil.example/http://127.0.0.1:{port}", False),
        ("http://user@127.0.0.1:{port}", False),
        ("http://app.example", False),  # the listed origin is https
    ],
)
def test_the_origin_rule(ws_server, origin, allowed):
    running = ws_server(websocket_origins=("https://app.example",))
    origin = origin.format(port=running.port)
    status, _fields = _handshake(running, _request(running, extra="Origin: %s\r\n" % origin))
    assert status == (101 if allowed else 403), origin


def test_no_origin_is_allowed_and_two_are_not(ws_server):
    running = ws_server()
    assert _handshake(running, _request(running))[0] == 101  # a client that is not a browser
    own = "Origin: http://127.0.0.1:%d\r\n" % running.port
    assert _handshake(running, _request(running, extra=own * 2))[0] == 403


# -- messages, pings, closing ---------------------------------------------------------


def test_echo_with_the_websockets_client(ws_server):
    running = ws_server()
    with connect(url(running)) as ws:
        ws.send("héllo ✓")
        assert ws.recv() == "héllo ✓"
        ws.send(b"\x00\xff" * 1000)
        assert ws.recv() == b"\x00\xff" * 1000
        ws.send(["frag", "men", "ted"])  # a fragmented text message
        assert ws.recv() == "fragmented"
        ws.send("x" * 200_000)
        assert ws.recv() == "x" * 200_000
        assert ws.ping(b"are you there").wait(5)
    assert ws.protocol.close_rcvd.code == 1000  # our Close echoed


def test_echo_and_close_with_wsproto(ws_server):
    running = ws_server()
    sock = running.connect()
    client = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
    sock.sendall(client.send(wsproto.events.Request(host="127.0.0.1:%d" % running.port, target="/echo")))
    events: List[object] = []

    def pump(until) -> None:
        while not any(isinstance(e, until) for e in events):
            data = sock.recv(65536)
            client.receive_data(data or None)
            events.extend(client.events())
            if not data:
                return

    pump(wsproto.events.AcceptConnection)  # wsproto checks Sec-WebSocket-Accept
    sock.sendall(client.send(wsproto.events.TextMessage("über", message_finished=False)))
    sock.sendall(client.send(wsproto.events.Ping(b"1")))
    sock.sendall(client.send(wsproto.events.TextMessage("all")))
    sock.sendall(client.send(wsproto.events.BytesMessage(b"\x01\x02")))
    sock.sendall(client.send(wsproto.events.CloseConnection(code=1000, reason="done")))
    pump(wsproto.events.CloseConnection)
    kinds = [(type(e).__name__, getattr(e, "data", getattr(e, "payload", None))) for e in events]
    assert kinds[1:] == [
        ("Pong", b"1"),
        ("TextMessage", "überall"),
        ("BytesMessage", bytearray(b"\x01\x02")),
        ("CloseConnection", None),
    ]
    assert events[-1].code == 1000
    assert sock.recv(65536) == b""  # the server closes the TCP connection first (RFC 6455 §7.1.1)
    sock.close()


def test_on_close_hears_the_peers_code_or_1006(ws_server):
    running = ws_server()
    log = mount_recorder(running)
    ws = raw(running, "/rec")
    ws.send_close(4321, "bye now")
    assert ws.expect_close() == (CLOSE, True, (4321).to_bytes(2, "big"))  # the code echoed, no reason
    assert ws.at_eof()
    ws = raw(running, "/rec")
    ws.send_frame(CLOSE)  # a Close without a code: echoed without one, heard as 1005
    assert ws.expect_close().payload == b""
    ws = raw(running, "/rec")
    ws.send_text("hello")
    assert ws.recv_message() == (TEXT, b"hello")
    ws.close()  # dropped without a Close: 1006
    wait_for(lambda: len([e for e in log if e[0] == "close"]) == 3, what="three closes")
    closes = [e for e in log if e[0] == "close"]
    assert closes == [("close", 4321, "bye now"), ("close", 1005, ""), ("close", 1006, "")]
    assert log[0] == ("open", "/rec", "127.0.0.1", None, None)  # the raw client sends no User-Agent


def test_a_handler_closes_and_the_server_waits_for_the_peers_close(ws_server):
    running = ws_server(websocket_close_timeout_s=0.5)
    log = mount_recorder(running)
    ws = raw(running, "/rec")
    ws.send_text("close me")
    close = ws.expect_close()
    assert (close.close_code, close.close_reason) == (4000, "as asked")
    ws.send_text("dropped: sent after the server's Close")
    ws.send_close(4000)
    assert ws.at_eof()  # the server shuts its side first ...
    ws.close()  # ... and the peer closes when it sees that
    wait_for(lambda: ("close", 4000, "") in log, what="on_close")
    assert ("message", "dropped: sent after the server's Close") not in log
    # A peer that never answers a Close is dropped after websocket_close_timeout_s.
    ws = raw(running, "/rec")
    ws.send_text("close me")
    assert ws.expect_close().close_code == 4000
    started = time.monotonic()
    assert ws.at_eof()
    assert 0.3 < time.monotonic() - started < 3


@pytest.mark.parametrize("fail_on", ["open", "message"])
def test_a_handler_that_raises_costs_its_connection_a_1011(ws_server, fail_on, caplog):
    running = ws_server()
    mount_recorder(running, fail_on=fail_on)
    ws = raw(running, "/rec")
    ws.send_text("boom")
    close = ws.expect_close()
    assert close.close_code == 1011
    with connect(url(running)) as other:  # the server goes on
        other.send("fine")
        assert other.recv() == "fine"
    assert "failed on purpose" in caplog.text


# -- the malformed corpus, live -----------------------------------------------------------


def _live(case: Case) -> bool:
    """Cases a server with default limits (or the case's message limit) can replay."""
    return set(case.limits) <= {"max_message_bytes"} and case.expected[-1][0] != "need"


@pytest.mark.parametrize("case", [c for c in CASES if _live(c)], ids=lambda c: c.source)
def test_the_frame_corpus_against_the_server(ws_server, case):
    """Valid messages are echoed and pings answered; each malformed case brings a Close with its code, then EOF."""
    limits = {"websocket_max_message_bytes": case.limits["max_message_bytes"]} if case.limits else {}
    running = ws_server(**limits)
    ws = raw(running)
    ws.send(case.data)
    for step in case.expected:
        kind = step[0]
        if kind in ("text", "binary"):
            data = step[1].encode("utf-8") if kind == "text" else step[1]
            assert ws.recv_frame() == (TEXT if kind == "text" else BINARY, True, data), case.title
        elif kind == "ping":
            assert ws.recv_frame() == (PONG, True, step[1]), case.title
        elif kind == "close":  # the peer's Close: echoed, and the rest ignored
            assert ws.recv_frame().opcode == CLOSE
            break
        elif kind == "error":
            close = ws.recv_frame()
            assert close.opcode == CLOSE and close.close_code == step[1], (case.title, close)
            break
    else:
        ws.send_close(1000)
        assert ws.expect_close().close_code == 1000
    assert ws.at_eof(), case.title


# -- limits and liveness ----------------------------------------------------------------


def test_1009_exactly_past_the_limit_and_from_the_header_alone(ws_server):
    running = ws_server(websocket_max_message_bytes=1000)
    with connect(url(running)) as ws:
        ws.send("x" * 1000)
        assert ws.recv() == "x" * 1000  # N bytes are allowed
    ws = raw(running)
    ws.send(encode_frame(BINARY, b"b" * 1001, mask=b"abcd")[:8])  # the header says 1001; no payload sent
    assert ws.expect_close().close_code == 1009
    ws = raw(running)
    ws.send_frame(TEXT, b"a" * 600, fin=False)
    ws.send_frame(0, b"a" * 401)
    assert ws.expect_close().close_code == 1009  # fragments count together


def test_a_silent_peer_is_pinged_then_closed_with_1011(ws_server):
    running = ws_server(websocket_ping_interval_s=0.2, websocket_ping_timeout_s=0.3, websocket_close_timeout_s=0.3)
    ws = raw(running)
    started = time.monotonic()
    ping = ws.recv_frame()
    assert ping.opcode == PING
    close = ws.recv_frame()  # no Pong, nothing at all: 1011
    elapsed = time.monotonic() - started
    assert (close.opcode, close.close_code) == (CLOSE, 1011)
    assert 0.4 < elapsed < 3, elapsed
    assert ws.at_eof()  # and no Close comes back: dropped after the close timeout


def test_a_peer_that_answers_pings_stays_open(ws_server):
    running = ws_server(websocket_ping_interval_s=0.1, websocket_ping_timeout_s=0.1)
    ws = raw(running)
    for _ in range(4):  # four rounds of ping and pong, each past the timeout of the last
        frame = ws.recv_frame()
        assert frame.opcode == PING
        ws.send_frame(PONG, frame.payload)
    ws.send_text("alive")
    assert ws.recv_message() == (TEXT, b"alive")
    ws.close()


def test_reading_pauses_while_the_client_does_not_read_and_nothing_is_lost(ws_server):
    running = ws_server()
    ws = RawWebSocket(running.connect(rcvbuf=16 * 1024))
    message = os.urandom(16 * 1024)
    frame = encode_frame(BINARY, message, mask=b"mask")
    count = 512  # 8 MiB each way: more than the kernel's buffers hold
    sender = threading.Thread(target=lambda: ws.sock.sendall(frame * count), daemon=True)
    sender.start()  # it blocks once the server stops reading
    session = wait_for(
        lambda: running.call(
            lambda: next((s for s in running.server.sessions.values() if s.label == "websocket"), None)
        ),
        what="the session",
    )
    queued = wait_for(
        lambda: running.call(lambda: not session.transport._reading and session.transport.queued_bytes()),
        what="reading to pause",
    )
    assert 64 * 1024 < queued <= 2 * 64 * 1024 + len(frame), queued  # the high-water mark, and one read's echoes
    ws.sock.settimeout(10)
    for _ in range(count):  # everything sent comes back, in order
        assert ws.recv_message() == (BINARY, message)
    sender.join(10)
    assert running.call(lambda: session.transport._reading)


class Room:
    """Everyone in the room gets every message (the broadcast under test)."""

    members: set = set()

    def on_open(self, session) -> None:
        Room.members.add(session)

    def on_message(self, session, message) -> None:
        broadcast(Room.members, message)

    def on_close(self, session, code, reason) -> None:
        Room.members.discard(session)


def test_a_slow_receiver_in_a_broadcast_is_closed_with_1008_and_the_rest_go_on(ws_server):
    running = ws_server(websocket_max_queued_bytes=256 * 1024)
    Room.members = set()
    running.call(lambda: running.server.app.mount_websocket("/room", Room))
    slow = RawWebSocket(running.connect(rcvbuf=8 * 1024), "/room")  # never reads
    wait_for(lambda: running.call(lambda: len(Room.members)) == 1, what="the slow one in the room")
    slow_session = running.call(lambda: next(iter(Room.members)))
    fast = raw(running, "/room")
    wait_for(lambda: running.call(lambda: len(Room.members)) == 2, what="both in the room")
    message = b"m" * 32 * 1024
    peak = 0
    for _ in range(200):
        fast.send_frame(BINARY, message)
        assert fast.recv_message() == (BINARY, message)
        state, queued = running.call(lambda: (slow_session.state.value, slow_session.transport.queued_bytes()))
        peak = max(peak, queued)
        if state != "open":
            break
    assert state in ("closing", "lingering", "closed"), "the slow receiver was never closed"
    assert slow_session.close_code == 1008
    assert peak <= 256 * 1024 + len(message) + 16, peak  # never more than the cap and one message
    fast.send_frame(TEXT, b"the room goes on")
    assert fast.recv_message() == (TEXT, b"the room goes on")
    slow.sock.settimeout(10)
    while True:  # the slow one finds, after what it was sent, the 1008
        frame = slow.recv_frame()
        if frame.opcode == CLOSE:
            assert frame.close_code == 1008
            break


def test_the_status_page_counts_websocket_sessions(ws_server):
    running = ws_server(status_path="/_status")
    with connect(url(running)) as ws:
        ws.send("x")
        ws.recv()
        client = running.http()
        client.request("GET", "/_status", headers={"Accept": "application/json"})
        status = json.loads(client.getresponse().read())
        client.close()
    assert status["connections"]["by_protocol"].get("websocket") == 1


# -- graceful stops -----------------------------------------------------------------------


def test_a_graceful_stop_sends_1001_also_in_the_middle_of_a_message_and_ends_promptly(ws_server):
    running = ws_server(shutdown_timeout_s=10)
    with connect(url(running)) as whole:
        whole.send("hi")
        assert whole.recv() == "hi"
        halfway = raw(running)
        halfway.send_frame(TEXT, b"the first half", fin=False)
        wait_for(lambda: running.call(lambda: len(running.server.sessions)) == 2, what="both sessions")
        codes: list = []

        def answer_halfway() -> None:  # a polite peer: answers the Close with its own
            close = halfway.expect_close()
            codes.append(close.close_code)
            halfway.send_close(1001)
            assert halfway.at_eof()
            halfway.close()

        thread = threading.Thread(target=answer_halfway)
        thread.start()
        started = time.monotonic()
        running.stop(graceful=True)
        elapsed = time.monotonic() - started
        thread.join(5)
        with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
            whole.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
        assert codes == [1001]
        assert elapsed < 3.0, "the stop took %.1f s" % elapsed


def test_sigterm_sends_1001_and_the_process_exits_promptly(run_cli):
    cli = run_cli("--port", "0", "--log-level", "warning", "--websocket", "/echo=reactor.websocket:Echo")
    assert cli.port, cli.output
    with connect("ws://127.0.0.1:%d/echo" % cli.port) as ws:
        ws.send("before")
        assert ws.recv() == "before"
        started = time.monotonic()
        cli.proc.send_signal(signal.SIGTERM)
        with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
            ws.recv(timeout=5)
        assert closed.value.rcvd.code == 1001
    assert cli.proc.wait(5) == 0
    assert time.monotonic() - started < 3


def test_a_workers_reload_sends_1001_and_new_connections_go_to_the_new_workers(run_cli):
    cli = run_cli(
        "--port", "0", "--log-level", "warning", "--workers", "2", "--websocket", "/echo=reactor.websocket:Echo"
    )
    assert cli.port, cli.output
    with connect("ws://127.0.0.1:%d/echo" % cli.port) as ws:
        ws.send("before the reload")
        assert ws.recv() == "before the reload"
        cli.proc.send_signal(signal.SIGHUP)  # a rolling reload: new workers start, the old ones drain
        with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
            ws.recv(timeout=20)
    assert closed.value.rcvd.code == 1001
    deadline = time.monotonic() + 10
    while True:  # the new workers answer
        try:
            with connect("ws://127.0.0.1:%d/echo" % cli.port, open_timeout=2) as again:
                again.send("after")
                assert again.recv(timeout=5) == "after"
                break
        except (OSError, websockets.exceptions.InvalidHandshake):
            assert time.monotonic() < deadline
            time.sleep(0.05)


@pytest.mark.parametrize(
    "args, words",
    [
        (["--websocket", "/x=nosuch_module_here:Thing"], "--websocket: /x: cannot import nosuch_module_here"),
        (["--websocket", "x=reactor.websocket:Echo"], "PATH=MODULE:FACTORY"),
        (["--websocket", "/x=reactor.websocket:Nope"], "reactor.websocket has no Nope"),
        (["--websocket", "/x=reactor.websocket:Echo", "--websocket", "/x=reactor.websocket:Echo"], "given twice"),
        (["--websocket-origin", "null"], "is not an origin"),
        (["--websocket-ping-interval", "0"], "--websocket-ping-interval"),
    ],
)
def test_a_bad_websocket_flag_is_one_line_and_exit_status_2(args, words, capsys):
    from reactor import cli

    with pytest.raises(SystemExit) as exited:
        cli.main(args, prog="reactor")
    assert exited.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert words in lines[0] and len(lines) == 2, lines

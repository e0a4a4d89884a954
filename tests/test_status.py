"""``--status-path``: counters and connections by state, JSON or HTML, loopback only."""

from __future__ import annotations

import http.client
import json
import socket
import time

import pytest

from reactor.config import Config
from reactor.connection import ConnState
from reactor.errors import HTTPError
from reactor.events import RequestHead
from reactor.handlers import Application
from reactor.handlers.status import is_loopback, prefers_html
from reactor.parser import RequestParser

JSON_ACCESS_LOG = True  # every response these tests provoke must log one line json.loads reads (conftest)

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"


def get(running, path, headers=None, method="GET"):
    conn = http.client.HTTPConnection(running.host, running.port, timeout=5)
    conn.request(method, path, headers=headers or {})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response, body


def status(running):
    response, body = get(running, "/_status")
    assert response.status == 200
    assert response.getheader("Content-Type") == "application/json"
    return json.loads(body)


def wait_for_states(running, expected, timeout=5.0):
    """Poll the loop thread (bounded) until the open connections are in exactly ``expected`` states."""
    want = sorted(state.value for state in expected)
    deadline = time.monotonic() + timeout
    while True:
        states = sorted(running.call(lambda: [c.state.value for c in running.server.sessions.values()]))
        if states == want:
            return
        if time.monotonic() > deadline:
            raise AssertionError("connections in %s, expected %s" % (states, want))
        time.sleep(0.01)


def test_off_by_default(server):
    response, _ = get(server, "/_status")
    assert response.status == 404


def test_json_counts_requests_classes_bytes_and_states(make_server):
    running = make_server(status_path="/_status")
    assert get(running, "/")[0].status == 200
    assert get(running, "/missing.html")[0].status == 404
    # One connection idle after a request, one in the middle of a header section.
    idle = http.client.HTTPConnection(running.host, running.port, timeout=5)
    idle.request("GET", "/sample.txt")
    idle.getresponse().read()
    partial = running.connect()
    partial.sendall(b"GET / HTTP/1.1\r\n")
    wait_for_states(running, [ConnState.READING_HEADERS, ConnState.IDLE])

    answer = status(running)
    assert answer["requests"] == 3
    assert answer["responses"] == {"1xx": 0, "2xx": 2, "3xx": 0, "4xx": 1, "5xx": 0}
    assert answer["sent_bytes"] > (running.root / "index.html").stat().st_size
    by_state = answer["connections"]["by_state"]
    assert list(by_state) == [s.value for s in ConnState if s not in (ConnState.CLOSED, ConnState.UPGRADED)]
    assert by_state["idle"] == 1
    # The status request itself is answered at the end of its header section.
    assert by_state["reading-headers"] == 2
    assert by_state["writing"] == 0
    assert answer["connections"]["open"] == 3
    assert answer["connections"]["accepted"] == 5
    assert answer["pool"] == {"workers": 4, "busy": 0, "queued": 0, "max_pending": running.server.config.pool_queue_max}
    assert answer["uptime_s"] >= 0
    assert answer["timers"] >= 2
    idle.close()
    partial.close()


def test_html_for_browsers_json_for_scripts(make_server):
    running = make_server(status_path="/_status")
    response, body = get(running, "/_status", {"Accept": BROWSER_ACCEPT})
    assert response.status == 200
    assert response.getheader("Content-Type") == "text/html; charset=utf-8"
    assert response.getheader("Vary") == "Accept"
    assert response.getheader("Cache-Control") == "no-store"
    assert b"<th>reading-headers</th><td>1</td>" in body and b"<th>writing</th><td>0</td>" in body
    response, body = get(running, "/_status", {"Accept": "*/*"})
    assert response.getheader("Content-Type") == "application/json"
    assert json.loads(body)["requests"] == 1


def test_head_and_refused_methods(make_server):
    running = make_server(status_path="/_status")
    response, body = get(running, "/_status", method="HEAD")
    assert response.status == 200 and body == b""
    response, _ = get(running, "/_status", method="POST")
    assert response.status == 405
    assert response.getheader("Allow") == "GET, HEAD"


def test_expect_continue_counts_as_1xx(make_server, raw_to):
    running = make_server(status_path="/_status")
    client = raw_to(running)
    body = b'{"n": 1}'
    client.send(
        b"POST /upload HTTP/1.1\r\nHost: localhost:%d\r\nContent-Type: application/json\r\n"
        b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % (running.port, len(body))
    )
    assert client.response()[0] == 100
    client.send(body)
    assert client.response()[0] == 201
    answer = status(running)
    assert answer["responses"]["1xx"] == 1
    assert answer["requests"] == 1


def _head(path: str) -> RequestHead:
    parser = RequestParser()
    parser.feed(b"GET %s HTTP/1.1\r\nHost: localhost:8080\r\n\r\n" % path.encode())
    event = parser.next_event()
    assert isinstance(event, RequestHead)
    return event


def test_other_clients_get_403():
    app = Application(Config(port=8080, status_path="/_status", max_connections=16), 8080, dict)

    class Peer:  # what StatusPage reads of a connection
        client = "192.0.2.7"

    class Req:
        head = _head("/_status")

    with pytest.raises(HTTPError) as refused:
        app.route(Peer(), Req())  # type: ignore[arg-type]
    assert refused.value.status == 403


def _public_ipv4():
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # no packet is sent; this picks the outgoing address
            address = probe.getsockname()[0]
    except OSError:
        return None
    return None if address.startswith("127.") else address


def test_non_loopback_client_over_the_network_gets_403(make_server):
    address = _public_ipv4()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to connect from")
    running = make_server(host="0.0.0.0", status_path="/_status", allowed_hosts=(address,))
    conn = http.client.HTTPConnection(address, running.port, timeout=5)
    conn.request("GET", "/_status")
    response = conn.getresponse()
    body = response.read()
    conn.close()
    assert response.status == 403
    assert b"loopback" in body


@pytest.mark.parametrize(
    "accept, html",
    [
        (None, False),
        ("", False),
        ("*/*", False),
        ("application/json", False),
        ("text/html", True),
        (BROWSER_ACCEPT, True),
        ("text/*;q=0.5, application/json;q=0.4", True),
        ("text/html;q=0.5, */*", False),
        ("text/html;q=0, */*;q=0.1", False),
        ("text/html;q=bogus, application/json;q=0.1", False),
    ],
)
def test_prefers_html(accept, html):
    assert prefers_html(accept) is html


@pytest.mark.parametrize(
    "client, loopback",
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("10.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("-", False),
        ("fe80::1%eth0", False),
    ],
)
def test_is_loopback(client, loopback):
    assert is_loopback(client) is loopback

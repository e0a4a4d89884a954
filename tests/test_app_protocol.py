"""A WSGI application behind real sockets: every rule of PEP 3333 a server owes it, and what HTTP owes the client.

A probe application answers each rule on its own path. Where the application itself
keeps the rules it runs inside ``wsgiref.validate.validator`` (the standard library's
PEP 3333 checker, which fails the request if the server hands it a wrong environ or
misuses the iterable); probes that break a rule on purpose run bare. Each case runs over
plain TCP and TLS (``BOTH_TRANSPORTS``), and the framing cases over HTTP/1.0 and 1.1,
keep-alive and close, read by a client that checks the framing byte by byte. Every
warning or error the server logs must be one the test expects (``logged``).
"""

from __future__ import annotations

import contextvars
import http.client
import io
import json
import logging
import os
import socket
import ssl
import sys
import threading
import time
from typing import Dict, List, Tuple
from wsgiref.validate import validator

import pytest

from conftest import wait_for
from reactor.connection import Connection
from reactor.transport import Transport

BOTH_TRANSPORTS = True
JSON_ACCESS_LOG = True  # every response these tests provoke must log one line json.loads reads (conftest)

#: (HTTP version, keep-alive asked) for the framing cases.
MODES = [("1.1", True), ("1.1", False), ("1.0", True), ("1.0", False)]
MODE_IDS = ["1.1-keepalive", "1.1-close", "1.0-keepalive", "1.0-close"]


class Reply:
    def __init__(self, status: int, fields: Dict[str, str], body: bytes, framing: str, head: bytes) -> None:
        self.status, self.fields, self.body, self.framing, self.head = status, fields, body, framing, head

    @property
    def keeps_alive(self) -> bool:
        return self.fields.get("connection", "").lower() != "close"


class Incomplete(Exception):
    """The connection ended before the body its framing announced."""


class Wire:
    """One client connection: sends requests as written, reads each response by its framing (RFC 9112 §6.3)."""

    def __init__(self, sock: socket.socket, port: int) -> None:
        self.sock, self.port, self.buf = sock, port, b""

    def request(
        self,
        method: str,
        target: str,
        version: str = "1.1",
        keep_alive: bool = True,
        fields: Tuple[Tuple[str, str], ...] = (),
        body: bytes = b"",
        chunked: bool = False,
    ) -> "Wire":
        lines = ["%s %s HTTP/%s" % (method, target, version), "Host: 127.0.0.1:%d" % self.port]
        if version == "1.1" and not keep_alive:
            lines.append("Connection: close")
        if version == "1.0" and keep_alive:
            lines.append("Connection: keep-alive")
        lines += ["%s: %s" % field for field in fields]
        if chunked:
            lines.append("Transfer-Encoding: chunked")
            payload = b"".join(
                b"%x\r\n%s\r\n" % (len(body[i : i + 7]), body[i : i + 7]) for i in range(0, len(body), 7)
            )
            payload += b"0\r\n\r\n"
        else:
            if (body or method in ("POST", "PUT")) and not any(n.lower() == "content-length" for n, _ in fields):
                lines.append("Content-Length: %d" % len(body))
            payload = body
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload)
        return self

    def _fill(self) -> bool:
        try:
            chunk = self.sock.recv(65536)
        except (ConnectionResetError, ssl.SSLError):
            chunk = b""
        self.buf += chunk
        return bool(chunk)

    def _take(self, size: int) -> bytes:
        while len(self.buf) < size:
            if not self._fill():
                raise Incomplete("%d of %d bytes" % (len(self.buf), size))
        data, self.buf = self.buf[:size], self.buf[size:]
        return data

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            if not self._fill():
                raise Incomplete("no CRLF")
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def response(self, head_request: bool = False) -> Reply:
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                raise Incomplete("no head")
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        fields: Dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            assert name.lower() not in fields or name.lower() in ("vary", "set-cookie"), "repeated %s" % name
            fields[name.lower()] = value.strip()
        assert not ("content-length" in fields and "transfer-encoding" in fields), head
        if head_request or status in (204, 304) or status < 200:
            return Reply(status, fields, b"", "none", head)
        if fields.get("transfer-encoding") == "chunked":
            body = b""
            while True:
                size = int(self._line().split(b";")[0], 16)
                if not size:
                    assert self._line() == b""  # no trailer section
                    return Reply(status, fields, body, "chunked", head)
                body += self._take(size)
                assert self._take(2) == b"\r\n"
        if "content-length" in fields:
            return Reply(status, fields, self._take(int(fields["content-length"])), "length", head)
        while self._fill():
            pass
        body, self.buf = self.buf, b""
        return Reply(status, fields, body, "close", head)

    def at_eof(self) -> bool:
        """True if the server closes with nothing more sent."""
        return not self._fill() and not self.buf

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def wire(request):
    opened: List[Wire] = []

    def connect(running) -> Wire:
        client = Wire(running.connect(), running.port)
        opened.append(client)
        return client

    yield connect
    for client in opened:
        client.close()


@pytest.fixture
def logged(caplog):
    """Fail the test on any warning or error the server logs that the test did not name as expected."""
    caplog.set_level(logging.INFO, logger="reactor")
    expected: List[str] = []

    def expect(*fragments: str) -> List[str]:
        expected.extend(fragments)
        return [r.getMessage() for r in caplog.records if r.name.startswith("reactor")]

    yield expect
    unexpected = [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING
        and r.name.startswith("reactor")
        and not any(fragment in r.getMessage() for fragment in expected)
    ]
    assert not unexpected, unexpected


# -- the probe application ------------------------------------------------------------------

REQUEST_VAR: contextvars.ContextVar[str] = contextvars.ContextVar("request_var", default="unset")


class Probe:
    """One WSGI application with a path per rule; it records what the server did with it."""

    def __init__(self) -> None:
        self.closed: List[Tuple[str, str]] = []  # (path, thread name) per close()
        self.environs: List[dict] = []
        self.gate = threading.Event()  # what the blocking probes wait for
        self.ticks = 0

    def __call__(self, environ, start_response):
        self.environs.append(environ)
        path = environ["PATH_INFO"]
        handler = getattr(self, "on_" + path.strip("/").split("/")[0].replace("-", "_"), None) if path else None
        if handler is None:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"no probe " + path.encode("latin-1")]
        result = handler(environ, start_response)
        if type(result) is list or type(result) is environ["wsgi.file_wrapper"] or hasattr(result, "__len__"):
            return result  # a list stays a list, a file a file, a sized iterable sized (its close() records)
        return Closing(self, path, result)

    # what the server gave

    def on_environ(self, environ, start_response):
        shown = {k: v for k, v in environ.items() if isinstance(v, (str, bool, int, tuple))}
        shown["input"] = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        shown["input"] = shown["input"].decode("latin-1")
        shown["kinds"] = sorted({type(v).__module__ + "." + type(v).__name__ for v in environ.values()})
        body = json.dumps(shown).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    def on_read(self, environ, start_response):
        """wsgi.input every way PEP 3333 names: read(n), readline(), readline(n), readlines(), iteration, past the end."""
        body = environ["wsgi.input"]
        steps = [body.read(3), body.readline(), body.readline(2), body.readlines(), body.read(10), body.read(10)]
        result = [step if isinstance(step, list) else [step] for step in steps]
        data = json.dumps([[b.decode("latin-1") for b in part] for part in result]).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [data]

    def on_read_all(self, environ, start_response):
        data = environ["wsgi.input"].read()  # no size: all of it (validator-free probe)
        rest = list(environ["wsgi.input"])
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [data, b"|%d" % len(rest)]

    # framing

    def on_hello(self, environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
        return [b"Hello, world!"]

    def on_list(self, environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ab", b"", b"cd"]

    def on_gen(self, environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"ab"
        yield b""
        yield b"cd"

    def on_gen_stated(self, environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "4")])
        yield b"ab"
        yield b"cd"

    def on_long(self, environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "4")])
        return [b"abcdef"]

    def on_short(self, environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "10")])
        yield b"abc"
        yield b"def"

    def on_no_content(self, environ, start_response):
        start_response("204 No Content", [])
        return [b"ignored"]

    def on_not_modified(self, environ, start_response):
        start_response("304 Not Modified", [("ETag", '"x"')])
        return [b"ignored"]

    def on_late_start(self, environ, start_response):
        """start_response from inside the generator, after empty items (PEP 3333 allows it)."""
        yield b""
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"late"

    def on_single(self, environ, start_response):
        """An iterable whose len() is 1 (PEP 3333: the first bytestring is all of it), not a list."""
        probe = self

        class Single:
            def __len__(self) -> int:
                return 1

            def __iter__(self):
                yield b"only"
                raise AssertionError("pulled past the one item")

            def close(self) -> None:
                probe.closed.append(("/single", threading.current_thread().name))

        start_response("200 OK", [("Content-Type", "text/plain")])
        return Single()

    def on_write(self, environ, start_response):
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"w1.")
        write(b"w2.")
        return [b"i1"]

    def on_write_mixed(self, environ, start_response):
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"w1.")
        yield b"i1."
        write(b"w2.")
        yield b"i2"

    # broken applications

    def on_raise(self, environ, start_response):
        raise ValueError("the probe raises")

    def on_hop(self, environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain"), ("Connection", "keep-alive")])
        return [b"never sent"]

    def on_crlf(self, environ, start_response):
        start_response("200 OK", [("X-Injected", "a\r\nSet-Cookie: evil=1")])
        return [b"never sent"]

    def on_not_bytes(self, environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return ["text"]

    def on_exc_info_early(self, environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise KeyError("caught before any byte")
        except KeyError:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")], sys.exc_info())
        return [b"replaced"]

    def on_fail_after(self, environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"first"
        raise ValueError("the probe fails mid-body")

    def on_exc_info_late(self, environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"first"
        try:
            raise KeyError("too late")
        except KeyError:
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")], sys.exc_info())
        yield b"never"

    # pulls, contexts, threads

    def on_context(self, environ, start_response):
        before = REQUEST_VAR.get()
        REQUEST_VAR.set(environ["QUERY_STRING"])
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield ("%s,%s" % (before, threading.current_thread().name)).encode()
        yield ("|%s" % REQUEST_VAR.get()).encode()  # a later pull: the first job's context

    def on_ticks(self, environ, start_response):
        """An endless stream of events, one a tick, like server-sent events."""
        start_response("200 OK", [("Content-Type", "text/event-stream")])
        while True:
            self.ticks += 1
            yield b"data: tick\n\n"
            time.sleep(float(environ["QUERY_STRING"] or "0.3"))

    def on_block(self, environ, start_response):
        self.gate.wait(10)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"unblocked"]

    def on_slow_stream(self, environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        for _ in range(4):
            time.sleep(0.3)
            yield b"slow."

    def on_file(self, environ, start_response):
        query = dict(pair.split("=") for pair in environ["QUERY_STRING"].split("&") if pair)
        probe = self

        class Recorded(io.FileIO):
            def close(self) -> None:
                if not self.closed:
                    probe.closed.append(("/file", threading.current_thread().name))
                super().close()

        file = Recorded(environ["probe.file"], "rb")
        file.seek(int(query.get("from", "0")))
        fields = [("Content-Type", "application/octet-stream")]
        if "length" in query:
            fields.append(("Content-Length", query["length"]))
        start_response("200 OK", fields)
        return environ["wsgi.file_wrapper"](file, 4096)


class Closing:
    """The probe's iterable: records where close() ran, and how often."""

    def __init__(self, probe: Probe, path: str, iterable) -> None:
        self.probe, self.path, self.iterable = probe, path, iterable
        if hasattr(iterable, "filelike"):
            self.filelike = iterable.filelike

    def __iter__(self):
        return iter(self.iterable)

    def close(self) -> None:
        self.probe.closed.append((self.path, threading.current_thread().name))
        close = getattr(self.iterable, "close", None)
        if close is not None:
            close()


@pytest.fixture
def probe():
    return Probe()


@pytest.fixture
def hosted(make_server, probe):
    """``--app`` with the probe inside wsgiref's validator."""
    return make_server(wsgi_app=validator(probe))


@pytest.fixture
def bare(make_server, probe):
    """``--app`` with the probe alone (for probes that break PEP 3333 on purpose)."""
    return make_server(wsgi_app=probe)


def closes_of(probe: Probe, path: str) -> List[str]:
    return [thread for closed_path, thread in probe.closed if closed_path == path]


def test_options_asterisk_is_the_servers_and_options_of_a_path_the_applications(hosted, wire):
    """OPTIONS * asks about the server (RFC 9110 §9.3.7): answered without the application."""
    client = wire(hosted)
    reply = client.request("OPTIONS", "*").response()
    assert reply.status == 204 and reply.fields["allow"] == "GET, HEAD, POST, OPTIONS", reply.fields
    assert reply.keeps_alive and reply.body == b""
    reply = client.request("OPTIONS", "/hello").response()  # a resource's OPTIONS is the application's
    assert reply.status == 200 and reply.body == b"Hello, world!", (reply.status, reply.body)


# -- the request side ------------------------------------------------------------------------


def test_environ_is_complete_plain_and_true_to_the_request(hosted, wire, transport, logged):
    client = wire(hosted)
    fields = (("Accept", "a/b"), ("Accept", "c/d"), ("X-Auth_User", "forged"), ("Content-Type", "text/plain"))
    client.request("POST", "/environ/caf%C3%A9?q=%20x&y", fields=fields, body=b"hello", chunked=True)
    reply = client.response()
    assert reply.status == 200, reply.body
    environ = json.loads(reply.body)
    assert environ["REQUEST_METHOD"] == "POST" and environ["SCRIPT_NAME"] == ""
    assert environ["PATH_INFO"] == "/environ/caf\u00c3\u00a9"  # percent-decoded, latin-1
    assert environ["QUERY_STRING"] == "q=%20x&y" and environ["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert environ["HTTP_ACCEPT"] == "a/b, c/d" and "HTTP_X_AUTH_USER" not in environ
    assert environ["CONTENT_LENGTH"] == "5" and environ["input"] == "hello"  # chunked, decoded
    assert "HTTP_TRANSFER_ENCODING" not in environ and environ["wsgi.input_terminated"] is True
    assert environ["wsgi.url_scheme"] == ("https" if transport == "tls" else "http")
    assert environ["REMOTE_ADDR"] == "127.0.0.1" and int(environ["REMOTE_PORT"]) == client.sock.getsockname()[1]
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == ("127.0.0.1", str(hosted.port))
    assert environ["wsgi.multithread"] is True and environ["wsgi.multiprocess"] is False
    assert environ["wsgi.run_once"] is False and environ["wsgi.version"] == [1, 0]
    for kind in environ["kinds"]:  # the environ never holds the connection, the transport or a socket
        assert not kind.startswith(("reactor.connection", "reactor.transport", "socket", "ssl.")), kind
    assert Connection.__name__ not in str(environ) and Transport.__name__ not in str(environ)


def test_wsgi_input_reads_every_way_and_gives_nothing_past_the_end(hosted, wire):
    client = wire(hosted)
    client.request("POST", "/read", body=b"abcdef\nghij\nklm\nno", chunked=True)
    assert json.loads(client.response().body) == [["abc"], ["def\n"], ["gh"], ["ij\n", "klm\n", "no"], [""], [""]]
    client.request("POST", "/read", body=b"x\ny")
    assert json.loads(client.response().body) == [["x\ny"], [""], [""], [], [""], [""]]


def test_a_large_body_is_spooled_and_read_whole(bare, wire, make_server, probe):
    """Past 512 KiB the body goes to a temporary file (disk pool) before the call; read() gives all of it."""
    running = make_server(wsgi_app=probe, max_body_bytes=4 * 1024 * 1024)
    client = wire(running)
    body = os.urandom(3 * 1024 * 1024 + 5)
    client.request("POST", "/read-all", body=body, chunked=False)
    reply = client.response()
    assert reply.body == body + b"|0"
    client.request("POST", "/read-all", body=body[:1000], chunked=True)  # the same connection goes on
    assert client.response().body == body[:1000] + b"|0"


def test_expect_100_continue_then_the_application_and_never_past_the_limit(make_server, probe, wire):
    running = make_server(wsgi_app=validator(probe), max_body_bytes=100)
    client = wire(running)
    client.sock.sendall(
        b"POST /environ HTTP/1.1\r\nHost: x:1\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n".replace(
            b"x:1", b"127.0.0.1:%d" % running.port
        )
    )
    assert client.response().status == 100
    client.sock.sendall(b"hello")
    reply = client.response()
    assert reply.status == 200 and json.loads(reply.body)["input"] == "hello"
    client.request("POST", "/environ", fields=(("Expect", "100-continue"), ("Content-Length", "101")))
    reply = client.response()
    assert reply.status == 413 and b"100 Continue" not in reply.head  # refused at the head: no 100 first
    other = wire(running)
    other.request("GET", "/environ", fields=(("Expect", "tea"),))
    assert other.response().status == 417
    assert all(e["PATH_INFO"] == "/environ" for e in probe.environs) and len(probe.environs) == 1


# -- framing, over every mode ----------------------------------------------------------------


@pytest.mark.parametrize("version, keep_alive", MODES, ids=MODE_IDS)
def test_framing_of_each_kind_of_response(hosted, wire, version, keep_alive, logged):
    """A body finished in the first job has a Content-Length; a generator is chunked on 1.1, close-delimited on 1.0."""
    unknown = "chunked" if version == "1.1" else "close"  # a length not known when the head leaves
    expectations = [
        ("/hello", b"Hello, world!", "length"),
        ("/list", b"abcd", unknown),  # the validator's wrapper hides the list: it may block, as any iterator
        ("/gen-stated", b"abcd", "length"),
        ("/write", b"w1.w2.i1", unknown),
        ("/write-mixed", b"w1.i1.w2.i2", unknown),
        ("/gen", b"abcd", unknown),
    ]
    client = wire(hosted)
    for path, body, framing in expectations:
        reply = client.request("GET", path, version, keep_alive).response()
        assert (reply.status, reply.body, reply.framing) == (200, body, framing), path
        persists = keep_alive and framing != "close"
        assert reply.keeps_alive is persists, (path, reply.head)
        if not persists:
            assert client.at_eof()
            client = wire(hosted)
        if path in ("/gen-stated", "/write-mixed", "/gen"):
            assert wait_for(lambda path=path: closes_of(hosted_probe(hosted), path), what="close() of " + path)


def test_a_list_is_drained_in_the_first_job_and_gets_a_content_length(bare, wire):
    """A list (or tuple) cannot block: the first job takes all of it, up to its budget."""
    client = wire(bare)
    for version in ("1.1", "1.0"):
        for path, body in (
            ("/list", b"abcd"),
            ("/write", b"w1.w2.i1"),
            ("/hello", b"Hello, world!"),
            ("/single", b"only"),
        ):
            reply = client.request("GET", path, version).response()
            assert (reply.body, reply.framing) == (body, "length") and reply.keeps_alive
    # start_response from inside a generator, after empty items: PEP 3333 allows it (the validator does not)
    reply = client.request("GET", "/late-start").response()
    assert (reply.body, reply.framing) == (b"late", "chunked")


def hosted_probe(running) -> Probe:
    return running.server.wsgi_app.__closure__[0].cell_contents  # validator(probe) keeps the probe in its closure


@pytest.mark.parametrize("version, keep_alive", MODES, ids=MODE_IDS)
def test_head_204_and_304_carry_no_body_whatever_the_application_yields(hosted, wire, version, keep_alive):
    client = wire(hosted)
    for method, path, status, length in [
        ("HEAD", "/hello", 200, "13"),
        ("HEAD", "/gen-stated", 200, "4"),
        ("GET", "/no-content", 204, None),
        ("GET", "/not-modified", 304, None),
    ]:
        client.request(method, path, version, keep_alive)
        reply = client.response(head_request=method == "HEAD")
        assert reply.status == status and reply.fields.get("content-length") == length, (path, reply.head)
        if not reply.keeps_alive:
            assert client.at_eof()
            client = wire(hosted)
    for path in ("/gen", "/list"):  # a length unknown after the first block: HEAD announces what GET would get
        client.request("HEAD", path, version, keep_alive)
        reply = client.response(head_request=True)
        assert reply.fields.get("transfer-encoding") == ("chunked" if version == "1.1" else None)
        assert "content-length" not in reply.fields
        if not reply.keeps_alive:
            assert client.at_eof()
            client = wire(hosted)
    client.request("GET", "/hello", version, keep_alive)  # nothing of a body was sent: the next answer follows
    assert client.response().body == b"Hello, world!"


def test_a_stated_length_is_held_to_surplus_cut_and_a_short_body_aborted(bare, wire, logged):
    expected = logged("longer than its Content-Length", "short of its Content-Length")
    client = wire(bare)
    reply = client.request("GET", "/long").response()
    assert (reply.body, reply.fields["content-length"]) == (b"abcd", "4")
    assert client.request("GET", "/hello").response().body == b"Hello, world!"  # nothing extra on the wire
    client.request("GET", "/short")
    with pytest.raises(Incomplete):
        client.response()  # 6 of 10 bytes, then the connection ends
    assert expected is not None


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/raise", "/hop", "/crlf", "/not-bytes"])
def test_an_error_before_the_first_byte_is_a_500_that_closes(bare, wire, path, logged):
    logged("the application raised")
    client = wire(bare)
    reply = client.request("GET", path).response()
    assert reply.status == 500 and reply.fields["connection"] == "close"
    assert reply.body.startswith(b"500 Internal Server Error: the application raised")
    assert b"Traceback" not in reply.body and b"never sent" not in reply.body and b"evil" not in reply.head
    assert client.at_eof()


def test_each_error_is_logged_once_with_the_request_line_and_traceback(bare, wire, caplog, logged):
    logged("the application raised", "the application failed after the response began")
    wire(bare).request("GET", "/hop?x=1").response()
    client = wire(bare)
    client.request("GET", "/fail-after")
    with pytest.raises(Incomplete):
        client.response()  # no last-chunk: the client can tell
    wait_for(lambda: closes_of(bare.server.wsgi_app, "/fail-after"), what="close()")
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("reactor")]
    assert len(errors) == 2, [r.getMessage() for r in errors]
    assert "'GET /hop?x=1 HTTP/1.1'" in errors[0].getMessage() and "hop-by-hop" in str(errors[0].exc_info[1])
    assert "'GET /fail-after HTTP/1.1'" in errors[1].getMessage() and errors[1].exc_info is not None


def test_the_traceback_reaches_the_body_only_at_debug(make_server, probe, wire, logged, caplog):
    logged("the application raised")
    caplog.set_level(logging.DEBUG, logger="reactor.app")
    running = make_server(wsgi_app=probe)
    reply = wire(running).request("GET", "/raise").response()
    assert reply.status == 500 and b"Traceback" in reply.body and b"the probe raises" in reply.body


def test_exc_info_replaces_the_answer_before_the_first_byte_and_reraises_after(hosted, bare, wire, logged):
    logged("the application failed after the response began")
    reply = wire(hosted).request("GET", "/exc-info-early").response()
    assert (reply.status, reply.body) == (503, b"replaced")
    client = wire(bare)
    client.request("GET", "/exc-info-late")
    with pytest.raises(Incomplete):
        client.response()


# -- pulls, threads, contexts and close() ------------------------------------------------------


def test_pulls_run_in_the_first_jobs_context_and_requests_never_share_one(hosted, wire):
    client = wire(hosted)
    for query in ("one", "two", "three"):
        body = client.request("GET", "/context?" + query).response().body.decode()
        before, rest = body.split(",", 1)
        thread, value = rest.split("|")
        assert before == "unset" and value == query and thread.startswith("reactor-app")


def test_close_runs_once_on_an_application_thread_also_when_the_client_leaves_mid_stream(hosted, wire):
    probe = hosted_probe(hosted)
    client = wire(hosted)
    client.request("GET", "/ticks?0.5")
    while b"tick" not in client.buf:
        client._fill()
    left = time.monotonic()
    client.close()
    wait_for(lambda: closes_of(probe, "/ticks"), timeout_s=5, what="close() after the client left")
    noticed_s = time.monotonic() - left
    assert noticed_s < 2.0, noticed_s  # the block being made returns within 0.5 s; the EOF was seen meanwhile
    wait_for(lambda: not hosted.call(lambda: len(hosted.server.sessions)), what="the connection to end")
    assert len(closes_of(probe, "/ticks")) == 1 and closes_of(probe, "/ticks")[0].startswith("reactor-app")
    ticks = probe.ticks
    time.sleep(0.6)  # one tick's time: the generator is not pulled again (a bounded wait for an absence)
    assert probe.ticks == ticks


def test_a_slow_application_is_not_a_client_that_stopped_reading(make_server, probe, wire):
    """The send timeout is for clients that do not read; an application that takes its time keeps the connection."""
    running = make_server(wsgi_app=validator(probe), send_timeout_s=0.5)
    reply = wire(running).request("GET", "/slow-stream").response()
    assert reply.body == b"slow." * 4 and reply.framing == "chunked"


def test_threads_0_runs_the_application_on_the_loop_thread(make_server, probe, wire):
    running = make_server(wsgi_app=validator(probe), app_threads=0)
    client = wire(running)
    environ = json.loads(client.request("GET", "/environ").response().body)
    assert environ["wsgi.multithread"] is False
    body = client.request("GET", "/context?inline").response().body.decode()
    assert body.endswith("|inline") and ",reactor-loop" in body
    assert client.request("GET", "/gen").response().body == b"abcd"
    wait_for(lambda: closes_of(probe, "/gen"), what="close()")
    assert closes_of(probe, "/gen") == ["reactor-loop"]


def test_one_application_thread_is_not_multithread(make_server, probe, wire):
    running = make_server(wsgi_app=validator(probe), app_threads=1)
    assert json.loads(wire(running).request("GET", "/environ").response().body)["wsgi.multithread"] is False


def test_a_full_application_queue_is_503_with_retry_after_and_one_warning(make_server, probe, wire, logged, caplog):
    logged("application pool saturated")
    running = make_server(wsgi_app=probe, app_threads=1, app_queue_max=2)
    first, second = wire(running), wire(running)
    first.request("GET", "/block")
    second.request("GET", "/block")
    wait_for(lambda: running.call(lambda: running.server.app_pool.pending) == 2, what="two jobs in the pool")
    for _ in range(5):
        reply = wire(running).request("GET", "/hello").response()
        assert reply.status == 503 and reply.fields["retry-after"] == "1"
    probe.gate.set()
    assert first.response().body == second.response().body == b"unblocked"
    warnings = [r.getMessage() for r in caplog.records if "saturated" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("application pool saturated: 1 queued, oldest ") and " ms" in warnings[0]
    assert wire(running).request("GET", "/hello").response().status == 200


# -- wsgi.file_wrapper -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query, start, length", [("", 0, None), ("from=1000", 1000, None), ("from=10&length=500", 10, 500)]
)
def test_file_wrapper_sends_the_file_from_its_position(make_server, probe, wire, tmp_path, query, start, length):
    """A regular file goes the static path's way (sendfile, or page-cache blocks over TLS), from where it stands."""
    data = os.urandom(300_000)
    path = tmp_path / "blob.bin"
    path.write_bytes(data)

    def app(environ, start_response):
        environ["probe.file"] = str(path)
        return probe(environ, start_response)

    expected = data[start:] if length is None else data[start : start + length]
    for wrapped in (False, True):  # the validator hides the wrapper: then it is iterated, chunked
        running = make_server(wsgi_app=validator(app) if wrapped else app)
        client = wire(running)
        reply = client.request("GET", "/file?" + query).response()
        assert reply.body == expected
        assert reply.framing == ("chunked" if wrapped and length is None else "length")
        reply = client.request("HEAD", "/file?" + query).response(head_request=True)
        assert reply.fields.get("content-length") == (None if wrapped and length is None else str(len(expected)))
    wait_for(lambda: len(closes_of(probe, "/file")) == 4, what="every file closed")
    assert all(thread.startswith("reactor-app") for thread in closes_of(probe, "/file"))


# -- beside the application: static prefixes, the root path, proxies -----------------------------


def test_static_prefixes_match_segments_serve_inline_and_404_themselves(make_server, probe, wire, site, logged):
    (site / "app.css").write_text("body { color: teal }\n")
    running = make_server(wsgi_app=validator(probe), static_mounts=(("/static", site),))
    client = wire(running)
    reply = client.request("GET", "/static/app.css").response()
    assert reply.status == 200 and reply.fields["content-type"].startswith("text/css")
    assert "content-disposition" not in reply.fields and reply.body == b"body { color: teal }\n"
    etag = reply.fields["etag"]
    assert client.request("GET", "/static/app.css", fields=(("If-None-Match", etag),)).response().status == 304
    assert client.request("GET", "/static/app.css?v=2").response().body == b"body { color: teal }\n"
    reply = client.request("GET", "/static/app.css", fields=(("Range", "bytes=0-3"),)).response()
    assert (reply.status, reply.body) == (206, b"body")
    assert client.request("GET", "/static/missing.css").response().status == 404
    for path in ("/statics", "/upload", "/index.html", "/"):  # not under the prefix: the application's
        assert client.request("GET", path).response().status == 404
    assert [e["PATH_INFO"] for e in probe.environs] == ["/statics", "/upload", "/index.html", "/"]
    reply = client.request("GET", "/static").response()  # the folder itself: its index.html
    assert reply.status == 200 and reply.fields["content-type"].startswith("text/html")


def test_a_static_request_never_waits_for_the_application_pool(make_server, probe, wire, site):
    running = make_server(wsgi_app=probe, app_threads=1, static_mounts=(("/static", site),))
    blocked = wire(running).request("GET", "/block")
    wait_for(lambda: running.call(lambda: running.server.app_pool.busy) == 1, what="the only thread busy")
    started = time.monotonic()
    for _ in range(5):
        assert wire(running).request("GET", "/static/sample.txt").response().status == 200
    assert time.monotonic() - started < 2.0
    probe.gate.set()
    assert blocked.response().body == b"unblocked"


def test_root_path_sets_script_name_and_404s_outside(make_server, probe, wire):
    running = make_server(wsgi_app=validator(probe), root_path="/app")
    client = wire(running)
    environ = json.loads(client.request("GET", "/app/environ?x").response().body)
    assert (environ["SCRIPT_NAME"], environ["PATH_INFO"]) == ("/app", "/environ")
    assert client.request("GET", "/app").response().status == 404  # the probe's own 404 for PATH_INFO ''
    assert probe.environs[-1]["PATH_INFO"] == "" and probe.environs[-1]["SCRIPT_NAME"] == "/app"
    for outside in ("/application", "/other", "/"):
        reply = client.request("GET", outside).response()
        assert reply.status == 404 and b"--root-path" in reply.body
    assert len(probe.environs) == 2


@pytest.mark.plain_only
def test_forwarded_fields_count_only_from_the_allowed_proxies(make_server, probe, wire):
    forwarded = (("X-Forwarded-For", "203.0.113.9, 198.51.100.1"), ("X-Forwarded-Proto", "https"))
    trusting = make_server(wsgi_app=validator(probe), forwarded_allow_ips=("127.0.0.0/8",))
    environ = json.loads(wire(trusting).request("GET", "/environ", fields=forwarded).response().body)
    assert (environ["REMOTE_ADDR"], environ["wsgi.url_scheme"]) == ("198.51.100.1", "https")
    for others in ((), ("10.0.0.0/8",)):
        running = make_server(wsgi_app=validator(probe), forwarded_allow_ips=others)
        environ = json.loads(wire(running).request("GET", "/environ", fields=forwarded).response().body)
        assert (environ["REMOTE_ADDR"], environ["wsgi.url_scheme"]) == ("127.0.0.1", "http")
        assert "HTTP_X_FORWARDED_FOR" not in environ and "HTTP_X_FORWARDED_PROTO" not in environ


def test_a_strict_client_agrees_on_the_framing(hosted, transport):
    """http.client on one keep-alive connection: every kind of body, in order."""
    conn = hosted.http()
    for path, body in [
        ("/hello", b"Hello, world!"),
        ("/gen", b"abcd"),
        ("/write-mixed", b"w1.i1.w2.i2"),
        ("/list", b"abcd"),
    ]:
        conn.request("GET", path)
        response = conn.getresponse()
        assert response.read() == body and not response.will_close
    conn.close()
    assert isinstance(conn, http.client.HTTPConnection)

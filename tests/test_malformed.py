"""Malformed bytes, Expect: 100-continue and pipelining against a real server.

Everything goes over real sockets on 127.0.0.1 to a server on its own thread. Raw
sockets send what no client library would; every read is bounded by the socket
timeout, so a server that hangs fails the test instead of stalling it.

The invalid cases of ``tests/corpus`` that fail before any request-line is accepted
run here too: the server must answer each with the parser's status, once, with
``Connection: close``, and then close.
"""

from __future__ import annotations

import errno
import fcntl
import http.client
import json
import logging
import os
import re
import socket
import struct
import termios
import threading
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Tuple

import pytest
from corpus import INVALID, Case

from conftest import RawClient, RunningServer
from reactor.connection import ConnState
from reactor.handlers.upload import UPLOADS_DIR

Server = Callable[..., RunningServer]
CONFIG_LIMITS = {"max_request_line_bytes", "max_header_section_bytes", "max_field_lines", "max_body_bytes"}
#: Hosts the corpus uses, so that the application never refuses them first.
CORPUS_HOSTS = ("a", "example.com", "example.com:443", "[::1]:8080", "[2001:db8::1]:80")


def connect(server: RunningServer, timeout: float = 5.0) -> RawClient:
    return RawClient(server.connect(timeout))


def host(server: RunningServer) -> bytes:
    return b"127.0.0.1:%d" % server.port


def json_upload_head(server: RunningServer, extra: bytes = b"", length: int = -1) -> bytes:
    framing = b"Transfer-Encoding: chunked\r\n" if length < 0 else b"Content-Length: %d\r\n" % length
    return (
        b"POST /upload HTTP/1.1\r\nHost: "
        + host(server)
        + b"\r\nContent-Type: application/json\r\n"
        + framing
        + extra
        + b"\r\n"
    )


def assert_closed_after_one_response(client: RawClient, status: int) -> Dict[str, str]:
    """One response with ``status`` and ``Connection: close``, then end of stream."""
    got, fields, _body = client.response()
    assert got == status
    assert fields.get("connection") == "close"
    assert client.at_eof(), "the server sent more after a closing response"
    return fields


# -- the corpus over sockets ------------------------------------------------------------

HEAD_ERRORS = [case for case in INVALID if len(case.expected) == 1 and set(case.limits) <= CONFIG_LIMITS]


@pytest.fixture(scope="module")
def corpus_servers(tmp_path_factory: pytest.TempPathFactory) -> "Iterator[Dict[Tuple, RunningServer]]":
    """One server per set of limits the corpus uses, shared by the corpus tests."""
    from conftest import copy_resources
    from reactor.config import Config
    from reactor.server import Server as ReactorServer

    servers: Dict[Tuple, RunningServer] = {}
    root = copy_resources(tmp_path_factory.mktemp("corpus"))
    for case in HEAD_ERRORS:
        key = tuple(sorted(case.limits.items()))
        if key not in servers:
            server = ReactorServer(
                Config(host="127.0.0.1", port=0, root=root, allowed_hosts=CORPUS_HOSTS, **case.limits)
            )
            server.listen()
            thread = threading.Thread(target=server.serve_forever, name="reactor-loop", daemon=True)
            thread.start()
            servers[key] = RunningServer(server, thread)
    yield servers
    for running in servers.values():
        running.stop()


@pytest.mark.parametrize("case", HEAD_ERRORS, ids=lambda case: case.source)
def test_corpus_error_is_answered_once_then_closed(case: Case, corpus_servers: "Dict[Tuple, RunningServer]") -> None:
    server = corpus_servers[tuple(sorted(case.limits.items()))]
    client = connect(server)
    try:
        client.send(case.raw)
        if case.eof:
            client.sock.shutdown(socket.SHUT_WR)
        assert_closed_after_one_response(client, case.status)  # type: ignore[arg-type]
    finally:
        client.close()


def test_every_status_of_the_corpus_reaches_the_wire() -> None:
    assert {case.status for case in HEAD_ERRORS} == {400, 413, 414, 417, 431, 501, 505}


# -- after an error ----------------------------------------------------------------------


def test_bytes_after_a_rejected_request_are_never_parsed(server: RunningServer) -> None:
    good = b"GET /index.html HTTP/1.1\r\nHost: " + host(server) + b"\r\n\r\n"
    client = connect(server)
    client.send(b"GET / HTTP/1.1\r\nHost : x\r\n\r\n" + good + good)
    assert_closed_after_one_response(client, 400)


def test_error_after_answered_requests_closes_after_its_own_answer(server: RunningServer) -> None:
    good = b"GET /sample.txt HTTP/1.1\r\nHost: " + host(server) + b"\r\n\r\n"
    client = connect(server)
    client.send(good + good + b"GET / HTTP/1.1\r\nHost: " + host(server) + b"\r\nX: a\x00b\r\n\r\n" + good)
    for _ in range(2):
        status, fields, body = client.response()
        assert status == 200 and fields.get("connection") != "close"
        assert body == (server.root / "sample.txt").read_bytes()
    assert_closed_after_one_response(client, 400)


def test_bare_lf_request_is_answered_not_left_waiting(server: RunningServer) -> None:
    client = connect(server, timeout=5.0)
    client.send(b"GET / HTTP/1.1\nHost: " + host(server) + b"\n\n")
    assert_closed_after_one_response(client, 400)


def test_tls_handshake_on_the_plain_port_is_refused_at_once(server: RunningServer) -> None:
    client = connect(server)
    client.send(bytes.fromhex("16030100f4010000f00303") + b"\x00" * 32)
    assert_closed_after_one_response(client, 400)


def test_http2_preface_gets_505(server: RunningServer) -> None:
    client = connect(server)
    client.send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    assert_closed_after_one_response(client, 505)


def test_client_closing_inside_a_body_gets_400(server: RunningServer) -> None:
    client = connect(server)
    client.send(json_upload_head(server, length=10) + b'{"a":')
    client.sock.shutdown(socket.SHUT_WR)
    assert_closed_after_one_response(client, 400)
    assert not list((server.root / UPLOADS_DIR).glob("upload_*"))


# -- request-target forms and framing through the application ---------------------------


def test_options_asterisk_is_answered_with_allow(server: RunningServer) -> None:
    client = connect(server)
    client.send(b"OPTIONS * HTTP/1.1\r\nHost: " + host(server) + b"\r\n\r\n")
    status, fields, body = client.response()
    assert status == 204 and "GET" in fields["allow"] and body == b""
    assert fields.get("connection") != "close"


def test_connect_is_not_implemented_and_closes(server: RunningServer) -> None:
    client = connect(server)
    client.send(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n\x16\x03\x01")
    assert_closed_after_one_response(client, 501)


def test_absolute_form_authority_is_checked_like_host(make_server: Server) -> None:
    server = make_server(allowed_hosts=("allowed.example",))
    client = connect(server)
    # The request-target's authority decides, whatever Host says (RFC 9112 §3.2.2).
    client.send(b"GET http://allowed.example/sample.txt HTTP/1.1\r\nHost: elsewhere.example\r\n\r\n")
    status, _fields, body = client.response()
    assert status == 200 and body == (server.root / "sample.txt").read_bytes()
    client.send(b"GET http://elsewhere.example/sample.txt HTTP/1.1\r\nHost: allowed.example\r\n\r\n")
    status, _fields, _body = client.response()
    assert status == 403


def test_http10_chunked_upload_is_stored_and_the_connection_closes(server: RunningServer) -> None:
    client = connect(server)
    client.send(
        b"POST /upload HTTP/1.0\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: keep-alive\r\n\r\n4\r\n[1,2\r\n1\r\n]\r\n0\r\n\r\n"
    )
    fields = assert_closed_after_one_response(client, 201)
    stored = server.root / fields["location"].lstrip("/")
    assert stored.read_bytes() == b"[1,2]"


def test_chunked_upload_with_http_client(server: RunningServer) -> None:
    document = {"pieces": list(range(50))}
    raw = json.dumps(document).encode()
    conn = http.client.HTTPConnection(server.host, server.port, timeout=5)
    pieces = (raw[i : i + 7] for i in range(0, len(raw), 7))
    conn.request("POST", "/upload", body=pieces, headers={"Content-Type": "application/json"}, encode_chunked=True)
    response = conn.getresponse()
    answer = json.loads(response.read())
    assert response.status == 201
    assert (server.root / UPLOADS_DIR / answer["file"]).read_bytes() == raw
    conn.close()


def test_chunked_upload_over_the_body_limit_is_413_on_the_decoded_size(make_server: Server) -> None:
    server = make_server(max_body_bytes=10)
    client = connect(server)
    # 6 + 6 decoded bytes; the chunk-size line that crosses 10 is refused before its data.
    client.send(json_upload_head(server) + b"6;x=1\r\n[1,2,3\r\n6\r\n")
    assert_closed_after_one_response(client, 413)
    assert not list((server.root / UPLOADS_DIR).glob("upload_*"))


def test_invalid_chunk_size_mid_upload_is_400(server: RunningServer) -> None:
    client = connect(server)
    client.send(json_upload_head(server) + b"2\r\n[1\r\n-1\r\n]\r\n0\r\n\r\n")
    assert_closed_after_one_response(client, 400)


def test_trailer_section_over_the_limit_is_431(make_server: Server) -> None:
    server = make_server(max_header_section_bytes=200)
    client = connect(server)
    client.send(json_upload_head(server) + b"2\r\n[]\r\n0\r\nX-Pad: " + b"x" * 300 + b"\r\n\r\n")
    assert_closed_after_one_response(client, 431)


def test_trailers_are_discarded_and_the_upload_stored(server: RunningServer) -> None:
    client = connect(server)
    client.send(json_upload_head(server) + b"2\r\n[]\r\n0\r\nX-Checksum: 1\r\n\r\n")
    status, fields, _body = client.response()
    assert status == 201
    assert (server.root / fields["location"].lstrip("/")).read_bytes() == b"[]"


# -- Expect: 100-continue (RFC 9110 §10.1.1) -------------------------------------------

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def read_until(client: RawClient, marker: bytes) -> None:
    while marker not in client.buf:
        client._fill()


def test_expect_100_continue_is_sent_before_the_body_is_read(server: RunningServer) -> None:
    client = connect(server)
    client.send(json_upload_head(server, b"Expect: 100-continue\r\n", length=7))
    status, _fields, _body = client.response()  # sent before any body byte
    assert status == 100
    client.send(b'{"a":1}')
    status, fields, body = client.response()
    assert status == 201
    assert (server.root / fields["location"].lstrip("/")).read_bytes() == b'{"a":1}'


@pytest.mark.parametrize(
    "extra, length, status",
    [
        (b"", 10, 415),  # wrong media type, refused by the upload handler
        (b"", 2_000_000, 413),  # over max_body_bytes, refused by the parser
        (b"", -1, 403),  # Host not allowed, refused by the application
    ],
    ids=["415", "413", "403"],
)
def test_expect_100_continue_refused_without_reading_the_body(
    server: RunningServer, extra: bytes, length: int, status: int
) -> None:
    client = connect(server)
    head = json_upload_head(server, b"Expect: 100-continue\r\n" + extra, length=length if length > 0 else 5)
    if status == 415:
        head = head.replace(b"application/json", b"text/plain")
    if status == 403:
        head = head.replace(host(server), b"evil.example")
    client.send(head)
    # The final status comes at once: no 100, and no body was sent.
    assert_closed_after_one_response(client, status)


def test_unknown_expectation_is_417(server: RunningServer) -> None:
    client = connect(server)
    client.send(json_upload_head(server, b"Expect: 200-ok\r\n", length=2) + b"[]")
    assert_closed_after_one_response(client, 417)


def test_no_100_continue_for_http10(server: RunningServer) -> None:
    client = connect(server)
    client.send(
        b"POST /upload HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n"
    )
    client.send(b"[]")  # a 1.0 client does not wait; nothing is sent before the final status
    fields = assert_closed_after_one_response(client, 201)
    assert (server.root / fields["location"].lstrip("/")).read_bytes() == b"[]"
    assert CONTINUE not in client.buf


def test_expect_without_a_body_gets_no_100(server: RunningServer) -> None:
    client = connect(server)
    client.send(b"GET /sample.txt HTTP/1.1\r\nHost: " + host(server) + b"\r\nExpect: 100-continue\r\n\r\n")
    status, _fields, _body = client.response()
    assert status == 200


# -- pipelining and back-pressure -------------------------------------------------------


def test_pipelined_requests_in_one_send_are_answered_in_order(server: RunningServer) -> None:
    names = ["sample.txt", "notes.txt", "sample.json", "about.html", "sample.txt"] * 4
    client = connect(server)
    client.send(b"".join(b"GET /%s HTTP/1.1\r\nHost: %s\r\n\r\n" % (name.encode(), host(server)) for name in names))
    for name in names:
        status, _fields, body = client.response()
        assert status == 200
        assert body == (server.root / name).read_bytes()


def test_pipelined_upload_between_gets(server: RunningServer) -> None:
    get = b"GET /sample.txt HTTP/1.1\r\nHost: " + host(server) + b"\r\n\r\n"
    client = connect(server)
    client.send(get + json_upload_head(server, length=2) + b"[]" + get)
    assert client.response()[0] == 200
    status, fields, _body = client.response()
    assert status == 201
    assert (server.root / fields["location"].lstrip("/")).read_bytes() == b"[]"
    assert client.response()[2] == (server.root / "sample.txt").read_bytes()


def skip_response(client: RawClient) -> Tuple[int, int]:
    """Read one response, discarding its body as it arrives; (status, body length)."""
    while b"\r\n\r\n" not in client.buf:
        client._fill()
    head, _, rest = client.buf.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    match = re.search(rb"(?im)^content-length:[ \t]*([0-9]+)", head)
    length = int(match.group(1)) if match else 0
    if len(rest) >= length:
        client.buf = rest[length:]
        return status, length
    client.buf = b""
    remaining = length - len(rest)
    while remaining:
        chunk = client.sock.recv(min(remaining, 1 << 20))
        if not chunk:
            raise EOFError("closed inside a response body")
        remaining -= len(chunk)
    return status, length


def unread_bytes(sock: socket.socket) -> int:
    """Bytes waiting in the kernel's receive queue of ``sock`` (FIONREAD)."""
    return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0]


def test_pipelining_is_back_pressured_while_responses_are_pending(server: RunningServer) -> None:
    """While a response is pending the server reads no further: pipelined requests wait
    in the kernel, not in the parser's buffer, and all are answered in the end."""
    size = 2 * 1024 * 1024
    (server.root / "big.bin").write_bytes(b"x" * size)
    count = 40
    request = b"GET /big.bin HTTP/1.1\r\nHost: " + host(server) + b"\r\nX-Pad: " + b"p" * 7000 + b"\r\n\r\n"
    client = connect(server, timeout=10.0)
    sender = threading.Thread(target=client.sock.sendall, args=(request * count,), daemon=True)
    sender.start()  # ~280 KB of requests, and no response read yet

    def snapshot() -> List[Tuple[ConnState, int, int]]:
        return [
            (conn.state, conn.parser.buffered_bytes(), unread_bytes(conn.transport.sock))
            for conn in server.server.sessions.values()
        ]

    deadline = time.monotonic() + 10
    while True:  # poll with a deadline: nothing else tells when the server is stuck writing
        states = server.call(snapshot)
        if states and states[0][0] is ConnState.WRITING and states[0][2] > 0:  # type: ignore[index]
            break  # a response is pending and requests are waiting, unread
        assert time.monotonic() < deadline, states
        time.sleep(0.005)
    _state, buffered, _unread = states[0]  # type: ignore[index]
    assert buffered <= 2 * 65536  # at most about one receive's worth is parsed ahead
    for _ in range(count):
        assert skip_response(client) == (200, size)
    sender.join(10)
    assert not sender.is_alive()


# -- paths the file system refuses --------------------------------------------------------

NOT_ROOT = pytest.mark.skipif(os.geteuid() == 0, reason="root reads and lists everything: no EACCES to provoke")


def _name_too_long(root: Path) -> str:
    return "/" + "a" * 300  # one name past NAME_MAX (255): ENAMETOOLONG


def _path_too_long(root: Path) -> str:
    return "/" + "/".join(["abcdefgh"] * 500)  # 4,500 bytes: past PATH_MAX (4,096) but under the request-line limit


def _symlink_loop(root: Path) -> str:
    os.symlink("loop-b", root / "loop-a")
    os.symlink("loop-a", root / "loop-b")
    return "/loop-a"  # ELOOP


def _through_a_symlink_loop(root: Path) -> str:
    _symlink_loop(root)
    return "/loop-a/index.html"


def _index_is_a_symlink_loop(root: Path) -> str:
    (root / "folder").mkdir()
    os.symlink("index.html", root / "folder" / "index.html")  # points at itself
    return "/folder/"


def _under_a_file(root: Path) -> str:
    return "/sample.txt/more"  # ENOTDIR


def _unreadable_file(root: Path) -> str:
    (root / "locked.txt").write_text("locked")
    (root / "locked.txt").chmod(0)
    return "/locked.txt"  # EACCES on open


def _unsearchable_folder(root: Path) -> str:
    (root / "closed").mkdir()
    (root / "closed" / "inside.txt").write_text("inside")
    (root / "closed").chmod(0)
    return "/closed/inside.txt"  # EACCES on stat


def _unlistable_folder(root: Path) -> str:
    (root / "nolist").mkdir()
    (root / "nolist").chmod(0o300)  # may be entered, not read: the listing's scandir fails
    return "/nolist/"


REFUSED_PATHS = [
    pytest.param(_name_too_long, 404, id="ENAMETOOLONG-name"),
    pytest.param(_path_too_long, 404, id="ENAMETOOLONG-path"),
    pytest.param(_symlink_loop, 404, id="ELOOP"),
    pytest.param(_through_a_symlink_loop, 404, id="ELOOP-parent"),
    pytest.param(_index_is_a_symlink_loop, 404, id="ELOOP-index"),
    pytest.param(_under_a_file, 404, id="ENOTDIR"),
    pytest.param(_unreadable_file, 403, id="EACCES-file", marks=NOT_ROOT),
    pytest.param(_unsearchable_folder, 403, id="EACCES-folder", marks=NOT_ROOT),
    pytest.param(_unlistable_folder, 403, id="EACCES-listing", marks=NOT_ROOT),
]


def quiet(caplog: pytest.LogCaptureFixture) -> None:
    """No warning, no error, no traceback; at most one debug line from the static handler."""
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert not loud, [r.getMessage() for r in loud]
    static_lines = [r for r in caplog.records if r.name == "reactor.static"]
    assert len(static_lines) <= 1 and all(r.levelno == logging.DEBUG for r in static_lines), static_lines


@pytest.mark.parametrize("make_path, status", REFUSED_PATHS)
def test_a_path_the_file_system_refuses_is_answered_quietly(
    make_server: Server, site: Path, caplog: pytest.LogCaptureFixture, make_path, status: int
) -> None:
    """A name the file system cannot resolve is the client's problem: 404 (403 when it may not be read), no traceback."""
    caplog.set_level(logging.DEBUG, logger="reactor")
    target = make_path(site)
    server = make_server(list_directories=target.endswith("/nolist/"))  # else a folder without index is 404
    try:
        client = connect(server)
        client.send(b"GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target.encode(), host(server)))
        got, fields, _body = client.response()
        assert got == status
        assert fields.get("connection") != "close"  # nothing went wrong with the connection
        assert client.get("/sample.txt").response()[0] == 200  # the same connection still serves
    finally:
        for path in site.rglob("*"):  # let pytest remove what the test locked
            if not path.is_symlink():
                path.chmod(0o700)
    quiet(caplog)


def test_a_request_target_over_the_limit_is_414_not_a_file_system_error(
    server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="reactor")
    client = connect(server)
    client.send(b"GET /%s HTTP/1.1\r\nHost: %s\r\n\r\n" % (b"a" * 9000, host(server)))
    assert_closed_after_one_response(client, 414)
    quiet(caplog)


class RefusingOs:
    """The static handler's ``os``, refusing names that end in ``marker`` with ``error``."""

    def __init__(self, marker: str, error: int, calls: Tuple[str, ...]) -> None:
        self.marker, self.error, self.calls = marker, error, calls

    def __getattr__(self, name: str):
        real = getattr(os, name)
        if name not in self.calls:
            return real

        def refusing(path, *args, **kwargs):
            if os.fspath(path).endswith(self.marker):
                raise OSError(self.error, os.strerror(self.error), path)
            return real(path, *args, **kwargs)

        return refusing


@pytest.mark.parametrize(
    "error, calls, status",
    [
        pytest.param(errno.EINVAL, ("stat",), 404, id="EINVAL-stat"),  # a name the file system will not take
        pytest.param(errno.EACCES, ("stat",), 403, id="EACCES-stat"),  # a folder on the way may not be searched
        pytest.param(errno.EACCES, ("open",), 403, id="EACCES-open"),  # the file may not be read
        pytest.param(errno.EPERM, ("open",), 403, id="EPERM-open"),  # a security module or a file attribute
        pytest.param(errno.ELOOP, ("open",), 404, id="ELOOP-open"),  # a symlink loop swapped in after the stat
        pytest.param(errno.EIO, ("open",), 500, id="EIO-open"),  # a failing disk is the server's trouble: logged
    ],
)
def test_every_refusal_the_file_system_may_give_is_answered_by_what_it_means(
    make_server: Server, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, error, calls, status
) -> None:
    """Errors a test run as root cannot provoke (EACCES, EPERM) or no local file system
    gives (EINVAL): the static handler's ``os`` raises them for one name."""
    from reactor.handlers import files

    server = make_server()
    (server.root / "what?.txt").write_text("there, but refused")
    monkeypatch.setattr(files, "os", RefusingOs("what?.txt", error, calls))
    caplog.set_level(logging.DEBUG, logger="reactor")
    client = connect(server)
    got, _fields, body = client.get("/what%3F.txt").response()
    assert got == status and b"refused" not in body
    if status == 500:  # the one case that is no client's doing: an error with its cause
        assert any(r.levelno >= logging.ERROR for r in caplog.records)
        return
    assert client.get("/sample.txt").response()[0] == 200
    quiet(caplog)

"""The sans-I/O half of WSGI (``reactor.wsgi``): environ, start_response's checks, file_wrapper, as plain values.

These are the rules a server owes every application (PEP 3333); the tests over real
sockets (``test_app_protocol.py``) show the same rules on the wire.
"""

from __future__ import annotations

import io
import sys

import pytest

from reactor.events import RequestHead, TargetForm
from reactor.wsgi import (
    EnvironMaker,
    FileWrapper,
    StartResponse,
    check_fields,
    check_status,
    environ_key,
    split_script_name,
)


def head(method="GET", target="/", fields=(), version="1.1", chunked=False, content_length=None) -> RequestHead:
    return RequestHead(
        method=method,
        target=target,
        target_form=TargetForm.ORIGIN,
        path=target,
        authority="example.test",
        http_version=version,
        fields=tuple(fields),
        keep_alive=True,
        content_length=content_length,
        chunked=chunked,
        expect_continue=False,
    )


def make(request: RequestHead, path_info=None, query="", body=b"", body_bytes=None, trusted=False, secure=False):
    maker = EnvironMaker("127.0.0.1", 8080, "/app", multithread=True, multiprocess=False)
    path = request.path.partition("?")[0] if path_info is None else path_info
    return maker.make(request, path, query, io.BytesIO(body), body_bytes, "192.0.2.9", 50123, secure, trusted)


def test_environ_has_every_required_key_and_only_str_values_outside_wsgi():
    environ = make(head("POST", "/a%20b/%C3%A9?x=1%202", [("content-type", "text/plain")]), query="x=1%202")
    for key in ("REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "SERVER_NAME", "SERVER_PORT"):
        assert key in environ
    assert environ["PATH_INFO"] == "/a b/\xc3\xa9"  # decoded once, one code point per byte (latin-1)
    assert environ["PATH_INFO"].encode("latin-1").decode("utf-8") == "/a b/é"
    assert environ["QUERY_STRING"] == "x=1%202"  # left as sent
    assert environ["SERVER_PROTOCOL"] == "HTTP/1.1" and environ["SCRIPT_NAME"] == "/app"
    assert (environ["REMOTE_ADDR"], environ["REMOTE_PORT"]) == ("192.0.2.9", "50123")
    assert environ["CONTENT_TYPE"] == "text/plain" and "HTTP_CONTENT_TYPE" not in environ
    assert environ["wsgi.version"] == (1, 0) and environ["wsgi.url_scheme"] == "http"
    assert environ["wsgi.input_terminated"] is True and environ["wsgi.errors"] is sys.stderr
    assert all(type(value) is str for key, value in environ.items() if "." not in key)


def test_repeated_fields_join_and_underscores_and_framing_fields_are_dropped():
    fields = [
        ("accept", "text/html"),
        ("accept", "application/json"),
        ("x-auth_user", "forged"),
        ("x-auth-user", "real"),
        ("transfer-encoding", "chunked"),
        ("content-length", "7"),
    ]
    environ = make(head("POST", "/", fields, chunked=True), body_bytes=3)
    assert environ["HTTP_ACCEPT"] == "text/html, application/json"
    assert environ["HTTP_X_AUTH_USER"] == "real"  # the one with '_' never reaches the environ
    assert "HTTP_TRANSFER_ENCODING" not in environ and "HTTP_CONTENT_LENGTH" not in environ
    assert environ["CONTENT_LENGTH"] == "3"  # the decoded body's length, whatever the framing said
    assert "CONTENT_LENGTH" not in make(head())
    assert environ_key("x_y") is None and environ_key("user-agent") == "HTTP_USER_AGENT"


def test_forwarded_fields_count_only_from_a_trusted_proxy():
    fields = [("x-forwarded-for", "203.0.113.5, 198.51.100.7"), ("x-forwarded-proto", "https")]
    trusted = make(head(fields=fields), trusted=True)
    assert trusted["REMOTE_ADDR"] == "198.51.100.7" and trusted["wsgi.url_scheme"] == "https"
    other = make(head(fields=fields))
    assert other["REMOTE_ADDR"] == "192.0.2.9" and other["wsgi.url_scheme"] == "http"
    assert "HTTP_X_FORWARDED_FOR" not in other and "HTTP_X_FORWARDED_PROTO" not in other
    assert make(head(), secure=True)["wsgi.url_scheme"] == "https"


@pytest.mark.parametrize(
    "path, root, rest",
    [
        ("/app/x", "/app", "/x"),
        ("/app", "/app", ""),
        ("/app/", "/app", "/"),
        ("/application", "/app", None),
        ("/other", "/app", None),
        ("/x", "", "/x"),
    ],
)
def test_root_path_matches_whole_segments(path, root, rest):
    assert split_script_name(path, root) == rest


@pytest.mark.parametrize("status", ["200 OK", "404 Not Found", "299 ", "500"])
def test_good_statuses(status):
    assert check_status(status) == int(status[:3])


@pytest.mark.parametrize("status", ["200OK", "99 Low", "600 High", "200 OK\r\nX: y", " 200 OK", "abc OK", "101 Up"])
def test_bad_statuses_raise_value_error(status):
    with pytest.raises(ValueError):
        check_status(status)


def test_a_status_that_is_not_str_raises_type_error():
    with pytest.raises(TypeError):
        check_status(b"200 OK")


def test_fields_are_checked_and_the_stated_length_found():
    fields, length = check_fields([("Content-Type", "text/plain"), ("Content-Length", "12"), ("Date", "x")])
    assert fields == [("Content-Type", "text/plain"), ("Content-Length", "12")] and length == 12  # Date dropped
    assert check_fields([("X-A", "")]) == ([("X-A", "")], None)


def test_field_lines_checked_before_are_taken_as_they_were_and_others_still_checked():
    good = [("Content-Type", "text/plain"), ("Content-Length", "12")]
    assert check_fields(good) == check_fields(list(good)) == (good, 12)  # the second time from the cache
    with pytest.raises(ValueError):
        check_fields([("Content-Type", "text/plain\r\nX-Evil: 1")])  # same name, a new value: checked
    with pytest.raises(ValueError):
        check_fields([("Content-Length", "12"), ("Content-Length", "13")])  # both cached lines, still one length
    assert check_status("200 OK") == check_status("200 OK") == 200
    with pytest.raises(TypeError):
        check_fields([("X-A", ["not", "a", "str"])])  # unhashable: no cache lookup can accept it


@pytest.mark.parametrize(
    "headers, error",
    [
        ([("Connection", "close")], ValueError),
        ([("Transfer-Encoding", "chunked")], ValueError),
        ([("Keep-Alive", "timeout=5")], ValueError),
        ([("Proxy-Authenticate", "Basic")], ValueError),
        ([("Upgrade", "h2c")], ValueError),
        ([("X-A", "a\r\nSet-Cookie: evil=1")], ValueError),
        ([("X-A", "a\x00b")], ValueError),
        ([("X-A", "caf\u00e9 \u20ac")], ValueError),  # € is outside latin-1
        ([("Bad Name", "x")], ValueError),
        ([("Content-Length", "12, 13")], ValueError),
        ([("Content-Length", "-1")], ValueError),
        ([("X-A", b"bytes")], TypeError),
        ([(b"X-A", "v")], TypeError),
        ([("X-A", "v", "w")], TypeError),
        ("X-A: v", TypeError),
    ],
)
def test_bad_fields_raise(headers, error):
    with pytest.raises(error):
        check_fields(headers)


def test_start_response_keeps_the_first_answer_and_exc_info_replaces_it_until_sent():
    start = StartResponse()
    write = start("200 OK", [("Content-Type", "text/plain")])
    write(b"abc")
    assert start.status == 200 and start.take_written() == b"abc"
    with pytest.raises(RuntimeError):
        start("201 Created", [])  # a second call needs exc_info
    try:
        raise KeyError("boom")
    except KeyError:
        start("500 Internal Server Error", [("Content-Type", "text/html")], sys.exc_info())
    assert start.status == 500 and start.fields == [("Content-Type", "text/html")]
    start.sent = True
    try:
        raise KeyError("late")
    except KeyError:
        with pytest.raises(KeyError, match="late"):
            start("500 Internal Server Error", [], sys.exc_info())  # too late to change: re-raised


def test_write_needs_start_response_and_bytes():
    start = StartResponse()
    with pytest.raises(RuntimeError):
        start.write(b"x")
    start("200 OK", [])
    with pytest.raises(TypeError):
        start.write("text")  # type: ignore[arg-type]


def test_file_wrapper_iterates_in_blocks_and_closes_once():
    class File(io.BytesIO):
        closes = 0

        def close(self) -> None:
            File.closes += 1
            super().close()

    wrapper = FileWrapper(File(b"abcdefg"), block_size=3)
    assert list(wrapper) == [b"abc", b"def", b"g"]
    wrapper.close()
    wrapper.close()
    assert File.closes == 1

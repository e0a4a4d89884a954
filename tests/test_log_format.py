"""Logs a machine can read (issue 25): ``--log-format json`` and the request id.

- Every JSON access-log line is one object with every field, whatever a client sends:
  quotes, line breaks, control characters and invalid UTF-8 can neither end the line
  nor add a field.
- The server's own messages take the same shape, an error's traceback as a field.
- The access log (both formats) names the id the response carried in ``X-Request-ID``
  (``tests/test_request_id.py``), and how long it took.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from conftest import REPO, CliServer, RawClient, access_record, wait_for
from reactor import log as logmod
from reactor.parser import RequestParser

BOTH_TRANSPORTS = True  # the TLS version is a field of its own; tests about plain TCP say plain_only

ID = re.compile(r"[a-z2-7]{8}-(\d+)-(\d+)")  # the server's own ids: prefix, connection, request number
KEYS = [
    "time",
    "level",
    "logger",
    "remote_addr",
    "remote_port",
    "method",
    "target",
    "protocol",
    "status",
    "response_body_bytes",
    "request_body_bytes",
    "duration_ms",
    "host",
    "referer",
    "user_agent",
    "request_id",
]


def parsed_head(raw: bytes):
    parser = RequestParser()
    parser.feed(raw)
    return parser.next_event()


def json_line(record, worker=None) -> dict:
    lines = logmod.json_access_lines([record], worker)
    assert len(lines) == 1 and "\n" not in lines[0] and lines[0].isascii()
    return json.loads(lines[0])


# -- the JSON line, field by field --------------------------------------------------------


@pytest.mark.plain_only
def test_a_json_line_has_every_field():
    head = parsed_head(
        b"POST /upload?x=1 HTTP/1.1\r\nHost: example.com:8080\r\nReferer: http://a/b\r\n"
        b"User-Agent: curl/8.0\r\nContent-Length: 7\r\nX-Request-ID: trace-42\r\n\r\n"
    )
    record = access_record(
        "POST /upload?x=1 HTTP/1.1",
        status=201,
        body_bytes=114,
        started=1_700_000_000.25,
        duration_s=0.0123456,
        head=head,
        client="::1",
        client_port=51234,
        request_body_bytes=7,
        tls_version="TLSv1.3",
        request_id=head.request_id,
    )
    assert json_line(record, worker=2) == {
        "time": "2023-11-14T22:13:20.250Z",
        "level": "info",
        "logger": "reactor.access",
        "remote_addr": "::1",
        "remote_port": 51234,
        "method": "POST",
        "target": "/upload?x=1",
        "protocol": "HTTP/1.1",
        "status": 201,
        "response_body_bytes": 114,
        "request_body_bytes": 7,
        "duration_ms": 12.346,
        "host": "example.com:8080",
        "referer": "http://a/b",
        "user_agent": "curl/8.0",
        "tls_version": "TLSv1.3",
        "worker": 2,
        "request_id": "trace-42",
    }


@pytest.mark.plain_only
def test_absent_fields_are_null_and_tls_and_worker_appear_only_when_they_apply():
    line = json_line(access_record("GET / HTTP/1.0"))
    assert list(line) == KEYS
    assert (line["host"], line["referer"], line["user_agent"], line["protocol"]) == (None, None, None, "HTTP/1.0")
    unparsed = json_line(access_record("GARBAGE", status=400))
    assert list(unparsed) == KEYS[:-1] + ["request_line", "request_id"]
    assert (unparsed["method"], unparsed["target"], unparsed["protocol"], unparsed["request_line"]) == (
        None,
        None,
        None,
        "GARBAGE",
    )
    nothing = json_line(access_record(None, status=408))
    assert list(nothing) == KEYS and nothing["method"] is None


@pytest.mark.plain_only
@pytest.mark.parametrize(
    "raw, text",
    [
        (b'say "hi"', 'say "hi"'),
        (b"a\\b", "a\\b"),
        (b'","status":999,"x":"', '","status":999,"x":"'),  # an attempt to forge a field
        (b"line\nbreak\r\n{}", "line\nbreak\r\n{}"),
        (b"nul\x00esc\x1b[31mdel\x7f", "nul\x00esc\x1b[31mdel\x7f"),
        (b"caf\xc3\xa9 \xe2\x80\xa8 \xf0\x9f\x98\x80", "caf\xe9 \u2028 \U0001f600"),  # valid UTF-8, U+2028 among it
        (b"bad \xff\xfe and cut \xc3", "bad \\xff\\xfe and cut \\xc3"),  # invalid UTF-8: the bytes, visibly
    ],
)
def test_hostile_values_stay_inside_their_field(raw, text):
    value = raw.decode("latin-1")  # what the parser hands on: one code point per byte
    fields = (("user-agent", value), ("referer", value), ("host", value))
    lines = logmod.json_access_lines([access_record(fields=fields, status=200), access_record(status=304)])
    assert len(lines) == 2 and all(line.isascii() and "\n" not in line and "\r" not in line for line in lines)
    first = json.loads(lines[0])
    assert (first["user_agent"], first["referer"], first["host"]) == (text, text, text)
    assert first["status"] == 200 and list(first) == KEYS
    assert json.loads(lines[1])["status"] == 304


_value = st.binary(max_size=12).map(lambda raw: raw.decode("latin-1"))


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.text(max_size=12), _value),  # the request-line (None: nothing arrived)
            st.lists(st.tuples(st.sampled_from(["user-agent", "referer", "host", "accept"]), _value), max_size=4),
            st.sampled_from([None, "TLSv1.2", "TLSv1.3"]),
        ),
        min_size=1,
        max_size=6,
    ),
    st.sampled_from([None, 1, 7]),
)
@example([('GET /"\\ HTTP/1.1', [("user-agent", "\xff\n")], None)], None)
def test_every_line_of_any_batch_is_one_object_with_the_values_sent(records, worker):
    records = [access_record(line, tuple(fields), tls_version=tls) for line, fields, tls in records]
    lines = logmod.json_access_lines(records, worker)
    assert len(lines) == len(records)
    for line, record in zip(lines, records):
        assert line.isascii() and line.isprintable()
        got = json.loads(line)
        host, referer, user_agent = logmod.request_fields(record.head.fields if record.head else ())

        def sent(value):
            if value is None:
                return None
            return value.encode("latin-1", "backslashreplace").decode("utf-8", "backslashreplace")

        assert (got["host"], got["referer"], got["user_agent"]) == (sent(host), sent(referer), sent(user_agent))
        assert got["status"] == record.status and got["request_id"] == record.request_id
        if record.head is not None:
            assert got["target"] == sent(record.head.target)
        elif record.request_line is not None:
            assert got["request_line"] == sent(record.request_line)
        assert got.get("tls_version") == record.tls_version and got.get("worker") == worker


@pytest.mark.plain_only
@pytest.mark.parametrize("timestamp", [0.0, 1_700_000_000.999, 1_700_000_001.0, 1_700_000_001.5])
def test_time_is_rfc3339_utc_with_milliseconds(timestamp):
    line = json_line(access_record(started=timestamp))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"])
    assert line["time"] == logmod.rfc3339_time(timestamp)
    assert line["time"].endswith(".%03dZ" % int(round(timestamp % 1, 6) * 1000))


@pytest.mark.plain_only
def test_the_servers_messages_are_json_with_the_traceback_as_a_field():
    formatter = logmod.JSONFormatter()
    logger = logging.getLogger("reactor.test")
    try:
        raise ZeroDivisionError("division by zero")
    except ZeroDivisionError:
        record = logger.makeRecord(
            "reactor.test", logging.ERROR, __file__, 1, 'error handling "%s"', ("GET /\n",), sys.exc_info()
        )
    line = formatter.format(record)
    assert "\n" not in line
    got = json.loads(line)
    assert got["level"] == "error" and got["logger"] == "reactor.test"
    assert got["message"] == 'error handling "GET /\n"'
    assert got["traceback"].startswith("Traceback") and "ZeroDivisionError" in got["traceback"]
    assert list(got) == ["time", "level", "logger", "message", "traceback"]
    plain = json.loads(formatter.format(logger.makeRecord("reactor", logging.INFO, __file__, 1, "hi", (), None)))
    assert list(plain) == ["time", "level", "logger", "message"]


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_the_log_names_the_id_and_duration_the_response_had(make_server, raw_to, access_log_to, log_format, transport):
    lines = access_log_to(log_format)
    running = make_server()
    client = raw_to(running)
    sent = [client.get("/sample.txt").response()[1]["x-request-id"]]
    sent += [client.get("/missing", "X-Request-ID: mine-1\r\nUser-Agent: t\r\n").response()[1]["x-request-id"]]
    assert ID.fullmatch(sent[0]) and sent[1] == "mine-1"
    running.stop(graceful=True)
    got = lines()
    assert len(got) == 2
    if log_format == "json":
        objects = [json.loads(line) for line in got]
        assert [o["request_id"] for o in objects] == sent and [o["status"] for o in objects] == [200, 404]
        assert all(0 <= o["duration_ms"] < 10_000 for o in objects)
        assert objects[1]["user_agent"] == "t" and objects[0]["remote_port"] == client.sock.getsockname()[1]
        assert [o.get("tls_version") for o in objects] == [running.server.tls_context and client.sock.version()] * 2
    else:
        assert [line.rsplit(" ", 1)[1] for line in got] == sent
        assert all(re.search(r'"(?:-|t)" \d+\.\d{3} \S+$', line) for line in got), got


@pytest.mark.plain_only
def test_json_on_the_command_line(run_cli, site):
    cli = run_cli("--port", "0", "-d", str(site), "--log-format", "json")
    assert cli.port, cli.output
    sock = socket.create_connection(("127.0.0.1", cli.port), timeout=5)
    client = RawClient(sock)
    client.send(b"GET /sample.txt HTTP/1.1\r\nHost: %s\r\nUser-Agent: \xff\r\n\r\n" % client.host.encode())
    request_id = client.response()[1]["x-request-id"]
    sock.close()
    wait_for(lambda: b'"reactor.access"' in cli.read_available(), what="the access-log line")
    cli.proc.send_signal(signal.SIGTERM)
    err = cli.read_stderr()
    assert cli.proc.returncode == 0
    entries = [json.loads(line) for line in err.decode("ascii").splitlines()]
    assert entries[0]["logger"] == "reactor" and "http://127.0.0.1:%d/" % cli.port in entries[0]["message"]
    access = [entry for entry in entries if entry["logger"] == "reactor.access"]
    assert len(access) == 1 and access[0]["request_id"] == request_id and access[0]["user_agent"] == "\\xff"
    assert entries[-1]["message"] == "stopped"
    assert all(entry["level"] == "info" for entry in entries)


@pytest.mark.plain_only
def test_a_log_format_that_does_not_exist_is_one_usage_line():
    done = subprocess.run(
        [sys.executable, "-m", "reactor", "--log-format", "xml"], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2
    assert "--log-format: invalid choice: 'xml'" in done.stderr.splitlines()[0]


NOISY_APP = """
def app(environ, start_response):
    if environ["PATH_INFO"] == "/boom":
        raise ZeroDivisionError("planted")
    errors = environ["wsgi.errors"]
    print('note "one"\\nnote two', file=errors)
    errors.writelines(["unended", " line\\r\\n", "flushed"])
    errors.flush()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
"""


@pytest.mark.plain_only
def test_an_applications_errors_and_tracebacks_are_json_lines_too(tmp_path):
    """What a WSGI application writes to wsgi.errors, and the traceback of one that raises,
    reach stderr as JSON lines like the server's own messages."""
    (tmp_path / "noisy.py").write_text(NOISY_APP)
    args = ["--app", "noisy:app", "--port", "0", "--log-format", "json"]
    cli = CliServer(args, cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(REPO)))
    try:
        assert cli.port, cli.output
        for path, status in (("/", 200), ("/boom", 500)):
            conn = http.client.HTTPConnection("127.0.0.1", cli.port, timeout=10)
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            conn.close()
            assert response.status == status
        wait_for(lambda: cli.read_available().count(b'"reactor.access"') == 2, what="two access-log lines")
        cli.proc.send_signal(signal.SIGTERM)
        err = cli.read_stderr()
    finally:
        cli.stop()
    entries = [json.loads(line) for line in err.decode("ascii").splitlines()]
    notes = [(entry["level"], entry["message"]) for entry in entries if entry["logger"] == "reactor.app.errors"]
    assert notes == [("error", 'note "one"'), ("error", "note two"), ("error", "unended line"), ("error", "flushed")]
    raised = [entry for entry in entries if "traceback" in entry]
    assert len(raised) == 1 and raised[0]["level"] == "error" and raised[0]["logger"] == "reactor.app"
    assert "ZeroDivisionError: planted" in raised[0]["traceback"] and "\n" not in raised[0]["message"]


@pytest.mark.plain_only
def test_the_error_stream_keeps_each_threads_line_whole():
    got = []
    logger = logging.getLogger("reactor.test.errors")
    handler = logging.Handler()
    handler.emit = lambda record: got.append(record.getMessage())  # type: ignore[method-assign]
    logger.addHandler(handler)
    try:
        stream = logmod.ErrorStream(logger)
        stream.write("first half, ")
        other = threading.Thread(target=lambda: stream.write("another thread's line\nits rest"))
        other.start()
        other.join()
        stream.write("second half\n")
        stream.write("x" * (70 * 1024))  # no newline: handed on at 64 KiB rather than kept
    finally:
        logger.removeHandler(handler)
    assert got == ["another thread's line", "first half, second half", "x" * (70 * 1024)]

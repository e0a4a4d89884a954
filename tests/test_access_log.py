"""The buffered access log: every line written at a graceful stop, a stalled reader never
stalls serving (lines dropped, counted, warned about), SIGUSR1 reopens, ``-`` is stdout."""

from __future__ import annotations

import http.client
import json
import os
import re
import select
import signal
import string
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import access_record, recv_until_closed, wait_for
from reactor import log as logmod

LONG_AGENT = "agent-" + "x" * 4000  # about 4 KiB per line: the 1 MiB queue fills after ~250 lines


def get(port: int, path: str = "/sample.txt", agent: str = "test", timeout_s: float = 5.0) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        conn.request("GET", path, headers={"User-Agent": agent})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def read_available(fd: int, timeout_s: float = 0.2) -> bytes:
    """What can be read from ``fd`` now (waits up to ``timeout_s`` for the first byte)."""
    data = b""
    while select.select([fd], [], [], timeout_s)[0]:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
        timeout_s = 0
    return data


def test_every_line_is_written_at_a_graceful_stop(run_cli, site, tmp_path):
    path = tmp_path / "access.log"
    cli = run_cli("--port", "0", "-d", str(site), "--access-log", str(path), "--status-path", "/_status")
    conn = http.client.HTTPConnection("127.0.0.1", cli.port, timeout=5)
    for i in range(90):
        conn.request("GET", "/sample.txt?n=%d" % i)
        assert conn.getresponse().read()
    # One more in flight when the stop comes: its line is made during the last passes.
    conn.sock.sendall(b"GET /sample.txt?n=last HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % cli.port)

    def reading_headers():
        status = json.loads(fetch_status(cli.port))
        return status["connections"]["by_state"]["reading-headers"]

    wait_for(reading_headers, what="the last request to be under way")
    cli.proc.send_signal(signal.SIGTERM)
    conn.sock.sendall(b"\r\n")
    reply = recv_until_closed(conn.sock)
    assert reply.startswith(b"HTTP/1.1 200 ")
    conn.close()
    assert cli.proc.wait(15) == 0
    lines = [line for line in path.read_bytes().decode().splitlines() if "/_status" not in line]
    assert [line.split('"')[1] for line in lines] == (
        ["GET /sample.txt?n=%d HTTP/1.1" % i for i in range(90)] + ["GET /sample.txt?n=last HTTP/1.1"]
    )


def fetch_status(port: int) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/_status", headers={"Accept": "application/json"})
        return conn.getresponse().read()
    finally:
        conn.close()


def test_dash_means_stdout(run_cli, site):
    cli = run_cli("--port", "0", "-d", str(site), "--access-log", "-")
    assert get(cli.port, agent="to-stdout") == 200
    cli.proc.send_signal(signal.SIGTERM)
    out, err = cli.proc.communicate(timeout=15)
    assert b'"GET /sample.txt HTTP/1.1" 200' in out and b'"to-stdout"' in out
    assert b"to-stdout" not in cli.output + err


def test_sigusr1_reopens_the_file(run_cli, site, tmp_path):
    path = tmp_path / "access.log"
    rotated = tmp_path / "access.log.1"
    cli = run_cli("--port", "0", "-d", str(site), "--access-log", str(path))
    assert get(cli.port, "/sample.txt?before") == 200
    wait_for(lambda: b"?before" in path.read_bytes(), what="the first line")
    path.rename(rotated)  # what logrotate does, before signalling
    cli.proc.send_signal(signal.SIGUSR1)
    wait_for(path.exists, what="the reopened file")
    assert get(cli.port, "/sample.txt?after") == 200
    wait_for(lambda: b"?after" in path.read_bytes(), what="a line in the new file")
    assert b"?after" not in rotated.read_bytes() and b"?before" not in path.read_bytes()
    cli.proc.send_signal(signal.SIGTERM)
    assert cli.proc.wait(15) == 0


def test_a_reader_that_stops_does_not_stall_serving(run_cli, site):
    """stdout is a pipe nobody reads: it fills, the queue fills, then lines are dropped, not waited for."""
    cli = run_cli("--port", "0", "-d", str(site), "--access-log", "-")
    slowest = 0.0
    for _ in range(400):
        started = time.monotonic()
        assert get(cli.port, agent=LONG_AGENT) == 200
        slowest = max(slowest, time.monotonic() - started)
    assert slowest < 2.0, "a request waited %.1f s for the access log" % slowest
    err_fd = cli.proc.stderr.fileno()
    err = b""
    deadline = time.monotonic() + 10
    while b"not keeping up" not in err and time.monotonic() < deadline:
        err += read_available(err_fd)
    assert b"its reader is not keeping up" in err  # warned at once: the log is not stderr
    assert err.count(b"not keeping up; dropping") == 1  # once per episode, not per batch

    # The reader comes back: what was kept is written, whole lines only, and the count is told.
    out = bytearray()
    reading = threading.Thread(target=lambda: out.extend(cli.proc.stdout.read()), daemon=True)
    reading.start()
    while b"dropped while its reader" not in err and time.monotonic() < deadline + 10:
        err += read_available(err_fd)
    assert b"line(s) dropped while its reader was not keeping up" in err
    # Caught up (the count is told once the backlog is written): a new line goes through.
    # Asked before that, it could still find the backlog full and be dropped in its turn.
    assert get(cli.port, "/sample.txt?back") == 200
    cli.proc.send_signal(signal.SIGTERM)
    assert cli.proc.wait(15) == 0
    reading.join(10)
    lines = bytes(out).decode().splitlines()
    assert 10 < len(lines) < 401 and lines[-1].split('"')[1] == "GET /sample.txt?back HTTP/1.1"
    assert all(line.split('"')[-2] == LONG_AGENT for line in lines[:-1])


def test_stalled_stderr_does_not_stall_serving_and_the_drop_is_reported_later(run_cli, site):
    """The default destination: stderr is a pipe nobody reads while the requests come."""
    cli = run_cli("--port", "0", "-d", str(site))
    for _ in range(400):
        started = time.monotonic()
        assert get(cli.port, agent=LONG_AGENT) == 200
        assert time.monotonic() - started < 2.0
    cli.proc.send_signal(signal.SIGTERM)
    err = cli.read_stderr(timeout=20)  # reading again: the writer catches up and reports
    assert cli.proc.returncode == 0
    assert b"line(s) dropped while its reader was not keeping up" in err
    assert b"dropping lines until it does" not in err  # no warning on the stalled stderr itself


def _text_line(record):
    """What the text format makes of ``record``, field by field (the reference for the batch formatter)."""
    host, referer, user_agent = logmod.request_fields(record.head.fields if record.head else ())
    return logmod.access_line(
        record.client,
        record.started,
        record.request_line,
        record.status,
        record.body_bytes,
        referer,
        user_agent,
        (record.finished - record.started) * 1000,
        record.request_id,
    )


def test_lines_leave_in_whole_line_writes_no_larger_than_pipe_buf(monkeypatch):
    read_fd, write_fd = os.pipe()
    access = logmod.AccessLog()
    writes = []
    real_write = os.write

    def spy(fd, data):
        if fd == access._fd:
            writes.append(bytes(data))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", spy)
    try:
        access.open("/dev/fd/%d" % write_fd)  # a pipe: writes capped at PIPE_BUF
        records = [
            access_record("GET /%d%s HTTP/1.1" % (i, "y" * (i % 300)), body_bytes=i, started=0.0) for i in range(400)
        ]
        records.append(access_record("GET /" + "z" * 10000 + " HTTP/1.1", started=0.0))  # a write of its own
        for record in records:
            access.write(record)
        access.flush()
        got = b""

        def drain():
            nonlocal got
            while True:
                chunk = os.read(read_fd, 65536)
                if not chunk:
                    break
                got += chunk

        reading = threading.Thread(target=drain, daemon=True)
        reading.start()
        assert access.close(timeout_s=10)
        os.close(write_fd)
        reading.join(10)
    finally:
        os.close(read_fd)
    lines = got.decode().splitlines()
    assert lines == [_text_line(record) for record in records]
    assert all(w.endswith(b"\n") for w in writes)
    assert sum(len(w) for w in writes) == len(got)
    assert [len(w) for w in writes if len(w) > select.PIPE_BUF] == [len(lines[-1]) + 1]
    assert len(writes) > 1


def test_a_pass_that_logged_nothing_hands_over_nothing():
    access = logmod.AccessLog()
    access.flush()
    assert access._queue.empty() and access.dropped_lines == 0


@pytest.mark.parametrize("timestamp", [0.0, 1_700_000_000.25, 1_700_000_000.99, 1_700_000_001.0])
def test_the_per_second_timestamp_cache_matches_clf_time(timestamp):
    line = logmod.access_line("127.0.0.1", timestamp, "GET / HTTP/1.1", 200, 5, None, "ua")
    assert "[%s]" % logmod.clf_time(int(timestamp)) in line


def test_a_clean_batch_is_formatted_without_escaping():
    fields = (("host", "example.com"), ("user-agent", "curl/8.0"), ("referer", "http://a/"), ("user-agent", "x"))
    records = [
        access_record("GET / HTTP/1.1", fields, 200, 1024, 1_700_000_000.5, 0.0004125, request_id="abc-1-1"),
        access_record(None, (), 408, 0, 1_700_000_001.0, 0.01, client="::1", request_id="abc-2-1"),
    ]
    stamp0, stamp1 = logmod.clf_time(1_700_000_000), logmod.clf_time(1_700_000_001)
    assert logmod.access_lines(records) == [
        '127.0.0.1 - - [%s] "GET / HTTP/1.1" 200 1024 "http://a/" "curl/8.0, x" 0.412 abc-1-1' % stamp0,
        '::1 - - [%s] "-" 408 - "-" "-" 10.000 abc-2-1' % stamp1,
    ]


def test_the_text_format_is_combined_then_the_duration_and_the_request_id():
    """Tools that read the Combined Log Format still find its nine fields where they were."""
    combined = re.compile(r'(\S+) (\S+) (\S+) \[([^]]+)\] "([^"]*)" (\d{3}) (\d+|-) "([^"]*)" "([^"]*)"')
    line = logmod.access_lines([access_record(fields=(("user-agent", "ua"),), duration_s=0.0021)])[0]
    match = combined.match(line)
    assert match and match.group(5, 6, 7, 9) == ("GET / HTTP/1.1", "200", "5", "ua")
    assert line[match.end() :] == " 2.100 k7f3q9x2-1-1"


def test_one_field_that_needs_escaping_escapes_only_that_field():
    clean = access_record("GET /a HTTP/1.1", (("user-agent", "ua"),), request_id="i")
    quote = access_record("GET /b HTTP/1.1", (("user-agent", 'say "hi"'),), request_id="i")
    control = access_record("GET /\x1b[31m HTTP/1.1", (), 400, 0, request_id="i")  # not parsed: no head
    latin = access_record("GET /d HTTP/1.1", (("referer", "caf\xe9\\"),), request_id="i")
    backslash = access_record("GET /c HTTP/1.1", (("referer", "a\\b"),), request_id="i")
    lines = logmod.access_lines([clean, quote])  # printable ASCII: only the quote gives it away
    assert lines[0].endswith('"GET /a HTTP/1.1" 200 5 "-" "ua" 0.412 i')
    assert lines[1].endswith('"GET /b HTTP/1.1" 200 5 "-" "say \\"hi\\"" 0.412 i')
    assert logmod.access_lines([backslash])[0].endswith('"a\\\\b" "-" 0.412 i')
    lines = logmod.access_lines([clean, control, latin])
    assert lines[0].endswith('"GET /a HTTP/1.1" 200 5 "-" "ua" 0.412 i')
    assert lines[1].endswith('"GET /\\x1b[31m HTTP/1.1" 400 - "-" "-" 0.412 i')
    assert lines[2].endswith('"GET /d HTTP/1.1" 200 5 "caf\\xe9\\\\" "-" 0.412 i')


# Printable ASCII (quotes and backslashes among it) as often as any text at all.
_text = st.one_of(st.none(), st.text(max_size=20), st.text(alphabet=string.printable[:95], max_size=20))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["127.0.0.1", "::1"]),
            st.floats(min_value=0, max_value=2e9),
            _text,
            st.integers(100, 599),
            st.integers(0, 10**12),
            st.lists(st.tuples(st.sampled_from(["user-agent", "referer", "host"]), st.text(max_size=10)), max_size=4),
        ),
        max_size=8,
    )
)
def test_a_batch_is_what_access_line_makes_of_each_record(records):
    records = [
        access_record(line, tuple(fields), status, body, started, client=client)
        for client, started, line, status, body, fields in records
    ]
    expected = [_text_line(record) for record in records]
    assert logmod.access_lines(records) == expected
    for line in logmod.access_lines(records):
        assert line.isascii() and line.isprintable()

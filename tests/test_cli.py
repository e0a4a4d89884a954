"""``python -m reactor`` as a newcomer runs it: help, startup line, busy port, a real request."""

from __future__ import annotations

import http.client
import signal
import socket
import subprocess
import sys

from conftest import REPO


def test_help_documents_every_core_flag():
    result = subprocess.run([sys.executable, "-m", "reactor", "--help"], cwd=REPO, capture_output=True, timeout=30)
    assert result.returncode == 0
    text = result.stdout.decode()
    for flag in ("--host", "--port", "--directory", "--pool-size", "--allow-host", "--log-level", "--inline"):
        assert flag in text


def test_startup_line_names_url_and_server_answers(run_cli, site):
    cli = run_cli("--port", "0", "-d", str(site))
    assert cli.port, cli.output
    assert b"http://127.0.0.1:%d/" % cli.port in cli.output
    conn = http.client.HTTPConnection("127.0.0.1", cli.port, timeout=5)
    conn.request("GET", "/sample.txt")
    response = conn.getresponse()
    assert response.status == 200
    assert response.read() == (site / "sample.txt").read_bytes()
    conn.close()
    cli.proc.send_signal(signal.SIGINT)
    assert cli.proc.wait(15) == 0
    log = cli.read_stderr()
    assert b'"GET /sample.txt HTTP/1.1" 200' in log  # the access-log line


def test_busy_port_is_one_line_error_and_exit_1(site):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        result = subprocess.run(
            [sys.executable, "-m", "reactor", "--port", str(port), "-d", str(site)],
            cwd=REPO, capture_output=True, timeout=30,
        )
    finally:
        holder.close()
    assert result.returncode == 1
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "cannot listen" in lines[0] and str(port) in lines[0]


def test_missing_directory_is_an_error(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "reactor", "--port", "0", "-d", str(tmp_path / "nope")],
        cwd=REPO, capture_output=True, timeout=30,
    )
    assert result.returncode == 2
    assert b"does not exist" in result.stderr


def test_access_log_escapes_what_clients_control(run_cli, site):
    cli = run_cli("--port", "0", "-d", str(site))
    sock = socket.create_connection(("127.0.0.1", cli.port), timeout=5)
    # obs-text, a quote and a backslash are legal in a field value; a CTL in the
    # request-line is not, but that request is still logged (as a 400).
    sock.sendall(b'GET /sample.txt HTTP/1.1\r\nHost: localhost\r\nUser-Agent: evil\xff"quote\\\r\n\r\n')
    sock.sendall(b"GET /\x1b[31m HTTP/1.1\r\nHost: localhost\r\n\r\n")
    while sock.recv(65536):
        pass
    sock.close()
    cli.proc.send_signal(signal.SIGTERM)
    assert cli.proc.wait(15) == 0
    log = cli.read_stderr()
    assert b'"evil\\xff\\"quote\\\\"' in log
    assert b'"GET /\\x1b[31m HTTP/1.1" 400' in log
    assert b"\x1b" not in log and b"\xff" not in log

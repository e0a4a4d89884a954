"""``python -m reactor`` as a newcomer runs it: help, startup line, busy port, a real request."""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import subprocess
import sys

import pytest

from conftest import REPO, CliServer


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
            cwd=REPO,
            capture_output=True,
            timeout=30,
        )
    finally:
        holder.close()
    assert result.returncode == 1
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "cannot listen" in lines[0] and str(port) in lines[0]


def test_missing_directory_is_an_error(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "reactor", "--port", "0", "-d", str(tmp_path / "nope")],
        cwd=REPO,
        capture_output=True,
        timeout=30,
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


PROG = "%s -m reactor" % os.path.basename(sys.orig_argv[0] if hasattr(sys, "orig_argv") else sys.executable)


def run_reactor(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "reactor", *args], cwd=cwd, capture_output=True, timeout=30)


@pytest.mark.parametrize(
    "args, first_line",
    [
        (["--port", "abc"], "--port: 'abc' is not a port number (0-65535)"),
        (["--port", "70000"], "--port: '70000' is not a port number (0-65535)"),
        (["--pool-size", "0"], "--pool-size: '0' is not a whole number of 1 or more"),
        (["--keepalive-timeout", "soon"], "--keepalive-timeout: 'soon' is not a positive number of seconds"),
        (["-d", "README.md"], "--directory: 'README.md' is not a directory"),
        (["README.md"], "--directory: 'README.md' is not a directory"),
        (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    ],
)
def test_bad_values_are_one_line_naming_the_flag_and_exit_2(args, first_line):
    result = run_reactor(*args)
    assert result.returncode == 2
    lines = result.stderr.decode().splitlines()
    assert lines[0] == "%s: %s" % (PROG, first_line)
    assert len(lines) == 2 and "--help" in lines[1]


def test_bad_environment_value_names_the_variable_once():
    result = subprocess.run(
        [sys.executable, "-m", "reactor"],
        cwd=REPO,
        capture_output=True,
        timeout=30,
        env=dict(os.environ, REACTOR_PORT="abc"),
    )
    assert result.returncode == 2
    assert result.stderr.decode().splitlines()[0] == "%s: REACTOR_PORT: 'abc' is not a port number (0-65535)" % PROG


def test_help_names_the_program_as_typed_and_each_default_once():
    result = run_reactor("--help")
    text = result.stdout.decode()
    assert text.startswith("usage: %s [options] [DIRECTORY]" % PROG)
    assert "(default: False)" not in text and "(default: None)" not in text
    options = re.split(r"\n  (?=-)", text)
    assert options and all(option.count("(default") <= 1 for option in options)
    assert "--max-uploads-bytes" in text and "--no-uploads" in text
    assert "8 MiB" in text  # the gzip size cap (--no-gzip)
    flat = " ".join(text.split())
    assert "./resources if the current directory has one, else the current directory" in flat


def serve_from(cwd, *args):
    cli = CliServer(["--port", "0", *args], cwd=cwd, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert cli.port, cli.output
    return cli


def test_default_root_is_resources_here_else_the_current_directory(tmp_path):
    (tmp_path / "resources").mkdir()
    (tmp_path / "resources" / "where.txt").write_text("resources\n")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "where.txt").write_text("cwd\n")
    for cwd, expected, root in (
        (tmp_path, b"resources\n", tmp_path / "resources"),
        (tmp_path / "elsewhere", b"cwd\n", tmp_path / "elsewhere"),
    ):
        cli = serve_from(cwd)
        try:
            assert ("serving %s at" % root).encode() in cli.output
            conn = http.client.HTTPConnection("127.0.0.1", cli.port, timeout=5)
            conn.request("GET", "/where.txt")
            assert conn.getresponse().read() == expected
            conn.close()
        finally:
            cli.stop()


def test_positional_directory_and_directory_flag_must_agree(tmp_path, site):
    result = run_reactor("-d", str(site), str(tmp_path))
    assert result.returncode == 2 and b"--directory: given twice" in result.stderr
    cli = serve_from(tmp_path, str(site))
    try:
        assert ("serving %s at" % site).encode() in cli.output
        assert b"pool threads" in cli.output
    finally:
        cli.stop()


def test_busy_port_names_the_program_as_typed(site):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    try:
        result = run_reactor("--port", str(holder.getsockname()[1]), str(site))
    finally:
        holder.close()
    assert result.returncode == 1
    assert result.stderr.decode().startswith("%s: cannot listen on 127.0.0.1:" % PROG)

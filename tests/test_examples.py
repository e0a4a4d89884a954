"""Chapter 0's three servers (docs/examples/) run and answer, as the chapter says they do."""

from __future__ import annotations

import http.client
import os
import re
import select
import shlex
import shutil
import socket
import subprocess
import sys
import time

import pytest

from conftest import REPO, stop_process

EXAMPLES = REPO / "docs" / "examples"
STEPS = ["step1_blocking.py", "step2_busy.py", "step3_select.py"]


class Example:
    """``python3 docs/examples/<name> 0``; the port comes from its first line."""

    def __init__(self, name: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(EXAMPLES / name), "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        out = b""
        deadline = time.monotonic() + 10
        while b"\n" not in out:
            remaining = deadline - time.monotonic()
            assert remaining > 0 and self.proc.poll() is None, "%s never said where it listens" % name
            ready, _, _ = select.select([self.proc.stdout], [], [], remaining)
            if ready:
                out += os.read(self.proc.stdout.fileno(), 4096)
        match = re.match(rb"listening on 127\.0\.0\.1:(\d+)\n", out)
        assert match, out
        self.port = int(match.group(1))

    def get(self, path: str = "/") -> "tuple[int, bytes]":
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()


@pytest.fixture(params=STEPS)
def example(request):
    running = Example(request.param)
    yield running
    stop_process(running.proc)


def test_each_step_answers_get_slash(example):
    assert example.get("/") == (200, b"hello\n")
    assert example.get("/elsewhere")[0] == 404


@pytest.mark.parametrize("name, serves_others", [(STEPS[0], False), (STEPS[1], True), (STEPS[2], True)])
def test_who_waits_for_a_slow_client(name, serves_others):
    """A client that sent half a request holds up step 1 and not the others."""
    running = Example(name)
    try:
        slow = socket.create_connection(("127.0.0.1", running.port), timeout=5)
        slow.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # no empty line yet
        other = socket.create_connection(("127.0.0.1", running.port), timeout=5)
        other.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        ready, _, _ = select.select([other], [], [], 1.0)  # a bound, not a wait for readiness
        assert bool(ready) is serves_others
        slow.sendall(b"\r\n")
        assert slow.recv(1024).startswith(b"HTTP/1.1 200 OK\r\n")
        assert other.recv(1024).startswith(b"HTTP/1.1 200 OK\r\n")
        slow.close()
        other.close()
    finally:
        stop_process(running.proc)


def test_step3_keeps_the_connection_and_answers_a_pipelined_pair():
    running = Example(STEPS[2])
    try:
        sock = socket.create_connection(("127.0.0.1", running.port), timeout=5)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while data.count(b"hello\n") < 2:
            chunk = sock.recv(4096)
            assert chunk, data
            data += chunk
        assert data.count(b"HTTP/1.1 200 OK\r\n") == 2
        sock.close()
    finally:
        stop_process(running.proc)


# -- chapter 0's experiment, run as the chapter prints it -------------------------------------------


def _experiment() -> "list[str]":
    """The three commands of smallest-server.md's block that uses the slow client, comments removed."""
    text = (REPO / "docs" / "smallest-server.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```sh\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    block = next(block for block in blocks if "slow_client.py" in block)
    commands = [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.strip()]
    assert len(commands) == 3 and "step1_blocking.py" in commands[0] and commands[2].startswith("curl "), commands
    return commands


def _argv(command: str, port: int) -> "list[str]":
    """A printed command as argv: this port for 8000, this Python for python3."""
    argv = shlex.split(command.replace("8000", str(port)))
    return [sys.executable if word == "python3" else word for word in argv]


def _line(proc: subprocess.Popen, what: str) -> bytes:
    """The first line ``proc`` prints (bounded wait)."""
    out = b""
    deadline = time.monotonic() + 10
    while b"\n" not in out:
        remaining = deadline - time.monotonic()
        assert remaining > 0 and proc.poll() is None, "%s printed %r and no line" % (what, out)
        if select.select([proc.stdout], [], [], remaining)[0]:
            out += os.read(proc.stdout.fileno(), 4096)
    return out


@pytest.mark.parametrize("step, curl_waits", [("step1_blocking.py", True), ("step3_select.py", False)])
def test_the_slow_client_experiment_runs_as_printed(step, curl_waits):
    """Step 1 makes curl wait for the slow client; step 3, as the chapter says later, does not."""
    if shutil.which("curl") is None:
        pytest.skip("the chapter's experiment uses curl")
    server_command, client_command, curl_command = _experiment()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = []
    try:
        server = subprocess.Popen(
            _argv(server_command.replace("step1_blocking.py", step), port), cwd=REPO, stdout=subprocess.PIPE
        )
        started.append(server)
        assert _line(server, "the server").startswith(b"listening on 127.0.0.1:%d" % port)
        client = subprocess.Popen(_argv(client_command, port), cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        started.append(client)
        assert _line(client, "the slow client").startswith(b"sent half a request")
        curl = subprocess.Popen(_argv(curl_command, port), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        started.append(curl)
        if curl_waits:
            with pytest.raises(subprocess.TimeoutExpired):
                curl.wait(timeout=1.0)  # a bound, not a wait for readiness: step 1 is busy with the slow client
            client.stdin.write(b"\n")
            client.stdin.flush()
        answer, _ = curl.communicate(timeout=10)
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b"\r\n\r\nhello\n"), answer
        if not curl_waits:
            assert client.poll() is None, "the slow client should still be waiting for Enter"
            client.stdin.write(b"\n")
            client.stdin.flush()
        printed, _ = client.communicate(timeout=10)
        assert printed.splitlines() == [b"HTTP/1.1 200 OK", b"hello"], printed  # after its first line
    finally:
        for proc in started:
            stop_process(proc)

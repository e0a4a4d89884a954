"""Chapter 0's three servers (docs/examples/) run and answer, as the chapter says they do."""

from __future__ import annotations

import http.client
import os
import re
import select
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

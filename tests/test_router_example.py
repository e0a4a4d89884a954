"""docs/examples/router.py, the book's router and timing middleware (docs/hosting.md), on a real server."""

from __future__ import annotations

import io
import json
import re
import socket

import pytest

from conftest import REPO

EXAMPLES = REPO / "docs" / "examples"


@pytest.fixture
def example(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))  # what --app-dir docs/examples does
    import router

    with router.notes_lock:
        router.notes.clear()
        router.next_id[0] = 1
    return router


def exchange(running, method, path, body=b""):
    conn = running.http()
    conn.request(method, path, body=body or None)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response, data


def test_routes_convert_their_values_and_refuse_what_matches_no_route(make_server, example):
    log = io.StringIO()
    running = make_server(wsgi_app=example.timing(example.router, log=log))
    response, data = exchange(running, "GET", "/hello/Ada")
    assert response.status == 200 and json.loads(data) == {"hello": "Ada"}
    assert re.fullmatch(r"app;dur=\d+\.\d{3}", response.getheader("Server-Timing"))
    response, data = exchange(running, "POST", "/notes", b"buy milk")
    assert response.status == 201 and json.loads(data) == {"id": 1, "text": "buy milk"}
    response, data = exchange(running, "GET", "/notes/1")
    assert response.status == 200 and json.loads(data)["text"] == "buy milk"
    response, data = exchange(running, "PUT", "/notes/1")
    assert response.status == 405 and response.getheader("Allow") == "GET, DELETE"
    response, data = exchange(running, "GET", "/notes/one")  # {id:int} takes digits only
    assert response.status == 404
    response, data = exchange(running, "DELETE", "/notes/1")
    assert response.status == 204 and data == b"" and response.getheader("Content-Length") is None
    response, data = exchange(running, "GET", "/notes/1")
    assert response.status == 404 and json.loads(data) == {"error": "no note 1"}
    lines = log.getvalue().splitlines()
    assert len(lines) == 7 and re.fullmatch(r"timing: GET /hello/Ada took \d+\.\d{3} ms", lines[0])


def test_the_middleware_closes_the_inner_iterable_once_and_logs_even_when_it_fails(example):
    closed = []

    class Body(list):
        def close(self):
            closed.append(True)
            raise RuntimeError("the inner close failed")

    def inner(environ, start_response):
        start_response("200 OK", [("Content-Length", "2")])
        return Body([b"ok"])

    log = io.StringIO()
    fields = []
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/x", "wsgi.errors": log}
    body = example.timing(inner)(environ, lambda status, headers, exc_info=None: fields.extend(headers))
    assert list(body) == [b"ok"] and fields[-1][0] == "Server-Timing"
    with pytest.raises(RuntimeError):
        body.close()
    assert closed == [True] and log.getvalue().startswith("timing: GET /x took ")


def test_the_docstring_command_serves_it(run_cli):
    server = run_cli("--app", "router:app", "--app-dir", "docs/examples", "--port", "0")
    assert server.port, server.output
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET /hello/reactor HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n" % server.port)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200 OK\r\n") and data.endswith(b'{"hello": "reactor"}\n')
    assert b"timing: GET /hello/reactor took " in server.read_available(timeout=2)


def test_the_chapter_quotes_the_example_as_it_is():
    chapter = (REPO / "docs" / "hosting.md").read_text(encoding="utf-8")
    source = (EXAMPLES / "router.py").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", chapter, re.S)
    assert blocks
    for block in blocks:
        assert block in source, "docs/hosting.md quotes lines that docs/examples/router.py no longer has:\n" + block

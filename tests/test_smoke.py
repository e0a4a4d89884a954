"""End-to-end smoke tests of the default server with http.client."""

import http.client
import json

from reactor.handlers.upload import UPLOADS_DIR

JSON_ACCESS_LOG = True  # every response these tests provoke must log one line json.loads reads (conftest)


def test_index_is_html_inline(server):
    conn = http.client.HTTPConnection(server.host, server.port, timeout=5)
    conn.request("GET", "/")
    response = conn.getresponse()
    body = response.read()
    assert response.status == 200
    assert response.getheader("Content-Type") == "text/html; charset=utf-8"
    assert response.getheader("Content-Disposition") is None
    assert body == (server.root / "index.html").read_bytes()


def test_upload_then_download(server):
    conn = http.client.HTTPConnection(server.host, server.port, timeout=5)
    document = {"hello": "world", "n": [1, 2, 3]}
    raw = json.dumps(document).encode()
    conn.request("POST", "/upload", body=raw, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    answer = json.loads(response.read())
    assert response.status == 201
    assert response.getheader("Location") == answer["location"]
    stored = server.root / UPLOADS_DIR / answer["file"]
    assert stored.read_bytes() == raw
    conn.request("GET", answer["location"])
    again = conn.getresponse()
    assert again.status == 200
    assert again.read() == raw

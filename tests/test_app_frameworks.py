"""Real frameworks on ``--app``: Flask, Django, Bottle, Falcon, WebOb and whitenoise, over plain TCP and TLS.

Each framework is driven through the server the way its users drive it (real sockets,
``http.client``) and asked for what it is known to rely on from a server: a chunked
request body it can read (gunicorn leaves ``HTTP_TRANSFER_ENCODING`` in the environ
without ``CONTENT_LENGTH``, so Django sees an empty body and Bottle answers 400),
``wsgi.file_wrapper``, streaming without buffering, ``close()`` once (Django's
``request_finished``), HEAD without a body, and the scheme and prefix under TLS and
``--root-path``. The versions are pinned in ``tests/requirements.txt``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
from pathlib import Path

import pytest

from conftest import wait_for

BOTH_TRANSPORTS = True

flask = pytest.importorskip("flask")
django = pytest.importorskip("django")
bottle = pytest.importorskip("bottle")
falcon = pytest.importorskip("falcon")
webob = pytest.importorskip("webob")
whitenoise = pytest.importorskip("whitenoise")


def chunked_post(running, path: str, body: bytes, content_type: str = "application/octet-stream", chunk_bytes=4096):
    """POST ``body`` with Transfer-Encoding: chunked (http.client's encode_chunked); (response, data)."""
    conn = running.http(timeout=30)
    try:
        pieces = (body[i : i + chunk_bytes] for i in range(0, len(body), chunk_bytes))
        conn.request("POST", path, body=pieces, headers={"Content-Type": content_type}, encode_chunked=True)
        response = conn.getresponse()
        return response, response.read()
    finally:
        conn.close()


def get(running, path: str, headers=None, method: str = "GET"):
    conn = running.http()
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return response, response.read()
    finally:
        conn.close()


# -- Flask ------------------------------------------------------------------------------------


def flask_app(files: Path):
    app = flask.Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024 * 1024
    release = threading.Event()
    app.config["release"] = release

    @app.get("/hello")
    def hello():
        return {"hello": "world", "scheme": flask.request.scheme}

    @app.post("/echo")
    def echo():
        return {"got": flask.request.get_json()}

    @app.post("/upload")
    def upload():
        stored = {name: hashlib.sha256(part.read()).hexdigest() for name, part in flask.request.files.items()}
        return {"files": stored, "form": flask.request.form.to_dict()}

    @app.get("/file")
    def file():
        return flask.send_file(files / "blob.bin", mimetype="application/octet-stream", etag=True, conditional=True)

    @app.get("/stream")
    def stream():
        def generate():
            yield "first\n"
            release.wait(10)  # the client has the first line before the generator ends
            yield "last\n"

        return flask.Response(generate(), mimetype="text/plain")

    @app.get("/link")
    def link():
        return {"url": flask.url_for("hello", _external=True), "script": flask.request.script_root}

    return app


@pytest.fixture
def files(tmp_path):
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "blob.bin").write_bytes(os.urandom(200_000))
    (folder / "site.css").write_text("body { color: teal }\n" * 100)
    return folder


def test_flask_json_get_and_post(make_server, files, transport):
    running = make_server(wsgi_app=flask_app(files))
    response, data = get(running, "/hello")
    assert response.status == 200 and response.getheader("Content-Type") == "application/json"
    assert json.loads(data) == {"hello": "world", "scheme": "https" if transport == "tls" else "http"}
    conn = running.http()
    conn.request("POST", "/echo", body=json.dumps({"a": [1, 2]}), headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    assert response.status == 200 and json.loads(response.read()) == {"got": {"a": [1, 2]}}
    conn.close()


def test_flask_sees_a_5_mib_multipart_upload_sent_chunked(make_server, files):
    running = make_server(wsgi_app=flask_app(files), max_body_bytes=8 * 1024 * 1024)
    payload = os.urandom(5 * 1024 * 1024)
    boundary = "reactorboundary7"
    body = (
        (
            '--%s\r\nContent-Disposition: form-data; name="note"\r\n\r\nhi\r\n'
            '--%s\r\nContent-Disposition: form-data; name="data"; filename="data.bin"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n" % (boundary, boundary)
        ).encode()
        + payload
        + ("\r\n--%s--\r\n" % boundary).encode()
    )
    response, data = chunked_post(
        running, "/upload", body, "multipart/form-data; boundary=" + boundary, chunk_bytes=256 * 1024
    )
    assert response.status == 200, data
    assert json.loads(data) == {"files": {"data": hashlib.sha256(payload).hexdigest()}, "form": {"note": "hi"}}


def test_flask_send_file_with_range_and_if_none_match(make_server, files):
    running = make_server(wsgi_app=flask_app(files))
    whole = (files / "blob.bin").read_bytes()
    response, data = get(running, "/file")
    assert response.status == 200 and data == whole and response.getheader("Content-Length") == str(len(whole))
    etag = response.getheader("ETag")
    response, data = get(running, "/file", {"Range": "bytes=100-199"})
    assert response.status == 206 and data == whole[100:200]
    assert response.getheader("Content-Range") == "bytes 100-199/%d" % len(whole)
    response, data = get(running, "/file", {"If-None-Match": etag})
    assert response.status == 304 and data == b""
    response, data = get(running, "/file", method="HEAD")
    assert response.status == 200 and data == b"" and response.getheader("Content-Length") == str(len(whole))


def test_flask_stream_arrives_before_the_generator_ends(make_server, files):
    app = flask_app(files)
    running = make_server(wsgi_app=app)
    conn = running.http()
    conn.request("GET", "/stream")
    response = conn.getresponse()
    assert response.getheader("Transfer-Encoding") == "chunked"
    assert response.readline() == b"first\n"  # while the generator still waits
    app.config["release"].set()
    assert response.read() == b"last\n"
    conn.close()


def test_flask_url_for_external_under_root_path_and_tls(make_server, files, transport):
    running = make_server(wsgi_app=flask_app(files), root_path="/app")
    response, data = get(running, "/app/link")
    scheme = "https" if transport == "tls" else "http"
    assert json.loads(data) == {"url": "%s://127.0.0.1:%d/app/hello" % (scheme, running.port), "script": "/app"}
    assert get(running, "/link")[0].status == 404  # outside the root path: the server's 404


def test_whitenoise_around_flask_serves_static_files_by_file_wrapper(make_server, files):
    app = flask_app(files)
    app.wsgi_app = whitenoise.WhiteNoise(app.wsgi_app, root=str(files), prefix="static/")
    running = make_server(wsgi_app=app)
    response, data = get(running, "/static/site.css")
    assert response.status == 200 and data == (files / "site.css").read_bytes()
    assert response.getheader("Content-Length") == str(len(data))
    assert json.loads(get(running, "/hello")[1])["hello"] == "world"  # the rest is Flask's


# -- Django (settings in code, no database) -----------------------------------------------------

DJANGO_EVENTS = {"finished": 0, "threads": []}
_django_files: dict = {}


def _django_setup():
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            DEBUG=False,
            SECRET_KEY="test-only-" + "x" * 40,
            ALLOWED_HOSTS=["127.0.0.1", "localhost"],
            ROOT_URLCONF=__name__,
            MIDDLEWARE=["django.middleware.common.CommonMiddleware"],
            DATABASES={},
            INSTALLED_APPS=[],
            USE_TZ=True,
        )
        django.setup()
        from django.core.signals import request_finished

        def finished(sender, **kwargs):
            DJANGO_EVENTS["finished"] += 1
            DJANGO_EVENTS["threads"].append(threading.current_thread().name)

        request_finished.connect(finished, weak=False)
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()


def _django_views():
    from django.http import FileResponse, HttpResponse, JsonResponse, StreamingHttpResponse
    from django.urls import path
    from django.views.decorators.csrf import csrf_exempt

    @csrf_exempt
    def body(request):
        return JsonResponse({"length": len(request.body), "sha": hashlib.sha256(request.body).hexdigest()})

    def file(request):
        return FileResponse(open(_django_files["blob"], "rb"), content_type="application/octet-stream")

    def stream(request):
        pad = b"." * int(request.GET.get("pad", "0"))

        def parts():
            for n in range(int(request.GET.get("n", "3"))):
                yield b"part %d\n%s" % (n, pad)

        return StreamingHttpResponse(parts(), content_type="text/plain")

    def page(request):
        return HttpResponse(b"<p>django</p>", content_type="text/html")

    return [path("body", body), path("file", file), path("stream", stream), path("page", page)]


urlpatterns: list = []


@pytest.fixture
def django_app(files):
    app = _django_setup()
    urlpatterns[:] = _django_views()
    _django_files["blob"] = str(files / "blob.bin")
    DJANGO_EVENTS["finished"] = 0
    DJANGO_EVENTS["threads"] = []
    return app


def test_django_reads_a_chunked_body(make_server, django_app):
    running = make_server(wsgi_app=django_app)
    payload = os.urandom(300_000)
    response, data = chunked_post(running, "/body", payload)
    assert response.status == 200, data
    assert json.loads(data) == {"length": len(payload), "sha": hashlib.sha256(payload).hexdigest()}


def test_django_file_streaming_and_head_responses(make_server, django_app, files):
    running = make_server(wsgi_app=django_app)
    whole = (files / "blob.bin").read_bytes()
    response, data = get(running, "/file")
    assert response.status == 200 and data == whole and response.getheader("Content-Length") == str(len(whole))
    response, data = get(running, "/stream?n=4")
    assert response.getheader("Transfer-Encoding") == "chunked"
    assert data == b"part 0\npart 1\npart 2\npart 3\n"
    response, data = get(running, "/page", method="HEAD")
    assert response.status == 200 and data == b"" and response.getheader("Content-Length") == "13"
    wait_for(lambda: DJANGO_EVENTS["finished"] == 3, what="request_finished for each request")
    assert all(name.startswith("reactor-app") for name in DJANGO_EVENTS["threads"])


def test_django_request_finished_fires_once_per_request_disconnects_included(make_server, django_app):
    running = make_server(wsgi_app=django_app)
    conn = running.http()
    for _ in range(3):
        conn.request("GET", "/page")
        assert conn.getresponse().read() == b"<p>django</p>"
    conn.close()
    sock = running.connect()  # a long stream the client leaves in the middle of
    sock.sendall(b"GET /stream?n=1000000&pad=16000 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % running.port)
    got = b""
    while len(got) < 100_000:
        got += sock.recv(65536)
    sock.close()
    wait_for(lambda: DJANGO_EVENTS["finished"] == 4, what="request_finished after the disconnect")
    wait_for(lambda: not running.call(lambda: len(running.server.sessions)), what="every connection closed")
    assert DJANGO_EVENTS["finished"] == 4


# -- Bottle, Falcon, WebOb --------------------------------------------------------------------


def test_bottle_answers_a_chunked_post_with_200(make_server):
    app = bottle.Bottle()

    @app.post("/echo")
    def echo():
        return {"length": len(bottle.request.body.read()), "json": bottle.request.json}

    running = make_server(wsgi_app=app)
    response, data = chunked_post(running, "/echo", json.dumps({"k": "v" * 5000}).encode(), "application/json")
    assert response.status == 200, data
    assert json.loads(data)["json"] == {"k": "v" * 5000}


def test_falcon_stream_and_bounded_stream_of_a_chunked_post(make_server):
    class Resource:
        def on_post(self, req, resp):
            data = req.bounded_stream.read()
            resp.media = {"length": len(data), "sha": hashlib.sha256(data).hexdigest()}

        def on_get(self, req, resp):
            resp.content_type = "text/plain"
            resp.stream = io.BytesIO(b"falcon " * 10_000)

    app = falcon.App()
    app.add_route("/thing", Resource())
    running = make_server(wsgi_app=app)
    payload = os.urandom(100_000)
    response, data = chunked_post(running, "/thing", payload)
    assert response.status == 200 and json.loads(data) == {
        "length": len(payload),
        "sha": hashlib.sha256(payload).hexdigest(),
    }
    response, data = get(running, "/thing")
    assert response.status == 200 and data == b"falcon " * 10_000


def test_webob_request_body_of_a_chunked_post(make_server):
    from webob import Request, Response

    def app(environ, start_response):
        request = Request(environ)
        response = Response(json_body={"length": len(request.body), "ct": request.content_type})
        return response(environ, start_response)

    running = make_server(wsgi_app=app)
    response, data = chunked_post(running, "/", b"w" * 70_000, "text/plain")
    assert response.status == 200 and json.loads(data) == {"length": 70_000, "ct": "text/plain"}

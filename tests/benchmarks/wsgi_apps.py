"""The WSGI applications of the application benchmark (app_load.py), the same for every server.

    hello        a raw PEP 3333 application: 13 bytes, Content-Length set, any path
    flask_hello  Flask answering ``{"message": "Hello, World!"}`` (jsonify) on ``/``
    slow_peer    for app_slow_clients.py: reads a request's whole body; ``/big`` streams
                 20 MiB in 64 KiB pieces; anything else is hello

``flask_hello`` is made on first use (PEP 562 ``__getattr__``), so a server running
``hello`` never imports Flask. Every server imports this module as ``wsgi_apps:NAME``
with this folder as its working directory.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, List

BODY = b"Hello, World!"
FIELDS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]


def hello(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", list(FIELDS))
    return [BODY]


BIG_BYTES = 20 * 1024 * 1024
PIECE = bytes(64 * 1024)


def slow_peer(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ.get("CONTENT_LENGTH"):
        environ["wsgi.input"].read()  # as a form or JSON view does
    if environ["PATH_INFO"] == "/big":
        start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(BIG_BYTES))])
        return (PIECE for _ in range(BIG_BYTES // len(PIECE)))
    return hello(environ, start_response)


def make_flask_hello() -> Any:
    import flask

    app = flask.Flask("flask_hello")

    @app.get("/")
    def index() -> Any:
        return flask.jsonify(message="Hello, World!")

    return app


_made: List[Any] = []


def __getattr__(name: str) -> Any:
    if name == "flask_hello":
        if not _made:
            _made.append(make_flask_hello())
        return _made[0]
    raise AttributeError(name)

"""The WSGI applications of the application benchmark (app_load.py), the same for every server.

    hello        a raw PEP 3333 application: 13 bytes, Content-Length set, any path
    flask_hello  Flask answering ``{"message": "Hello, World!"}`` (jsonify) on ``/``

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

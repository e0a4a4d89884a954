"""Dynamic routes and a middleware, in plain WSGI (PEP 3333), run by reactor.

From the repository's root:

    python3 -m reactor --app router:app --app-dir docs/examples
    curl http://127.0.0.1:8080/hello/Ada
    curl --data 'buy milk' http://127.0.0.1:8080/notes
    curl http://127.0.0.1:8080/notes/1
    curl -i -X DELETE http://127.0.0.1:8080/notes/1

``Router`` maps a method and a path pattern such as ``/notes/{id:int}`` to a function;
``timing`` wraps any WSGI application and says how long it took. Neither knows reactor:
they would run on any WSGI server. The application runs on reactor's application
threads, four at once, so the notes they share are kept under a lock.
"""

import json
import re
import threading
import time

CONVERTERS = {"int": (r"[0-9]+", int), "str": (r"[^/]+", str)}
REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
}


class Router:
    """A WSGI application that calls ``handler(environ, **values)`` for the first route that matches.

    A handler returns ``(status, data)``: ``data`` is sent as JSON (None: no body).
    A path that matches no route is 404; one that matches with another method is 405
    with an ``Allow`` field (RFC 9110 §15.5.6).
    """

    def __init__(self):
        self.routes = []  # (method, compiled pattern, {name: converter}, handler), in the order added

    def route(self, method, pattern):
        """Decorator: ``@router.route("GET", "/notes/{id:int}")``; ``{name}`` takes one segment."""
        converters = {}

        def group(match):
            name, _, kind = match.group(1).partition(":")
            regex, converters[name] = CONVERTERS[kind or "str"]
            return "(?P<%s>%s)" % (name, regex)

        compiled = re.compile(re.sub(r"\{([^}]+)\}", group, pattern))

        def add(handler):
            self.routes.append((method, compiled, converters, handler))
            return handler

        return add

    def __call__(self, environ, start_response):
        path = environ["PATH_INFO"] or "/"
        allowed = []
        for method, pattern, converters, handler in self.routes:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            if method != environ["REQUEST_METHOD"]:
                allowed.append(method)
                continue
            values = {name: convert(match[name]) for name, convert in converters.items()}
            status, data = handler(environ, **values)
            return respond(start_response, status, data)
        if allowed:
            return respond(start_response, 405, {"error": "method not allowed"}, [("Allow", ", ".join(allowed))])
        return respond(start_response, 404, {"error": "no route for %s" % path})


def respond(start_response, status, data, fields=()):
    if data is None:  # 204: no content, and no Content-Length either (RFC 9110 §8.6)
        start_response("%d %s" % (status, REASONS[status]), list(fields))
        return []
    body = json.dumps(data).encode() + b"\n"
    head = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    start_response("%d %s" % (status, REASONS[status]), head + list(fields))
    return [body]


def timing(app, log=None):
    """Middleware: a ``Server-Timing`` field (time to the head), and a line on ``log`` (None:
    ``wsgi.errors``) once the body is sent."""

    def timed(environ, start_response):
        started = time.perf_counter()

        def start(status, headers, exc_info=None):
            spent_ms = (time.perf_counter() - started) * 1000
            return start_response(status, headers + [("Server-Timing", "app;dur=%.3f" % spent_ms)], exc_info)

        return TimedBody(app(environ, start), started, environ, log or environ["wsgi.errors"])

    return timed


class TimedBody:
    """The application's iterable, passed through; ``close()`` (PEP 3333: the server calls it once) logs the time."""

    def __init__(self, iterable, started, environ, log):
        self.iterable, self.started, self.environ, self.log = iterable, started, environ, log

    def __iter__(self):
        return iter(self.iterable)

    def close(self):
        try:
            close = getattr(self.iterable, "close", None)
            if close is not None:
                close()  # the inner application's own close() first, whatever happens
        finally:
            spent_ms = (time.perf_counter() - self.started) * 1000
            request = "%s %s" % (self.environ["REQUEST_METHOD"], self.environ["PATH_INFO"])
            print("timing: %s took %.3f ms" % (request, spent_ms), file=self.log)


# -- the application: a greeting and a small notebook -----------------------------------------

router = Router()
notes = {}  # id -> text, shared by the application threads
notes_lock = threading.Lock()
next_id = [1]


@router.route("GET", "/hello/{name}")
def hello(environ, name):
    return 200, {"hello": name}


@router.route("POST", "/notes")
def add_note(environ):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    text = environ["wsgi.input"].read(length).decode("utf-8", "replace").strip()
    if not text:
        return 400, {"error": "an empty note"}
    with notes_lock:
        note_id, next_id[0] = next_id[0], next_id[0] + 1
        notes[note_id] = text
    return 201, {"id": note_id, "text": text}


@router.route("GET", "/notes/{id:int}")
def get_note(environ, id):
    with notes_lock:
        text = notes.get(id)
    return (200, {"id": id, "text": text}) if text is not None else (404, {"error": "no note %d" % id})


@router.route("DELETE", "/notes/{id:int}")
def delete_note(environ, id):
    with notes_lock:
        found = notes.pop(id, None) is not None
    return (204, None) if found else (404, {"error": "no note %d" % id})


app = timing(router)

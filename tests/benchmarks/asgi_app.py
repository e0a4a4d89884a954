"""Bare ASGI app used as the uvicorn baseline in the benchmarks.

It serves the benchmark document root's files from memory, with no framework
in between, so uvicorn (uvloop + httptools) is measured at its best:
    GET / and /index.html   the 1 KiB index.html
    GET /10m.bin            the 10 MiB file
    GET /1g.bin             the 1 GiB file if present (streamed in 1 MiB chunks
                            from disk, not held in memory)
Anything else is 404. The document root is read at import time from the
BENCH_DOCROOT environment variable. With BENCH_FROM_DISK=1 every file is streamed
from disk in 1 MiB chunks instead (load.py's "uvicorn-disk": a file server's way).

Run (load.py and idle_clients.py do this for you):
    BENCH_DOCROOT=/path uvicorn asgi_app:app --loop uvloop --http httptools \
        --log-level warning --no-access-log --workers 1
"""

import os
from pathlib import Path

DOCROOT = Path(os.environ.get("BENCH_DOCROOT", "."))
IN_MEMORY_LIMIT = 0 if os.environ.get("BENCH_FROM_DISK") == "1" else 64 * 1024 * 1024
CHUNK = 1024 * 1024


def _load():
    files = {}  # path -> (content type, bytes in memory or Path to stream)
    for name in ("index.html", "10m.bin", "1g.bin"):
        path = DOCROOT / name
        if not path.is_file():
            continue
        ctype = b"text/html" if name.endswith(".html") else b"application/octet-stream"
        body = path.read_bytes() if path.stat().st_size <= IN_MEMORY_LIMIT else path
        files["/" + name] = (ctype, body)
    if "/index.html" in files:
        files["/"] = files["/index.html"]
    return files


FILES = _load()
NOT_FOUND = (404, [(b"content-type", b"text/plain"), (b"content-length", b"9")], b"not found")


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    entry = FILES.get(scope["path"]) if scope["method"] in ("GET", "HEAD") else None
    if entry is None:
        status, headers, body = NOT_FOUND
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return
    ctype, body = entry
    size = len(body) if isinstance(body, bytes) else body.stat().st_size
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", ctype), (b"content-length", str(size).encode())],
        }
    )
    if scope["method"] == "HEAD":
        await send({"type": "http.response.body", "body": b""})
    elif isinstance(body, bytes):
        await send({"type": "http.response.body", "body": body})
    else:
        with open(body, "rb") as f:
            while chunk := f.read(CHUNK):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

"""Parser throughput: reactor's RequestParser against h11, on the same corpus, in one run.

Run from the repository root::

    python tests/benchmarks/bench_parser.py            # about 20 s
    python tests/benchmarks/bench_parser.py --seconds 0.2 --repeat 1   # a quick look

Three corpora of realistic requests, each parsed by both parsers in the same process:

- ``GET``: browser-like GETs with 10-12 field lines (several browsers, paths, cookies),
  each parsed by a fresh parser, as on a new connection;
- ``GET burst``: bursts of 16 pipelined GETs on one connection. h11 will not parse the
  next request until a response has been sent, so both sides write a minimal response
  with their own serializer between requests (what a server built on each pays);
- ``chunked upload``: POSTs with a 64 KiB body in 4 KiB chunks, with a trailer.

For each it prints requests per second for reactor and for h11 (the best of
``--repeat`` runs of about ``--seconds`` each) and the ratio. Before timing, both
parsers' results on the corpus are compared, so a broken parser cannot look fast.
This is a benchmark, not a test: it asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path
from typing import Callable, List, Sequence, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root

import h11  # noqa: E402

from reactor.events import NEED_DATA, PAUSED, BodyData, RequestEnd, RequestHead  # noqa: E402
from reactor.parser import RequestParser  # noqa: E402
from reactor.serializer import response_head  # noqa: E402

Parsed = Tuple[str, str, Tuple[Tuple[str, str], ...], bytes]

# -- the corpus ----------------------------------------------------------------------

BROWSERS = [
    (
        "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        [("Sec-Fetch-Dest", "document"), ("Sec-Fetch-Mode", "navigate"), ("Upgrade-Insecure-Requests", "1")],
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/126.0.0.0 Safari/537.36",
        "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8",
        [
            ("sec-ch-ua", '"Chromium";v="126", "Not.A/Brand";v="24"'),
            ("sec-ch-ua-mobile", "?0"),
            ("Sec-Fetch-Dest", "image"),
        ],
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.5 Safari/605.1.15",
        "*/*",
        [("Sec-Fetch-Dest", "script"), ("Sec-Fetch-Mode", "no-cors"), ("Priority", "u=1")],
    ),
]
PATHS = ["/", "/index.html", "/static/app.js?v=3f2a9c", "/logo.png", "/about.html", "/api/items?page=2&sort=name"]


def browser_get(index: int) -> bytes:
    agent, accept, extra = BROWSERS[index % len(BROWSERS)]
    path = PATHS[index % len(PATHS)]
    fields = [
        ("Host", "localhost:8080"),
        ("User-Agent", agent),
        ("Accept", accept),
        ("Accept-Language", "en-GB,en;q=0.7,de;q=0.3"),
        ("Accept-Encoding", "gzip, deflate, br, zstd"),
        ("Connection", "keep-alive"),
        ("Referer", "http://localhost:8080/index.html"),
        ("Cookie", "session=%032x; theme=dark; consent=yes" % (index * 7919)),
        *extra,
    ]
    if index % 2:
        fields.append(("If-None-Match", '"%08x-1b2f"' % index))
    lines = ["GET %s HTTP/1.1" % path] + ["%s: %s" % pair for pair in fields]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def chunked_upload(index: int, body_bytes: int = 64 * 1024, chunk_bytes: int = 4096) -> bytes:
    body = bytes((index + i) % 251 for i in range(body_bytes))
    head = (
        "POST /upload HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n"
        "Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n"
    ).encode("ascii")
    chunks = [
        b"%x\r\n%s\r\n" % (len(body[i : i + chunk_bytes]), body[i : i + chunk_bytes])
        for i in range(0, len(body), chunk_bytes)
    ]
    return head + b"".join(chunks) + b"0\r\nX-Checksum: %d\r\n\r\n" % (sum(body) % 65521)


GETS = [browser_get(i) for i in range(48)]
BURSTS = [b"".join(GETS[i : i + 16]) for i in range(0, 48, 16)]
UPLOADS = [chunked_upload(i) for i in range(4)]


# -- reactor ---------------------------------------------------------------------------


def reactor_parse(raw: bytes) -> List[Parsed]:
    """Parse every request in ``raw`` on one parser, answering each with a minimal response."""
    parser = RequestParser()
    parser.feed(raw)
    out: List[Parsed] = []
    head = None
    body = bytearray()
    while True:
        event = parser.next_event()
        kind = type(event)
        if kind is RequestHead:
            head = event
        elif kind is BodyData:
            body += event.data  # type: ignore[union-attr]
        elif kind is RequestEnd:
            out.append((head.method, head.target, head.fields, bytes(body)))  # type: ignore[union-attr]
            body.clear()
        elif event is PAUSED:
            response_head(200, [("Content-Length", "0")])
            parser.start_next_cycle()
        else:
            assert event is NEED_DATA
            return out


def reactor_one(raw: bytes) -> None:
    """One request on a fresh parser (the GET and upload corpora)."""
    parser = RequestParser()
    parser.feed(raw)
    next_event = parser.next_event
    while type(next_event()) is not RequestEnd:
        pass


def reactor_burst(raw: bytes) -> None:
    parser = RequestParser()
    parser.feed(raw)
    next_event = parser.next_event
    while True:
        event = next_event()
        if event is PAUSED:
            response_head(200, [("Content-Length", "0")])
            parser.start_next_cycle()
        elif event is NEED_DATA:
            return


# -- h11 -------------------------------------------------------------------------------

H11_RESPONSE = h11.Response(status_code=200, headers=[("Content-Length", "0")])


def h11_parse(raw: bytes) -> List[Parsed]:
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(raw)
    out: List[Parsed] = []
    head = None
    body = bytearray()
    while True:
        event = conn.next_event()
        kind = type(event)
        if kind is h11.Request:
            head = event
        elif kind is h11.Data:
            body += event.data
        elif kind is h11.EndOfMessage:
            fields = tuple((n.decode("latin-1"), v.decode("latin-1")) for n, v in head.headers)  # type: ignore[union-attr]
            out.append((head.method.decode(), head.target.decode(), fields, bytes(body)))  # type: ignore[union-attr]
            body.clear()
            conn.send(H11_RESPONSE)
            conn.send(h11.EndOfMessage())
            conn.start_next_cycle()
        else:
            assert event is h11.NEED_DATA
            return out


def h11_one(raw: bytes) -> None:
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(raw)
    next_event = conn.next_event
    while type(next_event()) is not h11.EndOfMessage:
        pass


def h11_burst(raw: bytes) -> None:
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(raw)
    next_event = conn.next_event
    while True:
        event = next_event()
        if type(event) is h11.EndOfMessage:
            conn.send(H11_RESPONSE)
            conn.send(h11.EndOfMessage())
            conn.start_next_cycle()
        elif event is h11.NEED_DATA:
            return


# -- timing ------------------------------------------------------------------------------


def requests_per_second(
    parse: Callable[[bytes], None], corpus: Sequence[bytes], per_item: int, seconds: float, repeat: int
) -> float:
    """Best rate over ``repeat`` runs of at least ``seconds`` each."""
    best = 0.0
    for _ in range(repeat):
        rounds = 0
        start = time.perf_counter()
        while True:
            for raw in corpus:
                parse(raw)
            rounds += 1
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                break
        best = max(best, rounds * len(corpus) * per_item / elapsed)
    return best


def check_agreement() -> None:
    """Both parsers must read the corpus the same way before their speed means anything."""
    for corpus in (GETS, BURSTS, UPLOADS):
        for raw in corpus:
            ours, theirs = reactor_parse(raw), h11_parse(raw)
            assert ours == theirs and ours, "reactor and h11 disagree on %r" % raw[:80]


def main(argv: "Sequence[str] | None" = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="length of one timed run (default 1.0)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per parser and corpus; the best counts")
    args = parser.parse_args(argv)

    check_agreement()
    print(
        "reactor parser vs h11 %s on Python %s (%s), best of %d x %.1f s"
        % (h11.__version__, platform.python_version(), platform.machine(), args.repeat, args.seconds)
    )
    rows = [
        ("GET (%d browser-like requests, fresh parser each)" % len(GETS), reactor_one, h11_one, GETS, 1),
        ("GET burst (pipelined, 16 per connection)", reactor_burst, h11_burst, BURSTS, 16),
        ("chunked upload (64 KiB in 4 KiB chunks)", reactor_one, h11_one, UPLOADS, 1),
    ]
    print("%-52s %14s %14s %8s" % ("corpus", "reactor req/s", "h11 req/s", "ratio"))
    for name, ours, theirs, corpus, per_item in rows:
        ours_rate = requests_per_second(ours, corpus, per_item, args.seconds, args.repeat)
        theirs_rate = requests_per_second(theirs, corpus, per_item, args.seconds, args.repeat)
        print(
            "%-52s %14s %14s %7.2fx"
            % (name, "{:,.0f}".format(ours_rate), "{:,.0f}".format(theirs_rate), ours_rate / theirs_rate)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""--live-reload on a real server: the script in every page, its lengths and validators, the messages.

Pages are fetched with http.client; messages are read from /__reactor__/livereload with
the ``websockets`` library's sync client (a test-only dependency). In a browser:
tests/test_live_reload_browser.py.
"""

from __future__ import annotations

import gzip
import http.client
import json
import os
import time
from typing import List, Optional

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from conftest import fetch, wait_for
from reactor.cli import _inside_root, main, startup_message
from reactor.config import Config
from reactor.handlers import files, livereload
from reactor.handlers import static as static_module
from reactor.handlers.conditional import make_etag
from reactor.handlers.livereload import CLIENT_JS, SCRIPT_PATH, inject, message_for, script_tag, url_path
from reactor.watch import QUIET_S, Batch, inotify_available

PAGE = (
    b"<!doctype html><html><head><title>t</title></head><BODY>\n"
    b'<script>document.write("</body>")</script>\n'
    + b"<p>hello, a paragraph long enough for gzip to be worth it</p>\n" * 30
    + b"</BODY>\n</html>\n"
)


def file_etag(path) -> str:
    info = os.stat(path)
    return make_etag(info.st_ino, info.st_size, info.st_mtime_ns)


class Listener:
    """A WebSocket client at /__reactor__/livereload (``websockets``' sync client), one message at a time."""

    def __init__(self, url: str, tls=None, origin: Optional[str] = None) -> None:
        self.ws = connect(url, ssl=tls, origin=origin, open_timeout=5, close_timeout=2).__enter__()

    def next(self, timeout_s: float = 5.0) -> dict:
        return json.loads(self.ws.recv(timeout=timeout_s))

    def none_within(self, seconds: float) -> bool:
        try:
            self.ws.recv(timeout=seconds)
        except TimeoutError:
            return True
        return False

    def close(self) -> None:
        self.ws.close()


def socket_url(running, port: Optional[int] = None) -> str:
    scheme = "wss" if running.tls is not None else "ws"
    return "%s://127.0.0.1:%d%s" % (scheme, port or running.port, livereload.SOCKET_PATH)


@pytest.fixture
def live(make_server, site):
    (site / "page.html").write_bytes(PAGE)  # before the watcher starts: not a change
    return make_server(live_reload=True)


@pytest.fixture
def listen():
    """``listen(running)`` opens a Listener that has had its hello; all are closed afterwards."""
    opened: List[Listener] = []

    def open_one(running, origin: Optional[str] = None) -> Listener:
        listener = Listener(socket_url(running), running.threaded_tls, origin)
        opened.append(listener)
        hello = listener.next()
        assert hello == {"type": "hello", "epoch": epoch_of(running)}
        return listener

    yield open_one
    for listener in opened:
        listener.close()


def epoch_of(running) -> int:
    return running.call(lambda: running.server.live.epoch)


# -- the injection, by itself ----------------------------------------------------------------


def test_the_script_goes_before_the_last_body_end_tag_whatever_its_case():
    tag = script_tag(5).encode()
    page = inject(PAGE, 5)
    assert page == PAGE.replace(b"</BODY>\n</html>", tag + b"</BODY>\n</html>")
    assert page.count(tag) == 1 and page.index(b'"</body>"') < page.index(tag)  # not inside the earlier script
    assert inject(b"<p>no body tag", 5) == b"<p>no body tag" + tag
    assert inject(b"<body></bodyguard></body >", 5) == b"<body></bodyguard>" + tag + b"</body >"
    utf16 = "\ufeff<body><p>é</p></body>".encode("utf-16-le")
    assert inject(utf16, 5).decode("utf-16-le") == "\ufeff<body><p>é</p>%s</body>" % script_tag(5)


def test_messages_say_css_only_when_every_change_is_a_stylesheet():
    assert json.loads(message_for(Batch(9, ("css/a.css", "b.CSS")))) == {
        "type": "css",
        "paths": ["/css/a.css", "/b.CSS"],
        "epoch": 9,
    }
    assert json.loads(message_for(Batch(10, ("index.html", "style.css")))) == {
        "type": "reload",
        "paths": ["/index.html", "/style.css"],
        "epoch": 10,
    }
    assert json.loads(message_for(Batch(11, ("a.css",), overflow=True)))["paths"] == []
    assert url_path("a b/caf\u00e9 (1).html") == "/a%20b/caf%C3%A9%20(1).html"
    assert url_path("x\udce9.html") == "/x%E9.html"  # a name that is not UTF-8: its bytes


# -- pages on a live server ------------------------------------------------------------------


def test_pages_carry_the_script_with_their_own_length_and_etag(live):
    epoch = epoch_of(live)
    response, body = fetch(live, "GET", "/page.html")
    assert response.status == 200
    assert body == inject(PAGE, epoch)
    assert int(response.getheader("Content-Length")) == len(body)
    etag = response.getheader("ETag")
    assert etag != file_etag(live.root / "page.html")
    assert response.getheader("Cache-Control") == "no-store"
    head, head_body = fetch(live, "HEAD", "/page.html")
    assert head_body == b"" and head.getheader("Content-Length") == str(len(body)) and head.getheader("ETag") == etag
    # The sample site's pages, gzipped on the way out: the script is in what is compressed.
    plain, page = fetch(live, "GET", "/index.html")
    zipped, data = fetch(live, "GET", "/index.html", {"Accept-Encoding": "gzip"})
    assert zipped.getheader("Content-Encoding") == "gzip"
    assert gzip.decompress(data) == page and page.endswith(script_tag(epoch).encode() + b"</body>\n</html>\n")
    assert zipped.getheader("ETag") not in (plain.getheader("ETag"), file_etag(live.root / "index.html"))
    gz_head, _ = fetch(live, "HEAD", "/index.html", {"Accept-Encoding": "gzip"})
    assert gz_head.getheader("Content-Length") == str(len(data)) and gz_head.getheader("ETag") == zipped.getheader(
        "ETag"
    )


def test_the_files_own_etag_never_gets_a_304_for_the_page(live):
    file_tag = file_etag(live.root / "page.html")
    response, body = fetch(live, "GET", "/page.html", {"If-None-Match": file_tag})
    assert response.status == 200 and script_tag(epoch_of(live)).encode() in body
    page_tag = response.getheader("ETag")
    again, _ = fetch(live, "GET", "/page.html", {"If-None-Match": page_tag})
    assert again.status == 304 and again.getheader("ETag") == page_tag
    assert again.getheader("Cache-Control") == "no-store"


def test_ranges_are_of_the_file_as_it_is_on_disk(live):
    file_tag = file_etag(live.root / "page.html")
    response, body = fetch(live, "GET", "/page.html", {"Range": "bytes=0-"})
    assert response.status == 206 and body == PAGE and response.getheader("ETag") == file_tag
    response, body = fetch(live, "GET", "/page.html", {"Range": "bytes=-8", "If-Range": file_tag})
    assert response.status == 206 and body == PAGE[-8:]


def test_other_files_are_untouched(live):
    for name in ("style.css", "sample.txt", "sample.json"):
        response, body = fetch(live, "GET", "/" + name)
        assert body == (live.root / name).read_bytes(), name
        assert response.getheader("ETag") == file_etag(live.root / name)
        assert response.getheader("Cache-Control") is None


def test_a_precompressed_page_is_never_sent_for_the_page(make_server, site):
    (site / "page.html").write_bytes(PAGE)
    (site / "page.html.gz").write_bytes(gzip.compress(b"<p>stale build output</p>"))
    live = make_server(live_reload=True)
    response, data = fetch(live, "GET", "/page.html", {"Accept-Encoding": "gzip"})
    assert response.getheader("Content-Encoding") == "gzip"
    assert gzip.decompress(data) == inject(PAGE, epoch_of(live))


def test_large_pages_listings_and_error_pages(make_server, site):
    big = b"<html><body>" + b"<p>" + b"x" * (files.SMALL_FILE_BYTES + 10) + b"</p></body></html>"
    (site / "big.html").write_bytes(big)  # all before the server starts: no change to race with
    (site / "404.html").write_text("<html><body>not here</body></html>")
    (site / "folder").mkdir()
    live = make_server(live_reload=True, list_directories=True)
    response, body = fetch(live, "GET", "/big.html")
    assert body == inject(big, epoch_of(live)) and response.getheader("Content-Length") == str(len(body))
    missing, body = fetch(live, "GET", "/missing.html")
    assert missing.status == 404 and b"livereload" not in body and missing.getheader("Cache-Control") == "no-store"
    response, body = fetch(live, "GET", "/folder/")
    assert response.status == 200 and script_tag(epoch_of(live)).encode() + b"</body>" in body


def test_the_client_script_is_served_and_only_with_the_flag(live, make_server):
    response, body = fetch(live, "GET", SCRIPT_PATH)
    assert response.status == 200 and body == CLIENT_JS.encode()
    assert response.getheader("Content-Type") == "text/javascript; charset=utf-8"
    refused, _ = fetch(live, "POST", SCRIPT_PATH, body=b"x")
    assert refused.status == 405 and refused.getheader("Allow") == "GET, HEAD"
    assert fetch(live, "GET", "/__reactor__/other")[0].status == 404
    assert fetch(live, "GET", SCRIPT_PATH, {"Host": "evil.example"})[0].status == 403
    off = make_server()
    assert fetch(off, "GET", SCRIPT_PATH)[0].status == 404
    response, body = fetch(off, "GET", "/index.html")
    assert b"livereload" not in body and response.getheader("Cache-Control") is None


# -- what a change does ------------------------------------------------------------------------


def test_the_new_bytes_are_served_as_soon_as_the_message_is_out(live, listen):
    listener = listen(live)
    css = live.root / "style.css"
    fetch(live, "GET", "/style.css")
    fetch(live, "GET", "/page.html")  # both in the hot-file cache, checked just now
    before = epoch_of(live)
    css.write_text("body { color: rebeccapurple }\n")
    message = listener.next()
    assert message == {"type": "css", "paths": ["/style.css"], "epoch": before + 1}
    # Within the cache's one-second validity: only the hub's forgetting can explain fresh bytes.
    assert fetch(live, "GET", "/style.css")[1] == b"body { color: rebeccapurple }\n"
    assert fetch(live, "GET", "/page.html")[1] == inject(PAGE, before + 1)  # a page carries the new epoch


def test_css_and_html_together_are_one_reload_naming_both(live, listen):
    listener = listen(live)
    started = time.monotonic()
    (live.root / "style.css").write_text("p { margin: 0 }")
    (live.root / "page.html").write_bytes(PAGE.replace(b"hello", b"bonjour"))
    (live.root / "new.html").write_text("<p>new</p>")
    if time.monotonic() - started >= QUIET_S:
        pytest.skip("the machine took longer than the quiet time to write three small files")
    message = listener.next()
    assert message["type"] == "reload"
    assert message["paths"] == ["/new.html", "/page.html", "/style.css"]
    assert listener.none_within(0.3)
    assert b"bonjour" in fetch(live, "GET", "/page.html")[1]


@pytest.mark.parametrize("watch", ["inotify", "poll"] if inotify_available() else ["poll"])
def test_either_way_of_watching_sees_new_folders_and_what_changes_in_them(make_server, listen, watch):
    """The server's driver: inotify's new watches are listed on the pool, polling scans run there."""
    running = make_server(live_reload=True, watch=watch, watch_interval_s=0.05)
    listener = listen(running)
    (running.root / "posts" / "2026").mkdir(parents=True)
    (running.root / "posts" / "2026" / "hello.html").write_text("<p>new</p>")
    message = listener.next()
    assert "/posts/2026/hello.html" in message["paths"], message
    (running.root / "posts" / "2026" / "hello.html").write_text("<p>edited</p>")
    assert listener.next()["paths"] == ["/posts/2026/hello.html"]
    assert fetch(running, "GET", "/posts/2026/hello.html")[1].startswith(b"<p>edited</p>")


def test_an_upload_changes_nothing(live, listen):
    listener = listen(live)
    response, _ = fetch(live, "POST", "/upload", {"Content-Type": "application/json"}, body=b'{"a": 1}')
    assert response.status == 201
    (live.root / "about.html").write_text("<p>edited</p>")
    assert listener.next()["paths"] == ["/about.html"]  # the upload's file is not in it


def test_a_file_read_before_a_change_is_served_but_not_kept(live, monkeypatch):
    """A pool job that read a file before a change was told must not put the old bytes in the cache."""
    static = live.server.app.static
    epoch = epoch_of(live)
    real_open_file = static_module.open_file

    def read_then_changed(*args):
        result = real_open_file(*args)
        # The change is told on the loop before this job's answer gets there (both are queued in order).
        live.server.loop.call_soon_threadsafe(static.forget, Batch(epoch + 1, ("other.html",)))
        return result

    monkeypatch.setattr(static_module, "open_file", read_then_changed)
    response, body = fetch(live, "GET", "/style.css")
    assert response.status == 200 and body == (live.root / "style.css").read_bytes()
    assert not live.call(lambda: "/style.css" in static.cache)
    monkeypatch.setattr(static_module, "open_file", real_open_file)
    fetch(live, "GET", "/style.css")
    assert live.call(lambda: "/style.css" in static.cache)


def test_the_socket_refuses_another_sites_pages(live, listen):
    own = "%s://127.0.0.1:%d" % ("https" if live.tls is not None else "http", live.port)
    listen(live, origin=own)  # the server's own pages
    listen(live)  # a client that is not a browser sends no Origin
    for foreign in ("http://evil.example", "null", own.replace("127.0.0.1", "localhost") + "1"):
        with pytest.raises(InvalidStatus) as refused:
            Listener(socket_url(live), live.threaded_tls, origin=foreign)
        assert refused.value.response.status_code == 403, foreign
    response, _ = fetch(live, "GET", livereload.SOCKET_PATH)  # a browser that opened the URL
    assert response.status == 426


def test_with_workers_one_watcher_tells_every_worker(run_cli, site):
    cli = run_cli("--port", "0", "-d", str(site), "--live-reload", "--workers", "2", "--status-path", "/_status")
    assert cli.port, cli.output
    assert b"live reload on" in cli.output
    url = "ws://127.0.0.1:%d%s" % (cli.port, livereload.SOCKET_PATH)
    listeners = [Listener(url) for _ in range(4)]  # the accept gate shares them: 2/2 or 3/1
    try:
        epochs = {listener.next()["epoch"] for listener in listeners}
        assert len(epochs) == 1, epochs  # every worker starts from the supervisor's epoch

        def websockets_by_worker() -> dict:
            seen = {}
            for _ in range(20):  # each request may land on either worker; each answers for itself
                conn = http.client.HTTPConnection("127.0.0.1", cli.port, timeout=5)
                conn.request("GET", "/_status", headers={"Accept": "application/json"})
                status = json.loads(conn.getresponse().read())
                conn.close()
                seen[status["worker"]["number"]] = status["connections"]["by_protocol"].get("websocket", 0)
                if len(seen) == 2:
                    break
            return seen

        held = wait_for(lambda: (lambda seen: seen if len(seen) == 2 else None)(websockets_by_worker()))
        assert all(count >= 1 for count in held.values()), held
        (site / "about.html").write_text("<p>changed</p>")
        messages = [listener.next() for listener in listeners]
        assert messages == [{"type": "reload", "paths": ["/about.html"], "epoch": epochs.pop() + 1}] * 4
    finally:
        for listener in listeners:
            listener.close()


# -- the command line ------------------------------------------------------------------------


def test_startup_line_says_live_reload_is_on(run_cli, site):
    cli = run_cli("--port", "0", "-d", str(site), "--live-reload", "--watch", "poll", "--watch-interval", "0.2")
    assert cli.port, cli.output
    assert b"live reload on: pages reload when files change (polling every 0.2 s (--watch poll))" in cli.output
    cli.proc.terminate()
    text = startup_message(Config(port=8080), ("127.0.0.1", 8080))
    assert "live reload" not in text


def test_an_access_log_inside_the_folder_is_never_watched(tmp_path):
    (tmp_path / "site").mkdir()
    assert _inside_root(str(tmp_path / "site" / "logs" / "access.log"), str(tmp_path / "site")) == ("logs/access.log",)
    assert _inside_root(str(tmp_path / "access.log"), str(tmp_path / "site")) == ()
    assert _inside_root("-", str(tmp_path / "site")) == ()


@pytest.mark.parametrize(
    "args, first_line",
    [
        (["--watch", "fsevents"], "--watch: invalid choice: 'fsevents'"),  # argparse words the rest per version
        (["--watch-interval", "0"], "--watch-interval: '0' is not a positive number of seconds"),
        (
            ["--header", "Cache-Control: max-age=60"],
            "--live-reload sets Cache-Control: no-store on pages; --header 'Cache-Control: ...' would add a second",
        ),
    ],
)
def test_bad_watch_values_are_one_line_and_exit_2(args, first_line, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--live-reload", *args], prog="reactor")
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines()[0].startswith("reactor: " + first_line)

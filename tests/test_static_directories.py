"""Directories, redirects, listings, dotfiles, 404.html, OPTIONS, CORS, extra fields, MIME.

Clients: http.client, raw sockets for request-targets no library sends, and curl.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from conftest import fetch, recv_until_closed
from reactor.handlers import mime

BOTH_TRANSPORTS = True  # each test with a server runs over plain TCP and over TLS (conftest)
JSON_ACCESS_LOG = True  # every response these tests provoke must log one line json.loads reads (conftest)


def raw_get(server, target):
    with server.connect() as sock:
        sock.sendall(b"GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n" % (target, server.port))
        data = recv_until_closed(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = {name.lower(): value for name, value in (line.split(": ", 1) for line in lines[1:])}
    return int(lines[0].split(" ")[1]), fields, body


@pytest.fixture
def tree(make_server):
    """A server over a site with docs/ (index.html) and files/ (no index)."""

    def make(**options):
        running = make_server(**options)
        root = running.root
        (root / "docs").mkdir(exist_ok=True)
        (root / "docs" / "index.html").write_text("<h1>docs</h1>\n")
        (root / "files").mkdir(exist_ok=True)
        (root / "files" / "b.txt").write_text("bee\n")
        (root / "files" / "A.txt").write_text("a" * 3000)
        (root / "files" / '<script>&amp;".txt').write_text("x")
        (root / "files" / "sub dir").mkdir(exist_ok=True)
        (root / "files" / ".hidden").write_text("secret")
        (root / "evil.com").mkdir(exist_ok=True)
        (root / "evil.com" / "index.html").write_text("same host\n")
        return running

    return make


# -- directories ---------------------------------------------------------------------------


def test_directory_without_slash_is_308_keeping_the_query(tree):
    running = tree()
    response, _ = fetch(running, "GET", "/docs?x=1&y=%20")
    assert response.status == 308
    assert response.getheader("Location") == "/docs/?x=1&y=%20"
    response, body = fetch(running, "GET", "/docs/")
    assert response.status == 200 and body == b"<h1>docs</h1>\n"


@pytest.mark.parametrize(
    "target",
    [b"//evil.com", b"///evil.com", b"/%2Fevil.com", b"//evil.com?next=1", b"//etc/passwd", b"/%2F%2Fetc/passwd"],
)
def test_paths_starting_with_two_slashes_are_403(tree, target):
    """An absolute file-system path is refused like other traversal attempts (and so never redirected)."""
    running = tree()
    status, fields, _ = raw_get(running, target)
    assert status == 403 and "location" not in fields


@pytest.mark.parametrize("target", [b"/evil.com", b"/evil.com?next=1", b"/files/..%2F..%2Fevil.com"])
def test_redirect_never_leaves_this_host(tree, target):
    running = tree()
    status, fields, _ = raw_get(running, target)
    if b".." in target:
        assert status == 403
        return
    assert status == 308
    location = fields["location"]
    assert location.startswith("/evil.com/"), location
    assert not location.startswith("//")


def test_empty_segments_inside_a_path_are_dropped(tree):
    running = tree()
    status, fields, _ = raw_get(running, b"/files//sub%20dir")
    assert status == 308 and fields["location"] == "/files/sub%20dir/"


def test_redirect_of_a_name_that_needs_escaping(tree):
    running = tree()
    response, _ = fetch(running, "GET", "/files/sub%20dir")
    assert response.getheader("Location") == "/files/sub%20dir/"


def test_directory_without_index_is_404_by_default(tree):
    running = tree()
    response, body = fetch(running, "GET", "/files/")
    assert response.status == 404
    assert b"--list-directories" in body  # the hint a newcomer needs


def test_file_with_a_trailing_slash_is_404(tree):
    running = tree()
    assert fetch(running, "GET", "/files/b.txt/")[0].status == 404
    assert fetch(running, "GET", "/files/b.txt")[0].status == 200


def test_listing_with_list_directories(tree):
    running = tree(list_directories=True)
    response, body = fetch(running, "GET", "/files/")
    assert response.status == 200
    assert response.getheader("Content-Type") == "text/html; charset=utf-8"
    page = body.decode()
    names = re.findall(r'<td class="name"><a href="([^"]*)">', page)
    # Parent first, then directories, then files by name; links percent-encoded.
    assert names == ["../", "sub%20dir/", "%3Cscript%3E%26amp%3B%22.txt", "A.txt", "b.txt"]
    assert "&lt;script&gt;&amp;amp;&quot;.txt" in page  # shown escaped, never as markup
    assert "<script>" not in page
    assert ".hidden" not in page
    assert "2.9 KiB" in page and "4 B" in page
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d", page)
    # The escaped link leads to the file.
    assert fetch(running, "GET", "/files/%3Cscript%3E%26amp%3B%22.txt")[1] == b"x"


def listed(page: bytes):
    return re.findall(r'<td class="name"><a href="([^"]*)">', page.decode())


@pytest.mark.parametrize(
    "query, expected",
    [
        ("", ["../", "sub%20dir/", "%3Cscript%3E%26amp%3B%22.txt", "A.txt", "b.txt"]),
        ("?sort=name&order=desc", ["../", "sub%20dir/", "b.txt", "A.txt", "%3Cscript%3E%26amp%3B%22.txt"]),
        ("?sort=size", ["../", "sub%20dir/", "%3Cscript%3E%26amp%3B%22.txt", "b.txt", "A.txt"]),
        ("?sort=size&order=desc", ["../", "sub%20dir/", "A.txt", "b.txt", "%3Cscript%3E%26amp%3B%22.txt"]),
        ("?sort=date", ["../", "sub%20dir/", "b.txt", "A.txt", "%3Cscript%3E%26amp%3B%22.txt"]),
        ("?sort=nonsense&order=sideways", ["../", "sub%20dir/", "%3Cscript%3E%26amp%3B%22.txt", "A.txt", "b.txt"]),
    ],
)
def test_listing_sorts_by_name_size_or_date_from_the_query(tree, query, expected):
    running = tree(list_directories=True)
    files = running.root / "files"
    for age, name in enumerate(['<script>&amp;".txt', "A.txt", "b.txt"]):
        os.utime(files / name, (1_700_000_000 - age * 3600, 1_700_000_000 - age * 3600))
    response, body = fetch(running, "GET", "/files/" + query)
    assert response.status == 200
    assert listed(body) == expected


def test_listing_has_sort_links_a_parent_link_and_the_site_look(tree):
    running = tree(list_directories=True)
    _, body = fetch(running, "GET", "/files/?sort=size")
    page = body.decode()
    assert 'href="?sort=name&amp;order=asc"' in page
    assert 'href="?sort=size&amp;order=desc"' in page  # the current column flips its order
    assert 'href="?sort=date&amp;order=asc"' in page
    assert "(parent folder)" in page
    assert "--accent: #1f7a8c" in page and 'class="brand"' in page  # the sample site's colours and brand
    assert "<script" not in page  # sorting needs no JavaScript
    assert "1 folder, 3 files" in page


def test_listing_shows_dotfiles_only_with_dotfiles(tree):
    running = tree(list_directories=True, dotfiles=True)
    _, body = fetch(running, "GET", "/files/")
    assert b".hidden" in body


def test_index_html_wins_over_a_listing(tree):
    running = tree(list_directories=True)
    assert fetch(running, "GET", "/docs/")[1] == b"<h1>docs</h1>\n"


def test_root_listing_has_no_parent_link(make_server):
    running = make_server(list_directories=True)
    os.remove(running.root / "index.html")
    _, body = fetch(running, "GET", "/")
    assert b'href="../"' not in body and b'href="sample.txt"' in body


# -- dotfiles and 404.html --------------------------------------------------------------------


def test_dotfiles_are_404_unless_enabled(tree):
    running = tree()
    assert fetch(running, "GET", "/files/.hidden")[0].status == 404
    (running.root / ".git").mkdir()
    (running.root / ".git" / "config").write_text("[core]\n")
    assert fetch(running, "GET", "/.git/config")[0].status == 404
    enabled = tree(dotfiles=True)
    response, body = fetch(enabled, "GET", "/files/.hidden")
    assert response.status == 200 and body == b"secret"


def test_root_404_html_is_the_404_body(tree):
    running = tree()
    (running.root / "404.html").write_text("<h1>Nothing here</h1>\n")
    for path in ("/missing.txt", "/files/.hidden", "/files/", "/nope/deeper"):
        response, body = fetch(running, "GET", path)
        assert response.status == 404, path
        assert response.getheader("Content-Type") == "text/html; charset=utf-8"
        assert body == b"<h1>Nothing here</h1>\n"
    head, body = fetch(running, "HEAD", "/missing.txt")
    assert head.status == 404 and body == b"" and head.getheader("Content-Length") == "22"


def test_plain_404_without_404_html(server):
    response, body = fetch(server, "GET", "/missing.txt")
    assert response.status == 404
    assert response.getheader("Content-Type") == "text/plain; charset=utf-8"


def test_unsafe_paths_are_still_refused(server):
    assert raw_get(server, b"/../etc/passwd")[0] == 403
    assert raw_get(server, b"/%2e%2e/etc/passwd")[0] == 403
    assert raw_get(server, b"/a%5cb")[0] == 403
    assert raw_get(server, b"/a%00b")[0] == 403


def test_symlinks_out_of_the_root_are_403(server, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("secret\n")
    os.symlink(secret, server.root / "link.txt")
    os.symlink(tmp_path, server.root / "linkdir")
    assert fetch(server, "GET", "/link.txt")[0].status == 403
    assert fetch(server, "GET", "/linkdir/secret.txt")[0].status == 403
    os.symlink(server.root / "sample.txt", server.root / "inside.txt")
    assert fetch(server, "GET", "/inside.txt")[1] == (server.root / "sample.txt").read_bytes()


def test_special_files_are_404(server):
    os.mkfifo(server.root / "pipe.txt")
    assert fetch(server, "GET", "/pipe.txt")[0].status == 404


# -- OPTIONS, CORS, --header, --max-age --------------------------------------------------------


def test_options_is_204_with_allow(server):
    response, body = fetch(server, "OPTIONS", "/sample.txt")
    assert response.status == 204 and body == b""
    assert response.getheader("Allow") == "GET, HEAD, OPTIONS"
    assert response.getheader("Access-Control-Allow-Origin") is None
    response, _ = fetch(server, "DELETE", "/sample.txt")
    assert response.status == 405 and response.getheader("Allow") == "GET, HEAD, OPTIONS"


def test_cors(make_server):
    running = make_server(cors=True)
    response, _ = fetch(running, "GET", "/sample.txt", {"Origin": "https://example.org"})
    assert response.getheader("Access-Control-Allow-Origin") == "*"
    assert "ETag" in response.getheader("Access-Control-Expose-Headers")
    preflight, body = fetch(
        running,
        "OPTIONS",
        "/upload",
        {
            "Origin": "https://example.org",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, x-trace",
        },
    )
    assert preflight.status == 204 and body == b""
    assert preflight.getheader("Access-Control-Allow-Origin") == "*"
    assert "POST" in preflight.getheader("Access-Control-Allow-Methods")
    assert preflight.getheader("Access-Control-Allow-Headers") == "content-type, x-trace"
    assert int(preflight.getheader("Access-Control-Max-Age")) > 0
    # Errors carry it too, so a page can read why its request failed.
    missing, _ = fetch(running, "GET", "/missing", {"Origin": "https://example.org"})
    assert missing.status == 404 and missing.getheader("Access-Control-Allow-Origin") == "*"


def test_extra_headers_on_every_response(make_server):
    running = make_server(extra_headers=(("X-Frame-Options", "DENY"), ("Cross-Origin-Opener-Policy", "same-origin")))
    for path in ("/", "/sample.txt", "/missing"):
        response, _ = fetch(running, "GET", path)
        assert response.getheader("X-Frame-Options") == "DENY"
        assert response.getheader("Cross-Origin-Opener-Policy") == "same-origin"


def test_max_age(make_server, server):
    assert fetch(server, "GET", "/sample.txt")[0].getheader("Cache-Control") is None  # default: none
    running = make_server(max_age_s=3600)
    response, _ = fetch(running, "GET", "/sample.txt")
    assert response.getheader("Cache-Control") == "max-age=3600"
    revalidated, _ = fetch(running, "GET", "/sample.txt", {"If-None-Match": response.getheader("ETag")})
    assert revalidated.status == 304 and revalidated.getheader("Cache-Control") == "max-age=3600"
    assert fetch(running, "GET", "/missing")[0].getheader("Cache-Control") is None


# -- media types ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, expected",
    [
        ("a.html", "text/html; charset=utf-8"),
        ("a.js", "text/javascript; charset=utf-8"),
        ("a.mjs", "text/javascript; charset=utf-8"),
        ("a.css", "text/css; charset=utf-8"),
        ("a.svg", "image/svg+xml"),
        ("a.wasm", "application/wasm"),
        ("a.webp", "image/webp"),
        ("a.avif", "image/avif"),
        ("a.woff2", "font/woff2"),
        ("a.json", "application/json"),
        ("a.js.map", "application/json"),
        ("a.txt", "text/plain; charset=utf-8"),
        ("a.md", "text/markdown; charset=utf-8"),
        ("a.mp4", "video/mp4"),
        ("a.pdf", "application/pdf"),
        ("a.tar.gz", "application/gzip"),
        ("a.css.gz", "application/gzip"),
        ("a.unknown-ext", "application/octet-stream"),
        ("README", "application/octet-stream"),
    ],
)
def test_content_types(name, expected):
    assert mime.content_type(name) == expected


def test_compressible_types():
    for media_type in (
        "text/css; charset=utf-8",
        "application/json",
        "image/svg+xml",
        "application/ld+json",
        "application/manifest+json",
        "application/wasm",
        "text/javascript",
    ):
        assert mime.is_compressible(media_type), media_type
    for media_type in ("image/png", "video/mp4", "application/gzip", "font/woff2", "application/octet-stream"):
        assert not mime.is_compressible(media_type), media_type


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_served_types_with_nosniff(make_server):
    running = make_server(attachments=False)
    (running.root / "app.wasm").write_bytes(b"\0asm\1\0\0\0")
    (running.root / "font.woff2").write_bytes(b"wOF2")
    result = subprocess.run(
        [
            "curl",
            *running.curl_args,
            "--silent",
            "--fail",
            "-o",
            "/dev/null",
            "-o",
            "/dev/null",
            "-w",
            "%{content_type}\n",
            running.url + "app.wasm",
            running.url + "font.woff2",
        ],
        capture_output=True,
        timeout=30,
    )
    assert result.stdout.decode().split() == ["application/wasm", "font/woff2"]
    response, _ = fetch(running, "GET", "/app.wasm")
    assert response.getheader("X-Content-Type-Options") == "nosniff"
    assert response.getheader("Content-Disposition") is None  # attachments off (--inline)

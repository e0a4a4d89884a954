"""Content coding (RFC 9110 §8.4, §12.5.3): gzip on request, Vary, distinct ETags, sidecars.

Clients: http.client (which sends ``Accept-Encoding: identity`` unless told otherwise)
and ``curl --compressed``.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import threading

import pytest

from conftest import fetch
from reactor.handlers import compress
from reactor.handlers.compress import negotiate

BOTH_TRANSPORTS = True  # each test with a server runs over plain TCP and over TLS (conftest)

TEXT = ("".join("line %d of a text file that compresses well\n" % i for i in range(200))).encode()


@pytest.fixture
def site_server(make_server):
    running = make_server()
    (running.root / "app.js").write_bytes(TEXT)
    return running


GZIP = {"Accept-Encoding": "gzip, deflate, br"}


def test_gzip_when_accepted(site_server):
    response, body = fetch(site_server, "GET", "/app.js", GZIP)
    assert response.status == 200
    assert response.getheader("Content-Encoding") == "gzip"
    assert response.getheader("Vary") == "Accept-Encoding"
    assert response.getheader("Content-Type") == "text/javascript; charset=utf-8"
    assert int(response.getheader("Content-Length")) == len(body) < len(TEXT)
    assert gzip.decompress(body) == TEXT


def test_a_large_gzip_form_from_memory_arrives_whole_over_a_keep_alive_connection(make_server):
    """Over TLS a body this large is encrypted a block at a time as the socket takes it
    (reactor.response.MemoryBody); over both, its large sends take turns with other clients."""
    import base64
    import random

    rng = random.Random(7)
    text = b"\n".join(base64.b64encode(rng.randbytes(57)) for _ in range(30_000))  # 2.3 MB; 1.7 MB gzipped
    running = make_server()
    (running.root / "big.txt").write_bytes(text)
    conn = running.http(timeout=30)
    try:
        for _ in range(2):  # the second from the gzip cache, on the same connection
            conn.request("GET", "/big.txt", headers=GZIP)
            response = conn.getresponse()
            body = response.read()
            assert response.status == 200 and response.getheader("Content-Encoding") == "gzip"
            assert len(body) > 1024 * 1024 and gzip.decompress(body) == text
    finally:
        conn.close()


def test_the_gzip_form_has_its_own_etag(site_server):
    plain, _ = fetch(site_server, "GET", "/app.js")
    encoded, _ = fetch(site_server, "GET", "/app.js", GZIP)
    assert plain.getheader("Content-Encoding") is None
    assert plain.getheader("Vary") == "Accept-Encoding"  # on every compressible response
    assert plain.getheader("ETag") != encoded.getheader("ETag")
    # Each ETag validates its own form only.
    assert fetch(site_server, "GET", "/app.js", {**GZIP, "If-None-Match": encoded.getheader("ETag")})[0].status == 304
    assert fetch(site_server, "GET", "/app.js", {"If-None-Match": encoded.getheader("ETag")})[0].status == 200
    not_modified, _ = fetch(site_server, "GET", "/app.js", {**GZIP, "If-None-Match": plain.getheader("ETag")})
    assert not_modified.status == 200
    head, body = fetch(site_server, "HEAD", "/app.js", GZIP)
    assert head.getheader("ETag") == encoded.getheader("ETag") and body == b""
    assert head.getheader("Content-Length") == encoded.getheader("Content-Length")


def test_304_of_the_gzip_form_carries_vary(site_server):
    encoded, _ = fetch(site_server, "GET", "/app.js", GZIP)
    response, _ = fetch(site_server, "GET", "/app.js", {**GZIP, "If-None-Match": encoded.getheader("ETag")})
    assert response.status == 304
    assert response.getheader("Vary") == "Accept-Encoding"
    assert response.getheader("ETag") == encoded.getheader("ETag")


@pytest.mark.parametrize(
    "accept, encoded",
    [
        ("gzip", True),
        ("x-gzip", True),
        ("*", True),
        ("GZIP;Q=0.5", True),
        ("gzip;q=0", False),
        ("br, zstd", False),
        ("identity", False),
        ("", False),
        ("gzip;q=0.5, identity", False),  # identity preferred
        ("gzip;q=0.5, identity;q=0.5", True),
        ("*;q=0, identity", False),
        ("gzip;q=2", False),  # not a qvalue: the element is ignored
    ],
)
def test_accept_encoding_weights(site_server, accept, encoded):
    response, body = fetch(site_server, "GET", "/app.js", {"Accept-Encoding": accept})
    assert response.status == 200
    assert (response.getheader("Content-Encoding") == "gzip") is encoded
    assert (gzip.decompress(body) if encoded else body) == TEXT


def test_small_files_are_not_compressed(server):
    size = (server.root / "sample.txt").stat().st_size
    assert size < compress.MIN_COMPRESS_BYTES
    response, body = fetch(server, "GET", "/sample.txt", GZIP)
    assert response.getheader("Content-Encoding") is None
    assert response.getheader("Vary") == "Accept-Encoding"
    assert len(body) == size


def test_small_file_is_compressed_when_identity_is_refused(server):
    response, body = fetch(server, "GET", "/sample.txt", {"Accept-Encoding": "gzip, identity;q=0"})
    assert response.getheader("Content-Encoding") == "gzip"
    assert gzip.decompress(body) == (server.root / "sample.txt").read_bytes()


def test_images_are_not_compressed_and_do_not_vary(server):
    response, body = fetch(server, "GET", "/logo.png", GZIP)
    assert response.getheader("Content-Encoding") is None
    assert response.getheader("Vary") is None
    assert body == (server.root / "logo.png").read_bytes()


def test_ranges_are_sent_unencoded(site_server):
    response, body = fetch(site_server, "GET", "/app.js", {**GZIP, "Range": "bytes=0-99"})
    assert response.status == 206
    assert response.getheader("Content-Encoding") is None
    assert body == TEXT[:100]


def test_incompressible_text_is_sent_as_is(site_server):
    random_bytes = os.urandom(8192)
    (site_server.root / "noise.txt").write_bytes(random_bytes)
    response, body = fetch(site_server, "GET", "/noise.txt", GZIP)
    assert response.getheader("Content-Encoding") is None  # gzip would have grown it
    assert body == random_bytes
    again, body = fetch(site_server, "GET", "/noise.txt", GZIP)
    assert again.getheader("Content-Encoding") is None and body == random_bytes


# -- precompressed sidecars ---------------------------------------------------------------


def test_precompressed_sidecar_is_served_as_is(site_server):
    # Not what gzip of app.js would give: proves the sidecar's own bytes are sent.
    sidecar = gzip.compress(TEXT, compresslevel=1, mtime=0)
    path = site_server.root / "app.js.gz"
    path.write_bytes(sidecar)
    stamp = os.stat(site_server.root / "app.js").st_mtime + 1
    os.utime(path, (stamp, stamp))
    response, body = fetch(site_server, "GET", "/app.js", GZIP)
    assert response.getheader("Content-Encoding") == "gzip"
    assert response.getheader("Content-Type") == "text/javascript; charset=utf-8"
    assert body == sidecar
    plain, body = fetch(site_server, "GET", "/app.js")
    assert body == TEXT
    assert plain.getheader("ETag") != response.getheader("ETag")
    # Asked for by its own name, the .gz file is a gzip file, not JavaScript.
    direct, body = fetch(site_server, "GET", "/app.js.gz")
    assert direct.getheader("Content-Type") == "application/gzip"
    assert direct.getheader("Content-Encoding") is None
    assert body == sidecar


def test_stale_sidecar_is_ignored(make_server):
    running = make_server()
    (running.root / "app.js").write_bytes(TEXT)
    sidecar = running.root / "app.js.gz"
    sidecar.write_bytes(gzip.compress(b"an older version\n" * 100))
    stamp = os.stat(running.root / "app.js").st_mtime - 60
    os.utime(sidecar, (stamp, stamp))
    response, body = fetch(running, "GET", "/app.js", GZIP)
    assert response.getheader("Content-Encoding") == "gzip"
    assert gzip.decompress(body) == TEXT


def test_sidecar_symlink_outside_the_root_is_ignored(make_server, tmp_path):
    running = make_server()
    (running.root / "app.js").write_bytes(TEXT)
    outside = tmp_path / "secret.gz"
    outside.write_bytes(gzip.compress(b"secret\n" * 200))
    os.symlink(outside, running.root / "app.js.gz")
    response, body = fetch(running, "GET", "/app.js", GZIP)
    assert gzip.decompress(body) == TEXT


def test_large_sidecar_of_a_large_file(make_server):
    running = make_server()
    big = TEXT * 200  # ~1.8 MB: past the in-memory limit
    (running.root / "big.txt").write_bytes(big)
    sidecar = gzip.compress(big, mtime=0)
    (running.root / "big.txt.gz").write_bytes(sidecar)
    response, body = fetch(running, "GET", "/big.txt", GZIP)
    assert response.getheader("Content-Encoding") == "gzip"
    assert body == sidecar


def test_large_sidecar_is_sent_from_its_descriptor(make_server):
    running = make_server()
    text = os.urandom(512 * 1024).hex().encode()  # 1 MiB of text that gzip only halves
    (running.root / "data.csv").write_bytes(text)
    sidecar = gzip.compress(text, mtime=0)
    assert len(sidecar) > 256 * 1024  # too big to keep in memory: sent with sendfile
    (running.root / "data.csv.gz").write_bytes(sidecar)
    response, body = fetch(running, "GET", "/data.csv", GZIP)
    assert response.getheader("Content-Encoding") == "gzip"
    assert int(response.getheader("Content-Length")) == len(sidecar) and body == sidecar
    head, body = fetch(running, "HEAD", "/data.csv", GZIP)
    assert head.getheader("Content-Length") == str(len(sidecar)) and body == b""
    ranged, body = fetch(running, "GET", "/data.csv", {**GZIP, "Range": "bytes=-5"})
    assert ranged.status == 206 and ranged.getheader("Content-Encoding") is None and body == text[-5:]


# -- large files: compressed on a worker, never on the loop thread ---------------------------


def test_compression_runs_on_worker_threads(make_server, monkeypatch):
    threads = []
    real_bytes, real_file = compress.gzip_bytes, compress.gzip_file

    def spy_bytes(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return real_bytes(*args, **kwargs)

    def spy_file(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return real_file(*args, **kwargs)

    monkeypatch.setattr(compress, "gzip_bytes", spy_bytes)
    monkeypatch.setattr(compress, "gzip_file", spy_file)
    running = make_server()
    large = TEXT * 100  # ~900 KB: streamed from its descriptor through zlib
    (running.root / "large.txt").write_bytes(large)
    (running.root / "app.js").write_bytes(TEXT)
    for path, expected in (("/large.txt", large), ("/app.js", TEXT), ("/app.js", TEXT)):
        response, body = fetch(running, "GET", path, GZIP)
        assert response.getheader("Content-Encoding") == "gzip"
        assert gzip.decompress(body) == expected
    assert len(threads) == 2  # app.js twice: compressed once, then from the cache
    assert all(name.startswith("reactor-worker") for name in threads), threads


def test_files_above_the_compression_limit_are_sent_unencoded(make_server, monkeypatch):
    monkeypatch.setattr(compress, "MAX_COMPRESS_BYTES", 512 * 1024)
    running = make_server()
    large = TEXT * 100
    (running.root / "large.txt").write_bytes(large)
    response, body = fetch(running, "GET", "/large.txt", GZIP)
    assert response.getheader("Content-Encoding") is None
    assert body == large
    assert response.getheader("Vary") is None  # it can never be sent gzipped, so it does not vary
    (running.root / "large.txt.gz").write_bytes(gzip.compress(large))  # a sidecar makes it vary again
    response, body = fetch(running, "GET", "/large.txt", GZIP)
    assert response.getheader("Vary") == "Accept-Encoding" and gzip.decompress(body) == large


def test_no_gzip_option(make_server):
    running = make_server(gzip=False)
    (running.root / "app.js").write_bytes(TEXT)
    response, body = fetch(running, "GET", "/app.js", GZIP)
    assert response.getheader("Content-Encoding") is None
    assert response.getheader("Vary") is None
    assert body == TEXT


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_compressed(site_server, tmp_path):
    result = subprocess.run(
        [
            "curl",
            *site_server.curl_args,
            "--silent",
            "--show-error",
            "--fail",
            "--compressed",
            "-D",
            str(tmp_path / "head"),
            site_server.url + "app.js",
        ],
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == TEXT
    assert "Content-Encoding: gzip" in (tmp_path / "head").read_text("latin-1")


# -- negotiation underneath -------------------------------------------------------------------


def test_negotiate():
    assert negotiate(None) == (False, True)
    assert negotiate("gzip") == (True, True)
    assert negotiate("identity;q=0") == (False, False)
    assert negotiate("gzip, identity;q=0") == (True, False)
    assert negotiate("*;q=0") == (False, False)
    assert negotiate("*;q=0, gzip") == (True, False)
    assert negotiate("gzip;q=0.001") == (True, True)
    assert negotiate("gzip;;q=1, nonsense==") == (False, True)  # malformed elements skipped


def test_the_gzip_size_cap_is_documented():
    """--help, README and docs/limits.md all give the same on-the-fly limit as the code."""
    from conftest import REPO
    from reactor import cli

    cap = "%d MiB" % (compress.MAX_COMPRESS_BYTES // 2**20)
    assert compress.MAX_COMPRESS_BYTES % 2**20 == 0
    assert cap in " ".join(cli.build_parser().format_help().split())
    assert "files over %s are not compressed" % cap in " ".join((REPO / "README.md").read_text().split())
    assert "`reactor.handlers.compress.MAX_COMPRESS_BYTES` (%s)" % cap in (REPO / "docs" / "limits.md").read_text()

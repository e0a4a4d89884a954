"""GET and HEAD of files under the document root, path safety, methods (issue: core server)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess

import pytest

BOTH_TRANSPORTS = True  # each test with a server runs over plain TCP and over TLS (conftest)


def get(server, target, method="GET", headers=None):
    conn = server.http(timeout=5)
    try:
        conn.request(method, target, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


SAMPLES = [
    "index.html",
    "about.html",
    "contact.html",
    "style.css",
    "sample.txt",
    "notes.txt",
    "sample.json",
    "logo.png",
    "photo.jpg",
]


@pytest.mark.parametrize("name", SAMPLES)
def test_every_sample_file_downloads_byte_identical(server, name):
    status, fields, body = get(server, "/" + name)
    assert status == 200
    assert body == (server.root / name).read_bytes()
    assert fields["content-length"] == str(len(body))


@pytest.mark.parametrize(
    "name, media_type",
    [
        ("index.html", "text/html; charset=utf-8"),
        ("sample.txt", "text/plain; charset=utf-8"),
        ("sample.json", "application/json"),
        ("logo.png", "image/png"),
        ("photo.jpg", "image/jpeg"),
    ],
)
def test_content_type_from_mimetypes(server, name, media_type):
    _, fields, _ = get(server, "/" + name)
    assert fields["content-type"] == media_type


def test_html_inline_other_files_attachments(server):
    _, html, _ = get(server, "/about.html")
    assert "content-disposition" not in html
    _, text, _ = get(server, "/sample.txt")
    assert text["content-disposition"] == 'attachment; filename="sample.txt"'


def test_inline_flag_turns_attachments_off(make_server):
    server = make_server(attachments=False)
    _, fields, _ = get(server, "/sample.txt")
    assert "content-disposition" not in fields


def test_unknown_type_is_octet_stream(server):
    (server.root / "blob.unknownext").write_bytes(b"\x00\x01")
    _, fields, body = get(server, "/blob.unknownext")
    assert fields["content-type"] == "application/octet-stream"
    assert body == b"\x00\x01"


def test_non_ascii_filename_uses_rfc6266_filename_star(server):
    (server.root / "résumé.txt").write_bytes(b"cv")
    status, fields, _ = get(server, "/r%C3%A9sum%C3%A9.txt")
    assert status == 200
    assert fields["content-disposition"] == "attachment; filename=\"resume.txt\"; filename*=UTF-8''r%C3%A9sum%C3%A9.txt"


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_remote_header_name_saves_a_readable_ascii_name(server, tmp_path):
    (server.root / "résumé.txt").write_bytes(b"cv")
    (server.root / "Straße.txt").write_bytes(b"st")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    for target in ("r%C3%A9sum%C3%A9.txt", "Stra%C3%9Fe.txt"):
        result = subprocess.run(
            ["curl", *server.curl_args, "-sS", "-O", "-J", server.url + target],
            cwd=downloads,
            capture_output=True,
            timeout=30,
        )
        assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in downloads.iterdir()) == ["Strasse.txt", "resume.txt"]
    assert (downloads / "resume.txt").read_bytes() == b"cv"


def test_root_and_directories_serve_index_html(server):
    (server.root / "docs").mkdir()
    (server.root / "docs" / "index.html").write_bytes(b"<p>docs</p>")
    assert get(server, "/")[2] == (server.root / "index.html").read_bytes()
    assert get(server, "/docs/")[2] == b"<p>docs</p>"


def test_directory_without_slash_redirects_on_this_host(server):
    (server.root / "docs").mkdir()
    (server.root / "docs" / "index.html").write_bytes(b"x")
    status, fields, _ = get(server, "/docs?x=1")
    assert status == 308
    assert fields["location"] == "/docs/?x=1"
    assert get(server, "//docs")[0] == 403  # an absolute path; never a scheme-relative //host redirect


def test_missing_file_and_directory_without_index_are_404(server):
    (server.root / "empty").mkdir()
    assert get(server, "/nope.txt")[0] == 404
    assert get(server, "/empty/")[0] == 404
    assert get(server, "/sample.txt/more")[0] == 404


def test_head_has_get_headers_and_no_body(server):
    conn = server.http(timeout=5)
    conn.request("HEAD", "/sample.txt")
    response = conn.getresponse()
    assert response.status == 200
    assert response.getheader("Content-Length") == str((server.root / "sample.txt").stat().st_size)
    assert response.read() == b""
    # The connection is still usable: no stray body bytes were sent after the head.
    conn.request("GET", "/sample.txt")
    again = conn.getresponse()
    assert again.read() == (server.root / "sample.txt").read_bytes()


@pytest.mark.parametrize(
    "target",
    [
        "/../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/uploads/..%2f..%2fetc%2fpasswd",
        "/%2E%2E%5Cetc%5Cpasswd",
        "/sample.txt%00.png",
        "/a\\..\\b",
    ],
)
def test_traversal_attempts_are_403(raw, target):
    client = raw()
    status, _, body = client.get(target).response()
    assert status == 403
    assert b"root:" not in body


def test_symlink_out_of_root_is_403_but_inside_is_served(server, tmp_path):
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    os.symlink(outside, server.root / "leak.txt")
    os.symlink(server.root / "sample.txt", server.root / "alias.txt")
    assert get(server, "/leak.txt")[0] == 403
    status, _, body = get(server, "/alias.txt")
    assert status == 200 and body == (server.root / "sample.txt").read_bytes()


def test_symlinked_directory_out_of_root_is_403(server, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "index.html").write_text("nope")
    os.symlink(tmp_path / "elsewhere", server.root / "out")
    assert get(server, "/out/")[0] == 403
    assert get(server, "/out/index.html")[0] == 403


def test_symlink_into_a_sibling_folder_whose_name_extends_the_roots_is_403(server):
    """Root ``.../site`` and a sibling ``.../site-private``: a plain prefix test would let it in."""
    root = server.root.resolve()
    sibling = root.parent / (root.name + "-private")
    sibling.mkdir()
    (sibling / "secret.txt").write_text("the sibling's secret")
    (sibling / "index.html").write_text("the sibling's secret page")
    os.symlink(sibling / "secret.txt", server.root / "leak.txt")
    os.symlink(sibling, server.root / "leak")
    for target in ("/leak.txt", "/leak/secret.txt", "/leak/"):
        status, _, body = get(server, target)
        assert status == 403, target
        assert b"secret" not in body, target


def test_dotfiles_are_hidden(server):
    (server.root / ".env").write_text("SECRET=1")
    assert get(server, "/.env")[0] == 404
    assert get(server, "/uploads/.gitkeep")[0] == 404


def test_invalid_utf8_after_percent_decoding_is_400(server):
    assert get(server, "/%ff%fe.txt")[0] == 400


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "TRACE"])
def test_other_known_methods_on_files_are_405_with_allow(server, method):
    status, fields, _ = get(server, "/sample.txt", method=method)
    assert status == 405
    assert [m.strip() for m in fields["allow"].split(",")][:2] == ["GET", "HEAD"]


def test_unrecognised_method_is_501(server):
    assert get(server, "/sample.txt", method="BREW")[0] == 501


def test_options_answers_allow(server):
    status, fields, body = get(server, "/sample.txt", method="OPTIONS")
    assert status == 204 and body == b""
    assert "GET" in fields["allow"]


def test_large_file_streams_byte_identical(server):
    data = os.urandom(3 * 1024 * 1024 + 17)
    (server.root / "big.bin").write_bytes(data)
    status, fields, body = get(server, "/big.bin")
    assert status == 200
    assert fields["content-length"] == str(len(data))
    assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()


def test_large_file_without_sendfile_streams_through_the_pool(make_server):
    server = make_server(sendfile=False)
    data = os.urandom(2 * 1024 * 1024 + 5)
    (server.root / "big.bin").write_bytes(data)
    status, _, body = get(server, "/big.bin")
    assert status == 200 and body == data


def _nowait_reads(path):
    """Whether this kernel and file system take preadv2(RWF_NOWAIT) (Linux 4.14+)."""
    if not hasattr(os, "RWF_NOWAIT"):
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        os.preadv(fd, [bytearray(1)], 0, os.RWF_NOWAIT)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


def _count_pool_jobs(server):
    """Wrap the pool's submit so the test sees the name of every job handed to it."""
    jobs = []
    pool = server.server.pool
    submit = pool.submit

    def counting(job, args, callback):
        jobs.append(job.__name__)
        return submit(job, args, callback)

    pool.submit = counting
    return jobs


def test_cached_file_blocks_are_copied_on_the_loop_not_read_on_the_pool(make_server):
    server = make_server(sendfile=False)  # over TLS too: sendfile cannot encrypt
    data = os.urandom(2 * 1024 * 1024 + 5)
    path = server.root / "big.bin"
    path.write_bytes(data)
    if not _nowait_reads(path):
        pytest.skip("no preadv2(RWF_NOWAIT) here: every block goes to the pool")
    assert path.read_bytes() == data  # now in the page cache
    jobs = _count_pool_jobs(server)
    status, _, body = get(server, "/big.bin")
    assert status == 200 and body == data
    assert "open_file" in jobs  # the open still goes to the pool
    assert "read_block" not in jobs, jobs


@pytest.mark.skipif(not hasattr(os, "posix_fadvise"), reason="needs posix_fadvise to drop the page cache")
def test_file_blocks_not_in_the_page_cache_are_read_on_the_pool(make_server):
    server = make_server(sendfile=False)
    data = os.urandom(2 * 1024 * 1024 + 5)
    path = server.root / "cold.bin"
    path.write_bytes(data)
    if not _nowait_reads(path):
        pytest.skip("no preadv2(RWF_NOWAIT) here: every block goes to the pool")
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)  # clean pages can be dropped
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    jobs = _count_pool_jobs(server)
    status, _, body = get(server, "/cold.bin")
    assert status == 200 and body == data
    assert "read_block" in jobs, jobs  # the loop thread did not wait for the disk


@pytest.mark.parametrize("reuse", [False, True], ids=["new-blocks", "one-buffer"])
def test_file_body_read_cached_gives_the_file_in_order_then_stops(tmp_path, reuse):
    from reactor.response import FileBody

    data = os.urandom(700 * 1024)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    if not _nowait_reads(path):
        pytest.skip("no preadv2(RWF_NOWAIT) here")
    path.read_bytes()
    fd = os.open(path, os.O_RDONLY)
    body = FileBody(fd, 1000, len(data) - 1000)
    try:
        blocks = []
        owner = None  # with reuse: the one buffer every block is a view of
        while True:
            block = body.read_cached(256 * 1024, reuse)
            assert block is not None, "a cached file was refused"
            if not block:
                break
            assert len(block) <= 256 * 1024
            blocks.append(bytes(block))  # copied before the next read, as TLS encrypts it at once
            if reuse:
                assert isinstance(block, memoryview)
                owner = block.obj if owner is None else owner
                assert block.obj is owner, "a block outside the one buffer"
            del block
        assert b"".join(blocks) == data[1000:]
        assert len(blocks) >= 3
        assert body.remaining == 0 and body.offset == len(data)
    finally:
        body.close()


def test_file_body_read_cached_refuses_a_file_that_shrank(tmp_path):
    from reactor.response import FileBody

    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 10000)
    if not _nowait_reads(path):
        pytest.skip("no preadv2(RWF_NOWAIT) here")
    fd = os.open(path, os.O_RDONLY)
    body = FileBody(fd, 0, 10000)
    try:
        os.truncate(path, 0)
        with pytest.raises(ConnectionAbortedError):
            body.read_cached(4096)
    finally:
        body.close()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed (.ci/run installs it)")
def test_curl_downloads_every_sample_byte_identical(server, tmp_path):
    for name in SAMPLES:
        out = tmp_path / name
        result = subprocess.run(
            [
                "curl",
                *server.curl_args,
                "-sS",
                "--max-time",
                "10",
                "-o",
                str(out),
                "-w",
                "%{http_code}",
                server.url + name,
            ],
            capture_output=True,
            timeout=20,
        )
        assert result.stdout == b"200", result.stderr
        assert out.read_bytes() == (server.root / name).read_bytes()

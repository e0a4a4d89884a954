"""Byte ranges (RFC 9110 §14): 206, 416, multipart/byteranges, If-Range, HEAD, huge files.

Clients: http.client, raw sockets, and curl resuming a download with ``-C -``.
"""

from __future__ import annotations

import email.utils
import os
import re
import shutil
import subprocess

import pytest

from conftest import fetch
from reactor.handlers import ranges
from reactor.handlers.conditional import if_range_passes
from reactor.handlers.files import SMALL_FILE_BYTES
from reactor.handlers.ranges import parse_range

BOTH_TRANSPORTS = True  # each test with a server runs over plain TCP and over TLS (conftest)
JSON_ACCESS_LOG = True  # every response these tests provoke must log one line json.loads reads (conftest)

BIG_BYTES = 3 * 1024 * 1024 + 123  # above SMALL_FILE_BYTES: sent from the descriptor
HUGE_BYTES = 40 * 1024**3  # larger than this machine's memory; sparse, so it costs no disk
MARKER = b"END-MARKER"


def pattern(size):
    """Bytes whose every offset is recognisable (so an off-by-one shows)."""
    block = bytes(range(251))  # a prime length: no power-of-two alignment hides errors
    return (block * (size // len(block) + 1))[:size]


def split_multipart(content_type, body):
    """[(fields, data)] of a multipart/byteranges body; asserts its framing."""
    match = re.fullmatch(r"multipart/byteranges; boundary=(\S+)", content_type)
    assert match, content_type
    delimiter = b"--" + match.group(1).encode()
    assert body.endswith(delimiter + b"--\r\n")
    parts = []
    for chunk in body[: -len(delimiter + b"--\r\n")].split(delimiter)[1:]:
        assert chunk.startswith(b"\r\n") and chunk.endswith(b"\r\n")
        head, _, data = chunk[2:-2].partition(b"\r\n\r\n")
        fields = dict(line.split(": ", 1) for line in head.decode("latin-1").split("\r\n"))
        parts.append((fields, data))
    return parts


@pytest.fixture
def sample(server):
    return (server.root / "sample.txt").read_bytes()


# -- single ranges ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, first, last",
    [("0-9", 0, 9), ("5-5", 5, 5), ("300-", 300, 332), ("-10", 323, 332), ("320-9999", 320, 332), ("-9999", 0, 332)],
)
def test_single_range_is_206_with_content_range(server, sample, spec, first, last):
    assert len(sample) == 333
    response, body = fetch(server, "GET", "/sample.txt", {"Range": "bytes=" + spec})
    assert response.status == 206
    assert response.getheader("Content-Range") == "bytes %d-%d/333" % (first, last)
    assert body == sample[first : last + 1]
    assert int(response.getheader("Content-Length")) == last - first + 1
    assert response.getheader("Accept-Ranges") == "bytes"
    assert response.getheader("ETag")


def test_every_response_advertises_accept_ranges(server):
    response, _ = fetch(server, "GET", "/sample.txt")
    assert response.status == 200 and response.getheader("Accept-Ranges") == "bytes"


@pytest.mark.parametrize("spec", ["333-", "1000-2000", "-0", "400-500, 999-"])
def test_unsatisfiable_range_is_416_with_the_length(server, spec):
    response, _ = fetch(server, "GET", "/sample.txt", {"Range": "bytes=" + spec})
    assert response.status == 416
    assert response.getheader("Content-Range") == "bytes */333"


@pytest.mark.parametrize(
    "value",
    [
        "bytes=5-1",  # last < first: invalid
        "bytes=abc",
        "bytes=",
        "bytes=1-2;3",
        "bytes 0-1",
        "items=0-1",  # a unit we don't know
        "bytes=--1",
        "bytes=0-1,,x",
        "bytes=" + ",".join("%d-%d" % (i * 2, i * 2) for i in range(ranges.MAX_RANGES + 1)),
    ],
)
def test_malformed_or_unsupported_range_is_ignored(server, sample, value):
    response, body = fetch(server, "GET", "/sample.txt", {"Range": value})
    assert response.status == 200
    assert body == sample


def test_range_of_an_empty_file_is_ignored(server):
    (server.root / "empty.txt").write_bytes(b"")
    response, body = fetch(server, "GET", "/empty.txt", {"Range": "bytes=-5"})
    assert response.status == 200 and body == b""


def test_range_unit_is_case_insensitive_and_ows_is_allowed(server, sample):
    response, body = fetch(server, "GET", "/sample.txt", {"Range": "Bytes= 0-1 , 5-6 "})
    assert response.status == 206
    assert [data for _fields, data in split_multipart(response.getheader("Content-Type"), body)] == [
        sample[0:2],
        sample[5:7],
    ]


# -- several ranges -----------------------------------------------------------------------


def test_several_ranges_are_multipart_byteranges(server, sample):
    response, body = fetch(server, "GET", "/sample.txt", {"Range": "bytes=100-109, 0-4, -3"})
    assert response.status == 206
    assert response.getheader("Content-Range") is None
    assert int(response.getheader("Content-Length")) == len(body)
    parts = split_multipart(response.getheader("Content-Type"), body)
    assert (
        [(fields["Content-Range"], data) for fields, data in parts]
        == [
            ("bytes 100-109/333", sample[100:110]),
            ("bytes 0-4/333", sample[0:5]),  # the client's order is kept when nothing overlaps
            ("bytes 330-332/333", sample[330:]),
        ]
    )
    assert all(fields["Content-Type"] == "text/plain; charset=utf-8" for fields, _ in parts)


def test_overlapping_ranges_are_merged(server, sample):
    response, body = fetch(server, "GET", "/sample.txt", {"Range": "bytes=0-9, 5-19, 20-29"})
    assert response.status == 206
    assert response.getheader("Content-Range") == "bytes 0-29/333"
    assert body == sample[:30]


def test_many_overlapping_ranges_cannot_amplify(server, sample):
    value = "bytes=" + ", ".join(["0-"] * ranges.MAX_RANGES)
    response, body = fetch(server, "GET", "/sample.txt", {"Range": value})
    assert response.status == 206
    assert body == sample  # once, not 64 times


# -- If-Range ------------------------------------------------------------------------------


@pytest.fixture
def old_sample(make_server):
    """A server whose sample.txt was last modified an hour ago (a strong date validator)."""
    running = make_server()
    path = running.root / "sample.txt"
    stamp = path.stat().st_mtime - 3600
    os.utime(path, (stamp, stamp))
    return running


def test_if_range_with_the_current_etag_gets_the_range(old_sample):
    response, _ = fetch(old_sample, "GET", "/sample.txt")
    etag, last_modified = response.getheader("ETag"), response.getheader("Last-Modified")
    ranged, body = fetch(old_sample, "GET", "/sample.txt", {"Range": "bytes=0-4", "If-Range": etag})
    assert ranged.status == 206 and body == b"Hello"
    ranged, body = fetch(old_sample, "GET", "/sample.txt", {"Range": "bytes=0-4", "If-Range": last_modified})
    assert ranged.status == 206 and body == b"Hello"


@pytest.mark.parametrize("if_range", ['"old"', "W/{etag}", "Sun, 06 Nov 1994 08:49:37 GMT", "nonsense"])
def test_if_range_that_does_not_match_gets_everything(old_sample, if_range):
    response, _ = fetch(old_sample, "GET", "/sample.txt")
    value = if_range.format(etag=response.getheader("ETag"))
    ranged, body = fetch(old_sample, "GET", "/sample.txt", {"Range": "bytes=0-4", "If-Range": value})
    assert ranged.status == 200
    assert body == (old_sample.root / "sample.txt").read_bytes()


def test_if_range_date_is_honoured_only_once_its_second_is_over():
    lm = 1_700_000_000
    date = email.utils.formatdate(lm, usegmt=True)
    # A date validator is strong only if the file cannot have changed twice within that
    # second (§8.8.2.2, §13.1.5): so not while the second is still running.
    assert if_range_passes(date, '"e"', lm, now_s=lm + 5)
    assert not if_range_passes(date, '"e"', lm, now_s=lm + 0.5)
    assert not if_range_passes(date, '"e"', lm + 1, now_s=lm + 5)
    assert if_range_passes('"e"', '"e"', lm, now_s=lm)
    assert not if_range_passes('W/"e"', '"e"', lm, now_s=lm + 5)


# -- HEAD ----------------------------------------------------------------------------------


def test_head_with_range_has_the_206_fields_and_no_body(server):
    response, body = fetch(server, "HEAD", "/sample.txt", {"Range": "bytes=10-19"})
    assert response.status == 206
    assert response.getheader("Content-Range") == "bytes 10-19/333"
    assert response.getheader("Content-Length") == "10"
    assert body == b""


# -- large and huge files --------------------------------------------------------------------


@pytest.fixture(params=[True, False], ids=["sendfile", "pool-reads"])
def big(request, make_server):
    running = make_server(sendfile=request.param)
    (running.root / "big.bin").write_bytes(pattern(BIG_BYTES))
    assert BIG_BYTES > SMALL_FILE_BYTES
    return running


def test_ranges_of_a_large_file(big):
    data = pattern(BIG_BYTES)
    response, body = fetch(big, "GET", "/big.bin", {"Range": "bytes=1000000-2999999"})
    assert response.status == 206 and body == data[1000000:3000000]
    response, body = fetch(big, "GET", "/big.bin", {"Range": "bytes=-7"})
    assert response.status == 206 and body == data[-7:]
    response, body = fetch(big, "GET", "/big.bin", {"Range": "bytes=10-19, 3000000-3000009"})
    assert response.status == 206
    parts = split_multipart(response.getheader("Content-Type"), body)
    assert [data_ for _f, data_ in parts] == [data[10:20], data[3000000:3000010]]
    assert parts[1][0]["Content-Range"] == "bytes 3000000-3000009/%d" % BIG_BYTES


def test_multi_range_larger_than_the_multipart_limit_gets_the_whole_file(big):
    value = "bytes=0-%d, %d-" % (ranges.MULTIPART_MAX_BYTES, BIG_BYTES - 10)
    response, body = fetch(big, "GET", "/big.bin", {"Range": value})
    assert response.status == 200
    assert body == pattern(BIG_BYTES)


@pytest.fixture
def huge(make_server):
    running = make_server()
    with open(running.root / "huge.bin", "wb") as f:
        f.truncate(HUGE_BYTES)
        f.seek(HUGE_BYTES - len(MARKER))
        f.write(MARKER)
        f.seek(HUGE_BYTES // 2)
        f.write(MARKER)
    return running


def test_ranges_of_a_file_larger_than_memory(huge):
    response, body = fetch(huge, "HEAD", "/huge.bin")
    assert response.status == 200 and int(response.getheader("Content-Length")) == HUGE_BYTES
    response, body = fetch(huge, "GET", "/huge.bin", {"Range": "bytes=-%d" % len(MARKER)})
    assert response.status == 206
    assert response.getheader("Content-Range") == "bytes %d-%d/%d" % (HUGE_BYTES - 10, HUGE_BYTES - 1, HUGE_BYTES)
    assert body == MARKER
    middle = HUGE_BYTES // 2
    response, body = fetch(huge, "GET", "/huge.bin", {"Range": "bytes=%d-%d" % (middle - 2, middle + 11)})
    assert body == b"\0\0" + MARKER + b"\0\0"
    response, body = fetch(huge, "HEAD", "/huge.bin", {"Range": "bytes=%d-" % middle})
    assert response.status == 206 and int(response.getheader("Content-Length")) == HUGE_BYTES - middle
    response, body = fetch(huge, "GET", "/huge.bin", {"Range": "bytes=0-1, %d-%d" % (middle, middle + 9)})
    assert response.status == 206
    assert [data for _f, data in split_multipart(response.getheader("Content-Type"), body)] == [b"\0\0", MARKER]


# -- curl -C - ---------------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_resumes_an_interrupted_download(big, tmp_path):
    data = pattern(BIG_BYTES)
    partial = tmp_path / "big.bin"
    partial.write_bytes(data[:1234567])  # what an interrupted download left behind
    result = subprocess.run(
        [
            "curl",
            *big.curl_args,
            "--silent",
            "--show-error",
            "--fail",
            "--max-time",
            "30",
            "-C",
            "-",
            "-o",
            str(partial),
            "-D",
            str(tmp_path / "head"),
            big.url + "big.bin",
        ],
        capture_output=True,
        timeout=60,
    )
    head = (tmp_path / "head").read_text("latin-1") if (tmp_path / "head").exists() else ""
    assert result.returncode == 0, (result.stderr, head, partial.stat().st_size)
    assert head.startswith("HTTP/1.1 206")
    assert "Content-Range: bytes 1234567-%d/%d" % (BIG_BYTES - 1, BIG_BYTES) in head
    assert partial.read_bytes() == data


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_resume_of_a_complete_file_is_416_and_curl_accepts_it(server, tmp_path):
    done = tmp_path / "sample.txt"
    done.write_bytes((server.root / "sample.txt").read_bytes())
    result = subprocess.run(
        [
            "curl",
            *server.curl_args,
            "--silent",
            "--show-error",
            "-C",
            "-",
            "-o",
            str(done),
            "-w",
            "%{http_code}",
            server.url + "sample.txt",
        ],
        capture_output=True,
        timeout=30,
    )
    assert result.stdout == b"416"
    assert done.read_bytes() == (server.root / "sample.txt").read_bytes()


# -- the parser underneath ------------------------------------------------------------------


def test_parse_range_unit():
    assert parse_range("bytes=0-0", 10) == [(0, 0)]
    assert parse_range("bytes=0-0", 0) is None
    assert parse_range("bytes=10-", 10) == []
    assert parse_range("bytes=-0", 10) == []
    assert parse_range("bytes=0-99999999999999999999999", 10) == [(0, 9)]
    assert parse_range("bytes=99999999999999999999999-", 10) == []
    assert parse_range("bytes=000000000000000000000003-4", 10) == [(3, 4)]
    assert parse_range("bytes=" + "1" * 5000 + "-", 10) == []  # no int() of 5000 digits
    assert parse_range("bytes=5-9, 0-4", 10) == [(0, 9)]  # touching ranges merge
    assert parse_range("bytes=6-9, 0-4", 10) == [(6, 9), (0, 4)]

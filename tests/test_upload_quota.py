"""Serving a folder must not let anyone fill its disk: ``--no-uploads`` and ``--max-uploads-bytes``."""

from __future__ import annotations

import errno
import http.client
import json
import shutil
import threading
import time

import pytest

from conftest import fetch
from reactor.handlers import upload
from reactor.handlers.upload import UPLOADS_DIR, UploadQuota


def post(server, body: bytes, headers=None):
    fields = {"Content-Type": "application/json"}
    fields.update(headers or {})
    return fetch(server, "POST", "/upload", body=body, headers=fields)


def stored(server):
    folder = server.root / UPLOADS_DIR
    return sorted(p.name for p in folder.iterdir() if p.name != ".gitkeep") if folder.exists() else []


def document(size: int) -> bytes:
    """A JSON text of exactly ``size`` bytes (at least 8)."""
    return json.dumps({"x": "a" * (size - 9)}).encode()


def upload_at_once(ports, size: int):
    """POST one ``size``-byte document to each port in ``ports``, all released together.

    Returns the statuses (or the client's error, shown by the assertion instead of lost).
    """
    statuses = []
    lock = threading.Lock()
    start = threading.Barrier(len(ports))

    def one(port: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            start.wait(30)
            conn.request("POST", "/upload", body=document(size), headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            outcome = response.status
        except OSError as exc:
            outcome = repr(exc)
        finally:
            conn.close()
        with lock:
            statuses.append(outcome)

    threads = [threading.Thread(target=one, args=(port,)) for port in ports]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return statuses


def test_no_uploads_is_read_only(make_server, site):
    shutil.rmtree(site / UPLOADS_DIR)
    server = make_server(uploads=False)
    response, body = post(server, b'{"a": 1}')
    assert response.status == 405
    assert response.getheader("Allow") == "GET, HEAD, OPTIONS"
    assert b"--no-uploads" in body
    assert not (site / UPLOADS_DIR).exists()
    assert fetch(server, "GET", "/sample.txt")[0].status == 200


def test_quota_counts_what_is_already_there(make_server, site):
    (site / UPLOADS_DIR / "old.json").write_bytes(b"x" * 100)
    server = make_server(max_uploads_bytes=130)
    assert post(server, document(30))[0].status == 201  # 100 + 30 = 130: fits exactly
    response, body = post(server, document(8))
    assert response.status == 507 and b"--max-uploads-bytes" in body
    assert len(stored(server)) == 2  # old.json and the first upload; nothing half-written


def test_quota_refuses_by_content_length_before_the_body(make_server, raw_to):
    server = make_server(max_uploads_bytes=50)
    client = raw_to(server)
    client.send(
        b"POST /upload HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\nExpect: 100-continue\r\n\r\n" % client.host.encode()
    )
    status, _fields, _body = client.response()
    assert status == 507  # no 100 Continue first: the client need not send the body
    assert stored(server) == []


def test_concurrent_uploads_never_pass_the_quota(make_server):
    size, fits = 1000, 5
    server = make_server(max_uploads_bytes=size * fits, pool_size=4)
    statuses = upload_at_once([server.port] * 12, size)
    assert sorted(statuses) == [201] * fits + [507] * (12 - fits)
    files = [server.root / UPLOADS_DIR / name for name in stored(server)]
    assert len(files) == fits and sum(f.stat().st_size for f in files) == size * fits


def test_a_failed_write_gives_its_bytes_back(make_server, monkeypatch):
    server = make_server(max_uploads_bytes=100)
    real_publish = upload._publish
    calls = []

    def failing_once(temp, directory):
        calls.append(temp)
        if len(calls) == 1:
            raise OSError(errno.EIO, "Input/output error")
        return real_publish(temp, directory)

    monkeypatch.setattr(upload, "_publish", failing_once)
    assert post(server, document(100))[0].status == 500
    assert stored(server) == []
    assert post(server, document(100))[0].status == 201  # the room of the failed one is free again


def test_zero_means_no_limit(make_server):
    server = make_server(max_uploads_bytes=0)
    assert post(server, document(5000))[0].status == 201


def test_two_servers_on_one_folder_share_the_quota(make_server, site):
    """Worker processes (--workers) each have their own UploadQuota: the flock on the
    directory and the sum of what it holds keep the limit between them too."""
    size, fits = 1000, 5
    servers = [make_server(root=site, max_uploads_bytes=size * fits, pool_size=3) for _ in range(2)]
    statuses = upload_at_once([servers[n % 2].port for n in range(12)], size)
    assert sorted(statuses) == [201] * fits + [507] * (12 - fits)
    assert len(stored(servers[0])) == fits


def test_deleting_uploads_frees_their_room(make_server, site, monkeypatch):
    monkeypatch.setattr(UploadQuota, "EARLY_CHECK_S", 0.0)  # else the early check trusts its sum for 1 s
    server = make_server(max_uploads_bytes=150)
    assert post(server, document(100))[0].status == 201
    assert post(server, document(100))[0].status == 507
    for name in stored(server):
        (site / UPLOADS_DIR / name).unlink()
    assert post(server, document(100))[0].status == 201  # counted anew at each upload, under the lock


def test_early_check_refuses_only_what_surely_does_not_fit():
    quota = UploadQuota(100)
    assert quota.fits(100) and not quota.fits(101)  # nothing known yet: only the limit itself
    quota.used_bytes, quota._checked_at = 90, time.monotonic()
    assert quota.fits(10) and not quota.fits(11)  # a fresh sum
    quota._checked_at -= UploadQuota.EARLY_CHECK_S + 1
    assert quota.fits(11)  # an old sum proves nothing: the worker will count again


@pytest.mark.parametrize(
    "flag, field, value", [("--no-uploads", "uploads", False), ("--max-uploads-bytes=123", "max_uploads_bytes", 123)]
)
def test_flags(flag, field, value):
    from reactor import cli

    parser = cli.build_parser()
    assert getattr(cli.config_from_args(parser.parse_args([flag])), field) == value
    assert getattr(cli.config_from_args(parser.parse_args([])), field) == (True if field == "uploads" else 256 << 20)


@pytest.mark.slow
def test_worker_processes_share_the_quota(run_cli, site):
    """``--workers 2``: two processes, one folder, one limit."""
    size, fits = 1000, 4
    cli = run_cli(
        "--workers",
        "2",
        "--port",
        "0",
        "-d",
        str(site),
        "--max-uploads-bytes",
        str(size * fits),
        "--log-level",
        "warning",
    )
    assert cli.port, cli.output
    statuses = upload_at_once([cli.port] * 10, size)
    assert sorted(statuses) == [201] * fits + [507] * (10 - fits)
    names = [p for p in (site / UPLOADS_DIR).iterdir() if p.name.startswith("upload_")]
    assert len(names) == fits and sum(p.stat().st_size for p in names) == size * fits

"""Serving a folder must not let anyone fill its disk: ``--no-uploads`` and ``--max-uploads-bytes``."""

from __future__ import annotations

import errno
import http.client
import json
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import fetch, wait_for
from reactor.errors import HTTPError
from reactor.handlers import quota, upload
from reactor.handlers.quota import LEDGER_NAME
from reactor.handlers.upload import UPLOADS_DIR, UploadQuota


def post(server, body: bytes, headers=None):
    fields = {"Content-Type": "application/json"}
    fields.update(headers or {})
    return fetch(server, "POST", "/upload", body=body, headers=fields)


def stored(server):
    folder = server.root / UPLOADS_DIR
    return (
        sorted(p.name for p in folder.iterdir() if p.name not in (".gitkeep", LEDGER_NAME)) if folder.exists() else []
    )


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


def test_a_read_only_server_writes_nothing_into_an_existing_uploads_folder(make_server, site):
    before = sorted(p.name for p in (site / UPLOADS_DIR).iterdir())
    make_server(uploads=False)
    assert sorted(p.name for p in (site / UPLOADS_DIR).iterdir()) == before  # no ledger either


def test_quota_counts_what_is_already_there(make_server, site):
    (site / UPLOADS_DIR / "old.json").write_bytes(b"x" * 100)
    server = make_server(max_uploads_bytes=130)
    assert post(server, document(30))[0].status == 201  # 100 + 30 = 130: fits exactly
    response, body = post(server, document(8))
    assert response.status == 507 and b"--max-uploads-bytes" in body, (response.status, body)
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


def test_a_file_deleted_by_hand_frees_its_room_within_one_rescan_interval(make_server, site, monkeypatch):
    """The promise of the docs: room a deletion frees is usable within RESCAN_S and one scan."""
    monkeypatch.setattr(UploadQuota, "EARLY_CHECK_S", 0.0)  # else the early check trusts its sum for 1 s
    monkeypatch.setattr(quota, "RESCAN_S", 0.5)  # the interval, shortened for the test (10 s by default)
    server = make_server(max_uploads_bytes=150)
    assert post(server, document(100))[0].status == 201
    assert post(server, document(100))[0].status == 507
    for name in stored(server):
        (site / UPLOADS_DIR / name).unlink()
    deleted = time.monotonic()
    while post(server, document(100))[0].status == 507:
        assert time.monotonic() - deleted < quota.RESCAN_S + 1.0, "the deletion was not noticed in time"
        time.sleep(0.05)  # polling a condition with a deadline
    assert len(stored(server)) == 1


def test_a_file_added_by_hand_counts_from_the_next_scan(make_server, site, monkeypatch):
    monkeypatch.setattr(UploadQuota, "EARLY_CHECK_S", 0.0)
    monkeypatch.setattr(quota, "RESCAN_S", 0.5)
    server = make_server(max_uploads_bytes=150)
    ledger = site / UPLOADS_DIR / quota.LEDGER_NAME
    assert post(server, document(10))[0].status == 201
    (site / UPLOADS_DIR / "by-hand.json").write_bytes(b"x" * 100)
    wait_for(lambda: quota.Ledger.decode(ledger.read_bytes()).used_bytes == 110, quota.RESCAN_S + 1.0, "a scan")
    assert post(server, document(41))[0].status == 507
    assert post(server, document(40))[0].status == 201  # 10 + 100 + 40: exactly the limit


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


# -- the cost of an upload does not grow with the files stored ----------------------------------

STORED = 100_000


@pytest.mark.serial
def test_an_upload_among_100000_stored_costs_what_it_costs_in_an_empty_folder(make_server, site, tmp_path):
    """The median of one small upload with 100,000 files stored is within 2x (plus 2 ms) of an
    empty folder's. Both servers run side by side and take turns, so the machine's load falls
    on both alike. (Adding the folder up at every upload took 630-800 ms at 100,000.)"""
    sys.path.insert(0, str(Path(__file__).resolve().parent / "benchmarks"))
    import stored_uploads

    full_root = tmp_path / "full"
    shutil.copytree(site, full_root)
    stored_uploads.fill(full_root / UPLOADS_DIR, STORED)
    try:
        empty, full = make_server(), make_server(root=full_root)
        times = {empty.port: [], full.port: []}
        connections = {port: http.client.HTTPConnection("127.0.0.1", port, timeout=30) for port in times}
        for _round in range(60):
            for port, conn in connections.items():
                started = time.perf_counter()
                conn.request("POST", "/upload", body=document(200), headers={"Content-Type": "application/json"})
                response = conn.getresponse()
                response.read()
                times[port].append(time.perf_counter() - started)
                assert response.status == 201
        for conn in connections.values():
            conn.close()
        empty_ms = statistics.median(times[empty.port]) * 1000
        full_ms = statistics.median(times[full.port]) * 1000
        assert full_ms <= 2 * empty_ms + 2, "median %.2f ms with %d stored, %.2f ms empty" % (full_ms, STORED, empty_ms)
    finally:
        shutil.rmtree(full_root / UPLOADS_DIR, ignore_errors=True)  # 100,000 names: not left for pytest's cleanup


# -- the ledger and its scans ---------------------------------------------------------------------


def ledger_bytes(directory) -> int:
    return quota.Ledger.decode((Path(directory) / quota.LEDGER_NAME).read_bytes()).used_bytes


def test_scans_during_uploads_and_failed_uploads_keep_the_total_exact(tmp_path, monkeypatch):
    """Scans run without the lock while writers store, fail (and give their size back) and
    publish; the journal makes each scan's result exact all the same."""
    directory = tmp_path / "uploads"
    directory.mkdir()
    for n in range(2000):  # enough that a scan takes a while, and uploads land inside it
        (directory / ("old-%d.json" % n)).write_bytes(b"x" * (n % 50))
    monkeypatch.setattr(quota, "RESCAN_S", 0.0)
    monkeypatch.setattr(quota, "RESCAN_DUTY", 0)  # every rescan() scans
    limit = UploadQuota(10**9)
    limit.settle(str(directory))
    real_publish = upload._publish
    calls = [0]

    def publish_failing_now_and_then(temp, folder):
        calls[0] += 1
        if calls[0] % 7 == 0:
            raise OSError(errno.EIO, "Input/output error")
        return real_publish(temp, folder)

    monkeypatch.setattr(upload, "_publish", publish_failing_now_and_then)
    stop = threading.Event()
    scans = [0]

    def scanner() -> None:
        while not stop.is_set():
            scans[0] += limit.rescan(str(directory))

    def writer(n: int) -> None:
        for i in range(60):
            try:
                upload.store_upload(str(directory), document(100 + 37 * n + i), limit)
            except HTTPError as exc:
                assert exc.status == 500

    threads = [threading.Thread(target=scanner)] + [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads[1:]:
        thread.join(120)
    stop.set()
    threads[0].join(60)
    assert scans[0] >= 3
    truth = quota.scan(str(directory), float("inf"))[0]
    assert ledger_bytes(directory) == truth
    assert limit.rescan(str(directory)) and ledger_bytes(directory) == truth  # and a scan now agrees


def test_a_ledger_copied_from_another_folder_is_counted_again(tmp_path):
    """cp -r of a site (or a backup put back) brings a fresh-looking ledger that counts another folder."""
    original = tmp_path / "a" / "uploads"
    original.mkdir(parents=True)
    limit = UploadQuota(1000)
    upload.store_upload(str(original), document(100), limit)
    copy = tmp_path / "b" / "uploads"
    copy.mkdir(parents=True)
    shutil.copy(original / quota.LEDGER_NAME, copy / quota.LEDGER_NAME)  # says 100 bytes, counted just now
    (copy / "big.json").write_bytes(b"x" * 950)
    with pytest.raises(HTTPError) as refused:
        upload.store_upload(str(copy), document(100), limit)
    assert refused.value.status == 507 and ledger_bytes(copy) == 950


def test_a_ledger_deleted_or_garbled_by_hand_is_counted_again(tmp_path):
    directory = tmp_path / "uploads"
    directory.mkdir()
    (directory / "old.json").write_bytes(b"x" * 300)
    limit = UploadQuota(1000)
    upload.store_upload(str(directory), document(100), limit)
    assert ledger_bytes(directory) == 400
    (directory / quota.LEDGER_NAME).unlink()
    upload.store_upload(str(directory), document(100), limit)
    assert ledger_bytes(directory) == 500
    (directory / quota.LEDGER_NAME).write_bytes(b"rubbish")
    with pytest.raises(HTTPError) as refused:
        upload.store_upload(str(directory), document(501), limit)
    assert refused.value.status == 507 and ledger_bytes(directory) == 500

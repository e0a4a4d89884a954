"""Durable uploads: temp file in the same directory, fsync, atomic publish, fsync of the
directory; faults in that path leave nothing behind; kill -9 leaves only complete files.

Faults are injected in the worker's write path by giving ``reactor.handlers.upload``
stand-ins for ``os`` and ``tempfile`` (tests run as root, so permission bits would not
stop anything).
"""

from __future__ import annotations

import errno
import http.client
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import types

import pytest

from conftest import wait_for
from reactor.handlers import upload
from reactor.handlers.quota import LEDGER_NAME

DOCUMENT = {"name": "durable", "values": list(range(50))}


class FaultyModule(types.SimpleNamespace):
    """A stand-in for a module: records calls to ``watched`` names and fails the nth one.

    ``faults`` maps a name to (call number, errno); other attributes come from ``real``.
    """

    def __init__(self, real, watched, faults=None, log=None):
        super().__init__()
        self._real = real
        self._watched = watched
        self._faults = dict(faults or {})
        self._counts = {}
        self._log = log if log is not None else []

    def __getattr__(self, name):
        attr = getattr(self._real, name)
        if name not in self._watched:
            return attr

        def call(*args, **kwargs):
            self._counts[name] = count = self._counts.get(name, 0) + 1
            fault = self._faults.get(name)
            if fault is not None and fault[0] == count:
                raise OSError(fault[1], os.strerror(fault[1]))
            result = attr(*args, **kwargs)
            self._log.append((name, args, result))
            return result

        return call


OS_CALLS = {"write", "fsync", "close", "link", "replace", "rename", "open", "unlink"}


def inject(monkeypatch, faults=None):
    """Route the upload module's os/tempfile calls through recorders; return the call log."""
    calls: list = []
    os_faults = {k: v for k, v in (faults or {}).items() if k != "mkstemp"}
    tmp_faults = {k: v for k, v in (faults or {}).items() if k == "mkstemp"}
    monkeypatch.setattr(upload, "os", FaultyModule(os, OS_CALLS, os_faults, calls))
    monkeypatch.setattr(upload, "tempfile", FaultyModule(tempfile, {"mkstemp"}, tmp_faults, calls))
    return calls


def post_json(srv, body: bytes):
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
    conn.request("POST", "/upload", body=body, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response, data


def leftovers(directory):
    return sorted(name for name in os.listdir(directory) if name not in (".gitkeep", LEDGER_NAME))


# -- the order of operations ------------------------------------------------------------------


def test_store_upload_writes_fsyncs_publishes_then_fsyncs_the_directory(tmp_path, monkeypatch):
    calls = inject(monkeypatch)
    directory = str(tmp_path / "uploads")
    body = json.dumps(DOCUMENT).encode()
    name = upload.store_upload(directory, body)
    assert (tmp_path / "uploads" / name).read_bytes() == body
    assert leftovers(directory) == [name]  # the temp file is gone

    assert calls[0][0] == "mkstemp"
    fd, temp = calls[0][2]
    assert os.path.dirname(temp) == directory  # same directory: the link cannot cross file systems
    names = [c[0] for c in calls]
    file_fsync = names.index("fsync")
    assert calls[file_fsync][1] == (fd,)
    assert max(i for i, c in enumerate(calls) if c[0] == "write") < file_fsync
    publish = next(i for i, c in enumerate(calls) if c[0] in ("link", "replace", "rename"))
    assert file_fsync < publish  # data on disk before any name points at it
    dir_open = next(i for i, c in enumerate(calls) if c[0] == "open" and c[1][0] == directory)
    dir_fd = calls[dir_open][2]
    dir_fsync = next(i for i, c in enumerate(calls) if i > dir_open and c[0] == "fsync" and c[1] == (dir_fd,))
    assert publish < dir_open < dir_fsync  # then the new name itself is made durable


# -- faults in the worker's write path ------------------------------------------------------


@pytest.mark.parametrize(
    "faults, status",
    [
        ({"write": (1, errno.ENOSPC)}, 507),
        ({"fsync": (1, errno.ENOSPC)}, 507),
        ({"fsync": (1, errno.EDQUOT)}, 507),
        ({"mkstemp": (1, errno.EACCES)}, 500),
        ({"link": (1, errno.EACCES)}, 500),
        ({"write": (1, errno.EIO)}, 500),
        ({"fsync": (2, errno.EIO)}, 500),  # the directory fsync, after the file was linked
    ],
    ids=["write-ENOSPC", "fsync-ENOSPC", "fsync-EDQUOT", "mkstemp-EACCES", "link-EACCES", "write-EIO", "dirsync-EIO"],
)
def test_disk_faults_give_the_documented_status_and_leave_nothing(make_server, monkeypatch, caplog, faults, status):
    srv = make_server()
    inject(monkeypatch, faults)
    body = json.dumps(DOCUMENT).encode()
    response, data = post_json(srv, body)
    assert response.status == status
    assert data.startswith(b"%d " % status)
    name = next(iter(faults))
    code = faults[name][1]
    if status == 500:
        assert os.strerror(code).encode() in data  # a clear reason
    else:
        assert b"space" in data
    assert leftovers(srv.root / "uploads") == []
    assert not [r for r in caplog.records if r.exc_info]  # expected failures, not bugs
    # The fault was one-off: the next upload is stored.
    response, data = post_json(srv, body)
    assert response.status == 201
    stored = json.loads(data)["file"]
    assert leftovers(srv.root / "uploads") == [stored]


@pytest.mark.parametrize("code", [errno.EMFILE, errno.ENFILE, errno.ENOMEM], ids=errno.errorcode.get)
def test_out_of_descriptors_or_memory_is_503_with_retry_after(make_server, monkeypatch, caplog, code):
    """docs/robustness.md promises 503 + Retry-After for EMFILE, ENFILE, ENOMEM: uploads too."""
    srv = make_server()
    inject(monkeypatch, {"mkstemp": (1, code)})
    response, data = post_json(srv, json.dumps(DOCUMENT).encode())
    assert response.status == 503
    assert response.getheader("Retry-After") == "1"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert leftovers(srv.root / "uploads") == []
    response, data = post_json(srv, json.dumps(DOCUMENT).encode())
    assert response.status == 201


class FillingDisk(types.SimpleNamespace):
    """``os`` for the upload module, whose writes fail with ENOSPC while ``full``."""

    def __init__(self) -> None:
        super().__init__()
        self.full = True

    def __getattr__(self, name):
        return getattr(os, name)

    def write(self, fd, data):
        if self.full:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return os.write(fd, data)


def test_a_full_disk_is_logged_once_per_episode(make_server, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="reactor")
    srv = make_server()
    disk = FillingDisk()
    monkeypatch.setattr(upload, "os", disk)
    body = json.dumps(DOCUMENT).encode()

    def warnings():
        return [r for r in caplog.records if r.levelno == logging.WARNING and "cannot store" in r.getMessage()]

    for episode in (1, 2):
        disk.full = True
        for _ in range(3):
            assert post_json(srv, body)[0].status == 507
        assert len(warnings()) == episode, [r.getMessage() for r in warnings()]
        disk.full = False
        assert post_json(srv, body)[0].status == 201
        assert sum("stored in" in r.getMessage() and "again" in r.getMessage() for r in caplog.records) == episode


# -- crashes ---------------------------------------------------------------------------------


def test_temp_files_from_a_crash_are_removed_at_start(make_server, site, caplog):
    uploads = site / "uploads"
    (uploads / ".upload-abc123.tmp").write_bytes(b'{"cut sho')
    (uploads / ".upload-def456.tmp").write_bytes(b"")
    (uploads / "upload_20260101_000000_abcd.json").write_bytes(b'{"complete": true}')
    (uploads / ".keep-me").write_bytes(b"not ours")
    make_server()
    assert leftovers(uploads) == [".keep-me", "upload_20260101_000000_abcd.json"]
    assert any("removed 2 incomplete" in r.getMessage() for r in caplog.records)


def test_kill_9_during_uploads_leaves_only_complete_files(run_cli, site):
    cli = run_cli("--port", "0", "-d", str(site), "--log-level", "warning", "--pool-size", "4")
    assert cli.port, cli.output
    stored: dict = {}
    lock = threading.Lock()
    stop = threading.Event()

    def uploader(worker: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", cli.port, timeout=10)
        n = 0
        while not stop.is_set():
            n += 1
            # Large enough that writes are in progress when the kill lands.
            body = json.dumps({"worker": worker, "n": n, "pad": "x" * 200_000}).encode()
            try:
                conn.request("POST", "/upload", body=body, headers={"Content-Type": "application/json"})
                response = conn.getresponse()
                answer = response.read()
            except (OSError, http.client.HTTPException):
                return
            if response.status == 201:
                with lock:
                    stored[json.loads(answer)["file"]] = body

    threads = [threading.Thread(target=uploader, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    wait_for(lambda: len(stored) >= 40, timeout_s=60, what="40 stored uploads")
    cli.proc.send_signal(signal.SIGKILL)
    assert cli.proc.wait(10) == -signal.SIGKILL
    stop.set()
    for thread in threads:
        thread.join(15)
    uploads = site / "uploads"
    finals = sorted(uploads.glob("upload_*.json"))
    for path in finals:
        json.loads(path.read_bytes())  # every published file is complete JSON
    for name, body in stored.items():  # every 201 survived the crash
        assert (uploads / name).read_bytes() == body
    # The next start removes whatever temp files the kill left.
    again = run_cli("--port", "0", "-d", str(site), "--log-level", "warning")
    assert again.port, again.output
    assert not list(uploads.glob(".upload-*"))
    assert sorted(uploads.glob("upload_*.json")) == finals


# -- several processes writing one directory (--workers) ------------------------------------------

_HOLD_LOCK = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, b'{"half wri')
print("locked", flush=True)
sys.stdin.read()  # hold the lock until the test closes our stdin, or kills us
"""


def test_the_sweep_leaves_a_temp_file_another_live_process_is_writing(tmp_path):
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    temp = uploads / ".upload-writing.tmp"
    (uploads / ".upload-abandoned.tmp").write_bytes(b"{")
    writer = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(temp)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert writer.stdout.readline() == b"locked\n"
        assert upload.remove_stale_temp_files(str(uploads)) == 1  # only the abandoned one
        assert leftovers(uploads) == [".upload-writing.tmp"]
        writer.kill()  # a crash: the kernel drops its lock
        writer.wait(10)
        assert upload.remove_stale_temp_files(str(uploads)) == 1
        assert leftovers(uploads) == []
    finally:
        writer.kill()
        writer.wait(10)
        writer.stdin.close()
        writer.stdout.close()


def test_uploads_all_succeed_while_other_workers_keep_sweeping(tmp_path):
    """Writers and start-up sweeps at once, as workers starting beside busy ones do: no upload is lost."""
    directory = str(tmp_path / "uploads")
    os.makedirs(directory)
    stop = threading.Event()
    errors: list = []
    names: list = []
    sweeps = [0]

    def sweeper() -> None:
        while not stop.is_set():
            upload.remove_stale_temp_files(directory)
            sweeps[0] += 1

    def writer(n: int) -> None:
        for i in range(150):
            body = json.dumps({"writer": n, "i": i, "pad": "x" * 20_000}).encode()
            try:
                names.append((upload.store_upload(directory, body), body))
            except Exception as exc:  # noqa: BLE001 - any failure is the bug under test
                errors.append(exc)

    sweepers = [threading.Thread(target=sweeper) for _ in range(2)]
    writers = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in sweepers + writers:
        thread.start()
    for thread in writers:
        thread.join(60)
    stop.set()
    for thread in sweepers:
        thread.join(10)
    assert sweeps[0] > 10
    assert not errors, errors[:3]
    assert len({name for name, _body in names}) == len(names) == 600  # unique names
    for name, body in names:
        assert open(os.path.join(directory, name), "rb").read() == body
    assert not [n for n in os.listdir(directory) if n.startswith(upload.TEMP_PREFIX)]

"""``python -m reactor --app``: loading the application, the flags around it, and worker processes.

Real processes: an application that cannot be loaded is one line and exit status 1 before
the port is bound (with workers, the supervisor stops at once instead of forking again);
bad combinations are one line and exit status 2; ``--workers 2 --max-requests 50``
replaces workers under load without a failed request.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import List

import pytest

from conftest import REPO, CliServer, wait_for
from reactor.cli import main

APPS = {
    "hello.py": """
import os

IMPORTED_IN = os.getpid()
with open(os.environ.get("IMPORT_LOG", os.devnull), "a") as log:
    log.write("%d\\n" % IMPORTED_IN)


def app(environ, start_response):
    environ["wsgi.errors"].write("note from %s\\n" % environ["PATH_INFO"])
    body = ("hello from %d, %s %s" % (os.getpid(), environ["wsgi.multithread"], environ["wsgi.multiprocess"])).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def make_app():
    return app


not_callable = 42
""",
    "broken.py": """
import os

x = 1
raise RuntimeError("settings missing")
""",
}


@pytest.fixture
def apps(tmp_path):
    folder = tmp_path / "project"
    folder.mkdir()
    for name, text in APPS.items():
        (folder / name).write_text(text)
    return folder


def run(args: List[str], cwd: Path, timeout_s: float = 20.0, env=None) -> "subprocess.CompletedProcess[str]":
    return subprocess.run(
        [sys.executable, "-m", "reactor", *args],
        cwd=cwd,
        env=env or dict(os.environ, PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def get(port: int, path: str = "/") -> "tuple[int, bytes]":
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.mark.parametrize(
    "spec, extra, line",
    [
        ("nowhere:app", [], r"cannot load the application nowhere:app: no module named 'nowhere' \(looked in "),
        ("hello:nope", [], r"cannot load the application hello:nope: hello has no attribute 'nope'$"),
        ("broken:app", [], r"broken:app: RuntimeError: settings missing \(.*broken\.py:5\)$"),
        ("hello:not_callable", [], r"hello:not_callable: it is not callable \(a int\); if it makes the application"),
        ("hello:app", ["--factory"], r"hello:app\(\): TypeError: app\(\) missing 2 required positional arguments"),
    ],
)
def test_an_application_that_cannot_load_is_one_line_and_exit_1_before_binding(apps, spec, extra, line):
    result = run([spec, *extra, "--port", "0"], cwd=apps)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and re.search(line, lines[0]), result.stderr
    assert "Traceback" not in result.stderr and "serving" not in result.stderr


def test_log_level_debug_adds_the_traceback(apps):
    result = run(["--app", "broken:app", "--port", "0", "--log-level", "debug"], cwd=apps)
    assert result.returncode == 1 and "Traceback" in result.stderr and 'broken.py", line 5' in result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--app", "hello:app", "-d", "."], "--directory: with --app the application answers every path"),
        (["hello:app", "--directory", "."], "--directory: with --app the application answers every path"),
        (["--static", "/s=."], "--static: only with --app"),
        (["--root-path", "/x"], "--root-path: only with --app"),
        (["--app", "hello:app", "--static", "/s=./missing"], "--static: './missing' is not a directory"),
        (["--app", "hello:app", "--static", "/=."], "--static: the prefix '/' would hide the application"),
        (["--app", "hello:app", "--static", "static=."], "--static: 'static' is not a URL prefix"),
        (["--app", "hello:app", "--forwarded-allow-ips", "10.0.0.0/8,bogus"], "--forwarded-allow-ips: 'bogus' is not"),
        (["--app", "hello:app", "--max-requests-jitter", "5"], "--max-requests-jitter: only with --max-requests"),
        (["--app", "hello"], "--app: 'hello' is not MODULE:CALLABLE"),
        (["--app", "hello:app", "--threads", "-1"], "--threads: '-1' is not a whole number of 0 or more"),
    ],
)
def test_bad_combinations_are_one_usage_line_and_exit_2(apps, args, message, monkeypatch, capsys):
    monkeypatch.chdir(apps)  # refused while parsing, before anything starts: main() in this process
    with pytest.raises(SystemExit) as exited:
        main([*args, "--port", "0"], prog="reactor")
    lines = capsys.readouterr().err.strip().splitlines()
    assert exited.value.code == 2 and len(lines) == 2, lines  # the line, and the pointer to --help
    assert lines[0].startswith("reactor: ") and message in lines[0], lines[0]


def test_a_positional_module_callable_runs_the_application(apps):
    cli = CliServer(
        ["hello:make_app", "--factory", "--threads", "1", "--port", "0"],
        cwd=apps,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    try:
        assert cli.port, cli.output
        assert b"serving hello:make_app at http://127.0.0.1:" in cli.output and b"(1 application threads" in cli.output
        status, body = get(cli.port, "/x")
        assert status == 200 and body.endswith(b"False False")  # one thread, one process
    finally:
        cli.stop()


def test_app_dir_and_wsgi_errors_reaching_stderr_at_every_log_level(apps, tmp_path):
    cli = CliServer(
        ["--app", "hello:app", "--app-dir", str(apps), "--port", "0", "--log-level", "error"],
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    try:
        assert cli.port, cli.output
        assert get(cli.port, "/errors")[0] == 200
        wait_for(lambda: b"note from /errors" in cli.read_available(), what="wsgi.errors on stderr")
    finally:
        cli.stop()


# -- worker processes --------------------------------------------------------------------------


class Supervised:
    """``python -m reactor ... --workers N`` with stderr collected by a thread."""

    def __init__(self, args: List[str], cwd: Path, env: dict) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "reactor", *args, "--port", "0"],
            cwd=cwd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.chunks: List[bytes] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for chunk in iter(lambda: os.read(self.proc.stderr.fileno(), 65536), b""):  # type: ignore[union-attr]
            self.chunks.append(chunk)

    @property
    def output(self) -> str:
        return b"".join(self.chunks).decode("utf-8", "replace")

    def port(self) -> int:
        match = wait_for(lambda: re.search(r"http://127\.0\.0\.1:(\d+)/ \(", self.output), what="the startup line")
        return int(match.group(1))

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            status = self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            status = self.proc.wait(5)
        self.reader.join(5)
        return status


def test_workers_with_max_requests_are_replaced_under_load_with_no_failed_request(apps, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    running = Supervised(
        [
            "hello:app",
            "--workers",
            "2",
            "--max-requests",
            "50",
            "--max-requests-jitter",
            "10",
            "--log-level",
            "info",
            "--access-log",
            os.devnull,
        ],
        apps,
        env,
    )
    ok: List[int] = []
    failures: List[str] = []
    pids = set()
    stop = threading.Event()
    try:
        port = running.port()

        def client() -> None:  # a new connection per request, as a load balancer's health checks
            while not stop.is_set():
                try:
                    status, body = get(port, "/")
                except (OSError, http.client.HTTPException) as exc:
                    failures.append(repr(exc))
                    continue
                if status != 200:
                    failures.append("status %d" % status)
                else:
                    ok.append(1)
                    pids.add(int(body.split()[2].rstrip(b",")))

        threads = [threading.Thread(target=client, daemon=True) for _ in range(3)]
        for thread in threads:
            thread.start()
        wait_for(
            lambda: running.output.count("served its --max-requests; replacing it") >= 4,
            timeout_s=30,
            what="four replacements",
        )
        stop.set()
        for thread in threads:
            thread.join(15)
    finally:
        stop.set()
        status = running.stop()
    assert failures == [], failures[:5]
    assert len(ok) >= 200 and len(pids) >= 4, (len(ok), pids)  # requests answered by at least four processes
    assert status == 0 and "Traceback" not in running.output and "ERROR" not in running.output


def test_a_broken_application_with_workers_stops_the_supervisor_at_once(apps):
    result = run(["broken:app", "--workers", "2", "--port", "0"], cwd=apps, timeout_s=30)
    assert result.returncode == 1, result.stderr
    assert (
        "workers cannot start: cannot load the application broken:app: RuntimeError: settings missing" in result.stderr
    )
    assert result.stderr.count("booting") <= 2  # no worker forked again
    assert "retrying" not in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("preload", [True, False])
def test_preload_imports_once_before_the_fork_else_each_worker_imports(apps, tmp_path, preload):
    log = tmp_path / "imports.log"
    env = dict(os.environ, PYTHONPATH=str(REPO), IMPORT_LOG=str(log))
    running = Supervised(
        ["hello:app", "--workers", "2", "--log-level", "warning", *(["--preload"] if preload else [])], apps, env
    )
    try:
        port = running.port()
        status, body = get(port)
        assert status == 200 and body.endswith(b"True True")  # four threads; two processes
    finally:
        assert running.stop() == 0
    imported = [int(line) for line in log.read_text().split()]
    if preload:
        assert imported == [running.proc.pid]
    else:
        assert len(imported) == 2 and running.proc.pid not in imported

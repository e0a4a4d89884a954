"""Shared helpers for the benchmark scripts: a temporary document root and
starting, probing and stopping the servers under comparison.

Used by load.py and idle_clients.py; not meant to be run directly.

Servers (each on a free loopback port, serving the same document root, one process):
  reactor       python -m reactor --host 127.0.0.1 --port PORT -d DOCROOT --log-level warning
  reactor-log   the same with its default access log on (to stderr, a file here)
  ceiling       a bare selectors loop answering canned bytes (peers.py; small files only)
  uvicorn       uvicorn asgi_app:app --loop uvloop --http httptools (files from memory)
  uvicorn-disk  the same app streaming every file from disk in 1 MiB chunks
  nginx         nginx, 1 worker, sendfile on, access_log off
  twisted       twisted.web.static.File, access log off (peers.py)
  waitress      waitress, a WSGI app returning wsgi.file_wrapper (peers.py)
  tornado       tornado.web.StaticFileHandler, access log off (peers.py)
  granian       granian (Rust), its static-file route, access log off (for reference)
  httpserver    python -m http.server --bind 127.0.0.1 PORT --directory DOCROOT

WSGI servers, running an application of wsgi_apps.py (app_load.py; ``APP`` is its name):
  reactor-app         python -m reactor --app wsgi_apps:APP --log-level warning (4 application threads)
  reactor-app-inline  the same with --threads 0 (the application on the loop thread)
  waitress-app        waitress-serve --threads 4 wsgi_apps:APP (no access log: waitress has none)
  gunicorn            gunicorn -k gthread --threads 4 -w 1 wsgi_apps:APP (access log off by default)
  granian-wsgi        granian --interface wsgi --workers 1 --no-access-log wsgi_apps:APP
  cheroot             cheroot --threads 4 --max-threads 4 wsgi_apps:APP (app_slow_clients.py only)
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent

ALL_SERVERS = (
    "reactor",
    "reactor-log",
    "ceiling",
    "uvicorn",
    "uvicorn-disk",
    "nginx",
    "twisted",
    "waitress",
    "tornado",
    "granian",
    "httpserver",
)
LABELS = {
    "reactor": "reactor",
    "reactor-log": "reactor+log",
    "ceiling": "ceiling",
    "uvicorn": "uvicorn",
    "uvicorn-disk": "uvicorn-disk",
    "nginx": "nginx",
    "twisted": "twisted",
    "waitress": "waitress",
    "tornado": "tornado",
    "granian": "granian",
    "httpserver": "http.server",
}
APP_SERVERS = ("reactor-app", "reactor-app-inline", "waitress-app", "gunicorn", "granian-wsgi")
LABELS.update(
    {
        "reactor-app": "reactor",
        "reactor-app-inline": "reactor -t0",
        "waitress-app": "waitress",
        "gunicorn": "gunicorn",
        "granian-wsgi": "granian",
        "cheroot": "cheroot",
    }
)
#: Servers that answer only the small file (canned bytes): left out of the other scenarios.
SMALL_ONLY = frozenset({"ceiling"})
#: The Python module each optional server needs, for the "not installed" note.
MODULES = {
    "uvicorn": ("uvicorn", "httptools", "uvloop"),
    "uvicorn-disk": ("uvicorn", "httptools", "uvloop"),
    "twisted": ("twisted",),
    "waitress": ("waitress",),
    "tornado": ("tornado",),
    "granian": ("granian",),
    "waitress-app": ("waitress",),
    "gunicorn": ("gunicorn",),
    "granian-wsgi": ("granian",),
    "cheroot": ("cheroot",),
}

SMALL_NAME = "index.html"
SMALL_SIZE = 1024
MEDIUM_NAME = "10m.bin"
MEDIUM_SIZE = 10 * 1024 * 1024
BIG_NAME = "1g.bin"
BIG_SIZE = 1024 * 1024 * 1024

START_TIMEOUT = 20.0  # seconds for a server to accept and answer
STOP_TIMEOUT = 5.0  # seconds between SIGTERM and SIGKILL


class ServerError(Exception):
    """A server could not be started or did not serve the document root."""


# --------------------------------------------------------------------------
# document root


def make_docroot(base: Path, big: bool = False) -> Path:
    """Create BASE/docroot with a 1 KiB index.html, a 10 MiB file and,
    if BIG, a sparse 1 GiB file. Readable by all (nginx workers may run
    as another user)."""
    root = base / "docroot"
    root.mkdir()
    small = b"<!doctype html><html><head><title>reactor bench</title></head><body><p>"
    small += b"x" * (SMALL_SIZE - len(small) - len(b"</p></body></html>\n"))
    small += b"</p></body></html>\n"
    assert len(small) == SMALL_SIZE
    (root / SMALL_NAME).write_bytes(small)
    # Non-constant content so nothing along the way can cheat on it.
    block = bytes(range(256)) * 4096  # 1 MiB
    with open(root / MEDIUM_NAME, "wb") as f:
        for _ in range(MEDIUM_SIZE // len(block)):
            f.write(block)
    if big:
        with open(root / BIG_NAME, "wb") as f:  # sparse: no disk used
            f.truncate(BIG_SIZE)
        # Read it once so its pages are in the page cache before any server
        # runs: otherwise the first server to send it pays for filling it.
        buf = bytearray(1 << 24)
        with open(root / BIG_NAME, "rb") as f:
            while f.readinto(buf):
                pass
    for p in [base, root, *root.iterdir()]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    return root


# --------------------------------------------------------------------------
# processes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def allowed_cpus() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return []


def pin_prefix(cpu: int | None) -> list[str]:
    """`taskset -c CPU` if taskset exists and CPU is given, else nothing."""
    if cpu is None or not shutil.which("taskset"):
        return []
    return ["taskset", "-c", str(cpu)]


def find_nginx() -> str | None:
    return shutil.which("nginx") or next(
        (
            p
            for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")
            if os.access(p, os.X_OK)
        ),
        None,
    )


def missing_reason(name: str) -> str | None:
    """Why NAME cannot run here, or None if it can."""
    if name in ("reactor", "reactor-log", "reactor-app", "reactor-app-inline"):
        if not (REPO_ROOT / "reactor" / "__main__.py").exists():
            return f"{REPO_ROOT}/reactor/__main__.py does not exist"
    elif name in MODULES:
        missing = [m for m in MODULES[name] if importlib.util.find_spec(m) is None]
        if missing:
            return (
                f"Python packages missing for {sys.executable}: {', '.join(missing)} (pip install {' '.join(missing)})"
            )
    elif name == "nginx":
        if not find_nginx():
            return "nginx not installed (bash tests/benchmarks/ensure_tools.sh)"
    elif name not in ("httpserver", "ceiling"):
        return f"unknown server {name!r} (known: {', '.join(ALL_SERVERS)})"
    return None


NGINX_CONF = """\
worker_processes 1;
worker_rlimit_nofile {nofile};
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{
    worker_connections {connections};
    multi_accept on;
}}
http {{
    types {{
        text/html html;
    }}
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout {keepalive}s;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        root {docroot};
        index index.html;
        # Small file: one read + writev. With sendfile + tcp_nopush (TCP_CORK)
        # nginx stalls ~40 ms on pipelined requests; this keeps it at its best.
        location = /index.html {{ sendfile off; }}
    }}
}}
"""


@dataclass
class Server:
    """One running server process (and its children)."""

    name: str
    port: int
    proc: subprocess.Popen
    log_path: Path
    pid: int = 0  # the process that serves (for RSS)
    cmd: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return LABELS.get(self.name, self.name)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def rss(self) -> int | None:
        """VmRSS of the serving process, in bytes (None if unavailable)."""
        return read_rss(self.pid)

    def cpu_seconds(self) -> tuple[float, float] | None:
        return cpu_seconds(self.pid)

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM the server's process group, then SIGKILL if still there."""
        stop_process_groups([self.proc])


def stop_process_groups(procs: list[subprocess.Popen]) -> None:
    """SIGTERM each process's group, wait (STOP_TIMEOUT in all), then
    SIGKILL whatever is left in the groups (e.g. an nginx worker)."""
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(max(0.0, deadline - time.monotonic()))
    for proc in procs:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(STOP_TIMEOUT)


def stop_servers(servers: list["Server"]) -> None:
    stop_process_groups([s.proc for s in servers])


def build_command(
    name: str, port: int, docroot: Path, tmp: Path, idle_timeout: int | None = None, max_connections: int = 4096
) -> tuple[list[str], dict, Path]:
    """Command line, environment and working directory for server NAME.
    IDLE_TIMEOUT: keep-alive idle timeout in seconds, or None for each
    server's default (reactor 30 s, uvicorn 5 s, nginx 75 s)."""
    py = sys.executable
    env = dict(os.environ)
    cwd = REPO_ROOT
    if name in ("reactor", "reactor-log"):
        env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        cmd = [
            py,
            "-m",
            "reactor",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "-d",
            str(docroot),
            "--log-level",
            "info" if name == "reactor-log" else "warning",
        ]
        if idle_timeout is not None:
            cmd += ["--keepalive-timeout", str(idle_timeout)]
    elif name in ("ceiling", "twisted", "waitress", "tornado"):
        cmd = [py, str(HERE / "peers.py"), name, str(port), str(docroot)]
    elif name == "granian":
        env["BENCH_DOCROOT"] = str(docroot)
        cwd = HERE
        # Its own (Rust) static-file route serves the files; the ASGI app only answers misses.
        cmd = [
            py,
            "-m",
            "granian",
            "--interface",
            "asgi",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--runtime-threads",
            "1",
            "--no-access-log",
            "--log-level",
            "warning",
            "--static-path-route",
            "/",
            "--static-path-mount",
            str(docroot),
            "asgi_app:app",
        ]
    elif name == "httpserver":
        cmd = [py, "-m", "http.server", "--bind", "127.0.0.1", str(port), "--directory", str(docroot)]
    elif name in ("uvicorn", "uvicorn-disk"):
        env["BENCH_DOCROOT"] = str(docroot)
        if name == "uvicorn-disk":
            env["BENCH_FROM_DISK"] = "1"
        cwd = HERE
        cmd = [
            py,
            "-m",
            "uvicorn",
            "asgi_app:app",
            "--app-dir",
            str(HERE),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--log-level",
            "warning",
            "--no-access-log",
            "--workers",
            "1",
        ]
        if idle_timeout is not None:
            cmd += ["--timeout-keep-alive", str(idle_timeout)]
    elif name == "nginx":
        conf = tmp / "nginx.conf"
        conf.write_text(
            NGINX_CONF.format(
                tmp=tmp,
                port=port,
                docroot=docroot,
                keepalive=75 if idle_timeout is None else idle_timeout,
                # nginx closes idle keep-alive connections when fewer than 1/16
                # of worker_connections are free: leave more than that spare.
                connections=max_connections + max_connections // 8 + 512,
                nofile=2 * max_connections + 2048,
            )
        )
        cmd = [find_nginx() or "nginx", "-c", str(conf), "-p", str(tmp), "-e", str(tmp / "nginx-error.log")]
    else:
        raise ServerError(f"unknown server {name!r}")
    return cmd, env, cwd


def build_app_command(name: str, port: int, app: str) -> tuple[list[str], dict, Path]:
    """Command line, environment and working directory for WSGI server NAME running
    ``wsgi_apps:APP`` (one process, access log off, threads as in APP_SERVERS' notes)."""
    py = sys.executable
    env = dict(os.environ)
    spec = f"wsgi_apps:{app}"
    if name in ("reactor-app", "reactor-app-inline"):
        env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        cmd = [py, "-m", "reactor", "--app", spec, "--app-dir", str(HERE), "--host", "127.0.0.1", "--port", str(port)]
        cmd += ["--log-level", "warning"] + (["--threads", "0"] if name == "reactor-app-inline" else [])
    elif name == "waitress-app":
        cmd = [py, "-m", "waitress", "--listen", f"127.0.0.1:{port}", "--threads", "4", spec]
    elif name == "gunicorn":
        cmd = [py, "-m", "gunicorn", "-k", "gthread", "--threads", "4", "-w", "1", "-b", f"127.0.0.1:{port}"]
        cmd += ["--log-level", "warning", spec]
    elif name == "granian-wsgi":
        cmd = [py, "-m", "granian", "--interface", "wsgi", "--host", "127.0.0.1", "--port", str(port)]
        cmd += ["--workers", "1", "--no-access-log", "--log-level", "warning", spec]
    elif name == "cheroot":
        cmd = [py, "-m", "cheroot", "--bind", f"127.0.0.1:{port}", "--threads", "4", "--max-threads", "4", spec]
    else:
        raise ServerError(f"unknown WSGI server {name!r} (known: {', '.join(APP_SERVERS)}, cheroot)")
    return cmd, env, HERE


def start_server(
    name: str,
    docroot: Path,
    tmp: Path,
    cpu: int | None = None,
    extra_args: list[str] | None = None,
    idle_timeout: int | None = None,
    max_connections: int = 4096,
    app: str | None = None,
) -> Server:
    """Start NAME on a free loopback port, wait until it serves index.html
    (bounded by START_TIMEOUT) and find the PID that serves. With APP, NAME is one
    of APP_SERVERS running ``wsgi_apps:APP``, and ``GET /`` must answer 200.
    Raises ServerError (after stopping the process) if it fails."""
    port = free_port()
    stmp = tmp / f"{name}-tmp"
    stmp.mkdir(exist_ok=True)
    stmp.chmod(0o755)
    if app is None:
        cmd, env, cwd = build_command(name, port, docroot, stmp, idle_timeout, max_connections)
    else:
        cmd, env, cwd = build_app_command(name, port, app)
    cmd = pin_prefix(cpu) + cmd + list(extra_args or [])
    log_path = tmp / f"{name}.log"
    log = open(log_path, "wb")
    try:
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as e:
        raise ServerError(f"{name}: cannot run {cmd[0]}: {e}") from e
    finally:
        log.close()
    server = Server(name=name, port=port, proc=proc, log_path=log_path, cmd=cmd)
    try:
        wait_until_serving(server, START_TIMEOUT, "/" if app else "/" + SMALL_NAME, None if app else SMALL_SIZE)
        server.pid = serving_pid(proc.pid, port) or proc.pid
    except BaseException:
        server.stop()
        raise
    return server


def wait_until_serving(
    server: Server, timeout: float, path: str = "/" + SMALL_NAME, size: int | None = SMALL_SIZE
) -> None:
    """Poll until the server answers GET PATH with 200 and SIZE bytes (any non-empty body if None)."""
    deadline = time.monotonic() + timeout
    last_error = "no attempt"
    delay = 0.01
    while time.monotonic() < deadline:
        if not server.alive():
            raise ServerError(
                f"{server.label} exited with status {server.proc.returncode} "
                f"before serving; command: {' '.join(server.cmd)}\n"
                f"--- its output ---\n{server.log_tail()}"
            )
        try:
            status, body = http_get(server.port, path, timeout=2.0)
        except OSError as e:
            last_error = f"{type(e).__name__}: {e}"
        else:
            if status == 200 and (len(body) == size if size is not None else body):
                return
            raise ServerError(
                f"{server.label} answered GET {path} with status {status} "
                f"and {len(body)} bytes (expected 200 and {size if size is not None else 'some'})"
            )
        time.sleep(delay)  # poll interval, not a wait for readiness
        delay = min(delay * 2, 0.2)
    raise ServerError(
        f"{server.label} did not serve on port {server.port} "
        f"within {timeout:.0f}s ({last_error})\n"
        f"--- its output ---\n{server.log_tail()}"
    )


def http_get(port: int, path: str, timeout: float = 5.0, keep_alive: bool = False) -> tuple[int, bytes]:
    """Minimal blocking HTTP/1.1 GET on 127.0.0.1:PORT; returns (status, body)."""
    conn = "keep-alive" if keep_alive else "close"
    req = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: {conn}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(req)
        return read_response(s)


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    """Read one HTTP response (Content-Length, chunked or until close)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed before response headers")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if "content-length" in headers:
        n = int(headers["content-length"])
        while len(body) < n:
            chunk = sock.recv(min(1 << 20, n - len(body)))
            if not chunk:
                raise ConnectionError("connection closed in response body")
            body += chunk
        return status, body
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while not body.endswith(b"0\r\n\r\n"):  # good enough for our files
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        return status, dechunk(body)
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return status, body
        body += chunk


def dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2 :]
    return out


# --------------------------------------------------------------------------
# /proc helpers


def read_rss(pid: int) -> int | None:
    """VmRSS of PID in bytes, from /proc/PID/status."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def cpu_seconds(pid: int) -> tuple[float, float] | None:
    """(user, system) CPU seconds used so far by PID (all its threads)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def cpu_times(cpu: int) -> tuple[float, float] | None:
    """(user + nice, steal) seconds spent so far by CPU number CPU, from
    /proc/stat. User time is the part that can be matched against a
    process's own user time: system time also holds network softirq work."""
    try:
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith(f"cpu{cpu} "):
                    v = [int(x) for x in line.split()[1:]]
                    tick = os.sysconf("SC_CLK_TCK")
                    return (v[0] + v[1]) / tick, v[7] / tick
    except (OSError, IndexError, ValueError):
        pass
    return None


def descendants(root: int) -> list[int]:
    """ROOT and all its descendants, parents before children."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    order, todo = [], [root]
    while todo:
        pid = todo.pop(0)
        order.append(pid)
        todo.extend(sorted(children.get(pid, [])))
    return order


def listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    local, state, inode = parts[1], parts[3], parts[9]
                    if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                        inodes.add(inode)
        except OSError:
            continue
    return inodes


def serving_pid(root: int, port: int) -> int | None:
    """The deepest process under ROOT that holds the listening socket on
    PORT: the worker for nginx (master + worker), the process itself for
    reactor, http.server and single-worker uvicorn."""
    wanted = {f"socket:[{i}]" for i in listening_inodes(port)}
    found = None
    for pid in descendants(root):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") in wanted:
                    found = pid
                    break
            except OSError:
                continue
    return found


def raise_nofile_limit(wanted: int | None = None) -> int:
    """Raise RLIMIT_NOFILE's soft limit to the hard limit (and, if WANTED is
    above the hard limit and we may, the hard limit too). Returns the new
    soft limit. Child processes (servers) inherit it."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if wanted and hard != resource.RLIM_INFINITY and wanted > hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft


@contextlib.contextmanager
def workspace(prefix: str = "reactor-bench-"):
    """A temporary directory, removed at exit whatever happens."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    return f"{n / (1024 * 1024):.1f}M"

"""Server settings: one frozen dataclass, units in the names (``_bytes``, ``_s``)."""

from __future__ import annotations

import dataclasses
import os
import resource
from pathlib import Path
from typing import Optional, Tuple

#: The folder served by default when the current directory has one (the sample site in a clone).
DEFAULT_ROOT_NAME = "resources"


def default_root() -> Path:
    """``./resources`` if the current directory has one, else the current directory.

    So ``python3 -m reactor`` in a clone serves the sample site, and ``reactor`` in any
    other folder serves that folder, as ``python -m http.server`` does.
    """
    candidate = Path(DEFAULT_ROOT_NAME)
    return candidate if candidate.is_dir() else Path(".")


def default_max_connections() -> int:
    """Size the connection limit to the file-descriptor limit, keeping room for files.

    Each connection uses one descriptor, and a large file being sent a second one; the
    rest (listener, waker, selector, log, workers' open files) needs a margin.
    """
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 65536
    return max(16, (soft - 32) * 3 // 4)


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything ``python -m reactor`` can be told; defaults match ``--help``."""

    host: str = "127.0.0.1"
    port: int = 8080
    root: Path = dataclasses.field(default_factory=default_root)  # made absolute in __post_init__
    pool_size: int = 4
    app_threads: int = 4  # threads that run application code (0: it runs on the loop thread)
    app_queue_max: int = 128  # application jobs queued or running before requests get 503
    # Disk jobs queued or running before requests get 503. Each connection has at most
    # one job, so this bounds queueing delay, not memory: 1000 simultaneous clients fit.
    pool_queue_max: int = 1024
    allowed_hosts: Tuple[str, ...] = ()  # extra Host values (name or name:port)
    attachments: bool = True  # non-HTML files get Content-Disposition: attachment
    dotfiles: bool = False  # serve names starting with "." (otherwise 404)
    list_directories: bool = False  # HTML listing for a directory without index.html (otherwise 404)
    gzip: bool = True  # gzip compressible files when Accept-Encoding allows it
    max_age_s: Optional[int] = None  # Cache-Control: max-age on files (None: no Cache-Control)
    cors: bool = False  # Access-Control-Allow-Origin: * on every response, and answer preflights
    extra_headers: Tuple[Tuple[str, str], ...] = ()  # --header fields added to every response
    cache_max_bytes: int = 32 * 1024 * 1024  # hot-file cache of small files; 0 turns it off
    uploads: bool = True  # POST /upload stores JSON in <root>/uploads/ (otherwise 405, read-only)
    gzip_cache_max_bytes: int = 32 * 1024 * 1024  # gzip forms shared by requests, by file version; 0: not kept

    # Request limits (RFC 9112 §3, §5; RFC 9110 §15.5.14, §15.5.15, RFC 6585 §5).
    max_request_line_bytes: int = 8192
    max_header_section_bytes: int = 8192
    max_field_lines: int = 100
    max_body_bytes: int = 1024 * 1024
    max_uploads_bytes: int = 256 * 1024 * 1024  # all of uploads/, a running total (handlers/quota.py); past it 507

    # Persistence (RFC 9112 §9.3) and timeouts, in seconds.
    keepalive_timeout_s: float = 30.0
    keepalive_max_requests: int = 100  # the seed's "Maximum 100 requests per connection" (Keep-Alive: max=100)
    header_timeout_s: float = 10.0  # first byte to end of header section
    body_timeout_s: float = 30.0  # longest stall between body reads
    # After the grace period a message body must average this many bytes/s (0: no minimum),
    # like Apache's mod_reqtimeout MinRate: a trickle is cut off with 408, a slow steady upload never.
    min_body_rate: int = 500
    body_rate_grace_s: float = 10.0
    send_timeout_s: float = 60.0  # longest stall while the client is not reading
    linger_timeout_s: float = 2.0  # discarding input after a closing response
    tls_handshake_timeout_s: float = 10.0  # accept to the end of the TLS handshake

    max_connections: int = dataclasses.field(default_factory=default_max_connections)
    backlog: int = 128
    shutdown_timeout_s: float = 10.0
    sendfile: bool = True  # zero-copy os.sendfile for large files on plain sockets

    # HTTPS: with a certificate chain and its key (PEM files) the listener speaks TLS only.
    tls_cert_file: Optional[Path] = None
    tls_key_file: Optional[Path] = None
    tls_key_password_file: Optional[Path] = None  # a file holding the key's passphrase

    # WebSocket (RFC 6455; docs/websocket.md): endpoints by path, and their limits.
    websocket_endpoints: Tuple[Tuple[str, str], ...] = ()  # --websocket PATH=MODULE:FACTORY, as (path, spec)
    websocket_origins: Tuple[str, ...] = ()  # Origin values accepted besides the server's own (--websocket-origin)
    websocket_max_message_bytes: int = 1024 * 1024  # a larger message closes with 1009
    websocket_ping_interval_s: float = 20.0  # a Ping after this long without a byte from the peer
    websocket_ping_timeout_s: Optional[float] = None  # then a close with 1011 after this long more (None: the interval)
    websocket_close_timeout_s: float = 3.0  # our Close frame waits this long for the peer's, then the connection drops
    websocket_max_queued_bytes: int = 1024 * 1024  # a receiver with more than this waiting is closed with 1008

    # A WSGI application (PEP 3333, --app): every path outside the static mounts goes to it.
    app: Optional[str] = None  # "MODULE:CALLABLE"; None serves root as a folder
    app_factory: bool = False  # CALLABLE() returns the application (called once per process)
    app_dir: Optional[Path] = None  # put first on sys.path to import the application (None: the current directory)
    root_path: str = ""  # SCRIPT_NAME: the URL prefix the application is mounted at ("" for none)
    static_mounts: Tuple[Tuple[str, Path], ...] = ()  # (URL prefix, folder): files served beside the application
    forwarded_allow_ips: Tuple[str, ...] = ()  # peers whose X-Forwarded-For/-Proto are believed ("*": any)
    workers: int = 1  # worker processes (for wsgi.multiprocess; the supervisor runs them)
    max_requests: int = 0  # with workers: a worker is replaced after about this many requests (0: never)
    max_requests_jitter: int = 0  # up to this many more, at random per worker, so they are not replaced together
    switch_interval_s: Optional[float] = None  # sys.setswitchinterval: how long a thread keeps the GIL (None: 0.005)

    # Live reload (development): pages reload themselves when a file under root changes.
    live_reload: bool = False  # inject the client into HTML, watch root, serve /__reactor__/livereload
    watch: str = "auto"  # "auto" (inotify where it works, else polling), "inotify" or "poll"
    watch_interval_s: float = 0.5  # between two listings of the folder when polling
    live_reload_ignore: Tuple[str, ...] = ()  # more globs whose changes are not reported

    # For study (docs/trace.md, docs/status.md); both off by default.
    trace: bool = False  # one stderr line per selector event, transition, parser event, pool hand-off, timer
    status_path: Optional[str] = None  # e.g. "/_status": counters as JSON or HTML, loopback clients only
    #: Fields the connection adds to every response: CORS, then each --header.
    added_fields: Tuple[Tuple[str, str], ...] = dataclasses.field(init=False, repr=False, compare=False)

    @property
    def tls(self) -> bool:
        """True when the listener speaks HTTPS."""
        return self.tls_cert_file is not None

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(os.path.abspath(self.root)))
        if self.app_dir is not None:
            object.__setattr__(self, "app_dir", Path(os.path.abspath(self.app_dir)))
        added: "list[Tuple[str, str]]" = []
        if self.cors:
            added.extend(CORS_FIELDS)
        added.extend(self.extra_headers)
        object.__setattr__(self, "added_fields", tuple(added))


#: What ``--cors`` adds to every response (Fetch standard, CORS protocol): any origin
#: may read responses, and scripts may see the fields a file server's clients use.
CORS_FIELDS = (
    ("Access-Control-Allow-Origin", "*"),
    ("Access-Control-Expose-Headers", "Content-Range, Content-Disposition, ETag, Location, Accept-Ranges"),
)

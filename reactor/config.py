"""Server settings: one frozen dataclass, units in the names (``_bytes``, ``_s``)."""

from __future__ import annotations

import dataclasses
import os
import resource
from pathlib import Path
from typing import Optional, Tuple

#: The sample site shipped with the repository (``<repo>/resources``).
DEFAULT_ROOT = Path(__file__).resolve().parent.parent / "resources"


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
    root: Path = DEFAULT_ROOT
    pool_size: int = 4
    # Disk jobs queued or running before requests get 503. Each connection has at most
    # one job, so this bounds queueing delay, not memory: 1000 simultaneous clients fit.
    pool_queue_max: int = 1024
    allowed_hosts: Tuple[str, ...] = ()  # extra Host values (name or name:port)
    attachments: bool = True  # non-HTML files get Content-Disposition: attachment
    dotfiles: bool = False  # serve names starting with "." (otherwise 404)

    # Request limits (RFC 9112 §3, §5; RFC 9110 §15.5.14, §15.5.15, RFC 6585 §5).
    max_request_line_bytes: int = 8192
    max_header_section_bytes: int = 8192
    max_field_lines: int = 100
    max_body_bytes: int = 1024 * 1024

    # Persistence (RFC 9112 §9.3) and timeouts, in seconds.
    keepalive_timeout_s: float = 30.0
    keepalive_max_requests: int = 100
    header_timeout_s: float = 10.0  # first byte to end of header section
    body_timeout_s: float = 30.0  # longest stall between body reads
    send_timeout_s: float = 60.0  # longest stall while the client is not reading
    linger_timeout_s: float = 2.0  # discarding input after a closing response

    max_connections: int = dataclasses.field(default_factory=default_max_connections)
    backlog: int = 128
    shutdown_timeout_s: float = 10.0
    sendfile: bool = True  # zero-copy os.sendfile for large files on plain sockets

    # For study (docs/trace.md, docs/status.md); both off by default.
    trace: bool = False  # one stderr line per selector event, transition, parser event, pool hand-off, timer
    status_path: Optional[str] = None  # e.g. "/_status": counters as JSON or HTML, loopback clients only

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(os.path.abspath(self.root)))

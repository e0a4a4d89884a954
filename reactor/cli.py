"""``python -m reactor``: parse flags into a Config, set up logging and signals, serve.

Every option can also come from an environment variable ``REACTOR_<NAME>``
(:func:`apply_environment`), handy in containers and systemd units; flags win.
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import logging
import os
import random
import re
import signal
import socket
import stat
import sys
from pathlib import Path
from typing import List, Mapping, NoReturn, Optional, Sequence

from reactor import __version__
from reactor import log as logmod
from reactor.abnf import TCHAR
from reactor.config import DEFAULT_ROOT_NAME, Config, default_max_connections, default_root
from reactor.handlers import compress, websocket
from reactor.handlers.app import AppLoadError, load_application
from reactor.handlers.livereload import make_watcher
from reactor.scoreboard import MAX_WORKERS
from reactor.server import Server, open_listener
from reactor.supervisor import FatalBootError, Supervisor, WorkerHandle
from reactor.watch import Watcher
from reactor.wsgi import WSGIApp

log = logging.getLogger("reactor")


def _whole_number(text: str, minimum: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise argparse.ArgumentTypeError("%r is not %s" % (text, what))
    return value


def _positive_int(text: str) -> int:
    return _whole_number(text, 1, "a whole number of 1 or more")


def _non_negative_int(text: str) -> int:
    return _whole_number(text, 0, "a whole number of 0 or more")


def _workers(text: str) -> int:
    """``--workers``: a count of processes, or ``auto`` for one per CPU."""
    if text.strip().lower() == "auto":
        return min(MAX_WORKERS, os.cpu_count() or 1)
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a number of processes or 'auto', not %r" % text) from None
    if not 1 <= value <= MAX_WORKERS:
        raise argparse.ArgumentTypeError("must be 1-%d (or 'auto')" % MAX_WORKERS)
    return value


def _port(text: str) -> int:
    value = _whole_number(text, 0, "a port number (0-65535)")
    if value > 65535:
        raise argparse.ArgumentTypeError("%r is not a port number (0-65535)" % text)
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError("%r is not a positive number of seconds" % text)
    return value


def _status_path(text: str) -> str:
    if not text.startswith("/") or "?" in text or "#" in text:
        raise argparse.ArgumentTypeError("%r is not a path starting with '/' (without '?' or '#')" % text)
    return text


def _websocket_endpoint(text: str) -> "tuple[str, str]":
    """``--websocket /chat=chat:Room`` → ``("/chat", "chat:Room")``; the import is checked in main()."""
    try:
        return websocket.parse_endpoint(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _origin(text: str) -> str:
    if websocket.origin_of(text) is None:
        raise argparse.ArgumentTypeError("%r is not an origin: scheme://host[:port], e.g. https://example.com" % text)
    return text


_APP_SPEC = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")


def _app_spec(text: str) -> str:
    """``--app``: ``MODULE:CALLABLE``, each a dotted Python name."""
    if not _APP_SPEC.fullmatch(text):
        raise argparse.ArgumentTypeError(
            "%r is not MODULE:CALLABLE (as in hello:app or mysite.wsgi:application)" % text
        )
    return text


def _url_prefix(text: str, what: str) -> str:
    """A URL path prefix: starts with '/', no '?' or '#'; a trailing '/' is dropped ('/' alone becomes '')."""
    if not text.startswith("/") or "?" in text or "#" in text or "//" in text:
        raise argparse.ArgumentTypeError("%r is not %s starting with '/' (without '?', '#' or '//')" % (text, what))
    return text.rstrip("/")


def _root_path(text: str) -> str:
    return _url_prefix(text, "a URL path")


def _static_mount(text: str) -> "tuple[str, Path]":
    """``--static PREFIX=DIR`` → ``("/static", Path("DIR"))``; DIR must be a folder."""
    prefix, equals, folder = text.partition("=")
    if not equals or not folder:
        raise argparse.ArgumentTypeError("expected PREFIX=DIR, as in /static=./static, not %r" % text)
    prefix = _url_prefix(prefix, "a URL prefix")
    if not prefix:
        raise argparse.ArgumentTypeError("the prefix '/' would hide the application; use one such as /static")
    if not os.path.isdir(folder):
        raise argparse.ArgumentTypeError("%r is not a directory" % folder)
    return prefix, Path(folder)


def _forwarded_ips(text: str) -> "tuple[str, ...]":
    """``--forwarded-allow-ips``: addresses and CIDR ranges, comma-separated, or '*'."""
    values = tuple(value.strip() for value in text.split(",") if value.strip())
    for value in values:
        if value == "*":
            continue
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise argparse.ArgumentTypeError("%r is not an IP address, a CIDR range or '*'" % value) from None
    if not values:
        raise argparse.ArgumentTypeError("expected IP addresses or CIDR ranges, comma-separated, or '*'")
    return values


# field-name = token (RFC 9110 §5.1); field-value: visible characters, SP and HTAB (§5.5)
_FIELD_NAME = re.compile(TCHAR + "+")
_FIELD_VALUE = re.compile(r"[\x21-\x7e\x80-\xff]+(?:[ \t]+[\x21-\x7e\x80-\xff]+)*")
#: Fields the server computes for each response; a fixed --header copy would contradict it.
_SERVER_FIELDS = frozenset(
    {
        "connection",
        "content-encoding",
        "content-length",
        "content-range",
        "content-type",
        "date",
        "etag",
        "keep-alive",
        "last-modified",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)


def _header_field(text: str) -> "tuple[str, str]":
    """``"Name: value"`` → ``("Name", "value")``; refuses what would break a response."""
    name, colon, value = text.partition(":")
    value = value.strip(" \t")
    if not colon or not _FIELD_NAME.fullmatch(name):
        raise argparse.ArgumentTypeError('expected "Name: value" with a field name made of token characters')
    if not _FIELD_VALUE.fullmatch(value):
        raise argparse.ArgumentTypeError("the value of %s must be non-empty, without control characters" % name)
    if name.lower() in _SERVER_FIELDS:
        raise argparse.ArgumentTypeError("%s is set by the server for each response" % name)
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        raise argparse.ArgumentTypeError("the value of %s must be ASCII (or ISO-8859-1)" % name) from None
    return name, value


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors are one line naming the flag, and a hint; exit status 2."""

    def error(self, message: str) -> "NoReturn":
        match = re.match(r"argument ([^:]+): (.*)", message, re.DOTALL)
        if match:  # "argument -d/--directory: ..." -> "--directory: ..."
            names = match.group(1).split("/")
            message = "%s: %s" % (next((n for n in names if n.startswith("--")), names[0]), match.group(2))
        self.exit(2, "%s: %s\nTry '%s --help' for the options.\n" % (self.prog, message, self.prog))


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Adds ``(default: …)`` once, and only where it tells something: not to switches
    that are off, options with no default, or help that already names its default."""

    def _get_help_string(self, action: argparse.Action) -> Optional[str]:
        text = action.help or ""
        off = action.default is None or action.default is False or action.default == []  # not 0: a real value
        if "default" in text or off or not action.option_strings:
            return text
        return super()._get_help_string(action)


def program_name() -> str:
    """What the user typed: ``reactor`` (the installed script) or ``python3 -m reactor``."""
    argv0 = sys.argv[0] if sys.argv else ""
    if os.path.basename(argv0) == "__main__.py":
        orig_argv = getattr(sys, "orig_argv", None)  # Python 3.10+: the interpreter as typed
        return "%s -m reactor" % (os.path.basename(orig_argv[0]) if orig_argv else "python")
    return os.path.basename(argv0) or "reactor"


def build_parser(prog: str = "reactor") -> ArgumentParser:
    defaults = Config(max_connections=1)
    parser = ArgumentParser(
        prog=prog,
        usage="%(prog)s [options] [DIRECTORY]\n       %(prog)s [options] --app MODULE:CALLABLE [--static PREFIX=DIR ...]",
        description="Serve a folder over HTTP/1.1 from one event loop; POST /upload stores JSON. "
        "With --app, run a WSGI application instead (PEP 3333).",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version="reactor %s" % __version__)
    parser.add_argument(
        "directory_arg",
        nargs="?",
        metavar="DIRECTORY",
        help="the folder to serve, as -d DIRECTORY (MODULE:CALLABLE that is no folder: the application, as --app)",
    )
    parser.add_argument(
        "--host",
        default=defaults.host,
        help="address to listen on; 0.0.0.0 (IPv4) or :: (IPv6 and IPv4) for every interface",
    )
    parser.add_argument("--port", type=_port, default=defaults.port, help="TCP port; 0 picks a free one")
    parser.add_argument(
        "-d",
        "--directory",
        default=None,
        metavar="DIRECTORY",
        help="folder to serve; uploads go to its uploads/ (default: ./%s if the current directory has one, "
        "else the current directory)" % DEFAULT_ROOT_NAME,
    )
    parser.add_argument(
        "--pool-size",
        type=_positive_int,
        default=defaults.pool_size,
        help="pool threads (per process) for disk reads and JSON writes",
    )
    parser.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="also accept this Host (repeatable); without a port, any port; '*' accepts any Host "
        "(no DNS rebinding protection). localhost:PORT, 127.0.0.1:PORT, --host:PORT and the IP address "
        "a connection arrived on (with PORT) are always accepted",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="'info' logs one access line per request; 'warning' silences them",
    )
    parser.add_argument(
        "--access-log",
        default=None,
        metavar="FILE",
        help="append access-log lines to FILE (reopened on SIGUSR1, for logrotate), "
        "or '-' for stdout (default: stderr)",
    )
    parser.add_argument(
        "--inline", action="store_true", help="show every file inline (no Content-Disposition: attachment)"
    )
    parser.add_argument("--dotfiles", action="store_true", help="serve names starting with '.' (default: 404)")
    parser.add_argument(
        "--list-directories",
        action="store_true",
        help="show an HTML listing of a directory without index.html (default: 404)",
    )
    parser.add_argument(
        "--max-age",
        type=_non_negative_int,
        default=None,
        metavar="SECONDS",
        help="send Cache-Control: max-age=SECONDS with files (default: none, so "
        "browsers revalidate with ETag / If-None-Match every time)",
    )
    parser.add_argument(
        "--cors",
        action="store_true",
        help="add Access-Control-Allow-Origin: * to every response and answer CORS preflights",
    )
    parser.add_argument(
        "--header",
        action="append",
        default=[],
        type=_header_field,
        metavar='"NAME: VALUE"',
        help="add this field to every response (repeatable)",
    )
    parser.add_argument(
        "--no-gzip",
        action="store_true",
        help="never gzip responses (by default text, JSON, JS, SVG and XML files from 1 KiB "
        "to %d MiB are gzipped for clients that accept it; a larger file is sent as it is "
        "unless a precompressed name.gz sits beside it)" % (compress.MAX_COMPRESS_BYTES // 2**20),
    )
    parser.add_argument(
        "--no-uploads", action="store_true", help="read-only: POST /upload is 405 and no uploads/ folder is made"
    )
    parser.add_argument(
        "--cache-bytes",
        type=_non_negative_int,
        default=defaults.cache_max_bytes,
        help="memory for the hot-file cache of small files (per worker process), answered "
        "without a disk access (re-checked every second); 0 turns it off",
    )
    parser.add_argument(
        "--gzip-cache-bytes",
        type=_non_negative_int,
        default=defaults.gzip_cache_max_bytes,
        help="memory for gzip forms made on the fly, shared by all requests for a file "
        "version; 0 keeps none (each is still made once for the requests waiting for it)",
    )

    limits = parser.add_argument_group("limits")
    limits.add_argument(
        "--max-request-line-bytes",
        type=_positive_int,
        default=defaults.max_request_line_bytes,
        help="longest request-line; longer is 414",
    )
    limits.add_argument(
        "--max-header-bytes",
        type=_positive_int,
        default=defaults.max_header_section_bytes,
        help="largest header section after the request-line; larger is 431",
    )
    limits.add_argument(
        "--max-field-lines",
        type=_positive_int,
        default=defaults.max_field_lines,
        help="most field lines in a header section; more is 431",
    )
    limits.add_argument(
        "--max-body-bytes",
        type=_positive_int,
        default=defaults.max_body_bytes,
        help="largest request message body; larger is 413",
    )
    limits.add_argument(
        "--max-uploads-bytes",
        type=_non_negative_int,
        default=defaults.max_uploads_bytes,
        help="room for everything in uploads/ (all worker processes together; files deleted by "
        "hand free their room within about 10 s); an upload past it is 507 and nothing is written; "
        "0 means no limit",
    )
    limits.add_argument(
        "--max-connections",
        type=_positive_int,
        default=default_max_connections(),
        help="open connections (per worker process) before new ones get 503 with "
        "Retry-After; the default is sized to the open-file limit (ulimit -n)",
    )
    limits.add_argument("--backlog", type=_positive_int, default=defaults.backlog, help="listen() backlog")
    limits.add_argument(
        "--pool-queue",
        type=_positive_int,
        default=defaults.pool_queue_max,
        help="pool jobs queued or running before requests get 503",
    )

    timeouts = parser.add_argument_group("timeouts and persistence (seconds)")
    timeouts.add_argument(
        "--keepalive-timeout",
        type=_seconds,
        default=defaults.keepalive_timeout_s,
        help="close a keep-alive connection idle this long",
    )
    timeouts.add_argument(
        "--keepalive-max",
        type=_positive_int,
        default=defaults.keepalive_max_requests,
        help="responses per connection; the last one carries Connection: close",
    )
    timeouts.add_argument(
        "--header-timeout",
        type=_seconds,
        default=defaults.header_timeout_s,
        help="time from a request's first byte to the end of its header section (408)",
    )
    timeouts.add_argument(
        "--body-timeout",
        type=_seconds,
        default=defaults.body_timeout_s,
        help="longest pause while reading a message body (408)",
    )
    timeouts.add_argument(
        "--min-body-rate",
        type=_non_negative_int,
        default=defaults.min_body_rate,
        metavar="BYTES_PER_S",
        help="after --body-rate-grace seconds, a message body must average this many "
        "bytes/s or get 408 (0 turns it off)",
    )
    timeouts.add_argument(
        "--body-rate-grace",
        type=_seconds,
        default=defaults.body_rate_grace_s,
        help="seconds a message body may take before --min-body-rate applies",
    )
    timeouts.add_argument(
        "--send-timeout",
        type=_seconds,
        default=defaults.send_timeout_s,
        help="longest pause of a client that is not reading its response",
    )
    timeouts.add_argument(
        "--shutdown-timeout",
        type=_seconds,
        default=defaults.shutdown_timeout_s,
        help="on SIGTERM/SIGINT, time for in-flight requests to finish; a second signal exits at once",
    )
    parser.add_argument(
        "--no-sendfile",
        action="store_true",
        help="send large files in blocks (from the page cache, else read on the pool) instead of os.sendfile",
    )

    tls = parser.add_argument_group("HTTPS (the listener speaks TLS only; SIGHUP reloads the files)")
    tls.add_argument(
        "--tls-cert", metavar="FILE", default=None, help="certificate chain (PEM), the server's certificate first"
    )
    tls.add_argument("--tls-key", metavar="FILE", default=None, help="private key (PEM) of the certificate")
    tls.add_argument(
        "--tls-key-password-file",
        metavar="FILE",
        default=None,
        help="file holding the passphrase of an encrypted --tls-key",
    )
    tls.add_argument(
        "--tls-handshake-timeout",
        type=_seconds,
        default=defaults.tls_handshake_timeout_s,
        help="seconds from accept to the end of the TLS handshake",
    )

    processes = parser.add_argument_group("processes (see docs/workers.md)")
    processes.add_argument(
        "-w",
        "--workers",
        type=_workers,
        default=1,
        metavar="N",
        help="worker processes sharing the listening socket under a supervisor that "
        "restarts, reloads (SIGHUP) and drains them; 'auto' is one per CPU; "
        "1 is a single process with no supervisor",
    )
    processes.add_argument(
        "--worker-timeout",
        type=_seconds,
        default=30.0,
        metavar="SECONDS",
        help="kill and replace a worker whose event loop has not run for this long "
        "(a heartbeat; only with --workers above 1)",
    )
    processes.add_argument(
        "--fd",
        type=_non_negative_int,
        default=None,
        metavar="N",
        help="serve on the listening socket inherited as file descriptor N instead "
        "of opening one (--host and --port are then ignored); systemd's LISTEN_FDS "
        "socket activation is used without it",
    )

    ws = parser.add_argument_group("WebSocket (RFC 6455; see docs/websocket.md)")
    ws.add_argument(
        "--websocket",
        action="append",
        default=[],
        type=_websocket_endpoint,
        metavar="PATH=MODULE:FACTORY",
        help="serve WebSocket connections at PATH, each with a handler made by MODULE:FACTORY() "
        "(repeatable); reactor.websocket:Echo echoes every message",
    )
    ws.add_argument(
        "--websocket-origin",
        action="append",
        default=[],
        type=_origin,
        metavar="ORIGIN",
        help="also let pages from ORIGIN (scheme://host[:port]) open WebSockets here (repeatable); "
        "a browser's handshake from any other origin than the server's own is 403",
    )
    ws.add_argument(
        "--websocket-max-message-bytes",
        type=_positive_int,
        default=defaults.websocket_max_message_bytes,
        help="largest message, its fragments together; larger closes the connection with 1009",
    )
    ws.add_argument(
        "--websocket-ping-interval",
        type=_seconds,
        default=defaults.websocket_ping_interval_s,
        metavar="SECONDS",
        help="ping a client that has sent nothing for this long",
    )
    ws.add_argument(
        "--websocket-ping-timeout",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="close with 1011 a client still silent this long after a ping (default: the ping interval)",
    )

    hosting = parser.add_argument_group("a WSGI application (PEP 3333; see the README's 'Run an application')")
    hosting.add_argument(
        "--app",
        type=_app_spec,
        default=None,
        metavar="MODULE:CALLABLE",
        help="run this WSGI application: every path outside the --static prefixes (and --status-path) "
        "goes to it, on a pool of --threads threads; no folder is served",
    )
    hosting.add_argument(
        "--factory", action="store_true", help="CALLABLE() makes the application (called once per process)"
    )
    hosting.add_argument(
        "--app-dir",
        default=None,
        metavar="DIR",
        help="put DIR first on sys.path to import the application (default: the current directory)",
    )
    hosting.add_argument(
        "--threads",
        type=_non_negative_int,
        default=defaults.app_threads,
        metavar="N",
        help="application threads per process; 0 calls the application on the event loop's own "
        "thread (only for an application that never blocks)",
    )
    hosting.add_argument(
        "--app-queue",
        type=_positive_int,
        default=defaults.app_queue_max,
        metavar="N",
        help="requests waiting for or running on the application threads before others get 503 with Retry-After",
    )
    hosting.add_argument(
        "--root-path",
        type=_root_path,
        default=None,
        metavar="/PREFIX",
        help="the URL prefix the application lives under: it becomes SCRIPT_NAME, and paths outside it are 404",
    )
    hosting.add_argument(
        "--static",
        type=_static_mount,
        action="append",
        default=[],
        metavar="PREFIX=DIR",
        help="serve the files of DIR at URL PREFIX (repeatable), before the application, inline, with "
        "ranges, validators and gzip; a missing file there is 404",
    )
    hosting.add_argument(
        "--forwarded-allow-ips",
        type=_forwarded_ips,
        default=None,
        metavar="IPS",
        help="proxies (addresses or CIDR ranges, comma-separated, or '*') whose X-Forwarded-For and "
        "X-Forwarded-Proto set REMOTE_ADDR and wsgi.url_scheme; from other peers both are removed",
    )
    hosting.add_argument(
        "--max-requests",
        type=_non_negative_int,
        default=0,
        metavar="N",
        help="replace a worker process after about N requests, with no failed request (0: never); "
        "runs a supervisor even with --workers 1",
    )
    hosting.add_argument(
        "--max-requests-jitter",
        type=_non_negative_int,
        default=0,
        metavar="J",
        help="add up to J more to --max-requests, at random per worker, so workers are not replaced together",
    )
    hosting.add_argument(
        "--switch-interval",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="how long a Python thread may keep the GIL while another waits (sys.setswitchinterval; "
        "Python's default is 0.005). CPU-bound application threads delay the event loop by up to this "
        "much each time it needs the GIL: 0.0005 keeps --static answers within a few ms beside them, "
        "at some cost to the application's own throughput",
    )
    hosting.add_argument(
        "--preload",
        action="store_true",
        help="with workers, import the application once in the supervisor, before forking "
        "(otherwise each worker imports it)",
    )

    live = parser.add_argument_group("live reload (for development)")
    live.add_argument(
        "--live-reload",
        action="store_true",
        help="reload pages in the browser when a file under the folder changes: HTML pages get a "
        "script that listens on a WebSocket at /__reactor__/livereload, and Cache-Control: no-store",
    )
    live.add_argument(
        "--watch",
        choices=["auto", "inotify", "poll"],
        default=defaults.watch,
        help="how --live-reload sees changes: inotify (Linux), or by listing the folder every "
        "--watch-interval seconds (for containers and network mounts); auto tries inotify first",
    )
    live.add_argument(
        "--watch-interval",
        type=_seconds,
        default=defaults.watch_interval_s,
        metavar="SECONDS",
        help="time between two listings of the folder when polling",
    )
    live.add_argument(
        "--live-reload-ignore",
        action="append",
        default=[],
        metavar="GLOB",
        help="changes to paths matching GLOB (relative to the folder, or a name alone; repeatable) "
        "reload nothing; dotfiles, editors' temporary files and uploads/ are always ignored",
    )

    study = parser.add_argument_group("for study (see docs/)")
    study.add_argument(
        "--trace",
        action="store_true",
        help="write one line per selector event, state transition, parser event, "
        "pool hand-off and timer to stderr (slow; off costs nothing)",
    )
    study.add_argument(
        "--status-path",
        type=_status_path,
        default=None,
        metavar="PATH",
        help="answer PATH (e.g. /_status) with counters and connections by state, "
        "as JSON or an HTML page; loopback clients only",
    )

    parser.epilog = (
        "Every option can also be set with an environment variable named REACTOR_ and the option's "
        "name in capitals with '-' as '_' (REACTOR_PORT=8000, REACTOR_CORS=1, REACTOR_HEADER); "
        "the command line wins. Switches take 1/true/yes/on or 0/false/no/off; repeatable options "
        "take one value per line (REACTOR_ALLOW_HOST also takes commas), and flags add to them."
    )
    return parser


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


def environment_name(action: argparse.Action) -> Optional[str]:
    """``--max-age`` → ``REACTOR_MAX_AGE``; None for --help and --version."""
    if isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
        return None
    longs = [option for option in action.option_strings if option.startswith("--")]
    if not longs:
        return None
    return "REACTOR_" + longs[0][2:].upper().replace("-", "_")


def apply_environment(parser: argparse.ArgumentParser, environ: Mapping[str, str]) -> None:
    """Use ``REACTOR_<NAME>`` variables as the defaults of the matching options.

    The command line still wins (it overrides defaults). A bad value exits through
    ``parser.error`` naming the variable, as a bad flag would.
    """
    defaults = {}
    for action in parser._actions:  # argparse has no public iterator over its options
        name = environment_name(action)
        if name is None:
            continue
        if action.help is not None and action.help is not argparse.SUPPRESS:
            action.help += " [env %s]" % name
        if name not in environ:
            continue
        text = environ[name]
        try:
            defaults[action.dest] = _convert(action, text)
        except (argparse.ArgumentTypeError, ValueError) as exc:
            parser.error("%s: %s" % (name, exc))
    if defaults:
        parser.set_defaults(**defaults)


def _convert(action: argparse.Action, text: str) -> object:
    if action.nargs == 0:  # a switch (store_true)
        word = text.strip().lower()
        if word in _TRUE or word in _FALSE:
            return word in _TRUE
        raise ValueError("%r is not 1/true/yes/on or 0/false/no/off" % text)
    convert = action.type if callable(action.type) else str
    if isinstance(action, argparse._AppendAction):
        pieces = re.split(r"[\s,]+" if action.dest == "allow_host" else r"\n", text)
        return [convert(piece) for piece in pieces if piece.strip()]
    value = convert(text)
    if action.choices is not None and value not in action.choices:
        raise ValueError("%r is not one of %s" % (text, ", ".join(map(str, action.choices))))
    return value


def check_websocket_endpoints(parser: argparse.ArgumentParser, endpoints: "List[tuple[str, str]]") -> None:
    """Import each ``--websocket`` factory now, so a typo is one line and exit status 2, not a failure per worker.

    The current directory is searched first, as ``python -m`` does, also for the installed ``reactor`` script.
    """
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    paths = [path for path, _spec in endpoints]
    for path in paths:
        if paths.count(path) > 1:
            parser.error("--websocket: %s is given twice" % path)
    for path, spec in endpoints:
        try:
            websocket.load_factory(spec)
        except ValueError as exc:
            parser.error("--websocket: %s: %s" % (path, exc))


def config_from_args(args: argparse.Namespace) -> Config:
    kwargs = dict(
        host=args.host,
        port=args.port,
        root=args.directory if args.directory is not None else default_root(),
        pool_size=args.pool_size,
        pool_queue_max=args.pool_queue,
        allowed_hosts=tuple(args.allow_host),
        attachments=not args.inline,
        dotfiles=args.dotfiles,
        list_directories=args.list_directories,
        max_age_s=args.max_age,
        cors=args.cors,
        extra_headers=tuple(args.header),
        gzip=not args.no_gzip,
        cache_max_bytes=args.cache_bytes,
        uploads=not args.no_uploads,
        max_uploads_bytes=args.max_uploads_bytes,
        gzip_cache_max_bytes=args.gzip_cache_bytes,
        max_request_line_bytes=args.max_request_line_bytes,
        max_header_section_bytes=args.max_header_bytes,
        max_field_lines=args.max_field_lines,
        max_body_bytes=args.max_body_bytes,
        keepalive_timeout_s=args.keepalive_timeout,
        keepalive_max_requests=args.keepalive_max,
        header_timeout_s=args.header_timeout,
        body_timeout_s=args.body_timeout,
        min_body_rate=args.min_body_rate,
        body_rate_grace_s=args.body_rate_grace,
        tls_cert_file=args.tls_cert,
        tls_key_file=args.tls_key,
        tls_key_password_file=args.tls_key_password_file,
        tls_handshake_timeout_s=args.tls_handshake_timeout,
        send_timeout_s=args.send_timeout,
        backlog=args.backlog,
        shutdown_timeout_s=args.shutdown_timeout,
        sendfile=not args.no_sendfile and hasattr(os, "sendfile"),
        trace=args.trace,
        status_path=args.status_path,
        websocket_endpoints=tuple(args.websocket),
        websocket_origins=tuple(args.websocket_origin),
        websocket_max_message_bytes=args.websocket_max_message_bytes,
        websocket_ping_interval_s=args.websocket_ping_interval,
        websocket_ping_timeout_s=args.websocket_ping_timeout,
        app=args.app,
        app_factory=args.factory,
        app_dir=Path(args.app_dir) if args.app_dir is not None else None,
        app_threads=args.threads,
        app_queue_max=args.app_queue,
        root_path=args.root_path or "",
        static_mounts=tuple(args.static),
        forwarded_allow_ips=args.forwarded_allow_ips or (),
        workers=args.workers,
        max_requests=args.max_requests,
        max_requests_jitter=args.max_requests_jitter,
        switch_interval_s=args.switch_interval,
        live_reload=args.live_reload,
        watch=args.watch,
        watch_interval_s=args.watch_interval,
        live_reload_ignore=tuple(args.live_reload_ignore) + _inside_root(args.access_log, args.directory),
    )
    return Config(max_connections=args.max_connections, **kwargs)


def _inside_root(access_log: Optional[str], directory: Optional[str]) -> "tuple[str, ...]":
    """The access log's path relative to the folder served, if it is inside it (else ``()``).

    Live reload must not watch it: every reload would write a line, and the line reload again.
    """
    if access_log is None or access_log == "-":
        return ()
    root = os.path.realpath(directory if directory is not None else default_root())
    path = os.path.realpath(access_log)
    if not path.startswith(root.rstrip(os.sep) + os.sep):
        return ()
    return (os.path.relpath(path, root).replace(os.sep, "/"),)


def startup_message(
    config: Config, address: "tuple[str, int]", workers: int = 1, watching: Optional[str] = None
) -> str:
    """The lines printed once listening: version, folder, URL(s), worker processes and pool threads.

    A wildcard bind (``0.0.0.0``, ``::``) lists a URL for each address of this machine,
    since ``http://0.0.0.0:PORT/`` is no address to open, and says which Host values pass.
    ``watching`` says how live reload watches (:meth:`reactor.watch.Watcher.describe`) when it is on.
    """
    host, port = address[:2]
    scheme = "https" if config.tls else "http"
    what, threads, kind = str(config.root), config.pool_size, "pool threads"
    if config.app is not None:
        what, threads, kind = config.app, config.app_threads, "application threads"
        if not threads:
            kind = "application threads: it runs on the event loop"
    if workers > 1:
        first = "reactor %%s serving %%s at %%s (%d workers, %%d %s each; Ctrl-C to stop)" % (workers, kind)
    else:
        first = "reactor %%s serving %%s at %%s (%%d %s; Ctrl-C to stop)" % kind
    urls = [_url(scheme, host, port)]
    others: List[str] = []
    if host in ("0.0.0.0", "::"):
        ips = local_addresses(ipv6=host == "::")
        urls = [_url(scheme, ip, port) for ip in ips]
        others = ["  also at %s" % url for url in urls[1:]]
        if "*" not in config.allowed_hosts:
            others.append(
                "  (any of this machine's addresses works; host names other than localhost need --allow-host NAME)"
            )
    mounts = ["  %s/ from %s" % (prefix, os.path.abspath(folder)) for prefix, folder in config.static_mounts]
    for path, spec in config.websocket_endpoints:
        others.append(
            "  WebSocket %s at %s%s" % (spec, "wss" if config.tls else "ws", urls[0][len(scheme) : -1] + path)
        )
    if config.live_reload:
        others.append("  live reload on: pages reload when files change (%s)" % (watching or "watching"))
    return "\n".join([first % (__version__, what, urls[0], threads), *mounts, *others])


def _url(scheme: str, ip: str, port: int) -> str:
    return "%s://%s:%d/" % (scheme, "[%s]" % ip if ":" in ip else ip, port)


_SIOCGIFADDR = 0x8915  # Linux ioctl: the IPv4 address of an interface


def _interface_addresses(ipv6: bool) -> List[str]:
    """Every interface's addresses, where the system tells them (Linux); else none."""
    found: List[str] = []
    try:
        import fcntl
        import struct

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            for _index, name in socket.if_nameindex():
                try:
                    packed = fcntl.ioctl(probe.fileno(), _SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
                except OSError:
                    continue  # no IPv4 address on this interface
                found.append(socket.inet_ntoa(packed[20:24]))
    except (ImportError, OSError, AttributeError):
        pass
    if ipv6:
        try:
            with open("/proc/net/if_inet6", encoding="ascii") as table:
                for line in table:
                    hexits = line.split()[0]
                    found.append(str(ipaddress.IPv6Address(int(hexits, 16))))
        except (OSError, ValueError, IndexError):
            pass
    return found


def local_addresses(ipv6: bool) -> List[str]:
    """This machine's IP addresses for a wildcard bind, loopback first; best effort.

    Standard library only: each interface's addresses where Linux tells them
    (``SIOCGIFADDR``, ``/proc/net/if_inet6``), the addresses the host name resolves to,
    and the one a UDP socket would send from (connect() on UDP sends nothing).
    Link-local IPv6 addresses are left out: a URL needs their zone.
    """
    found = ["127.0.0.1"] + (["::1"] if ipv6 else [])
    families = [socket.AF_INET] + ([socket.AF_INET6] if ipv6 else [])
    candidates = _interface_addresses(ipv6)
    for family in families:
        try:
            infos = socket.getaddrinfo(socket.gethostname(), None, family, socket.SOCK_STREAM)
            candidates.extend(str(info[4][0]) for info in infos)
        except OSError:
            pass
        probe = ("192.0.2.1", 9) if family == socket.AF_INET else ("2001:db8::1", 9)  # documentation prefixes
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as udp:
                udp.connect(probe)
                candidates.append(str(udp.getsockname()[0]))
        except OSError:
            pass  # no route: no address of that family worth showing
    for candidate in candidates:
        try:
            ip = ipaddress.ip_address(candidate.split("%", 1)[0])
        except ValueError:
            continue
        if ip.is_loopback or ip.is_link_local or ip.is_unspecified or str(ip) in found:
            continue
        found.append(str(ip))
    return found


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("reactor")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


#: The first descriptor systemd passes (sd_listen_fds(3): SD_LISTEN_FDS_START).
SD_LISTEN_FDS_START = 3


def inherited_listener(fd: Optional[int], environ: "os._Environ[str]") -> Optional[socket.socket]:
    """The listening socket handed down: ``--fd N``, or systemd's ``LISTEN_FDS`` for this PID.

    Returns None when there is none. Raises ValueError when the descriptor is not a
    listening stream socket. The ``LISTEN_*`` variables are removed once used, as
    sd_listen_fds(3) does, so that a child does not take the socket for its own.
    """
    if fd is None and environ.get("LISTEN_PID") == str(os.getpid()) and environ.get("LISTEN_FDS", "0") != "0":
        fd = SD_LISTEN_FDS_START
        for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
            environ.pop(name, None)
    if fd is None:
        return None
    try:
        if not stat.S_ISSOCK(os.fstat(fd).st_mode):
            raise ValueError("file descriptor %d is not a socket" % fd)
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise ValueError("file descriptor %d: %s" % (fd, (exc.strerror or str(exc)).lower())) from None
    if sock.type != socket.SOCK_STREAM or not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        sock.detach()
        raise ValueError("file descriptor %d is not a listening TCP socket" % fd)
    return sock


def install_signal_handlers(server: Server) -> None:
    """First SIGTERM/SIGINT: graceful stop. Second: exit at once with status 128 + signal.

    Exiting at once is safe for uploads: one being written leaves only a temp file,
    removed at the next start. The handler itself only queues work on the loop (and
    writes to fd 2 directly on the way out), so it never re-enters logging or the loop.
    """
    received: List[int] = []

    def graceful_stop(name: str) -> None:
        log.info("%s received; finishing in-flight requests (send it again to stop at once)", name)
        server.shutdown(graceful=True)

    def on_signal(signum: int, _frame: object) -> None:
        received.append(signum)
        name = signal.Signals(signum).name
        if len(received) == 1:
            server.loop.call_soon_threadsafe(graceful_stop, name)
            return
        os.write(2, ("reactor: second %s; exiting now\n" % name).encode())
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if server.config.tls:
        # SIGHUP reloads the certificate and key: new handshakes use them, open connections go on.
        signal.signal(signal.SIGHUP, lambda _signum, _frame: server.loop.call_soon_threadsafe(server.reload_tls))
    # logrotate renames the file, then signals: the writer thread reopens it by name.
    signal.signal(signal.SIGUSR1, lambda _signum, _frame: logmod.access_log.reopen())


def _tls_problem(exc: BaseException) -> str:
    """One line for a certificate or key that cannot be loaded."""
    if isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError):
        return "%s: %s" % (exc.filename, (exc.strerror or str(exc)).lower())
    text = str(exc)
    if "KEY_VALUES_MISMATCH" in text:
        return "the key does not match the certificate"
    if "PEM lib" in text or "NO_START_LINE" in text:
        return "not a PEM certificate and key (or a wrong passphrase)"
    return text.splitlines()[0] if text else type(exc).__name__


def load_app(config: Config) -> WSGIApp:
    """The application ``config.app`` names (raises AppLoadError: one line to show)."""
    assert config.app is not None
    return load_application(config.app, config.app_factory, config.app_dir)


def app_load_failure(prog: str, exc: AppLoadError) -> int:
    """Say why the application cannot be loaded, in one line (a traceback too at --log-level debug); exit status 1."""
    if log.isEnabledFor(logging.DEBUG) and exc.__cause__ is not None:
        log.debug("loading the application failed", exc_info=exc.__cause__)
    print("%s: cannot load the application %s" % (prog, exc), file=sys.stderr)
    return 1


def retire_after(config: Config, server: Server, handle: WorkerHandle) -> None:
    """``--max-requests``: once this worker has answered its share, ask the supervisor for a replacement (once)."""
    limit = config.max_requests + random.randint(0, config.max_requests_jitter)
    stats = server.stats

    def check() -> None:
        if stats.requests >= limit:
            server.loop.remove_pass_callback(check)
            log.info("worker %d: %d requests served (--max-requests); asking to be replaced", handle.number, limit)
            handle.retire()

    server.loop.add_pass_callback(check)


def run_worker(config: Config, handle: WorkerHandle, wsgi_app: Optional[WSGIApp] = None) -> int:
    """A worker process's main (see :mod:`reactor.supervisor`): today's server on the shared listener.

    With ``--app``, the application is ``wsgi_app`` (``--preload``: imported before the
    fork), else imported here; one that cannot be is a FatalBootError: the supervisor
    stops rather than fork again. Raises whatever stops it from starting (the supervisor
    reports it as a boot failure). A loop timer beats the heartbeat and notices a
    supervisor that is gone.
    """
    if config.app is not None and wsgi_app is None:
        try:
            wsgi_app = load_app(config)
        except AppLoadError as exc:
            if log.isEnabledFor(logging.DEBUG) and exc.__cause__ is not None:
                log.debug("loading the application failed", exc_info=exc.__cause__)
            raise FatalBootError("cannot load the application %s" % exc) from None
    # connection-aware accepting; live reload follows the supervisor's watcher
    server = Server(config, accept_gate=handle.accept_gate(), wsgi_app=wsgi_app, live_source=handle.feed)
    server.listen(handle.listener)
    if config.max_requests:
        retire_after(config, server, handle)
    server.loop.add_pass_callback(logmod.access_log.flush)  # one batch of access-log lines per loop pass
    signal.signal(signal.SIGUSR1, lambda _signum, _frame: logmod.access_log.reopen())

    def graceful_stop() -> None:
        if not server.stopping:
            log.info("worker %d: SIGTERM received; finishing in-flight requests", handle.number)
            server.shutdown(graceful=True)

    # Every SIGTERM means "drain": systemd (KillMode=control-group) or `kill -- -PGID` may send
    # one beside the supervisor's; stopping at once is the supervisor's job (SIGKILL).
    # SIGINT is ignored (set before the fork): Ctrl-C reaches the whole process group.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: server.loop.call_soon_threadsafe(graceful_stop))

    def beat() -> None:
        stats = server.stats
        if not handle.beat(stats.requests, stats.accepted, len(server.sessions)) and not server.stopping:
            log.warning("worker %d: the supervisor is gone; stopping", handle.number)
            server.shutdown(graceful=True)
        server.loop.call_later(handle.beat_interval_s, beat)

    beat()
    handle.ready()
    server.serve_forever()
    logmod.access_log.close(config.shutdown_timeout_s)
    if not server.workers_finished:
        logging.shutdown()
        os._exit(0)  # see main(): a pool thread stuck on the disk must not hold the exit
    return 0


def serve_workers(
    config: Config,
    workers: int,
    worker_timeout_s: float,
    listener: socket.socket,
    wsgi_app: Optional[WSGIApp] = None,
    watcher: Optional[Watcher] = None,
) -> int:
    """``--workers N`` (N > 1, or any N with ``--max-requests``): the supervisor over N copies of :func:`run_worker`.

    Returns its exit status. ``wsgi_app``: the application imported before the fork (``--preload``).
    ``watcher`` (``--live-reload``) runs in the supervisor, which tells every worker.
    """
    address = listener.getsockname()
    config = dataclasses.replace(config, host=address[0], port=address[1])

    def announce() -> None:
        watching = watcher.describe() if watcher is not None else None
        print(startup_message(config, address, supervisor.target, watching), file=sys.stderr, flush=True)

    supervisor = Supervisor(
        listener,
        lambda handle: run_worker(config, handle, wsgi_app),
        workers,
        worker_timeout_s=worker_timeout_s,
        shutdown_timeout_s=config.shutdown_timeout_s,
        on_running=announce,
        watcher=watcher,
    )
    status = supervisor.run()
    listener.close()
    if watcher is not None:
        watcher.close()
    log.info("stopped")
    return status


def check_app_flags(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse flags that make no sense together, with one line (exit status 2): --app against a folder to serve."""
    if args.max_requests_jitter and not args.max_requests:
        parser.error("--max-requests-jitter: only with --max-requests")
    if args.app is not None:
        given = args.directory if args.directory is not None else args.directory_arg
        if given is not None:
            parser.error(
                "--directory: with --app the application answers every path; serve a folder beside it "
                "with --static PREFIX=DIR (e.g. --static /static=%s)" % given
            )
        if args.live_reload:
            parser.error("--live-reload: only when serving a folder, not with --app")
        return
    for flag, value in (
        ("--static", args.static),
        ("--root-path", args.root_path),
        ("--factory", args.factory),
        ("--app-dir", args.app_dir),
        ("--preload", args.preload),
        ("--forwarded-allow-ips", args.forwarded_allow_ips),
    ):
        if value:
            parser.error("%s: only with --app MODULE:CALLABLE" % flag)


def main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> int:
    """Run the server; return the process exit status (0 after a clean stop, 1 on error).

    Bad command-line input exits with status 2 and one line naming the flag.
    """
    parser = build_parser(prog or program_name())
    apply_environment(parser, os.environ)
    args = parser.parse_args(argv)
    if (
        args.directory_arg is not None
        and _APP_SPEC.fullmatch(args.directory_arg)
        and not os.path.exists(args.directory_arg)
    ):
        if args.app is not None and args.app != args.directory_arg:
            parser.error("--app: given twice (%r and %r); use one" % (args.app, args.directory_arg))
        args.app, args.directory_arg = args.directory_arg, None  # `reactor hello:app`, as gunicorn and uvicorn
    check_app_flags(parser, args)
    if args.directory_arg is not None:
        if args.directory is not None and args.directory != args.directory_arg:
            parser.error("--directory: given twice (%r and %r); use one" % (args.directory, args.directory_arg))
        args.directory = args.directory_arg
    if args.directory is not None:
        if not os.path.exists(args.directory):
            parser.error("--directory: %r does not exist" % args.directory)
        if not os.path.isdir(args.directory):
            parser.error("--directory: %r is not a directory" % args.directory)
    if args.max_age is not None and any(name.lower() == "cache-control" for name, _value in args.header):
        parser.error("--max-age and --header 'Cache-Control: ...' both set Cache-Control; use one")
    if args.live_reload and any(name.lower() == "cache-control" for name, _value in args.header):
        parser.error(
            "--live-reload sets Cache-Control: no-store on pages; --header 'Cache-Control: ...' would add a second"
        )
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error("--tls-cert and --tls-key go together")
    if args.tls_key_password_file is not None and args.tls_cert is None:
        parser.error("--tls-key-password-file needs --tls-cert and --tls-key")
    if args.websocket:
        check_websocket_endpoints(parser, args.websocket)
    try:
        inherited = inherited_listener(args.fd, os.environ)
    except ValueError as exc:
        parser.error("--fd: %s" % exc if args.fd is not None else "LISTEN_FDS: %s" % exc)
    setup_logging(args.log_level)
    if logmod.access_logger.isEnabledFor(logging.INFO):
        try:
            logmod.access_log.open(args.access_log, synchronous=args.trace)  # --trace: in order with its lines
        except OSError as exc:
            parser.error("cannot open access log %r: %s" % (args.access_log, (exc.strerror or str(exc)).lower()))
    config = config_from_args(args)
    if config.switch_interval_s is not None:
        sys.setswitchinterval(config.switch_interval_s)  # inherited by forked workers
    if inherited is not None:
        host, port = inherited.getsockname()[:2]
        config = dataclasses.replace(config, host=host, port=port)
    watcher = None
    if config.live_reload:  # before forking or serving: the first walk of the folder, once
        try:
            watcher = make_watcher(config)
        except OSError as exc:
            print(
                "%s: --watch %s: %s" % (parser.prog, config.watch, (exc.strerror or str(exc)).lower()), file=sys.stderr
            )
            return 1
    if "*" in config.allowed_hosts:
        log.warning(
            "--allow-host '*': any Host is accepted, so a web page on another site can reach this "
            "server through DNS rebinding"
        )
    supervised = args.workers > 1 or args.max_requests > 0
    server = Server(config, live_source=None if supervised else watcher)  # supervised: the supervisor's
    if config.tls:  # before binding or forking: a bad pair is one line and exit status 1
        try:
            server.load_tls()
        except (OSError, ValueError) as exc:
            print("%s: cannot use the TLS certificate and key: %s" % (parser.prog, _tls_problem(exc)), file=sys.stderr)
            server.close()
            if watcher is not None:
                watcher.close()
            return 1
    if config.app is not None and (args.preload or not supervised):  # before binding: one line and exit status 1
        try:
            server.wsgi_app = load_app(config)
        except AppLoadError as exc:
            server.close()
            return app_load_failure(parser.prog, exc)
    if supervised:
        server.close()  # each worker makes its own, and loads the certificate afresh
        try:
            listener = inherited if inherited is not None else open_listener(config.host, config.port, config.backlog)
        except OSError as exc:
            print(
                "reactor: cannot listen on %s:%d: %s" % (config.host, config.port, (exc.strerror or str(exc)).lower()),
                file=sys.stderr,
            )
            if watcher is not None:
                watcher.close()
            return 1
        return serve_workers(config, args.workers, args.worker_timeout, listener, server.wsgi_app, watcher)
    try:
        server.listen(inherited)
    except OSError as exc:
        print(
            "%s: cannot listen on %s:%d: %s"
            % (parser.prog, config.host, config.port, (exc.strerror or str(exc)).lower()),
            file=sys.stderr,
        )
        server.close()
        if watcher is not None:
            watcher.close()
        return 1
    install_signal_handlers(server)
    server.loop.add_pass_callback(logmod.access_log.flush)  # one batch of lines per loop pass
    watching = watcher.describe() if watcher is not None else None
    print(startup_message(config, server.address, watching=watching), file=sys.stderr, flush=True)
    server.serve_forever()
    logmod.access_log.close(config.shutdown_timeout_s)  # every line of a graceful stop is written
    log.info("stopped")
    if not server.workers_finished:
        # A worker stuck on the disk would hold the interpreter's exit (it joins them);
        # the stop was promised within --shutdown-timeout, so leave without it.
        logging.shutdown()
        sys.stderr.flush()
        os._exit(0)
    return 0

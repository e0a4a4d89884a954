"""Logger names, the buffered access log, and its two formats (text and JSON).

Loggers: ``reactor`` (startup, warnings, tracebacks) and children per module, among them
``reactor.access``: its level turns the access log on (INFO or below, so ``--log-level
warning`` silences it), and it carries the access log's own warnings.

Two formats (``--log-format``)
------------------------------
``text`` (the default) is the Combined Log Format of Apache and nginx, then the duration
in milliseconds and the request id, so tools that read Combined still parse the line::

    127.0.0.1 - - [21/Nov/2026:13:37:00 +0000] "GET / HTTP/1.1" 200 1024 "-" "curl/8.0" 0.412 k7f3q9x2-15-3

Control characters, quotes, backslashes and non-ASCII are escaped as ``\\xHH`` (the
byte's value) so a client cannot forge or break a line.

``json`` makes every access-log line one JSON object (:func:`json_access_lines`), and
the server's own messages the same shape (:class:`JSONFormatter`): ``time`` (RFC 3339,
UTC, milliseconds), ``level``, ``logger``, then the line's own keys. Every string is
escaped as JSON with only ASCII left (``\\u00XX`` for control characters, ``\\uXXXX``
beyond ASCII), like nginx's ``escape=json`` and Caddy's encoder, so a client can
neither end a line nor close a string early. Field values arrive as bytes (decoded
ISO-8859-1 by the parser): valid UTF-8 is written as the characters it encodes, and a
byte that is not part of valid UTF-8 as the four characters ``\\xHH``.

The buffered access log
-----------------------
A ``logging`` call and a ``write(2)`` per response cost more than serving a small file.
So, like nginx's ``access_log ... buffer=``, :class:`AccessLog` buffers:

- Per response, the loop thread appends one record (a plain tuple of what the line
  needs, in :class:`AccessRecord`'s order) to a list: no formatting, no system call,
  no lock.
- At the end of every loop pass (:meth:`reactor.loop.EventLoop.add_pass_callback`), or
  as soon as ``_BATCH_LINES`` records are waiting, :meth:`AccessLog.flush` formats them
  all in one go (:func:`access_lines` or :func:`json_access_lines`: the timestamp
  string is made once per second, and one check over the whole batch shows that no
  field needs more than the fast path does), joins them into one batch of bytes and
  hands it to a writer thread through a ``queue.SimpleQueue``. Formatting a batch in one
  tight loop costs less than a line at a time between requests. A pass that logged
  nothing costs one length check, and an idle loop has nothing left unwritten.
- Only the writer thread calls ``write(2)``. A terminal, a pipe to a slow reader or a
  slow disk can block it, never the loop. The descriptor stays blocking: setting
  ``O_NONBLOCK`` on stderr would change the open file description that the terminal
  shares with the shell and every other process writing to it.
- The queue is bounded: when ``_QUEUE_MAX_BYTES`` already wait for the writer, a new
  batch is dropped and its lines counted in :attr:`AccessLog.dropped_lines`. Serving
  goes on at full speed. Each such episode (until the writer has caught up) is warned
  about once, at its start on stderr, or, when the access log *is* stderr (a warning
  there would block the loop too), by the writer as soon as its writes go through
  again; either way a last warning gives the number of lines lost.
- Each ``write(2)`` holds whole lines only, and on a pipe or a socket at most
  ``PIPE_BUF`` bytes, which POSIX makes atomic: processes sharing one stderr never
  interleave mid-line. (A single line longer than that gets a write of its own.)
- :meth:`AccessLog.close` at a graceful stop hands over the last lines and waits
  (bounded) until the writer has written them: no line is lost there.
- :meth:`AccessLog.reopen` (on SIGUSR1, nginx's convention for logrotate) makes the
  writer reopen a log file by name between two batches: lines handed over before the
  signal land in the old (renamed) file, later ones in the new. ``SimpleQueue.put`` is
  reentrant, so a signal handler may call it.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import queue
import re
import select
import stat
import threading
import time
from json.encoder import encode_basestring_ascii
from typing import Callable, Deque, Iterable, List, NamedTuple, Optional, Sequence, Tuple, Union

from reactor.events import RequestHead

access_logger = logging.getLogger("reactor.access")

#: The values of ``--log-format``.
FORMATS = ("text", "json")

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_UNSAFE = re.compile(r'[\x00-\x1f\x7f-\U0010ffff"\\]')

#: Records waiting on the loop thread before a batch is handed over mid-pass (about 64 KiB).
_BATCH_LINES = 512
#: Bytes handed to the writer and not yet written, beyond which batches are dropped.
_QUEUE_MAX_BYTES = 1024 * 1024
#: Writes to a pipe or socket up to this size are atomic (POSIX: at least 512; Linux 4096).
_ATOMIC_BYTES = getattr(select, "PIPE_BUF", 512)
_FILE_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)


class AccessRecord(NamedTuple):
    """What the access log keeps of one response until its batch is formatted
    (:data:`Record`: the connection makes a plain tuple in this order, cheaper to build).

    - ``client``, ``client_port``: the peer's address and TCP port.
    - ``started``: when the request's header section was complete (``time.time()``);
      ``finished``: when the last byte of the response was handed to the kernel.
    - ``request_line``: as received, or None if none arrived; ``head``: the parsed
      request, or None when the request-line or header section could not be parsed.
    - ``status``; ``body_bytes``: bytes of the response's message body sent;
      ``request_body_bytes``: bytes of the request's message body received (decoded).
    - ``tls_version``: ``"TLSv1.3"`` and the like, None over plain TCP.
    - ``request_id``: the id sent back in ``X-Request-ID``.
    """

    client: str
    client_port: int
    started: float
    finished: float
    request_line: Optional[str]
    head: Optional[RequestHead]
    status: int
    body_bytes: int
    request_body_bytes: int
    tls_version: Optional[str]
    request_id: str


#: An :class:`AccessRecord` as the plain tuple :meth:`AccessLog.write` takes.
Record = Tuple[str, int, float, float, Optional[str], Optional[RequestHead], int, int, int, Optional[str], str]


def _escape_char(match: "re.Match[str]") -> str:
    char = match.group()
    if char == '"':
        return '\\"'
    if char == "\\":
        return "\\\\"
    code = ord(char)
    return "\\x%02x" % code if code < 0x100 else "\\u%04x" % code


def escape(text: Optional[str]) -> str:
    """Make client-supplied text safe inside a quoted log field; None becomes ``-``."""
    if text is None:
        return "-"
    # Printable ASCII without a quote or backslash (nearly every line) needs no regex.
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return text
    return _UNSAFE.sub(_escape_char, text)


def clf_time(timestamp: float) -> str:
    """``21/Nov/2026:13:37:00 +0000`` in local time, independent of the locale."""
    t = time.localtime(timestamp)
    offset = t.tm_gmtoff // 60
    sign = "+" if offset >= 0 else "-"
    return "%02d/%s/%04d:%02d:%02d:%02d %s%02d%02d" % (
        t.tm_mday,
        _MONTHS[t.tm_mon - 1],
        t.tm_year,
        t.tm_hour,
        t.tm_min,
        t.tm_sec,
        sign,
        abs(offset) // 60,
        abs(offset) % 60,
    )


def rfc3339_time(timestamp: float) -> str:
    """``2026-11-21T13:37:00.123Z``: UTC, milliseconds (RFC 3339 §5.6)."""
    second = int(timestamp // 1)
    return "%s.%03dZ" % (_utc_second(second), int((timestamp - second) * 1000))


def _utc_second(second: int) -> str:
    t = time.gmtime(second)
    return "%04d-%02d-%02dT%02d:%02d:%02d" % (t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec)


class _EverySecond:
    """The text of a whole second, made once per second by ``make(second)``: local time
    (and its UTC offset) can only change on a whole second, so one call serves every
    line in it."""

    __slots__ = ("_make", "_second", "_text")

    def __init__(self, make: Callable[[int], str]) -> None:
        self._make = make
        self._second = -1
        self._text = ""

    def text(self, second: int) -> str:
        if second != self._second:
            self._text = self._make(second)
            self._second = second
        return self._text


_clf_second = _EverySecond(clf_time).text
_utc_second_cached = _EverySecond(_utc_second).text

#: The Combined Log Format (client, timestamp, request-line, status, body bytes, Referer,
#: User-Agent), then the duration in milliseconds and the request id.
_LINE = '%s - - [%s] "%s" %d %s "%s" "%s" %.3f %s'


def _stamp(timestamp: float) -> str:
    """:func:`clf_time` of ``timestamp``, made once per second."""
    return _clf_second(int(timestamp))


def access_line(
    client: str,
    timestamp: float,
    request_line: Optional[str],
    status: int,
    body_bytes: int,
    referer: Optional[str],
    user_agent: Optional[str],
    duration_ms: float = 0.0,
    request_id: str = "-",
) -> str:
    """One line of the text format (no trailing newline)::

    127.0.0.1 - - [21/Nov/2026:13:37:00 +0000] "GET / HTTP/1.1" 200 1024 "-" "curl/8.0" 0.412 k7f3q9x2-15-3
    """
    return _LINE % (
        client,
        _stamp(timestamp),
        escape(request_line),
        status,
        body_bytes if body_bytes else "-",
        escape(referer),
        escape(user_agent),
        duration_ms,
        request_id,
    )


def request_fields(fields: Sequence[Tuple[str, str]]) -> Tuple[Optional[str], Optional[str], Optional[str]]:
    """The Host, Referer and User-Agent values in one pass over ``(name, value)`` field
    lines (names lower-case); repeated lines joined with ", " as ``RequestHead.get`` does."""
    host = referer = user_agent = None
    for name, value in fields:
        if name == "user-agent":
            user_agent = value if user_agent is None else user_agent + ", " + value
        elif name == "referer":
            referer = value if referer is None else referer + ", " + value
        elif name == "host":
            host = value if host is None else host + ", " + value
    return host, referer, user_agent


def _text_line(record: Record) -> str:
    """:func:`access_line` of a record, every field escaped."""
    client, _port, started, finished, request_line, head, status, body_bytes, _body, _tls, request_id = record
    _host, referer, user_agent = request_fields(head.fields) if head is not None else (None, None, None)
    return access_line(
        client,
        started,
        request_line,
        status,
        body_bytes,
        referer,
        user_agent,
        (finished - started) * 1000.0,
        request_id,
    )


def access_lines(records: Sequence[Record], worker: Optional[int] = None) -> List[str]:
    """The text-format lines of a batch of records, each exactly what :func:`access_line` makes of it.

    Nearly every field is printable ASCII without a quote or a backslash; one check over
    the whole batch shows that, and only a batch that fails it is formatted again with
    :func:`escape` on every client-supplied field. (``worker`` is not written in this
    format; it is here so that both formats are called alike.)
    """
    lines: List[str] = []
    append = lines.append
    clf_second = _clf_second
    for client, _port, started, finished, request_line, head, status, body_bytes, _body, _tls, request_id in records:
        if head is not None:
            _host, referer, user_agent = request_fields(head.fields)
        else:
            referer = user_agent = None
        append(
            _LINE
            % (
                client,
                clf_second(int(started)),
                "-" if request_line is None else request_line,
                status,
                body_bytes if body_bytes else "-",
                "-" if referer is None else referer,
                "-" if user_agent is None else user_agent,
                (finished - started) * 1000.0,
                request_id,
            )
        )
    text = "".join(lines)
    # Six quotes a line are the format's own; any other one came from a field.
    if text.isascii() and text.isprintable() and "\\" not in text and text.count('"') == 6 * len(lines):
        return lines
    return [_text_line(record) for record in records]


#: An access-log line in the JSON format, in three parts: the start, the request (its
#: method is a token and its protocol "1.0" or "1.1", safe as they are; the target goes
#: in encoded, quotes and all), and the rest. A ``%s`` after a key without a quote holds
#: a JSON value already encoded (a string with its quotes, or null); the two ``%s``
#: before ``request_id`` hold the keys a line has only sometimes (TLS, worker, the
#: request-line that could not be parsed).
_JSON_START = '{"time":"%s.%03dZ","level":"info","logger":"reactor.access","remote_addr":"%s","remote_port":%d,'
_JSON_REQUEST = '"method":"%s","target":%s,"protocol":"HTTP/%s",'
_JSON_NO_REQUEST = '"method":null,"target":null,"protocol":null,'
_JSON_REST = (
    '"status":%d,"response_body_bytes":%d,"request_body_bytes":%d,"duration_ms":%.3f,'
    '"host":%s,"referer":%s,"user_agent":%s%s%s,"request_id":"%s"}'
)
_JSON_LINE = _JSON_START + _JSON_REQUEST + _JSON_REST


def _utf8(text: str) -> str:
    """A field value decoded ISO-8859-1, as the UTF-8 text its bytes are (invalid bytes as ``\\xHH``)."""
    if text.isascii():
        return text
    return text.encode("latin-1", "backslashreplace").decode("utf-8", "backslashreplace")


def _json_string(text: Optional[str]) -> str:
    """``text`` (a value as the parser decoded it) as a JSON string of ASCII, its bytes read as UTF-8; None as null."""
    return "null" if text is None else encode_basestring_ascii(_utf8(text))


def _json_line(record: Record, worker_key: str) -> str:
    """One JSON access-log line, every client-supplied value read as UTF-8 (see :func:`json_access_lines`)."""
    client, port, started, finished, request_line, head, status, body_bytes, request_body_bytes, tls, rid = record
    second = int(started)
    extra = worker_key
    if head is not None:
        host, referer, user_agent = request_fields(head.fields)
        request = _JSON_REQUEST % (head.method, _json_string(head.target), head.http_version)
    else:
        host = referer = user_agent = None
        request = _JSON_NO_REQUEST
        if request_line is not None:  # what arrived of a request-line that could not be parsed
            extra = ',"request_line":%s%s' % (_json_string(request_line), worker_key)
    start = _JSON_START % (_utc_second_cached(second), int((started - second) * 1000), client, port)
    rest = _JSON_REST % (
        status,
        body_bytes,
        request_body_bytes,
        (finished - started) * 1000.0,
        _json_string(host),
        _json_string(referer),
        _json_string(user_agent),
        "" if tls is None else ',"tls_version":"' + tls + '"',
        extra,
        rid,
    )
    return start + request + rest


def json_access_lines(records: Sequence[Record], worker: Optional[int] = None) -> List[str]:
    """The JSON-format lines of a batch of records (one object a line, no newline inside).

    ``worker`` adds a ``worker`` key (``--workers``). Keys: ``time``, ``level``,
    ``logger``, ``remote_addr``, ``remote_port``, ``method``, ``target``, ``protocol``
    (null, with ``request_line`` added, when the request-line could not be parsed),
    ``status``, ``response_body_bytes``, ``request_body_bytes``, ``duration_ms``,
    ``host``, ``referer``, ``user_agent`` (null when absent), ``tls_version`` (TLS only),
    ``worker``, ``request_id``.

    Every client-supplied string goes through the JSON string encoder, which leaves
    only ASCII (``\\u00XX`` for a control character or a byte beyond ASCII). Nearly every
    value is ASCII already, and then the encoder's output is the line; a line in which
    it escaped something (``\\u``) is made again by :func:`_json_line`, each value's
    bytes read as UTF-8.
    """
    worker_key = "" if worker is None else ',"worker":%d' % worker
    lines: List[str] = []
    append = lines.append
    utc_second = _utc_second_cached
    encode = encode_basestring_ascii
    for record in records:
        client, port, started, finished, _line, head, status, body_bytes, request_body_bytes, tls, rid = record
        if head is None:
            append(_json_line(record, worker_key))
            continue
        host, referer, user_agent = request_fields(head.fields)
        second = int(started)
        line = _JSON_LINE % (
            utc_second(second),
            int((started - second) * 1000),
            client,
            port,
            head.method,
            encode(head.target),
            head.http_version,
            status,
            body_bytes,
            request_body_bytes,
            (finished - started) * 1000.0,
            "null" if host is None else encode(host),
            "null" if referer is None else encode(referer),
            "null" if user_agent is None else encode(user_agent),
            "" if tls is None else ',"tls_version":"' + tls + '"',
            worker_key,
            rid,
        )
        append(_json_line(record, worker_key) if "\\u" in line else line)
    return lines


def message_line(
    level: str,
    logger: str,
    message: str,
    timestamp: Optional[float] = None,
    worker: Optional[int] = None,
    traceback: Optional[str] = None,
) -> str:
    """One server message in the JSON format (no trailing newline).

    ``{"time": …, "level": "warning", "logger": "reactor.server", "message": …}``, then
    ``worker`` (``--workers``) and ``traceback`` (an error's, as one string) when given.
    """
    entry: "dict[str, object]" = {
        "time": rfc3339_time(time.time() if timestamp is None else timestamp),
        "level": level,
        "logger": logger,
        "message": message,
    }
    if worker is not None:
        entry["worker"] = worker
    if traceback:
        entry["traceback"] = traceback
    return json.dumps(entry, ensure_ascii=True, separators=(",", ":"))


class JSONFormatter(logging.Formatter):
    """Log records as :func:`message_line` makes them: one JSON object a line.

    The level is lower-case (``info``, ``warning``, ``error``); an exception's traceback
    (``exc_info``, ``stack_info``) goes in ``traceback`` rather than on lines of its own.
    The worker number is :attr:`AccessLog.worker` of :data:`access_log`.
    """

    def format(self, record: logging.LogRecord) -> str:
        traces = []
        if record.exc_info:
            traces.append(self.formatException(record.exc_info))
        elif record.exc_text:
            traces.append(record.exc_text)
        if record.stack_info:
            traces.append(self.formatStack(record.stack_info))
        return message_line(
            record.levelname.lower(),
            record.name,
            record.getMessage(),
            record.created,
            access_log.worker,
            "\n".join(traces) or None,
        )


class ErrorStream:
    """``wsgi.errors`` (PEP 3333, "Input and Error Streams") under ``--log-format json``:
    a text stream whose every line becomes one message of ``logger`` at ERROR, so what an
    application writes there takes the log's shape (one JSON object a line on stderr)
    instead of breaking it.

    Application threads write at once, so each thread's text gathers on its own until a
    newline (``print`` writes the text and the newline in two calls); :meth:`flush` hands
    on a line not yet ended, and so does a thread's text reaching ``_PENDING_MAX_CHARS``
    (an application that never ends its line cannot fill the memory).
    """

    _PENDING_MAX_CHARS = 64 * 1024

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self._local = threading.local()

    def write(self, text: str) -> int:
        """Log each line ``text`` ends (CR LF or LF); keep the rest for the next write. Returns ``len(text)``."""
        pending: str = getattr(self._local, "pending", "") + text
        *lines, rest = pending.split("\n")
        for line in lines:
            self.logger.error("%s", line[:-1] if line.endswith("\r") else line)
        self._local.pending = rest
        if len(rest) >= self._PENDING_MAX_CHARS:
            self.flush()
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Log this thread's text not yet ended by a newline, if any."""
        pending: str = getattr(self._local, "pending", "")
        if pending:
            self._local.pending = ""
            self.logger.error("%s", pending)


class _Marker:
    """A command for the writer thread, queued between batches."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return "<%s>" % self.name


_REOPEN = _Marker("reopen")
_STOP = _Marker("stop")
_Item = Union[bytes, _Marker]


class AccessLog:
    """Access-log lines buffered on the loop thread and written by a thread of their own.

    Off until :meth:`open`. The loop thread calls :meth:`write` per response and
    :meth:`flush` once per loop pass; any thread (or a signal handler) may call
    :meth:`reopen`. See the module docstring for the design.
    """

    def __init__(self) -> None:
        #: Whether lines are wanted; check it before formatting one.
        self.enabled = False
        self.synchronous = False  # see open()
        #: ``"text"`` or ``"json"`` (see the module docstring).
        self.format = "text"
        #: This process's worker number under ``--workers`` (written in the JSON format), else None.
        self.worker: Optional[int] = None
        self._lines: Callable[[Sequence[Record], Optional[int]], List[str]] = access_lines
        self.path: Optional[str] = None  # the file reopened on SIGUSR1; None for stdout and stderr
        self._fd = -1
        self._owns_fd = False
        self._atomic_bytes: Optional[int] = None  # cap per write(2) (pipes, sockets); None: no cap
        self._warn_now = True  # the loop may warn on stderr (the log is not stderr)
        self._records: Deque[Record] = collections.deque()  # deque: appends are atomic across threads
        self._queue: "queue.SimpleQueue[_Item]" = queue.SimpleQueue()
        self._thread: Optional[threading.Thread] = None
        # Each counter has one writing thread; the other only reads it.
        self._queued_bytes = 0  # loop thread: bytes handed to the writer
        self._overflow_lines = 0  # loop thread: lines dropped because the writer was too far behind
        self._written_bytes = 0  # writer thread: bytes it is done with (written or failed)
        self._failed_lines = 0  # writer thread: lines whose write failed
        self._reported_lines = 0  # writer thread: dropped lines already warned about
        self._failing = False  # writer thread: its last write failed (warned once)
        self._dropping = False  # loop thread: an episode of dropping is under way

    # -- setting up --------------------------------------------------------------------

    def open(self, destination: Optional[str] = None, synchronous: bool = False, log_format: str = "text") -> None:
        """Start logging to ``destination``: a file name (appended to), ``"-"`` for stdout,
        or None for stderr, in ``log_format`` (``"text"`` or ``"json"``). Raises OSError if the
        file cannot be opened, ValueError for another format.

        ``synchronous`` (for ``--trace``) writes each line at once, on the loop thread, so
        it lands among the trace lines where it happened; it may block, which is why it
        is never the default.
        """
        if log_format not in FORMATS:
            raise ValueError("log format %r is not one of %s" % (log_format, ", ".join(FORMATS)))
        self.format = log_format
        self._lines = json_access_lines if log_format == "json" else access_lines
        self.synchronous = synchronous
        if destination is None or destination == "-":
            fd = 2 if destination is None else 1
            owns = False
            self.path = None
        else:
            fd = os.open(destination, _FILE_FLAGS, 0o644)
            owns = True
            self.path = destination
        self._use(fd, owns)
        try:
            mine, err = os.fstat(fd), os.fstat(2)
            self._warn_now = (mine.st_dev, mine.st_ino) != (err.st_dev, err.st_ino)
        except OSError:
            self._warn_now = True
        self.enabled = True
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="reactor-access-log", daemon=True)
            self._thread.start()

    @property
    def dropped_lines(self) -> int:
        """Lines lost so far: the writer was too far behind, or its write failed."""
        return self._overflow_lines + self._failed_lines

    def _use(self, fd: int, owns: bool) -> None:
        mode = os.fstat(fd).st_mode
        self._atomic_bytes = _ATOMIC_BYTES if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) else None
        self._fd = fd
        self._owns_fd = owns

    # -- the loop thread -------------------------------------------------------------------

    def write(self, record: Record) -> None:
        """Buffer the record of one response (an :class:`AccessRecord`, or the same as a
        plain tuple); its line is formatted at :meth:`flush`.

        Loop thread; cheap: no formatting, no system call.
        """
        if self.synchronous:
            data = _encode(self._lines((record,), self.worker))
            self._queued_bytes += len(data)
            self._write(data)
            return
        records = self._records
        records.append(record)
        if len(records) >= _BATCH_LINES:
            self.flush()

    def flush(self) -> None:
        """Format the buffered records and hand their lines to the writer as one batch;
        never blocks.

        Called at the end of every loop pass. When the writer is too far behind
        (``_QUEUE_MAX_BYTES`` waiting), the batch is dropped and counted instead.
        """
        records = self._records
        count = len(records)
        if not count:
            return
        popleft = records.popleft  # pop only what was counted: another thread may append
        data = _encode(self._lines([popleft() for _ in range(count)], self.worker))
        waiting = self._queued_bytes - self._written_bytes
        if waiting + len(data) > _QUEUE_MAX_BYTES:
            self._overflow_lines += count
            if not self._dropping:
                self._dropping = True
                if self._warn_now:
                    access_logger.warning("access log: its reader is not keeping up; dropping lines until it does")
            return
        if self._dropping and not waiting:
            self._dropping = False  # the writer caught up: the next drop is a new episode
        self._queued_bytes += len(data)
        self._queue.put(data)

    def after_fork(self) -> None:
        """In a forked child (a ``--workers`` process): a fresh queue and writer thread.

        Threads do not survive ``fork()``; lines buffered in the parent are not the
        child's to write (they would appear twice).
        """
        self._records = collections.deque()
        self._queue = queue.SimpleQueue()
        self._queued_bytes = self._written_bytes = 0
        self._thread = None
        if self.enabled:
            self._thread = threading.Thread(target=self._run, name="reactor-access-log", daemon=True)
            self._thread.start()

    def reopen(self) -> None:
        """Make the writer reopen the log file by name (logrotate); no-op for stdout/stderr.

        Safe from a signal handler and from any thread.
        """
        if self.enabled and self.path is not None:
            self._queue.put(_REOPEN)

    def close(self, timeout_s: float = 5.0) -> bool:
        """Hand over the last lines, let the writer write them, stop it (graceful stop).

        Waits at most ``timeout_s``; returns False if the writer was still blocked then
        (its reader stopped reading), True otherwise.
        """
        if not self.enabled:
            return True
        self.flush()
        self.enabled = False
        thread = self._thread
        if thread is None:
            return True
        self._queue.put(_STOP)
        thread.join(timeout_s)
        if thread.is_alive():
            return False
        self._thread = None
        if self._owns_fd:
            os.close(self._fd)
        self._fd = -1
        return True

    # -- the writer thread -------------------------------------------------------------

    def _run(self) -> None:
        get = self._queue.get
        get_nowait = self._queue.get_nowait
        while True:
            item: Optional[_Item] = get()
            batches = []
            while isinstance(item, bytes):  # take every batch already waiting: one write for all
                batches.append(item)
                try:
                    item = get_nowait()
                except queue.Empty:
                    item = None
            if batches:
                self._write(b"".join(batches))
            if item is _REOPEN:
                self._reopen()
            elif item is _STOP:
                self._report_dropped()
                return

    def _write(self, data: bytes) -> None:
        fd = self._fd
        cap = self._atomic_bytes
        view = memoryview(data)
        start = 0
        end = len(data)
        try:
            while start < end:
                stop = end
                if cap is not None and end - start > cap:
                    # The last whole line that fits; a longer line alone.
                    cut = data.rfind(b"\n", start, start + cap)
                    stop = (cut if cut >= 0 else data.index(b"\n", start)) + 1
                while start < stop:
                    start += os.write(fd, view[start:stop])
        except OSError as exc:
            # EPIPE (the reader is gone), ENOSPC, EBADF...: count what is lost, go on.
            self._failed_lines += data.count(b"\n", start)
            if not self._failing:
                self._failing = True
                access_logger.warning("access log: write failed (%s); dropping lines until writes succeed", exc)
        else:
            self._failing = False
        self._written_bytes += end
        if self._queue.empty() and self._written_bytes == self._queued_bytes:
            self._report_dropped()  # caught up: the end of an episode, if there was one

    def _report_dropped(self) -> None:
        dropped = self.dropped_lines
        if dropped > self._reported_lines:
            access_logger.warning(
                "access log: %d line(s) dropped while its reader was not keeping up (%d in all)",
                dropped - self._reported_lines,
                dropped,
            )
            self._reported_lines = dropped

    def _reopen(self) -> None:
        assert self.path is not None
        try:
            fd = os.open(self.path, _FILE_FLAGS, 0o644)
            old = self._fd
            self._use(fd, True)
        except OSError as exc:
            access_logger.error("access log: cannot reopen %s: %s; still writing to the old file", self.path, exc)
            return
        os.close(old)


def _encode(lines: List[str]) -> bytes:
    lines.append("")
    return "\n".join(lines).encode("ascii", "backslashreplace")


#: The process's access log: off until the command line opens it.
access_log = AccessLog()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=access_log.after_fork)

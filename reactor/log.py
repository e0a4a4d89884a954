"""Logger names and the access-log line (Combined Log Format).

Loggers: ``reactor`` (startup, warnings, tracebacks), ``reactor.access`` (one line per
response, at INFO), and children per module. The access-log line is the Combined Log
Format of Apache and nginx, with control characters, quotes, backslashes and non-ASCII
escaped as ``\\xHH`` so a client cannot forge or break log lines.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Optional

access_log = logging.getLogger("reactor.access")

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_UNSAFE = re.compile(r'[\x00-\x1f\x7f-\U0010ffff"\\]')


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
    return _UNSAFE.sub(_escape_char, text)


def clf_time(timestamp: float) -> str:
    """``21/Nov/2026:13:37:00 +0000`` in local time, independent of the locale."""
    t = time.localtime(timestamp)
    offset = t.tm_gmtoff // 60
    sign = "+" if offset >= 0 else "-"
    return "%02d/%s/%04d:%02d:%02d:%02d %s%02d%02d" % (
        t.tm_mday, _MONTHS[t.tm_mon - 1], t.tm_year, t.tm_hour, t.tm_min, t.tm_sec,
        sign, abs(offset) // 60, abs(offset) % 60,
    )


def access_line(
    client: str,
    timestamp: float,
    request_line: Optional[str],
    status: int,
    body_bytes: int,
    referer: Optional[str],
    user_agent: Optional[str],
) -> str:
    """One Combined Log Format line (no trailing newline)::

        127.0.0.1 - - [21/Nov/2026:13:37:00 +0000] "GET / HTTP/1.1" 200 1024 "-" "curl/8.0"
    """
    return '%s - - [%s] "%s" %d %s "%s" "%s"' % (
        client,
        clf_time(timestamp),
        escape(request_line),
        status,
        body_bytes if body_bytes else "-",
        escape(referer),
        escape(user_agent),
    )

#!/usr/bin/env python3
"""Record the ``--trace`` of one keep-alive connection into docs/trace.md.

What it does, and what you can do by hand in two terminals instead::

    python3 -m reactor --port 8080 --trace --status-path /_status
    curl -s -o /dev/null -o /dev/null http://127.0.0.1:8080/ http://127.0.0.1:8080/sample.txt
    curl -s http://127.0.0.1:8080/_status

curl sends both requests on one connection (keep-alive), then closes it. The script
keeps the trace lines of the listener, the loop's waker and that connection (plus
the access-log lines), from the moment the server listens until the connection is
closed, and puts the status page's JSON, asked for afterwards, into docs/status.md.
Without curl, http.client makes the same two requests on one connection.

    python3 docs/make_trace_sample.py            # rewrite the generated blocks
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import subprocess
import sys
from typing import List, Tuple

import docgen
import trace_lab

PATHS = ("/", "/sample.txt")
_TRACE = re.compile(r"^ *\d+\.\d{3} (#\d+|--) ")
_ACCESS = re.compile(r'^\S+ - - \[[^]]+\] "')


def _two_requests(port: int) -> str:
    """Both requests on one connection; returns the client used."""
    curl = shutil.which("curl")
    urls = ["http://127.0.0.1:%d%s" % (port, path) for path in PATHS]
    if curl:
        subprocess.run(
            [curl, "-s", "--max-time", "10", *(arg for url in urls for arg in ("-o", os.devnull, url))],
            check=True,
            timeout=20,
        )
        return "curl"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for path in PATHS:
        conn.request("GET", path)
        conn.getresponse().read()
    conn.close()
    return "http.client"


def _status(port: int) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/_status", headers={"Accept": "application/json"})
    answer = json.loads(conn.getresponse().read())
    conn.close()
    return answer


def capture() -> Tuple[List[str], dict]:
    """(the trace and access-log lines of connection #1, the status JSON afterwards)."""
    server = trace_lab.Server(["--status-path", "/_status"])  # the lab's child process, one copy of it
    try:
        _two_requests(server.port)
        server.wait_for(re.compile(r"#1 state \S+ -> closed"))
        status = _status(server.port)
    finally:
        output = server.stop()
    kept = []
    for line in output.splitlines():
        trace = _TRACE.match(line)
        if trace and trace.group(1) in ("#1", "--") or _ACCESS.match(line):
            kept.append(re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", line.rstrip()))  # port 0: a new one each run
            if re.search(r"#1 state \S+ -> closed", line):
                break
    return kept, status


def render() -> docgen.Blocks:
    lines, status = capture()
    return {
        "trace.md": {"trace-sample": "```text\n%s\n```\n" % "\n".join(lines)},
        "status.md": {"status-sample": "```json\n%s\n```\n" % json.dumps(status, indent=2)},
    }


if __name__ == "__main__":
    if sys.argv[1:]:  # timings differ on every run, so there is nothing to --check
        sys.exit("usage: python3 docs/make_trace_sample.py")
    for name in docgen.write(render()):
        print("updated docs/%s" % name)

"""How long one small upload takes as ``uploads/`` fills: 0 stored files against 100,000.

For each count of stored files it makes a document root whose ``uploads/`` holds that many
files (hard links to one small JSON file, so 100,000 of them take a second to make and
no room), starts ``python -m reactor`` there with its defaults (``--max-uploads-bytes``
256 MiB included), and POSTs ``--uploads`` small JSON documents, one after another on one
keep-alive connection. It prints the median and 90th percentile of the time from sending
a request to reading its ``201``. The server is pinned to one CPU and the client runs on
another where ``taskset`` exists.

Run from the repository root:
    python3 tests/benchmarks/stored_uploads.py                  # 0 and 100,000 stored files
    python3 tests/benchmarks/stored_uploads.py --stored 0,50000,100000 --uploads 300
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import List

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fanout import start  # noqa: E402  (python -m reactor on a free port, pinned)

LINKS_PER_FILE = 50_000  # ext4 allows 65,000 names per inode


def fill(uploads: Path, count: int) -> None:
    """``count`` files named as uploads are: hard links to a few small documents (fast, and no room)."""
    uploads.mkdir(parents=True, exist_ok=True)
    original = uploads
    for n in range(count):
        name = uploads / ("upload_20260101_%06d_%04x.json" % (n // 65536, n % 65536))
        if n % LINKS_PER_FILE == 0:
            name.write_bytes(b'{"stored": %d}\n' % n)
            original = name
        else:
            os.link(original, name)


def timed_uploads(port: int, count: int) -> List[float]:
    """Seconds per upload, ``count`` of them on one keep-alive connection (reconnecting when it closes)."""
    times = []
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for n in range(count):
        body = json.dumps({"n": n, "text": "a small upload"}).encode()
        started = time.perf_counter()
        conn.request("POST", "/upload", body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        times.append(time.perf_counter() - started)
        if response.status != 201:
            raise SystemExit("upload %d answered %d" % (n, response.status))
        if response.getheader("Connection", "").lower() == "close":
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.close()
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stored", default="0,100000", help="counts of stored files to measure, comma-separated")
    parser.add_argument("--uploads", type=int, default=200, help="timed uploads per count")
    parser.add_argument("--server-cpu", default="0", help="taskset CPU list for the server ('' for none)")
    args = parser.parse_args()
    if args.server_cpu and shutil.which("taskset") and len(os.sched_getaffinity(0)) > 1:
        others = sorted(os.sched_getaffinity(0) - {int(args.server_cpu.split(",")[0])})
        os.sched_setaffinity(0, others[:1])  # the client on another CPU
    print("stored files   median ms   p90 ms   (one small upload, %d in a row, defaults)" % args.uploads)
    for stored in (int(value) for value in args.stored.split(",")):
        with tempfile.TemporaryDirectory(prefix="reactor-uploads-") as tmp:
            root = Path(tmp) / "site"
            (root / "index.html").parent.mkdir(parents=True)
            (root / "index.html").write_text("<p>uploads benchmark</p>\n")
            fill(root / "uploads", stored)
            proc, port = start(root, args.server_cpu)
            try:
                times = timed_uploads(port, args.uploads)
            finally:
                proc.terminate()
                proc.wait(30)
            deciles = statistics.quantiles(times, n=10)
            print("%12d   %9.2f   %6.2f" % (stored, statistics.median(times) * 1000, deciles[8] * 1000))
    return 0


if __name__ == "__main__":
    sys.exit(main())

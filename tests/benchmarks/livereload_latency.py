"""Save-to-message latency of ``--live-reload``: from the start of an editor's save to the WebSocket message.

For each way of watching (``--watch inotify``, ``--watch poll`` at the default interval)
this starts ``python -m reactor --live-reload`` on a copy of the sample site (defaults
otherwise, access log off on both runs), connects a WebSocket client to
``/__reactor__/livereload`` as the page's script would, and saves files the way editors
do: a swap file, a backup, the new content written to a temporary file and renamed over
the original, the swap file removed. The clock starts before the first of those steps
and stops when the message arrives; the next save waits for the message, then for a
random pause (0 to one poll interval), so saves fall at every phase of the polling
cycle. It prints p50, p95 and the maximum with the targets:

- inotify: p95 under 100 ms;
- polling: p95 under the poll interval + 100 ms.

Server and client are pinned to different CPUs where ``taskset`` exists. Run::

    python3 tests/benchmarks/livereload_latency.py            # 60 saves per mode
    python3 tests/benchmarks/livereload_latency.py --saves 20 # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import List, Optional, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)

from reactor.config import Config  # noqa: E402

STARTUP = re.compile(rb"http://127\.0\.0\.1:(\d+)/")
POLL_INTERVAL_S = Config().watch_interval_s


def pinned(cpu: int) -> List[str]:
    return ["taskset", "-c", str(cpu)] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else []


def start_server(site: str, mode: str) -> Tuple["subprocess.Popen[bytes]", int]:
    env = dict(os.environ, PYTHONPATH=REPO)
    command = [*pinned(0), sys.executable, "-m", "reactor", site, "--port", "0", "--live-reload", "--watch", mode]
    proc = subprocess.Popen(
        command + ["--log-level", "warning"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env
    )
    assert proc.stderr is not None
    output = b""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if select.select([proc.stderr], [], [], 0.5)[0]:
            chunk = os.read(proc.stderr.fileno(), 4096)
            if not chunk:
                break
            output += chunk
            match = STARTUP.search(output)
            if match:
                return proc, int(match.group(1))
    proc.kill()
    raise SystemExit("the server did not start: %s" % output.decode(errors="replace"))


def editor_save(path: str, text: str) -> None:
    """A save as vim (with backups) or VS Code does it: swap file, backup, temp file renamed over, swap removed."""
    folder, name = os.path.split(path)
    swap = os.path.join(folder, ".%s.swp" % name)
    with open(swap, "w") as file:
        file.write("swap")
    shutil.copyfile(path, path + "~")
    temp = os.path.join(folder, ".%s.tmp" % name)
    with open(temp, "w") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temp, path)
    os.unlink(swap)


def measure(mode: str, saves: int) -> Tuple[List[float], List[float], int, str]:
    """Latencies in seconds of ``saves`` saves (from their start, and from their end), extra messages, the mode."""
    from websockets.sync.client import connect  # a test dependency (tests/requirements.txt)

    workdir = tempfile.mkdtemp(prefix="reactor-livereload-")
    site = os.path.join(workdir, "site")
    shutil.copytree(os.path.join(REPO, "resources"), site, ignore=shutil.ignore_patterns("upload_*.json"))
    proc, port = start_server(site, mode)
    latencies: List[float] = []
    after_save: List[float] = []  # from the rename that ends the save: the server's part alone
    extra = 0
    try:
        with connect("ws://127.0.0.1:%d/__reactor__/livereload" % port, open_timeout=10) as ws:
            hello = json.loads(ws.recv(timeout=10))
            assert hello["type"] == "hello", hello
            targets = [os.path.join(site, "style.css"), os.path.join(site, "about.html")]
            for number in range(saves):
                time.sleep(random.uniform(0, POLL_INTERVAL_S))  # any phase of the polling cycle
                path = targets[number % 2]
                with open(path) as file:
                    text = file.read()
                started = time.monotonic()
                editor_save(path, text + "\n/* save %d */" % number if path.endswith(".css") else text + " ")
                saved = time.monotonic()
                message = json.loads(ws.recv(timeout=10))
                latencies.append(time.monotonic() - started)
                after_save.append(time.monotonic() - saved)
                wanted = "/" + os.path.basename(path)
                assert message["paths"] == [wanted], message
                try:  # a second message for the same save would be a double reload
                    ws.recv(timeout=0.15)
                    extra += 1
                except TimeoutError:
                    pass
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)
    return latencies, after_save, extra, mode


def percentile(values: List[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def report(latencies: List[float], after_save: List[float], extra: int, mode: str, target_s: float) -> bool:
    p50, p95 = statistics.median(latencies), percentile(latencies, 0.95)
    meets = p95 < target_s
    print(
        "%-8s saves %3d  p50 %6.1f ms  p95 %6.1f ms  max %6.1f ms  target p95 < %.0f ms: %s  extra messages: %d"
        "  (from the end of the save: p50 %.1f ms, p95 %.1f ms)"
        % (
            mode,
            len(latencies),
            p50 * 1e3,
            p95 * 1e3,
            max(latencies) * 1e3,
            target_s * 1e3,
            meets and "met" or "MISSED",
            extra,
            statistics.median(after_save) * 1e3,
            percentile(after_save, 0.95) * 1e3,
        )
    )
    return meets and not extra


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--saves", type=int, default=60, help="saves per mode")
    args = parser.parse_args(argv)
    print(
        "python %s; poll interval %.1f s; server on CPU 0, client on CPU 1" % (sys.version.split()[0], POLL_INTERVAL_S)
    )
    if pinned(1):
        os.sched_setaffinity(0, {1})
    ok = True
    from reactor.watch import inotify_available

    if inotify_available():
        ok &= report(*measure("inotify", args.saves), target_s=0.100)
    else:
        print("inotify  not available here; skipped")
    ok &= report(*measure("poll", args.saves), target_s=POLL_INTERVAL_S + 0.100)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

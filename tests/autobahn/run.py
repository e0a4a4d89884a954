"""``tox -e autobahn``: the real Autobahn|Testsuite fuzzing client against reactor's Echo endpoint.

Autobahn|Testsuite (``wstest -m fuzzingclient``) runs on Python 2.7 only. This script:

1. finds a Python 2.7 (``--python``, ``$AUTOBAHN_PYTHON``, pyenv's 2.7.x, or ``python2.7``);
   without one it says so and exits 0 (the run is skipped, not failed);
2. makes a virtualenv for it (``--venv``; ``virtualenv<20.22`` can still make 2.7 ones) and
   installs the pinned ``requirements-py27.txt`` into it once (about two minutes);
3. starts ``python -m reactor --websocket /=reactor.websocket:Echo
   --websocket-max-message-bytes 16777216`` (case 9.1.6 sends 16 MiB) on a free port;
4. runs every case (``--cases``, default all) and reads the report's ``index.json``;
5. prints one line per case group with the count of each grade, and exits 1 if a case of
   groups 1-7, 9 or 10 is not OK (or INFORMATIONAL, the grade of 7.1.6 and 7.13.x), or
   if a case where the ``websockets`` library is NON-STRICT is not OK.

Groups 12 and 13 (permessage-deflate) read UNIMPLEMENTED: reactor negotiates no extension.
The summary goes in docs/websocket.md ("Conformance").

    python tests/autobahn/run.py --venv .tox/autobahn/py27 --outdir .tox/autobahn/reports
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
REQUIREMENTS = os.path.join(HERE, "requirements-py27.txt")
GRADED = {"1", "2", "3", "4", "5", "6", "7", "9", "10"}  # the groups that must be OK
PASSING = {"OK", "INFORMATIONAL"}
#: Where the websockets library is NON-STRICT or fails (its published report): reactor must be OK.
STRICT_CASES = re.compile(r"^(3\.2|3\.3|4\.1\.[3-5]|4\.2\.[1-4]|5\.15|6\.4\.\d+|7\.1\.5)$")


def case_key(case_id: str) -> List[int]:
    return [int(part) for part in case_id.split(".")]


def find_python27(explicit: Optional[str]) -> Optional[str]:
    """A Python 2.7 interpreter's path, or None."""
    candidates = [explicit, os.environ.get("AUTOBAHN_PYTHON")]
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    candidates += sorted(glob.glob(os.path.join(root, "versions", "2.7*", "bin", "python2.7")), reverse=True)
    candidates.append(shutil.which("python2.7"))
    for candidate in candidates:
        if not candidate:
            continue
        try:
            out = subprocess.run(
                [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True,
                text=True,
                timeout=30,
            ).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            continue
        if out == "2.7":
            return candidate
    return None


def ensure_wstest(python27: str, venv: str) -> str:
    """The ``wstest`` of a virtualenv with the pinned suite in it, made (and filled) if needed."""
    wstest = os.path.join(venv, "bin", "wstest")
    if os.path.exists(wstest):
        return wstest
    print("making a Python 2.7 virtualenv in %s" % venv, flush=True)
    subprocess.run([sys.executable, "-m", "virtualenv", "-q", "-p", python27, venv], check=True)
    print("installing Autobahn|Testsuite (pinned, %s)" % os.path.relpath(REQUIREMENTS, REPO), flush=True)
    subprocess.run(
        [os.path.join(venv, "bin", "pip"), "install", "-q", "--disable-pip-version-check", "-r", REQUIREMENTS],
        check=True,
    )
    return wstest


def start_server(outdir: str) -> "tuple[subprocess.Popen[bytes], int]":
    """``python -m reactor`` with the Echo endpoint at /, its stderr in ``outdir``/reactor.log; (process, port)."""
    args = [
        sys.executable,
        "-m",
        "reactor",
        "--port",
        "0",
        "--log-level",
        "warning",
        "--websocket",
        "/=reactor.websocket:Echo",
        "--websocket-max-message-bytes",
        str(16 * 1024 * 1024),
    ]
    log_path = os.path.join(outdir, "reactor.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(args, cwd=REPO, stderr=log)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and proc.poll() is None:
        with open(log_path, "rb") as log:
            match = re.search(rb"http://127\.0\.0\.1:(\d+)/", log.read())
        if match:
            return proc, int(match.group(1))
        time.sleep(0.05)
    proc.kill()
    with open(log_path, "rb") as log:
        raise SystemExit("reactor did not start:\n%s" % log.read().decode(errors="replace"))


def summarize(index: Dict[str, dict]) -> "tuple[List[str], List[str]]":
    """(one line per group, the cases that are not as they must be)."""
    groups: Dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    problems = []
    for case_id in sorted(index, key=case_key):
        result = index[case_id]
        group = case_id.split(".")[0]
        behavior, close = result["behavior"], result["behaviorClose"]
        groups[group][behavior] += 1
        if group in GRADED and (behavior not in PASSING or close not in PASSING):
            problems.append("%s: %s (close: %s)" % (case_id, behavior, close))
        elif STRICT_CASES.match(case_id) and behavior != "OK":
            problems.append("%s: %s, where reactor must be strict" % (case_id, behavior))
    lines = [
        "group %-3s %4d cases: %s"
        % (group, sum(counts.values()), ", ".join("%s %d" % kv for kv in sorted(counts.items())))
        for group, counts in sorted(groups.items(), key=lambda item: int(item[0]))
    ]
    return lines, problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", help="the Python 2.7 to run the suite with")
    parser.add_argument("--venv", default=os.path.join(REPO, ".tox", "autobahn", "py27"))
    parser.add_argument(
        "--outdir", default=None, help="where the HTML and JSON reports go (default: a temporary folder)"
    )
    parser.add_argument("--cases", default="*", help="comma-separated case patterns, e.g. '1.*,9.3.*' (default: all)")
    args = parser.parse_args()

    python27 = find_python27(args.python)
    if python27 is None:
        print("autobahn: skipped: no Python 2.7 found (pyenv install 2.7.18, or set AUTOBAHN_PYTHON)")
        return 0
    wstest = ensure_wstest(python27, args.venv)
    outdir = args.outdir or tempfile.mkdtemp(prefix="autobahn-")
    os.makedirs(outdir, exist_ok=True)
    proc, port = start_server(outdir)
    try:
        spec = {
            "outdir": os.path.join(outdir, "servers"),
            "servers": [{"agent": "reactor", "url": "ws://127.0.0.1:%d/" % port}],
            "cases": args.cases.split(","),
            "exclude-cases": [],
            "exclude-agent-cases": {},
        }
        spec_path = os.path.join(outdir, "fuzzingclient.json")
        with open(spec_path, "w") as file:
            json.dump(spec, file, indent=2)
        started = time.monotonic()
        with open(os.path.join(outdir, "wstest.log"), "w") as log:
            subprocess.run(
                [wstest, "-m", "fuzzingclient", "-s", spec_path],
                cwd=outdir,
                stdout=log,
                stderr=log,
                check=True,
                timeout=3600,
            )
        elapsed = time.monotonic() - started
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
    with open(os.path.join(outdir, "servers", "index.json")) as file:
        index = json.load(file)["reactor"]
    lines, problems = summarize(index)
    print(
        "Autobahn|Testsuite fuzzingclient against reactor %s (Echo), %d cases in %.0f s:"
        % (_version(), len(index), elapsed)
    )
    for line in lines:
        print("  " + line)
    print("report: %s" % os.path.join(outdir, "servers", "index.html"))
    if problems:
        print("NOT AS THEY MUST BE:")
        for problem in problems:
            print("  " + problem)
        return 1
    print("groups 1-7, 9, 10: every case OK (or INFORMATIONAL); the strict cases OK")
    return 0


def _version() -> str:
    sys.path.insert(0, REPO)
    from reactor import __version__

    return __version__


if __name__ == "__main__":
    sys.exit(main())

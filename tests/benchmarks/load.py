"""Load benchmark (issues 6 and 12): reactor side by side with what users would pick instead.

Measures reactor, with its access log off and on, against a Python ceiling (a
bare selectors loop answering canned bytes), uvicorn (uvloop + httptools, a
bare ASGI app serving from memory, and the same streaming from disk), nginx
(1 worker, sendfile), the pure-Python peers twisted, waitress and tornado,
granian (Rust) for reference, and http.server, with wrk, on loopback (the list
and the exact commands are in servers.py; every server is one process, logging
off unless said otherwise):

    small-keepalive   1 KiB index.html, keep-alive     wrk -t1 -c50 --latency
    small-close       same, 'Connection: close'        wrk -t1 -c50 -H 'Connection: close'
    small-pipeline    same, 10 pipelined requests a write (wrk Lua script)
    file-10m          10 MiB file                      wrk -t1 -c4
    file-1g           1 GiB sparse file (only with --big)  wrk -t1 -c2

Each server is pinned to one CPU and wrk to another (taskset). For every
scenario the servers take turns, run after run (round-robin). One table per
scenario shows, over the runs: median req/s and MiB/s (wrk's Transfer/sec;
wrk's "MB" is MiB), median p50 and p99 latency and their ratio, the server
process's RSS (before the scenario -> after it, and the peak sampled during
it), wrk's error count, and the CPU used by the server and by wrk (100% = one
CPU: a server below 100% while wrk is near 100% is limited by the client).
Then reactor's ratios to each other server, and a summary of the issue's
targets, each MET / NOT MET with its numbers. Runs during which other
programs used a pinned CPU are flagged: numbers from a busy machine are noisy.

Run from the repository root:
    python tests/benchmarks/load.py                    # 3 runs x 10 s: about 25 min
    python tests/benchmarks/load.py --quick            # smoke test, about a minute
    python tests/benchmarks/load.py --servers reactor,nginx --scenarios file-10m,file-1g
    python tests/benchmarks/load.py --quick --servers reactor,reactor-log,ceiling,uvicorn

Needs wrk (and nginx for that column): bash tests/benchmarks/ensure_tools.sh
uvicorn needs `pip install uvicorn httptools uvloop` in this interpreter.
Servers that are not installed are skipped with a note.

Exit status: 0 when the measurements ran, whatever the numbers; 1 if a server
failed to start or died during the run (or on a harness error); 2 if wrk is
missing or the arguments are wrong; 130 if interrupted. Every server started
is stopped on the way out, and the temporary files removed.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import servers as srv  # noqa: E402

OTHER_LOAD_WARN = 0.10  # flag runs where other work took this much of a pinned CPU
WRK_INSTALL = "bash tests/benchmarks/ensure_tools.sh  (or: apt-get install -y wrk nginx)"


@dataclass
class Scenario:
    name: str
    title: str
    path: str
    connections: int
    headers: list[str] = field(default_factory=list)
    pipeline: int = 0  # requests per write, 0 = no script
    timeout: str = "2s"  # wrk --timeout
    bulk: bool = False  # judged by MiB/s rather than req/s
    note: str = ""  # printed under the table


SCENARIOS = {
    s.name: s
    for s in [
        Scenario("small-keepalive", "1 KiB file, keep-alive, 50 connections", "/" + srv.SMALL_NAME, 50),
        Scenario(
            "small-close",
            "1 KiB file, Connection: close, 50 connections",
            "/" + srv.SMALL_NAME,
            50,
            headers=["Connection: close"],
        ),
        Scenario(
            "small-pipeline",
            "1 KiB file, 10 pipelined requests, 50 connections",
            "/" + srv.SMALL_NAME,
            50,
            pipeline=10,
            note="latency is per batch of 10 responses, and wrk's percentiles "
            "are unreliable with pipelining (its latency correction "
            "assumes one request per sample): not judged",
        ),
        Scenario(
            "file-10m", "10 MiB file, keep-alive, 4 connections", "/" + srv.MEDIUM_NAME, 4, timeout="10s", bulk=True
        ),
        Scenario("file-1g", "1 GiB file, keep-alive, 2 connections", "/" + srv.BIG_NAME, 2, timeout="60s", bulk=True),
    ]
}
DEFAULT_SCENARIOS = ["small-keepalive", "small-close", "small-pipeline", "file-10m"]
QUICK_SCENARIOS = ["small-keepalive", "file-10m"]

PIPELINE_LUA = """\
-- {n} pipelined GETs of {path} per write
init = function(args)
   local r = {{}}
   for i = 1, {n} do
      r[i] = wrk.format(nil, "{path}")
   end
   req = table.concat(r)
end

request = function()
   return req
end
"""


# --------------------------------------------------------------------------
# wrk output


@dataclass
class WrkResult:
    requests_per_sec: float = 0.0
    bytes_per_sec: float = 0.0
    p50: float | None = None  # seconds
    p99: float | None = None
    requests: int = 0
    errors: int = 0  # socket errors + non-2xx/3xx
    error_text: str = ""
    rss_before: int | None = None
    rss_after: int | None = None
    rss_peak: int | None = None
    server_cpu: float | None = None  # fraction of one CPU, during the run
    wrk_cpu: float | None = None
    other_load: float = 0.0  # user time of others on a pinned CPU, max of both
    steal: float = 0.0


TIME_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
SIZE_UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


def parse_wrk(text: str) -> WrkResult:
    r = WrkResult()
    if m := re.search(r"Requests/sec:\s*([\d.]+)", text):
        r.requests_per_sec = float(m.group(1))
    if m := re.search(r"Transfer/sec:\s*([\d.]+)([KMGT]?B)", text):
        r.bytes_per_sec = float(m.group(1)) * SIZE_UNITS[m.group(2)]
    if m := re.search(r"(\d+) requests in", text):
        r.requests = int(m.group(1))
    dist = text.split("Latency Distribution", 1)[-1] if "Latency Distribution" in text else ""
    for pct, attr in (("50", "p50"), ("99", "p99")):
        m = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s|m|h)\s*$", dist, re.M)
        # wrk prints 0.00us when its latency correction leaves a percentile
        # empty (it happens with pipelining): no value rather than zero.
        if m and float(m.group(1)) > 0:
            setattr(r, attr, float(m.group(1)) * TIME_UNITS[m.group(2)])
    problems = []
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text):
        counts = dict(zip(("connect", "read", "write", "timeout"), map(int, m.groups())))
        r.errors += sum(counts.values())
        problems += [f"{k} {v}" for k, v in counts.items() if v]
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", text):
        r.errors += int(m.group(1))
        problems.append(f"non-2xx {m.group(1)}")
    r.error_text = ", ".join(problems)
    return r


# --------------------------------------------------------------------------
# running


class Bench:
    def __init__(self, args, tmp: Path, docroot: Path):
        self.args = args
        self.tmp = tmp
        self.docroot = docroot
        cpus = srv.allowed_cpus()
        pin = bool(shutil.which("taskset")) and len(cpus) >= 2 and not args.no_pin
        self.server_cpu_id = cpus[0] if pin else None
        self.wrk_cpu_id = cpus[1] if pin else None
        self.pinning = (
            f"servers on CPU {cpus[0]}, wrk on CPU {cpus[1]} (taskset)"
            if pin
            else "no CPU pinning (taskset missing, <2 CPUs or --no-pin)"
        )
        self.servers: dict[str, srv.Server] = {}
        self.failed: dict[str, str] = {}

    def start_servers(self, names: list[str]) -> None:
        for name in names:
            reason = srv.missing_reason(name)
            if reason:
                print(f"SKIP {srv.LABELS.get(name, name)}: not installed: {reason}")
                continue
            try:
                s = srv.start_server(name, self.docroot, self.tmp, cpu=self.server_cpu_id)
            except srv.ServerError as e:
                print(f"FAIL {srv.LABELS[name]}: could not start: {e}")
                self.failed[name] = "could not start"
                continue
            self.servers[name] = s
            print(f"  started {s.label:<12} {s.url}  pid {s.pid}  rss {srv.fmt_bytes(s.rss())}")
            if self.args.verbose:
                print(f"    $ {' '.join(s.cmd)}")

    def stop_servers(self) -> None:
        srv.stop_servers(list(self.servers.values()))

    def wrk_command(self, sc: Scenario, server: srv.Server) -> list[str]:
        cmd = srv.pin_prefix(self.wrk_cpu_id) + [
            self.args.wrk,
            "-t1",
            f"-c{sc.connections}",
            f"-d{self.args.duration}s",
            "--latency",
            "--timeout",
            sc.timeout,
        ]
        for h in sc.headers:
            cmd += ["-H", h]
        if sc.pipeline:
            script = self.tmp / f"pipeline-{sc.pipeline}.lua"
            script.write_text(PIPELINE_LUA.format(n=sc.pipeline, path=sc.path))
            cmd += ["-s", str(script)]
        return cmd + [server.url + sc.path]

    def run_wrk(self, sc: Scenario, server: srv.Server) -> WrkResult | None:
        """One wrk run; samples the server's RSS while it runs."""
        cmd = self.wrk_command(sc, server)
        out_path = self.tmp / "wrk.out"
        peak = before = server.rss()
        cpu0 = server.cpu_seconds()
        usage0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        sys0 = self.cpu_snapshot()
        t0 = time.monotonic()
        deadline = t0 + self.args.duration + 60
        with open(out_path, "wb") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            try:
                while True:
                    try:
                        proc.wait(0.2)
                        break
                    except subprocess.TimeoutExpired:
                        pass
                    rss = server.rss()
                    if rss is not None:
                        peak = max(peak or 0, rss)
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"wrk did not finish: {' '.join(cmd)}")
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        wall = time.monotonic() - t0
        cpu1 = server.cpu_seconds()
        usage1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        sys1 = self.cpu_snapshot()
        text = out_path.read_text(errors="replace")
        after = server.rss()
        if self.args.verbose:
            print(f"$ {' '.join(cmd)}\n{text}")
        if not server.alive():
            print(
                f"FAIL {server.label} died during {sc.name} "
                f"(exit status {server.proc.returncode})\n"
                f"--- its output ---\n{server.log_tail()}"
            )
            self.failed[server.name] = f"died during {sc.name}"
            return None
        if proc.returncode != 0 or "Requests/sec" not in text:
            raise RuntimeError(f"wrk failed (status {proc.returncode}): {' '.join(cmd)}\n{text}")
        r = parse_wrk(text)
        r.rss_before, r.rss_after = before, after
        r.rss_peak = max(x for x in (peak, after, before, 0) if x is not None) or None
        if cpu0 is not None and cpu1 is not None:
            r.server_cpu = (sum(cpu1) - sum(cpu0)) / wall
        # wrk is the only child reaped in between, so this is its CPU use.
        wrk_user = usage1.ru_utime - usage0.ru_utime
        r.wrk_cpu = (wrk_user + usage1.ru_stime - usage0.ru_stime) / wall
        if sys0 and sys1 and cpu0 is not None and cpu1 is not None:
            # User time the pinned CPUs spent on anything but the server and
            # wrk: other programs competing with the benchmark.
            (s0, st0), (w0, wt0) = sys0
            (s1, st1), (w1, wt1) = sys1
            r.other_load = max(0.0, (s1 - s0 - (cpu1[0] - cpu0[0])) / wall, (w1 - w0 - wrk_user) / wall)
            r.steal = max(st1 - st0, wt1 - wt0) / wall
        return r

    def cpu_snapshot(self):
        """/proc/stat times of the server's and wrk's CPUs (None if unpinned)."""
        if self.server_cpu_id is None:
            return None
        snap = (srv.cpu_times(self.server_cpu_id), srv.cpu_times(self.wrk_cpu_id))
        return snap if all(snap) else None

    def run_scenario(self, sc: Scenario) -> dict[str, list[WrkResult]]:
        results: dict[str, list[WrkResult]] = {n: [] for n in self.servers}
        for run in range(self.args.runs):
            for name, server in self.servers.items():  # round-robin
                if name in self.failed or (name in srv.SMALL_ONLY and sc.path != "/" + srv.SMALL_NAME):
                    continue
                r = self.run_wrk(sc, server)
                if r is None:
                    continue
                results[name].append(r)
                err = f"  errors: {r.error_text}" if r.errors else ""
                if r.other_load >= OTHER_LOAD_WARN or r.steal >= OTHER_LOAD_WARN:
                    err += (
                        f"  [disturbed: other programs {fmt_pct(r.other_load)}, "
                        f"steal {fmt_pct(r.steal)} of a pinned CPU]"
                    )
                print(
                    f"  {sc.name} run {run + 1}/{self.args.runs} {server.label:<12}"
                    f"{r.requests_per_sec:>11.0f} req/s {r.bytes_per_sec / 2**20:>9.1f} MiB/s"
                    f"  p50 {fmt_time(r.p50)}  p99 {fmt_time(r.p99)}"
                    f"  cpu {fmt_pct(r.server_cpu)}/{fmt_pct(r.wrk_cpu)}{err}",
                    flush=True,
                )
        return {n: rs for n, rs in results.items() if rs}


# --------------------------------------------------------------------------
# summarising


@dataclass
class Summary:
    rps: float
    mibps: float
    p50: float | None
    p99: float | None
    errors: int
    rss_before: int | None
    rss_after: int | None
    rss_peak: int | None
    server_cpu: float | None
    wrk_cpu: float | None
    disturbed: int  # runs where other work took a pinned CPU

    @property
    def tail(self) -> float | None:
        return self.p99 / self.p50 if self.p50 and self.p99 else None


def summarise(rs: list[WrkResult]) -> Summary:
    def med(values):
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else None

    peaks = [r.rss_peak for r in rs if r.rss_peak is not None]
    return Summary(
        rps=med(r.requests_per_sec for r in rs),
        mibps=med(r.bytes_per_sec for r in rs) / 2**20,
        p50=med(r.p50 for r in rs),
        p99=med(r.p99 for r in rs),
        errors=sum(r.errors for r in rs),
        rss_before=rs[0].rss_before,
        rss_after=rs[-1].rss_after,
        rss_peak=max(peaks) if peaks else None,
        server_cpu=med(r.server_cpu for r in rs),
        wrk_cpu=med(r.wrk_cpu for r in rs),
        disturbed=sum(1 for r in rs if max(r.other_load, r.steal) >= OTHER_LOAD_WARN),
    )


def fmt_time(t: float | None) -> str:
    if t is None:
        return "-"
    if t < 1e-3:
        return f"{t * 1e6:.0f}us"
    if t < 1:
        return f"{t * 1e3:.2f}ms"
    return f"{t:.2f}s"


def fmt_pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.0f}%"


def fmt_ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}x"


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def print_table(sc: Scenario, sums: dict[str, Summary], runs: int, duration: float) -> None:
    print()
    print(f"== {sc.name}: {sc.title}  (median of {runs} x {duration:g}s)")
    head = (
        f"{'server':<12}{'req/s':>11}{'MiB/s':>10}{'p50':>10}{'p99':>10}"
        f"{'p99/p50':>9}  {'RSS before->after (peak)':<26}{'errors':>7}"
        f"{'cpu srv/wrk':>13}"
    )
    print(head)
    print("-" * len(head))
    for name, s in sums.items():
        rss = f"{srv.fmt_bytes(s.rss_before)}->{srv.fmt_bytes(s.rss_after)} ({srv.fmt_bytes(s.rss_peak)})"
        print(
            f"{srv.LABELS[name]:<12}{s.rps:>11.0f}{s.mibps:>10.1f}{fmt_time(s.p50):>10}"
            f"{fmt_time(s.p99):>10}{fmt_ratio(s.tail):>9}  {rss:<26}{s.errors:>7}"
            f"{fmt_pct(s.server_cpu):>7}/{fmt_pct(s.wrk_cpu):<5}"
        )
    if "reactor" in sums:
        me = sums["reactor"]
        parts = []
        for name, s in sums.items():
            if name == "reactor":
                continue
            value = ratio(me.mibps, s.mibps) if sc.bulk else ratio(me.rps, s.rps)
            parts.append(f"reactor/{srv.LABELS[name]} {fmt_ratio(value)}")
        if parts:
            unit = "MiB/s" if sc.bulk else "req/s"
            print(f"{unit} ratios: " + ", ".join(parts))
    disturbed = {srv.LABELS[n]: s.disturbed for n, s in sums.items() if s.disturbed}
    if disturbed:
        print(
            "note: other programs (or VM steal) took >= "
            f"{OTHER_LOAD_WARN:.0%} of a pinned CPU in some runs ("
            + ", ".join(f"{k}: {v}/{runs}" for k, v in disturbed.items())
            + "): numbers are noisier; run on a quiet machine"
        )
    for name, s in sums.items():
        label = srv.LABELS[name]
        if s.wrk_cpu is not None and s.wrk_cpu >= 0.95:
            print(
                f"note: wrk used {fmt_pct(s.wrk_cpu)} of its CPU against {label}: "
                f"the client may be what limits {label} here"
            )
        elif (
            s.server_cpu is not None
            and s.wrk_cpu is not None
            and not s.disturbed
            and s.server_cpu < 0.5
            and s.wrk_cpu < 0.5
        ):
            print(
                f"note: neither {label} ({fmt_pct(s.server_cpu)}) nor wrk "
                f"({fmt_pct(s.wrk_cpu)}) was busy: {label} was waiting "
                f"(e.g. a Nagle / delayed-ACK or TCP_CORK stall)"
            )
    if sc.note:
        print(f"note: {sc.note}")


def check(label: str, value: float | None, target: float, detail: str, at_most: bool = False) -> str:
    if value is None:
        return f"  n/a      {label}: {detail}"
    ok = value <= target if at_most else value >= target
    cmp = "<=" if at_most else ">="
    return f"  {'MET' if ok else 'NOT MET':<8} {label}: {value:.2f}x (target {cmp} {target:g}x; {detail})"


def print_targets(all_sums: dict[str, dict[str, Summary]]) -> None:
    """Issue 12's targets (and issue 6's nginx ones that still hold), each MET / NOT MET."""
    print()
    print("== targets (reactor against the others; medians)")
    lines = []

    def value(scen, name):
        s = all_sums.get(scen, {}).get(name)
        if s is None:
            return None
        return s.mibps if SCENARIOS[scen].bulk else s.rps

    def compare(scen, me, other, target):
        a, b = value(scen, me), value(scen, other)
        unit = "MiB/s" if SCENARIOS[scen].bulk else "req/s"
        if scen not in all_sums:
            d = f"{scen} was not run"
        elif a is None or b is None:
            missing = [srv.LABELS[n] for n, v in ((me, a), (other, b)) if v is None]
            d = f"{' and '.join(missing)} not measured in {scen}"
        else:
            d = f"{srv.LABELS[me]} {a:.0f} vs {srv.LABELS[other]} {b:.0f} {unit}"
        lines.append(
            check(f"{scen} {unit}: {srv.LABELS[me]} >= {target:g}x {srv.LABELS[other]}", ratio(a, b), target, d)
        )

    compare("small-keepalive", "reactor", "uvicorn", 1.5)
    compare("small-keepalive", "reactor", "ceiling", 0.3)
    compare("small-keepalive", "reactor-log", "reactor", 0.85)
    compare("small-pipeline", "reactor", "uvicorn", 2.0)
    compare("small-close", "reactor", "uvicorn", 1.5)
    compare("file-10m", "reactor", "uvicorn-disk", 1.0)
    compare("file-10m", "reactor", "nginx", 0.9)
    if "file-1g" in all_sums:
        compare("file-1g", "reactor", "nginx", 0.9)
    for scen, sums in all_sums.items():
        if SCENARIOS[scen].pipeline:
            continue
        me, ng = sums.get("reactor"), sums.get("nginx")
        a, b = (me.tail if me else None), (ng.tail if ng else None)
        if a is None or b is None:
            d = f"reactor or nginx p99/p50 not measured in {scen}"
        else:
            d = f"reactor p99/p50 {a:.2f} vs nginx {b:.2f}"
        lines.append(check(f"{scen} p99/p50 within 2x of nginx's", ratio(a, b), 2.0, d, at_most=True))
    print("\n".join(lines))


# --------------------------------------------------------------------------


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=None, help="seconds per wrk run (10; 2 with --quick)")
    p.add_argument("--runs", type=int, default=None, help="runs per server per scenario (3; 1 with --quick)")
    p.add_argument("--quick", action="store_true", help="smoke run: 1 run x 2 s, small-keepalive and file-10m")
    p.add_argument("--big", action="store_true", help="add the 1 GiB file scenario")
    p.add_argument(
        "--servers", default=",".join(srv.ALL_SERVERS), help="comma-separated, from: " + ",".join(srv.ALL_SERVERS)
    )
    p.add_argument("--scenarios", default=None, help="comma-separated, from: " + ",".join(SCENARIOS))
    p.add_argument("--no-pin", action="store_true", help="do not use taskset")
    p.add_argument("--verbose", action="store_true", help="print every wrk output")
    args = p.parse_args(argv)
    if args.duration is None:
        args.duration = 2 if args.quick else 10
    if args.runs is None:
        args.runs = 1 if args.quick else 3
    if args.scenarios:
        args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
        unknown = [s for s in args.scenarios if s not in SCENARIOS]
        if unknown:
            p.error(f"unknown scenario(s) {', '.join(unknown)}")
        if "file-1g" in args.scenarios:
            args.big = True
    else:
        args.scenarios = list(QUICK_SCENARIOS if args.quick else DEFAULT_SCENARIOS)
        if args.big:
            args.scenarios.append("file-1g")
    args.servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    unknown = [s for s in args.servers if s not in srv.ALL_SERVERS]
    if unknown:
        p.error(f"unknown server(s) {', '.join(unknown)}")
    if args.duration < 1 or args.runs < 1:
        p.error("--duration must be >= 1 and --runs >= 1")
    if args.duration != int(args.duration):
        p.error("--duration must be whole seconds (wrk -d)")
    args.duration = int(args.duration)
    return args


def interrupt(signum, frame):
    raise KeyboardInterrupt


def ignore_signals():
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)


def finish(started: float, failed: "dict[str, str]", label) -> int:
    """Print how long the benchmark took and which servers failed (``label(name)`` names
    them); the exit status: 1 if any failed, else 0."""
    print(f"\ndone in {time.monotonic() - started:.0f}s")
    if failed:
        print("servers that failed: " + ", ".join(f"{label(n)} ({why})" for n, why in failed.items()))
        return 1
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    args.wrk = shutil.which("wrk")
    if not args.wrk:
        print(f"wrk is not installed; install it with:\n    {WRK_INSTALL}", file=sys.stderr)
        return 2
    # SIGTERM (e.g. from tox or CI) and SIGINT unwind like Ctrl-C, so the
    # servers get stopped; SIGINT too, as it may arrive ignored from a parent.
    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)
    srv.raise_nofile_limit()

    started = time.monotonic()
    with srv.workspace() as tmp:
        docroot = srv.make_docroot(tmp, big=args.big)
        bench = Bench(args, tmp, docroot)
        print(
            f"load benchmark: python {sys.version.split()[0]} ({sys.executable}), "
            f"{os.cpu_count()} CPUs, {bench.pinning}"
        )
        print(f"scenarios: {', '.join(args.scenarios)}; {args.runs} run(s) x {args.duration}s per server, round-robin")
        all_sums: dict[str, dict[str, Summary]] = {}
        try:
            bench.start_servers(args.servers)
            if not bench.servers:
                print("no server could be started; nothing measured")
                return 1
            for name in args.scenarios:
                sc = SCENARIOS[name]
                example = next(iter(bench.servers.values()))
                print(f"\n-- {sc.name}: {' '.join(bench.wrk_command(sc, example))}")
                results = bench.run_scenario(sc)
                all_sums[name] = {n: summarise(rs) for n, rs in results.items()}
            for name in args.scenarios:
                print_table(SCENARIOS[name], all_sums[name], args.runs, args.duration)
            print_targets(all_sums)
        except KeyboardInterrupt:
            print("\ninterrupted; stopping servers", file=sys.stderr)
            return 130
        finally:
            ignore_signals()  # a second Ctrl-C must not cut the cleanup
            bench.stop_servers()
    return finish(started, bench.failed, srv.LABELS.__getitem__)


if __name__ == "__main__":
    sys.exit(main())

"""Application benchmark (issue 22): reactor running a WSGI application, beside the WSGI servers people use.

Two applications from wsgi_apps.py, each served by every server in turn (round-robin,
run after run), with ``wrk -t1 -c50`` keep-alive on loopback, the server pinned to one
CPU and wrk to the other (taskset), access logs off everywhere, the same Python:

    hello   a raw PEP 3333 application, 13 bytes with Content-Length
            reactor (4 application threads), reactor --threads 0, waitress (4 threads),
            gunicorn -k gthread --threads 4 -w 1, granian --interface wsgi (Rust, one
            worker), and reactor serving its 1 KiB static file (no --app) for reference
    flask   Flask's jsonify({"message": "Hello, World!"}): the same servers but the static one

The exact commands are in servers.py (``build_app_command``). One table per application
(medians of the runs, as load.py prints them), then the issue's targets, each MET or
NOT MET with its numbers:

    hello  reactor >= 2.0x waitress, >= 1.5x gunicorn; granian reported as a ratio
    hello  reactor --threads 0 against reactor's own static 1 KiB path (expected ~0.6x)
    flask  reactor >= 1.2x waitress, >= 1.0x gunicorn
    hello  the hand-off, 1/rate(4 threads) - 1/rate(--threads 0): at most 15 us a request

The static path's own budget (instructions per request with no --app) is counted by
instructions.py, not here: wrk cannot see 2%.

Run from the repository root (``tox -e bench`` runs it with its defaults):
    python tests/benchmarks/app_load.py                 # 3 runs x 10 s: about 6 minutes
    python tests/benchmarks/app_load.py --quick         # 1 run x 2 s
    python tests/benchmarks/app_load.py --apps hello --servers reactor-app,reactor-app-inline

Exit status: 0 when the measurements ran, whatever the numbers; 1 if a server failed;
2 if wrk is missing or the arguments are wrong; 130 if interrupted. Every server
started is stopped on the way out.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import load  # noqa: E402
import servers as srv  # noqa: E402

APPS = {
    "hello": "a raw WSGI hello (13 bytes, Content-Length), keep-alive, 50 connections",
    "flask": "Flask jsonify hello, keep-alive, 50 connections",
}
#: The attribute of wsgi_apps.py each application is.
CALLABLES = {"hello": "hello", "flask": "flask_hello"}
#: reactor's own static path beside the hello application: ``--threads 0`` is judged against it.
STATIC = "reactor"
HANDOFF_MAX_US = 15.0


def scenario(app: str, server: str) -> load.Scenario:
    path = "/" + srv.SMALL_NAME if server == STATIC else "/"
    return load.Scenario(app, APPS[app], path, 50)


def start(bench: load.Bench, app: str, names: list[str]) -> dict[str, srv.Server]:
    started: dict[str, srv.Server] = {}
    for name in names:
        reason = srv.missing_reason(name)
        if reason:
            print(f"SKIP {srv.LABELS[name]}: not installed: {reason}")
            continue
        try:
            if name == STATIC:
                server = srv.start_server(name, bench.docroot, bench.tmp, cpu=bench.server_cpu_id)
            else:
                server = srv.start_server(name, bench.docroot, bench.tmp, cpu=bench.server_cpu_id, app=CALLABLES[app])
        except srv.ServerError as e:
            print(f"FAIL {srv.LABELS[name]}: could not start: {e}")
            bench.failed[name] = "could not start"
            continue
        started[name] = server
        print(f"  started {label(name):<14} {server.url}  pid {server.pid}  $ {' '.join(server.cmd)}")
    return started


def label(name: str) -> str:
    return "reactor static" if name == STATIC else srv.LABELS[name]


def run_app(bench: load.Bench, app: str, names: list[str]) -> dict[str, load.Summary]:
    if app != "hello":
        names = [n for n in names if n != STATIC]
    running = start(bench, app, names)
    bench.servers = running
    results: dict[str, list[load.WrkResult]] = {n: [] for n in running}
    try:
        for run in range(bench.args.runs):
            for name, server in running.items():
                if name in bench.failed:
                    continue
                r = bench.run_wrk(scenario(app, name), server)
                if r is None:
                    continue
                results[name].append(r)
                flag = f"  errors: {r.error_text}" if r.errors else ""
                if max(r.other_load, r.steal) >= load.OTHER_LOAD_WARN:
                    flag += f"  [disturbed: other programs {load.fmt_pct(r.other_load)} of a pinned CPU]"
                print(
                    f"  {app} run {run + 1}/{bench.args.runs} {label(name):<14}{r.requests_per_sec:>9.0f} req/s"
                    f"  p50 {load.fmt_time(r.p50)}  p99 {load.fmt_time(r.p99)}"
                    f"  cpu {load.fmt_pct(r.server_cpu)}/{load.fmt_pct(r.wrk_cpu)}{flag}",
                    flush=True,
                )
    finally:
        srv.stop_servers(list(running.values()))
        bench.servers = {}
    return {n: load.summarise(rs) for n, rs in results.items() if rs}


def print_table(app: str, sums: dict[str, load.Summary], runs: int, duration: int) -> None:
    print(f"\n== {app}: {APPS[app]}  (median of {runs} x {duration}s)")
    head = (
        f"{'server':<16}{'req/s':>9}{'req/cpu-s':>11}{'p50':>10}{'p99':>10}  {'RSS (peak)':>11}{'errors':>7}"
        f"{'cpu srv/wrk':>13}"
    )
    print(head)
    print("-" * len(head))
    for name, s in sums.items():
        print(
            f"{label(name):<16}{s.rps:>9.0f}{per_cpu(s) or 0:>11.0f}{load.fmt_time(s.p50):>10}"
            f"{load.fmt_time(s.p99):>10}  {srv.fmt_bytes(s.rss_peak):>11}{s.errors:>7}"
            f"{load.fmt_pct(s.server_cpu):>7}/{load.fmt_pct(s.wrk_cpu):<5}"
        )
    me = sums.get("reactor-app")
    if me:
        others = [(n, s) for n, s in sums.items() if s is not me]
        print(
            "req/s ratios: "
            + ", ".join(f"reactor/{label(n)} {load.fmt_ratio(load.ratio(me.rps, s.rps))}" for n, s in others)
        )
        print(
            "req/cpu-s ratios: "
            + ", ".join(f"reactor/{label(n)} {load.fmt_ratio(load.ratio(per_cpu(me), per_cpu(s)))}" for n, s in others)
        )


def per_cpu(s: load.Summary) -> float | None:
    """Requests per CPU-second of the server's process (all its threads): what a busy machine disturbs least."""
    return s.rps / s.server_cpu if s.server_cpu else None


def print_targets(all_sums: dict[str, dict[str, load.Summary]]) -> None:
    print("\n== targets (medians of one run; in brackets the same ratio per CPU-second of the server)")

    def rate(app: str, name: str) -> float | None:
        s = all_sums.get(app, {}).get(name)
        return s.rps if s else None

    def compare(app: str, me: str, other: str, target: float | None) -> None:
        if app not in all_sums:
            return
        a, b = rate(app, me), rate(app, other)
        sa, sb = all_sums[app].get(me), all_sums[app].get(other)
        cpu = load.ratio(per_cpu(sa), per_cpu(sb)) if sa and sb else None
        detail = f"{label(me)} {a or 0:.0f} vs {label(other)} {b or 0:.0f} req/s; [{load.fmt_ratio(cpu)}]"
        if target is None:
            print(f"  {'report':<8} {app}: {label(me)} / {label(other)}: {load.fmt_ratio(load.ratio(a, b))} ({detail})")
        else:
            print(load.check(f"{app}: {label(me)} >= {target:g}x {label(other)}", load.ratio(a, b), target, detail))

    compare("hello", "reactor-app", "waitress-app", 2.0)
    compare("hello", "reactor-app", "gunicorn", 1.5)
    compare("hello", "reactor-app", "granian-wsgi", None)
    compare("hello", "reactor-app-inline", STATIC, None)
    compare("hello", "reactor-app", "reactor-app-inline", None)
    compare("flask", "reactor-app", "waitress-app", 1.2)
    compare("flask", "reactor-app", "gunicorn", 1.0)
    compare("flask", "reactor-app", "granian-wsgi", None)
    for app in all_sums:
        pooled, inline = rate(app, "reactor-app"), rate(app, "reactor-app-inline")
        if pooled and inline:
            cost_us = (1 / pooled - 1 / inline) * 1e6
            verdict = "MET" if cost_us <= HANDOFF_MAX_US else "NOT MET"
            cpu_a, cpu_b = per_cpu(all_sums[app]["reactor-app"]), per_cpu(all_sums[app]["reactor-app-inline"])
            cpu = f"{(1 / cpu_a - 1 / cpu_b) * 1e6:.1f} us" if cpu_a and cpu_b else "-"
            print(
                f"  {verdict:<8} {app}: the hand-off, 1/rate(4 threads) - 1/rate(--threads 0) = {cost_us:.1f} us"
                f" (target <= {HANDOFF_MAX_US:g} us; {1e6 / pooled:.1f} - {1e6 / inline:.1f} us; [CPU per request: {cpu}])"
            )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=int, default=None, help="seconds per wrk run (10; 2 with --quick)")
    p.add_argument("--runs", type=int, default=None, help="runs per server per application (3; 1 with --quick)")
    p.add_argument("--quick", action="store_true", help="smoke run: 1 run x 2 s")
    p.add_argument("--apps", default=",".join(APPS), help="comma-separated, from: " + ",".join(APPS))
    every = (*srv.APP_SERVERS, STATIC)
    p.add_argument("--servers", default=",".join(every), help="comma-separated, from: " + ",".join(every))
    p.add_argument("--no-pin", action="store_true", help="do not use taskset")
    p.add_argument("--verbose", action="store_true", help="print every wrk output")
    args = p.parse_args(argv)
    args.duration = args.duration or (2 if args.quick else 10)
    args.runs = args.runs or (1 if args.quick else 3)
    args.apps = [a for a in args.apps.split(",") if a]
    args.servers = [s for s in args.servers.split(",") if s]
    for kind, given, known in (("application", args.apps, APPS), ("server", args.servers, every)):
        unknown = [x for x in given if x not in known]
        if unknown:
            p.error(f"unknown {kind}(s) {', '.join(unknown)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.wrk = shutil.which("wrk")
    if not args.wrk:
        print(f"wrk is not installed; install it with:\n    {load.WRK_INSTALL}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, load.interrupt)
    signal.signal(signal.SIGINT, load.interrupt)
    srv.raise_nofile_limit()
    started = time.monotonic()
    with srv.workspace() as tmp:
        bench = load.Bench(args, tmp, srv.make_docroot(tmp))
        print(
            f"application benchmark: python {sys.version.split()[0]} ({sys.executable}), "
            f"{os.cpu_count()} CPUs, {bench.pinning}; {args.runs} run(s) x {args.duration}s, round-robin"
        )
        all_sums: dict[str, dict[str, load.Summary]] = {}
        try:
            for app in args.apps:
                print(f"\n-- {app}: wrk -t1 -c50 -d{args.duration}s --latency URL")
                all_sums[app] = run_app(bench, app, args.servers)
            for app, sums in all_sums.items():
                print_table(app, sums, args.runs, args.duration)
            print_targets(all_sums)
        except KeyboardInterrupt:
            print("\ninterrupted; servers stopped", file=sys.stderr)
            return 130
        finally:
            load.ignore_signals()
            srv.stop_servers(list(bench.servers.values()))
    return load.finish(started, bench.failed, label)


if __name__ == "__main__":
    sys.exit(main())

"""HTTPS load benchmark: reactor against uvicorn and nginx, all over TLS, in one run.

    tls-small-keepalive   1 KiB index.html, keep-alive, wrk -t1 -c50
    tls-file-10m          10 MiB file, keep-alive,     wrk -t1 -c4

Every server gets the same throwaway certificate (trustme, an ECDSA P-256 key) and
serves the benchmark document root (servers.make_docroot): reactor with
``--tls-cert/--tls-key`` and its access log off, uvicorn (uvloop + httptools, the bare
ASGI app serving from memory) with ``--ssl-certfile/--ssl-keyfile`` and no access log,
nginx (1 worker, ``ssl``, access_log off). Each server is pinned to one CPU and wrk to
another (taskset); the servers take turns, run after run, and the medians are printed
with reactor's ratios and the targets of the HTTPS issue (small keep-alive >= 1.2x
uvicorn; 10 MiB >= 0.7x nginx).

    python tests/benchmarks/tls_load.py             # 3 runs x 8 s
    python tests/benchmarks/tls_load.py --quick     # 1 run x 3 s

Needs wrk and nginx (bash tests/benchmarks/ensure_tools.sh), trustme, and uvicorn for
its column. Every server started is stopped on the way out. Exit status 0 when the
measurements ran, whatever the numbers; 1 if a server failed.
"""

from __future__ import annotations

import argparse
import re
import socket
import ssl
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import servers as srv  # noqa: E402

SCENARIOS = {
    "tls-small-keepalive": ("/" + srv.SMALL_NAME, 50),
    "tls-file-10m": ("/" + srv.MEDIUM_NAME, 4),
}


def command(name: str, port: int, docroot: Path, tmp: Path, cert: Path, key: Path) -> tuple[list[str], dict, Path]:
    cmd, env, cwd = srv.build_command(name, port, docroot, tmp)
    if name == "reactor":
        cmd += ["--tls-cert", str(cert), "--tls-key", str(key)]  # otherwise the defaults (max=100 per connection)
    elif name == "uvicorn":
        cmd += ["--ssl-certfile", str(cert), "--ssl-keyfile", str(key)]
    elif name == "nginx":  # the plain configuration, its listener made TLS (same suites and versions)
        conf = tmp / "nginx.conf"
        text = conf.read_text().replace(
            "listen 127.0.0.1:%d;" % port,
            "listen 127.0.0.1:%d ssl;\n        ssl_certificate %s;\n        ssl_certificate_key %s;\n"
            "        ssl_protocols TLSv1.2 TLSv1.3;" % (port, cert, key),
        )
        assert " ssl;" in text, "the nginx configuration changed: update tls_load.py"
        conf.write_text(text)
    return cmd, env, cwd


def https_ready(port: int, context: ssl.SSLContext, timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    request = b"GET /index.html HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n" % port
    while time.monotonic() < deadline:
        try:
            with context.wrap_socket(
                socket.create_connection(("127.0.0.1", port), timeout=2), server_hostname="localhost"
            ) as sock:
                sock.sendall(request)
                data = b""
                while True:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            if data.startswith(b"HTTP/1.1 200"):
                return True
        except (OSError, ssl.SSLError):
            pass
        time.sleep(0.05)  # poll interval while the server starts
    return False


def wrk(port: int, path: str, connections: int, seconds: float, cpu: int | None) -> tuple[float, float]:
    """(requests/s, MiB/s) from one wrk run."""
    out = subprocess.run(
        srv.pin_prefix(cpu)
        + ["wrk", "-t1", "-c%d" % connections, "-d%gs" % seconds, "https://localhost:%d%s" % (port, path)],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    transfer = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out)
    scale = {"B": 1 / 2**20, "KB": 1 / 1024, "MB": 1, "GB": 1024}[transfer.group(2)]
    return rps, float(transfer.group(1)) * scale


def main(argv: list[str] | None = None) -> int:
    import trustme

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--servers", default="reactor,uvicorn,nginx")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.duration = 1, 3.0
    cpus = srv.allowed_cpus()
    server_cpu, wrk_cpu = (cpus[0], cpus[1]) if len(cpus) >= 2 else (None, None)
    names = [n for n in args.servers.split(",") if not srv.missing_reason(n)]
    for n in args.servers.split(","):
        if srv.missing_reason(n):
            print("skipping %s: %s" % (n, srv.missing_reason(n)))
    results: dict[str, dict[str, list[tuple[float, float]]]] = {s: {n: [] for n in names} for s in SCENARIOS}
    with srv.workspace("reactor-tls-bench-") as tmp:
        docroot = srv.make_docroot(tmp)
        ca = trustme.CA()
        issued = ca.issue_cert("localhost", "127.0.0.1")
        cert, key = tmp / "cert.pem", tmp / "key.pem"
        issued.private_key_and_cert_chain_pem.write_to_path(str(cert))
        issued.private_key_pem.write_to_path(str(key))
        client = ssl.create_default_context()
        ca.configure_trust(client)
        for run in range(args.runs):
            for name in names:
                port = srv.free_port()
                stmp = tmp / ("%s-%d" % (name, run))
                stmp.mkdir()
                stmp.chmod(0o755)
                cmd, env, cwd = command(name, port, docroot, stmp, cert, key)
                log = open(stmp / "log", "wb")
                proc = subprocess.Popen(
                    srv.pin_prefix(server_cpu) + cmd,
                    cwd=cwd,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
                try:
                    if not https_ready(port, client):
                        print("%s did not serve over TLS:\n%s" % (name, (stmp / "log").read_text()[-2000:]))
                        return 1
                    for scenario, (path, connections) in SCENARIOS.items():
                        results[scenario][name].append(wrk(port, path, connections, args.duration, wrk_cpu))
                finally:
                    srv.stop_process_groups([proc])
                    log.close()
    print(
        "\nHTTPS, %d run(s) x %g s, servers on CPU %s, wrk on CPU %s; medians\n"
        % (args.runs, args.duration, server_cpu, wrk_cpu)
    )
    for scenario in SCENARIOS:
        print("| %s | req/s | MiB/s | reactor is |" % scenario)
        print("|---|---|---|---|")
        medians = {
            n: (statistics.median(r for r, _ in v), statistics.median(m for _, m in v))
            for n, v in results[scenario].items()
            if v
        }
        for name, (rps, mibs) in medians.items():
            ratio = medians["reactor"][0] / rps if "reactor" in medians and rps else float("nan")
            print("| %s | %.0f | %.1f | %s |" % (name, rps, mibs, "" if name == "reactor" else "%.2fx" % ratio))
        print()
    small = {n: statistics.median(r for r, _ in v) for n, v in results["tls-small-keepalive"].items() if v}
    big = {n: statistics.median(m for _, m in v) for n, v in results["tls-file-10m"].items() if v}
    if "reactor" in small and "uvicorn" in small:
        ratio = small["reactor"] / small["uvicorn"]
        print(
            "target: small keep-alive over TLS >= 1.2x uvicorn: %.2fx %s"
            % (ratio, "MET" if ratio >= 1.2 else "NOT MET")
        )
    if "reactor" in big and "nginx" in big:
        ratio = big["reactor"] / big["nginx"]
        print("target: 10 MiB over TLS >= 0.7x nginx: %.2fx %s" % (ratio, "MET" if ratio >= 0.7 else "NOT MET"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

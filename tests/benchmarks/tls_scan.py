"""Scan reactor's HTTPS listener with sslyze: versions, cipher suites, compression, renegotiation.

Run ``python3 -m tox -e tls-scan`` (or, with sslyze and trustme installed,
``python3 tests/benchmarks/tls_scan.py``). It makes a throwaway CA and certificate with
trustme, starts ``python -m reactor --tls-cert … --tls-key …`` on a free loopback port,
runs the ``sslyze`` command against it, prints a short summary (the table in
docs/tls.md), and stops the server. Exit status 1 if the scan finds something weak:
SSL 2/3, TLS 1.0/1.1, compression, insecure renegotiation, Heartbleed or ROBOT.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCANS = [
    "--sslv2",
    "--sslv3",
    "--tlsv1",
    "--tlsv1_1",
    "--tlsv1_2",
    "--tlsv1_3",
    "--compression",
    "--reneg",
    "--heartbleed",
    "--robot",
    "--fallback",
    "--elliptic_curves",
]


def main() -> int:
    import trustme

    sslyze = shutil.which("sslyze") or os.path.join(os.path.dirname(sys.executable), "sslyze")
    with tempfile.TemporaryDirectory() as folder:
        ca = trustme.CA()
        issued = ca.issue_cert("localhost", "127.0.0.1")
        cert, key = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
        issued.private_key_and_cert_chain_pem.write_to_path(cert)
        issued.private_key_pem.write_to_path(key)
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "reactor",
                "--port",
                "0",
                "--log-level",
                "warning",
                "--tls-cert",
                cert,
                "--tls-key",
                key,
            ],
            cwd=REPO,
            stderr=subprocess.PIPE,
        )
        try:
            assert server.stderr is not None
            line = server.stderr.readline().decode()
            match = re.search(r"https://127\.0\.0\.1:(\d+)/", line)
            if not match:
                print("the server did not start: %s" % line, file=sys.stderr)
                return 1
            out = os.path.join(folder, "scan.json")
            subprocess.run(
                [sslyze, *SCANS, "--json_out", out, "127.0.0.1:%s" % match.group(1)],
                check=False,
                stdout=subprocess.DEVNULL,
                timeout=300,
            )
            with open(out) as file:
                report = json.load(file)
        finally:
            server.terminate()
            server.wait(10)
    result = report["server_scan_results"][0]["scan_result"]
    weak = []
    print("| check | result |\n|---|---|")
    for name, label in [
        ("ssl_2_0_cipher_suites", "SSL 2.0"),
        ("ssl_3_0_cipher_suites", "SSL 3.0"),
        ("tls_1_0_cipher_suites", "TLS 1.0"),
        ("tls_1_1_cipher_suites", "TLS 1.1"),
        ("tls_1_2_cipher_suites", "TLS 1.2"),
        ("tls_1_3_cipher_suites", "TLS 1.3"),
    ]:
        suites = [s["cipher_suite"]["name"] for s in result[name]["result"]["accepted_cipher_suites"]]
        print("| %s | %s |" % (label, ", ".join(suites) if suites else "refused"))
        if suites and label in ("SSL 2.0", "SSL 3.0", "TLS 1.0", "TLS 1.1"):
            weak.append(label)
    compression = result["tls_compression"]["result"]["supports_compression"]
    reneg = result["session_renegotiation"]["result"]
    heartbleed = result["heartbleed"]["result"]["is_vulnerable_to_heartbleed"]
    robot = result["robot"]["result"]["robot_result"]
    fallback = result["tls_fallback_scsv"]["result"]["supports_fallback_scsv"]
    curves = [c["name"] for c in (result["elliptic_curves"]["result"]["supported_curves"] or [])]
    print("| compression | %s |" % ("supported" if compression else "off"))
    print(
        "| client-initiated renegotiation | %s |"
        % ("accepted" if reneg["is_vulnerable_to_client_renegotiation_dos"] else "refused")
    )
    print("| secure renegotiation | %s |" % ("supported" if reneg["supports_secure_renegotiation"] else "not offered"))
    print("| Heartbleed | %s |" % ("VULNERABLE" if heartbleed else "not vulnerable"))
    print("| ROBOT | %s |" % robot)
    print("| TLS_FALLBACK_SCSV | %s |" % ("supported" if fallback else "not supported"))
    print("| elliptic curves | %s |" % ", ".join(curves))
    if compression:
        weak.append("compression")
    if reneg["is_vulnerable_to_client_renegotiation_dos"]:
        weak.append("client renegotiation")
    if heartbleed:
        weak.append("heartbleed")
    if robot.startswith("VULNERABLE"):
        weak.append("robot")
    if weak:
        print("weak: %s" % ", ".join(weak), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

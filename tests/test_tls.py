"""HTTPS: the handshake as a state, protocol versions and ALPN, bad input, reload, and the CLI.

Clients: http.client and raw sockets wrapped in ``ssl``, ``curl --cacert`` and
``openssl s_client``. Certificates come from a throwaway ``trustme`` CA (conftest).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time

import pytest

from conftest import RawClient, recv_until_closed, wait_for

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed (.ci/run installs it)")


@pytest.fixture
def tls_server(make_server, tls_files):
    def make(**overrides):
        return make_server(tls_cert_file=tls_files.cert, tls_key_file=tls_files.key, **overrides)

    return make


def states(running):
    return running.call(lambda: sorted(c.state.value for c in running.server.sessions.values()))


# -- the handshake ------------------------------------------------------------------------


def test_handshake_is_a_state_and_the_url_says_https(tls_server):
    running = tls_server()
    assert running.url.startswith("https://127.0.0.1:")
    sock = socket.create_connection((running.host, running.port), timeout=5)  # TCP only, no ClientHello
    wait_for(lambda: states(running) == ["handshaking"], what="a connection in handshaking")
    wrapped = running.tls.wrap_socket(sock, server_hostname=running.host)
    wait_for(lambda: states(running) == ["idle"], what="the handshake to finish")
    assert wrapped.version() in ("TLSv1.2", "TLSv1.3")
    assert wrapped.selected_alpn_protocol() in (None, "http/1.1")
    status, fields, body = RawClient(wrapped).get("/sample.txt").response()
    assert status == 200 and body == (running.root / "sample.txt").read_bytes()
    wrapped.close()


def test_alpn_offers_http_1_1_only(tls_server):
    running = tls_server()
    context = running.tls
    context.set_alpn_protocols(["h2", "http/1.1"])
    raw = socket.create_connection((running.host, running.port), timeout=5)
    with context.wrap_socket(raw, server_hostname=running.host) as sock:
        assert sock.selected_alpn_protocol() == "http/1.1"


def test_client_that_never_sends_a_client_hello_is_closed_after_the_handshake_timeout(tls_server):
    running = tls_server(tls_handshake_timeout_s=0.3)
    sock = socket.create_connection((running.host, running.port), timeout=5)
    started = time.monotonic()
    assert recv_until_closed(sock) == b""
    assert time.monotonic() - started < 5
    wait_for(lambda: states(running) == [], what="the table to empty")


def test_hundreds_of_stalled_handshakes_do_not_delay_a_served_client(tls_server):
    running = tls_server()
    stalled = [socket.create_connection((running.host, running.port), timeout=5) for _ in range(200)]
    try:
        wait_for(lambda: len(states(running)) == 200, what="200 stalled handshakes")
        worst = 0.0
        for _ in range(10):
            started = time.monotonic()
            conn = running.http(timeout=5)
            conn.request("GET", "/sample.txt")
            response = conn.getresponse()
            assert response.status == 200 and response.read()
            conn.close()
            worst = max(worst, time.monotonic() - started)
        assert worst < 1.0, worst  # each is a fresh handshake too; the stalled ones cost nothing
    finally:
        for sock in stalled:
            sock.close()


def test_plain_http_to_the_tls_port_gets_a_plain_400(tls_server):
    running = tls_server()
    with socket.create_connection((running.host, running.port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        reply = recv_until_closed(sock)
    assert reply.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"Connection: close" in reply and b"https://" in reply
    assert running.call(lambda: len(running.server.sessions)) == 0


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x16\x03\x01\x00\x05hello",  # a handshake record that holds no ClientHello
        b"\x16\x03\x03\xff\xff" + b"\x00" * 64,  # a record longer than the TLS limit
        b"\x16" + os.urandom(512),
    ],
    ids=["not-a-client-hello", "oversized-record", "random"],
)
def test_garbage_records_cost_only_that_connection(tls_server, caplog, garbage):
    caplog.set_level(logging.DEBUG, logger="reactor")
    running = tls_server()
    bystander = RawClient(running.connect())
    with socket.create_connection((running.host, running.port), timeout=5) as sock:
        sock.sendall(garbage)
        reply = recv_until_closed(sock)
    assert not reply.startswith(b"HTTP/")  # at most a TLS alert
    assert bystander.get("/sample.txt").response()[0] == 200
    assert not [r for r in caplog.records if r.exc_info], "a TLS error is not a traceback"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_reset_mid_handshake_costs_only_that_connection(tls_server, caplog):
    caplog.set_level(logging.DEBUG, logger="reactor")
    running = tls_server()
    bystander = RawClient(running.connect())
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = running.tls.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        client.do_handshake()
    sock = socket.create_connection((running.host, running.port), timeout=5)
    sock.sendall(outgoing.read())  # the ClientHello, then a reset instead of the next flight
    assert sock.recv(1)  # the server answered with its flight
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()  # RST
    wait_for(lambda: running.call(lambda: len(running.server.sessions)) == 1, what="the reset one to go")
    assert bystander.get("/sample.txt").response()[0] == 200
    assert not [r for r in caplog.records if r.exc_info]


def test_graceful_close_sends_close_notify(tls_server):
    running = tls_server()
    sock = running.connect()
    client = RawClient(sock)
    status, fields, _body = client.get("/sample.txt", extra="Connection: close\r\n").response()
    assert status == 200 and fields["connection"] == "close"
    assert sock.recv(100) == b""  # SSLSocket returns b"" on close_notify; a bare FIN would raise SSLEOFError


def test_keep_alive_pipelining_and_expect_continue_over_tls(tls_server):
    running = tls_server()
    client = RawClient(running.connect())
    client.send(("GET /sample.txt HTTP/1.1\r\nHost: %s\r\n\r\n" % client.host).encode() * 3)
    for _ in range(3):
        assert client.response()[0] == 200
    body = b'{"over": "tls"}'
    client.send(
        b"POST /upload HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nExpect: 100-continue\r\n"
        b"Content-Length: %d\r\n\r\n" % (client.host.encode(), len(body))
    )
    assert client.response()[0] == 100
    client.send(body)
    status, fields, _ = client.response()
    assert status == 201
    assert (running.root / fields["location"].lstrip("/")).read_bytes() == body


# -- protocol versions and a real client --------------------------------------------------------------


@needs_openssl
@pytest.mark.parametrize("flag, accepted", [("-tls1", False), ("-tls1_1", False), ("-tls1_2", True), ("-tls1_3", True)])
def test_openssl_s_client_protocol_versions_and_alpn(tls_server, tls_files, flag, accepted):
    running = tls_server()
    result = subprocess.run(
        [
            "openssl",
            "s_client",
            "-connect",
            "127.0.0.1:%d" % running.port,
            flag,
            "-alpn",
            "http/1.1",
            "-CAfile",
            str(tls_files.ca_file),
            "-servername",
            "localhost",
            "-ign_eof",
        ],
        input=b"GET /sample.txt HTTP/1.1\r\nHost: localhost:%d\r\nConnection: close\r\n\r\n" % running.port,
        capture_output=True,
        timeout=20,
    )
    output = result.stdout + result.stderr
    if accepted:
        assert b"HTTP/1.1 200 OK" in output, output
        assert b"Verify return code: 0 (ok)" in output, output
        assert b"ALPN protocol: http/1.1" in output, output
    else:
        assert b"HTTP/1.1" not in output, output


def test_the_context_refuses_tls_1_1_and_older_by_its_minimum_version(tls_files):
    """Not only by its cipher list: an OpenSSL whose TLS 1.2 suites also work in 1.1 would let 1.1 in."""
    from reactor.transport import tls_context

    context = tls_context(str(tls_files.cert), str(tls_files.key))
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.maximum_version in (ssl.TLSVersion.MAXIMUM_SUPPORTED, ssl.TLSVersion.TLSv1_3)
    assert context.options & ssl.OP_NO_COMPRESSION


@needs_curl
def test_curl_with_cacert_downloads_and_uploads(tls_server, tls_files, tmp_path):
    running = tls_server()
    out = tmp_path / "photo.jpg"
    result = subprocess.run(
        [
            "curl",
            "-sS",
            "--cacert",
            str(tls_files.ca_file),
            "-o",
            str(out),
            "-w",
            "%{http_code}",
            "https://localhost:%d/photo.jpg" % running.port,
        ],
        capture_output=True,
        timeout=20,
    )
    assert result.stdout == b"200", result.stderr
    assert out.read_bytes() == (running.root / "photo.jpg").read_bytes()
    result = subprocess.run(
        [
            "curl",
            "-sS",
            "--cacert",
            str(tls_files.ca_file),
            "-H",
            "Content-Type: application/json",
            "--data",
            '{"hello": "tls"}',
            "-w",
            "%{http_code}",
            "-o",
            "/dev/null",
            "https://localhost:%d/upload" % running.port,
        ],
        capture_output=True,
        timeout=20,
    )
    assert result.stdout == b"201", result.stderr


# -- the command line: bad files, reload -----------------------------------------------------------------


def _cli(run_cli, tls_files, *extra):
    return run_cli("--port", "0", "--tls-cert", str(tls_files.cert), "--tls-key", str(tls_files.key), *extra)


def test_cli_serves_https(run_cli, tls_files):
    cli = _cli(run_cli, tls_files)
    assert cli.port, cli.output
    assert b"https://127.0.0.1:%d/" % cli.port in cli.output


@pytest.mark.parametrize("problem", ["missing", "mismatched", "not-pem"])
def test_bad_certificate_or_key_is_one_line_and_exit_1(tls_files, tmp_path, problem):
    import trustme

    cert, key = str(tls_files.cert), str(tls_files.key)
    if problem == "missing":
        key = str(tmp_path / "nope.pem")
    elif problem == "mismatched":
        other = trustme.CA().issue_cert("localhost")
        other.private_key_pem.write_to_path(str(tmp_path / "other.pem"))
        key = str(tmp_path / "other.pem")
    else:
        (tmp_path / "junk.pem").write_text("not a certificate\n")
        cert = str(tmp_path / "junk.pem")
    result = subprocess.run(
        ["python3", "-m", "reactor", "--port", "0", "--tls-cert", cert, "--tls-key", key],
        capture_output=True,
        timeout=20,
        cwd=str(tmp_path),
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert result.returncode == 1
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("python3 -m reactor: cannot use the TLS certificate and key: "), lines


def test_cert_without_key_is_a_usage_error(tmp_path, tls_files):
    result = subprocess.run(
        ["python3", "-m", "reactor", "--tls-cert", str(tls_files.cert)],
        capture_output=True,
        timeout=20,
        cwd=str(tmp_path),
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert result.returncode == 2
    assert b"--tls-cert and --tls-key go together" in result.stderr


def _serial(port):
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5)) as sock:
        return ssl.DER_cert_to_PEM_cert(sock.getpeercert(binary_form=True))


def test_sighup_reloads_the_certificate_without_dropping_connections(run_cli, tmp_path):
    import trustme

    ca = trustme.CA()
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"

    def issue():
        issued = ca.issue_cert("localhost", "127.0.0.1")
        issued.private_key_and_cert_chain_pem.write_to_path(str(cert))
        issued.private_key_pem.write_to_path(str(key))
        return issued.cert_chain_pems[0].bytes().decode()

    first = issue()
    cli = run_cli("--port", "0", "--tls-cert", str(cert), "--tls-key", str(key))
    assert cli.port, cli.output
    assert _serial(cli.port) == first
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    held = RawClient(
        client_context.wrap_socket(
            socket.create_connection(("127.0.0.1", cli.port), timeout=5), server_hostname="localhost"
        )
    )
    assert held.get("/sample.txt").response()[0] == 200
    second = issue()
    cli.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: _serial(cli.port) == second, what="new handshakes to use the new certificate")
    assert held.get("/sample.txt").response()[0] == 200  # the open connection went on
    # A bad new pair is logged and the old one kept.
    key.write_text("broken\n")
    cli.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: b"TLS reload failed" in cli.read_available(), what="the reload error")
    assert _serial(cli.port) == second
    assert held.get("/sample.txt").response()[0] == 200

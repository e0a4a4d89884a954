"""Host validation against DNS rebinding (RFC 9112 §3.2 for presence and syntax)."""

from __future__ import annotations

import os
import select
import socket

import pytest

from conftest import REPO, CliServer, RawClient, wait_for
from reactor.cli import local_addresses
from reactor.handlers import allowed_hosts, local_authorities
from reactor.handlers.quota import LEDGER_NAME

BOTH_TRANSPORTS = True  # each test with a server runs over plain TCP and over TLS (conftest)


def status_for(server, host_line, version="1.1", target="/sample.txt"):
    client = RawClient(server.connect())
    try:
        client.send(("GET %s HTTP/%s\r\n%s\r\n" % (target, version, host_line)).encode())
        return client.response()[0]
    finally:
        client.close()


def test_missing_host_in_http11_is_400(server):
    assert status_for(server, "") == 400


def test_http10_without_host_is_served(server):
    assert status_for(server, "", version="1.0") == 200


def test_two_host_fields_are_400(server):
    assert status_for(server, "Host: localhost\r\nHost: localhost\r\n") == 400


@pytest.mark.parametrize("name", ["localhost", "127.0.0.1", "LOCALHOST"])
def test_loopback_names_with_our_port_are_accepted(server, name):
    assert status_for(server, "Host: %s:%d\r\n" % (name, server.port)) == 200


@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "localhost:1", "127.0.0.2:{port}", ""])
def test_other_hosts_are_403(server, host):
    assert status_for(server, "Host: %s\r\n" % host.format(port=server.port)) == 403


@pytest.mark.parametrize("name", ["localhost", "127.0.0.1"])
def test_a_name_without_the_port_is_403_on_a_port_browsers_do_not_leave_out(server, name):
    """Only on 80 (443 for HTTPS) may the port be left out of Host, as browsers do there."""
    assert server.port not in (80, 443)
    assert status_for(server, "Host: %s\r\n" % name) == 403
    assert status_for(server, "Host: %s:%d\r\n" % (name, server.port)) == 200


def test_allow_host_values(make_server):
    server = make_server(allowed_hosts=("myapp.test", "other.test:9999"))
    assert status_for(server, "Host: myapp.test:%d\r\n" % server.port) == 200
    assert status_for(server, "Host: myapp.test\r\n") == 200
    assert status_for(server, "Host: other.test:9999\r\n") == 200
    assert status_for(server, "Host: other.test:1234\r\n") == 403


def test_absolute_form_authority_is_checked_like_host(server):
    ok = "http://localhost:%d/sample.txt" % server.port
    assert status_for(server, "Host: whatever\r\n", target=ok) == 200
    assert status_for(server, "Host: localhost:%d\r\n" % server.port, target="http://evil.example/sample.txt") == 403


def test_upload_is_protected_too(server):
    client = RawClient(server.connect())
    client.send(
        b"POST /upload HTTP/1.1\r\nHost: evil.example\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    )
    assert client.response()[0] == 403
    assert [p.name for p in (server.root / "uploads").iterdir() if p.name not in (".gitkeep", LEDGER_NAME)] == []


def _status_via(address, port, host_value, family=socket.AF_INET):
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(5)
    try:
        sock.connect((address, port))
    except OSError as exc:
        sock.close()
        pytest.skip("cannot connect to %s: %s" % (address, exc))
    client = RawClient(sock)
    try:
        client.send(("GET /sample.txt HTTP/1.1\r\nHost: %s\r\n\r\n" % host_value).encode())
        return client.response()[0]
    finally:
        client.close()


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


needs_ipv6 = pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback (::1) on this machine")


@pytest.mark.plain_only  # a raw socket to 127.0.0.2, which the test certificate does not name
def test_wildcard_bind_accepts_the_address_the_connection_arrived_on(make_server):
    server = make_server(host="0.0.0.0")
    # 127.0.0.2 stands for a LAN address: any 127/8 address reaches the loopback interface.
    assert _status_via("127.0.0.2", server.port, "127.0.0.2:%d" % server.port) == 200
    assert _status_via("127.0.0.2", server.port, "127.0.0.3:%d" % server.port) == 403  # not where it arrived
    assert _status_via("127.0.0.2", server.port, "127.0.0.2:%d" % (server.port + 1)) == 403  # not our port
    assert _status_via("127.0.0.2", server.port, "rebind.example:%d" % server.port) == 403


@pytest.mark.plain_only  # raw sockets to each address, which the test certificate does not name
def test_every_url_the_startup_line_lists_answers_200(make_server):
    server = make_server(host="0.0.0.0")
    addresses = local_addresses(ipv6=False)
    assert addresses[0] == "127.0.0.1"
    for ip in addresses:
        assert _status_via(ip, server.port, "%s:%d" % (ip, server.port)) == 200, ip


@needs_ipv6
@pytest.mark.plain_only  # a raw socket to ::1; the rule reads transport.local_host, the same for TLS
@pytest.mark.parametrize("bind", ["::", "::1"])
def test_ipv6_host_in_brackets_is_accepted(make_server, bind):
    server = make_server(host=bind)
    assert _status_via("::1", server.port, "[::1]:%d" % server.port, socket.AF_INET6) == 200
    assert _status_via("::1", server.port, "[::2]:%d" % server.port, socket.AF_INET6) == 403


@needs_ipv6
@pytest.mark.plain_only  # a raw socket to 127.0.0.2, which the test certificate does not name
def test_dual_stack_bind_accepts_the_ipv4_address_of_a_mapped_connection(make_server):
    server = make_server(host="::")
    assert _status_via("127.0.0.2", server.port, "127.0.0.2:%d" % server.port) == 200


def test_allow_host_star_turns_the_check_off(make_server):
    server = make_server(allowed_hosts=("*",))
    assert status_for(server, "Host: anything.example\r\n") == 200
    assert status_for(server, "Host: evil.example:1\r\n") == 200


def test_local_authorities():
    assert local_authorities("192.0.2.7", 8080) == ("192.0.2.7:8080",)
    assert local_authorities("::1", 8080) == ("[::1]:8080",)
    assert local_authorities("::ffff:192.0.2.7", 80) == (
        "[::ffff:192.0.2.7]:80",
        "192.0.2.7:80",
        "[::ffff:192.0.2.7]",
        "192.0.2.7",
    )
    assert local_authorities("fe80::1%eth0", 81) == ("[fe80::1]:81",)
    assert local_authorities("192.0.2.7", 443, default_port=443) == ("192.0.2.7:443", "192.0.2.7")
    assert local_authorities("192.0.2.7", 443) == ("192.0.2.7:443",)


def test_the_default_port_may_be_left_out_http_80_https_443():
    authorities, _names = allowed_hosts("127.0.0.1", 443, (), default_port=443)
    assert {"localhost", "127.0.0.1", "localhost:443"} <= authorities
    authorities, _names = allowed_hosts("127.0.0.1", 443, ())
    assert "localhost" not in authorities and "localhost:443" in authorities


def test_wildcard_startup_lines_list_urls_and_name_allow_host(site):
    cli = CliServer(["--host", "0.0.0.0", "--port", "0", "-d", str(site)], cwd=REPO)
    try:
        assert cli.port, cli.output
        first = cli.output.split(b"\n", 1)[0]
        assert b"http://127.0.0.1:%d/" % cli.port in first and b"0.0.0.0" not in first
        wait_for(lambda: b"--allow-host" in cli.output or _read_more(cli), what="the --allow-host hint")
    finally:
        cli.stop()


def test_allow_host_star_warns_at_start(site):
    cli = CliServer(["--allow-host", "*", "--port", "0", "-d", str(site)], cwd=REPO)
    try:
        assert cli.port, cli.output
        assert b"DNS rebinding" in cli.output
    finally:
        cli.stop()


def _read_more(cli) -> bool:
    ready, _, _ = select.select([cli.proc.stderr], [], [], 0.1)
    if ready:
        cli.output += os.read(cli.proc.stderr.fileno(), 4096)
    return False

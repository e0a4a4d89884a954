"""Host validation against DNS rebinding (RFC 9112 §3.2 for presence and syntax)."""

from __future__ import annotations

import pytest

from conftest import RawClient

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
    client.send(b"POST /upload HTTP/1.1\r\nHost: evil.example\r\nContent-Type: application/json\r\n"
                b"Content-Length: 2\r\n\r\n{}")
    assert client.response()[0] == 403
    assert [p.name for p in (server.root / "uploads").iterdir() if p.name != ".gitkeep"] == []

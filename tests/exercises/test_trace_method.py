"""Exercise 2 (docs/exercises.md): TRACE echoes the request as message/http (RFC 9110 §9.3.8)."""

from conftest import RawClient


def test_trace_echoes_request_without_credentials(server):
    client = RawClient(server.connect())
    client.send(
        (
            "TRACE /anything HTTP/1.1\r\nHost: %s\r\nX-Probe: 42\r\nCookie: secret=1\r\n"
            "Authorization: Basic Zm9vOmJhcg==\r\n\r\n" % client.host
        ).encode()
    )
    status, fields, body = client.response()
    assert status == 200
    assert fields["content-type"] == "message/http"
    assert body.startswith(b"TRACE /anything HTTP/1.1\r\n")
    assert b"x-probe: 42" in body.lower()
    assert b"secret" not in body and b"Zm9v" not in body

"""POST /upload: JSON stored atomically under uploads/, and every refusal leaves nothing behind."""

from __future__ import annotations

import concurrent.futures
import json
import re
import shutil
import subprocess

import pytest

from reactor.errors import HTTPError
from reactor.handlers.quota import LEDGER_NAME
from reactor.handlers.upload import is_json_media_type, store_upload, validate_json

BOTH_TRANSPORTS = True  # each test with a server runs over plain TCP and over TLS (conftest)

NAME = re.compile(r"^upload_\d{8}_\d{6}_[0-9a-f]{4}\.json$")


def post(server, body, content_type="application/json", target="/upload", headers=None):
    conn = server.http(timeout=10)
    try:
        fields = {"Content-Type": content_type} if content_type else {}
        fields.update(headers or {})
        conn.request("POST", target, body=body, headers=fields)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def stored(server):
    uploads = server.root / "uploads"
    return (
        sorted(p.name for p in uploads.iterdir() if p.name not in (".gitkeep", LEDGER_NAME)) if uploads.exists() else []
    )


def test_upload_is_stored_and_answered_201(server):
    body = b'{"name": "reactor", "tags": ["http"]}'
    status, fields, answer = post(server, body)
    assert status == 201
    document = json.loads(answer)
    assert NAME.match(document["file"])
    assert fields["location"] == "/uploads/" + document["file"] == document["location"]
    assert document["bytes"] == len(body)
    assert (server.root / "uploads" / document["file"]).read_bytes() == body
    assert stored(server) == [document["file"]]


def test_charset_parameter_allowed(server):
    assert post(server, b"[1]", "application/json; charset=UTF-8")[0] == 201


def test_uploads_directory_is_created_when_missing(server):
    shutil.rmtree(server.root / "uploads")
    assert post(server, b"{}")[0] == 201
    assert len(stored(server)) == 1


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", None, "application/json; charset=latin-1"]
)
def test_wrong_content_type_is_415_and_nothing_stored(server, content_type):
    assert post(server, b"{}", content_type)[0] == 415
    assert stored(server) == []


@pytest.mark.parametrize("body", [b"{", b"", b"   ", b"{'a': 1}", b"NaN", b'{"a": Infinity}', b"\xff\xfe", b"[1] [2]"])
def test_invalid_json_is_400_and_nothing_stored(server, body):
    assert post(server, body)[0] == 400
    assert stored(server) == []


def test_body_over_limit_is_413_and_nothing_stored(make_server):
    server = make_server(max_body_bytes=1000)
    payload = json.dumps({"x": "a" * 2000}).encode()
    assert post(server, payload)[0] == 413
    assert post(server, json.dumps({"x": "a" * 900}).encode())[0] == 201
    assert len(stored(server)) == 1


def test_get_on_upload_is_405_with_post_allowed(server):
    conn = server.http(timeout=5)
    conn.request("GET", "/upload")
    response = conn.getresponse()
    response.read()
    assert response.status == 405
    assert "POST" in response.getheader("Allow")


def test_post_to_a_file_is_405(server):
    assert post(server, b"{}", target="/sample.txt")[0] == 405
    assert stored(server) == []


def test_many_uploads_in_one_second_get_unique_names(server):
    def one(i):
        return post(server, json.dumps({"i": i}).encode())

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(60)))
    names = [json.loads(body)["file"] for status, _, body in results if status == 201]
    assert len(names) == 60 and len(set(names)) == 60
    assert sorted(names) == stored(server)
    for name in names:
        json.loads((server.root / "uploads" / name).read_bytes())


def test_chunked_upload(server):
    conn = server.http(timeout=5)
    conn.request(
        "POST",
        "/upload",
        body=iter([b'{"a":', b" [1, 2", b", 3]}"]),
        headers={"Content-Type": "application/json"},
        encode_chunked=True,
    )
    response = conn.getresponse()
    document = json.loads(response.read())
    assert response.status == 201
    assert (server.root / "uploads" / document["file"]).read_bytes() == b'{"a": [1, 2, 3]}'


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed (.ci/run installs it)")
def test_curl_upload_example_from_readme(server):
    result = subprocess.run(
        [
            "curl",
            *server.curl_args,
            "-sS",
            "--max-time",
            "10",
            "-H",
            "Content-Type: application/json",
            "--data",
            '{"hello": "world"}',
            server.url + "upload",
        ],
        capture_output=True,
        timeout=20,
    )
    document = json.loads(result.stdout)
    assert (server.root / "uploads" / document["file"]).read_bytes() == b'{"hello": "world"}'


# -- the pieces, without sockets ---------------------------------------------------------


def test_media_type_check():
    assert is_json_media_type("application/json")
    assert is_json_media_type('Application/JSON ; charset="utf-8"')
    assert not is_json_media_type("application/jsonx")
    assert not is_json_media_type("text/json")
    assert not is_json_media_type(None)


def test_validate_json_rejects_non_rfc8259_constants():
    validate_json(b'{"a": 1.5e3}')
    with pytest.raises(HTTPError) as info:
        validate_json(b"-Infinity")
    assert info.value.status == 400


def test_store_upload_leaves_no_temp_file(tmp_path):
    name = store_upload(str(tmp_path / "uploads"), b'{"ok": true}')
    assert sorted(p.name for p in (tmp_path / "uploads").iterdir()) == [name]
    with pytest.raises(HTTPError):
        store_upload(str(tmp_path / "uploads"), b"{bad")
    assert sorted(p.name for p in (tmp_path / "uploads").iterdir()) == [name]

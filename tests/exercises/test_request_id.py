"""Exercise 3 (docs/exercises.md): X-Request-Id = "<connection id>-<request number>"."""

from conftest import RawClient


def test_request_ids_count_per_connection(server):
    first = RawClient(server.connect())
    ids = [first.get("/sample.txt").response()[1]["x-request-id"] for _ in range(3)]
    conn_ids = {value.split("-")[0] for value in ids}
    assert len(conn_ids) == 1
    assert [value.split("-")[1] for value in ids] == ["1", "2", "3"]
    second = RawClient(server.connect())
    other = second.get("/missing").response()[1]["x-request-id"]
    assert other.split("-")[0] not in conn_ids and other.endswith("-1")


def test_error_responses_carry_the_id_too(server):
    client = RawClient(server.connect())
    status, fields, _ = client.send(b"NOT A REQUEST\r\n\r\n").response()
    assert status == 400
    assert fields["x-request-id"].endswith("-1")

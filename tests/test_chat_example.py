"""docs/examples/chat.py, the chat room of the WebSocket docs, served as its docstring says, with real clients."""

from __future__ import annotations

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from conftest import REPO, wait_for

EXAMPLES = REPO / "docs" / "examples"


@pytest.fixture
def room(make_server, monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))  # what `python3 -m reactor` in that folder sees
    running = make_server(websocket_endpoints=(("/chat", "chat:Room"),))
    import chat

    chat.Room.members.clear()
    running.chat = chat
    return running


def test_everyone_in_the_room_gets_every_message(room):
    url = "ws://127.0.0.1:%d/chat" % room.port
    with connect(url) as alice:
        welcome = alice.recv(timeout=5)
        assert welcome.startswith("welcome, guest-") and welcome.endswith("(1 here)")
        alice_name = welcome.split()[1].rstrip(",")
        with connect(url) as bob:
            bob_name = bob.recv(timeout=5).split()[1].rstrip(",")
            assert alice.recv(timeout=5) == "%s joined" % bob_name
            bob.send("hello, room")
            assert bob.recv(timeout=5) == alice.recv(timeout=5) == "%s: hello, room" % bob_name
            alice.send("x" * 2000)
            assert len(bob.recv(timeout=5)) == len(alice_name) + 2 + 500  # cut to MAX_CHARS
            alice.recv(timeout=5)
        assert alice.recv(timeout=5) == "%s left" % bob_name
        alice.send(b"\x00binary")
        with pytest.raises(ConnectionClosed) as closed:
            alice.recv(timeout=5)
        assert closed.value.rcvd.code == 1003
    wait_for(lambda: room.call(lambda: len(room.chat.Room.members)) == 0, what="the room to empty")

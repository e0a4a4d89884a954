"""A chat room on reactor's WebSocket endpoints: everyone connected gets every message.

From this folder, start the server and open two clients (the ``websockets`` library's
interactive one will do):

    python3 -m reactor --websocket /chat=chat:Room
    python3 -m websockets ws://127.0.0.1:8080/chat

The server makes one ``Room`` per connection (the factory is the class itself); what
they share is the class attribute ``members``. Every method runs on the loop thread, so
the set needs no lock, and none of them may block: a slow lookup would go to a pool.
"""

from reactor.websocket import broadcast

MAX_CHARS = 500


class Room:
    members: set = set()  # the sessions in the room, shared by every connection's Room

    def on_open(self, session):
        self.name = "guest-%d" % session.id
        others = set(Room.members)
        Room.members.add(session)
        session.send("welcome, %s (%d here)" % (self.name, len(Room.members)))
        broadcast(others, "%s joined" % self.name)  # the frame is encoded once for all of them

    def on_message(self, session, message):
        if not isinstance(message, str):
            session.close(1003, "text only")  # 1003: a kind of message this endpoint does not take
            return
        broadcast(Room.members, "%s: %s" % (self.name, message[:MAX_CHARS]))

    def on_close(self, session, code, reason):
        Room.members.discard(session)
        broadcast(Room.members, "%s left" % self.name)

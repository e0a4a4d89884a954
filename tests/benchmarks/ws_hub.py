"""A broadcast endpoint of the live-reload endpoint's shape, for ws_bench.py.

    cd tests/benchmarks && python3 -m reactor --websocket /hub=ws_hub:Hub

Every socket hears ``{"type": "hello", "epoch": 0}`` when it opens, as a tab hears the
live-reload hub's hello; any text message a socket sends then goes to every open socket
with :func:`reactor.websocket.broadcast` (one frame for all, each receiver's byte cap
applied), as a change on disk goes to every tab. The sender is one of the receivers, so
a benchmark can time a broadcast from the moment its own client sent the message.
"""

from reactor.websocket import broadcast


class Hub:
    sockets: set = set()  # the open sessions, shared by every connection's Hub

    def on_open(self, session):
        Hub.sockets.add(session)
        session.send('{"type": "hello", "epoch": 0}')

    def on_message(self, session, message):
        broadcast(Hub.sockets, message)

    def on_close(self, session, code, reason):
        Hub.sockets.discard(session)

"""Step 3 of chapter 0: a reactor. selectors, a callback per socket, a buffer per connection.

    python3 docs/examples/step3_select.py 8000

The loop sleeps in select() until a socket is ready, then runs that socket's callback,
which does a little work and returns. Keep-alive is kept: one connection may send
several requests, and a response the kernel cannot take at once waits in the outbox.
"""

import selectors
import socket
import sys

BODY = b"hello\n"
selector = selectors.DefaultSelector()


class Connection:
    def __init__(self, sock):
        self.sock = sock
        self.inbox = b""  # bytes received and not parsed yet
        self.outbox = b""  # bytes of responses the kernel has not taken yet
        selector.register(sock, selectors.EVENT_READ, self.on_readable)

    def on_readable(self, mask):
        data = self.sock.recv(65536)
        if not data:  # the client closed its side
            return self.close()
        self.inbox += data
        while b"\r\n\r\n" in self.inbox:  # every complete request in the buffer, in order
            head, self.inbox = self.inbox.split(b"\r\n\r\n", 1)
            found = head.startswith(b"GET / ")
            status, body = (b"200 OK", BODY) if found else (b"404 Not Found", b"")
            self.outbox += b"HTTP/1.1 %s\r\nContent-Length: %d\r\n\r\n%s" % (status, len(body), body)
        self.flush()

    def flush(self):
        try:
            sent = self.sock.send(self.outbox) if self.outbox else 0
        except BlockingIOError:
            sent = 0
        self.outbox = self.outbox[sent:]
        # Want EVENT_WRITE only while bytes wait: a socket with room is writable almost always.
        wanted = selectors.EVENT_WRITE if self.outbox else selectors.EVENT_READ
        callback = self.flush_when_ready if self.outbox else self.on_readable
        selector.modify(self.sock, wanted, callback)

    def flush_when_ready(self, mask):
        self.flush()

    def close(self):
        selector.unregister(self.sock)
        self.sock.close()


def on_acceptable(listener, mask):
    sock, _address = listener.accept()
    sock.setblocking(False)
    Connection(sock)


def serve(port):
    listener = socket.create_server(("127.0.0.1", port))
    listener.setblocking(False)
    selector.register(listener, selectors.EVENT_READ, lambda mask: on_acceptable(listener, mask))
    print("listening on 127.0.0.1:%d" % listener.getsockname()[1], flush=True)
    while True:
        for key, mask in selector.select():  # sleeps until something is ready
            key.data(mask)


if __name__ == "__main__":
    serve(int(sys.argv[1]))

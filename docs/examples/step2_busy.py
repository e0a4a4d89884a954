"""Step 2 of chapter 0: non-blocking sockets and a busy loop; many clients, one CPU burnt.

    python3 docs/examples/step2_busy.py 8000

Nothing waits any more, so several clients progress together; but the loop asks every
socket "anything yet?" all the time, and uses a whole core doing it (watch it in top).
"""

import socket
import sys

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\nConnection: close\r\n\r\nhello\n"
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


def serve(port):
    listener = socket.create_server(("127.0.0.1", port))
    listener.setblocking(False)
    print("listening on 127.0.0.1:%d" % listener.getsockname()[1], flush=True)
    clients = {}  # socket -> [bytes received, bytes left to send]
    while True:
        try:
            sock, _address = listener.accept()
            sock.setblocking(False)
            clients[sock] = [b"", b""]
        except BlockingIOError:
            pass  # nobody connected: try again at once (this is the busy part)
        for sock, buffers in list(clients.items()):
            try:
                if not buffers[1]:
                    data = sock.recv(65536)
                    buffers[0] += data
                    if not data or b"\r\n\r\n" in buffers[0]:
                        buffers[1] = RESPONSE if buffers[0].startswith(b"GET / ") else NOT_FOUND
                else:
                    sent = sock.send(buffers[1])
                    buffers[1] = buffers[1][sent:]
                    if not buffers[1]:
                        del clients[sock]
                        sock.close()
            except BlockingIOError:
                pass  # not ready yet: ask again on the next lap


if __name__ == "__main__":
    serve(int(sys.argv[1]))

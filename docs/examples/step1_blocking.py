"""Step 1 of chapter 0: a blocking HTTP server that serves one client at a time.

    python3 docs/examples/step1_blocking.py 8000
    curl -i http://127.0.0.1:8000/

While it waits in recv() for one client, every other client waits in the kernel's
listen queue.
"""

import socket
import sys

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\nConnection: close\r\n\r\nhello\n"


def serve(port):
    listener = socket.create_server(("127.0.0.1", port))
    print("listening on 127.0.0.1:%d" % listener.getsockname()[1], flush=True)
    while True:
        sock, _address = listener.accept()  # waits for a client
        request = b""
        while b"\r\n\r\n" not in request:  # waits for the whole header section
            data = sock.recv(65536)
            if not data:
                break
            request += data
        if request.startswith(b"GET / "):
            sock.sendall(RESPONSE)  # waits until the kernel took every byte
        else:
            sock.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        sock.close()


if __name__ == "__main__":
    serve(int(sys.argv[1]))

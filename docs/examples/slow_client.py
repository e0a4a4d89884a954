"""Chapter 0's slow client: half a request now, the rest when you press Enter.

    python3 docs/examples/slow_client.py 8000

It connects to 127.0.0.1 on the port given, sends a request-line and a Host field line,
each ended by CR LF as HTTP/1.1 requires, and waits. Press Enter and it sends the empty
line that ends the header section, then prints the response. While it waits, step 1
serves nobody else.
"""

import http.client
import socket
import sys


def ask(port):
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # no empty line yet
    print("sent half a request; press Enter to send the empty line that ends it", flush=True)
    sys.stdin.readline()
    sock.sendall(b"\r\n")
    response = http.client.HTTPResponse(sock)  # reads the status-line, fields and body
    response.begin()
    print("HTTP/1.1 %d %s" % (response.status, response.reason))
    print(response.read().decode("utf-8", "replace"), end="")
    sock.close()


if __name__ == "__main__":
    ask(int(sys.argv[1]))

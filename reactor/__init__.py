"""reactor: an HTTP/1.1 server on one selectors event loop, standard library only.

Modules, from the wire inwards:

- ``abnf``, ``events``, ``errors``, ``parser``, ``serializer``: sans-I/O HTTP/1.1
  (bytes in, events out; no sockets, selectors or threads), what hypothesis fuzzes.
- ``loop``: the selector loop, timers and the thread-safe wake-up; knows nothing of HTTP.
- ``connection``: one client socket as an explicit state machine.
- ``workers``: the bounded thread pool for disk reads and JSON writes.
- ``handlers``: what the server does with a request (static files, uploads).
- ``server``: the listening socket, accept, the connection table, graceful stop.
- ``cli``: ``python -m reactor``.
"""

__version__ = "0.1.0"

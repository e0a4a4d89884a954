"""CORS preflight answers for ``--cors`` (the Fetch standard's CORS protocol).

With ``--cors`` every response carries ``Access-Control-Allow-Origin: *`` (added by the
connection from :attr:`Config.added_fields`), so a page on any origin may read what
this server sends. Before a "non-simple" request (``POST`` with JSON, a custom
field), a browser sends a preflight: ``OPTIONS`` with ``Origin`` and
``Access-Control-Request-Method``. :func:`preflight` answers it with 204, the methods
this server implements, the request fields the browser asked about (echoed only if
they are a well-formed list of field names) and how long the browser may remember it.
"""

from __future__ import annotations

import re
from typing import Optional

from reactor.abnf import TCHAR
from reactor.events import RequestHead
from reactor.response import Response

METHODS = "GET, HEAD, POST, OPTIONS"
MAX_AGE_S = 600
# #field-name: tokens separated by commas and OWS (RFC 9110 §5.1, §5.6.1)
_FIELD_NAMES = re.compile(r"[ \t]*" + TCHAR + r"+(?:[ \t]*,[ \t]*" + TCHAR + r"+)*[ \t]*")


def preflight(head: RequestHead) -> Optional[Response]:
    """The 204 answer to a CORS preflight request, or None if ``head`` is not one."""
    if head.method != "OPTIONS" or head.get("origin") is None:
        return None
    if head.get("access-control-request-method") is None:
        return None
    fields = [
        ("Allow", METHODS),
        ("Access-Control-Allow-Methods", METHODS),
        ("Access-Control-Max-Age", str(MAX_AGE_S)),
        ("Vary", "Access-Control-Request-Headers"),
    ]
    requested = head.get("access-control-request-headers")
    if requested and _FIELD_NAMES.fullmatch(requested):
        fields.append(("Access-Control-Allow-Headers", requested.strip()))
    return Response(204, fields)

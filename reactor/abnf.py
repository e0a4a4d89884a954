"""Compiled patterns for the RFC 9110 / RFC 9112 grammar rules the parser checks.

Each constant is named after the ABNF rule it matches; the rule is quoted beside it.
Patterns work on ``bytes`` and are meant for ``fullmatch`` so nothing is silently
ignored at either end.
"""

from __future__ import annotations

import re

# tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~"
#       / DIGIT / ALPHA                                                  (RFC 9110 §5.6.2)
_TCHAR = rb"[-!#$%&'*+.^_`|~0-9A-Za-z]"
TOKEN = re.compile(_TCHAR + rb"+")

# field-vchar = VCHAR / obs-text; field-value = *field-content, with OWS around it
# (RFC 9110 §5.5). SP and HTAB may appear inside; CR, LF, NUL and other CTLs may not.
_FIELD_VCHAR = rb"[\x21-\x7e\x80-\xff]"

# field-line = field-name ":" OWS field-value OWS                      (RFC 9112 §5)
# No whitespace is allowed between the field name and the colon (§5.1), and a line
# that begins with whitespace is obs-fold (§5.2): neither matches.
FIELD_LINE = re.compile(
    rb"(" + _TCHAR + rb"+):[ \t]*((?:" + _FIELD_VCHAR + rb"+(?:[ \t]+" + _FIELD_VCHAR
    + rb"+)*)?)[ \t]*"
)

# request-line = method SP request-target SP HTTP-version               (RFC 9112 §3)
# HTTP-version = HTTP-name "/" DIGIT "." DIGIT                          (RFC 9112 §2.3)
# request-target is any run of visible ASCII here; its form is decided afterwards.
REQUEST_LINE = re.compile(
    rb"(" + _TCHAR + rb"+) ([\x21-\x7e]+) HTTP/([0-9])\.([0-9])"
)

# Host = uri-host [ ":" port ]; uri-host = IP-literal / IPv4address / reg-name
# (RFC 9110 §7.2, RFC 3986 §3.2.2). reg-name may be empty.
HOST = re.compile(
    rb"(?:\[[0-9A-Fa-f:.]+\]|[-A-Za-z0-9._~!$&'()*+,;=%]*)(?::[0-9]*)?"
)

# absolute-form = absolute-URI (RFC 9112 §3.2.2); only http and https are served.
ABSOLUTE_FORM = re.compile(rb"([hH][tT][tT][pP][sS]?)://([^/?#]*)([^#]*)")

# authority-form = uri-host ":" port                                   (RFC 9112 §3.2.3)
AUTHORITY_FORM = re.compile(
    rb"(?:\[[0-9A-Fa-f:.]+\]|[-A-Za-z0-9._~!$&'()*+,;=%]+):[0-9]+"
)

# Content-Length = 1*DIGIT (RFC 9110 §8.6). Python's int() is far looser: it accepts
# "+7", " 7", "0_7" and non-ASCII digits, so only this pattern decides.
CONTENT_LENGTH = re.compile(rb"[0-9]{1,18}")

# chunk = chunk-size [ chunk-ext ] CRLF ...; chunk-size = 1*HEXDIG     (RFC 9112 §7.1)
# chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
# chunk-ext-val = token / quoted-string                                 (RFC 9112 §7.1.1)
_QUOTED_STRING = rb'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
CHUNK_LINE = re.compile(
    rb"([0-9A-Fa-f]{1,16})((?:[ \t]*;[ \t]*" + _TCHAR + rb"+(?:[ \t]*=[ \t]*(?:"
    + _TCHAR + rb"+|" + _QUOTED_STRING + rb"))?)*)[ \t]*"
)

"""Compiled patterns for the RFC 9110 / RFC 9112 grammar rules the parser checks.

Each constant is named after the ABNF rule it matches; the rule is quoted beside it.
Patterns meant for ``fullmatch`` never silently ignore anything at either end.

The header section is decoded as ISO-8859-1 once (each byte becomes the code point of
the same value), so the patterns for it work on ``str`` and name bytes as ``\\xNN``
code points. The few patterns that look at the raw receive buffer (a request-line
still arriving, a chunk-size line) are compiled for ``bytes`` from the same text.
"""

from __future__ import annotations

import re

# tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~"
#       / DIGIT / ALPHA                                                  (RFC 9110 §5.6.2)
TCHAR = r"[-!#$%&'*+.^_`|~0-9A-Za-z]"  #: the one copy; other modules build their patterns from it
_TCHAR = TCHAR
TOKEN = re.compile(_TCHAR + r"+")

# VCHAR = %x21-7E (RFC 5234); obs-text = %x80-FF (RFC 9110 §5.6.4)
_VCHAR = r"[\x21-\x7e]"
# field-vchar = VCHAR / obs-text; SP and HTAB may separate runs of them inside a field
# value, nothing else may: CR, LF, NUL and the other CTLs make it invalid (RFC 9110 §5.5).
_FIELD_VCHAR = r"[\x21-\x7e\x80-\xff]"
_FIELD_VALUE = r"(?:" + _FIELD_VCHAR + r"+(?:[ \t]+" + _FIELD_VCHAR + r"+)*)?"

# field-line = field-name ":" OWS field-value OWS                      (RFC 9112 §5)
# No whitespace is allowed between the field name and the colon (§5.1), and a line
# that begins with whitespace is obs-fold (§5.2): neither matches.
_FIELD_LINE = r"(" + _TCHAR + r"+):[ \t]*(" + _FIELD_VALUE + r")[ \t]*"
FIELD_LINE = re.compile(_FIELD_LINE)

# The field lines of a header (or trailer) section, each with its CRLF. findall() with
# this pattern splits a whole section in one pass in C; each match starts at the start of
# a line ("^" in MULTILINE mode) and ends at that line's CRLF (a value holds neither CR
# nor LF), so the section is valid exactly when there are as many matches as lines and
# no LF without its CR (see reactor.parser._parse_field_lines). It accepts the same lines
# as FIELD_LINE but captures the value with its trailing OWS, which the parser strips:
# one character class is much faster than the alternation of words and spaces.
FIELD_LINES = re.compile(r"^(" + _TCHAR + r"+):[ \t]*([\t\x20-\x7e\x80-\xff]*)\r\n", re.MULTILINE)

# request-line = method SP request-target SP HTTP-version               (RFC 9112 §3)
# HTTP-version = HTTP-name "/" DIGIT "." DIGIT                          (RFC 9112 §2.3)
# request-target is any run of VCHAR here; its form is decided afterwards (§3.2).
REQUEST_LINE = re.compile(r"(" + _TCHAR + r"+) (" + _VCHAR + r"+) HTTP/([0-9])\.([0-9])")

# What a request-line can look like before its CRLF has arrived: any prefix of
# REQUEST_LINE (or the CR of an empty line). Checked while waiting, so a stream that
# cannot become a request (a TLS handshake, binary noise) is refused at once instead of
# waiting for the limits or the header timeout.
_HTTP_VERSION_PREFIX = r"(?:H(?:T(?:T(?:P(?:/(?:[0-9](?:\.(?:[0-9]\r?)?)?)?)?)?)?)?)?"
REQUEST_LINE_PREFIX = re.compile(
    (r"\r|(?:" + _TCHAR + r"+(?: (?:" + _VCHAR + r"+(?: " + _HTTP_VERSION_PREFIX + r")?)?)?)?").encode("ascii")
)

# A CR not followed by LF, or an LF not preceded by CR: RFC 9112 §2.2 lets a recipient
# treat a bare LF as a line terminator or reject it; a bare CR is always invalid.
# This server rejects both, and looks for them while a section is still arriving so
# that a client that ends its lines with LF alone is answered instead of left waiting.
BARE_CR_OR_LF = re.compile(rb"(?:^|[^\r])\n|\r[^\n]")

# uri-host = IP-literal / IPv4address / reg-name                        (RFC 3986 §3.2.2)
# reg-name = *( unreserved / pct-encoded / sub-delims ); IPv4address is a reg-name too.
# IP-literal is checked loosely (hex digits, colons, dots) and IPvFuture is not accepted.
# reg-name is written unrolled, c*(p c*)* rather than (c|p)*: the same strings, but the
# regex engine runs a run of plain characters in one tight loop instead of trying the
# alternation at each one (Host is checked on every request).
_IP_LITERAL = r"\[[0-9A-Fa-f:.]+\]"
_REG_NAME_CHAR = r"[-A-Za-z0-9._~!$&'()*+,;=]"
_REG_NAME = _REG_NAME_CHAR + r"*(?:%[0-9A-Fa-f]{2}" + _REG_NAME_CHAR + r"*)*"
_PORT = r"[0-9]*"

# Host = uri-host [ ":" port ]                                          (RFC 9110 §7.2)
# An empty reg-name is allowed: a client sends "Host:" with an empty value when the
# target URI has no authority (RFC 9112 §3.2).
HOST = re.compile(r"(?:" + _IP_LITERAL + r"|" + _REG_NAME + r")(?::" + _PORT + r")?")

# absolute-form = absolute-URI (RFC 9112 §3.2.2); only http and https URIs are served,
# and their authority has no userinfo (RFC 9110 §4.2.4). Groups: authority, path+query.
ABSOLUTE_FORM = re.compile(r"[hH][tT][tT][pP][sS]?://([^/?#]*)((?:[/?]" + _VCHAR + r"*)?)")

# authority-form = uri-host ":" port                                   (RFC 9112 §3.2.3)
AUTHORITY_FORM = re.compile(r"(?:" + _IP_LITERAL + r"|" + _REG_NAME + r"):[0-9]+")

# Content-Length = 1*DIGIT (RFC 9110 §8.6). Python's int() is far looser: it accepts
# "+7", " 7", "0_7" and non-ASCII digits, so only this pattern decides.
CONTENT_LENGTH = re.compile(r"[0-9]+")

# chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF; chunk-size = 1*HEXDIG
# chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
# chunk-ext-val = token / quoted-string                        (RFC 9112 §7.1, §7.1.1)
# chunk-size is bounded to 16 hex digits (2**64 - 1). Whitespace is allowed only where
# the grammar has BWS, around ";" and "=": "5 \r\n" is rejected, as llhttp does (h11
# tolerates it), so no two parsers on a path can disagree about where a chunk starts.
_QUOTED_STRING = r'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
CHUNK_LINE = re.compile(
    (
        r"([0-9A-Fa-f]{1,16})(?:[ \t]*;[ \t]*"
        + _TCHAR
        + r"+(?:[ \t]*=[ \t]*(?:"
        + _TCHAR
        + r"+|"
        + _QUOTED_STRING
        + r"))?)*"
    ).encode("latin-1")
)

# X-Request-ID: no standard defines it. A client's value is kept only if it is 1-200
# letters, digits and "-._:/+=@" (what UUIDs, base64 and the common tracing ids use), so a
# value that is echoed in every response and written in the access log can carry no
# quote, backslash, space, comma (a repeated field line) or control character.
REQUEST_ID = re.compile(r"[-A-Za-z0-9._:/+=@]{1,200}")

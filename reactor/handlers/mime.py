"""Media types for file names (RFC 6838), and which of them are worth compressing.

The map is :mod:`mimetypes` (which reads the system's ``mime.types``) plus the web
types that some systems lack or map to older names, so ``.js`` is ``text/javascript``
(RFC 9239) and ``.woff2`` is ``font/woff2`` on every machine. Text types carry
``charset=utf-8``: the server cannot know a file's encoding, and UTF-8 is what
browsers assume for modern documents anyway.

A name whose last suffix is a compression format (``.gz``, ``.bz2``, ``.xz``, ...) is
served as that format (``app.js.gz`` is ``application/gzip``): the bytes on disk are
the compressed ones, and calling them ``text/javascript`` would hand a browser gzip
bytes it has been told are a script.
"""

from __future__ import annotations

import mimetypes
import unicodedata
import urllib.parse

#: Web types that some systems' mime.types lack or map to legacy names.
WEB_TYPES = {
    ".html": "text/html",
    ".htm": "text/html",
    ".js": "text/javascript",  # RFC 9239
    ".mjs": "text/javascript",
    ".cjs": "text/javascript",
    ".css": "text/css",
    ".json": "application/json",
    ".map": "application/json",  # source maps
    ".jsonld": "application/ld+json",
    ".webmanifest": "application/manifest+json",
    ".xml": "application/xml",
    ".svg": "image/svg+xml",
    ".wasm": "application/wasm",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".ico": "image/x-icon",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
    ".txt": "text/plain",
    ".md": "text/markdown",
    ".csv": "text/csv",
    ".yaml": "application/yaml",  # RFC 9512
    ".yml": "application/yaml",
    ".toml": "application/toml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".mp4": "video/mp4",
    ".webm": "video/webm",
    ".mp3": "audio/mpeg",
    ".ogg": "audio/ogg",
    ".opus": "audio/ogg",
    ".pdf": "application/pdf",
    ".zst": "application/zstd",
}

#: What a file compressed with one of mimetypes' encodings is served as.
ENCODING_TYPES = {
    "gzip": "application/gzip",
    "bzip2": "application/x-bzip2",
    "xz": "application/x-xz",
    "compress": "application/x-compress",
    "br": "application/octet-stream",  # no registered type for a bare Brotli stream
}

_COMPRESSIBLE_TYPES = frozenset(
    {
        "application/json",
        "application/javascript",
        "application/xml",
        "application/wasm",
        "application/yaml",
        "application/toml",
        "font/ttf",
        "font/otf",
        "image/x-icon",
    }
)

_mime = mimetypes.MimeTypes()  # reads the system's mime.types now, at import, not on the loop thread
for _ext, _type in WEB_TYPES.items():
    _mime.add_type(_type, _ext)


def content_type(name: str) -> str:
    """The Content-Type field value for a file name (RFC 9110 §8.3).

    Text types get ``; charset=utf-8``; unknown types are ``application/octet-stream``.
    """
    media_type, encoding = _mime.guess_type(name, strict=False)
    if encoding is not None:
        return ENCODING_TYPES.get(encoding, "application/octet-stream")
    if media_type is None:
        return "application/octet-stream"
    if media_type.startswith("text/"):
        return media_type + "; charset=utf-8"
    return media_type


def is_compressible(media_type: str) -> bool:
    """True for types that gzip shrinks well: text, JSON, JavaScript, XML, SVG, WebAssembly.

    ``media_type`` may carry parameters (``text/css; charset=utf-8``).
    """
    bare = media_type.split(";", 1)[0].strip().lower()
    return bare.startswith("text/") or bare in _COMPRESSIBLE_TYPES or bare.endswith("+json") or bare.endswith("+xml")


#: Letters that Unicode decomposition does not reduce to ASCII, spelled as their languages do.
_SPELLED = str.maketrans(
    {
        "ß": "ss",
        "æ": "ae",
        "Æ": "AE",
        "œ": "oe",
        "Œ": "OE",
        "ø": "o",
        "Ø": "O",
        "đ": "d",
        "Đ": "D",
        "ł": "l",
        "Ł": "L",
        "þ": "th",
        "Þ": "Th",
        "ð": "d",
        "Ð": "D",
    }
)


def ascii_filename(name: str) -> str:
    """A readable ASCII stand-in for ``name``: ``"résumé.txt"`` → ``"resume.txt"``.

    Accents are dropped (NFKD decomposition), a few letters are spelled out (``ß`` →
    ``ss``), and what is left outside printable ASCII, or a quote or backslash, is ``_``.
    """
    decomposed = unicodedata.normalize("NFKD", name.translate(_SPELLED))
    kept = "".join(char for char in decomposed if not unicodedata.combining(char))
    return "".join(char if 0x20 <= ord(char) < 0x7F and char not in '"\\' else "_" for char in kept)


def content_disposition(name: str) -> str:
    """``attachment; filename="..."`` (RFC 6266), with ``filename*`` for non-ASCII names.

    ``filename`` is an ASCII transliteration (:func:`ascii_filename`) for clients that
    read only it (``curl -J``); ``filename*`` carries the real name in UTF-8 (RFC 8187).
    """
    fallback = ascii_filename(name)
    value = 'attachment; filename="%s"' % fallback
    if fallback != name:
        value += "; filename*=UTF-8''%s" % urllib.parse.quote(name, safe="")
    return value

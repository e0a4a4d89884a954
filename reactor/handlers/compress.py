"""Content coding: choose gzip from Accept-Encoding, and compress (RFC 9110 §8.4, §12.5.3).

:func:`negotiate` reads an ``Accept-Encoding`` field value and says whether to send
gzip and whether the unencoded form is acceptable at all. ``gzip`` and ``x-gzip`` are
the same coding (§8.4.1.3); ``*`` stands for any coding not listed; ``q=0`` refuses a
coding; ``identity`` is acceptable unless refused, and preferred over gzip only when
the client gives it a higher weight. A request without the field gets no coding
(RFC 9110 allows any, but no client that omits it expects one). Results are memoized
per field value: clients send few distinct values, and the loop thread asks often.

Compression itself runs on a worker: :func:`gzip_bytes` for a file already in memory,
:func:`gzip_file` streams an open file through :mod:`zlib` so the input never sits
in memory whole, and :class:`GzipStream` makes the gzip form one bounded block at a time,
as the connection sends it, when the whole form is not to be kept in memory. Output is
deterministic (zlib's gzip header carries no time or name, and deflate's output does not
depend on how its input is cut), so a gzip body has a stable strong ETag.
"""

from __future__ import annotations

import os
import re
import zlib
from typing import Dict, Optional, Tuple

from reactor.abnf import TCHAR
from reactor.response import Pool

GZIP_LEVEL = 6  # zlib's default: most of level 9's gain at a fraction of its time
#: Files smaller than this are sent unencoded: gzip's header and trailer eat the gain.
MIN_COMPRESS_BYTES = 1024
#: Largest file compressed on the fly; bigger ones are sent unencoded unless a
#: precompressed ``name.gz`` sits beside them.
MAX_COMPRESS_BYTES = 8 * 1024 * 1024
_READ_BYTES = 256 * 1024
_GZIP_WBITS = 16 + zlib.MAX_WBITS  # zlib's gzip container (RFC 1952)

# codings = content-coding / "identity" / "*"; weight = OWS ";" OWS "q=" qvalue (§12.4.2)
_ELEMENT = re.compile(r"[ \t]*(" + TCHAR + r"+)[ \t]*(?:;[ \t]*[qQ]=([0-9](?:\.[0-9]{0,3})?))?[ \t]*")
_memo: Dict[str, Tuple[bool, bool]] = {}
_MEMO_ENTRIES = 128


def negotiate(accept_encoding: Optional[str]) -> Tuple[bool, bool]:
    """``(use_gzip, identity_ok)`` for an Accept-Encoding field value (None: absent).

    Malformed list elements are skipped, as if the client had not sent them.
    """
    if accept_encoding is None:
        return False, True
    answer = _memo.get(accept_encoding)
    if answer is None:
        answer = _negotiate(accept_encoding)
        if len(_memo) >= _MEMO_ENTRIES:
            _memo.clear()
        _memo[accept_encoding] = answer
    return answer


def _negotiate(value: str) -> Tuple[bool, bool]:
    weights: Dict[str, float] = {}
    for element in value.split(","):
        match = _ELEMENT.fullmatch(element)
        if match is None:
            continue
        coding = match.group(1).lower()
        if coding == "x-gzip":
            coding = "gzip"
        weight = float(match.group(2)) if match.group(2) is not None else 1.0
        if weight > 1.0:
            continue
        weights[coding] = max(weight, weights.get(coding, 0.0))
    star = weights.get("*")
    gzip = weights.get("gzip", star if star is not None else 0.0)
    if "identity" in weights:
        identity = weights["identity"]
    elif star is not None:
        identity = star
    else:
        identity = 0.001  # acceptable by default, but never preferred (§12.5.3)
    return gzip > 0 and gzip >= identity, identity > 0


def gzip_bytes(data: bytes, level: int = GZIP_LEVEL) -> bytes:
    """``data`` gzip-encoded (RFC 1952), deterministic for a given zlib and level."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, _GZIP_WBITS)
    return compressor.compress(data) + compressor.flush()


def gzip_file(fd: int, size: int, level: int = GZIP_LEVEL) -> bytes:
    """The first ``size`` bytes of open file ``fd`` gzip-encoded, read in blocks.

    Worker only (it reads the disk and burns CPU). Raises OSError from the reads;
    a file that shrinks meanwhile is compressed as far as it goes.
    """
    compressor = zlib.compressobj(level, zlib.DEFLATED, _GZIP_WBITS)
    pieces = []
    offset = 0
    while offset < size:
        block = os.pread(fd, min(_READ_BYTES, size - offset), offset)
        if not block:
            break
        pieces.append(compressor.compress(block))
        offset += len(block)
    pieces.append(compressor.flush())
    return b"".join(pieces)


class GzipStream:
    """The gzip form of the first ``size`` bytes of open file ``fd``, a block at a time.

    A :class:`~reactor.response.StreamBody`: :meth:`read_block` runs on a worker, reads
    input until deflate has output (at most about ``max_bytes`` of it) and returns it;
    ``b""`` after the gzip trailer. It owns ``fd`` and :meth:`close` closes it. Raises
    OSError from the reads; a file that shrinks meanwhile is compressed as far as it goes.
    Memory: zlib's state (about 256 KiB at the default level) and one block.
    """

    __slots__ = ("fd", "size", "offset", "_compressor", "_ended")

    pool: Optional[Pool] = None  # compressed on the server's disk pool

    def __init__(self, fd: int, size: int, level: int = GZIP_LEVEL) -> None:
        self.fd = fd
        self.size = size
        self.offset = 0
        self._compressor = zlib.compressobj(level, zlib.DEFLATED, _GZIP_WBITS)
        self._ended = False

    def read_block(self, max_bytes: int) -> bytes:
        while not self._ended:
            if self.offset >= self.size:
                self._ended = True
                return self._compressor.flush()
            block = os.pread(self.fd, min(max_bytes, self.size - self.offset), self.offset)
            if not block:
                self.size = self.offset  # the file shrank: end the form here
                continue
            self.offset += len(block)
            data = self._compressor.compress(block)
            if data:
                return data
        return b""

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

"""How fast each way of unmasking a WebSocket payload is, by size: why reactor.websocket.unmask switches at 16 KiB.

The standard library has no XOR for bytes. Two C loops stand in for one: ``int.from_bytes``
of payload and repeated mask, one XOR of the two big integers, ``to_bytes``; or
``bytes.translate`` with a 256-byte table per mask byte over the four strided slices
(``data[i::4]``). Run ``taskset -c 1 python3 tests/benchmarks/ws_unmask.py``; it prints
microseconds per call (the best of 7 repeats) for each size.
"""

from __future__ import annotations

import os
import timeit

TABLES = [bytes(value ^ key for value in range(256)) for key in range(256)]


def by_int(data: bytes, mask: bytes) -> bytes:
    size = len(data)
    key = int.from_bytes((mask * ((size >> 2) + 1))[:size], "little")
    return (int.from_bytes(data, "little") ^ key).to_bytes(size, "little")


def by_translate(data: bytes, mask: bytes) -> bytes:
    out = bytearray(data)
    for index in range(4):
        out[index::4] = out[index::4].translate(TABLES[mask[index]])
    return bytes(out)


def main() -> None:
    mask = os.urandom(4)
    print("%10s %12s %12s" % ("bytes", "int XOR us", "translate us"))
    for size in (16, 125, 512, 1024, 2048, 4096, 16384, 65536, 262144, 1048576):
        data = os.urandom(size)
        assert by_int(data, mask) == by_translate(data, mask)
        number = max(1, 200_000 // size)
        times = [
            min(timeit.repeat(lambda fn=fn, data=data: fn(data, mask), number=number, repeat=7)) / number * 1e6
            for fn in (by_int, by_translate)
        ]
        print("%10d %12.1f %12.1f" % (size, *times))


if __name__ == "__main__":
    main()

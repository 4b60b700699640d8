"""Mutations of .nnc files for robustness tests and the fuzz script.

Half of the mutations keep every section's CRC valid (they rewrite the payload and fix the
checksum), so they reach the decoder instead of stopping at the checksum.
"""
from __future__ import annotations

import random
import struct

from nnc import container


def split_sections(data: bytes) -> list[tuple[bytes, bytes]]:
    out, pos = [], container.SIGNATURE_BYTES
    while pos + 8 <= len(data):
        tag = data[pos:pos + 4]
        (n,) = struct.unpack_from("<I", data, pos + 4)
        out.append((tag, data[pos + 8:pos + 8 + n]))
        pos += 12 + n
    return out


def join_sections(prefix: bytes, sections: list[tuple[bytes, bytes]]) -> bytes:
    """Frame (tag, payload) pairs with valid lengths and CRCs (tags as raw bytes), chained
    as the prefix's version chains them."""
    (version,) = struct.unpack_from("<H", prefix, len(container.MAGIC))
    return prefix + container.frame(sections, version)[container.SIGNATURE_BYTES:]


def _mutate_bytes(b: bytes, rng: random.Random) -> bytes:
    b = bytearray(b)
    op = rng.randrange(6)
    if op == 0 and b:                       # flip bits
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
    elif op == 1 and b:                     # truncate
        del b[rng.randrange(len(b)):]
    elif op == 2:                           # insert random bytes
        i = rng.randrange(len(b) + 1)
        b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    elif op == 3 and b:                     # set a byte to an extreme
        b[rng.randrange(len(b))] = rng.choice([0, 0xFF, 0x7F, 0x80])
    elif op == 4 and len(b) >= 4:           # overwrite a 32-bit word with an extreme
        i = rng.randrange(len(b) - 3)
        b[i:i + 4] = struct.pack("<I", rng.choice([0, 1, 0xFFFFFFFF, 0x7FFFFFFF, 65536]))
    elif b:                                 # delete a range
        i = rng.randrange(len(b))
        del b[i:i + rng.randint(1, 32)]
    return bytes(b)


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One mutated file: raw byte damage, or payload damage with valid CRCs."""
    if rng.random() < 0.5:
        return _mutate_bytes(data, rng)
    prefix = data[:container.SIGNATURE_BYTES]
    secs = split_sections(data)
    if len(secs) < 2:
        return _mutate_bytes(data, rng)
    choice = rng.randrange(4)
    if choice == 0 and len(secs) > 2:       # damage one payload, fix its CRC
        i = rng.randrange(len(secs) - 1)
        secs[i] = (secs[i][0], _mutate_bytes(secs[i][1], rng))
    elif choice == 1 and len(secs) > 2:     # drop or duplicate a section
        i = rng.randrange(1, len(secs) - 1)
        if rng.random() < 0.5:
            del secs[i]
        else:
            secs.insert(i, secs[i])
    elif choice == 2 and secs:              # swap payloads of two sections
        i, j = rng.randrange(len(secs)), rng.randrange(len(secs))
        secs[i], secs[j] = (secs[i][0], secs[j][1]), (secs[j][0], secs[i][1])
    else:                                   # unknown section, critical or not
        tag = rng.choice([b"XTRA", b"xtra", b"Z1IY", b"\x00\x01\x02\x03"])
        secs.insert(rng.randrange(1, len(secs)), (tag, bytes(rng.randrange(256)
                                                             for _ in range(rng.randint(0, 40)))))
    return join_sections(prefix, secs)

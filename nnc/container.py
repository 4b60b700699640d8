"""The .nnc byte format, versions 1 and 2 (normative spec: formats/nnc-v1.md).

    signature   8 bytes  b"\\x89NNC\\r\\n\\x1a\\n"
    version     u16 LE   2 (1: files written before 2026-11-30)
    sections    tag (4 ASCII bytes) | length u32 LE | payload | CRC-32 u32 LE of tag+payload
                HEAD first, END last (empty). A tag starting with an upper-case letter is
                critical: a reader that does not know it must refuse the file; others may be
                skipped. In version 2 each CRC continues from the previous section's, so a
                file pieced together from several files fails its checks.

This module knows bytes only: no tensors, no images.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

from .coding import SECTIONS as CODER_SECTIONS
from .errors import FormatError

MAGIC = b"\x89NNC\r\n\x1a\n"
VERSION = 2                   # what this nnc writes
READ_VERSIONS = (1, 2)        # what it reads
SIGNATURE_BYTES = len(MAGIC) + 2
SECTION_OVERHEAD = 12
# the order the spec sets for the sections between HEAD and END (equal ranks: alternatives):
# the coders' sections (each coder module declares its own) and then the image's
SECTION_RANK = {**CODER_SECTIONS, "ALPH": 100, "iCCP": 101, "eXIf": 102, "xMPd": 103}
KNOWN_SECTIONS = ("HEAD", *SECTION_RANK, "END ")
MAX_DIMENSION = 1 << 16       # width and height caps read from a header
MAX_NAME = 64
MAX_FILE_BYTES = 1 << 28      # readers refuse larger .nnc files (100 MP at 20 bpp fits)

_HEAD = struct.Struct("<IIBBfIBBBBffBHff")


@dataclass
class Header:
    width: int
    height: int
    channels: int            # 1 (gray) or 3 (RGB): what the decoder outputs
    alpha: bool              # an ALPH section carries a lossless alpha plane
    quality: float           # the rate parameter in [0, 1]
    seed: int                # the shared-randomness seed
    l1_block_w: int
    l1_block_h: int
    l1_shard_bits: int
    l1_max_shards: int
    l1_shard_decay: float    # shard variances decay by this factor per shard (1 = equal)
    l1_outlier_kl_bits: float  # encoder setting (informative)
    l2_index_bits: int
    l2_max_group: int
    l2_group_kl_bits: float  # encoder settings, recorded for reproducibility
    l2_outlier_kl_bits: float
    model_name: str
    weights_sha256: bytes    # 32 bytes

    def pack(self) -> bytes:
        name = self.model_name.encode("utf-8")
        return _HEAD.pack(self.width, self.height, self.channels, int(self.alpha),
                          self.quality, self.seed, self.l1_block_w, self.l1_block_h,
                          self.l1_shard_bits, self.l1_max_shards, self.l1_shard_decay,
                          self.l1_outlier_kl_bits,
                          self.l2_index_bits,
                          self.l2_max_group, self.l2_group_kl_bits,
                          self.l2_outlier_kl_bits) + bytes([len(name)]) + name + \
            self.weights_sha256

    @classmethod
    def unpack(cls, payload: bytes) -> "Header":
        if len(payload) < _HEAD.size + 1:
            raise FormatError("corrupt .nnc file: header section is too short")
        vals = _HEAD.unpack_from(payload)
        n = payload[_HEAD.size]
        name_end = _HEAD.size + 1 + n
        if len(payload) != name_end + 32:
            raise FormatError("corrupt .nnc file: header section has the wrong length")
        try:
            name = payload[_HEAD.size + 1:name_end].decode("utf-8")
        except UnicodeDecodeError:
            raise FormatError("corrupt .nnc file: model name is not UTF-8") from None
        h = cls(*vals[:3], bool(vals[3]), *vals[4:], model_name=name,
                weights_sha256=payload[name_end:])
        h.validate()
        return h

    def validate(self) -> None:
        def bad(what):
            raise FormatError(f"corrupt .nnc file: {what}")
        if not (1 <= self.width <= MAX_DIMENSION and 1 <= self.height <= MAX_DIMENSION):
            bad(f"image size {self.width}x{self.height} is out of range")
        if self.channels not in (1, 3):
            bad(f"{self.channels} channels (1 or 3 expected)")
        if not (0.0 <= self.quality <= 1.0):
            bad(f"rate parameter {self.quality} is outside [0, 1]")
        if not (1 <= self.l1_block_w <= 16 and 1 <= self.l1_block_h <= 16):
            bad("level-1 block size is out of range")
        if not (1 <= self.l1_shard_bits <= 16 and 1 <= self.l1_max_shards <= 63):
            bad("level-1 shard parameters are out of range")
        if not (0.01 <= self.l1_shard_decay <= 1.0):
            bad("level-1 shard decay is out of range")
        if not (1 <= self.l2_index_bits <= 20 and 2 <= self.l2_max_group <= 4096):
            bad("level-2 group parameters are out of range")
        if not self.model_name or len(self.model_name.encode()) > MAX_NAME:
            bad("model name is empty or too long")


@dataclass
class Container:
    header: Header
    sections: dict[str, bytes] = field(default_factory=dict)   # tag -> payload, file order


def section_crc(raw_tag: bytes, payload: bytes, previous: int | None) -> int:
    """The CRC of a section: of tag + payload, continuing from the previous section's CRC
    (version 2; ``previous`` None for the first section and for version 1)."""
    return zlib.crc32(raw_tag + payload, previous or 0)


def frame(sections, version: int = VERSION) -> bytes:
    """Signature, version and the (raw tag, payload) pairs framed, with their CRCs."""
    parts, crc = [MAGIC, struct.pack("<H", version)], None
    for t, p in sections:
        crc = section_crc(t, p, crc if version >= 2 else None)
        parts.append(t + struct.pack("<I", len(p)) + p + struct.pack("<I", crc))
    return b"".join(parts)


def section_bytes(tag: str, payload: bytes) -> bytes:
    """One section as version 1 frames it (and version 2 frames the first)."""
    return frame([(tag.encode("ascii"), payload)])[SIGNATURE_BYTES:]


def write(c: Container) -> bytes:
    return frame([(b"HEAD", c.header.pack()),
                  *[(t.encode("ascii"), p) for t, p in c.sections.items()],
                  (b"END ", b"")])


def iter_sections(data: bytes):
    """Yield (tag, payload, offset, total_size) for each section; checks framing and CRCs."""
    if len(data) < SIGNATURE_BYTES or data[:len(MAGIC)] != MAGIC:
        if data[:4] == MAGIC[:4] or data[1:4] == b"NNC":
            raise FormatError("corrupt .nnc file: damaged signature (was it sent as text?)")
        raise FormatError("not an .nnc file (wrong magic bytes); 'nnc compress' turns an "
                          "image into one")
    (version,) = struct.unpack_from("<H", data, len(MAGIC))
    if version not in READ_VERSIONS:
        raise FormatError(f"unsupported .nnc version {version}: this nnc reads versions "
                          f"up to {max(READ_VERSIONS)}; upgrade nnc to read it"
                          if version > max(READ_VERSIONS) else
                          f"unsupported .nnc version {version}")
    pos, previous = SIGNATURE_BYTES, None
    while True:
        if pos + 8 > len(data):
            raise FormatError("truncated .nnc file: a section header is cut off")
        raw_tag = data[pos:pos + 4]
        (length,) = struct.unpack_from("<I", data, pos + 4)
        end = pos + 8 + length + 4
        if end > len(data):
            raise FormatError("truncated .nnc file: a section is cut off")
        payload = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack_from("<I", data, pos + 8 + length)
        if section_crc(raw_tag, payload, previous) != crc:
            raise FormatError(f"corrupt .nnc file: checksum mismatch in section at byte {pos}"
                              + (" (damaged, or pieced together from several files)"
                                 if version >= 2 else ""))
        if version >= 2:
            previous = crc
        try:
            tag = raw_tag.decode("ascii")
        except UnicodeDecodeError:
            raise FormatError("corrupt .nnc file: section tag is not ASCII") from None
        if tag == "END " and end != len(data):
            raise FormatError("corrupt .nnc file: bytes after the end marker")
        yield tag, payload, pos, end - pos
        if tag == "END ":
            return
        pos = end


MAX_HEAD_BYTES = _HEAD.size + 1 + 255 + 32     # the largest HEAD payload a length can give


def read_header(read) -> Header:
    """The header alone, from ``read(n)`` (a file's read): the signature, the version and
    the HEAD section, checked as :func:`read` checks them, and nothing after them (a
    Pillow plugin identifies a file so, without reading all of it)."""
    start = read(SIGNATURE_BYTES + 8)
    if len(start) < SIGNATURE_BYTES or start[:len(MAGIC)] != MAGIC:
        raise FormatError("not an .nnc file (wrong magic bytes)")
    (version,) = struct.unpack_from("<H", start, len(MAGIC))
    if version not in READ_VERSIONS:
        raise FormatError(f"unsupported .nnc version {version}")
    if len(start) < SIGNATURE_BYTES + 8:
        raise FormatError("truncated .nnc file: a section header is cut off")
    raw_tag = start[SIGNATURE_BYTES:SIGNATURE_BYTES + 4]
    (length,) = struct.unpack_from("<I", start, SIGNATURE_BYTES + 4)
    if raw_tag != b"HEAD":
        raise FormatError("corrupt .nnc file: the first section is not HEAD")
    if length > MAX_HEAD_BYTES:
        raise FormatError("corrupt .nnc file: header section has the wrong length")
    rest = read(length + 4)
    if len(rest) < length + 4:
        raise FormatError("truncated .nnc file: a section is cut off")
    payload = rest[:length]
    if section_crc(raw_tag, payload, None) != struct.unpack_from("<I", rest, length)[0]:
        raise FormatError(f"corrupt .nnc file: checksum mismatch in section at byte "
                          f"{SIGNATURE_BYTES}")
    return Header.unpack(payload)


def read(data: bytes) -> Container:
    header = None
    sections: dict[str, bytes] = {}
    for i, (tag, payload, _, _) in enumerate(iter_sections(data)):
        if i == 0:
            if tag != "HEAD":
                raise FormatError("corrupt .nnc file: the first section is not HEAD")
            header = Header.unpack(payload)
            continue
        if tag == "END ":
            break
        if tag in sections or tag == "HEAD":
            raise FormatError(f"corrupt .nnc file: section {tag!r} appears twice")
        if tag not in KNOWN_SECTIONS:
            if tag[:1].isupper():
                raise FormatError(f"unsupported .nnc file: unknown critical section {tag!r}; "
                                  "a newer nnc may read it")
            continue
        if any(SECTION_RANK[t] >= SECTION_RANK[tag] for t in sections):
            raise FormatError(f"corrupt .nnc file: section {tag!r} is out of order")
        sections[tag] = payload
    if "ALPH" in sections and not header.alpha:
        raise FormatError("corrupt .nnc file: an alpha section in a file without alpha")
    return Container(header, sections)


def layout(data: bytes) -> list[dict]:
    """Bytes per part of the file (signature, each section with framing): sums to len(data)."""
    rows = [{"section": "signature", "bytes": SIGNATURE_BYTES}]
    for tag, _, _, size in iter_sections(data):
        rows.append({"section": tag.strip(), "bytes": size})
    return rows

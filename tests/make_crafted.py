"""Crafted hostile inputs for tests/test_hostile3.py (issue 30, items 1 and 9), written by
this script so that none needs to be stored in the repository:

    python tests/make_crafted.py DIR      # writes the files into DIR and lists them

Images the format cannot hold (item 1):
  wide-65537x1.png       a real 65537x1 gradient: one pixel past the 65536-pixel side limit
  tall-1x100000000.png   69 bytes; its header declares 1x100,000,000 pixels (exactly
                         --max-pixels' default), its IDAT holds one row: refused on the
                         header, before any pixel is decoded
Colour profiles (item 9), on the golden files (formats/golden/):
  icc-16mib.nnc          an RGB file whose iCCP section holds a 16 MiB RGB profile (the
                         spec's maximum): decodes; a JPEG output drops it with a warning
  icc-rgb-on-gray.nnc    a gray file carrying an RGB profile: refused (rc 4)
  icc-cmyk.nnc           an RGB file carrying a CMYK profile: refused (rc 4)
  icc-2mib.png           a PNG with a 2 MiB profile, over Pillow's 1 MiB text-chunk limit:
                         compressed with its profile
  icc-17mib.png          a PNG with a profile over the format's 16 MiB: compressed, the
                         pixels kept and the profile dropped
"""
from __future__ import annotations

import io
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

GOLDEN = Path(__file__).resolve().parents[1] / "formats" / "golden"
RGB_FILE = GOLDEN / "2026-11-30-kodim23-crop-q50.nnc"
GRAY_FILE = GOLDEN / "2026-11-30-kodim23-gray-q20.nnc"


def icc_profile(space: bytes, size: int) -> bytes:
    """A profile-shaped blob: ICC header (size, data colour space at bytes 16-19, 'acsp'
    at 36-39) padded with zeros to ``size`` bytes."""
    head = bytearray(128)
    struct.pack_into(">I", head, 0, size)
    head[12:16] = b"mntr"
    head[16:20] = space
    head[20:24] = b"XYZ "
    head[36:40] = b"acsp"
    return bytes(head) + bytes(size - 128)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + \
        struct.pack(">I", zlib.crc32(kind + body))


def png_declaring(width: int, height: int, rows: int = 1) -> bytes:
    """An 8-bit RGB PNG whose header declares width x height, with pixel data for ``rows``
    rows only (a reader that checks the header never gets to them)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    raw = (b"\0" + bytes(3 * width)) * rows
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(raw))
            + _chunk(b"IEND", b""))


def png_with_profile(profile: bytes) -> bytes:
    """A 24x16 RGB PNG carrying ``profile`` in its iCCP chunk (written by hand: Pillow
    writes one of any size, but this keeps the script's output independent of it)."""
    rng = np.random.default_rng(5)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (16, 24, 3), dtype=np.uint8)).save(buf, "PNG")
    data = buf.getvalue()
    iccp = _chunk(b"iCCP", b"crafted\0\0" + zlib.compress(profile, 9))
    at = 8 + 25                       # after the signature and IHDR
    return data[:at] + iccp + data[at:]


def with_profile(nnc_file: bytes, profile: bytes) -> bytes:
    """An .nnc file with an iCCP section (spec §6b) added before END, CRCs made valid."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from nnc import container
    from nnc.codes import write_icc
    sections = [(raw := nnc_file[pos:pos + 4], payload)
                for _, payload, pos, _ in container.iter_sections(nnc_file)]
    assert sections[-1][0] == b"END " and raw == b"END "
    version = struct.unpack_from("<H", nnc_file, 8)[0]
    return container.frame([*sections[:-1], (b"iCCP", write_icc(profile)), sections[-1]],
                           version)


def make_all(out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    ramp = np.linspace(0, 255, 65537).astype(np.uint8)
    files = {
        "wide-65537x1.png": lambda: _png(np.stack([ramp] * 3, -1)[None]),
        "tall-1x100000000.png": lambda: png_declaring(1, 100_000_000),
        "icc-16mib.nnc": lambda: with_profile(RGB_FILE.read_bytes(),
                                              icc_profile(b"RGB ", 16 << 20)),
        "icc-rgb-on-gray.nnc": lambda: with_profile(GRAY_FILE.read_bytes(),
                                                    icc_profile(b"RGB ", 1024)),
        "icc-cmyk.nnc": lambda: with_profile(RGB_FILE.read_bytes(),
                                             icc_profile(b"CMYK", 1024)),
        "icc-2mib.png": lambda: png_with_profile(icc_profile(b"RGB ", 2 << 20)),
        "icc-17mib.png": lambda: png_with_profile(icc_profile(b"RGB ", 17 << 20)),
    }
    paths = {}
    for name, make in files.items():
        paths[name] = out / name
        paths[name].write_bytes(make())
    return paths


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tests/make_crafted.py DIR")
    for name, path in make_all(Path(sys.argv[1])).items():
        print(f"{path}  {path.stat().st_size} bytes")

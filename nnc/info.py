"""`nnc info`: the header and where the bits went, read from the container only."""
from __future__ import annotations

import numpy as np

from . import container
from .errors import one_line

SECTION_NAMES = {
    "signature": "magic + version",
    "HEAD": "header",
    "Z2SA": "level 2 side info (groups, outliers)",
    "Z2SI": "level 2 side info (groups, outliers; older coding)",
    "Z2IX": "level 2 sample indices",
    "Z1SA": "level 1 side info (outliers, shard counts)",
    "Z1SI": "level 1 side info (outliers, shard counts; older coding)",
    "Z1IX": "level 1 shard indices",
    "ALPH": "alpha plane (lossless)",
    "iCCP": "colour profile (ICC)",
    "eXIf": "camera metadata (EXIF)",
    "xMPd": "metadata (XMP)",
    "END": "end marker",
}


def describe(data: bytes, name: str = "-") -> dict:
    c = container.read(data)
    h = c.header
    pixels = h.width * h.height
    rows = container.layout(data)
    for r in rows:
        r["bpp"] = 8 * r["bytes"] / pixels
        r["share"] = r["bytes"] / len(data)
        r["what"] = SECTION_NAMES.get(r["section"], "unknown (skipped)")
    # the header's f32 fields as the shortest decimal that reads back as the same float32
    # (0.6, not 0.6000000238418579)
    hdr = {k: float(str(np.float32(v))) if isinstance(v, float) else v
           for k, v in vars(h).items() if k != "weights_sha256"}
    hdr["weights_sha256"] = h.weights_sha256.hex()
    return {"file": name, "bytes": len(data), "bpp": 8 * len(data) / pixels,
            "version": int.from_bytes(data[len(container.MAGIC):container.SIGNATURE_BYTES],
                                      "little"),
            "header": hdr, "sections": rows}


def format_text(r: dict) -> str:
    h = r["header"]
    lines = [f"{one_line(r['file'])}: nnc v{r['version']}, {h['width']}x{h['height']}, "
             f"{'gray' if h['channels'] == 1 else 'RGB'}{' + alpha' if h['alpha'] else ''}, "
             f"{r['bytes']} bytes, {r['bpp']:.4f} bpp",
             f"  model {one_line(h['model_name'])} (sha256 {h['weights_sha256'][:16]}...), "
             f"quality {h['quality']:.4f}, seed {h['seed']}",
             f"  level 1: {h['l1_block_w']}x{h['l1_block_h']} blocks, "
             f"{h['l1_shard_bits']}-bit shards (max {h['l1_max_shards']}); "
             f"level 2: {h['l2_index_bits']}-bit indices, groups <= {h['l2_max_group']}",
             f"  {'section':<10}{'bytes':>10}{'bpp':>10}{'share':>8}  what"]
    for s in r["sections"]:
        lines.append(f"  {s['section']:<10}{s['bytes']:>10}{s['bpp']:>10.4f}"
                     f"{100 * s['share']:>7.1f}%  {s['what']}")
    return "\n".join(lines) + "\n"

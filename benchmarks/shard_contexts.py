"""How much of the level-1 shard-count map could a better context model save? (issue 13)

The shard counts are a large overhead in an nnc file (6–14% of its bytes; 8–19% with 4x2 blocks). This encodes
Kodak images at the default settings, reads the counts back from the files, and compares
what the file spends on them (section Z1SA: live flags, then adaptive counts with the counts
above and to the left as context) with the *empirical conditional entropy* of the counts
under richer contexts that a decoder could know exactly (integers already decoded):

* ``above_left``: the file's context (the counts above and to the left, capped at 3);
* ``+channel``: and the channel (in groups of 8 channels);
* ``+activity``: and how many channels have a shard at the same block position, bucketed
  by log2 (an oracle: a real format would have to send it first; its cost is not counted);
* ``+activity+channel``: both.

Empirical conditional entropies are fitted to the very data they measure, pooled over the
images of one rate, so they are lower bounds on what an adaptive model with that context
would spend: the real saving is smaller.

    python -m benchmarks.shard_contexts --out benchmarks/results/shard-contexts.json
"""
from __future__ import annotations

import argparse
import json
import platform
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from nnc import codec, container
from nnc.codes import read_codes
from nnc.image_io import read_image

from benchmarks.common import KODAK

IMAGES = ("kodim01", "kodim04", "kodim08", "kodim13", "kodim19", "kodim23")
QUALITIES = (0.0, 0.4, 0.8)


def conditional_entropy_bits(contexts: list, values: list) -> float:
    """Total bits of ``values`` under their empirical distribution given ``contexts``."""
    joint = Counter(zip(contexts, values))
    marginal = Counter(contexts)
    return -sum(n * np.log2(n / marginal[c]) for (c, _), n in joint.items())


def contexts_of(shards: np.ndarray) -> dict[str, list]:
    """The candidate contexts of every count of the live channels, (M, rows, cols)."""
    above = np.zeros_like(shards)
    left = np.zeros_like(shards)
    above[:, 1:] = shards[:, :-1]
    left[:, :, 1:] = shards[:, :, :-1]
    above, left = np.minimum(above, 3).ravel(), np.minimum(left, 3).ravel()
    channel = (np.broadcast_to(np.arange(shards.shape[0])[:, None, None], shards.shape)
               // 8).ravel()
    active = (shards > 0).sum(0)
    bucket = np.minimum(np.ceil(np.log2(1 + active)).astype(np.int64), 7)
    activity = np.broadcast_to(bucket[None], shards.shape).ravel()
    return {"above_left": list(zip(above, left)),
            "+channel": list(zip(above, left, channel)),
            "+activity": list(zip(above, left, activity)),
            "+activity+channel": list(zip(above, left, activity, channel))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", nargs="+", default=list(IMAGES))
    ap.add_argument("--qualities", type=float, nargs="+", default=list(QUALITIES))
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    torch.set_num_threads(2)
    settings = codec.default_settings("cpu")   # the CLI's CPU default
    rows = []
    for q in a.qualities:
        file_bits = side_bits = 0.0
        ctx: dict[str, list] = {}
        values: list = []
        for name in a.images:
            img = read_image((KODAK / f"{name}.png").read_bytes())
            data = codec.compress(img, q, device="cpu", settings=settings)
            codes = read_codes(data, 1 << 30)
            file_bits += 8 * len(data)
            shards = codes.level1.shards
            live = shards.reshape(shards.shape[0], -1).max(1) > 0
            sections = container.read(data).sections
            side_bits += 8 * len(sections["Z1SA"])   # counts, live flags and outliers
            for k, v in contexts_of(shards[live]).items():
                ctx.setdefault(k, []).extend(v)
            values.extend(shards[live].ravel().tolist())
        row = {"quality": q, "file_bits": file_bits,
               "z1sa_share_of_file": side_bits / file_bits,
               "blocks": len(values), "zero_share": float(np.mean(np.array(values) == 0))}
        for k, c in ctx.items():
            row[f"entropy_share_of_file[{k}]"] = conditional_entropy_bits(c, values) / file_bits
        rows.append(row)
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v)
                          for k, v in row.items()}), flush=True)
    a.out.write_text(json.dumps({"machine": f"{platform.machine()} CPU",
                                 "images": a.images, "settings": "nnc compress defaults",
                                 "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""The level-1 shard-count table that ships with a model: counts of the shard counts
(by the context of the blocks above and to the left) the encoder gives training images at
several rates (nnc/coding/greedy.py's plan, on the network's posteriors)."""
from __future__ import annotations

import numpy as np

from ..lazy import torch
from .greedy import plan, to_blocks
from .greedy_format import Level1Format, Level1Search, shard_contexts


def level1_shards(model, img, quality: float, fmt: Level1Format = Level1Format(),
                  search: Level1Search = Level1Search()) -> np.ndarray:
    """The shard counts (M, rows, cols) an image gets (at the posterior-mean z2)."""
    from ..model import tiling
    with torch.no_grad():
        x = tiling.to_tensor(img, model.stride, "cpu")
        q = torch.tensor([quality])
        post = model.posteriors(x, q, encode=tiling.encode)
        (mu_p, s_p), (mu1, s1) = post.prior1, post.z1
        bh, bw = fmt.block_h, fmt.block_w
        _, k, _, _ = plan(to_blocks((mu1 - mu_p) / s_p, bh, bw), to_blocks(s1 / s_p, bh, bw),
                          fmt, search)
    m, h1, w1 = mu1.shape[1:]
    return k.numpy().reshape(m, h1 // bh, w1 // bw)


def shard_table_from_images(model, images: list, qualities=(0.0, 0.25, 0.5, 0.75, 1.0),
                            fmt: Level1Format = Level1Format()) -> np.ndarray:
    """Counts table[above, left, value] of shard counts over images and rates."""
    n = fmt.max_shards + 1
    table = np.zeros((n, n, n), dtype=np.int64)
    for img in images:
        for q in qualities:
            k = level1_shards(model, img, q, fmt)
            a, l = shard_contexts(k)
            np.add.at(table, (a.ravel(), l.ravel(), k.ravel()), 1)
    return table

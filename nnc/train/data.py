"""Training images: a folder loaded once, and random crops of it (on the GPU for a GPU run)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".ppm", ".tif", ".tiff"}


def load_folder(folder: Path, min_size: int) -> list:
    import numpy as np
    from PIL import Image
    images = []
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        with Image.open(p) as im:
            arr = np.asarray(im.convert("RGB"))
        if min(arr.shape[:2]) >= min_size:
            images.append(arr)
    if not images:
        raise ValueError(f"no images of at least {min_size}x{min_size} pixels in {folder}")
    return images


def random_batch(images, batch: int, crop: int, rng) -> "torch.Tensor":
    import numpy as np
    import torch
    out = np.empty((batch, crop, crop, 3), dtype=np.uint8)
    for i in range(batch):
        im = images[rng.integers(len(images))]
        y = rng.integers(im.shape[0] - crop + 1)
        x = rng.integers(im.shape[1] - crop + 1)
        c = im[y:y + crop, x:x + crop]
        if rng.random() < 0.5:
            c = c[:, ::-1]
        if rng.random() < 0.5:
            c = c[::-1]
        out[i] = c
    return torch.from_numpy(out).permute(0, 3, 1, 2).float().div_(255.0)


class TensorCrops:
    """Random crops with the 8 flips/transposes, drawn from images stacked in one uint8
    tensor on ``device`` (all images the same size), so that a GPU never waits on the host."""

    def __init__(self, images: list, crop: int, device: str, seed: int):
        import numpy as np
        import torch
        self.data = torch.from_numpy(np.stack(images)).to(device).permute(0, 3, 1, 2)
        self.crop, self.device = crop, device
        self.gen = torch.Generator(device=device)
        self.gen.manual_seed(seed)
        self.ar = torch.arange(crop, device=device)

    def __call__(self, batch: int) -> "torch.Tensor":
        import torch
        n, _, h, w = self.data.shape
        c, g, dev = self.crop, self.gen, self.device
        idx = torch.randint(n, (batch,), generator=g, device=dev)
        oy = torch.randint(h - c + 1, (batch, 1), generator=g, device=dev)
        ox = torch.randint(w - c + 1, (batch, 1), generator=g, device=dev)
        flip = torch.rand(batch, 3, generator=g, device=dev) < 0.5
        rows = oy + torch.where(flip[:, :1], c - 1 - self.ar, self.ar)
        cols = ox + torch.where(flip[:, 1:2], c - 1 - self.ar, self.ar)
        x = self.data[idx[:, None, None, None], torch.arange(3, device=dev)[None, :, None, None],
                      rows[:, None, :, None], cols[:, None, None, :]]
        x = torch.where(flip[:, 2, None, None, None], x.transpose(2, 3), x)
        return x.float().div_(255.0)


def batch_sampler(images: list, crop: int, device: str, seed: int):
    """``batch -> float tensor in [0, 1]`` on ``device``."""
    import numpy as np
    if len({im.shape for im in images}) == 1:
        return TensorCrops(images, crop, device, seed)
    rng = np.random.default_rng(seed)
    return lambda batch: random_batch(images, batch, crop, rng).to(device)

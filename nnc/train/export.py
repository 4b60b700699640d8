"""Installing a trained model: the level-1 shard table's images, planned within a time
limit, and the install."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from .data import IMAGE_SUFFIXES


TABLE_IMAGES = 60     # training images the level-1 shard table is estimated from, at most
TABLE_CROP = 256      # ... each cut to its central 256x256 (as the shipped tables' crops)
TABLE_RATES = 5       # qualities per image (coding/shard_table.py shard_table_from_images)
EXPORT_SHARE = 0.1    # of a --time-limit, the most the table may take (8 images at least)


def table_images(data: Path, limit: int = TABLE_IMAGES) -> list:
    """Up to ``limit`` images spread over the folder, each cut to its central TABLE_CROP
    square: the table's cost is then bounded whatever the photos' size (full 12 MP photos
    cost minutes)."""
    from ..errors import InputError
    from ..image_io import RasterImage, read_image
    files = sorted(p for p in data.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if len(files) > limit:
        files = [files[round(i * (len(files) - 1) / (limit - 1))] for i in range(limit)]
    out = []
    for p in files:
        try:
            img = read_image(p.read_bytes())
        except (InputError, OSError):
            continue
        h, w, _ = img.rgb.shape
        y, x = max(0, (h - TABLE_CROP) // 2), max(0, (w - TABLE_CROP) // 2)
        out.append(RasterImage(img.rgb[y:y + TABLE_CROP, x:x + TABLE_CROP].copy(), img.gray,
                               None))
    return out


def _spread(items: list, n: int) -> list:
    if n >= len(items):
        return items
    return [items[round(i * (len(items) - 1) / max(1, n - 1))] for i in range(n)]


def plan_export(cfg, images: list, time_limit_s: float | None) -> tuple[list, float]:
    """The table images to use and the seconds the export will take (timed on one image
    with a model of ``cfg``): at most EXPORT_SHARE of ``time_limit_s`` (8 images at least)."""
    if not images:
        return images, 1.0
    from ..coding.shard_table import level1_shards
    from ..model.pln import PLN
    model = PLN(cfg).eval()
    probe = images[0]
    level1_shards(model, probe, 0.5)        # warm-up
    took = []
    for _ in range(2):
        t = time.perf_counter()
        level1_shards(model, probe, 0.5)
        took.append(time.perf_counter() - t)
    per_pixel = min(took) * TABLE_RATES / probe.rgb[..., 0].size
    if time_limit_s is not None:
        mean = per_pixel * sum(img.rgb[..., 0].size for img in images) / len(images)
        images = _spread(images, max(8, int(EXPORT_SHARE * time_limit_s / mean)))
    # + loading and saving the weights, hashing, the manifest: well under a second; the two
    # ONNX graphs for the torch-free decoder (model/onnx_export.py): about 3 s on 2 cores
    # for the shipped model's 5.8 M parameters, less for smaller ones
    onnx_s = 0.3 + 3.0 * sum(p.numel() for p in model.parameters()) / 5.8e6
    return images, 1.2 * per_pixel * sum(img.rgb[..., 0].size for img in images) + 1.0 + onnx_s


def export_run(ckpt: Path, name: str, images: list, info: dict, make_default: bool,
               say: Callable[[str], None], bar: bool, deadline: float | None = None,
               replace: bool = False) -> dict:
    """Install ``ckpt`` as model ``name`` (nnc.model.weights.install), saying what it does:
    a tqdm bar over the table images, or a line every 10 s."""
    from ..model.weights import install
    t0 = time.monotonic()
    say(f"exporting: the level-1 shard table from {len(images)} training images x "
        f"{TABLE_RATES} rates, then the weights")
    pbar = None
    if bar:
        from tqdm import tqdm
        pbar = tqdm(total=len(images), unit="image", desc="shard table", dynamic_ncols=True)
    said = [t0]

    def progress(done: int, total: int) -> None:
        if pbar is not None:
            pbar.update(done - pbar.n)
        elif time.monotonic() - said[0] >= 10:
            said[0] = time.monotonic()
            say(f"exporting: {done}/{total} images")

    try:
        entry = install(ckpt, name, images, info, make_default=make_default,
                        progress=progress, deadline=deadline, replace=replace)
    finally:
        if pbar is not None:
            pbar.close()
    say(f"exported in {time.monotonic() - t0:.1f} s ({entry['shard_table_from']})")
    return entry

"""Orchestration: image <-> latents <-> bytes. The only module that knows all three.

::

    compress:   RasterImage ─pad─▶ x ─PLN.encode─▶ q(z2|x)
                q(z2|x) ─importance coder─▶ z2 ─PLN.prior1─▶ p(z1|z2) ─combine─▶ q(z1|z2,x)
                q(z1|z2,x), p(z1|z2) ─greedy coder─▶ z1;  codes ─container─▶ bytes
    decompress: bytes ─container─▶ codes ─▶ z2 ─PLN.prior1─▶ p(z1|z2) ─▶ z1 ─PLN.decode─▶ x̂
"""
from __future__ import annotations

import math
import time
import zlib
from dataclasses import dataclass, replace

import numpy as np
import torch

from . import container
from .coding.greedy import (greedy_decode, greedy_encode, kl_bits_standardized, rd_encode,
                            shard_counts)
from .codes import FileCodes, _write_level1, _write_level2, read_codes, write_icc
from .coding.importance import (dequantize_outlier, importance_decode, importance_encode,
                                quantize_outlier)
from .coding.prng import STREAM_ENCODER, block_keys, mix32, words_to_gaussian
from .errors import DeviceError, ModelError
from .image_io import DEFAULT_MAX_PIXELS, RasterImage, compute_padding
from .model.pln import PLN, combine_posterior
from .model import tiling
from .model.refine import MAX_PIXELS as REFINE_MAX_PIXELS, refine_level1, refine_level2
from .model.weights import load_model


@dataclass(frozen=True)
class CoderParams:
    """Coder settings. The decoder's are recorded in the header; those marked "encoder only"
    change which indices the encoder picks, not how files decode. Defaults chosen with
    benchmarks/coder_params.py (real files, BD-rate)."""
    l1_block_w: int = 4
    l1_block_h: int = 2
    l1_shard_bits: int = 8
    l1_max_shards: int = 15
    l1_shard_decay: float = 0.5     # coarse to fine; refit per model (benchmarks/coder_params.py)
    l1_rate_scale: float = 1.0     # shards = round(rate_scale * KL / shard_bits); encoder only
    l1_outlier_kl_bits: float = 16.0   # level-1 dims above this KL are sent as 16-bit values
    l1_first_shard_kl: float = 4.0  # blocks from this KL (bits) up get >= 1 shard; encoder only
    l1_beam: int = 16              # beam width of the level-1 search; encoder only
    l1_lookahead: bool = True      # score against what later shards add; encoder only
    l1_rd_kappa: float = 1.0       # > 0: shard counts by rate-distortion; encoder only
    l2_index_bits: int = 12
    l2_max_group: int = 1024
    l2_group_kl_bits: float = 11.0
    l2_outlier_kl_bits: float = 11.0
    l2_sharpen: float = 3.0        # choose level-2 candidates by (q/p)^sharpen; encoder only
    refine_steps: int = 0          # refinement steps on the level-1 posterior; encoder only
    refine_step: float = 0.5       # ... their size (model/refine.py; 1 = diagonal Newton)
    refine_l2_steps: int = 0       # refinement steps on the level-2 posterior; encoder only
    refine_coder_aware: bool = True    # refine as if blocks under l1_first_shard_kl decode to mu_p


@dataclass
class CompressStats:
    """What the encoder knows and the file does not: the ΣKL of each level, in bits."""
    kl1_bits: float = 0.0
    kl2_bits: float = 0.0
    l1_outliers: int = 0            # level-1 dimensions sent as 16-bit values ...
    l1_outlier_bits: float = 0.0    # ... and the bits they take (positions + values)


class _Stages:
    """Adds the wall time since the previous mark to ``out[name]`` (no-op without ``out``)."""

    def __init__(self, out: dict | None, device: str):
        self.out, self.cuda = out, device.startswith("cuda")
        self.t = time.perf_counter()

    def __call__(self, name: str) -> None:
        if self.out is None:
            return
        if self.cuda:
            torch.cuda.synchronize()
        now = time.perf_counter()
        self.out[name] = self.out.get(name, 0.0) + now - self.t
        self.t = now


def pick_device(device: str | None = None) -> str:
    """'auto' (or None): cuda when torch sees a GPU, else cpu; a device named outright must
    exist here (DeviceError otherwise)."""
    if not device or device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        kind = torch.device(device)
    except (RuntimeError, ValueError):
        raise DeviceError(f"--device {device}: not a device name; use cpu, cuda, cuda:N or "
                          "auto") from None
    if kind.type == "cuda":
        if not torch.cuda.is_available():
            why = ("this torch was built without CUDA" if torch.version.cuda is None
                   else "torch finds no CUDA GPU here")
            raise DeviceError(f"--device {device}: {why}; use --device cpu (or auto)")
        if kind.index is not None and kind.index >= torch.cuda.device_count():
            raise DeviceError(f"--device {device}: this machine has "
                              f"{torch.cuda.device_count()} CUDA device(s)")
    elif kind.type not in ("cpu", "mps"):
        raise DeviceError(f"--device {device}: nnc runs on cpu or cuda")
    return device


REFINE_STEPS_GPU = 5     # the CLI's default refinement steps per level on a GPU ...
REFINE_STEPS_CPU = 1     # ... and on the CPU (benchmarks/results/refine-params.json)


def refined(steps: int, params: "CoderParams | None" = None) -> "CoderParams":
    """``params`` (default: the defaults) with ``steps`` refinement steps on each level:
    what ``nnc compress --refine STEPS`` uses."""
    return replace(params or CoderParams(), refine_steps=steps, refine_l2_steps=steps)


def default_refine_steps(device: str | None = None) -> int:
    """Refinement steps (model/refine.py) the CLI uses by default on this device: on the CPU
    one per level, which gets most of what two would (6 Kodak images: BD-rate against WebP
    +4.4% without, -0.3% with one, -0.9% with two) and keeps a Kodak image within 10 s as a
    whole process; on a GPU steps cost little."""
    named = device if device and device != "auto" else pick_device(device)
    return REFINE_STEPS_GPU if named.startswith("cuda") else REFINE_STEPS_CPU


# --- level-1 block layout: (1, M, H1, W1) <-> (n_blocks, bh*bw), channel-major ---
def to_blocks(t: torch.Tensor, bh: int, bw: int) -> torch.Tensor:
    _, m, h, w = t.shape
    return (t.reshape(m, h // bh, bh, w // bw, bw).permute(0, 1, 3, 2, 4)
             .reshape(m * (h // bh) * (w // bw), bh * bw))


def from_blocks(b: torch.Tensor, m: int, h: int, w: int, bh: int, bw: int) -> torch.Tensor:
    return (b.reshape(m, h // bh, w // bw, bh, bw).permute(0, 1, 3, 2, 4)
             .reshape(1, m, h, w))


def _shard_contexts(shards: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Context of each shard count (M, rows, cols): the counts of the blocks above and to
    the left in the same channel (0 outside the latent)."""
    above = np.zeros_like(shards)
    left = np.zeros_like(shards)
    above[:, 1:, :] = shards[:, :-1, :]
    left[:, :, 1:] = shards[:, :, :-1]
    return above, left


def level1_plan(mean: torch.Tensor, std: torch.Tensor, p: "CoderParams",
                kl: torch.Tensor | None = None):
    """Split level-1 blocks into outlier dims (sent directly, thesis Algorithm 3's rule
    applied to level 1) and the rest (greedy coder). Returns (outlier mask, shards, mean,
    std) where the outlier dims are neutralized (mean 0, std 1: no KL, no preference).
    ``kl`` is the per-dimension KL in bits, if the caller already has it."""
    if kl is None:
        kl = kl_bits_standardized(mean, std)
    out = kl > p.l1_outlier_kl_bits
    mean = torch.where(out, torch.zeros_like(mean), mean)
    std = torch.where(out, torch.ones_like(std), std)
    kl = torch.where(out, torch.zeros_like(kl), kl)
    shards = shard_counts(kl.sum(1) * p.l1_rate_scale, p.l1_shard_bits, p.l1_max_shards,
                          p.l1_first_shard_kl)
    return out, shards, mean, std


@torch.no_grad()
def level1_shards(model: PLN, img: RasterImage, quality: float,
                  params: "CoderParams") -> np.ndarray:
    """The level-1 shard counts (M, rows, cols) an image gets (posterior-mean z2)."""
    x = _to_tensor(img, model.stride, "cpu")
    q = torch.tensor([quality])
    (mu_x, s_x), (mu2, s2) = tiling.encode(model, x, q)
    mu_p, s_p = model.prior1(mu2, q)
    mu1, s1 = combine_posterior(mu_x, s_x, mu_p, s_p)
    bh, bw = params.l1_block_h, params.l1_block_w
    _, k, _, _ = level1_plan(to_blocks((mu1 - mu_p) / s_p, bh, bw),
                             to_blocks(s1 / s_p, bh, bw), params)
    m, h1, w1 = mu1.shape[1:]
    return k.numpy().reshape(m, h1 // bh, w1 // bw)


def shard_table_from_images(model: PLN, images: list[RasterImage],
                            qualities=(0.0, 0.25, 0.5, 0.75, 1.0),
                            params: "CoderParams | None" = None) -> np.ndarray:
    """Counts table[above, left, value] of level-1 shard counts over images and rates."""
    params = params or CoderParams()
    n = params.l1_max_shards + 1
    table = np.zeros((n, n, n), dtype=np.int64)
    for img in images:
        for q in qualities:
            k = level1_shards(model, img, q, params)
            a, l = _shard_contexts(k)
            np.add.at(table, (a.ravel(), l.ravel(), k.ravel()), 1)
    return table


def _to_tensor(img: RasterImage, stride: int, device: str,
               as_float: bool = True) -> torch.Tensor:
    """The image padded (edge replication, in 8 bits) to multiples of ``stride``, as a
    (1, 3, H, W) tensor: float in [0, 1], or (``as_float`` False) uint8, which the tiled
    transforms convert a tile at a time (a quarter of the memory of one float copy)."""
    h, w, _ = img.rgb.shape
    ph, pw = compute_padding(h, w, stride)
    padded = np.pad(img.rgb, ((0, ph), (0, pw), (0, 0)), mode="edge")
    x = torch.from_numpy(padded).to(device).permute(2, 0, 1).unsqueeze(0)
    return x.float().div_(255.0) if as_float else x


@torch.no_grad()
def estimate_bpp(img: RasterImage, quality: float, model: PLN, device: str) -> float:
    """ΣKL rate (bits per pixel) at a quality without coding: for rate control."""
    x = _to_tensor(img, model.stride, device, as_float=False)
    q = torch.tensor([quality], device=device)
    (mu_x, s_x), (mu2, s2) = tiling.encode(model, x, q)
    mu_p, s_p = model.prior1(mu2, q)
    mu1, s1 = combine_posterior(mu_x, s_x, mu_p, s_p)
    kl = kl_bits_standardized(mu2, s2).sum() + \
        kl_bits_standardized((mu1 - mu_p) / s_p, s1 / s_p).sum()
    return kl.item() / (img.rgb.shape[0] * img.rgb.shape[1])


def quality_for_bpp(img: RasterImage, bpp: float, model: PLN, device: str,
                    steps: int = 12) -> float:
    """Bisection over the rate parameter so the estimated rate meets ``bpp``."""
    lo, hi = 0.0, 1.0
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        if estimate_bpp(img, mid, model, device) > bpp:
            hi = mid
        else:
            lo = mid
    return lo


@torch.no_grad()
def compress(img: RasterImage, quality: float = 0.5, seed: int = 0,
             model_name: str | None = None, device: str | None = None,
             params: CoderParams = CoderParams(), stats: CompressStats | None = None,
             timings: dict | None = None) -> bytes:
    """Encode an image at a rate parameter ``quality`` in [0, 1]. ``timings``, when given,
    receives the seconds spent per stage (for benchmarks)."""
    device = pick_device(device)
    mark = _Stages(timings, device)
    model, digest = load_model(model_name, device)
    name = model_name or _default_name()
    if not 0.0 <= quality <= 1.0:
        raise ValueError("quality must be within [0, 1]")
    # the decoder sees float32 header values: encode with exactly those
    quality = float(np.float32(quality))
    p = replace(params, l1_shard_decay=float(np.float32(params.l1_shard_decay)))
    h, w, _ = img.rgb.shape
    pixels = (h + (-h) % model.stride) * (w + (-w) % model.stride)
    refining = (p.refine_steps > 0 or p.refine_l2_steps > 0) and pixels <= REFINE_MAX_PIXELS
    x = _to_tensor(img, model.stride, device, as_float=refining)
    q = torch.tensor([quality], device=device)
    mark("setup")

    # level 2: q(z2|x) against p(z2) = N(0, I), already standardized
    (mu_x, s_x), (mu2, s2) = tiling.encode(model, x, q)
    mark("network")
    mu2, s2 = refine_level2(model, x, q, h, w, mu_x, s_x, mu2, s2, p.refine_l2_steps,
                            p.refine_step)
    mark("refine")
    code2, z2 = importance_encode(mu2, s2, seed, p.l2_index_bits, p.l2_group_kl_bits,
                                  p.l2_max_group, p.l2_outlier_kl_bits, p.l2_sharpen)
    z2 = z2.reshape(mu2.shape)
    mark("level2")

    # level 1: q(z1|z2,x) against p(z1|z2), standardized by the prior
    mu_p, s_p = model.prior1(z2, q)
    mu1, s1 = combine_posterior(mu_x, s_x, mu_p, s_p)
    mark("network")
    mu1, s1 = refine_level1(model, x, q, h, w, mu_p, s_p, mu1, s1, p.refine_steps,
                            p.refine_step, (p.l1_block_h, p.l1_block_w)
                            if p.refine_coder_aware else None, p.l1_first_shard_kl)
    mark("refine")
    bh, bw = p.l1_block_h, p.l1_block_w
    m, h1, w1 = mu1.shape[1:]
    del x, mu_x, s_x          # what the level-1 coder does not need: large images' memory
    mean = to_blocks((mu1 - mu_p) / s_p, bh, bw)
    std = to_blocks(s1 / s_p, bh, bw)
    del mu1, s1, mu_p, s_p
    kl1 = kl_bits_standardized(mean, std)
    out_mask, shards, g_mean, g_std = level1_plan(mean, std, p, kl1)
    if p.l1_rd_kappa > 0:
        shards, indices, _ = rd_encode(g_mean, g_std, shards, seed, p.l1_shard_bits,
                                       p.l1_shard_decay, p.l1_beam, p.l1_rd_kappa,
                                       p.l1_max_shards, lookahead=p.l1_lookahead)
    else:
        indices, _ = greedy_encode(g_mean, g_std, shards, seed, p.l1_shard_bits,
                                   p.l1_shard_decay, p.l1_beam, p.l1_lookahead)
    out_pos = torch.nonzero(out_mask.flatten()).squeeze(1)
    noise = words_to_gaussian(mix32(block_keys(seed, STREAM_ENCODER + 2, 0, device)
                                    ^ out_pos.to(torch.int32)))
    out_vals = quantize_outlier(mean.flatten()[out_pos] + std.flatten()[out_pos] * noise)
    if stats is not None:
        stats.kl1_bits = kl1.sum().item()
        stats.kl2_bits = kl_bits_standardized(mu2, s2).sum().item()
        stats.l1_outliers = int(out_pos.numel())
        stats.l1_outlier_bits = 32 + out_pos.numel() * (math.log2(mean.numel()) + 16)
    mark("level1")

    header = container.Header(
        width=w, height=h, channels=1 if img.gray else 3, alpha=img.alpha is not None,
        quality=float(quality), seed=seed, l1_block_w=bw, l1_block_h=bh,
        l1_shard_bits=p.l1_shard_bits, l1_max_shards=p.l1_max_shards,
        l1_shard_decay=p.l1_shard_decay, l1_outlier_kl_bits=p.l1_outlier_kl_bits,
        l2_index_bits=p.l2_index_bits, l2_max_group=p.l2_max_group,
        l2_group_kl_bits=p.l2_group_kl_bits, l2_outlier_kl_bits=p.l2_outlier_kl_bits,
        model_name=name, weights_sha256=digest)
    sections = {}
    sections["Z2SA"], sections["Z2IX"] = _write_level2(code2, mu2.numel(), p)
    sections["Z1SA"], sections["Z1IX"] = _write_level1(
        shards.cpu().numpy().reshape(m, h1 // bh, w1 // bw), indices.cpu().numpy(), p,
        model.shard_table, out_pos.cpu().numpy(), out_vals.cpu().numpy())
    if img.alpha is not None:
        sections["ALPH"] = zlib.compress(np.ascontiguousarray(img.alpha).tobytes(), 9)
    if img.icc:
        sections["iCCP"] = write_icc(img.icc)
    data = container.write(container.Container(header, sections))
    mark("entropy coding + container")
    return data


def compress_to_bpp(img: RasterImage, bpp: float, seed: int = 0,
                    model_name: str | None = None, device: str | None = None,
                    params: CoderParams = CoderParams(), tolerance: float = 0.02,
                    max_files: int = 6) -> tuple[bytes, float]:
    """Encode so that the *file* (all of it, header included) has about ``bpp`` bits per
    pixel; returns (file bytes, rate parameter used).

    The ΣKL estimate (network passes only) gives a first rate parameter; then actual files
    are made and the parameter is corrected by the secant method on log(file size), kept
    inside the bracket of files found too small and too large, until a file is within
    ``tolerance`` of the target or ``max_files`` were made. The closest file wins. When the
    target is outside the model's range, the file at the nearer end is returned."""
    device = pick_device(device)
    model, _ = load_model(model_name, device)
    pixels = img.rgb.shape[0] * img.rgb.shape[1]
    target = math.log(bpp)
    tried: dict[float, tuple[bytes, float]] = {}

    def header_value(q: float) -> float:      # the rate parameter as the file stores it
        return float(np.float32(min(max(q, 0.0), 1.0)))

    def make(q: float) -> float:
        q = header_value(q)
        if q not in tried:
            data = compress(img, quality=q, seed=seed, model_name=model_name, device=device,
                            params=params)
            tried[q] = (data, math.log(8 * len(data) / pixels))
        return q

    q = make(quality_for_bpp(img, bpp, model, device))
    slope = 1.5      # d log(file bpp) / d quality, typical of the shipped models
    for _ in range(max_files - 1):
        err = tried[q][1] - target
        if abs(err) <= math.log1p(tolerance):
            break
        below = [k for k, (_, r) in tried.items() if r < target]
        above = [k for k, (_, r) in tried.items() if r > target]
        lo, hi = (max(below) if below else None), (min(above) if above else None)
        if (err > 0 and q <= 0.0) or (err < 0 and q >= 1.0):
            break                               # out of the model's range
        if lo is not None and hi is not None and hi > lo:
            rl, rh = tried[lo][1], tried[hi][1]
            if rh > rl:
                slope = (rh - rl) / (hi - lo)
            nxt = lo + (target - rl) / slope
            nxt = min(max(nxt, lo + 0.1 * (hi - lo)), hi - 0.1 * (hi - lo))
        else:
            nxt = q - err / slope
        if header_value(nxt) in tried:
            break
        q = make(nxt)
    best = min(tried, key=lambda k: abs(tried[k][1] - target))
    return tried[best][0], best


def _default_name() -> str:
    from .model.weights import default_model_name
    return default_model_name()


@torch.no_grad()
def decompress(data: bytes, device: str | None = None,
               max_pixels: int = DEFAULT_MAX_PIXELS, timings: dict | None = None) -> RasterImage:
    mark = _Stages(timings, pick_device(device))
    codes = read_codes(data, max_pixels)
    mark("container + entropy decoding")
    return decompress_codes(codes, device, timings=timings, _mark=mark)


@torch.no_grad()
def decompress_codes(codes: FileCodes, device: str | None = None, timings: dict | None = None,
                     _mark: "_Stages | None" = None) -> RasterImage:
    """The network's part of decoding: the file's integers (codes.read_codes) to pixels."""
    device = pick_device(device)
    mark = _mark or _Stages(timings, device)
    hd = codes.header
    model, digest = load_model(hd.model_name, device)
    if digest != hd.weights_sha256:
        raise ModelError(f"this file was made with other weights for model "
                         f"{hd.model_name!r} than the ones installed")
    cfg = model.cfg
    (g, h2, w2), (m, h1, w1) = codes.shape2, codes.shape1
    if (g, m) != (cfg.g, cfg.m):
        raise ModelError(f"model {hd.model_name!r}: its manifest and its weights disagree "
                         "on the latent channels; reinstall nnc")
    q = torch.tensor([hd.quality], device=device)
    bh, bw = hd.l1_block_h, hd.l1_block_w
    z2 = importance_decode(codes.level2, g * h2 * w2, hd.seed, device).reshape(1, g, h2, w2)
    mark("level2")
    mu_p, s_p = model.prior1(z2, q)
    mark("network")
    z1_std = greedy_decode(torch.as_tensor(codes.indices, device=device),
                           torch.as_tensor(codes.shards, device=device), hd.seed, bh * bw,
                           hd.l1_shard_decay)
    flat_std = z1_std.view(-1)
    flat_std[torch.as_tensor(codes.l1_outlier_positions, device=device)] = dequantize_outlier(
        torch.as_tensor(codes.l1_outlier_values, device=device))
    z1 = mu_p + s_p * from_blocks(z1_std, m, h1, w1, bh, bw)
    del mu_p, s_p, z1_std, flat_std
    mark("level1")
    rgb = tiling.decode_uint8(model, z1, q, hd.height, hd.width)
    mark("network")
    if hd.channels == 1:
        gray = np.round(rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114],
                                                           dtype=np.float32))
        rgb = np.repeat(np.clip(gray, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
    return RasterImage(rgb=rgb, gray=hd.channels == 1, alpha=codes.alpha, icc=codes.icc)

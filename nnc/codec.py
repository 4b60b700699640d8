"""The data flow: image <-> latents <-> bytes (DESIGN.md). The only module that knows all
three; the coders (nnc/coding), the network (nnc/model) and the format (nnc/container.py,
nnc/codes.py) each know one.

::

    compress:   RasterImage ─pad─▶ x ─PLN.encode─▶ q(z2|x) ─level-2 coder─▶ z2
                z2 ─PLN.level1─▶ p(z1|z2), q(z1|z2,x) ─level-1 coder─▶ codes ─container─▶ bytes
    decompress: bytes ─codes.read_codes─▶ codes ─level-2 coder─▶ z2 ─PLN.prior1─▶ p(z1|z2)
                ─level-1 coder─▶ z1 ─PLN.decode─▶ x̂

Rate control (``--bpp``) is in nnc/ratecontrol.py.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from functools import partial

import numpy as np
import torch

from . import analysis, container
from .codes import (FileCodes, latent_shapes, read_codes, write_alpha, write_exif, write_icc,
                    write_xmp)
from .coding import greedy as coder1, importance as coder2
from .coding.greedy import kl_bits_standardized
from .errors import DeviceError, InputError, ModelError
from .image_io import DEFAULT_MAX_PIXELS, RasterImage, check_size
from .model import tiling
from .model.fused import encoder_dtype, folded_analysis
from .model.refine import MAX_PIXELS as REFINE_MAX_PIXELS, refine_level1, refine_level2
from .model.weights import default_model_name, load_model
from .pixels import to_gray
from .settings import Refinement, Settings


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


REFINE_STEPS_GPU = 5     # the CLI's default refinement steps per level on a GPU; on the CPU:
# two steps on level 2 and one on level 1, from step 0.35 (6 Kodak images x 4 rates,
# benchmarks/results/coder-params-precision.json: BD-rate against WebP -7.5%, against -5.7%
# for one step per level from 0.5; in bfloat16 a step costs a third of what it did)
CPU_REFINEMENT = Refinement(steps=1, l2_steps=2, step=0.35)
# where the CPU lacks native bfloat16 a pass of g_s costs 0.24 s (kodim23) against 0.05 s:
# the last steps go unchecked there (model/refine.py _descend; +0.5% BD-rate)
CPU_REFINEMENT_FLOAT32 = replace(CPU_REFINEMENT, check=False)


def refined(steps: int, settings: Settings | None = None) -> Settings:
    """``settings`` (default: the defaults) with ``steps`` refinement steps on each level:
    what ``nnc compress --refine STEPS`` uses."""
    s = settings or Settings()
    return replace(s, refine=replace(s.refine, steps=steps, l2_steps=steps))


def default_settings(device: str | None = None) -> Settings:
    """What ``nnc compress`` uses without ``--refine`` on this device: on a GPU, where steps
    cost little, REFINE_STEPS_GPU per level; on the CPU, CPU_REFINEMENT, with its last steps
    unchecked where the encoder runs in float32 (CPU_REFINEMENT_FLOAT32; docs/benchmarks.md,
    "Speed and memory")."""
    named = device if device and device != "auto" else pick_device(device)
    if named.startswith("cuda"):
        return refined(REFINE_STEPS_GPU)
    float32 = encoder_dtype(named, Settings().refine.precision) == torch.float32
    return replace(Settings(), refine=CPU_REFINEMENT_FLOAT32 if float32 else CPU_REFINEMENT)


# `nnc compress --fast`: no refinement (unless --refine is given) and a narrower level-1
# search, beam 4 with each block's shard count as planned rather than chosen among three
# (benchmarks/results/coder-params-float32.json, "f32-fast"; docs/benchmarks.md)
FAST_SEARCH = {"l1_beam": 4, "l1_rd_offsets": (0,)}


def encoder_settings(device: str | None = None, refine: int | None = None,
                     fast: bool = False) -> Settings:
    """The settings of ``nnc compress`` with ``--refine`` (None: the device's default, or
    none with ``--fast``) and ``--fast``."""
    if refine is not None:
        s = refined(refine)
    else:
        s = Settings() if fast else default_settings(device)
    return s.replace(**FAST_SEARCH) if fast else s


def _first_pass(model, name: str, img: RasterImage, x: torch.Tensor, q: torch.Tensor,
                device: str, settings: Settings, analysed: "analysis.Pending | None"):
    """g_a and h_a: the level-1 statistics and q(z2|x). On the CPU's float32 path, for an
    image of one analysis tile, on ONNX Runtime (nnc/analysis.py: ``analysed`` when it was
    started earlier for this model and rate); else torch's (tiled, folded) transforms."""
    dtype = encoder_dtype(device, settings.analysis.precision)
    if device == "cpu" and dtype == torch.float32:
        quality = float(q[0])
        if not (analysed is not None and analysed.model_name == name
                and analysed.quality == quality and analysed.shape == tuple(x.shape)):
            analysed = analysis.start(img, quality, name, wait=True) \
                if analysis.applies(img, name) else None
        if analysed is not None:
            (mu_x, s_x), (mu2, s2) = analysed.result()
            t = torch.from_numpy
            return (t(mu_x), t(s_x)), (t(mu2), t(s2))
    return tiling.encode(model, x, q, analysis=folded_analysis(model, q, dtype))


@torch.no_grad()
def compress(img: RasterImage, quality: float = 0.5, seed: int = 0,
             model_name: str | None = None, device: str | None = None, *,
             settings: Settings = Settings(), stats: CompressStats | None = None,
             timings: dict | None = None, analysed: "analysis.Pending | None" = None) -> bytes:
    """Encode an image at a rate parameter ``quality`` in [0, 1]. ``timings``, when given,
    receives the seconds spent per stage (for benchmarks). ``analysed``: the first pass
    started earlier on ONNX Runtime (nnc/analysis.py ``start``, as ``nnc compress`` does
    before torch is imported), used where this call would run it there itself. An image the
    format cannot hold (image_io.check_size) is refused before any work: nnc never writes a
    file it refuses."""
    check_size(img.rgb.shape[1], img.rgb.shape[0], None)
    device = pick_device(device)
    mark = _Stages(timings, device)
    loaded = load_model(model_name, device)
    model = loaded.net
    if not 0.0 <= quality <= 1.0:
        raise ValueError("quality must be within [0, 1]")
    quality = float(np.float32(quality))    # the decoder sees the header's float32
    f1, f2, ref = settings.level1, settings.level2, settings.refine
    h, w, _ = img.rgb.shape
    pixels = (h + (-h) % model.stride) * (w + (-w) % model.stride)
    refining = (ref.steps > 0 or ref.l2_steps > 0) and pixels <= REFINE_MAX_PIXELS
    x = tiling.to_tensor(img, model.stride, device, as_float=refining)
    fine = encoder_dtype(device, ref.precision)
    q = torch.tensor([quality], device=device)
    mark("setup")

    # level 2: q(z2|x) against p(z2) = N(0, I), already standardized
    x_stats, post2 = _first_pass(model, loaded.name, img, x, q, device, settings, analysed)
    mark("network")
    mu2, s2 = refine_level2(model, x, q, height=h, width=w, x_stats=x_stats, posterior=post2,
                            steps=ref.l2_steps, step=ref.step, dtype=fine, check=ref.check)
    mark("refine")
    code2, z2 = coder2.encode(mu2, s2, seed, f2, settings.level2_search)
    mark("level2")

    # level 1: q(z1|z2,x) against p(z1|z2), standardized by the prior
    prior1, post1 = model.level1(x_stats, z2, q)
    mark("network")
    coded = (partial(coder1.coded_mask, fmt=f1, search=settings.level1_search)
             if ref.coder_aware else None)
    mu1, s1 = refine_level1(model, x, q, height=h, width=w, prior=prior1, posterior=post1,
                            steps=ref.steps, step=ref.step, coded=coded, dtype=fine,
                            check=ref.check)
    mark("refine")
    del x, x_stats, post1      # what the level-1 coder does not need: large images' memory
    mu_p, s_p = prior1
    del prior1
    mean1, std1 = (mu1 - mu_p) / s_p, s1 / s_p
    del mu1, s1, mu_p, s_p
    info: dict = {}
    code1 = coder1.encode(mean1, std1, seed, f1, settings.level1_search, stats=info)
    if stats is not None:
        stats.kl1_bits = info["kl1_bits"]
        stats.kl2_bits = kl_bits_standardized(mu2, s2).sum().item()
        stats.l1_outliers, stats.l1_outlier_bits = info["l1_outliers"], info["l1_outlier_bits"]
    mark("level1")

    header = container.Header(
        width=w, height=h, channels=1 if img.gray else 3, alpha=img.alpha is not None,
        quality=quality, seed=seed, **f1.header_fields(), **f2.header_fields(),
        model_name=loaded.name, weights_sha256=loaded.digest)
    sections = {**coder2.write_sections(code2, mu2.numel(), f2),
                **coder1.write_sections(code1, f1, loaded.shard_table)}
    if img.alpha is not None:
        sections["ALPH"] = write_alpha(img.alpha)
    if img.icc:
        sections["iCCP"] = write_icc(img.icc)
    if img.exif:
        sections["eXIf"] = write_exif(img.exif)
    if img.xmp:
        sections["xMPd"] = write_xmp(img.xmp)
    data = container.write(container.Container(header, sections))
    if len(data) > container.MAX_FILE_BYTES:      # readers refuse larger files
        raise InputError(f"the image needs {len(data) >> 20} MiB at this rate, over the "
                         f"{container.MAX_FILE_BYTES >> 20} MiB an .nnc file may have: "
                         "use a lower rate")
    mark("entropy coding + container")
    return data


@torch.no_grad()
def decompress(data: bytes, device: str | None = None,
               max_pixels: int = DEFAULT_MAX_PIXELS, timings: dict | None = None) -> RasterImage:
    mark = _Stages(timings, pick_device(device))
    codes = read_codes(data, max_pixels)
    mark("container + entropy decoding")
    return decompress_codes(codes, device, timings=timings, _mark=mark)


@torch.no_grad()
def decoded_latent(codes: FileCodes, model, device: str, mark=None) -> "torch.Tensor":
    """The z1 the synthesis decodes: the level-2 sample, the prior p(z1|z2) it gives, and the
    level-1 code in that prior's coordinates (``model``: the file's network, checked by the
    caller; ``mark``: a _Stages to time the steps)."""
    mark = mark or (lambda name: None)
    hd = codes.header
    q = torch.tensor([hd.quality], device=device)
    z2 = codes.coder2.decode(codes.level2, codes.shape2, hd.seed, device)
    mark("level2")
    mu_p, s_p = model.prior1(z2, q)
    mark("network")
    u = codes.coder1.decode(codes.level1, codes.coder1.Level1Format.from_header(hd),
                            codes.shape1, hd.seed, device)
    z1 = mu_p + s_p * u
    mark("level1")
    return z1


@torch.no_grad()
def decompress_codes(codes: FileCodes, device: str | None = None, timings: dict | None = None,
                     _mark: "_Stages | None" = None) -> RasterImage:
    """The network's part of decoding: the file's integers (codes.read_codes) to pixels."""
    device = pick_device(device)
    mark = _mark or _Stages(timings, device)
    hd = codes.header
    loaded = load_model(hd.model_name, device)
    model = loaded.net
    if loaded.digest != hd.weights_sha256:
        raise ModelError(f"this file was made with other weights for model "
                         f"{hd.model_name!r} than the ones installed")
    if (codes.shape2, codes.shape1) != latent_shapes(hd.height, hd.width, model.cfg.g,
                                                     model.cfg.m):
        raise ModelError(f"model {hd.model_name!r}: its manifest and its weights disagree "
                         "on the latent channels; reinstall nnc")
    z1 = decoded_latent(codes, model, device, mark)
    q = torch.tensor([hd.quality], device=device)
    rgb = tiling.decode_uint8(model, z1, q, hd.height, hd.width)
    mark("network")
    if hd.channels == 1:
        rgb = to_gray(rgb)
    return RasterImage(rgb=rgb, gray=hd.channels == 1, alpha=codes.alpha, icc=codes.icc,
                       exif=codes.exif, xmp=codes.xmp)


__all__ = ["CompressStats", "Refinement", "Settings", "compress", "decompress",
           "decoded_latent", "decompress_codes", "default_model_name", "default_settings", "pick_device",
           "refined"]

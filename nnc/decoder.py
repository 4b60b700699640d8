"""Decoding without torch: the file's integers (codes.read_codes), the coders' numpy
decoders, and the model's two decoding networks on ONNX Runtime (CPU).

    bytes ─codes.read_codes─▶ integers ─coder2.decode_numpy─▶ z2 ─prior1.onnx─▶ p(z1|z2)
          ─coder1.decode_numpy─▶ z1 ─synthesis.onnx (tiles)─▶ 8-bit pixels

The integers are the file's, whatever the engine; the floats differ from torch's by
rounding only (erfinv's last bits, the engines' summation orders), which perturbs pixels by
a few hundredths of a dB at most (tests/test_decoder.py). ``nnc decompress`` uses this path
on the CPU (up to 16 MP when torch is installed: see ONNX_MAX_PIXELS); ``--engine torch``
(or ``--device cuda``) uses nnc/codec.py.
"""
from __future__ import annotations

import os
from functools import lru_cache

import numpy as np

from . import graphs
from .codes import FileCodes, manifest, weights_dir
from .errors import ModelError, NNCWarning
from .image_io import RasterImage
from .model.tiles import synthesis_tiles
from .pixels import to_8bit, to_gray  # noqa: F401  (decoder.to_gray: the one conversion)
from .threads import intra_op_threads


# ONNX Runtime's memory arena makes its tiles fast (a 12 MP photo: 19.6 s against torch's
# 27.1 s on 2 cores) but holds more memory (1.9 GB against 0.9 GB): "auto" leaves larger
# images to torch, whose peak stays near 1.1 GB at 24 MP
ONNX_MAX_PIXELS = 16_000_000
DECODER_PARTS = ("prior1", "synthesis")     # the model's graphs that decoding runs


def available(model_name: str) -> bool:
    """Whether this model can be decoded here without torch (onnxruntime installed, and
    the model's graphs shipped). A graph the manifest lists whose file is missing: with
    torch installed, a warning (nnc.errors.NNCWarning) and False (torch decodes it, more
    slowly); without, a ModelError that names the graph."""
    import importlib.util
    if importlib.util.find_spec("onnxruntime") is None:
        return False
    graphs = manifest()["models"].get(model_name, {}).get("onnx", {})
    if not all(part in graphs for part in DECODER_PARTS):
        return False
    for part in DECODER_PARTS:
        g = graphs[part]
        path = weights_dir() / g["file"]
        if not path.is_file():
            what = f"the {part} graph of model {model_name!r} ({path}) is missing"
            if not _torch_installed():
                raise ModelError(f"{what}: reinstall nnc")
            import warnings
            warnings.warn(f"{what}: decoding with PyTorch instead (slower); reinstall nnc",
                          NNCWarning, stacklevel=2)
            return False
    return True


def _torch_installed() -> bool:
    import importlib.util
    return importlib.util.find_spec("torch") is not None


@lru_cache(maxsize=4)
def sessions(model_name: str):
    """The model's prior and synthesis graphs as ONNX Runtime sessions (sha256-checked)."""
    entry = manifest()["models"].get(model_name)
    if entry is None or "onnx" not in entry:
        raise ModelError(f"model {model_name!r} has no ONNX graphs; decode with "
                         "--engine torch")
    return tuple(graphs.session(model_name, part, intra_op_threads(),
                                remedy="reinstall nnc, or decode with --engine torch")
                 for part in DECODER_PARTS)


def _run(session, part: str, model_name: str, feeds: dict):
    """One graph run; a graph that does not fit its model (its inputs' channels, its
    outputs) is a model problem, not a crash."""
    try:
        outputs = session.run(None, feeds)
    except Exception as e:
        raise ModelError(f"the {part} graph of model {model_name!r} does not fit the model "
                         f"({graphs.first_line(e)}); reinstall nnc") from None
    want = 2 if part == "prior1" else 1
    if len(outputs) != want:
        raise ModelError(f"the {part} graph of model {model_name!r} does not fit the model "
                         f"({len(outputs)} outputs, not {want}); reinstall nnc")
    return outputs


def decompress_codes(codes: FileCodes, timings: dict | None = None) -> RasterImage:
    """The network's part of decoding, on ONNX Runtime."""
    import time
    t = time.perf_counter()

    def mark(name):
        nonlocal t
        if timings is not None:
            now = time.perf_counter()
            timings[name] = timings.get(name, 0.0) + now - t
            t = now

    hd = codes.header
    if manifest()["models"][hd.model_name]["sha256"] != hd.weights_sha256.hex():
        raise ModelError(f"this file was made with other weights for model "
                         f"{hd.model_name!r} than the ones installed")
    prior1, synthesis = sessions(hd.model_name)
    mark("sessions")
    q = np.array([hd.quality], dtype=np.float32)
    z2 = codes.coder2.decode_numpy(codes.level2, codes.shape2, hd.seed)
    mark("level2")
    mu_p, s_p = _run(prior1, "prior1", hd.model_name, {"z2": z2, "quality": q})
    if tuple(mu_p.shape[1:]) != tuple(codes.shape1) or s_p.shape != mu_p.shape:
        raise ModelError(f"the prior1 graph of model {hd.model_name!r} does not fit the "
                         f"model (its output is {mu_p.shape}, not {codes.shape1}); "
                         "reinstall nnc")
    mark("network")
    u = codes.coder1.decode_numpy(codes.level1, codes.coder1.Level1Format.from_header(hd),
                                  codes.shape1, hd.seed)
    z1 = mu_p + s_p * u
    del mu_p, s_p, u
    mark("level1")
    out = np.empty((hd.height, hd.width, 3), dtype=np.uint8)
    _, _, h1, w1 = z1.shape
    for (wy0, wy1, wx0, wx1), (oy, ox), (y, x, ph, pw) in synthesis_tiles(
            h1, w1, hd.height, hd.width):
        window = np.ascontiguousarray(z1[..., wy0:wy1, wx0:wx1])
        (x_hat,) = _run(synthesis, "synthesis", hd.model_name, {"z1": window, "quality": q})
        if x_hat.ndim != 4 or x_hat.shape[1] != 3 or \
                x_hat.shape[2] < oy + ph or x_hat.shape[3] < ox + pw:
            raise ModelError(f"the synthesis graph of model {hd.model_name!r} does not fit "
                             f"the model (its output is {x_hat.shape}); reinstall nnc")
        out[y:y + ph, x:x + pw] = to_8bit(x_hat[0, :, oy:oy + ph, ox:ox + pw])
    mark("network")
    if hd.channels == 1:
        out = to_gray(out)
    return RasterImage(rgb=out, gray=hd.channels == 1, alpha=codes.alpha, icc=codes.icc,
                       exif=codes.exif, xmp=codes.xmp)


def decompress(codes: FileCodes, device: str | None = None, engine: str = "auto",
               timings: dict | None = None) -> RasterImage:
    """Decode with ONNX Runtime (``engine`` "onnx", or "auto" on the CPU when the model has
    graphs and the image is at most ONNX_MAX_PIXELS or torch is not installed) or torch
    (``engine`` "torch", a CUDA ``device``, or a larger image)."""
    if uses_onnx(codes, device, engine):
        return decompress_codes(codes, timings)
    from . import codec
    return codec.decompress_codes(codes, device=device, timings=timings)


def uses_onnx(codes: FileCodes, device: str | None = None, engine: str = "auto") -> bool:
    """Whether :func:`decompress` decodes these codes with ONNX Runtime (else torch)."""
    hd = codes.header
    return engine == "onnx" or (
        engine == "auto" and (device or "auto") in ("auto", "cpu")
        and available(hd.model_name)
        and (hd.width * hd.height <= ONNX_MAX_PIXELS or not _torch_installed()))


def import_engine(codes: FileCodes, device: str | None = None, engine: str = "auto") -> None:
    """Import the inference engine :func:`decompress` will use (the CLI imports it with the
    garbage collector paused)."""
    import importlib
    importlib.import_module("onnxruntime" if uses_onnx(codes, device, engine)
                            else f"{__package__}.codec")

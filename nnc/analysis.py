"""The encoder's first pass on ONNX Runtime, without torch: g_a and h_a (``<model>.analysis.onnx``)
give q(z2|x) and the level-1 statistics of an image, in float32.

    RasterImage ─pad─▶ x ─analysis.onnx─▶ (mu_x, sigma_x), (mu2, sigma2) ─▶ codec.compress

Only the float32 path uses it (a CPU without native bfloat16, or NNC_PRECISION=float32), and
only for an image that fits one analysis tile (model/tiles.py ANALYSIS_TILE; larger images
go through torch's tiles). The point is the start: ``nnc compress`` runs this pass (:func:`start`)
while torch imports, 1.1 s during which the second core would idle, so the pass costs no wall
time; codec.compress runs it in place when torch is already there. Its floats differ from
torch's by rounding only (summation order), as the decoder's do.
"""
from __future__ import annotations

import threading
from functools import lru_cache

import numpy as np

from . import graphs
from .codes import manifest, weights_dir
from .errors import ModelError
from .image_io import RasterImage, compute_padding
from .model.tiles import ANALYSIS_TILE
from .threads import intra_op_threads

PART = "analysis"
STRIDE = 64      # the PLN's total downsampling: inputs are padded to a multiple of it
OUTPUTS = ("mu_x", "sigma_x", "mu2", "sigma2")


def padded(img: RasterImage) -> np.ndarray:
    """The image as the network takes it: edge-padded (in 8 bits) to multiples of STRIDE,
    (1, 3, H, W) float32 in [0, 1] (what model/tiling.py ``to_tensor`` gives torch)."""
    ph, pw = compute_padding(*img.rgb.shape[:2], STRIDE)
    rgb = np.pad(img.rgb, ((0, ph), (0, pw), (0, 0)), mode="edge")
    x = rgb.transpose(2, 0, 1)[None].astype(np.float32)
    x /= np.float32(255.0)
    return x


def applies(img: RasterImage, model_name: str) -> bool:
    """Whether this pass can run here: onnxruntime installed, the model's analysis graph
    shipped, and the padded image within one analysis tile."""
    import importlib.util
    h, w, _ = img.rgb.shape
    ph, pw = compute_padding(h, w, STRIDE)
    if max(h + ph, w + pw) > ANALYSIS_TILE:
        return False
    if importlib.util.find_spec("onnxruntime") is None:
        return False
    graph = manifest()["models"].get(model_name, {}).get("onnx", {}).get(PART)
    return graph is not None and (weights_dir() / graph["file"]).is_file()


def float32_path() -> bool:
    """Whether the encoder will likely take its float32 path here, told without torch:
    NNC_PRECISION=float32, or a CPU whose flags (Linux /proc/cpuinfo) show neither
    AVX512-BF16 nor AMX-BF16 (model/fused.py decides, with torch; a wrong guess costs only
    a pass on a core that would idle)."""
    import os
    forced = os.environ.get("NNC_PRECISION", "").strip().lower()
    if forced in ("float32", "bfloat16"):
        return forced == "float32"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return not flags & {"avx512_bf16", "amx_bf16"}
    except OSError:
        pass
    return True


@lru_cache(maxsize=2)
def _kept(model_name: str, threads: int, folder: str):
    """A session kept for the runs in place (a program that compresses many images: the
    API, a batch's workers), without ONNX Runtime's memory arena, which would hold 300 MB
    between runs: kodim23 0.20 s a run, against 0.24 s with a session opened each time.
    ``folder``, the weights' folder, is part of the key."""
    return graphs.session(model_name, PART, threads, arena=False)


class Pending:
    """The pass, running; :meth:`result` waits for it."""

    def __init__(self, model_name: str, quality: float, shape: tuple):
        self.model_name, self.quality, self.shape = model_name, quality, shape
        self._done = threading.Event()
        self._outputs = None
        self._error: "str | ModelError" = ""

    def _finish(self, outputs, error: "str | ModelError") -> None:
        self._outputs, self._error = outputs, error
        self._done.set()

    def result(self) -> tuple:
        """((mu_x, sigma_x), (mu2, sigma2)), float32 arrays (1, C, h, w); ModelError when
        the graph is missing, corrupt or does not fit."""
        self._done.wait()
        if isinstance(self._error, ModelError):
            raise self._error
        if self._error or self._outputs is None or len(self._outputs) != len(OUTPUTS):
            raise ModelError(f"the analysis graph of model {self.model_name!r} does not fit "
                             f"the model ({self._error or 'its outputs'}); reinstall nnc")
        mu_x, s_x, mu2, s2 = self._outputs
        return (mu_x, s_x), (mu2, s2)


def start(img: RasterImage, quality: float, model_name: str, wait: bool = False) -> Pending:
    """Start the pass on ``img`` at the rate parameter ``quality`` (as the file's header
    holds it: float32) and return at once: a thread opens a session and runs it on one
    core (ONNX Runtime's C++ releases the GIL: the other core is the importer's), then
    drops it, so that its memory goes back to the heap for torch's passes (nnc/malloc.py:
    one heap for every thread). With ``wait``, all of it here, on the threads that
    nnc/threads.py allows. Check :func:`applies` first."""
    x = padded(img)
    q = np.array([quality], dtype=np.float32)
    pending = Pending(model_name, float(q[0]), x.shape)
    feeds = {"x": x, "quality": q}

    def run():
        try:
            session = (_kept(model_name, intra_op_threads(), str(weights_dir())) if wait
                       else graphs.session(model_name, PART, 1))
            # copies: ONNX Runtime's outputs keep its whole memory arena alive (300 MB here)
            outputs = [np.array(a, copy=True) for a in session.run(list(OUTPUTS), feeds)]
            pending._finish(outputs, "")
        except ModelError as e:
            pending._finish(None, e)
        except Exception as e:     # noqa: BLE001  (result() reports it as a model problem)
            pending._finish(None, str(e).strip()[:200])

    if wait:
        run()
    else:
        threading.Thread(target=run, name="nnc-analysis", daemon=True).start()
    return pending

"""What the benchmarks share: where things are, the classical codecs through Pillow, image
loading, and measurements of the model without coding and of curves over images."""
from __future__ import annotations

import math
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]          # the repository
SHARED = ROOT.parent / "shared"                     # data shared between worktrees
KODAK = SHARED / "data" / "kodak"
RESULTS = Path(__file__).resolve().parent / "results"


ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16",
             "amx_tile", "amx_int8", "asimd", "asimdhp", "sve", "bf16", "i8mm")


def machine_facts() -> dict:
    """What a speed result depends on: the CPU model, the ISA features nnc's code paths
    depend on (AVX2, AVX-512, VNNI, AVX512-BF16 and AMX on x86; NEON = asimd, SVE, BF16 on
    ARM) from /proc/cpuinfo, torch's own reading of them when torch is importable, the cores
    this process may use, and the load average at the time."""
    import os
    import platform
    facts: dict = {"machine": platform.machine(), "cpus": os.cpu_count(),
                   "cpus_usable": len(os.sched_getaffinity(0))
                   if hasattr(os, "sched_getaffinity") else os.cpu_count(),
                   "loadavg": list(os.getloadavg())}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    model, flags = platform.processor(), set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "Model", "CPU part") and model in ("", platform.machine()):
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = set(value.split())
    facts["cpu_model"] = model
    facts["isa"] = [f for f in ISA_FLAGS if f in flags]
    try:
        import torch
        facts["torch"] = torch.__version__
        facts["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        from nnc.model.fused import fast_bf16
        facts["native_bf16"] = fast_bf16()
    except ImportError:
        pass
    from nnc.coding.native import kernels     # the encoders' C kernels and their ISA
    facts["nnc_c_kernels"] = kernels.ISA if kernels is not None else None
    return facts


def bytecode(package: Path, compiled: bool = True) -> str:
    """nnc's modules in ``package`` as an installed nnc has them: compiled to bytecode
    (``pip install`` compiles every module; an editable install or a copy writes
    ``__pycache__`` on its first run). Environments that set PYTHONDONTWRITEBYTECODE (this
    VM's does) would otherwise compile nnc from source in every process timed: 0.04 s of a
    decompress here. With ``compiled`` False, the bytecode is removed instead. Returns what
    the results record."""
    import os
    import shutil
    for cache in Path(package).rglob("__pycache__"):
        shutil.rmtree(cache)
    if compiled:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], env=env,
                       check=True)
        return "compiled (as installed)"
    return "from source in every process"


def whole_process(cmd: list[str]) -> tuple[float, int]:
    """Wall seconds and peak resident memory (KiB, /usr/bin/time) of one command; exits with
    its stderr if it fails."""
    t = time.perf_counter()
    r = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], capture_output=True, text=True)
    wall = time.perf_counter() - t
    if r.returncode:
        raise SystemExit(r.stderr)
    return wall, int(r.stderr.strip().splitlines()[-1])


# --- the classical codecs, through Pillow and its plugins ---------------------------------
@dataclass
class Classical:
    label: str
    fmt: str
    settings: list
    options: Callable[[int], dict]
    needs: str = ""          # plugin module to import first


def _q(**kw):
    return lambda q: {"quality": q, **kw}


CLASSICAL = {
    "jpeg420": Classical("JPEG 4:2:0", "JPEG", list(range(5, 100, 10)),
                         _q(subsampling=2, optimize=True)),
    "jpeg444": Classical("JPEG 4:4:4", "JPEG", list(range(5, 100, 10)),
                         _q(subsampling=0, optimize=True)),
    "webp": Classical("WebP m6", "WEBP", list(range(5, 100, 10)), _q(method=6)),
    "avif444": Classical("AVIF 4:4:4 s4", "AVIF", list(range(10, 100, 10)),
                         _q(subsampling="4:4:4", speed=4)),
    "avif444_psnr": Classical("AVIF 4:4:4 s4 tune=psnr", "AVIF", list(range(10, 100, 10)),
                              _q(subsampling="4:4:4", speed=4, advanced={"tune": "psnr"})),
    "heic444": Classical("HEIC 4:4:4 (x265)", "HEIF", list(range(5, 75, 5)),
                         _q(chroma=444), needs="pillow_heif"),
    "heic444_psnr": Classical("HEIC 4:4:4 (x265) tune=psnr", "HEIF", list(range(5, 75, 5)),
                              _q(chroma=444, enc_params={"tune": "psnr"}), needs="pillow_heif"),
    "jxl": Classical("JPEG XL e7", "JXL", list(range(5, 100, 10)), _q(effort=7),
                     needs="pillow_jxl"),
}


def load_plugin(name: str) -> str | None:
    """Import a Pillow plugin; returns an error text when it is not installed."""
    if not name:
        return None
    try:
        mod = __import__(name)
    except ImportError as e:
        return f"{name} not installed ({e}); pip install -e '.[bench]'"
    if name == "pillow_heif":
        mod.register_heif_opener()
    return None


def codec_version(name: str) -> str:
    from PIL import features
    if name.startswith("jpeg"):
        return f"Pillow {Image.__version__}, libjpeg-turbo {features.version('libjpeg_turbo')}"
    if name == "webp":
        return f"Pillow {Image.__version__}, libwebp {features.version('webp')}"
    if name.startswith("avif"):
        return f"Pillow {Image.__version__}, libavif {features.version('avif')}"
    if name.startswith("heic"):
        import pillow_heif
        return (f"pillow-heif {pillow_heif.__version__}, libheif "
                f"{pillow_heif.libheif_info().get('libheif', '?')}")
    if name == "jxl":
        from importlib.metadata import version
        return f"pillow-jxl-plugin {version('pillow-jxl-plugin')}"
    return ""


# --- images --------------------------------------------------------------------------------
def load_images(folder: Path, limit: int | None = None) -> list[tuple[str, np.ndarray]]:
    """(file name, 8-bit RGB) of the images in ``folder`` in name order (the first
    ``limit``)."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".ppm", ".bmp"))
    files = files[:limit] if limit else files
    if not files:
        sys.exit(f"benchmarks: no PNG images in {folder}")
    return [(f.name, np.asarray(Image.open(f).convert("RGB"))) for f in files]


# --- measurements --------------------------------------------------------------------------
def posterior_decodes(model, rgb: np.ndarray, q: float, sample: bool = True):
    """The model without coding: (ΣKL in bits, posterior-mean decode, exact posterior-sample
    decode or None). The "theoretical" curve of thesis Fig. 4.1 is ΣKL against the mean.
    ``model``: a PLN (nnc.model.pln), on the CPU."""
    import torch
    from nnc.image_io import RasterImage
    from nnc.model import tiling
    from nnc.model.pln import gaussian_kl_nats
    h, w, _ = rgb.shape
    with torch.no_grad():
        x = tiling.to_tensor(RasterImage(rgb, False, None), model.stride, "cpu")
        qt = torch.tensor([q])
        post = model.posteriors(x, qt, encode=tiling.encode)
        (mu2, s2), (mu_p, s_p), (mu1, s1) = post.z2, post.prior1, post.z1
        kl = gaussian_kl_nats(mu2, s2, torch.zeros_like(mu2), torch.ones_like(s2)).sum() \
            + gaussian_kl_nats(mu1, s1, mu_p, s_p).sum()
        decodes = [mu1]
        if sample:
            g = torch.Generator().manual_seed(0)
            z2 = mu2 + s2 * torch.randn(mu2.shape, generator=g)
            _, (mu1, s1) = model.level1(post.x, z2, qt)
            decodes.append(mu1 + s1 * torch.randn(mu1.shape, generator=g))
        imgs = [tiling.decode_uint8(model, z, qt, h, w) for z in decodes]
    return kl.item() / math.log(2), imgs[0], (imgs[1] if sample else None)


def mean_points(entry: dict) -> list[dict]:
    """Mean over images of each setting's bpp, PSNR and MS-SSIM (and nnc's extras), from an
    rd.json codec entry (``settings``, ``kind``, ``per_image``: name -> a row per setting)."""
    rows = list(entry["per_image"].values())
    pts = []
    for i, s in enumerate(entry["settings"]):
        at = [r[i] for r in rows]
        p = {"setting": s}
        for k in ("bpp", "psnr", "ms_ssim", "kl_bpp", "amortized_kl_bpp", "encode_s",
                  "decode_s"):
            vals = [a[k] for a in at if a.get(k) is not None]
            if len(vals) == len(at):
                p[k] = float(np.mean(vals))
        if entry["kind"] == "nnc":
            p["mean_psnr"] = float(np.mean([a["mean"]["psnr"] for a in at]))
            if all(a["mean"]["ms_ssim"] is not None for a in at):
                p["mean_ms_ssim"] = float(np.mean([a["mean"]["ms_ssim"] for a in at]))
            p["sample_psnr"] = float(np.mean([a["sample_psnr"] for a in at]))
        if entry["kind"] in ("nnc", "nnc_refine"):
            p["file_over_kl"] = float(sum(a["bpp"] for a in at) / sum(a["kl_bpp"] for a in at))
        pts.append(p)
    return pts

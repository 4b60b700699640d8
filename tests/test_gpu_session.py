"""training/gpu_session.py, the prepared script of a lent GPU's minutes, run on the CPU with a
few tiny steps: it must not fail for a trivial reason when a GPU is lent (issue 26)."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def _photo(rng, h, w):
    """A smooth image with some texture (a compressible, photo-like test input)."""
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([np.sin(3 * x + c) * np.cos(2 * y - c) for c in (0.0, 1.0, 2.0)], -1)
    return np.clip(127 + 100 * base + rng.normal(0, 6, (h, w, 3)), 0, 255).astype(np.uint8)


def test_gpu_session_runs_on_the_cpu(tmp_path):
    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    (data / "kodak").mkdir(parents=True)
    (data / "crops" / "a").mkdir(parents=True)
    (data / "crops" / "b").mkdir(parents=True)
    Image.fromarray(_photo(rng, 64, 96)).save(data / "kodak" / "kodim99.png")
    for i in range(3):
        Image.fromarray(_photo(rng, 72, 72)).save(data / "crops" / "ab"[i % 2] / f"{i}.jpg")
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, str(ROOT / "training" / "gpu_session.py"), str(out),
                        "--data", str(data), "--device", "cpu", "--images", "1", "--tiny"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    res = json.loads((out / "gpu-session.json").read_text())
    img = res["cross_device"]["images"][0]
    assert img["encoded_cpu"]["psnr_other_device"] > 20
    assert res["cross_device"]["golden_max_level_diff"] <= 2
    assert res["speed"]["images"][0]["bytes"] > 0
    t = res["training"]
    assert t["steps_to"] == t["steps_from"] + 2 and t["images"] == 3
    import torch
    blob = b"".join((out / f"model.pt.part{i}").read_bytes() for i in range(t["parts"]))
    import io
    state = torch.load(io.BytesIO(blob), weights_only=True)
    assert state["step"] == t["steps_to"] and "opt" not in state
    assert state["config"]["lambda_max"] == t["recipe"]["lambda_range"][1]
    cmp = res["new_vs_old"]
    assert len(cmp["old"]) == len(cmp["new"]) == 4 and "bd_new_vs_old_mean" in cmp

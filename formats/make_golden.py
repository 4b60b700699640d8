"""Write golden .nnc files and their reference decodes (run after shipping a model or
changing what the writer writes).

    python formats/make_golden.py --tag 2026-11-22
    python formats/make_golden.py --tag 2026-11-30 --cases srgb-icc-q40   # some cases only
    python formats/make_golden.py --tag 2026-11-30-4x4 --cases kodim23-crop-q50 kodim23-gray-q20

Golden files are never regenerated: they pin the format. New ones are added under a new tag
(file names ``{tag}-{case}``) next to the old ones, whose weights stay installed so the old
files keep decoding.
"""
import argparse
import json
from pathlib import Path

import io

import numpy as np
from PIL import Image, ImageCms

import nnc

HERE = Path(__file__).resolve().parent / "golden"
KODAK = Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak"


def _with_profile(arr: np.ndarray) -> bytes:
    """PNG bytes of ``arr`` carrying LittleCMS's sRGB profile."""
    buf = io.BytesIO()
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(arr).save(buf, format="PNG", icc_profile=profile)
    return buf.getvalue()


def main():
    HERE.mkdir(exist_ok=True)
    k23 = np.asarray(Image.open(KODAK / "kodim23.png").convert("RGB"))
    cases = {
        "kodim23-crop-q50": (k23[100:196, 300:428], dict(quality=0.5, seed=0)),
        "kodim23-gray-q20": (np.asarray(Image.fromarray(k23[:70, :90]).convert("L")),
                             dict(quality=0.2, seed=5)),
        "tiny-rgba-q90": (np.dstack([k23[:5, :3], np.full((5, 3), 200, np.uint8)]),
                          dict(quality=0.9, seed=1)),
        # since 2026-11-30: a colour profile in an iCCP section
        "srgb-icc-q40": (_with_profile(k23[200:248, 40:104]), dict(quality=0.4, seed=2)),
    }
    from nnc.model.weights import default_model_name
    ap = argparse.ArgumentParser()
    ap.add_argument("--tag", required=True)
    ap.add_argument("--cases", nargs="+", choices=sorted(cases), default=sorted(cases))
    args = ap.parse_args()
    path = HERE / "golden.json"
    manifest = json.loads(path.read_text()) if path.exists() else {"files": []}
    for entry in manifest["files"]:        # files from before tags name their model once
        entry.setdefault("model", manifest.get("model"))
    manifest.pop("model", None)
    for case, (arr, kw) in cases.items():
        if case not in args.cases:
            continue
        name = f"{args.tag}-{case}"
        if (HERE / f"{name}.nnc").exists():
            raise SystemExit(f"{name}.nnc exists: golden files are never regenerated")
        data = nnc.compress(arr, **kw)
        (HERE / f"{name}.nnc").write_bytes(data)
        dec = nnc.decompress(data)
        dec.save(HERE / f"{name}.png")
        manifest["files"].append({"nnc": f"{name}.nnc", "decoded": f"{name}.png",
                                  "model": default_model_name(), "size": list(dec.size),
                                  "mode": dec.mode,
                                  **({"icc_profile_bytes": len(dec.info["icc_profile"])}
                                     if "icc_profile" in dec.info else {}), **kw})
    path.write_text(json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Write the golden .nnc files and their reference decodes (run after shipping a model).

    python formats/make_golden.py

Golden files are never regenerated for an existing model: they pin the format. Add new ones
when a new model ships, and keep the model's weights installed so the old files decode.
"""
import json
from pathlib import Path

import numpy as np
from PIL import Image

import nnc

HERE = Path(__file__).resolve().parent / "golden"
KODAK = Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak"


def main():
    HERE.mkdir(exist_ok=True)
    k23 = np.asarray(Image.open(KODAK / "kodim23.png").convert("RGB"))
    cases = {
        "kodim23-crop-q50": (k23[100:196, 300:428], dict(quality=0.5, seed=0)),
        "kodim23-gray-q20": (np.asarray(Image.fromarray(k23[:70, :90]).convert("L")),
                             dict(quality=0.2, seed=5)),
        "tiny-rgba-q90": (np.dstack([k23[:5, :3], np.full((5, 3), 200, np.uint8)]),
                          dict(quality=0.9, seed=1)),
    }
    from nnc.model.weights import default_model_name
    manifest = {"model": default_model_name(), "files": []}
    for name, (arr, kw) in cases.items():
        data = nnc.compress(arr, **kw)
        (HERE / f"{name}.nnc").write_bytes(data)
        dec = nnc.decompress(data)
        dec.save(HERE / f"{name}.png")
        manifest["files"].append({"nnc": f"{name}.nnc", "decoded": f"{name}.png",
                                  "size": list(dec.size), "mode": dec.mode, **kw})
    (HERE / "golden.json").write_text(json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Write golden intermediate vectors (formats/golden/vectors/) that a decoder in any language
checks itself against, step by step (nnc-v1.md §4, §11):

* ``prng.json``: shared-randomness words and Gaussians G (§4);
* ``<golden file>.codes.json``: every integer of each golden file, as nnc's reader
  (nnc/codes.py) decodes it;
* ``<LATENT_CASE>.latents.json`` and its ``.f32`` files: z2, u, mu_p, sigma_p and z1 of one
  small golden file, from nnc's torch-free decoder (nnc/decoder.py: numpy and ONNX Runtime),
  as little-endian binary32 in C order.

    python formats/make_vectors.py

Like the golden files, vectors are added, never regenerated: an existing file is kept as
it is (the script writes only the missing ones, e.g. for a golden file added later).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

GOLDEN = Path(__file__).resolve().parent / "golden"
OUT = GOLDEN / "vectors"
LATENT_CASE = "2026-11-30-kodim23-crop-q50"
PRNG_TUPLES = [(0, 0x20000, 0, 0, 0), (0, 0x20000, 7, 12345, 3), (5, 0x10000, 1000, 65535, 7),
               (1, 0x10003, 17, 2, 0), (0xFFFFFFFF, 0x1000E, 0xFFFFFFFF, 0xFFFF, 15),
               (2, 0x20000, 255, 1048575, 4095)]
PRNG_K = [0, 1, 2, 3, 255, 1 << 20, (1 << 23) - 1, 1 << 23, (1 << 23) + 1, 12345678,
          16000000, (1 << 24) - 3, (1 << 24) - 2, (1 << 24) - 1]


def _write_new(path: Path, data: bytes) -> None:
    if path.exists():
        if path.read_bytes() != data:
            print(f"kept {path.name} (exists; golden vectors are never regenerated)")
        return
    path.write_bytes(data)
    print(f"wrote {path.name}")


def _json(obj: dict) -> bytes:
    """One line per top-level key, lists compact."""
    lines = [f" {json.dumps(k)}: {json.dumps(v, separators=(',', ':'))}" for k, v in obj.items()]
    return ("{\n" + ",\n".join(lines) + "\n}\n").encode()


def _f32_bits(v) -> int:
    return int(np.asarray(v, dtype=np.float32).reshape(1).view(np.uint32)[0])


def prng_vectors() -> dict:
    from nnc.coding.prng import (block_keys_np, candidate_words_np, mix32_np,
                                 words_to_gaussian_np)
    words = []
    for seed, stream, block, cand, dim in PRNG_TUPLES:
        w = candidate_words_np(block_keys_np(seed, stream, np.array([block])),
                               np.array([[cand]]), dim + 1)[0, 0, dim]
        g = words_to_gaussian_np(np.array([w], dtype=np.uint32))[0]
        words.append({"seed": seed, "stream": stream, "block": block, "candidate": cand,
                      "dim": dim, "word": int(w), "gaussian_bits": _f32_bits(g),
                      "gaussian": float(g)})
    ks = np.array(PRNG_K, dtype=np.uint32)
    gs = words_to_gaussian_np(ks << np.uint32(8))
    return {"mix32": [{"x": x, "mix32": int(mix32_np(np.uint32(x))[0])}
                      for x in (0, 1, 0x12345678, 0xFFFFFFFF)],
            "words": words,
            "G": [{"k": int(k), "bits": _f32_bits(g), "value": float(g)}
                  for k, g in zip(ks, gs)]}


def codes_vectors(data: bytes, max_pixels: int = 10 ** 8) -> dict:
    """Every integer of a file, from nnc's reader (FormatError/ModelError: refused)."""
    from nnc.codes import read_codes
    c = read_codes(data, max_pixels)
    hd = c.header
    l1 = c.level1
    return {
        "header": {"width": hd.width, "height": hd.height, "channels": hd.channels,
                   "alpha": int(hd.alpha), "quality_bits": _f32_bits(hd.quality),
                   "seed": hd.seed, "l1_block_w": hd.l1_block_w, "l1_block_h": hd.l1_block_h,
                   "l1_shard_bits": hd.l1_shard_bits, "l1_max_shards": hd.l1_max_shards,
                   "l1_shard_decay_bits": _f32_bits(hd.l1_shard_decay),
                   "l2_index_bits": hd.l2_index_bits, "l2_max_group": hd.l2_max_group,
                   "model_name": hd.model_name, "weights_sha256": hd.weights_sha256.hex()},
        "shape2": list(c.shape2), "shape1": list(c.shape1),
        "l2_outlier_positions": c.level2.outlier_positions.tolist(),
        "l2_outlier_values": c.level2.outlier_values.tolist(),
        "group_sizes": c.level2.group_sizes.tolist(),
        "l2_indices": c.level2.indices.tolist(),
        "l1_outlier_positions": l1.outlier_positions.tolist(),
        "l1_outlier_values": l1.outlier_values.tolist(),
        "shards": l1.shards.ravel().tolist(),           # block order (channel, row, column)
        "l1_indices": l1.indices.tolist(),              # per block, -1 where unused
        "alpha_sha256": (None if c.alpha is None
                         else hashlib.sha256(c.alpha.tobytes()).hexdigest()),
    }


def latent_vectors(data: bytes) -> dict[str, np.ndarray]:
    from nnc import decoder
    from nnc.codes import read_codes
    c = read_codes(data, 10 ** 8)
    hd = c.header
    prior1, _ = decoder.sessions(hd.model_name)
    q = np.array([hd.quality], dtype=np.float32)
    z2 = c.coder2.decode_numpy(c.level2, c.shape2, hd.seed)
    mu_p, sigma_p = prior1.run(None, {"z2": z2, "quality": q})
    u = c.coder1.decode_numpy(c.level1, c.coder1.Level1Format.from_header(hd), c.shape1,
                              hd.seed)
    return {"z2": z2, "u": u, "mu_p": mu_p, "sigma_p": sigma_p, "z1": mu_p + sigma_p * u}


def main():
    OUT.mkdir(exist_ok=True)
    _write_new(OUT / "prng.json", _json(prng_vectors()))
    for entry in json.loads((GOLDEN / "golden.json").read_text())["files"]:
        name = entry["nnc"]
        path = OUT / (Path(name).stem + ".codes.json")
        if not path.exists():
            _write_new(path, _json(codes_vectors((GOLDEN / name).read_bytes())))
    index = OUT / f"{LATENT_CASE}.latents.json"
    if not index.exists():
        arrays = latent_vectors((GOLDEN / f"{LATENT_CASE}.nnc").read_bytes())
        listing = {}
        for key, arr in arrays.items():
            raw = np.ascontiguousarray(arr, dtype="<f4").tobytes()
            fname = f"{LATENT_CASE}.{key}.f32"
            _write_new(OUT / fname, raw)
            listing[key] = {"file": fname, "shape": list(arr.shape),
                            "sha256": hashlib.sha256(raw).hexdigest()}
        _write_new(index, _json({"nnc": f"{LATENT_CASE}.nnc", "engine": "nnc/decoder.py "
                                 "(numpy, ONNX Runtime CPU)", "arrays": listing}))


if __name__ == "__main__":
    main()

"""The golden intermediate vectors (formats/golden/vectors/, nnc-v1.md §4 and §11) are what
nnc computes: every golden file's integers, the shared-randomness words and Gaussians, and
one golden file's latents (torch's decoder within the spec's tolerances)."""
import json
from pathlib import Path

import make_vectors
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "formats" / "golden"
VECTORS = GOLDEN / "vectors"


def _golden():
    return json.loads((GOLDEN / "golden.json").read_text())["files"]


def test_every_golden_file_has_its_integers():
    assert len(_golden()) == len(list(VECTORS.glob("*.codes.json")))


@pytest.mark.parametrize("entry", _golden(), ids=lambda e: e["nnc"])
def test_codes_vectors_are_nncs_integers(entry):
    stored = json.loads((VECTORS / (Path(entry["nnc"]).stem + ".codes.json")).read_text())
    assert stored == json.loads(json.dumps(
        make_vectors.codes_vectors((GOLDEN / entry["nnc"]).read_bytes())))


def test_prng_vectors():
    stored = json.loads((VECTORS / "prng.json").read_text())
    assert stored == json.loads(json.dumps(make_vectors.prng_vectors()))


def test_torch_gaussians_within_the_spec_tolerance():
    """§4: a conforming G is within 8 binary32 ulps of the reference (torch's erfinv)."""
    import torch
    from nnc.coding.prng import words_to_gaussian
    g = json.loads((VECTORS / "prng.json").read_text())["G"]
    k = torch.tensor([e["k"] for e in g], dtype=torch.int64)
    t = words_to_gaussian(((k << 8) - ((k << 8) >= 2 ** 31) * 2 ** 32).to(torch.int32)).numpy()
    ref = np.array([e["bits"] for e in g], dtype=np.uint32).view(np.float32)
    assert np.all(np.abs(t.astype(np.float64) - ref) <= 8 * np.spacing(np.abs(ref)))


def test_latent_vectors_match_the_decoders():
    index = json.loads((VECTORS / f"{make_vectors.LATENT_CASE}.latents.json").read_text())
    stored = {k: np.fromfile(VECTORS / v["file"], dtype="<f4").reshape(v["shape"])
              for k, v in index["arrays"].items()}
    fresh = make_vectors.latent_vectors((GOLDEN / index["nnc"]).read_bytes())
    for key in ("z2", "u"):
        assert np.abs(fresh[key] - stored[key]).max() <= 1e-5, key
    for key in ("mu_p", "sigma_p", "z1"):
        assert np.abs(fresh[key] - stored[key]).max() <= 1e-3, key
    # torch's decoder: its own erfinv (§4's tolerance) and its own network
    import torch
    from nnc import codec
    from nnc.codes import read_codes
    from nnc.model.weights import load_model
    codes = read_codes((GOLDEN / index["nnc"]).read_bytes(), 10 ** 8)
    with torch.no_grad():
        z1 = codec.decoded_latent(codes, load_model(codes.header.model_name, "cpu").net, "cpu")
    assert np.abs(z1.numpy() - stored["z1"]).max() <= 1e-3

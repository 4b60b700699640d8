"""The encoder's first pass on ONNX Runtime (nnc/analysis.py): the same posteriors as torch's
float32 network, the same file from the CLI and the API on the float32 path, and the cases
where torch's tiles take over."""
import numpy as np
import pytest
import torch

from nnc import analysis, codec
from nnc.image_io import RasterImage
from nnc.model.weights import default_model_name, load_model
from nnc.model import tiling


def _image(h, w, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3)).astype(np.uint8)
    rgb = np.kron(base, np.ones((8, 8, 1), dtype=np.uint8))[:h, :w]
    return RasterImage(np.ascontiguousarray(rgb), False, None)


def test_the_graph_gives_torchs_posteriors():
    img, name = _image(100, 150), default_model_name()
    assert analysis.applies(img, name)
    (mu_x, s_x), (mu2, s2) = analysis.start(img, 0.6, name, wait=True).result()
    model = load_model(name, "cpu").net
    x = tiling.to_tensor(img, model.stride, "cpu")
    assert tuple(x.shape) == analysis.padded(img).shape
    assert np.array_equal(x.numpy(), analysis.padded(img))
    with torch.no_grad():
        (t_mu_x, t_s_x), (t_mu2, t_s2) = model.encode(x, torch.tensor([0.6]))
    for ours, theirs in ((mu_x, t_mu_x), (s_x, t_s_x), (mu2, t_mu2), (s2, t_s2)):
        assert ours.shape == tuple(theirs.shape)
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-3, atol=1e-3)


def test_started_early_or_in_place_the_file_is_the_same(monkeypatch):
    monkeypatch.setenv("NNC_PRECISION", "float32")
    img, name = _image(64, 96, seed=1), default_model_name()
    early = analysis.start(img, 0.5, name)            # as nnc compress starts it
    a = codec.compress(img, 0.5, device="cpu", settings=codec.default_settings("cpu"),
                       analysed=early)
    b = codec.compress(img, 0.5, device="cpu", settings=codec.default_settings("cpu"))
    assert a == b
    # a pass started for another rate is not used
    other = analysis.start(img, 0.25, name)
    assert codec.compress(img, 0.5, device="cpu", settings=codec.default_settings("cpu"),
                          analysed=other) == b


def test_float32_path_follows_nnc_precision(monkeypatch):
    monkeypatch.setenv("NNC_PRECISION", "float32")
    assert analysis.float32_path()
    monkeypatch.setenv("NNC_PRECISION", "bfloat16")
    assert not analysis.float32_path()


def test_larger_than_one_tile_or_without_the_graph_goes_to_torch(monkeypatch, tmp_path):
    name = default_model_name()
    assert not analysis.applies(_image(800, 64), name)
    assert analysis.applies(_image(768, 64), name)
    import nnc.analysis as mod
    monkeypatch.setattr(mod, "weights_dir", lambda: tmp_path)    # the graph's file absent
    assert not analysis.applies(_image(64, 64), name)


def test_a_corrupt_graph_is_a_model_error(monkeypatch, tmp_path):
    import shutil
    from nnc.codes import weights_dir
    from nnc.errors import ModelError
    import nnc.analysis as mod
    name = default_model_name()
    graph = mod.manifest()["models"][name]["onnx"][mod.PART]["file"]
    shutil.copy(weights_dir() / graph, tmp_path / graph)
    with open(tmp_path / graph, "r+b") as f:
        f.seek(1000)
        f.write(b"\x00\x01\x02\x03")
    shutil.copy(weights_dir() / "manifest.json", tmp_path)
    import nnc.codes
    for where in (mod, nnc.codes):       # what analysis reads, and graphs.session
        monkeypatch.setattr(where, "weights_dir", lambda: tmp_path)
    for wait in (False, True):
        with pytest.raises(ModelError, match="corrupt"):
            analysis.start(_image(64, 64), 0.5, name, wait=wait).result()

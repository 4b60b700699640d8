"""The torch-free decoder (nnc/decoder.py): ONNX Runtime and numpy against torch, on every
golden file and on fresh files; the integers are the file's (read once), the pixels within
0.05 dB; and `nnc decompress` on the CPU never imports torch."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nnc
from nnc import codec, decoder
from nnc.codes import read_codes
from nnc.coding import greedy, importance
from nnc.metrics import psnr
from conftest import png_bytes

GOLDEN = Path(__file__).resolve().parents[1] / "formats" / "golden"


def _both(data: bytes):
    codes = read_codes(data, 10 ** 8)
    return codes, decoder.decompress_codes(codes), codec.decompress_codes(codes, "cpu")


def _close(a, b, reference):
    assert a.rgb.shape == b.rgb.shape and a.gray == b.gray
    assert np.abs(a.rgb.astype(int) - b.rgb).max() <= 2
    if not np.array_equal(a.rgb, b.rgb):      # (equal: both PSNRs may be infinite)
        pa, pb = psnr(reference, a.rgb), psnr(reference, b.rgb)
        if np.isinf(pa) or np.isinf(pb):      # one engine is the reference decode itself
            assert min(pa, pb) >= 60
        else:
            assert abs(pa - pb) <= 0.05
    assert (a.alpha is None) == (b.alpha is None)
    if a.alpha is not None:
        assert np.array_equal(a.alpha, b.alpha)
    assert a.icc == b.icc


def test_every_golden_file_decodes_alike_on_both_engines():
    for entry in json.loads((GOLDEN / "golden.json").read_text())["files"]:
        codes, a, b = _both((GOLDEN / entry["nnc"]).read_bytes())
        from PIL import Image
        expected = np.asarray(Image.open(GOLDEN / entry["decoded"]).convert("RGB"))
        _close(a, b, expected)
        for engine, img in (("onnx", a), ("torch", b)):     # checked always, on every engine
            assert np.abs(img.rgb.astype(int) - expected).max() <= 2, (entry["nnc"], engine)


@pytest.mark.parametrize("quality", [0.0, 0.5, 1.0])
def test_fresh_files_decode_alike(kodim23_crop, quality):
    codes, a, b = _both(nnc.compress(kodim23_crop, quality=quality, refine=0))
    _close(a, b, kodim23_crop)


def test_numpy_latents_match_torch(kodim23_crop):
    codes = read_codes(nnc.compress(kodim23_crop, quality=0.9, refine=0), 10 ** 8)
    hd = codes.header
    z2 = importance.decode(codes.level2, codes.shape2, hd.seed).numpy()
    assert np.abs(importance.decode_numpy(codes.level2, codes.shape2, hd.seed) - z2).max() < 1e-5
    fmt = greedy.Level1Format.from_header(hd)
    u = greedy.decode(codes.level1, fmt, codes.shape1, hd.seed).numpy()
    assert np.abs(greedy.decode_numpy(codes.level1, fmt, codes.shape1, hd.seed) - u).max() < 1e-5


def test_tiles_of_a_larger_image_decode_alike(kodim23_crop):
    big = np.concatenate([np.concatenate([kodim23_crop] * 4, 1)] * 5, 0)   # 960 x 1024
    codes, a, b = _both(nnc.compress(big, quality=0.3, refine=0))
    _close(a, b, big)


def test_decompress_on_the_cpu_never_imports_torch(tmp_path):
    src = tmp_path / "x.nnc"
    src.write_bytes(nnc.compress(png_bytes(np.full((40, 56, 3), 120, np.uint8)), quality=0.5))
    code = ("import sys\nfrom nnc.cli import main\n"
            "try:\n    main(['decompress', %r, %r])\nexcept SystemExit as e:\n"
            "    assert not e.code, e.code\n"
            "import nnc\nnnc.decompress(%r)\n"
            "from PIL import Image\nImage.open(%r).load()\n"
            "print('torch' in sys.modules)\n"
            % (str(src), str(tmp_path / "x.png"), str(src), str(src)))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
    assert (tmp_path / "x.png").exists()


def test_engine_torch_and_onnx_from_the_cli(runner, tmp_path, kodim23_crop):
    from nnc.cli import main
    src = tmp_path / "x.nnc"
    src.write_bytes(nnc.compress(kodim23_crop, quality=0.5, refine=0))
    outs = {}
    for engine in ("onnx", "torch"):
        dst = tmp_path / f"{engine}.png"
        r = runner.invoke(main, ["decompress", "--engine", engine, str(src), str(dst)])
        assert r.exit_code == 0, r.output
        from PIL import Image
        outs[engine] = np.asarray(Image.open(dst))
    assert abs(psnr(kodim23_crop, outs["onnx"]) - psnr(kodim23_crop, outs["torch"])) <= 0.05
    r = runner.invoke(main, ["decompress", "--engine", "onnx", "--device", "cuda", str(src),
                             str(tmp_path / "y.png")])
    assert r.exit_code == 2


def _against_the_deconvolution(layer, form, batch: int):
    """(input, the ConvTranspose2d's output, ``form``'s output) on odd sizes too."""
    import torch
    for h, w in ((1, 1), (3, 8), (7, 5)):
        x = torch.randn(batch, layer.in_channels, h, w)
        with torch.no_grad():
            yield x, layer(x), form(x)


def test_subpixel_deconv_equals_the_transposed_convolution():
    """The exported graphs' form of g_s's and h_s's layers (layers.SubpixelDeconv): the same
    outputs as the ConvTranspose2d up to float rounding, on odd sizes too; other layer
    shapes are refused."""
    import torch
    from nnc.model.layers import SubpixelDeconv, deconv
    torch.manual_seed(0)
    layer = deconv(6, 5)
    sub = SubpixelDeconv(layer)
    for x, want, got in _against_the_deconvolution(layer, sub, batch=2):
        assert got.shape == want.shape == (2, 5, 2 * x.shape[2], 2 * x.shape[3])
        assert torch.allclose(got, want, atol=1e-5)
    with pytest.raises(TypeError, match="SubpixelDeconv"):
        SubpixelDeconv(deconv(6, 5, k=3))


def test_phase_deconv_equals_the_transposed_convolution_in_torch_and_onnx():
    """g_s's wide layers in the exported synthesis graphs (layers.PhaseDeconv: one padded
    convolution per output phase, interleaved by DepthToSpace DCR): the ConvTranspose2d's
    outputs up to float rounding, in torch and exported to ONNX Runtime, on odd sizes too."""
    import io
    import warnings
    import onnxruntime as ort
    import torch
    from nnc.model.layers import PhaseDeconv, deconv
    torch.manual_seed(0)
    layer = deconv(6, 16)
    phase = PhaseDeconv(layer)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(phase, (torch.zeros(1, 6, 4, 4),), buf, input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": {2: "h", 3: "w"}},
                          opset_version=17, dynamo=False)
    session = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    for x, want, got in _against_the_deconvolution(layer, phase, batch=1):
        assert got.shape == want.shape == (1, 16, 2 * x.shape[2], 2 * x.shape[3])
        assert torch.allclose(got, want, atol=1e-5)
        (onnx_out,) = session.run(None, {"x": x.numpy()})
        assert np.allclose(onnx_out, want.numpy(), atol=1e-5)
    with pytest.raises(TypeError, match="PhaseDeconv"):
        PhaseDeconv(deconv(6, 5, k=3))

"""The command line as a user meets it: files, pipes, batches, and one-line errors."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from nnc.cli import main
from conftest import png_bytes, smooth_image


def test_compress_decompress_info(runner, png, tmp_path):
    out = tmp_path / "out.nnc"
    r = runner.invoke(main, ["compress", str(png), str(out)])
    assert r.exit_code == 0, r.output
    rec = tmp_path / "rec.png"
    assert runner.invoke(main, ["decompress", str(out), str(rec)]).exit_code == 0
    assert Image.open(rec).size == (56, 40)
    r = runner.invoke(main, ["info", "--json", str(out)])
    [rep] = json.loads(r.stdout)           # a list, for one file too
    assert sum(s["bytes"] for s in rep["sections"]) == out.stat().st_size == rep["bytes"]
    assert rep["header"]["width"] == 56
    r = runner.invoke(main, ["info", str(out)])
    assert "Z1IX" in r.stdout and "level 1" in r.stdout


def test_default_output_name_and_no_clobber(runner, png):
    assert runner.invoke(main, ["compress", str(png)]).exit_code == 0
    target = png.with_suffix(".nnc")
    before = target.read_bytes()
    r = runner.invoke(main, ["compress", str(png)])
    assert r.exit_code == 5 and "already exists" in r.stderr
    assert target.read_bytes() == before
    assert runner.invoke(main, ["compress", "--force", "-q", "0.9", str(png)]).exit_code == 0
    assert target.read_bytes() != before


def test_batch_with_output_dir(runner, tmp_path):
    ins = []
    for i in range(3):
        p = tmp_path / f"im{i}.png"
        p.write_bytes(png_bytes(smooth_image(20 + i, 30, seed=i)))
        ins.append(str(p))
    outdir = tmp_path / "out"
    outdir.mkdir()
    assert runner.invoke(main, ["compress", *ins, "-o", str(outdir)]).exit_code == 0
    nncs = sorted(str(p) for p in outdir.glob("*.nnc"))
    assert len(nncs) == 3
    dec = tmp_path / "dec"
    dec.mkdir()
    assert runner.invoke(main, ["decompress", *nncs, "-o", str(dec)]).exit_code == 0
    assert sorted(p.name for p in dec.iterdir()) == ["im0.png", "im1.png", "im2.png"]
    r = runner.invoke(main, ["compress", "--refine", "0", *ins])   # outputs beside inputs
    assert r.exit_code == 0
    assert sorted(p.name for p in tmp_path.glob("*.nnc")) == ["im0.nnc", "im1.nnc", "im2.nnc"]


def test_pipes_through_a_real_process(png, tmp_path):
    """stdin -> stdout, nothing but data on stdout, messages on stderr."""
    env = dict(os.environ)
    run = lambda args, data: subprocess.run([sys.executable, "-m", "nnc.cli", *args],
                                            input=data, capture_output=True, env=env)
    c = run(["compress", "-", "-"], png.read_bytes())
    assert c.returncode == 0, c.stderr
    assert c.stdout[:4] == b"\x89NNC"
    d = run(["decompress", "-", "-"], c.stdout)
    assert d.returncode == 0 and d.stdout[:4] == b"\x89PNG"
    bad = run(["decompress", "-", "-"], b"garbage")
    assert bad.returncode == 4 and bad.stdout == b""
    assert bad.stderr.decode().count("\n") == 1 and "Traceback" not in bad.stderr.decode()


def _write(path, data):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("setup,code,message", [
    (lambda d: d / "missing.png", 3, "no such file"),
    (lambda d: d, 3, "directory"),
    (lambda d: _write(d / "empty.png", b""), 3, "empty.png: not an image nnc can read"),
    (lambda d: _write(d / "t.png", b"hello"), 3, "t.png: not an image nnc can read"),
    (lambda d: _write(d / "cut.png", png_bytes(smooth_image(30, 30))[:200]), 3, "cannot decode"),
])
def test_bad_inputs_compress(runner, tmp_path, setup, code, message):
    src = setup(tmp_path)
    r = runner.invoke(main, ["compress", str(src), str(tmp_path / "o.nnc")])
    assert r.exit_code == code and message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o.nnc").exists()


def test_bad_nnc_and_output_dir(runner, png, tmp_path):
    out = tmp_path / "a.nnc"
    assert runner.invoke(main, ["compress", str(png), str(out)]).exit_code == 0
    data = out.read_bytes()
    (tmp_path / "trunc.nnc").write_bytes(data[: len(data) // 2])
    r = runner.invoke(main, ["decompress", str(tmp_path / "trunc.nnc"), str(tmp_path / "x.png")])
    assert r.exit_code == 4 and "truncated" in r.stderr
    assert not (tmp_path / "x.png").exists()
    r = runner.invoke(main, ["compress", str(png), str(tmp_path / "nodir" / "o.nnc")])
    assert r.exit_code == 5 and "does not exist" in r.stderr
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []


def test_huge_image_refused(runner, tmp_path):
    p = tmp_path / "big.png"
    p.write_bytes(png_bytes(np.zeros((300, 400, 3), np.uint8)))
    r = runner.invoke(main, ["compress", "--max-pixels", "1000", str(p), str(tmp_path / "o")])
    assert r.exit_code == 3 and "over the limit" in r.stderr


def test_usage_errors(runner, png, tmp_path):
    r = runner.invoke(main, ["compress", "--quality", "0.5", "--bpp", "0.3", str(png)])
    assert r.exit_code == 2
    r = runner.invoke(main, ["compress", "--quality", "3", str(png)])
    assert r.exit_code == 2


def _png_with_size(w: int, h: int) -> bytes:
    """A PNG whose header declares w x h (the image data is a few bytes: a bomb's shape)."""
    import struct
    import zlib

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + \
        chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_decompression_bomb_refused_before_decoding(runner, tmp_path):
    p = tmp_path / "bomb.png"
    p.write_bytes(_png_with_size(60000, 60000))
    r = runner.invoke(main, ["compress", str(p), str(tmp_path / "o.nnc")])
    assert r.exit_code == 3 and ("limit" in r.stderr or "bomb" in r.stderr)
    assert not (tmp_path / "o.nnc").exists()


def test_disk_full_leaves_nothing(runner, png, tmp_path, monkeypatch):
    import errno
    import nnc.cli as cli

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(cli.os, "fsync", full)
    out = tmp_path / "o.nnc"
    r = runner.invoke(main, ["compress", str(png), str(out)])
    assert r.exit_code == 5 and "No space left" in r.stderr
    assert not out.exists() and not list(tmp_path.glob("*.part"))


def test_ctrl_c_exits_130_without_output(runner, png, tmp_path, monkeypatch):
    import nnc.codec as codec

    def interrupted(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(codec, "compress", interrupted)
    before = png.read_bytes()
    out = tmp_path / "o.nnc"
    r = runner.invoke(main, ["compress", str(png), str(out)])
    assert r.exit_code == 130 and not out.exists()
    assert png.read_bytes() == before      # inputs are never modified


def test_train_and_resume(tmp_path):
    from nnc.model.pln import PLNConfig
    from nnc.train import train
    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        Image.fromarray(smooth_image(80, 90, seed=i)).save(data / f"{i}.jpg", quality=95)
    cfg = PLNConfig(n=8, m=8, f=8, g=4)
    ckpt = train(data, tmp_path / "run", steps=2, batch=2, crop=64, cfg=cfg, progress=False,
                 log_every=1)
    ckpt = train(data, tmp_path / "run", steps=4, batch=2, crop=64, cfg=cfg, progress=False,
                 log_every=1, resume=True)
    import torch
    state = torch.load(ckpt, weights_only=True)
    assert state["step"] == 4
    lines = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert lines[0].startswith("step,") and len(lines) == 5


def test_train_laplace_fine_tune_from_checkpoint(tmp_path):
    """--init starts a new run from a checkpoint (steps count on) with its own lambda range
    and likelihood, through the CLI."""
    import torch
    from nnc.model.pln import PLNConfig
    from nnc.train import train
    data = tmp_path / "data"
    data.mkdir()
    for i in range(2):
        Image.fromarray(smooth_image(70, 70, seed=i)).save(data / f"{i}.png")
    base = train(data, tmp_path / "base", steps=2, batch=2, crop=64,
                 cfg=PLNConfig(n=8, m=8, f=8, g=4), progress=False, log_every=1)
    r = CliRunner().invoke(main, ["train", str(data), str(tmp_path / "ft"), "--init", str(base),
                                  "--likelihood", "laplace", "--lambda-range", "0.001", "0.3",
                                  "--steps", "3", "--batch", "2", "--crop", "64",
                                  "--threads", "1"])
    assert r.exit_code == 0, r.output
    state = torch.load(tmp_path / "ft" / "ckpt.pt", weights_only=True)
    assert state["step"] == 3 and state["likelihood"] == "laplace"
    assert state["config"]["lambda_max"] == 0.3 and state["config"]["n"] == 8
    r = CliRunner().invoke(main, ["train", str(data), str(tmp_path / "x"), "--lambda-range",
                                  "0.3", "0.1"])
    assert r.exit_code == 2 and "lambda-range" in r.output


def test_train_arch_option(tmp_path):
    import torch
    data = tmp_path / "data"
    data.mkdir()
    for i in range(2):
        Image.fromarray(smooth_image(64, 64, seed=i)).save(data / f"{i}.png")
    r = CliRunner().invoke(main, ["train", str(data), str(tmp_path / "a"), "--arch", "8,12,8,4",
                                  "--steps", "1", "--batch", "2", "--crop", "64",
                                  "--lambda-power", "0"])
    assert r.exit_code == 0, r.output
    cfg = torch.load(tmp_path / "a" / "ckpt.pt", weights_only=True)["config"]
    assert (cfg["n"], cfg["m"], cfg["f"], cfg["g"]) == (8, 12, 8, 4)
    for bad in ("8,12,8", "8,x,8,4", "8,0,8,4"):
        r = CliRunner().invoke(main, ["train", str(data), str(tmp_path / "b"), "--arch", bad])
        assert r.exit_code == 2 and "--arch" in r.output


def test_tensor_crops_are_flipped_transposed_crops():
    """Every GPU-side crop is one of the image's crops under one of the 8 flips/transposes,
    and all 8 occur."""
    from nnc.train import TensorCrops
    rng = np.random.default_rng(0)
    ims = [rng.integers(0, 256, (12, 12, 3), dtype=np.uint8) for _ in range(2)]
    sampler = TensorCrops(ims, 6, "cpu", seed=0)
    crops = (sampler(300) * 255).round().byte().permute(0, 2, 3, 1).numpy()
    seen = set()
    for c in crops:
        hits = [(k, t) for im in ims for y in range(7) for x in range(7)
                for k in range(4) for t in range(2)
                if np.array_equal(c, np.rot90(im[y:y + 6, x:x + 6], k).transpose(
                    (1, 0, 2) if t else (0, 1, 2)))]
        assert hits
        seen.update(hits)
    assert len(seen) == 8


def test_lambda_weights_and_schedule():
    import torch
    from nnc.model.pln import PLNConfig
    from nnc.train import lambda_weights, lr_at
    cfg = PLNConfig(lambda_min=0.001, lambda_max=0.1)
    w = lambda_weights(torch.tensor([0.001, 0.01, 0.1]), cfg, 0.5)
    assert w.tolist() == pytest.approx([10 ** 0.5, 1.0, 10 ** -0.5])
    assert lambda_weights(torch.tensor([0.1]), cfg, 0.0).item() == 1.0
    assert lr_at(0.0, 1e-3) == lr_at(0.79, 1e-3) == 1e-3
    assert lr_at(0.9, 1e-3) == pytest.approx(5e-4) and lr_at(1.0, 1e-3) == pytest.approx(0)


def test_distortion_terms_agree_at_matched_variance():
    """The Laplace term is the NLL of the Laplace with the Gaussian's variance: at lambda =
    0.01 and errors of 10/255 their gradients match to within a few percent."""
    import torch
    from nnc.train import distortion
    lam = torch.tensor([0.01])
    x = torch.zeros(1, 3, 4, 4)
    grads = []
    for lik in ("gaussian", "laplace"):
        x_hat = torch.full((1, 3, 4, 4), 10 / 255, requires_grad=True)
        distortion(x_hat, x, lam, lik).sum().backward()
        grads.append(x_hat.grad.abs().mean().item())
    assert grads[0] == pytest.approx(grads[1], rel=0.05)


def test_init_from_checkpoint_without_optimizer_state(tmp_path):
    """A model-only checkpoint (as training/device_export.py writes) can seed a new run."""
    import torch
    from nnc.model.pln import PLNConfig
    from nnc.train import train
    data = tmp_path / "data"
    data.mkdir()
    Image.fromarray(smooth_image(64, 64)).save(data / "a.png")
    ckpt = train(data, tmp_path / "a", steps=1, batch=1, crop=64,
                 cfg=PLNConfig(n=8, m=8, f=8, g=4), progress=False)
    state = torch.load(ckpt, weights_only=True)
    del state["opt"]
    torch.save(state, tmp_path / "model.pt")
    out = train(data, tmp_path / "b", steps=2, batch=1, crop=64, progress=False,
                init=tmp_path / "model.pt")
    assert torch.load(out, weights_only=True)["step"] == 2


def test_refine_option(runner, png, tmp_path):
    plain, refined = tmp_path / "a.nnc", tmp_path / "b.nnc"
    assert runner.invoke(main, ["compress", str(png), str(plain), "--refine", "0"]).exit_code == 0
    r = runner.invoke(main, ["compress", str(png), str(refined), "--refine", "3"])
    assert r.exit_code == 0, r.output
    assert plain.read_bytes() != refined.read_bytes()
    rec = tmp_path / "rec.png"
    assert runner.invoke(main, ["decompress", str(refined), str(rec)]).exit_code == 0
    assert Image.open(rec).size == (56, 40)
    r = runner.invoke(main, ["compress", str(png), str(tmp_path / "c.nnc"), "--refine", "-1"])
    assert r.exit_code == 2 and "--refine" in r.output


def test_fast_option_codes_with_the_fast_settings(runner, tmp_path):
    """--fast: no refinement unless --refine is given, and the narrower level-1 search
    (codec.FAST_SEARCH); the API's fast=True writes the same bytes."""
    import nnc
    from nnc import codec
    from nnc.image_io import RasterImage
    rng = np.random.default_rng(3)
    rgb = (rng.integers(0, 256, (96, 128, 3)) * 0.5 + np.linspace(0, 120, 128)[None, :, None]
           ).astype(np.uint8)
    src = tmp_path / "t.png"
    Image.fromarray(rgb).save(src)
    img = RasterImage(rgb, False, None)
    outs = {}
    for name, extra in (("fast", ["--fast"]), ("plain", ["--refine", "0"]),
                        ("fast2", ["--fast", "--refine", "2"])):
        outs[name] = tmp_path / f"{name}.nnc"
        r = runner.invoke(main, ["compress", "--device", "cpu", "-q", "1", *extra, str(src),
                                 str(outs[name])])
        assert r.exit_code == 0, r.output
    fast = outs["fast"].read_bytes()
    assert fast == codec.compress(img, 1.0, device="cpu",
                                  settings=codec.encoder_settings("cpu", None, True))
    assert fast == nnc.compress(rgb, quality=1.0, device="cpu", fast=True)
    assert fast != outs["plain"].read_bytes()          # the narrower search chose otherwise
    assert outs["fast2"].read_bytes() == codec.compress(
        img, 1.0, device="cpu", settings=codec.encoder_settings("cpu", 2, True))
    s = codec.encoder_settings("cpu", None, True)
    assert (s.refine.steps, s.refine.l2_steps, s.level1_search.beam,
            s.level1_search.rd_offsets) == (0, 0, 4, (0,))
    rec = tmp_path / "rec.png"
    assert runner.invoke(main, ["decompress", str(outs["fast"]), str(rec)]).exit_code == 0
    assert Image.open(rec).size == (128, 96)


def test_usage_errors_are_one_line(tmp_path):
    """A bad value, an unknown option or command: one line on stderr, exit 2, no usage
    block; --help and --version as before."""
    import subprocess
    import sys

    def nnc(*args):
        return subprocess.run([sys.executable, "-m", "nnc.cli", *args], capture_output=True,
                              text=True, cwd=tmp_path)
    for args, says in ((["compress", "-q", "2", "a.png"], "'--quality': 2.0 is not in the range"),
                       (["compress", "--frob", "a.png"], "No such option"),
                       (["frobnicate"], "No such command 'frobnicate'")):
        r = nnc(*args)
        assert r.returncode == 2 and r.stdout == "", (args, r)
        lines = r.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("nnc: error: ") and says in lines[0], r
    r = nnc("compress", "--help")
    assert r.returncode == 0 and r.stdout.startswith("Usage: nnc compress")
    r = nnc("--version")
    assert r.returncode == 0 and "version" in r.stdout


def test_models_lists_the_installed_models(runner):
    r = runner.invoke(main, ["models"])
    assert r.exit_code == 0 and "pln-gpu-1" in r.stdout and "(default)" in r.stdout
    rows = json.loads(runner.invoke(main, ["models", "--json"]).stdout)
    assert {r["name"] for r in rows} >= {"pln-gpu-1", "pln-cpu-1"}
    assert sum(r["default"] for r in rows) == 1


def test_heavy_imports_pause_the_garbage_collector_once(monkeypatch):
    """convert.importing: the collector is off inside the first block only, and on
    afterwards."""
    import gc
    from nnc import convert as cli
    monkeypatch.setattr(cli, "_IMPORTED", False)
    monkeypatch.setattr(gc, "freeze", lambda: None)      # keep pytest's own objects collectable
    with cli.importing():
        assert not gc.isenabled()
    assert gc.isenabled() and cli._IMPORTED
    with cli.importing():
        assert gc.isenabled()          # later blocks leave it alone
    assert gc.isenabled()


# --- issue 31: nnc as a photographer meets it ---------------------------------------------

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
CPU_INDEX = "--index-url https://download.pytorch.org/whl/cpu"


def test_readme_installs_a_cpu_torch_and_the_message_says_how():
    """Against the public index alone `pip install torch` pulls the CUDA build (GBs): every
    torch install the README shows names PyTorch's CPU wheel index, the first two commands
    keep the version CI tests (torch==2.13.0, here from the local CPU wheel), and the
    decoder-only recipe installs no torch."""
    readme = (ROOT / "README.md").read_text()
    first_two = readme.split("```")[1].strip().splitlines()
    assert len(first_two) == 2
    for line in first_two:
        assert f"pip install torch==2.13.0 {CPU_INDEX} && pip install -e " in line, line
    for i in [m.start() for m in __import__("re").finditer("pip install torch", readme)]:
        assert readme[i:].split("\n")[0].split("&&")[0].split("`")[0].rstrip().endswith(
            CPU_INDEX), readme[i:i + 80]
    recipe = readme.split("### Decoding without torch")[1].split("```")[1]
    assert "torch" not in recipe.replace("compress says it needs torch", "")
    assert "pip install -q torch==2.13.0" in (ROOT / ".ci" / "run").read_text()
    # the message of a decoder-only install asked to compress
    from nnc import cli

    def needs_torch():
        raise ModuleNotFoundError("No module named 'torch'", name="torch")
    with pytest.raises(SystemExit) as e:
        import contextlib
        import io as _io
        err = _io.StringIO()
        with contextlib.redirect_stderr(err):
            cli._run(needs_torch)
    assert e.value.code == 6
    assert f"pip install torch {CPU_INDEX}" in err.getvalue()


def test_the_decoder_only_venv_is_ignored_by_git():
    readme = (ROOT / "README.md").read_text()
    recipe = readme.split("### Decoding without torch")[1].split("```")[1]
    venv = recipe.split("python3 -m venv ")[1].split()[0]
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert f"/{venv}/" in ignored or f"{venv}/" in ignored


@pytest.fixture
def small_nnc(runner, png, tmp_path):
    out = tmp_path / "a.nnc"
    assert runner.invoke(main, ["compress", "--refine", "0", str(png), str(out)]).exit_code == 0
    return out


def test_a_png_output_loads_only_the_common_pillow_plugins():
    # Image.init imports every Pillow plugin (0.05 s of a 0.7 s decompress): a .png or
    # .jpg output needs only Image.preinit's
    import subprocess
    import sys
    code = ("import sys; from nnc.image_io import output_format; "
            "assert output_format('a.png') == 'PNG' and output_format('b.jpg') == 'JPEG'; "
            "print('PIL.TiffImagePlugin' in sys.modules, 'PIL.QoiImagePlugin' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "False"]


def test_outputs_by_any_extension_pillow_writes(runner, small_nnc, tmp_path):
    from PIL import features
    from nnc.image_io import output_format
    # asked of Pillow, not a list: every extension it registers a writer for
    assert output_format("x.qoi") == "QOI" and output_format("x.tga") == "TGA"
    assert output_format("x.psd") is None            # Pillow reads PSD, writes none
    assert output_format("x.xyz") is None
    out = tmp_path / "photo.qoi"
    r = runner.invoke(main, ["decompress", str(small_nnc), str(out)])
    assert r.exit_code == 0, r.output
    assert Image.open(out).format == "QOI" and not (tmp_path / "a.png").exists()
    if not features.check("avif"):
        pytest.skip("this Pillow has no AVIF")
    out = tmp_path / "photo.avif"
    r = runner.invoke(main, ["decompress", str(small_nnc), str(out)])
    assert r.exit_code == 0, r.output
    assert Image.open(out).format == "AVIF" and Image.open(out).size == (56, 40)
    assert not (tmp_path / "a.png").exists()


def test_compressing_an_nnc_file_is_refused_without_force(runner, small_nnc, tmp_path):
    before = small_nnc.read_bytes()
    renamed = tmp_path / "photo.png"          # an .nnc by any name
    renamed.write_bytes(before)
    for src in (small_nnc, renamed):
        out = tmp_path / "b.nnc"
        r = runner.invoke(main, ["compress", str(src), str(out)])
        assert r.exit_code == 3 and not out.exists(), r.output
        assert r.stderr.count("\n") == 1 and "is an .nnc file already" in r.stderr
        assert "nnc decompress" in r.stderr and "--force" in r.stderr
    r = runner.invoke(main, ["compress", "--force", "--refine", "0", str(small_nnc),
                             str(out)])
    assert r.exit_code == 0 and out.exists()
    assert "note:" in r.stderr and "loses quality" in r.stderr
    assert small_nnc.read_bytes() == before


def _small_pngs(folder, n: int) -> list[str]:
    """im0.png ... in ``folder``: n small smooth images, their paths."""
    for i in range(n):
        (folder / f"im{i}.png").write_bytes(png_bytes(smooth_image(16, 24, seed=i)))
    return [str(folder / f"im{i}.png") for i in range(n)]


def test_skip_existing_resumes_a_batch(runner, tmp_path):
    ins = _small_pngs(tmp_path, 3)
    out = tmp_path / "out"
    r = runner.invoke(main, ["compress", "-j", "1", "--refine", "0", *ins, "-o", str(out)])
    assert r.exit_code == 0
    assert r.stderr.strip().splitlines()[-1] == "nnc: 3 written, 0 skipped, 0 failed (of 3 inputs)"
    r = runner.invoke(main, ["compress", "-j", "1", "--refine", "0", *ins, "-o", str(out)])
    assert r.exit_code == 5 and "3 failed" in r.stderr        # a rerun without the flag
    outputs = {p.name: p.read_bytes() for p in out.iterdir()}
    (out / "im1.nnc").write_bytes(outputs["im1.nnc"][:-20])   # cut short by someone else
    r = runner.invoke(main, ["compress", "-j", "1", "--skip-existing", *ins, "-o", str(out)])
    assert r.exit_code == 5
    assert r.stderr.strip().splitlines() == [
        f"nnc: error: {out / 'im1.nnc'}: exists and does not decode (use --force to replace "
        "it)", "nnc: 0 written, 2 skipped, 1 failed (of 3 inputs)"]
    r = runner.invoke(main, ["compress", "-j", "1", "--refine", "0", "--skip-existing",
                             "--force", *ins, "-o", str(out)])
    assert r.exit_code == 0
    assert r.stderr.strip() == "nnc: 1 written, 2 skipped, 0 failed (of 3 inputs)"
    assert {p.name: p.read_bytes() for p in out.iterdir()} == outputs
    # decompress: the same rule for images
    dec = tmp_path / "dec"
    nncs = sorted(str(p) for p in out.iterdir())
    assert runner.invoke(main, ["decompress", "-j", "1", *nncs, "-o", str(dec)]).exit_code == 0
    (dec / "im2.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    r = runner.invoke(main, ["decompress", "-j", "1", "--skip-existing", "-f", *nncs, "-o",
                             str(dec)])
    assert r.exit_code == 0 and r.stderr.strip() == \
        "nnc: 1 written, 2 skipped, 0 failed (of 3 inputs)"
    assert Image.open(dec / "im2.png").size == (24, 16)
    # one input: kept, and said so
    r = runner.invoke(main, ["decompress", "--skip-existing", nncs[0], str(dec / "im0.png")])
    assert r.exit_code == 0 and "exists and decodes; skipped" in r.stderr


def test_ctrl_c_in_a_batch_says_what_was_kept(runner, tmp_path, monkeypatch):
    import nnc.codec as codec
    ins = _small_pngs(tmp_path, 4)
    out = tmp_path / "out"
    real, calls = codec.compress, []

    def interrupted_at_the_third(*a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*a, **k)
    monkeypatch.setattr(codec, "compress", interrupted_at_the_third)
    r = runner.invoke(main, ["compress", "-j", "1", "--refine", "0", *ins, "-o", str(out)])
    assert r.exit_code == 130
    assert r.stderr.strip().splitlines() == [
        "nnc: stopped: 2 written, 0 skipped, 0 failed, 2 not done (of 4 inputs); the 2 "
        "outputs written or skipped are kept (--skip-existing resumes)", "nnc: interrupted"]
    assert sorted(p.name for p in out.iterdir()) == ["im0.nnc", "im1.nnc"]


def test_info_json_is_one_shape_with_float32_values_as_written(runner, png, tmp_path):
    out = tmp_path / "q.nnc"
    assert runner.invoke(main, ["compress", "-q", "0.6", "--refine", "0", str(png),
                                str(out)]).exit_code == 0
    one = runner.invoke(main, ["info", "--json", str(out)])
    two = runner.invoke(main, ["info", "--json", str(out), str(out)])
    assert isinstance(json.loads(one.stdout), list) and len(json.loads(two.stdout)) == 2
    assert json.loads(one.stdout)[0] == json.loads(two.stdout)[1]
    assert '"quality": 0.6,' in one.stdout and "0.6000000238" not in one.stdout
    assert np.float32(json.loads(one.stdout)[0]["header"]["quality"]) == np.float32(0.6)
    assert "list" in runner.invoke(main, ["info", "--help"]).stdout
    bad = runner.invoke(main, ["info", "--json", str(png)])
    assert bad.exit_code == 4 and json.loads(bad.stdout) == []


def test_decompress_help_and_output_quality(runner, small_nnc, tmp_path):
    from PIL import JpegImagePlugin
    text = runner.invoke(main, ["decompress", "--help"]).stdout
    assert "to PNG." not in text and "extension" in text and "--out-quality" in text
    sizes = {}
    for q in (None, "40"):
        for ext in (".jpg", ".webp"):
            out = tmp_path / f"o{q}{ext}"
            args = ["decompress", str(small_nnc), str(out)] + (["--out-quality", q] if q else [])
            assert runner.invoke(main, args).exit_code == 0
            sizes[q, ext] = out.stat().st_size
            if ext == ".jpg":
                assert JpegImagePlugin.get_sampling(Image.open(out)) == 0    # 4:4:4
    assert sizes["40", ".jpg"] < sizes[None, ".jpg"]
    assert sizes["40", ".webp"] < sizes[None, ".webp"]
    r = runner.invoke(main, ["decompress", "--out-quality", "101", str(small_nnc),
                             str(tmp_path / "x.jpg")])
    assert r.exit_code == 2


def test_skip_existing_leaves_pillows_global_limits_alone(tmp_path, monkeypatch):
    """Whether an existing image output decodes is checked as read_image opens images:
    without Pillow's bomb check and without changing its process-wide limits."""
    from PIL import PngImagePlugin

    from nnc.resume import output_decodes
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)   # a 20x20 image is a "bomb"
    path = tmp_path / "out.png"
    path.write_bytes(png_bytes(smooth_image(20, 20)))
    text_limit = PngImagePlugin.MAX_TEXT_CHUNK
    assert output_decodes(path)
    assert Image.MAX_IMAGE_PIXELS == 100 and PngImagePlugin.MAX_TEXT_CHUNK == text_limit
    assert not output_decodes(path, max_pixels=399)       # nnc's own size check
    path.write_bytes(path.read_bytes()[:-30])             # cut off: not whole
    assert not output_decodes(path)


@pytest.mark.parametrize("closed", [">&-", "2>&-"])
def test_a_command_started_with_stdout_or_stderr_closed_ends_cleanly(tmp_path, closed):
    """Python leaves sys.stdout (sys.stderr) None when descriptor 1 (2) is closed at start:
    the command's end (exits.leave) skips it rather than failing with exit 1."""
    r = subprocess.run(["sh", "-c", f'"$0" -m nnc.cli models {closed}', sys.executable],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r

"""`nnc train` as a user runs it: the recipe's defaults, log rows from the first step, the
time limit with the export inside it, and the same training on 2 processes (torchrun, gloo
on the CPU) as on one."""
import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from nnc.cli import main

TINY = ["--arch", "8,8,8,8", "--crop", "64", "--threads", "1", "--device", "cpu"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Five 80x80 photo-like PNGs (smooth gradients and noise)."""
    folder = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:80, 0:80]
    for i in range(5):
        base = np.stack([128 + 100 * np.sin(x / (17 + i) + c) * np.cos(y / 29 - c * i)
                         for c in range(3)], -1)
        arr = np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(arr).save(folder / f"{i}.png")
    return folder


def rows(run: Path) -> list[dict]:
    with open(run / "log.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_defaults_are_the_shipped_recipe():
    """One recipe (nnc.train.RECIPE): pln-gpu-1's, the CLI's, train()'s, device_train.py's."""
    import inspect
    import runpy
    from nnc.model.weights import manifest
    from nnc.train import RECIPE, train
    entry = manifest()["models"]["pln-gpu-1"]
    assert RECIPE.config().to_dict() == entry["config"]
    text = entry["training"] + " " + entry["training_data"]
    for word in (f"batch {RECIPE.batch}", f"{RECIPE.crop}x{RECIPE.crop} crops",
                 f"lr {RECIPE.lr:g}".replace("0.0002", "2e-4"),
                 f"warm-up {RECIPE.warmup} steps", f"^{RECIPE.lambda_power}",
                 f"[{RECIPE.lambda_min}, {RECIPE.lambda_max}]", RECIPE.likelihood.title()):
        assert word in text, word
    cli = {p.name: p.default for p in main.commands["train"].params}
    sig = inspect.signature(train).parameters
    for name in ("steps", "batch", "crop", "lr", "warmup", "likelihood", "lambda_power"):
        assert cli[name] == sig[name].default == getattr(RECIPE, name), name
    assert cli["arch"] is None and cli["lambda_range"] is None    # RECIPE.config()
    captured = {}
    argv = sys.argv
    sys.argv = ["device_train.py", "d", "o", "--seconds", "1"]
    try:   # parse only: train() is replaced by a recorder
        import nnc.train
        real = nnc.train.train
        nnc.train.train = lambda *a, **k: captured.update(k) or (_ for _ in ()).throw(
            SystemExit(0))
        with pytest.raises(SystemExit):
            runpy.run_path(str(Path(__file__).parents[1] / "training" / "device_train.py"),
                           run_name="__main__")
    finally:
        sys.argv = argv
        nnc.train.train = real
    assert captured["cfg"] == RECIPE.config()
    assert (captured["batch"], captured["crop"], captured["lr"], captured["warmup"],
            captured["lambda_power"]) == (RECIPE.batch, RECIPE.crop, RECIPE.lr,
                                          RECIPE.warmup, RECIPE.lambda_power)


def test_elbo_pass_is_pln_forward():
    """The training pass with its noise passed in is PLN.forward with the same draws."""
    from nnc.model.pln import PLN, PLNConfig
    from nnc.train import elbo_pass
    model = PLN(PLNConfig().with_arch("8,8,8,8"))
    x, q = torch.rand(2, 3, 64, 64), torch.rand(2)
    torch.manual_seed(3)
    want = model(x, q)
    (mu_x, _), (mu2, _) = model.encode(x, q)
    torch.manual_seed(3)
    e2 = torch.randn(mu2.shape)
    e1 = torch.randn(mu_x.shape)
    for a, b in zip(elbo_pass(model, x, q, e2, e1), want):
        assert torch.equal(a, b)


def test_log_has_a_row_after_one_step_and_progress_shows(data, tmp_path):
    r = CliRunner().invoke(main, ["train", str(data), str(tmp_path / "run"), "--steps", "1",
                                  "--batch", "2", *TINY])
    assert r.exit_code == 0, r.output
    log = rows(tmp_path / "run")
    assert [row["step"] for row in log] == ["1"]
    assert float(log[0]["loss"]) > 0 and float(log[0]["img_per_s"]) > 0
    # stderr is not a terminal here: plain progress lines instead of a bar
    assert "nnc: step 1/1: loss " in r.stderr and " bpp, PSNR " in r.stderr
    assert "images/s" in r.stderr
    # the first step of a session, every --log-every steps and the last
    r = CliRunner().invoke(main, ["train", str(data), str(tmp_path / "run"), "--steps", "8",
                                  "--batch", "2", "--log-every", "3", "--resume", *TINY])
    assert r.exit_code == 0, r.output
    assert [row["step"] for row in rows(tmp_path / "run")] == ["1", "2", "3", "6", "8"]


def test_batch_must_split_over_the_processes(data, tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    r = CliRunner().invoke(main, ["train", str(data), str(tmp_path / "run"), "--batch", "3",
                                  *TINY])
    assert r.exit_code == 2 and "--batch 3 does not split over 2 processes" in r.output
    assert not (tmp_path / "run").exists()


def test_time_limit_includes_the_export(data, tmp_path, monkeypatch):
    """--time-limit bounds the whole command: training stops early enough for the export
    (into a scratch weights folder here: the shipped one is not touched)."""
    import nnc.model.weights as weights
    from nnc.codes import weights_dir
    shipped = weights_dir()
    before = (shipped / "manifest.json").read_bytes()
    scratch = tmp_path / "weights"
    scratch.mkdir()
    shutil.copy(shipped / "manifest.json", scratch)
    monkeypatch.setattr(weights, "weights_dir", lambda: scratch)
    limit = 6.0
    r = CliRunner().invoke(main, ["train", str(data), str(tmp_path / "run"), "--time-limit",
                                  str(limit), "--batch", "2", "--export", "tiny-test", *TINY])
    assert r.exit_code == 0, r.output
    from nnc.train import RECIPE
    # the time limit stopped it (not --steps); the whole command's time against the limit
    # is measured by benchmarks/time_limits.py (the tests assert no wall times)
    assert 1 <= int(rows(tmp_path / "run")[-1]["step"]) < RECIPE.steps, r.stderr
    assert "includes the export, about" in r.stderr and "exported in" in r.stderr
    entry = json.loads((scratch / "manifest.json").read_text())["models"]["tiny-test"]
    assert entry["steps"] >= 1 and (scratch / "tiny-test.pt").exists()
    assert rows(tmp_path / "run")[-1]["step"] == str(entry["steps"])   # the last row
    assert (shipped / "manifest.json").read_bytes() == before
    assert not (shipped / "tiny-test.pt").exists()


def _nnc_train(out: Path, data: Path, procs: int, *args: str):
    """`nnc train` on a tiny model: one process (here: in this one), or ``procs`` under
    torchrun."""
    argv = ["train", str(data), str(out), "--batch", "4", "--log-every", "1", *TINY, *args]
    if procs == 1:
        threads = torch.get_num_threads()
        try:
            r = CliRunner().invoke(main, argv)
        finally:
            torch.set_num_threads(threads)
        assert r.exit_code == 0, r.output
        return r
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={procs}", "-m", "nnc.cli", *argv]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env,
                       cwd=Path(__file__).parents[1])
    assert r.returncode == 0, r.stdout + r.stderr
    return r


@pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed")
def test_two_processes_train_the_model_one_process_trains(data, tmp_path, monkeypatch):
    """torchrun --nproc_per_node=2 (gloo, CPU): each process takes half of every batch,
    and the steps are those of one process: the same losses and weights, to float
    rounding; a --resume (on a time limit: the schedule runs on rank 0's clock) too."""
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    one, two = tmp_path / "one", tmp_path / "two"
    _nnc_train(one, data, 1, "--steps", "3")
    r = _nnc_train(two, data, 2, "--steps", "3")
    assert "2 processes, 2 images each per step" in r.stderr
    assert r.stderr.count("nnc: checkpoint") == 1          # rank 0 alone speaks
    # the next steps on a time limit (the schedule's clock broadcast by rank 0), resumed
    resume = ["--steps", "5", "--resume", "--time-limit", "100000"]
    _nnc_train(one, data, 1, *resume)
    _nnc_train(two, data, 2, *resume)
    a, b = rows(one), rows(two)
    assert [row["step"] for row in a] == [row["step"] for row in b] == list("12345")
    for col in ("loss", "bpp", "psnr", "lambda_mean"):
        assert [float(row[col]) for row in b] == pytest.approx(
            [float(row[col]) for row in a], rel=1e-5, abs=1e-7), col
    sa = torch.load(one / "ckpt.pt", weights_only=True)
    sb = torch.load(two / "ckpt.pt", weights_only=True)
    assert sa["step"] == sb["step"] == 5 and sb["processes"] == 2
    for k, v in sa["model"].items():
        assert torch.allclose(v, sb["model"][k], rtol=1e-4, atol=1e-6), k

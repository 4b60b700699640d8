"""Shipped weights: find, verify (sha256) and load them without unpickling objects.

``weights/manifest.json`` lists models by *name* (never by position): file, sha256, the
PLN config, and how it was trained. Files are fp16 state dicts read with
``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
import time
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from ..codes import (file_sha256, how_to_restore, manifest, missing_model,  # noqa: F401
                     weights_dir)
from ..errors import ModelError, OutputError
from .pln import DEFAULT_ARCH, PLN, build


def default_model_name() -> str:
    return manifest()["default"]


class Loaded(NamedTuple):
    """An installed model as a codec uses it: the network, the coder data that ships with
    it (the level-1 shard-count table), and the sha256 that files record."""
    net: PLN
    shard_table: np.ndarray      # int64 counts (max shards + 1)^3, see coding/greedy.py
    digest: bytes
    name: str


@contextlib.contextmanager
def _no_random_init():
    """torch.nn's random initializations made no-ops while a network is built for weights
    that load_state_dict (strict) then overwrites: 0.025 s of a compress, and the same
    tensors otherwise. (Building on the meta device instead costs a 1.7 s import of
    torch's compiler, which GDN's arithmetic on meta tensors triggers.)"""
    names = ("kaiming_uniform_", "uniform_", "normal_")
    saved = {n: getattr(torch.nn.init, n) for n in names}
    try:
        for n in names:
            setattr(torch.nn.init, n, lambda tensor, *args, **kwargs: tensor)
        yield
    finally:
        for n, f in saved.items():
            setattr(torch.nn.init, n, f)


@lru_cache(maxsize=4)
def load_model(name: str | None = None, device: str = "cpu") -> Loaded:
    """The named (or default) model in eval mode on ``device``, with its coder data and its
    weights' sha256."""
    m = manifest()
    name = name or m["default"]
    entry = m["models"].get(name)
    if entry is None:
        raise ModelError(missing_model(name, m))
    path = weights_dir() / entry["file"]
    if not path.is_file():
        raise ModelError(f"the weights of model {name!r} ({path}) are missing: "
                         + how_to_restore(name, m))
    digest = file_sha256(path)      # remembered; made early by `nnc compress`
    if digest.hex() != entry["sha256"]:
        raise ModelError(f"weights file {path} does not match its sha256 in the manifest")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        with _no_random_init():
            model = build(entry.get("arch", DEFAULT_ARCH), entry["config"])
        model.load_state_dict({k: v.float() for k, v in state["state_dict"].items()})
    except Exception as e:
        raise ModelError(f"cannot load weights {path}: {e}") from None
    model.eval().to(device)
    return Loaded(model, state["shard_table"].numpy().astype(np.int64), digest, name)


def export(checkpoint: Path, out_file: Path, shard_table: np.ndarray) -> tuple[dict, str]:
    """Checkpoint -> weights file (fp16 state dict + the level-1 shard-count table);
    returns (config dict, sha256 hex)."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    half = {k: (v.half() if v.is_floating_point() else v) for k, v in state["model"].items()}
    torch.save({"state_dict": half,
                "shard_table": torch.as_tensor(shard_table, dtype=torch.int64)}, out_file)
    return state["config"], file_sha256(out_file).hex()


MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_new_model_name(name: str, directory: Path | None = None,
                         replace: bool = False) -> None:
    """A name ``install`` may use: a plain file-name-safe word (no path) that no installed
    model has (unless ``replace``). Installed weights never change in place: files made
    with them must keep decoding. ModelError when the manifest is missing or damaged."""
    if not MODEL_NAME.fullmatch(name) or ".." in name:
        raise ModelError(f"{name!r} is not a model name: use letters, digits, '.', '_' and "
                         "'-' (at most 64, no path)")
    directory = directory or weights_dir()
    installed = manifest(directory)["models"]
    if not replace and (name in installed or (directory / f"{name}.pt").exists()):
        raise ModelError(f"a model named {name!r} is already installed, and files made with "
                         "it would no longer decode: choose another name (or, knowing that, "
                         "--replace it)")


@contextlib.contextmanager
def manifest_lock(directory: Path):
    """Exclusive use of the weights folder's manifest (an flock on ``.manifest.lock``, on
    systems that have flock): two installs read, change and write it one after the other."""
    try:
        import fcntl
    except ImportError:            # no flock (Windows): the rename alone keeps it whole
        yield
        return
    try:
        fd = os.open(directory / ".manifest.lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise OutputError(f"{directory}: cannot lock the weights manifest "
                          f"({e.strerror or e})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)               # releases the lock


def write_manifest(m: dict, directory: Path) -> None:
    """Replace ``directory``/manifest.json with ``m`` atomically (call under
    :func:`manifest_lock`): written to a temporary file beside it and renamed over it, so a
    full disk or a file-size limit leaves the old manifest as it was."""
    path = directory / "manifest.json"
    tmp = directory / f".manifest-{os.getpid()}-{os.urandom(4).hex()}.tmp"
    try:
        with open(tmp, "x") as f:
            f.write(json.dumps(m, indent=2) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        raise OutputError(f"{path}: cannot write the weights manifest ({e.strerror or e}); "
                          "it is unchanged") from None
    finally:
        try:
            tmp.unlink()
        except OSError:
            pass


def install(checkpoint: Path, name: str, table_images: list, info: dict | None = None,
            directory: Path | None = None, make_default: bool = False,
            progress=None, deadline: float | None = None, replace: bool = False) -> dict:
    """Export a checkpoint into the weights folder and record it in the manifest (the
    default model only with ``make_default``, or when there is none).

    ``table_images`` (RasterImages) are encoded at several rates to estimate the level-1
    shard-count table that ships with the weights; each costs about 5 encodes of its pixels
    (~0.3 s for 256x256 with the default model on 2 CPU cores), so callers pass crops.
    ``progress(done, total)`` is called after each; past ``deadline`` (time.monotonic())
    no further image is started (the table counts those done, one at least).

    The files are made in a folder of their own and moved in, and the manifest rewritten
    (atomically), under the manifest's lock, after the name is checked again there: of two
    installs of one name, the second is refused (ModelError) and the first's files stay.
    ``replace`` replaces an installed model of that name instead. A missing manifest is
    an error, never started afresh (the shipped models would drop out of it)."""
    from ..coding.shard_table import shard_table_from_images
    directory = directory or weights_dir()
    check_new_model_name(name, directory, replace)
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    model = build(state.get("arch", DEFAULT_ARCH), state["config"])
    model.load_state_dict(state["model"])
    model.eval()
    table = shard_table_from_images(model, [])
    used, t_image = 0, 0.0
    for img in table_images:     # the counts add up: image by image is the same table
        t = time.monotonic()
        if used and deadline is not None and t + t_image > deadline:
            break
        table += shard_table_from_images(model, [img])
        used += 1
        t_image = max(t_image, time.monotonic() - t)
        if progress is not None:
            progress(used, len(table_images))
    staging = Path(tempfile.mkdtemp(prefix=f".install-{name}-", dir=directory))
    moved: list[Path] = []
    try:     # all or nothing: a failed install leaves no file of its own behind
        out_file = staging / f"{name}.pt"
        config, digest = export(checkpoint, out_file, table)
        # the decoder's networks as ONNX graphs (the torch-free decoder), from the weights as
        # the file stores them (float16)
        from .onnx_export import export as export_onnx
        model.load_state_dict({k: (v.half().float() if v.is_floating_point() else v)
                               for k, v in state["model"].items()})
        onnx_files = export_onnx(model.eval(), staging, name)
        # the table also as a numpy file: the decoder's integers are read without torch
        # (nnc/codes.py), and the file's sha256 is in the manifest
        buf = io.BytesIO()
        np.save(buf, np.asarray(table, dtype=np.int64), allow_pickle=False)
        table_file = staging / f"{name}.shard-table.npy"
        table_file.write_bytes(buf.getvalue())
        entry = {"file": out_file.name, "sha256": digest,
                 "arch": state.get("arch", DEFAULT_ARCH), "config": config,
                 "architecture": "two-level PLN (thesis §3.2.2): GDN analysis/IGDN synthesis, "
                                 "4 stride-2 convs each, level-2 transforms 2 stride-2 convs, "
                                 "per-channel rate gains interpolated over quality in [0, 1]",
                 "steps": int(state["step"]), "train_wall_s": round(float(state["wall_s"]), 1),
                 "train_device": state.get("device", "cpu"),
                 "bytes": out_file.stat().st_size, "shard_table_file": table_file.name,
                 "shard_table_sha256": hashlib.sha256(buf.getvalue()).hexdigest(),
                 "shard_table_from": f"{used} training images x 5 rates", "onnx": onnx_files,
                 **(info or {})}
        with manifest_lock(directory):
            check_new_model_name(name, directory, replace)   # again: another install may
            m = manifest(directory)                          # have taken it meanwhile
            for f in sorted(staging.iterdir()):
                os.replace(f, directory / f.name)
                moved.append(directory / f.name)
            m["models"][name] = entry
            if make_default or "default" not in m:
                m["default"] = name
            write_manifest(m, directory)
    except BaseException:
        if not replace:          # the name was free: what was moved in is this install's
            for f in moved:
                try:
                    f.unlink()
                except OSError:
                    pass
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    load_model.cache_clear()
    from ..codes import model_entry
    model_entry.cache_clear()
    return entry


def main(names: list[str]) -> None:
    """Re-export the installed models' ONNX graphs and record them in the manifest."""
    from .onnx_export import export as export_onnx
    with manifest_lock(weights_dir()):
        m = manifest()
        for name in names:
            entry = m["models"][name]
            entry["onnx"] = export_onnx(load_model(name, "cpu").net, weights_dir(), name)
            print(name, entry["onnx"])
        write_manifest(m, weights_dir())


if __name__ == "__main__":
    import sys
    main(sys.argv[1:])

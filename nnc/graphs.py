"""A model's ONNX graphs (``weights/<model>.<part>.onnx``, sha256 in the manifest's ``onnx``)
opened as ONNX Runtime sessions on the CPU: the torch-free decoder's prior and synthesis
(nnc/decoder.py) and the encoder's first pass (nnc/analysis.py). A graph that is missing,
corrupt or does not load is a model problem (ModelError), said in one line."""
from __future__ import annotations

import hashlib

from . import codes
from .errors import ModelError


def first_line(e: Exception) -> str:
    """An engine's error message, its first line (at most 300 characters)."""
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:300]


def session(model_name: str, part: str, threads: int, arena: bool = True,
            remedy: str = "reinstall nnc"):
    """The ``part`` graph of the model as a session on ``threads`` threads whose idle
    threads sleep (nnc/threads.py), with ONNX Runtime's memory arena or without; the file
    read and checked against its sha256 first. ``remedy``: what a missing graph's message
    tells the user to do."""
    import onnxruntime as ort
    entry = codes.manifest()["models"][model_name]["onnx"][part]
    path = codes.weights_dir() / entry["file"]
    what = f"the {part} graph of model {model_name!r} ({path})"
    try:
        data = path.read_bytes()
    except OSError:
        raise ModelError(f"{what} is missing; {remedy}") from None
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise ModelError(f"{what} is corrupt (sha256 mismatch); reinstall nnc")
    ort.set_default_logger_severity(3)     # errors only: nnc says what matters itself
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.enable_cpu_mem_arena = arena
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")   # nnc/threads.py
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise ModelError(f"{what} does not load ({first_line(e)}); reinstall nnc") from None

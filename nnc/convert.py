"""The unit of work of every batch: one input to one output (compress or decompress), and a
shard of such pairs run as one idempotent task that returns a row per input.

A shard is what a worker process of the local pool (nnc/pool.py) or a Dask worker
(nnc/cluster.py) runs; a rerun of a shard with ``skip_existing`` does again only what is
missing: outputs are written whole or not at all (nnc/storage.py), and an existing one that
decodes (nnc/resume.py) is kept and counted as skipped.

Row (one per input, in the shard's order):

    input, output      the paths or URLs
    status             done, skipped or failed
    bytes_in, bytes_out, bpp   sizes (bpp: of the .nnc file, either direction)
    seconds            the time spent on this input
    error, code        a failure's one-line message and its exit code (README, "Exit codes")
    notes              lines to show the user ("note: ...", "warning: ...")
"""
from __future__ import annotations

import contextlib
import gc
import os
import sys
import threading
import time

import numpy as np

from .errors import InputError, NNCError, OutputError
from .storage import MAX_NNC_BYTES, _is_special, exists, read_input, size, write_output

SKIPPED = "skipped"      # what an operation returns for an output it kept
EXIT_INTERNAL = 1
FIELDS = ("input", "output", "status", "bytes_in", "bytes_out", "bpp", "seconds", "code",
          "error")


def named(e: Exception, src: str) -> str:
    """An error's message, starting with the input's name (once; an output problem names
    the output instead)."""
    name = "stdin" if src == "-" else src
    msg = str(e)
    if isinstance(e, OutputError) or msg.startswith(f"{name}:"):
        return msg
    return f"{name}: {msg}"


def failed_row(src: str, dst: str, error: str, code: int = EXIT_INTERNAL) -> dict:
    """The row of an input whose work never returned (a worker lost, a task failed)."""
    return dict(input=src, output=dst, status="failed", bytes_in=None, bytes_out=None,
                bpp=None, seconds=None, code=code, error=error, notes=[])


def run_shard(one, shard: list[tuple[str, str]], opts: dict, debug: bool = False) -> list[dict]:
    """Run ``one(src, dst, opts)`` on every pair of ``shard``: a row each. A user error or a
    bug on one input is its row's error and the shard goes on (``debug``: raised instead);
    an interrupt passes through."""
    rows = []
    for src, dst in shard:
        row = dict(failed_row(src, dst, "", 0), status="done")
        t0 = time.perf_counter()
        try:
            outcome = one(src, dst, opts)
            if outcome == SKIPPED:       # what the kept output and its input weigh
                row.update(status=SKIPPED, bytes_in=None if src == "-" else size(src),
                           bytes_out=size(dst))
            elif isinstance(outcome, dict):
                row.update(outcome)
        except NNCError as e:
            if debug:
                raise
            row.update(status="failed", error=named(e, src), code=e.exit_code)
        except Exception as e:      # a bug on one input: the batch goes on, and says so
            if debug:
                raise
            row.update(status="failed", code=EXIT_INTERNAL,
                       error=f"{named(e, src)} (internal error: {type(e).__name__}; rerun it "
                             "alone with --debug for details)")
        row["seconds"] = round(time.perf_counter() - t0, 4)
        rows.append(row)
    return rows


def kept_output(dst: str, o: dict) -> bool:
    """Whether an existing ``dst`` is kept (``skip_existing``, and it decodes); an existing
    output is refused without ``force``."""
    if dst == "-" or not exists(dst) or _is_special(dst):
        return False
    if o.get("skip_existing"):
        from .resume import output_decodes
        if output_decodes(dst):
            return True
        if not o["force"]:
            raise OutputError(f"{dst}: exists and does not decode (use --force to replace it)")
    elif not o["force"]:
        raise OutputError(f"{dst}: already exists (use --force to overwrite)")
    return False


@contextlib.contextmanager
def importing():
    """Heavy imports (torch, ONNX Runtime) with Python's cyclic garbage collector paused: it
    would otherwise run dozens of times over the hundreds of thousands of objects they
    create, a tenth of `import torch` (1.45 -> 1.35 s here). Afterwards those objects are
    frozen out of later collections (gc.freeze) and collection goes on as before. Only the
    first time in a process (a batch's later inputs import nothing new, and freezing their
    garbage would keep it)."""
    global _IMPORTED
    if _IMPORTED or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        _IMPORTED = True
        gc.freeze()
        gc.enable()


_IMPORTED = False


def compress_file(src: str, dst: str, o: dict):
    """Compress ``src`` to ``dst`` with the options of ``nnc compress`` (``o``)."""
    if kept_output(dst, o):
        return SKIPPED
    from .image_io import read_image
    data = read_input(src)
    notes = []
    size_in = len(data)
    _check_not_nnc(data, src, o["force"], notes)
    try:
        img = read_image(data, max_pixels=o["max_pixels"])
    except InputError as e:
        raise InputError(named(e, src)) from None
    if o.get("strip"):
        img = img.stripped()
    with importing():
        early = _start_analysis(img, o)      # runs while torch imports
        from . import codec, ratecontrol
    settings = codec.encoder_settings(o["device"], o["refine_steps"], o.get("fast", False))
    common = dict(seed=o["seed"], model_name=o["model_name"], device=o["device"],
                  settings=settings)
    pixels = img.rgb.shape[0] * img.rgb.shape[1]
    if o["bpp"] is not None:
        bpp = o["bpp"]
        data, _ = ratecontrol.compress_to_bpp(img, bpp, **common)
        got = 8 * len(data) / pixels
        if abs(got / bpp - 1) > 0.05:
            notes.append(f"note: {src}: {bpp:g} bpp is out of reach for this model; wrote "
                         f"{got:.3f} bpp")
    else:
        data = codec.compress(img, quality=o["quality"], analysed=early, **common)
    write_output(dst, data, o["force"])
    return dict(bytes_in=size_in, bytes_out=len(data), bpp=round(8 * len(data) / pixels, 5),
                notes=notes)


def _start_analysis(img, o: dict):
    """The encoder's first pass started on ONNX Runtime (nnc/analysis.py) where the encoder
    will take its float32 path on the CPU at one rate, before torch is imported: the pass
    runs on the core that the import leaves idle. None where it does not apply (codec.compress
    then decides for itself)."""
    if o["bpp"] is not None or o["device"] not in ("auto", "cpu") or "torch" in sys.modules:
        return None
    if o["device"] == "auto" and os.path.exists("/dev/nvidiactl"):
        return None       # an NVIDIA driver: "auto" will most likely encode on the GPU
    from . import analysis
    from .codes import file_sha256, manifest, weights_dir
    m = manifest()
    name = o["model_name"] or m["default"]
    if not analysis.float32_path() or not analysis.applies(img, name):
        return None
    pending = analysis.start(img, float(np.float32(o["quality"])), name)

    def hash_weights():          # load_model checks the weights' sha256: 0.02 s, done here
        with contextlib.suppress(OSError, KeyError):   # (load_model says what is wrong)
            file_sha256(weights_dir() / m["models"][name]["file"])

    threading.Thread(target=hash_weights, daemon=True).start()
    return pending


def _check_not_nnc(data: bytes, src: str, force: bool, notes: list) -> None:
    """An .nnc file given to compress (by any name) is most likely a slip: refused, or with
    ``force`` decoded and compressed again, with a note (each generation loses quality)."""
    from .container import MAGIC
    if data[:len(MAGIC)] != MAGIC:
        return
    name = "stdin" if src == "-" else src
    if not force:
        raise InputError(f"{name}: is an .nnc file already; compressing it again loses "
                         "quality. Decompress it with 'nnc decompress', or use --force to "
                         "compress its decoded image again")
    notes.append(f"note: {name}: an .nnc file; its decoded image is compressed again (each "
                 "generation loses quality)")


def decompress_file(src: str, dst: str, o: dict):
    """Decompress ``src`` to ``dst`` with the options of ``nnc decompress`` (``o``)."""
    if kept_output(dst, o):
        return SKIPPED
    from .codes import read_codes
    from .image_io import encode_for
    # every check on the file's integers first, without torch: a bad file is refused in
    # milliseconds and with little memory
    data = read_input(src, MAX_NNC_BYTES)
    codes = read_codes(data, o["max_pixels"])
    with importing():
        from .decoder import decompress as decode, import_engine
        import_engine(codes, o["device"], o["engine"])
    img = decode(codes, device=o["device"], engine=o["engine"])
    notes = []
    try:
        out = encode_for(img, dst, quality=o["out_quality"],
                         warn=lambda m: notes.append(f"warning: {named(Warning(m), dst)}"))
    except ValueError as e:
        raise OutputError(str(e)) from None
    write_output(dst, out, o["force"])
    pixels = img.rgb.shape[0] * img.rgb.shape[1]
    return dict(bytes_in=len(data), bytes_out=len(out), bpp=round(8 * len(data) / pixels, 5),
                notes=notes)

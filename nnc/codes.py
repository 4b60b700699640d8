"""The integers of an .nnc file, read and checked without the network (and without torch).

A file's container, side information and indices are integers, and everything a decoder
must refuse about a file can be decided from them: :func:`read_codes` parses the container,
decodes every entropy-coded section and checks that each is consistent with the header and
with the others, so that a bad file is refused before any model is loaded (in well under a
second and with the memory of numpy and constriction, not torch's). The writers of the
same sections live here too, beside their readers. The model enters only through its
manifest entry (level-1 and level-2 channel counts, the weights' sha256) and its shard-count
table (``weights/<name>.shard-table.npy``, sha256 in the manifest).

    bytes ─container─▶ sections ─side information─▶ group sizes, shard counts, outliers
          ─indices─▶ FileCodes (everything codec.decompress needs besides the network)
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import threading
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from . import container
from .coding import LEVEL1_CODERS, LEVEL2_CODERS, coder_for
from .coding.greedy_format import Level1Code
from .coding.protocol import CoderContext
from .coding.importance import Level2Code  # noqa: F401  (re-exported)
from .errors import FormatError, ModelError
from .image_io import MAX_ICC_BYTES, MAX_METADATA_BYTES, compute_padding, profile_fits

STRIDE2 = 64          # image pixels per level-2 latent pixel (the padding multiple)
STRIDE1 = 16          # image pixels per level-1 latent pixel


@dataclass
class FileCodes:
    """Everything in a file but the network's part: the decoder's integers."""
    header: container.Header
    level2: Level2Code
    level1: Level1Code
    shape2: tuple[int, int, int]    # (G, H/64, W/64)
    shape1: tuple[int, int, int]    # (M, H/16, W/16)
    alpha: np.ndarray | None        # (height, width) uint8
    icc: bytes | None = None        # the colour profile (iCCP), as the input carried it
    coder2: object = None           # the modules that wrote each level (nnc/coding)
    coder1: object = None
    exif: bytes | None = None       # the EXIF (eXIf), a TIFF structure, orientation 1
    xmp: bytes | None = None        # the XMP packet (xMPd)


def latent_shapes(height: int, width: int, g: int, m: int):
    """(G, H2, W2) and (M, H1, W1) of an image (padded to a multiple of STRIDE2)."""
    ph, pw = compute_padding(height, width, STRIDE2)
    H, W = height + ph, width + pw
    return (g, H // STRIDE2, W // STRIDE2), (m, H // STRIDE1, W // STRIDE1)


def weights_dir() -> Path:
    import importlib      # nnc.weights: the data package of weights/ (pyproject's package-dir)
    return Path(importlib.import_module("nnc.weights").__file__).parent


_digests: dict = {}
_digests_lock = threading.Lock()


def file_sha256(path: Path) -> bytes:
    """The sha256 of a file, remembered for this process by its path, inode, size and
    modification time (a replaced or rewritten file is hashed again): ``nnc compress``
    hashes its weights on the core that torch's import leaves idle (convert.py), and
    load_model then finds the digest made. A second caller waits for the first."""
    st = os.stat(path)
    key = (str(path), st.st_ino, st.st_size, st.st_mtime_ns)
    with _digests_lock:
        if key not in _digests:
            h = hashlib.sha256()
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            _digests[key] = h.digest()
        return _digests[key]


def manifest(directory: Path | None = None) -> dict:
    """The weights manifest (``weights/manifest.json``): models by name, without torch."""
    path = (directory or weights_dir()) / "manifest.json"
    try:
        m = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelError(f"no weights manifest at {path}; reinstall nnc") from None
    except (OSError, ValueError) as e:
        raise ModelError(f"cannot read the weights manifest {path}: {e}; reinstall nnc "
                         "('pip install --force-reinstall nnc', or from the repository)") \
            from None
    problem = _manifest_problem(m)
    if problem:
        raise ModelError(f"the weights manifest {path} is damaged ({problem}); reinstall nnc "
                         "('pip install --force-reinstall nnc', or from the repository)")
    return m


def _manifest_problem(m) -> str | None:
    """What is missing from a manifest that parses (None: nothing): the keys every reader
    of it uses."""
    if not isinstance(m, dict) or not isinstance(m.get("models"), dict):
        return "no 'models' table"
    for name, e in m["models"].items():
        if not isinstance(e, dict):
            return f"model {name!r} is not a table"
        for key in ("file", "sha256", "config"):
            if not isinstance(e.get(key), (dict if key == "config" else str)):
                return f"model {name!r} has no {key!r}"
        if not all(isinstance(e["config"].get(k), int) for k in ("g", "m")):
            return f"model {name!r} has no channel counts ('g', 'm') in its 'config'"
        if "onnx" in e and not (isinstance(e["onnx"], dict) and all(
                isinstance(g, dict) and isinstance(g.get("file"), str)
                and isinstance(g.get("sha256"), str) for g in e["onnx"].values())):
            return f"model {name!r} has a damaged 'onnx' table"
    if "default" in m and m["default"] not in m["models"]:
        return f"the default model {m['default']!r} is not in it"
    return None


@lru_cache(maxsize=8)
def model_entry(name: str) -> tuple[dict, np.ndarray]:
    """The manifest entry of an installed model and its shard-count table (checked against
    the sha256 the manifest records), without loading the weights."""
    m = manifest()
    entry = m["models"].get(name)
    if entry is None:
        raise ModelError(missing_model(name, m, for_file=True))
    table_file = weights_dir() / entry.get("shard_table_file", "")
    try:
        raw = table_file.read_bytes()
    except OSError:
        raise ModelError(f"the shard-count table of model {name!r} ({table_file}) is "
                         "missing: " + how_to_restore(name, m)) from None
    if hashlib.sha256(raw).hexdigest() != entry.get("shard_table_sha256"):
        raise ModelError(f"the shard-count table of model {name!r} ({table_file}) is "
                         "corrupt (sha256 mismatch): " + how_to_restore(name, m))
    table = np.load(io.BytesIO(raw), allow_pickle=False)
    return entry, np.asarray(table, dtype=np.int64)


def missing_model(name: str, m: dict, for_file: bool = False) -> str:
    """What to say about a model that is not installed: which are, and how to get it."""
    what = (f"this file was made with model {name!r}, which is not installed here"
            if for_file else f"model {name!r} is not installed here")
    return (f"{what} (installed: {', '.join(m['models'])}; see 'nnc models'). A model "
            f"trained with 'nnc train --export {name}' is installed by copying its files "
            f"({name}.pt, {name}.shard-table.npy, {name}.prior1.onnx, "
            f"{name}.synthesis.onnx, {name}.analysis.onnx) and its entry in manifest.json "
            "from the weights folder "
            f"where it was made into {weights_dir()}")


def how_to_restore(name: str, m: dict) -> str:
    return (f"reinstall nnc if {name!r} shipped with it ('pip install --force-reinstall "
            f"nnc', or from the repository), or copy the file again from the weights folder "
            f"where it was made (a model from 'nnc train --export {name}')")


def read_codes(data: bytes, max_pixels: int) -> FileCodes:
    """Parse and check a whole file down to its integers (see the module docstring).
    Raises FormatError for a bad file and ModelError for a model that is not installed."""
    c = container.read(data)
    hd = c.header
    if hd.width * hd.height > max_pixels:
        raise FormatError(f"the file declares {hd.width}x{hd.height} pixels, over the limit "
                          f"of {max_pixels} (raise it with --max-pixels if this is intended)")
    # which coder wrote each level: the one whose sections are there (nnc/coding)
    coder2 = coder_for(LEVEL2_CODERS, c.sections, 2)
    coder1 = coder_for(LEVEL1_CODERS, c.sections, 1)
    if hd.alpha and "ALPH" not in c.sections:
        raise FormatError("corrupt .nnc file: the alpha section is missing")
    entry, table = model_entry(hd.model_name)
    if entry["sha256"] != hd.weights_sha256.hex():
        raise ModelError(f"this file was made with other weights for model "
                         f"{hd.model_name!r} than the ones installed")
    shape2, shape1 = latent_shapes(hd.height, hd.width, int(entry["config"]["g"]),
                                   int(entry["config"]["m"]))
    try:
        # through the coder protocol (coding/protocol.py): one signature for both levels
        ctx2 = CoderContext(hd.seed, shape2, coder2.format_from_header(hd))
        ctx1 = CoderContext(hd.seed, shape1, coder1.format_from_header(hd), table)
        code2, code1 = coder2.read(c.sections, ctx2), coder1.read(c.sections, ctx1)
    except (FormatError, KeyboardInterrupt, SystemExit, MemoryError):
        raise
    except BaseException as e:   # constriction refuses streams that do not decode (its Rust
        # panics arrive as pyo3's PanicException, a BaseException)
        raise FormatError(f"corrupt .nnc file: entropy-coded data does not decode ({e})") \
            from None
    return FileCodes(hd, code2, code1, shape2, shape1, read_alpha(c.sections.get("ALPH"), hd),
                     read_icc(c.sections.get("iCCP"), hd.channels), coder2, coder1,
                     read_exif(c.sections.get("eXIf")), read_xmp(c.sections.get("xMPd")))


def write_alpha(alpha: np.ndarray) -> bytes:
    """Section ALPH (spec §6): the alpha plane, deflated."""
    return zlib.compress(np.ascontiguousarray(alpha).tobytes(), 9)


def read_alpha(section: bytes | None, hd: container.Header) -> np.ndarray | None:
    if not hd.alpha:
        return None
    try:   # never inflate more than the plane's size (zlib bombs)
        raw = zlib.decompressobj().decompress(section, hd.width * hd.height + 1)
    except zlib.error:
        raise FormatError("corrupt .nnc file: the alpha plane does not decompress") from None
    if len(raw) != hd.width * hd.height:
        raise FormatError("corrupt .nnc file: the alpha plane has the wrong size")
    return np.frombuffer(raw, dtype=np.uint8).reshape(hd.height, hd.width).copy()


def write_icc(profile: bytes) -> bytes:
    """Section iCCP (spec §6b): the colour profile, deflated."""
    if len(profile) > MAX_ICC_BYTES:
        raise ValueError("colour profile over 16 MiB")
    return zlib.compress(profile, 9)


def read_icc(section: bytes | None, channels: int = 3) -> bytes | None:
    raw = _inflate_whole(section, "the colour profile (iCCP)")
    if raw is not None and not profile_fits(raw, channels == 1):
        # spec §6b: not a profile of the coded pixels (RGB on a gray image, CMYK): ignored,
        # as the encoder drops them (nnc wrote such profiles for a few hours on 2026-11-30)
        return None
    return raw


EXIF_BYTE_ORDERS = (b"II*\0", b"MM\0*")     # a TIFF structure's first bytes (spec §6c)


def write_exif(exif: bytes) -> bytes:
    """Section eXIf (spec §6c): the EXIF's TIFF structure, deflated."""
    if len(exif) > MAX_METADATA_BYTES or exif[:4] not in EXIF_BYTE_ORDERS:
        raise ValueError("EXIF data over 16 MiB or without a TIFF byte-order mark")
    return zlib.compress(exif, 9)


def read_exif(section: bytes | None) -> bytes | None:
    raw = _inflate_whole(section, "the EXIF data (eXIf)")
    if raw is not None and raw[:4] not in EXIF_BYTE_ORDERS:
        raise FormatError("corrupt .nnc file: the EXIF data (eXIf) does not start with a "
                          "TIFF byte-order mark")
    return raw


def write_xmp(xmp: bytes) -> bytes:
    """Section xMPd (spec §6c): the XMP packet, deflated."""
    if len(xmp) > MAX_METADATA_BYTES:
        raise ValueError("XMP packet over 16 MiB")
    return zlib.compress(xmp, 9)


def read_xmp(section: bytes | None) -> bytes | None:
    return _inflate_whole(section, "the XMP packet (xMPd)")


def _inflate_whole(section: bytes | None, what: str) -> bytes | None:
    """An ancillary section holding one whole zlib stream of 1 byte to 16 MiB (spec §6b,
    §6c): its inflated bytes, or FormatError naming ``what``."""
    if section is None:
        return None
    d = zlib.decompressobj()
    try:   # never inflate more than the format allows
        raw = d.decompress(section, MAX_METADATA_BYTES + 1)
    except zlib.error:
        raise FormatError(f"corrupt .nnc file: {what} does not decompress") from None
    if len(raw) > MAX_METADATA_BYTES:
        raise FormatError(f"corrupt .nnc file: {what} is over 16 MiB")
    if not d.eof or d.unused_data or not raw:     # spec §6b, §6c: one whole stream, no more
        raise FormatError(f"corrupt .nnc file: {what} is cut off, empty or followed by "
                          "other bytes")
    return raw

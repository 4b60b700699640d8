"""Batches: many inputs to their outputs, in shards, on this machine's worker processes
(nnc/pool.py) or on a Dask cluster (nnc/cluster.py), resumable, with a results manifest.
One code path for both: each shard is nnc/convert.py's ``run_shard``. Inputs and outputs
are local paths or fsspec URLs (s3://bucket/key, ...); a directory is walked recursively.

    from nnc import batch
    rows = batch.compress(["photos/"], "s3://bucket/out/", scheduler="tcp://host:8786")
    rows = batch.compress(["a.png", "b.png"], "out/", jobs=2)   # worker processes here
    batch.summary(rows)   # {'done': 2, 'skipped': 0, 'failed': 0, 'bytes_in': ..., ...}

The manifest (CSV, beside the outputs: OUT/nnc-manifest.csv) has a row per input, in the
order given (convert.FIELDS), and a last line ``# summary: ...``.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

from . import storage
from .convert import FIELDS, compress_file, decompress_file, run_shard
from .errors import InputError, OutputError

MANIFEST = "nnc-manifest.csv"


def _accepts(name: str, suffix: str) -> bool:
    """Whether a file found in a walked directory is an input: for compress (outputs
    .nnc) an image Pillow opens by its extension, for decompress an .nnc file."""
    ext = Path(name).suffix.lower()
    if Path(name).name.startswith("."):
        return False
    if suffix != ".nnc":
        return ext == ".nnc"
    from PIL import Image
    return ext != ".nnc" and ext in Image.registered_extensions()


def _stem_of(path: str) -> str:
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return Path(name).stem


def _with_suffix(path: str, suffix: str) -> str:
    head, _, name = path.rpartition("/")
    return (head + "/" if head else "") + Path(name).stem + suffix


def is_folder(path: str) -> bool:
    """A local directory, or a URL ending in / (asking the store about every URL of a list
    of millions would cost a request each)."""
    return path.endswith("/") if storage.is_url(path) else Path(path).is_dir()


def plan(inputs, out_dir: str | None, suffix: str) -> list[tuple[str, str]]:
    """Pairs (input, output): a file's output is ``out_dir``/its stem + ``suffix`` (or
    beside it); a directory's (a URL ending in /) files (recursively; images for compress, .nnc files for
    decompress) keep their place under it in ``out_dir`` (or stay beside their input).
    Local output folders are made; two inputs bound for one output are refused."""
    if out_dir is not None:
        if not storage.is_url(out_dir) and Path(out_dir).exists() and not Path(out_dir).is_dir():
            raise OutputError(f"{out_dir}: exists and is not a directory")
    pairs = []
    for i in inputs:
        i = str(i)
        if i != "-" and is_folder(i):
            found = [f for f in storage.walk(i) if _accepts(storage.relative_to(f, i), suffix)]
            if not found:
                raise InputError(f"{i}: a directory without "
                                 f"{'images' if suffix == '.nnc' else '.nnc files'} in it")
            base = out_dir if out_dir is not None else i
            pairs += [(f, storage.join(base, _with_suffix(storage.relative_to(f, i), suffix)))
                      for f in found]
        elif out_dir is not None:
            pairs.append((i, storage.join(out_dir, _stem_of(i) + suffix)))
        else:
            pairs.append((i, "-" if i == "-" else _with_suffix(i, suffix)))
    seen: dict[str, str] = {}
    for i, o in pairs:
        if o == "-":
            continue
        storage.check_output_name(o)
        if i != "-" and storage.same_file(i, o):
            raise OutputError(f"{o}: is also the input; name another output")
        key = o if storage.is_url(o) else str(Path(o).absolute())
        if key in seen:
            raise OutputError(f"{seen[key]} and {i} would both be written to {o}; "
                              "rename one of them")
        seen[key] = i
    if out_dir is not None:          # made once every check has passed
        storage.makedirs(out_dir)
        for folder in {str(Path(o).parent) for _, o in pairs if not storage.is_url(o)}:
            storage.makedirs(folder)
    return pairs


def run(pairs: list[tuple[str, str]], one, opts: dict, *, jobs: int | None = None,
        scheduler=None, shard_size: int = 1, report=None, debug: bool = False,
        show_warning=None) -> list[dict]:
    """Run ``one(src, dst, opts)`` on every pair, ``shard_size`` pairs a task: on the Dask
    cluster at ``scheduler`` when given, else in ``jobs`` worker processes (default: one per
    core, one on a GPU; 1: in this process). ``report(rows)`` is called for every shard as
    it completes. Returns the rows in the order of ``pairs``."""
    shards = [pairs[k:k + shard_size] for k in range(0, len(pairs), max(1, shard_size))]
    rows: list[dict] = []

    def collect(shard_rows):
        rows.extend(shard_rows)
        if report is not None:
            report(shard_rows)

    if scheduler is not None:
        # the workers run elsewhere, in other folders: local paths go to them absolute,
        # and the rows come back named as given
        given = {(_absolute(s), _absolute(d)): (s, d) for s, d in pairs}

        def named_as_given(shard_rows):
            for r in shard_rows:
                r["input"], r["output"] = given.get((r["input"], r["output"]),
                                                    (r["input"], r["output"]))
            collect(shard_rows)
        from . import cluster
        cluster.run([[(_absolute(s), _absolute(d)) for s, d in shard] for shard in shards],
                    one, opts, scheduler, named_as_given, debug)
    else:
        from . import pool
        if jobs is None:
            # decoding on the CPU (ONNX Runtime) needs no look for a GPU (and no torch)
            jobs = pool.default_jobs(opts.get("device", "auto"),
                                     opts.get("engine", "torch") == "torch")
        jobs = min(jobs, len(shards))
        if jobs <= 1:
            for shard in shards:
                collect(run_shard(one, shard, opts, debug))
        else:
            pool.run(shards, one, opts, jobs, collect, debug, show_warning)
    # a worker killed mid-write (a lost Dask task) left its temporary file behind
    for folder in {str(Path(d).parent) for _, d in pairs
                   if d != "-" and not storage.is_url(d)}:
        storage.sweep_parts(Path(folder))
    order = {pair: k for k, pair in enumerate(pairs)}
    return sorted(rows, key=lambda r: order.get((r["input"], r["output"]), len(order)))


def _absolute(path: str) -> str:
    return path if path == "-" or storage.is_url(path) else str(Path(path).absolute())


def summary(rows: list[dict]) -> dict:
    """Counts (done, skipped, failed) and the bytes of the inputs and outputs that are
    there now: written by this run or kept from an earlier one (so a rerun's summary still
    tells the archive's size)."""
    there = [r for r in rows if r["status"] in ("done", "skipped")]
    return dict(done=sum(r["status"] == "done" for r in rows),
                skipped=sum(r["status"] == "skipped" for r in rows),
                failed=sum(r["status"] == "failed" for r in rows),
                bytes_in=sum(r["bytes_in"] or 0 for r in there),
                bytes_out=sum(r["bytes_out"] or 0 for r in there))


def manifest_text(rows: list[dict]) -> str:
    """The manifest: a CSV header, a row per input, and ``# summary: ...`` last."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, FIELDS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    s = summary(rows)
    buf.write(f"# summary: {s['done']} done, {s['skipped']} skipped, {s['failed']} failed; "
              f"{s['bytes_in']} bytes in, {s['bytes_out']} bytes out\n")
    return buf.getvalue()


def write_manifest(path: str, rows: list[dict]) -> None:
    """The manifest at ``path`` (local or URL), written whole, replacing an older one."""
    storage.write_output(path, manifest_text(rows).encode(), force=True)


def _batch(inputs, out_dir, suffix, one, opts, jobs, scheduler, shard_size, manifest,
           progress) -> list[dict]:
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    pairs = plan([str(i) for i in inputs], None if out_dir is None else str(out_dir), suffix)
    where = None
    if manifest:
        where = manifest if isinstance(manifest, str) else storage.join(str(out_dir), MANIFEST)
        storage.check_writable(where)
    bar = None
    if progress and pairs:
        from tqdm import tqdm
        bar = tqdm(total=len(pairs), unit="image")
    try:
        rows = run(pairs, one, opts, jobs=jobs, scheduler=scheduler, shard_size=shard_size,
                   report=None if bar is None else (lambda r: bar.update(len(r))))
    finally:
        if bar is not None:
            bar.close()
    if where is not None:
        write_manifest(where, rows)
    return rows


def compress(inputs, out_dir=None, *, quality: float | None = None, bpp: float | None = None,
             seed: int = 0, refine: int | None = None, fast: bool = False,
             model: str | None = None, device: str = "auto", strip: bool = False, max_pixels: int = 100_000_000,
             force: bool = False, skip_existing: bool = True, jobs: int | None = None,
             scheduler=None, shard_size: int = 1, manifest=True,
             progress: bool = False) -> list[dict]:
    """Compress images (paths, URLs, directories) into ``out_dir`` (default: beside each),
    as ``nnc compress`` does; a rerun keeps the outputs that exist and decode
    (``skip_existing``). ``scheduler``: a Dask scheduler's address or a
    ``distributed.Client``. ``manifest``: True writes ``out_dir``/nnc-manifest.csv, a path
    writes it there, False none. Returns a row per input (module docstring)."""
    from .api import _check_arguments
    _check_arguments(quality, bpp, seed, model, device, refine)
    opts = dict(quality=0.5 if quality is None else quality, bpp=bpp, seed=seed,
                refine_steps=refine, fast=bool(fast), model_name=model, max_pixels=max_pixels,
                device=device, force=force, strip=strip, skip_existing=skip_existing)
    return _batch(inputs, out_dir, ".nnc", compress_file, opts, jobs, scheduler, shard_size,
                  manifest and (out_dir is not None or isinstance(manifest, str)) and manifest,
                  progress)


def decompress(inputs, out_dir=None, *, device: str = "auto", engine: str = "auto",
               out_quality: int = 95, max_pixels: int = 100_000_000, force: bool = False,
               skip_existing: bool = True, jobs: int | None = None, scheduler=None,
               shard_size: int = 1, manifest=True, progress: bool = False) -> list[dict]:
    """Decompress .nnc files (paths, URLs, directories) to PNGs in ``out_dir``, as
    ``nnc decompress`` does; the other arguments as :func:`compress`'s."""
    opts = dict(max_pixels=max_pixels, device=device, force=force, engine=engine,
                skip_existing=skip_existing, out_quality=out_quality)
    return _batch(inputs, out_dir, ".png", decompress_file, opts, jobs, scheduler, shard_size,
                  manifest and (out_dir is not None or isinstance(manifest, str)) and manifest,
                  progress)

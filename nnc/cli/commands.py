"""The commands compress, decompress, models and info, and the ``nnc`` group they belong to."""
from __future__ import annotations

import json
import signal
import sys
import threading
import warnings

import click

from .. import storage
from ..batch import MANIFEST, is_folder
from ..convert import compress_file, decompress_file
from ..errors import NNCError, one_line
from ..malloc import keep_freed_memory
from ..threads import configure as configure_threads
from . import exits
from .exits import _named, _on_sigterm, _run, _show_warning
from .output import MAX_NNC_BYTES, plan_outputs, read_input
from .batch import _batch


@click.group(cls=exits.OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="nnc")
@click.option("--debug", is_flag=True, help="Show Python tracebacks on errors.")
def main(debug: bool) -> None:
    """nnc: a neural image codec that sends samples, not quantized latents."""
    exits.DEBUG = debug
    keep_freed_memory()
    configure_threads()
    warnings.showwarning = _show_warning
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)


_device = click.option("--device", default="auto", show_default=True,
                       help="cpu, cuda, or auto (cuda when present).")
_force = click.option("-f", "--force", is_flag=True, help="Overwrite existing outputs.")
_outdir = click.option("-o", "--output-dir", "out_dir", type=click.Path(file_okay=False),
                       help="Write outputs into this directory (for several inputs).")
_skip_existing = click.option(
    "--skip-existing", is_flag=True,
    help="Keep outputs that exist and decode (counted as skipped): a rerun resumes a batch. "
         "With --force, outputs that exist and do not decode are written again.")
_jobs = click.option("-j", "--jobs", type=click.IntRange(min=1), default=None,
                     help="Worker processes for several inputs. [default: the CPU cores; "
                          "1 on a GPU]")


def _cluster(f):
    """--scheduler, --from-list, --shard-size, --manifest (docs/cluster.md)."""
    f = click.option("--manifest", type=click.Path(dir_okay=False), default=None,
                     help="Write the results (CSV: a row per input, a summary line last) "
                          "here. [default with --scheduler, --from-list or a directory "
                          "input: OUTDIR/nnc-manifest.csv]")(f)
    f = click.option("--shard-size", type=click.IntRange(min=1), default=1,
                     show_default=True, help="Inputs per task.")(f)
    f = click.option("--from-list", "from_list", type=click.Path(allow_dash=True),
                     default=None, help="Read inputs (paths or URLs), one a line, from "
                                        "this file (- for stdin).")(f)
    return click.option("--scheduler", default=None, metavar="ADDRESS",
                        help="Run on this Dask cluster (tcp://host:8786); implies "
                             "--skip-existing, as a task may run twice.")(f)


def _planned(plan, one, opts, desc, jobs, scheduler, shard_size) -> None:
    pairs, manifest = plan
    _batch(pairs, one, opts, desc, jobs, scheduler, shard_size, manifest)


def _plan(paths, out_dir, suffix, scheduler, from_list, manifest):
    """Pairs (input, output) and the manifest's path: --from-list's inputs after the
    arguments'; a manifest by default in -o DIR for a cluster, a list or a directory."""
    paths = tuple(paths)
    if from_list is not None:
        text = read_input(from_list).decode("utf-8", "replace")
        paths += tuple(line.strip() for line in text.splitlines() if line.strip())
    pairs = plan_outputs(paths, out_dir, suffix)
    if manifest is None and out_dir is not None and (
            scheduler or from_list or any(is_folder(p) for p in paths if p != "-")):
        manifest = storage.join(out_dir, MANIFEST)
    return pairs, manifest


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(allow_dash=True))
@_outdir
@click.option("-q", "--quality", type=click.FloatRange(0, 1), default=None,
              help="Rate parameter in [0, 1]: higher means more bits and better quality. "
                   "[default: 0.5]")
@click.option("--bpp", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Target file size in bits per pixel (search over the rate parameter, "
                   "within 2% when in the model's range).")
@click.option("--seed", type=click.IntRange(0, 2 ** 32 - 1), default=0, show_default=True,
              help="Seed of the shared randomness.")
@click.option("--refine", "refine_steps", type=click.IntRange(0, 1000), default=None,
              help="Steps (per latent level) that fit the latents to each image: slower "
                   "encoding, better files; decoding is unchanged. Images over 1 megapixel "
                   "skip it. [default: 5 on a GPU; on the CPU 2 on the small level, 1 on "
                   "the large one]")
@click.option("--fast", is_flag=True,
              help="Encode faster: no refinement (unless --refine is given) and a narrower "
                   "search; files about 14% larger at the same quality. For CPUs without "
                   "bfloat16 (docs/cli.md).")
@click.option("--model", "model_name", default=None, help="Model name (default: shipped).")
@click.option("--max-pixels", type=click.IntRange(min=1), default=100_000_000,
              show_default=True, help="Refuse images with more pixels than this.")
@click.option("--strip", is_flag=True,
              help="Leave out the camera metadata (EXIF, XMP: camera, date, GPS position); "
                   "the colour profile stays.")
@_device
@_force
@_skip_existing
@_jobs
@_cluster
def compress(paths, out_dir, quality, bpp, refine_steps, fast, seed, model_name, max_pixels,
             strip, device, force, skip_existing, jobs, scheduler, from_list, shard_size, manifest):
    """Compress images (PNG, JPEG, ...) to .nnc, with their colour profile and camera
    metadata (EXIF with the orientation applied, XMP) unless --strip.

    An input that is an .nnc file already is refused (compressing it again loses quality);
    --force compresses its decoded image again.

    \b
    nnc compress in.png out.nnc      one file
    nnc compress in.png              writes in.nnc
    nnc compress *.png -o outdir/    several files (-j N: N at a time)
    nnc compress --skip-existing *.jpg -o outdir/   a rerun: resumes
    nnc compress photos/ -o outdir/  a folder, recursively
    nnc compress --scheduler tcp://host:8786 --from-list files.txt -o s3://bucket/out/
    nnc compress - - < in.png > out.nnc
    """
    if quality is not None and bpp is not None:
        raise click.UsageError("give --quality or --bpp, not both")
    _check_setup(device, model_name)
    opts = dict(quality=0.5 if quality is None else quality, bpp=bpp, seed=seed,
                refine_steps=refine_steps, fast=fast, model_name=model_name, max_pixels=max_pixels,
                device=device, force=force, strip=strip,
                skip_existing=skip_existing or scheduler is not None)
    _run(lambda: _planned(_plan(paths, out_dir, ".nnc", scheduler, from_list, manifest),
                           compress_file, opts, "compress", jobs, scheduler, shard_size))


def _check_setup(device: str, model_name: str | None = None) -> None:
    """A device named outright must exist, and a model named must be installed: checked
    once, before any input is read."""
    def check():
        if model_name is not None:
            from ..codes import manifest, missing_model
            from ..errors import ModelError
            m = manifest()
            if model_name not in m["models"]:
                raise ModelError(missing_model(model_name, m))
        if device not in ("auto", "cpu"):     # cpu is always there (and needs no torch)
            from ..codec import pick_device
            pick_device(device)
    _run(check)


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(allow_dash=True))
@_outdir
@click.option("--max-pixels", type=click.IntRange(min=1), default=100_000_000,
              show_default=True, help="Refuse files that declare more pixels than this.")
@click.option("--engine", type=click.Choice(["auto", "onnx", "torch"]), default="auto",
              show_default=True, help="Run the networks on ONNX Runtime (no torch: fast "
              "start) or torch; auto: ONNX Runtime on the CPU (torch for images over 16 MP, "
              "when installed), torch with --device cuda.")
@click.option("--out-quality", type=click.IntRange(1, 100), default=None,
              help="Quality of JPEG, WebP and AVIF outputs (JPEG without chroma "
                   "subsampling, 4:4:4). [default: 95]")
@_device
@_force
@_skip_existing
@_jobs
@_cluster
def decompress(paths, out_dir, max_pixels, engine, out_quality, device, force, skip_existing,
               jobs, scheduler, from_list, shard_size, manifest):
    """Decompress .nnc files to images: PNG, or the format the output name's extension
    asks for, any that this Pillow writes (.jpg, .webp, .avif, .tif, ...), with the colour
    profile and camera metadata (EXIF, XMP) where the format holds them. -o DIR writes PNGs.

    \b
    nnc decompress in.nnc out.png
    nnc decompress in.nnc photo.jpg --out-quality 90
    nnc decompress *.nnc -o outdir/
    """
    if engine == "onnx" and device not in ("auto", "cpu"):
        raise click.UsageError("--engine onnx runs on the CPU: drop --device or use --engine "
                               "torch")
    _check_setup(device)
    from ..image_io import DEFAULT_OUT_QUALITY
    opts = dict(max_pixels=max_pixels, device=device, force=force, engine=engine,
                skip_existing=skip_existing or scheduler is not None,
                out_quality=DEFAULT_OUT_QUALITY if out_quality is None else out_quality)
    _run(lambda: _planned(_plan(paths, out_dir, ".png", scheduler, from_list, manifest),
                           decompress_file, opts, "decompress", jobs, scheduler, shard_size))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def models(as_json):
    """List the installed models and the range of rates they cover."""
    def body():
        from ..codes import manifest
        m = manifest()
        rows = []
        for name, e in m["models"].items():
            k = e.get("kodak") or []
            rows.append({"name": name, "default": name == m.get("default"),
                         "megabytes": round(e.get("bytes", 0) / 1e6, 1),
                         "kodak_bpp": [k[0]["bpp"], k[-1]["bpp"]] if k else None,
                         "kodak_psnr": [k[0]["psnr"], k[-1]["psnr"]] if k else None})
        if as_json:
            click.echo(json.dumps(rows, indent=2))
            return
        for r in rows:
            rng = (f"Kodak {r['kodak_bpp'][0]:.2f}-{r['kodak_bpp'][1]:.2f} bpp, "
                   f"{r['kodak_psnr'][0]:.1f}-{r['kodak_psnr'][1]:.1f} dB"
                   if r["kodak_bpp"] else "no Kodak measurement")
            click.echo(f"{r['name']:<16}{'(default) ' if r['default'] else '          '}"
                       f"{r['megabytes']:>5} MB  {rng} (rate parameter 0 to 1)")
    _run(body)


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(allow_dash=True))
@click.option("--json", "as_json", is_flag=True,
              help="Machine-readable output: a JSON list with one object per file read, in "
                   "the order given (a list for one file too; a file that cannot be read is "
                   "reported on stderr and left out).")
def info(paths, as_json):
    """Print the header of .nnc files and where the bits went."""
    def body():
        from ..info import describe, format_text
        reports, failed = [], []
        for p in paths:      # every file is reported; a bad one is one line on stderr
            try:
                reports.append(describe(read_input(p, MAX_NNC_BYTES), p))
            except NNCError as e:
                if exits.DEBUG:
                    raise
                failed.append(e.exit_code)
                click.echo(f"nnc: error: {one_line(_named(e, p))}", err=True)
                continue
            if not as_json:
                click.echo(("\n" if len(reports) > 1 else "") + format_text(reports[-1]),
                           nl=False)
        if as_json:
            click.echo(json.dumps(reports, indent=2))
        if failed:
            sys.exit(failed[0])
    _run(body)

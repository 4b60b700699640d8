"""The ``nnc`` command line: compress, decompress, info, train.

stdout carries only data (an image or .nnc bytes when the output is ``-``, or ``info``'s
report); every human message goes to stderr. Exit codes (README, "Exit codes"):
0 ok, 1 internal error, 2 usage, 3 unreadable input, 4 corrupt or unsupported .nnc,
5 output problem, 6 model or weights problem, 130 interrupted, 143 terminated.
"""
from __future__ import annotations

import contextlib
import gc
import json
import os
import signal
import stat
import sys
import threading
from pathlib import Path

import click

from .container import MAX_FILE_BYTES
from .errors import InputError, NNCError, OutputError
from .malloc import keep_freed_memory
from .threads import configure as configure_threads

EXIT_INTERNAL, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 1, 2, 130, 143
DEBUG = False


def _fail(message: str, code: int) -> None:
    click.echo(f"nnc: error: {message}", err=True)
    sys.exit(code)


MAX_IMAGE_BYTES = 1 << 30      # an input image file (a 100 MP 16-bit RGBA PNG fits)
MAX_NNC_BYTES = MAX_FILE_BYTES  # a .nnc file (100 MP at 20 bits per pixel fits)


def read_input(path: str, limit: int = MAX_IMAGE_BYTES) -> bytes:
    """The bytes of a file or of stdin ('-'), refused past ``limit`` bytes (reading stops
    there: /dev/zero or an endless pipe end quickly)."""
    name = "stdin" if path == "-" else path
    if path != "-":
        p = Path(path)
        if not p.exists():
            raise InputError(f"{path}: no such file")
        if p.is_dir():
            raise InputError(f"{path}: is a directory, not a file")
    try:
        if path == "-":
            data = sys.stdin.buffer.read(limit + 1)
        else:
            with open(path, "rb") as f:
                data = f.read(limit + 1)
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror})") from None
    if len(data) > limit:
        raise InputError(f"{name}: input is larger than {limit >> 20} MiB; nnc does not "
                         "read inputs that large")
    return data


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into an exception so that temporary files are removed on the way out
    (a KeyboardInterrupt, so that every layer that lets Ctrl-C through lets it through)."""


def _on_sigterm(signum, frame):
    raise Terminated()


def _is_special(p: Path) -> bool:
    """An existing non-regular file (device, FIFO, socket): written into, never replaced."""
    try:
        mode = os.stat(p).st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_output(path: str, data: bytes, force: bool) -> None:
    """Write atomically: a temporary file beside the target, moved into place at the end.

    Without ``force`` the move cannot replace a file that appeared meanwhile (a hard link
    is made, which fails if the name exists). A new file gets the mode the umask allows
    (0666 & ~umask); a replaced one keeps its mode. Devices and FIFOs named as the output
    are written into, never replaced."""
    if path == "-":
        if sys.stdout.isatty():
            raise OutputError("refusing to write binary data to a terminal; "
                              "redirect stdout or name an output file")
        try:
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        except BrokenPipeError:
            # the reader went away: nothing more to write, and nothing to flush at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise OutputError("stdout: the reading end of the pipe closed") from None
        except OSError as e:
            raise OutputError(f"stdout: cannot write ({e.strerror or e})") from None
        return
    p = Path(path)
    if p.is_dir():
        raise OutputError(f"{path}: is a directory")
    if _is_special(p):
        try:
            with open(p, "wb") as f:
                f.write(data)
        except OSError as e:
            raise OutputError(f"{path}: cannot write ({e.strerror or e})") from None
        return
    if p.exists() and not force:
        raise OutputError(f"{path}: already exists (use --force to overwrite)")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"{path}: directory {parent} does not exist")
    try:
        mode = stat.S_IMODE(os.stat(p).st_mode)
    except OSError:
        mode = 0o666 & ~_umask()
    tmp = None
    try:
        # a short name of our own (not the target's: a 255-byte name plus a suffix would
        # be too long), created exclusively; ``tmp`` is set before the file exists, so an
        # interrupt at any point leaves nothing behind
        _remove_stale_parts(parent)
        for _ in range(100):
            tmp = str(parent / f".nnc-{os.getpid()}-{os.urandom(6).hex()}.part")
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                break
            except FileExistsError:
                tmp = None
        else:
            raise OutputError(f"{path}: cannot create a temporary file in {parent}")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        if force:
            os.replace(tmp, p)
        else:
            try:
                os.link(tmp, p)          # atomic: fails if the name exists by now
            except FileExistsError:
                raise OutputError(f"{path}: already exists (use --force to overwrite)") \
                    from None
            except OSError:              # no hard links here (some file systems)
                if p.exists():
                    raise OutputError(f"{path}: already exists (use --force to overwrite)") \
                        from None
                os.replace(tmp, p)
    except OSError as e:
        raise OutputError(f"{path}: cannot write ({e.strerror or e})") from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


_CLEANED: set[str] = set()


def _remove_stale_parts(folder: Path) -> None:
    """Remove temporary files that an nnc killed outright (kill -9, a crash) left in
    ``folder``: their names carry the writer's process id, and only files of processes that
    no longer exist are removed (a running nnc's are left alone). Once per folder and
    process: a batch into one folder lists it once."""
    key = os.path.abspath(folder)
    if key in _CLEANED:
        return
    _CLEANED.add(key)
    try:
        names = [p for p in folder.iterdir() if p.name.startswith(".nnc-")
                 and p.name.endswith(".part")]
    except OSError:
        return
    for p in names:
        try:
            pid = int(p.name.split("-")[1])
        except (IndexError, ValueError):
            continue
        if pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
            continue                      # alive: leave it
        except (ProcessLookupError, OverflowError):
            pass                          # no such process: stale
        except OSError:
            continue                      # someone else's process (EPERM): leave it
        try:
            p.unlink()
        except OSError:
            pass


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif", ".ppm",
                  ".pgm", ".pnm")


def _names_an_output(arg: str, suffix: str) -> bool:
    """Whether a second argument unambiguously names the output: '-', a device or FIFO, or
    for compress a .nnc name, for decompress an image name. ``nnc compress -f *.png`` in a
    folder of two photos must never take the second photo for the output."""
    if arg == "-" or _is_special(Path(arg)):     # /dev/null, a named pipe
        return True
    ext = Path(arg).suffix.lower()
    return ext == ".nnc" if suffix == ".nnc" else ext in IMAGE_SUFFIXES


def plan_outputs(inputs: tuple[str, ...], out_dir: str | None, suffix: str) -> list[tuple[str, str]]:
    """Pairs (input, output) from the positional arguments and -o. A second argument is the
    output only when it says so by its name (:func:`_names_an_output`); otherwise every
    argument is an input, and each output goes beside its input (or into -o DIR)."""
    if not inputs:
        raise click.UsageError("no input given")
    if out_dir is not None:
        d = Path(out_dir)
        if d.exists() and not d.is_dir():
            raise OutputError(f"{out_dir}: exists and is not a directory")
        try:
            d.mkdir(parents=True, exist_ok=True)    # -o outdir/ makes the folder
        except OSError as e:
            raise OutputError(f"{out_dir}: cannot create the output directory "
                              f"({e.strerror or e})") from None
        if "-" in inputs:
            raise click.UsageError("'-' (stdin) cannot be used with -o DIR")
        pairs = [(i, str(d / (Path(i).stem + suffix))) for i in inputs]
    elif len(inputs) == 2 and _names_an_output(inputs[1], suffix):
        pairs = [(inputs[0], inputs[1])]
    else:   # every argument is an input, written beside itself (a glob never names outputs)
        if len(inputs) > 1 and "-" in inputs:
            raise click.UsageError("'-' (stdin) can only be the only input")
        pairs = [(i, "-" if i == "-" else str(Path(i).with_suffix(suffix))) for i in inputs]
    seen: dict[str, str] = {}
    for i, o in pairs:
        if o == "-":
            continue
        if i != "-" and _same_file(i, o):
            raise OutputError(f"{o}: is also the input; name another output")
        key = os.path.abspath(o)
        if key in seen:
            raise OutputError(f"{seen[key]} and {i} would both be written to {o}; "
                              "rename one of them")
        seen[key] = i
    return pairs


def _named(e: Exception, src: str) -> str:
    """An error's message, starting with the input's name (once; an output problem names
    the output instead)."""
    name = "stdin" if src == "-" else src
    msg = str(e)
    if isinstance(e, OutputError) or msg.startswith(f"{name}:"):
        return msg
    return f"{name}: {msg}"


def default_jobs(device: str, check_gpu: bool = True) -> int:
    """Worker processes for a batch: one per usable core on the CPU (each with one torch
    thread), one on a GPU (its device is shared, not its cores)."""
    if device.startswith("cuda") or (device == "auto" and check_gpu):
        from .codec import pick_device
        if pick_device(device) != "cpu":
            return 1
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def _batch(pairs: list[tuple[str, str]], one, opts: dict, desc: str,
           jobs: int | None = None) -> None:
    """Run ``one(src, dst, opts)`` for every pair. One input: its error is the command's.
    Several: every input is tried (by ``jobs`` worker processes), each failure is reported
    on one line as it happens, a summary follows, and the exit code is the first failure's
    (Ctrl-C and SIGTERM stop the batch)."""
    if len(pairs) == 1:
        src = pairs[0][0]
        try:
            one(*pairs[0], opts)
        except NNCError as e:
            if DEBUG:
                raise
            _fail(_named(e, src), e.exit_code)
        return
    # decoding on the CPU (ONNX Runtime) needs no look for a GPU (and no torch)
    check_gpu = opts.get("engine", "torch") == "torch"
    jobs = min(jobs or default_jobs(opts.get("device", "auto"), check_gpu), len(pairs))
    failed: dict[int, int] = {}          # input number -> exit code

    def report(i: int, outcome) -> None:
        if outcome is not None:
            message, code = outcome
            failed[i] = code
            click.echo(f"nnc: error: {message}", err=True)
        if bar is not None:
            bar.update(1)

    bar = _progress_bar(len(pairs), desc)
    try:
        if jobs <= 1:
            for i, (src, dst) in enumerate(pairs):
                report(i, _attempt(one, src, dst, opts))
        else:
            _parallel(pairs, one, opts, jobs, report)
    finally:
        if bar is not None:
            bar.close()
    if failed:
        click.echo(f"nnc: {len(failed)} of {len(pairs)} inputs failed; the other "
                   f"{len(pairs) - len(failed)} were written", err=True)
        sys.exit(failed[min(failed)])    # the first failing input's code, whatever the order


_IN_WORKER = False


def _attempt(one, src: str, dst: str, opts: dict):
    """``one``'s outcome: None when it wrote its output, else (one-line message, exit
    code). Interrupts pass through; in a worker process they end it once the job's
    temporary file is gone (the pool would otherwise start its next queued job)."""
    global _IN_JOB
    _IN_JOB = True
    try:
        one(src, dst, opts)
        return None
    except NNCError as e:
        if DEBUG:
            raise
        return _named(e, src), e.exit_code
    except KeyboardInterrupt as e:
        if _IN_WORKER:
            os._exit(EXIT_TERMINATED if isinstance(e, Terminated) else EXIT_INTERRUPTED)
        raise
    except Exception as e:      # a bug on one input: the batch goes on, and says so
        if DEBUG:
            raise
        return (f"{_named(e, src)} (internal error: {type(e).__name__}; rerun it alone "
                "with --debug for details)", EXIT_INTERNAL)
    finally:
        _IN_JOB = False


_IN_JOB = False


def _on_sigterm_in_worker(signum, frame):
    """In a job: unwind (the temporary file is removed), then _attempt ends the worker;
    between jobs: end it at once."""
    if _IN_JOB:
        raise Terminated()
    os._exit(EXIT_TERMINATED)


def _worker_init(threads: int, debug: bool) -> None:
    global DEBUG, _IN_WORKER
    DEBUG, _IN_WORKER = debug, True
    os.environ["OMP_NUM_THREADS"] = str(threads)   # torch and ONNX Runtime read it
    keep_freed_memory()
    signal.signal(signal.SIGTERM, _on_sigterm_in_worker)   # a terminated batch leaves no .part
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle


def _parallel(pairs, one, opts, jobs: int, report) -> None:
    """``jobs`` worker processes (spawned: torch is not fork-safe), each with its share of
    the cores and its own model; outcomes are reported as they arrive.

    A worker that dies (killed, out of memory) breaks the pool and every job in it: those
    inputs are tried again one at a time, each in a fresh worker, so that only an input
    that kills its worker again is reported. On Ctrl-C or SIGTERM the workers are
    terminated (each removes its temporary file and exits) before this returns."""
    threads = max(1, default_jobs("cpu", False) // jobs)
    todo = list(range(len(pairs)))
    broken = _run_pool(pairs, todo, one, opts, jobs, threads, report)
    for i in broken:                   # alone, in a fresh worker each
        again = _run_pool(pairs, [i], one, opts, 1, threads, report)
        if again:
            name = "stdin" if pairs[i][0] == "-" else pairs[i][0]
            report(i, (f"{name}: its worker process ended (killed, or out of memory?)",
                       EXIT_INTERNAL))


def _run_pool(pairs, todo, one, opts, jobs: int, threads: int, report) -> list[int]:
    """Run inputs ``todo`` in a pool of ``jobs`` workers; returns those lost to a broken
    pool (the others are reported)."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_worker_init, initargs=(threads, DEBUG))
    lost = []
    try:
        futures = {pool.submit(_attempt, one, *pairs[i], opts): i for i in todo}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in sorted(done, key=futures.get):
                i = futures[f]
                try:
                    outcome = f.result()
                except BrokenProcessPool:
                    lost.append(i)
                    continue
                except Exception as e:
                    outcome = (f"{_named(e, pairs[i][0])} (in a worker process: "
                               f"{type(e).__name__})", EXIT_INTERNAL)
                report(i, outcome)
    except BaseException:
        for p in list(getattr(pool, "_processes", {}).values()):
            try:
                p.terminate()          # SIGTERM: each worker removes its .part and exits
            except Exception:
                pass
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return sorted(lost)


def _progress_bar(total: int, desc: str):
    if sys.stderr.isatty() and total > 1:
        from tqdm import tqdm
        return tqdm(total=total, desc=desc, unit="image", file=sys.stderr)
    return None


def _run(fn):
    """Run a command body: user errors become one line on stderr and an exit code."""
    try:
        fn()
    except NNCError as e:
        if DEBUG:
            raise
        _fail(str(e), e.exit_code)
    except Terminated:
        click.echo("nnc: terminated", err=True)
        sys.exit(EXIT_TERMINATED)
    except KeyboardInterrupt:
        click.echo("nnc: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.exceptions.ClickException:
        raise
    except SystemExit:
        raise
    except ModuleNotFoundError as e:
        if DEBUG or e.name != "torch":
            raise
        _fail("this needs PyTorch, which is not installed here (decoding does not: a "
              "decoder-only install); install it with 'pip install torch'", 6)
    except BaseException as e:   # a bug: say so in one line unless --debug (BaseException
        # too: native extensions report panics that way)
        if DEBUG:
            raise
        if isinstance(e, MemoryError) or (isinstance(e, RuntimeError) and (
                "can't allocate memory" in str(e) or "out of memory" in str(e).lower())):
            _fail("out of memory: this machine cannot hold the image (try a smaller one, "
                  "or lower --max-pixels to refuse such inputs early)", EXIT_INTERNAL)
        _fail(f"internal error: {type(e).__name__}: {e} (rerun with --debug for details)",
              EXIT_INTERNAL)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="nnc")
@click.option("--debug", is_flag=True, help="Show Python tracebacks on errors.")
def main(debug: bool) -> None:
    """nnc: a neural image codec that sends samples, not quantized latents."""
    global DEBUG
    DEBUG = debug
    keep_freed_memory()
    configure_threads()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)


_device = click.option("--device", default="auto", show_default=True,
                       help="cpu, cuda, or auto (cuda when present).")
_force = click.option("-f", "--force", is_flag=True, help="Overwrite existing outputs.")
_outdir = click.option("-o", "--output-dir", "out_dir", type=click.Path(file_okay=False),
                       help="Write outputs into this directory (for several inputs).")
_jobs = click.option("-j", "--jobs", type=click.IntRange(min=1), default=None,
                     help="Worker processes for several inputs. [default: the CPU cores; "
                          "1 on a GPU]")


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
@click.option("--model", "model_name", default=None, help="Model name (default: shipped).")
@click.option("--max-pixels", type=click.IntRange(min=1), default=100_000_000,
              show_default=True, help="Refuse images with more pixels than this.")
@_device
@_force
@_jobs
def compress(paths, out_dir, quality, bpp, refine_steps, seed, model_name, max_pixels, device,
             force, jobs):
    """Compress images (PNG, ...) to .nnc.

    \b
    nnc compress in.png out.nnc      one file
    nnc compress in.png              writes in.nnc
    nnc compress *.png -o outdir/    several files (-j N: N at a time)
    nnc compress - - < in.png > out.nnc
    """
    if quality is not None and bpp is not None:
        raise click.UsageError("give --quality or --bpp, not both")
    _check_setup(device, model_name)
    opts = dict(quality=0.5 if quality is None else quality, bpp=bpp, seed=seed,
                refine_steps=refine_steps, model_name=model_name, max_pixels=max_pixels,
                device=device, force=force)
    _run(lambda: _batch(plan_outputs(paths, out_dir, ".nnc"), _compress_one, opts,
                        "compress", jobs))


def _check_setup(device: str, model_name: str | None = None) -> None:
    """A device named outright must exist, and a model named must be installed: checked
    once, before any input is read."""
    def check():
        if model_name is not None:
            from .codes import manifest, missing_model
            from .errors import ModelError
            m = manifest()
            if model_name not in m["models"]:
                raise ModelError(missing_model(model_name, m))
        if device not in ("auto", "cpu"):     # cpu is always there (and needs no torch)
            from .codec import pick_device
            pick_device(device)
    _run(check)


def _refuse_existing(dst: str, force: bool) -> None:
    if dst != "-" and not force and Path(dst).exists() and not _is_special(Path(dst)):
        raise OutputError(f"{dst}: already exists (use --force to overwrite)")


@contextlib.contextmanager
def _importing():
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


def _compress_one(src: str, dst: str, o: dict) -> None:
    with _importing():
        from . import codec, ratecontrol
        from .image_io import read_image
    _refuse_existing(dst, o["force"])
    steps = o["refine_steps"]
    settings = codec.default_settings(o["device"]) if steps is None else codec.refined(steps)
    try:
        img = read_image(read_input(src), max_pixels=o["max_pixels"])
    except InputError as e:
        raise InputError(_named(e, src)) from None
    common = dict(seed=o["seed"], model_name=o["model_name"], device=o["device"],
                  settings=settings)
    if o["bpp"] is not None:
        bpp = o["bpp"]
        data, _ = ratecontrol.compress_to_bpp(img, bpp, **common)
        got = 8 * len(data) / (img.rgb.shape[0] * img.rgb.shape[1])
        if abs(got / bpp - 1) > 0.05:
            click.echo(f"nnc: note: {src}: {bpp:g} bpp is out of reach for this "
                       f"model; wrote {got:.3f} bpp", err=True)
    else:
        data = codec.compress(img, quality=o["quality"], **common)
    write_output(dst, data, o["force"])


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(allow_dash=True))
@_outdir
@click.option("--max-pixels", type=click.IntRange(min=1), default=100_000_000,
              show_default=True, help="Refuse files that declare more pixels than this.")
@click.option("--engine", type=click.Choice(["auto", "onnx", "torch"]), default="auto",
              show_default=True, help="Run the networks on ONNX Runtime (no torch: fast "
              "start) or torch; auto: ONNX Runtime on the CPU (torch for images over 16 MP, "
              "when installed), torch with --device cuda.")
@_device
@_force
@_jobs
def decompress(paths, out_dir, max_pixels, engine, device, force, jobs):
    """Decompress .nnc files to PNG.

    \b
    nnc decompress in.nnc out.png
    nnc decompress *.nnc -o outdir/
    """
    if engine == "onnx" and device not in ("auto", "cpu"):
        raise click.UsageError("--engine onnx runs on the CPU: drop --device or use --engine "
                               "torch")
    _check_setup(device)
    opts = dict(max_pixels=max_pixels, device=device, force=force, engine=engine)
    _run(lambda: _batch(plan_outputs(paths, out_dir, ".png"), _decompress_one, opts,
                        "decompress", jobs))


def _decompress_one(src: str, dst: str, o: dict) -> None:
    from .codes import read_codes
    from .image_io import encode_for
    _refuse_existing(dst, o["force"])
    # every check on the file's integers first, without torch: a bad file is refused in
    # milliseconds and with little memory
    codes = read_codes(read_input(src, MAX_NNC_BYTES), o["max_pixels"])
    with _importing():
        from .decoder import decompress as decode, import_engine
        import_engine(codes, o["device"], o["engine"])
    img = decode(codes, device=o["device"], engine=o["engine"])
    try:
        out = encode_for(img, dst)
    except ValueError as e:
        raise OutputError(str(e)) from None
    write_output(dst, out, o["force"])


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def models(as_json):
    """List the installed models and the range of rates they cover."""
    def body():
        from .codes import manifest
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
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def info(paths, as_json):
    """Print the header of .nnc files and where the bits went."""
    def body():
        from .info import describe, format_text
        reports, failed = [], []
        for p in paths:      # every file is reported; a bad one is one line on stderr
            try:
                reports.append(describe(read_input(p, MAX_NNC_BYTES), p))
            except NNCError as e:
                if DEBUG:
                    raise
                failed.append(e.exit_code)
                click.echo(f"nnc: error: {_named(e, p)}", err=True)
                continue
            if not as_json:
                click.echo(("\n" if len(reports) > 1 else "") + format_text(reports[-1]),
                           nl=False)
        if as_json and reports:
            click.echo(json.dumps(reports if len(paths) > 1 else reports[0], indent=2))
        if failed:
            sys.exit(failed[0])
    _run(body)


from .train import RECIPE  # noqa: E402  (torch-free: the defaults of `nnc train`)


@main.command()
@click.argument("data", type=click.Path(exists=True, file_okay=False))
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--steps", type=click.IntRange(min=1), default=RECIPE.steps, show_default=True)
@click.option("--batch", type=click.IntRange(min=1), default=RECIPE.batch, show_default=True,
              help="Images per step, over all processes (torchrun: a multiple of their "
                   "number).")
@click.option("--crop", type=click.IntRange(min=64), default=RECIPE.crop, show_default=True)
@click.option("--lr", type=float, default=RECIPE.lr, show_default=True)
@click.option("--warmup", type=click.IntRange(min=1), default=RECIPE.warmup, show_default=True,
              help="KL warm-up steps.")
@click.option("--resume", is_flag=True, help="Continue from OUT/ckpt.pt.")
@click.option("--time-limit", type=click.FloatRange(min=0), default=None,
              help="Seconds the whole command may take, --export included: training stops "
                   "early enough (with a checkpoint).")
@click.option("--likelihood", type=click.Choice(["gaussian", "laplace"]),
              default=RECIPE.likelihood, show_default=True,
              help="Distortion term: Gaussian (MSE) or Laplace (L1).")
@click.option("--init", "init", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Fine-tune: start from this checkpoint (its steps count on).")
@click.option("--lambda-range", nargs=2, type=click.FloatRange(min=1e-6), default=None,
              help="Rate-distortion weights at quality 0 and 1 (default "
                   f"{RECIPE.lambda_min} {RECIPE.lambda_max}).")
@click.option("--lambda-power", type=float, default=RECIPE.lambda_power, show_default=True,
              help="Scale each image's loss by (lambda_ref/lambda)^P, so that all rates "
                   "train (0: plain sum).")
@click.option("--arch", default=None, metavar="N,M,F,G",
              help="Channels of a new model: main transforms, level-1 latents, level-2 "
                   f"transforms, level-2 latents (default {RECIPE.arch}).")
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the training step.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads for torch.")
@click.option("--log-every", type=click.IntRange(min=1), default=50, show_default=True,
              help="Steps between rows of OUT/log.csv (also a row every 10 s, the first "
                   "step's and the last).")
@click.option("--export", "export_name", default=None,
              help="When done, install the model into weights/ under this new name (use "
                   "it with --model NAME).")
@click.option("--make-default", is_flag=True,
              help="With --export: make the new model the default for compress.")
@_device
def train(data, out, steps, batch, crop, lr, warmup, resume, time_limit, likelihood, init,
          lambda_range, lambda_power, arch, compile_, threads, log_every, export_name,
          make_default, device):
    """Train (or fine-tune) a PLN on a folder of images.

    The defaults are the recipe of the shipped model pln-gpu-1. Several GPUs or machines:
    start it with torchrun (README, "Training on several GPUs or machines")."""
    def body():
        import time
        t_start = time.monotonic()
        from .model.weights import check_new_model_name
        from .train import dist_env
        rank, world, _ = dist_env()
        if make_default and not export_name:
            raise click.UsageError("--make-default needs --export NAME")
        if batch % world:
            raise click.UsageError(f"--batch {batch} does not split over {world} processes: "
                                   f"use a multiple of {world}")
        if export_name:          # before hours of training, not after
            check_new_model_name(export_name)
        import torch
        from . import codec
        from .model.pln import PLNConfig
        from .train import export_run, plan_export, run_config, table_images
        from .train import train as run_train
        if threads:
            torch.set_num_threads(threads)
        cfg = RECIPE.config()
        if arch:
            try:
                cfg = cfg.with_arch(arch)
            except ValueError:
                raise click.UsageError("--arch takes four positive integers, N,M,F,G") from None
        if lambda_range:
            lo, hi = lambda_range
            if not lo < hi:
                raise click.UsageError("--lambda-range: the first value must be below the second")
            cfg = PLNConfig(**{**cfg.to_dict(), "lambda_min": lo, "lambda_max": hi})
        dev = codec.pick_device(device)
        tty = sys.stderr.isatty()

        def say(message: str) -> None:
            if rank == 0:
                click.echo(f"nnc: {message}", err=True)

        images, export_s = [], 0.0
        if export_name and rank == 0:
            images = table_images(Path(data))
            if time_limit is not None:   # the export's time is kept out of training's
                run_cfg = run_config(Path(out), resume, Path(init) if init else None, cfg)[2]
                images, export_s = plan_export(run_cfg, images, time_limit)
                say(f"--time-limit {time_limit:g} s includes the export, about "
                    f"{export_s:.0f} s (a shard table from {len(images)} images): training "
                    "stops early enough")
        limit = None
        if time_limit is not None:   # 1 s left for the end (startup: ~0.3 s before this)
            limit = time_limit - (time.monotonic() - t_start) - export_s - 1.0
            if limit <= 0:
                say("--time-limit leaves no time to train: one step only")
        if rank == 0 and world > 1:
            say(f"{world} processes, {batch // world} images each per step")
        ckpt = run_train(Path(data), Path(out), steps, batch=batch, crop=crop, lr=lr,
                         warmup=warmup, resume=resume, device=dev, cfg=cfg,
                         likelihood=likelihood, init=Path(init) if init else None,
                         progress=tty, report=None if tty else say, time_limit_s=limit,
                         lambda_power=lambda_power, compile=compile_, log_every=log_every)
        if rank != 0:
            return
        last = (Path(out) / "log.csv").read_text().splitlines()[-1].split(",")[0]
        say(f"checkpoint {ckpt} (step {last}; {time.monotonic() - t_start:.0f} s so far)")
        if export_name:
            deadline = None if time_limit is None else t_start + time_limit - 0.5
            export_run(ckpt, export_name, images, {"training_data": str(data)}, make_default,
                       say, tty, deadline)
            say(f"installed model {export_name!r}"
                + (" (now the default)" if make_default else
                   f"; use it with --model {export_name}"))
    _run(body)


if __name__ == "__main__":
    main()

"""Inputs read with a limit, and outputs written safely: whole or not at all, never
clobbered without --force, devices and FIFOs written into, stale temporaries removed; and
the plan of which input goes to which output."""
from __future__ import annotations

import errno
import os
import stat
import sys
from pathlib import Path

import click

from ..container import MAX_FILE_BYTES
from ..errors import InputError, OutputError
from ..image_io import MAX_IMAGE_BYTES


MAX_NNC_BYTES = MAX_FILE_BYTES  # a .nnc file (100 MP at 20 bits per pixel fits)


def read_input(path: str, limit: int = MAX_IMAGE_BYTES) -> bytes:
    """The bytes of a file or of stdin ('-'), refused past ``limit`` bytes (reading stops
    there: /dev/zero or an endless pipe end quickly)."""
    name = "stdin" if path == "-" else path
    if path != "-":
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise InputError(f"{path}: no such file") from None
        except OSError as e:          # a name too long, a loop of links...
            raise InputError(f"{path}: cannot read ({e.strerror or e})") from None
        if stat.S_ISDIR(st.st_mode):
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


def _names_an_output(arg: str, suffix: str) -> bool:
    """Whether a second argument unambiguously names the output: '-', a device or FIFO, or
    for compress a .nnc name, for decompress a name whose extension Pillow writes (its
    plugins included: .avif where Pillow has AVIF). ``nnc compress -f *.png`` in a folder of
    two photos must never take the second photo for the output."""
    if arg == "-" or _is_special(Path(arg)):     # /dev/null, a named pipe
        return True
    ext = Path(arg).suffix.lower()
    if suffix == ".nnc" or ext in ("", ".nnc"):
        return ext == suffix
    from ..image_io import output_format
    return output_format(arg) is not None


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
        _check_output_name(o)
        if i != "-" and _same_file(i, o):
            raise OutputError(f"{o}: is also the input; name another output")
        key = os.path.abspath(o)
        if key in seen:
            raise OutputError(f"{seen[key]} and {i} would both be written to {o}; "
                              "rename one of them")
        seen[key] = i
    return pairs


def _check_output_name(path: str) -> None:
    """An output name the system cannot use at all (too long: ENAMETOOLONG) is an output
    problem, found before any work."""
    try:
        os.lstat(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        if e.errno in (errno.ENAMETOOLONG, errno.ELOOP, errno.EINVAL):
            raise OutputError(f"{path}: cannot write ({e.strerror or e})") from None

"""Where inputs come from and outputs go: local paths or fsspec URLs (s3://, gs://, ...).
Inputs are read with a limit; outputs are written whole or not at all, never clobbered
without --force, devices and FIFOs written into, stale temporaries removed. fsspec is
imported only for a URL."""
from __future__ import annotations

import errno
import os
import re
import stat
import sys
from pathlib import Path

from .container import MAX_FILE_BYTES
from .errors import InputError, OutputError
from .image_io import MAX_IMAGE_BYTES


MAX_NNC_BYTES = MAX_FILE_BYTES  # a .nnc file (100 MP at 20 bits per pixel fits)

def read_input(path: str, limit: int = MAX_IMAGE_BYTES) -> bytes:
    """The bytes of a file or of stdin ('-'), refused past ``limit`` bytes (reading stops
    there: /dev/zero or an endless pipe end quickly)."""
    name = "stdin" if path == "-" else path
    if is_url(path):
        return _read_url(path, limit)
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
    return _within(data, name, limit)


def _within(data: bytes, name: str, limit: int) -> bytes:
    """``data``, read up to ``limit`` + 1 bytes, unless it went past ``limit``."""
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
            # a write into a pipe can take only part of the data (the reader left in the
            # middle, a signal): the rest is written again, or its error raised
            view = memoryview(data).cast("B")
            while view:
                n = sys.stdout.buffer.write(view)
                view = view[len(view) if n is None else n:]
            sys.stdout.buffer.flush()
        except BrokenPipeError:
            # the reader went away: nothing more to write, and nothing to flush at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise OutputError("stdout: the reading end of the pipe closed") from None
        except OSError as e:
            raise OutputError(f"stdout: cannot write ({e.strerror or e})") from None
        return
    if is_url(path):
        _write_url(path, data, force)
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
    sweep_parts(folder)


def sweep_parts(folder: Path) -> None:
    """Remove the temporary files in ``folder`` of writers that no longer exist (on this
    machine): a batch does so at its end in every folder it wrote, for the workers that
    were killed mid-write."""
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
            if not _zombie(pid):
                continue                  # alive: leave it
        except (ProcessLookupError, OverflowError):
            pass                          # no such process: stale
        except OSError:
            continue                      # someone else's process (EPERM): leave it
        try:
            p.unlink()
        except OSError:
            pass



def _zombie(pid: int) -> bool:
    """Whether ``pid`` has ended but not yet been waited for (a killed worker whose parent
    has not reaped it yet); False where /proc does not say."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


# --- URLs (fsspec) --------------------------------------------------------------------

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(path: str) -> bool:
    """Whether ``path`` names a file through fsspec (s3://bucket/key, gs://..., file://...)."""
    return isinstance(path, str) and bool(_URL.match(path))


def _fs(url: str):
    """fsspec's filesystem for ``url`` and the path within it."""
    try:
        import fsspec
    except ModuleNotFoundError:
        raise InputError(f"{url}: URLs need fsspec (pip install 'nnc[cluster]')") from None
    try:
        return fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as e:      # s3:// without s3fs, an unknown protocol
        raise InputError(f"{url}: {e}") from None


def _read_url(url: str, limit: int) -> bytes:
    fs, path = _fs(url)
    try:
        with fs.open(path, "rb") as f:
            data = f.read(limit + 1)
    except FileNotFoundError:
        raise InputError(f"{url}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{url}: is a directory, not a file") from None
    except OSError as e:
        raise InputError(f"{url}: cannot read ({e.strerror or e})") from None
    return _within(data, url, limit)


# object stores: an upload appears whole when it completes, or not at all
_OBJECT_STORES = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "memory"}


def _write_url(url: str, data: bytes, force: bool) -> None:
    """Whole or not at all: one upload on an object store, elsewhere a temporary name
    beside the target, moved into place. Without ``force`` an existing target is refused
    (checked before the upload: object stores have no exclusive create)."""
    fs, path = _fs(url)
    protocols = {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)
    try:
        if not force and fs.exists(path):
            raise OutputError(f"{url}: already exists (use --force to overwrite)")
        if protocols & _OBJECT_STORES:
            fs.pipe_file(path, data)
            return
        parent, name = path.rsplit("/", 1) if "/" in path else ("", path)
        tmp = f"{parent}/.nnc-{os.getpid()}-{os.urandom(6).hex()}.part"
        try:
            fs.pipe_file(tmp, data)
            fs.mv(tmp, path)
        finally:
            if fs.exists(tmp):
                fs.rm(tmp)
    except OSError as e:
        raise OutputError(f"{url}: cannot write ({e.strerror or e})") from None


def open_read(path: str):
    """A binary file object for a local path or a URL (resume.py reads outputs with it)."""
    if is_url(path):
        fs, p = _fs(path)
        return fs.open(p, "rb")
    return open(path, "rb")


def size(path: str) -> int | None:
    """A file's size in bytes (local or URL), None when it cannot be had."""
    try:
        if is_url(path):
            fs, p = _fs(path)
            return int(fs.size(p))
        return os.path.getsize(path)
    except (OSError, ValueError, TypeError, InputError):
        return None


def check_writable(path: str) -> None:
    """OutputError unless a file could be written at ``path``: a local path's folder must
    exist and the path must not be a folder (URLs are not asked: a request each). For the
    manifest, checked before a batch's work rather than after it."""
    if path == "-" or is_url(path):
        return
    p = Path(path)
    if p.is_dir():
        raise OutputError(f"{path}: is a directory")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"{path}: directory {parent} does not exist")


def exists(path: str) -> bool:
    if is_url(path):
        fs, p = _fs(path)
        return fs.exists(p)
    return Path(path).exists()


def walk(root: str) -> list[str]:
    """Every file under the directory ``root``, recursively, sorted: local paths, or URLs
    with ``root``'s protocol."""
    if not is_url(root):
        return sorted(str(Path(d) / n) for d, _, names in os.walk(root) for n in names)
    fs, p = _fs(root)
    proto = root.split("://", 1)[0]
    return sorted(f"{proto}://{f}" for f in fs.find(p))


def join(folder: str, relative: str) -> str:
    """``relative`` (with / between its parts) under ``folder``, a path or a URL."""
    if is_url(folder):
        return folder.rstrip("/") + "/" + relative
    return str(Path(folder, *relative.split("/")))


def relative_to(path: str, root: str) -> str:
    """``path``'s name under ``root`` with / between its parts."""
    if is_url(path):
        return path[len(root.rstrip("/")) + 1:]
    return Path(path).relative_to(root).as_posix()


def makedirs(folder: str) -> None:
    """A local folder and its parents (object stores have none to make)."""
    if is_url(folder):
        return
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{folder}: cannot create the output directory "
                          f"({e.strerror or e})") from None


def same_file(a: str, b: str) -> bool:
    if is_url(a) or is_url(b):
        return a == b
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def check_output_name(path: str) -> None:
    """An output name the system cannot use at all (too long: ENAMETOOLONG) is an output
    problem, found before any work."""
    if is_url(path):
        return
    try:
        os.lstat(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        if e.errno in (errno.ENAMETOOLONG, errno.ELOOP, errno.EINVAL):
            raise OutputError(f"{path}: cannot write ({e.strerror or e})") from None

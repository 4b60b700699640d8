"""Errors and exit codes of the command line: one line on stderr per error (the traceback
only with --debug), warnings as one line each, SIGTERM as an exception that unwinds.

Exit codes (README, "Exit codes"): 0 ok, 1 internal error, 2 usage, 3 unreadable input,
4 corrupt or unsupported .nnc, 5 output problem, 6 model or weights problem, 130
interrupted, 143 terminated.
"""
from __future__ import annotations

import sys

import click

from ..convert import named as _named  # noqa: F401
from ..errors import NNCError, OutputError, Terminated, one_line  # noqa: F401


EXIT_INTERNAL, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 1, 2, 130, 143
DEBUG = False


def _fail(message: str, code: int) -> None:
    click.echo(f"nnc: error: {one_line(message)}", err=True)
    sys.exit(code)


def _warn(message: str) -> None:
    click.echo(f"nnc: warning: {one_line(message)}", err=True)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Python warnings (nnc's, Pillow's, a library's) as one "nnc: warning:" line each,
    without the source line and path Python's default adds."""
    _warn(str(message))


def leave(code) -> None:
    """End the process with ``code`` (a SystemExit's: None, a number, or a message for
    stderr and 1). Where nothing needs it, without the interpreter's teardown, which frees
    every module's objects one by one: 0.12 s after `nnc compress` (torch's), 0.02 s after
    `nnc decompress`. Outputs are written whole before a command returns (nnc/storage.py);
    what still needs the teardown is a live thread, a process pool or Dask client that was
    made, or a torch process group (nnc train)."""
    import os
    if isinstance(code, str):
        click.echo(code, err=True)
        code = 1
    code = 0 if code is None else code
    if not isinstance(code, int) or _needs_teardown():
        sys.exit(code)
    for stream in (sys.stdout, sys.stderr):
        if stream is None:               # started with the descriptor closed (`>&-`)
            continue
        try:
            stream.flush()
        except (OSError, ValueError):    # a closed pipe: left to the normal exit to report
            sys.exit(code)
    os._exit(code)


def _needs_teardown() -> bool:
    import threading
    if any(t is not threading.current_thread() and not t.daemon and t.is_alive()
           for t in threading.enumerate()):
        return True
    if "concurrent.futures.process" in sys.modules or "distributed" in sys.modules:
        return True       # a pool (nnc/pool.py) or a Dask client (nnc/cluster.py) was made
    mp = sys.modules.get("multiprocessing")
    if mp is not None and mp.active_children():
        return True
    dist = sys.modules.get("torch.distributed")
    return dist is not None and dist.is_available() and dist.is_initialized()


def _on_sigterm(signum, frame):
    raise Terminated()


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
    except BrokenPipeError:
        # stdout's reader went away (`nnc info *.nnc | head`): the one pipe nnc writes to
        # itself; the output writer (nnc/storage.py) says the same for image data
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        _fail("stdout: the reading end of the pipe closed", OutputError.exit_code)
    except click.exceptions.ClickException:
        raise
    except SystemExit:
        raise
    except ModuleNotFoundError as e:
        if DEBUG or e.name != "torch":
            raise
        _fail("this needs PyTorch, which is not installed here (decoding does not: a "
              "decoder-only install); install a CPU build with 'pip install torch "
              "--index-url https://download.pytorch.org/whl/cpu' (pytorch.org lists the "
              "CUDA builds)", 6)
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


class OneLineErrors(click.Group):
    """The nnc group, its usage errors (a bad option or value, a missing argument) said in
    one line, "nnc: error: ... (nnc compress --help)", exit 2, instead of click's usage
    block; the help itself (nnc alone) as click shows it."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True,
             **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        help_asked = getattr(click.exceptions, "NoArgsIsHelpError", ())
        try:
            rv = super().main(args, prog_name, complete_var, False, **extra)
        except help_asked as e:
            e.show()
            sys.exit(e.exit_code)
        except click.UsageError as e:
            where = f" ({e.ctx.command_path} --help)" if e.ctx is not None else ""
            click.echo(f"nnc: error: {one_line(e.format_message())}{where}", err=True)
            sys.exit(e.exit_code)
        except click.ClickException as e:
            click.echo(f"nnc: error: {one_line(e.format_message())}", err=True)
            sys.exit(e.exit_code)
        except click.exceptions.Abort:
            click.echo("nnc: aborted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        sys.exit(rv if isinstance(rv, int) else 0)

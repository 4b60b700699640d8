"""The plan of which input goes to which output: the command line's rules for a second
argument and '-', the rest nnc/batch.py's ``plan``; reading and writing are
nnc/storage.py's."""
from __future__ import annotations

from pathlib import Path

import click

from ..errors import OutputError
from ..storage import (MAX_NNC_BYTES, _is_special, _remove_stale_parts,  # noqa: F401
                       check_output_name, read_input, same_file, write_output)


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
    argument is an input (a directory: its files, recursively), and each output goes
    beside its input (or into -o DIR)."""
    if not inputs:
        raise click.UsageError("no input given")
    if out_dir is not None and "-" in inputs:
        raise click.UsageError("'-' (stdin) cannot be used with -o DIR")
    if out_dir is None and len(inputs) == 2 and _names_an_output(inputs[1], suffix):
        src, dst = inputs
        if dst != "-":
            check_output_name(dst)
            if src != "-" and same_file(src, dst):
                raise OutputError(f"{dst}: is also the input; name another output")
        return [(src, dst)]
    if len(inputs) > 1 and "-" in inputs:
        raise click.UsageError("'-' (stdin) can only be the only input")
    from ..batch import plan
    return plan(inputs, out_dir, suffix)

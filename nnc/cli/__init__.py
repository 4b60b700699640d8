"""The ``nnc`` command line: compress, decompress, info, models, train.

stdout carries only data (an image or .nnc bytes when the output is ``-``, or ``info``'s
report); every human message goes to stderr. Exit codes (README, "Exit codes"):
0 ok, 1 internal error, 2 usage, 3 unreadable input, 4 corrupt or unsupported .nnc,
5 output problem, 6 model or weights problem, 130 interrupted, 143 terminated.

One job per module: ``commands`` (the ``nnc`` group and compress, decompress, models,
info), ``training`` (``nnc train``), ``batch`` (several inputs: failures, summary, manifest),
``output`` (inputs read with a limit, outputs written safely), ``exits`` (errors and exit
codes). ``nnc.cli:run`` is the entry point (``main``, then ``exits.leave``); ``python -m
nnc.cli`` runs it too.
"""
from __future__ import annotations

import os  # noqa: F401  (nnc.cli.os, nnc.cli.sys: the modules the commands write through)
import sys  # noqa: F401

# numpy's BLAS (OpenBLAS) starts a thread per core when numpy is imported, and they spin
# for a while beside the threads that do nnc's work (ONNX Runtime's, torch's): nnc does no
# linear algebra in numpy, so the CLI has it start none (kodim23 decompress: 0.02 s less)
if "numpy" not in sys.modules:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from ..image_io import MAX_IMAGE_BYTES  # noqa: F401
from ..convert import SKIPPED  # noqa: F401
from .batch import _batch, default_jobs  # noqa: F401
from .commands import compress, decompress, info, main, models  # noqa: F401
from .exits import (EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_TERMINATED,  # noqa: F401
                    EXIT_USAGE, Terminated, _run, leave)
from .output import MAX_NNC_BYTES, plan_outputs, read_input, write_output  # noqa: F401
from .training import train  # noqa: F401  (registers `nnc train` with the group)


def run() -> None:
    """The ``nnc`` command (pyproject's entry point; ``python -m nnc.cli``): :data:`main`,
    then :func:`exits.leave` with its exit code."""
    try:
        main(prog_name="nnc")
    except SystemExit as e:
        leave(e.code)
    leave(0)

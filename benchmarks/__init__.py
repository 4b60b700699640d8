"""The benchmarks behind the tables of docs/benchmarks.md and plots (not part of the nnc package).

Run each from the repository root as a module, e.g. ``python -m benchmarks.rd --help``;
``bash benchmarks/all.sh`` runs every one the tables of docs/benchmarks.md come from. Shared helpers are
in :mod:`benchmarks.common`.
"""

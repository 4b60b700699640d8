"""How many threads an nnc process computes with, and how they wait: chosen before torch
or ONNX Runtime starts its thread pools (the CLI calls :func:`configure` first thing).

Both pools busy-wait by default: a thread that finishes its share of a parallel region
spins on a core for the next one. On a machine whose cores are busy with other work those
spinning threads take the cores from the threads that still have work, and a run collapses:
kodim23's compress took 20.5 s of CPU with the default threads against 7.2 s with one
thread on the loaded 2-core machine of issue 29 (benchmarks/results/cpu-paths-load.json).
So threads sleep when idle (OMP_WAIT_POLICY=PASSIVE; ONNX Runtime's allow_spinning=0), and
the process takes only the cores that are free when it starts. On a quiet machine neither
changes the bytes written (kodim23: identical files with 1 and 2 threads, either policy).

A user's own OMP_NUM_THREADS or OMP_WAIT_POLICY is kept.
"""
from __future__ import annotations

import os


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def runnable_others() -> int:
    """Processes and threads other than this one that are running or ready to run now
    (/proc/loadavg's fourth field counts them, this reader included); 0 where unknown."""
    try:
        with open("/proc/loadavg") as f:
            running = int(f.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return 0
    return max(0, running - 1)


def free_cores() -> int:
    """The usable cores not taken by other runnable work now, at least 1."""
    cores = usable_cores()
    return max(1, min(cores, cores - runnable_others()))


def intra_op_threads() -> int:
    """OMP_NUM_THREADS's first number when set (OpenMP allows "4,2"), else the free cores."""
    try:
        return max(1, int(os.environ.get("OMP_NUM_THREADS", "").split(",")[0]))
    except ValueError:
        return free_cores()


def configure() -> None:
    """Set this process's thread count and wait policy for OpenMP (torch, oneDNN, MKL) and
    ONNX Runtime (nnc/decoder.py reads them), unless the user set them. Effective only
    before torch is imported."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if not os.environ.get("OMP_NUM_THREADS", "").strip():
        os.environ["OMP_NUM_THREADS"] = str(free_cores())

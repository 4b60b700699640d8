"""How many threads an nnc process computes with, and how they wait: chosen before torch
or ONNX Runtime starts its thread pools (the CLI calls :func:`configure` first thing).

Both pools busy-wait by default: a thread that finishes its share of a parallel region
spins on a core for the next one. On a machine whose cores are busy with other work those
spinning threads take the cores from the threads that still have work, and a run collapses:
kodim23's compress took 20.5 s of CPU with the default threads against 7.2 s with one
thread on the loaded 2-core machine of issue 29 (benchmarks/results/cpu-paths-load.json).
So idle threads spin only briefly before they sleep, and the process takes only the cores
that are free when it starts. Sleeping at once (OMP_WAIT_POLICY=PASSIVE) cost 10-15% on a
quiet machine (kodim23 float32 compress, 2 threads: 5.45-5.93 s); a spin of 3000 rounds
(GOMP_SPINCOUNT, GNU OpenMP's, which torch's Linux wheels use) keeps most of spinning's
speed (5.01-5.49 s; unbounded spinning 5.10-5.30 s) and, beside a competing CPU-bound
process, costs 1.1-1.2x of sleeping (9.20-9.38 s against 8.12-8.47 s; 100,000 rounds: up to
19.6 s). Other OpenMP runtimes (LLVM's, Intel's) sleep at once (KMP_BLOCKTIME=0); ONNX
Runtime's threads do not spin (allow_spinning=0: no measurable cost on the decoder). Neither
changes the bytes written (kodim23: identical files with 1 and 2 threads, any policy).

A user's own OMP_NUM_THREADS, OMP_WAIT_POLICY, GOMP_SPINCOUNT or KMP_BLOCKTIME is kept.
"""
from __future__ import annotations

import os
import time


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def runnable_others() -> int:
    """Processes and threads of other processes that are running or ready to run now
    (/proc/loadavg's fourth field counts them, this process's own included); 0 where
    unknown. This process's own runnable threads are left out: numpy's OpenBLAS threads
    spin for a while after `import numpy`, and counted as other work they made a process
    that configured its threads early take one core of two on a quiet machine."""
    try:
        with open("/proc/loadavg") as f:
            running = int(f.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return 0
    return max(0, running - own_runnable())


def own_runnable() -> int:
    """This process's threads that are running or ready to run (/proc/self/task), at least
    1: the one reading."""
    count = 0
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return 1
    for task in tasks:
        try:
            with open(f"/proc/self/task/{task}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        if stat[stat.rindex(")") + 2:].startswith("R"):
            count += 1
    return max(1, count)


RECHECKS = 2           # further looks at other runnable work when the first sees some ...
RECHECK_GAP_S = 0.002  # ... this far apart: the least seen counts


def free_cores() -> int:
    """The usable cores not taken by other runnable work now, at least 1. Work seen once
    is looked for again (RECHECKS, RECHECK_GAP_S apart) and only what stays counts: on a
    quiet 2-core VM a kernel thread shows as runnable in ~1% of single looks, which halved
    a process's threads (kodim23 compress 5.0 s instead of 3.4 s); a competing process
    shows in every look."""
    cores = usable_cores()
    others = runnable_others()
    for _ in range(RECHECKS):
        if others == 0:
            break
        time.sleep(RECHECK_GAP_S)
        others = min(others, runnable_others())
    return max(1, min(cores, cores - others))


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
    wait_policy(os.environ)
    if not os.environ.get("OMP_NUM_THREADS", "").strip():
        os.environ["OMP_NUM_THREADS"] = str(free_cores())


SPIN_ROUNDS = 3000   # GOMP_SPINCOUNT: an idle thread's spin before it sleeps (see above)


def wait_policy(env) -> None:
    """How idle OpenMP threads wait, set in ``env`` (a process's environment, before its
    OpenMP starts) unless the user chose: a short spin, then sleep."""
    if any(env.get(k, "").strip() for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT",
                                             "KMP_BLOCKTIME")):
        return
    env["GOMP_SPINCOUNT"] = str(SPIN_ROUNDS)
    env["KMP_BLOCKTIME"] = "0"


def for_worker(threads: int) -> None:
    """A batch worker's networks on ``threads`` threads (nnc/pool.py, nnc/cluster.py):
    torch's pool when torch already runs in the process, else the environment that torch
    and ONNX Runtime read when they start, with the wait policy."""
    import sys
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    wait_policy(os.environ)

"""A batch's shards on this machine: worker processes (``-j``), each with its share of the
cores and its own model; Ctrl-C, SIGTERM and a killed parent leave no temporary file.

The work itself is nnc/convert.py's ``run_shard``, as on a Dask cluster (nnc/cluster.py).
"""
from __future__ import annotations

import os
import signal
import threading
import warnings

from .convert import failed_row, run_shard
from .errors import Terminated
from .malloc import keep_freed_memory
from .threads import for_worker, usable_cores

EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143


def default_jobs(device: str, check_gpu: bool = True) -> int:
    """Worker processes for a batch: one per usable core on the CPU (each with one torch
    thread), one on a GPU (its device is shared, not its cores)."""
    if device.startswith("cuda") or (device == "auto" and check_gpu):
        from .codec import pick_device
        if pick_device(device) != "cpu":
            return 1
    return usable_cores()


_IN_WORKER = False
_IN_JOB = False


def _job(one, shard, opts: dict, debug: bool) -> list[dict]:
    """A shard in a worker process. Interrupts end the worker once the job's temporary file
    is gone (the pool would otherwise start its next queued job)."""
    global _IN_JOB
    _IN_JOB = True
    try:
        return run_shard(one, shard, opts, debug)
    except KeyboardInterrupt as e:
        if _IN_WORKER:
            os._exit(EXIT_TERMINATED if isinstance(e, Terminated) else EXIT_INTERRUPTED)
        raise
    finally:
        _IN_JOB = False


def _on_sigterm_in_worker(signum, frame):
    """In a job: unwind (the temporary file is removed), then _job ends the worker; between
    jobs: end it at once."""
    if _IN_JOB:
        raise Terminated()
    os._exit(EXIT_TERMINATED)


def _worker_init(threads: int, parent: int | None, show_warning=None) -> None:
    global _IN_WORKER
    _IN_WORKER = True
    for_worker(threads)
    keep_freed_memory()
    signal.signal(signal.SIGTERM, _on_sigterm_in_worker)   # a terminated batch leaves no .part
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    if show_warning is not None:
        warnings.showwarning = show_warning
    if parent is not None:
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True,
                         name="nnc-parent-watch").start()


PARENT_POLL_S = 0.1      # how often a worker looks for its parent
PARENT_GRACE_S = 0.5     # after that, how long it has to remove its temporary file


def _watch_parent(parent: int) -> None:
    """A worker's watch over the batch's process: when it is gone (``kill -9``: it could
    not terminate its workers), the worker stops as on SIGTERM, removing its temporary
    file, and ends outright if that has not happened within PARENT_GRACE_S (a long
    native call): within a second either way, instead of finishing the batch for nobody.
    A dead parent shows as a changed parent process id (the orphan is re-parented); the
    watch polls it, which works on every POSIX system."""
    import time
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(PARENT_GRACE_S)
    os._exit(EXIT_TERMINATED)


def run(shards: list[list[tuple[str, str]]], one, opts: dict, jobs: int, report,
        debug: bool = False, show_warning=None) -> None:
    """``report(rows)`` for every shard, as they arrive, from ``jobs`` worker processes
    (spawned: torch is not fork-safe).

    A worker that dies (killed, out of memory) breaks the pool and every shard in it: their
    inputs are tried again one at a time, each in a fresh worker, so that only an input
    that kills its worker again is reported. On Ctrl-C or SIGTERM the workers are
    terminated (each removes its temporary file and exits) before this returns."""
    threads = max(1, usable_cores() // jobs)
    args = (one, opts, threads, debug, show_warning, report)
    lost = _run_pool(shards, jobs, *args)
    for pair in (p for shard in lost for p in shard):      # alone, in a fresh worker each
        if _run_pool([[pair]], 1, *args):
            src = "stdin" if pair[0] == "-" else pair[0]
            report([failed_row(*pair, f"{src}: its worker process ended (killed, or out of "
                                      "memory?)")])


def _run_pool(shards, jobs: int, one, opts, threads: int, debug: bool, show_warning,
              report) -> list:
    """Run ``shards`` in a pool of ``jobs`` workers; returns those lost to a broken pool
    (the others are reported)."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_worker_init,
                               initargs=(threads, os.getpid(), show_warning))
    lost = []
    try:
        futures = {pool.submit(_job, one, shard, opts, debug): i
                   for i, shard in enumerate(shards)}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in sorted(done, key=futures.get):
                shard = shards[futures[f]]
                try:
                    rows = f.result()
                except BrokenProcessPool:
                    lost.append(shard)
                    continue
                except Exception as e:
                    rows = [failed_row(s, d, f"{s}: {e} (in a worker process: "
                                                f"{type(e).__name__})") for s, d in shard]
                report(rows)
    except BaseException:
        for p in list(getattr(pool, "_processes", {}).values()):
            try:
                p.terminate()          # SIGTERM: each worker removes its .part and exits
            except Exception:
                pass
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return lost

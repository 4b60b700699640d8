"""Batches: every input tried, in worker processes (-j), each failure one line, a summary
at the end; Ctrl-C, SIGTERM and a killed parent leave no temporary file."""
from __future__ import annotations

import os
import signal
import sys
import threading
import warnings

import click

from ..errors import NNCError, one_line
from ..malloc import keep_freed_memory
from . import exits
from .exits import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_TERMINATED, Terminated, _fail, _named, _show_warning


def default_jobs(device: str, check_gpu: bool = True) -> int:
    """Worker processes for a batch: one per usable core on the CPU (each with one torch
    thread), one on a GPU (its device is shared, not its cores)."""
    if device.startswith("cuda") or (device == "auto" and check_gpu):
        from ..codec import pick_device
        if pick_device(device) != "cpu":
            return 1
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


SKIPPED = "skipped"      # what ``one`` returns for an output it kept (--skip-existing)


def _batch(pairs: list[tuple[str, str]], one, opts: dict, desc: str,
           jobs: int | None = None) -> None:
    """Run ``one(src, dst, opts)`` for every pair; ``one`` returns SKIPPED for an output it
    kept, else writes it. One input: its error is the command's. Several: every input is
    tried (by ``jobs`` worker processes), each failure is reported on one line as it
    happens, a one-line summary (written, skipped, failed) ends the batch, and the exit
    code is the first failure's. Ctrl-C and SIGTERM stop the batch, after a line saying
    what was written and kept."""
    if len(pairs) == 1:
        src, dst = pairs[0]
        try:
            if one(src, dst, opts) == SKIPPED:
                click.echo(one_line(f"nnc: {dst}: exists and decodes; skipped"), err=True)
        except NNCError as e:
            if exits.DEBUG:
                raise
            _fail(_named(e, src), e.exit_code)
        return
    # decoding on the CPU (ONNX Runtime) needs no look for a GPU (and no torch)
    check_gpu = opts.get("engine", "torch") == "torch"
    jobs = min(jobs or default_jobs(opts.get("device", "auto"), check_gpu), len(pairs))
    failed: dict[int, int] = {}          # input number -> exit code
    written, skipped = [], []

    def report(i: int, outcome) -> None:
        if outcome is None:
            written.append(i)
        elif outcome == SKIPPED:
            skipped.append(i)
        else:
            message, code = outcome
            failed[i] = code
            click.echo(f"nnc: error: {one_line(message)}", err=True)
        if bar is not None:
            bar.update(1)

    def counts() -> str:
        return f"{len(written)} written, {len(skipped)} skipped, {len(failed)} failed"

    bar = _progress_bar(len(pairs), desc)
    try:
        if jobs <= 1:
            for i, (src, dst) in enumerate(pairs):
                report(i, _attempt(one, src, dst, opts))
        else:
            _parallel(pairs, one, opts, jobs, report)
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
            bar = None
        left = len(pairs) - len(written) - len(skipped) - len(failed)
        click.echo(f"nnc: stopped: {counts()}, {left} not done (of {len(pairs)} inputs); "
                   f"the {len(written) + len(skipped)} outputs written or skipped are kept "
                   "(--skip-existing resumes)", err=True)
        raise
    finally:
        if bar is not None:
            bar.close()
    click.echo(f"nnc: {counts()} (of {len(pairs)} inputs)", err=True)
    if failed:
        sys.exit(failed[min(failed)])    # the first failing input's code, whatever the order


_IN_WORKER = False


def _attempt(one, src: str, dst: str, opts: dict):
    """``one``'s outcome: None when it wrote its output, SKIPPED when it kept one, else
    (one-line message, exit code). Interrupts pass through; in a worker process they end it once the job's
    temporary file is gone (the pool would otherwise start its next queued job)."""
    global _IN_JOB
    _IN_JOB = True
    try:
        return SKIPPED if one(src, dst, opts) == SKIPPED else None
    except NNCError as e:
        if exits.DEBUG:
            raise
        return _named(e, src), e.exit_code
    except KeyboardInterrupt as e:
        if _IN_WORKER:
            os._exit(EXIT_TERMINATED if isinstance(e, Terminated) else EXIT_INTERRUPTED)
        raise
    except Exception as e:      # a bug on one input: the batch goes on, and says so
        if exits.DEBUG:
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


def _worker_init(threads: int, debug: bool, parent: int | None = None) -> None:
    global _IN_WORKER
    exits.DEBUG, _IN_WORKER = debug, True
    os.environ["OMP_NUM_THREADS"] = str(threads)   # torch and ONNX Runtime read it
    keep_freed_memory()
    signal.signal(signal.SIGTERM, _on_sigterm_in_worker)   # a terminated batch leaves no .part
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    warnings.showwarning = _show_warning
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
                               initializer=_worker_init, initargs=(threads, exits.DEBUG, os.getpid()))
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

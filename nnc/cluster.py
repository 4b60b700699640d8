"""A batch's shards on a Dask cluster (``--scheduler tcp://host:8786``): one task per shard,
each nnc/convert.py's ``run_shard``, as in the local pool (nnc/pool.py).

A worker process keeps its model loaded between tasks (nnc/model/weights.py caches it) and
runs the networks on ``threads`` threads (start workers with ``--nthreads 1``, one process
per core). A worker that dies costs its in-flight shard only: the scheduler runs it again
elsewhere, and a shard the scheduler gives up on (it killed ``allowed-failures`` workers)
is reported as failed. Outputs are written whole or not at all, so a lost task leaves at
most a temporary file of a dead process, which the batch removes at its end
(nnc/storage.py ``sweep_parts``). dask is imported only here, and only when used.
"""
from __future__ import annotations

import uuid

from .convert import failed_row, run_shard
from .errors import ClusterError
from .threads import for_worker


def _task(one, shard, opts: dict, debug: bool, threads: int) -> list[dict]:
    """A shard on a Dask worker, its networks on ``threads`` threads."""
    for_worker(threads)
    return run_shard(one, shard, opts, debug)


def connect(scheduler):
    """A ``distributed.Client`` for a scheduler address (a Client is returned as given), and
    whether this call made it (and closes it)."""
    try:
        from distributed import Client
    except ModuleNotFoundError:
        raise ClusterError("--scheduler needs dask.distributed, which is not installed here "
                           "(pip install 'nnc[cluster]')") from None
    if isinstance(scheduler, Client):
        return scheduler, False
    try:
        return Client(scheduler, timeout="20s"), True
    except (OSError, TimeoutError, ValueError) as e:
        raise ClusterError(f"{scheduler}: cannot reach the Dask scheduler ({e})") from None


def run(shards: list[list[tuple[str, str]]], one, opts: dict, scheduler, report,
        debug: bool = False, threads: int = 1) -> None:
    """``report(rows)`` for every shard as it completes on the cluster at ``scheduler``
    (an address or a ``distributed.Client``). Ctrl-C cancels the tasks not yet done."""
    from distributed import as_completed
    from distributed.scheduler import KilledWorker
    client, own = connect(scheduler)
    batch = uuid.uuid4().hex[:8]
    futures = {}
    try:
        for i, shard in enumerate(shards):
            f = client.submit(_task, one, shard, opts, debug, threads, pure=False,
                              key=f"nnc-shard-{batch}-{i}")
            futures[f] = shard
        for f in as_completed(list(futures)):
            shard = futures[f]
            try:
                rows = f.result()
            except KilledWorker:
                rows = [failed_row(s, d, f"{s}: its shard's worker processes ended (killed, or "
                                         "out of memory?)") for s, d in shard]
            except Exception as e:
                rows = [failed_row(s, d, f"{s}: {e} (on a Dask worker: {type(e).__name__})")
                        for s, d in shard]
            report(rows)
    except BaseException:
        client.cancel(list(futures))
        raise
    finally:
        if own:
            client.close()


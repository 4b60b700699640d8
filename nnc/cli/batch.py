"""Batches on the command line: a progress bar when stderr is a terminal, one line per
failure as it happens, a summary line, the first failing input's exit code, the manifest.
The work is nnc/batch.py's: worker processes here (-j) or a Dask cluster (--scheduler);
Ctrl-C, SIGTERM and a killed parent leave no temporary file (nnc/pool.py)."""
from __future__ import annotations

import sys

import click

from .. import storage
from ..batch import run, write_manifest
from ..convert import SKIPPED
from ..errors import NNCError, one_line
from ..pool import default_jobs  # noqa: F401  (nnc.cli.default_jobs)
from . import exits
from .exits import _fail, _named, _show_warning


def _say(notes) -> None:
    for n in notes or ():
        click.echo(one_line(f"nnc: {n}"), err=True)


def _batch(pairs: list[tuple[str, str]], one, opts: dict, desc: str, jobs: int | None = None,
           scheduler: str | None = None, shard_size: int = 1,
           manifest: str | None = None) -> None:
    """Run ``one(src, dst, opts)`` for every pair; ``one`` returns SKIPPED for an output it
    kept, else writes it. One input: its error is the command's. Several (or a cluster):
    every input is tried, each failure is reported on one line as it comes, a one-line
    summary (written, skipped, failed) ends the batch, the manifest is written when asked,
    and the exit code is the first failing input's. Ctrl-C and SIGTERM stop the batch,
    after a line saying what was written and kept."""
    if manifest is not None:
        storage.check_writable(manifest)     # before the work, not after it
    if len(pairs) == 1 and scheduler is None and manifest is None:
        src, dst = pairs[0]
        try:
            outcome = one(src, dst, opts)
        except NNCError as e:
            if exits.DEBUG:
                raise
            _fail(_named(e, src), e.exit_code)
        if outcome == SKIPPED:
            click.echo(one_line(f"nnc: {dst}: exists and decodes; skipped"), err=True)
        elif isinstance(outcome, dict):
            _say(outcome.get("notes"))
        return
    counts = {"done": 0, "skipped": 0, "failed": 0}
    bar = _progress_bar(len(pairs), desc)

    def report(rows) -> None:
        for r in rows:
            _say(r.get("notes"))
            counts[r["status"]] += 1
            if r["status"] == "failed":
                click.echo(f"nnc: error: {one_line(r['error'])}", err=True)
        if bar is not None:
            bar.update(len(rows))

    def said() -> str:
        return f"{counts['done']} written, {counts['skipped']} skipped, {counts['failed']} failed"

    try:
        rows = run(pairs, one, opts, jobs=jobs, scheduler=scheduler, shard_size=shard_size,
                   report=report, debug=exits.DEBUG, show_warning=_show_warning)
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
            bar = None
        left = len(pairs) - sum(counts.values())
        kept = counts["done"] + counts["skipped"]
        click.echo(f"nnc: stopped: {said()}, {left} not done (of {len(pairs)} inputs); "
                   f"the {kept} outputs written or skipped are kept "
                   "(--skip-existing resumes)", err=True)
        raise
    finally:
        if bar is not None:
            bar.close()
    click.echo(f"nnc: {said()} (of {len(pairs)} input{'s' if len(pairs) != 1 else ''})",
               err=True)
    if manifest is not None:
        write_manifest(manifest, rows)
    failed = [r["code"] for r in rows if r["status"] == "failed"]
    if failed:
        sys.exit(failed[0])      # the first failing input's code, whatever the order


def _progress_bar(total: int, desc: str):
    if sys.stderr.isatty() and total > 1:
        from tqdm import tqdm
        return tqdm(total=total, desc=desc, unit="image", file=sys.stderr)
    return None

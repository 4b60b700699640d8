"""Fuzz the .nnc reader and decoder with mutated files (issue: hostile input).

    python -m benchmarks.fuzz --minutes 10        # or --cases 100000
    python -m benchmarks.fuzz --cases 300 --out /tmp/fuzz.json

(from the repository root, which makes tests/mutate.py importable). Each case mutates a
valid file (tests/mutate.py: raw damage, or payload damage with valid CRCs) and decodes it
in-process under a per-case time limit, alternately on ONNX Runtime (nnc/decoder.py, the
default) and on torch. Outcomes: decoded, refused (an NNCError, i.e. a
one-line message), crash (any other exception), hang (time limit). Every 50th case also
goes through the CLI (`nnc decompress`) to check exit codes and that a failure leaves no
output and no temporary file. Writes benchmarks/results/fuzz.json (or ``--out``).
"""
from __future__ import annotations

import argparse
import json
import random
import resource
import signal
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

import torch
from click.testing import CliRunner

from nnc import codec, decoder
from nnc.codes import read_codes
from nnc.image_io import DEFAULT_MAX_PIXELS
from nnc.cli import main as cli_main
from nnc.errors import NNCError
from nnc.image_io import read_image
from tests.mutate import mutate

from benchmarks.common import RESULTS


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang()


def seeds() -> list[bytes]:
    import numpy as np
    rng = np.random.default_rng(0)
    files = []
    for h, w, q, alpha in [(16, 16, 0.5, False), (40, 24, 0.9, True), (70, 130, 0.2, False)]:
        y, x = np.mgrid[0:h, 0:w]
        rgb = np.stack([(x * 5 + c * 40) % 256 for c in range(3)], -1).astype(np.uint8)
        rgb = np.clip(rgb + rng.integers(0, 20, rgb.shape), 0, 255).astype(np.uint8)
        img = read_image(_png(rgb))
        if alpha:
            img.alpha = (y * 3 % 256).astype(np.uint8)
        files.append(codec.compress(img, quality=q))
    return files


def _png(arr) -> bytes:
    import io
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--timeout", type=int, default=20, help="seconds before a case is a hang")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=RESULTS / "fuzz.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    signal.signal(signal.SIGALRM, _alarm)
    rng = random.Random(args.seed)
    base = seeds()
    counts, crashes, slowest = Counter(), [], 0.0
    cli_cases = partial_files = cli_bad_exit = 0
    runner = CliRunner()
    t_start = time.time()
    t_end = t_start + 60 * args.minutes
    n = 0
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        while n < args.cases and time.time() < t_end:
            data = mutate(rng.choice(base), rng)
            if rng.random() < 0.3:
                data = mutate(data, rng)          # stacked mutations
            n += 1
            t = time.perf_counter()
            signal.alarm(args.timeout)
            try:
                codes = read_codes(data, DEFAULT_MAX_PIXELS)
                if n % 2:       # both engines: ONNX Runtime (the default) and torch
                    decoder.decompress_codes(codes)
                else:
                    codec.decompress_codes(codes, device="cpu")
                counts["decoded"] += 1
            except Hang:
                counts["hang"] += 1
            except NNCError:
                counts["refused"] += 1
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException:
                counts["crash"] += 1
                if len(crashes) < 20:
                    crashes.append(traceback.format_exc(limit=3))
            finally:
                signal.alarm(0)
            slowest = max(slowest, time.perf_counter() - t)
            if n % 50 == 0:
                cli_cases += 1
                src, dst = d / "in.nnc", d / "out.png"
                src.write_bytes(data)
                dst.unlink(missing_ok=True)
                r = runner.invoke(cli_main, ["decompress", str(src), str(dst)])
                if r.exit_code not in (0, 4, 6):
                    cli_bad_exit += 1
                if r.exit_code != 0 and dst.exists():
                    partial_files += 1
                partial_files += len(list(d.glob("*.part")))
    res = {"cases": n, "outcomes": dict(counts), "crashes": counts["crash"],
           "hangs": counts["hang"], "cli_cases": cli_cases, "cli_unexpected_exit": cli_bad_exit,
           "partial_files": partial_files, "slowest_case_s": slowest,
           "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "elapsed_s": round(time.time() - t_start, 1), "minutes_limit": args.minutes,
           "crash_examples": crashes}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps({k: v for k, v in res.items() if k != "crash_examples"}, indent=1))
    for c in crashes[:3]:
        print(c)


if __name__ == "__main__":
    main()

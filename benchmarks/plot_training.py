"""Training curves from `nnc train` logs (log.csv) as one PNG.

    python -m benchmarks.plot_training LABEL=path/log.csv [LABEL=path/log.csv ...] \
        --out benchmarks/results/training.png

Three panels against the step: the training loss, the rate (ΣKL bits per pixel of the
batch) and the PSNR of the batch (both at random rate parameters, so they are noisy; a
moving average is drawn). The loss is only comparable between runs with one likelihood.
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np


def read(path: Path) -> dict[str, np.ndarray]:
    with open(path) as f:
        rows = list(csv.DictReader(f))
    return {k: np.array([float(r[k]) for r in rows]) for k in rows[0]}


def smooth(v: np.ndarray, n: int = 20) -> np.ndarray:
    if len(v) < n:
        return v
    return np.convolve(v, np.ones(n) / n, mode="valid")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("logs", nargs="+", help="LABEL=path/to/log.csv")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
    for spec in args.logs:
        label, _, path = spec.partition("=")
        d = read(Path(path))
        hours = d["wall_s"][-1] / 3600
        for ax, key in zip(axes, ("loss", "bpp", "psnr")):
            line, = ax.plot(d["step"], d[key], lw=0.5, alpha=0.3)
            n = min(20, len(d[key]))
            ax.plot(d["step"][n - 1:], smooth(d[key], n), lw=1.5, color=line.get_color(),
                    label=f"{label} ({int(d['step'][-1])} steps, {hours:.2f} h)")
    for ax, title in zip(axes, ("loss (rate + distortion)", "rate: ΣKL bpp of the batch",
                                "PSNR of the batch (dB)")):
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0].set_yscale("log")
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print("wrote", args.out)


if __name__ == "__main__":
    main()

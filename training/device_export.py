"""Copy a training checkpoint's model (fp32, no optimizer state) into DEST in parts of at
most 15 MiB (the device tool brings back files of up to 16 MiB). Join them with ``cat``.

    python training/device_export.py RUN/ckpt.pt DEST
"""
from __future__ import annotations

import io
import sys
from pathlib import Path

import torch

PART_BYTES = 15 << 20


def write_parts(state: dict, dest: Path) -> tuple[int, int]:
    """``state`` without its optimizer as ``dest/model.pt.part0``, ``.part1``, ...:
    (bytes in all, parts)."""
    buf = io.BytesIO()
    torch.save({k: v for k, v in state.items() if k != "opt"}, buf)
    data = buf.getvalue()
    for i in range(0, len(data), PART_BYTES):
        (dest / f"model.pt.part{i // PART_BYTES}").write_bytes(data[i:i + PART_BYTES])
    return len(data), -(-len(data) // PART_BYTES)


if __name__ == "__main__":
    src, dest = Path(sys.argv[1]), Path(sys.argv[2])
    state = torch.load(src, map_location="cpu", weights_only=True)
    size, _ = write_parts(state, dest)
    print(f"step {state['step']} wall {state['wall_s']:.0f}s -> {size} bytes", flush=True)

"""Copy a training checkpoint's model (fp32, no optimizer state) into DEST in parts of at
most 15 MiB (the device tool brings back files of up to 16 MiB). Join them with ``cat``."""
from __future__ import annotations

import io
import sys
from pathlib import Path

import torch

src, dest = Path(sys.argv[1]), Path(sys.argv[2])
state = torch.load(src, map_location="cpu", weights_only=True)
buf = io.BytesIO()
torch.save({k: v for k, v in state.items() if k != "opt"}, buf)
data, part = buf.getvalue(), 15 << 20
for i in range(0, len(data), part):
    (dest / f"model.pt.part{i // part}").write_bytes(data[i:i + part])
print(f"step {state['step']} wall {state['wall_s']:.0f}s -> {len(data)} bytes", flush=True)

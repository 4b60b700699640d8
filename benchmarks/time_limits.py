"""The wall-time bounds the tests do not assert (tests are timing-free): measured here as
whole processes on this machine.

  python -m benchmarks.time_limits

- ``nnc compress /dev/zero`` and ``nnc info /dev/urandom``: refused at once (rc 3), as the
  input limit stops the read;
- crafted files declaring 4000x3000 and 10000x10000 images: refused (rc 4) in well under
  a second each (tests/test_hostile.py checks their memory);
- ``nnc train --time-limit 6`` (a tiny model; no --export, which would install into
  weights/): the whole command within the limit plus start-up.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(args: list[str], **kw) -> tuple[float, int]:
    t = time.perf_counter()
    rc = subprocess.run([sys.executable, "-m", "nnc.cli", *args], stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL, **kw).returncode
    return time.perf_counter() - t, rc


def main() -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    import numpy as np
    from conftest import png_bytes, smooth_image
    from test_hostile import crafted
    import nnc
    rows = []
    rows.append(("nnc compress /dev/zero", *timed(["compress", "/dev/zero", "-"])))
    rows.append(("nnc info /dev/urandom", *timed(["info", "/dev/urandom"])))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        small = nnc.compress(smooth_image(64, 64), quality=0.5, refine=0)
        for size, ok in [((4000, 3000), False), ((4000, 3000), True), ((10000, 10000), False)]:
            f = tmp / f"crafted-{size[0]}x{size[1]}-{ok}.nnc"
            f.write_bytes(crafted(small, *size, level2_ok=ok))
            rows.append((f"nnc decompress {f.name}", *timed(["decompress", str(f), "-"])))
        data = tmp / "data"
        data.mkdir()
        rng = np.random.default_rng(0)
        for i in range(5):
            img = np.clip(smooth_image(80, 80, seed=i) + rng.normal(0, 8, (80, 80, 3)), 0, 255)
            (data / f"{i}.png").write_bytes(png_bytes(img.astype(np.uint8)))
        limit = 6.0
        took, rc = timed(["train", str(data), str(tmp / "run"), "--time-limit", str(limit),
                          "--batch", "2", "--arch", "8,8,8,8", "--crop", "64", "--threads",
                          "1", "--device", "cpu"])
        rows.append((f"nnc train --time-limit {limit:g} (no export)", took, rc))
    for what, s, rc in rows:
        print(f"{what:60s} {s:7.2f} s  rc {rc}")


if __name__ == "__main__":
    main()

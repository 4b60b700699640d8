"""The encoder's bytes, pinned: the sample image (docs/sample.png) compressed as `nnc compress`
does by default gives the same file, byte for byte, on every machine of a kind.

Files are byte-identical per kind of machine, not across kinds: the encoder's passes run in
bfloat16 on CPUs that have it natively and in float32 elsewhere (nnc/model/fused.py,
``encoder_dtype``), so the kind is the device nnc picks and the encoder's floats there. A
kind not listed is skipped with its name: add its hash after checking the change that made it
(``python -m benchmarks.file_hashes`` compares 18 Kodak files)."""
import hashlib
from pathlib import Path

import pytest

SAMPLE = Path(__file__).resolve().parents[1] / "docs" / "sample.png"

PINNED = {
    # 2-core x86-64 VM, "Intel Xeon Processor" with AVX512-BF16 and AMX, torch 2.13.0
    "cpu-bfloat16": "43885b43071f3256b480ad50323a90c37761e5c0d7f6162bd39665764ffd6b85",
}


def machine_kind() -> str:
    from nnc.codec import pick_device
    from nnc.model.fused import encoder_dtype
    device = pick_device(None)
    return f"{device}-{str(encoder_dtype(device)).removeprefix('torch.')}"


def test_the_sample_compresses_to_the_pinned_bytes():
    import nnc
    kind = machine_kind()
    if kind not in PINNED:
        pytest.skip(f"no pinned hash for this kind of machine ({kind}); known: "
                    f"{', '.join(sorted(PINNED))}")
    data = nnc.compress(SAMPLE)
    assert hashlib.sha256(data).hexdigest() == PINNED[kind], (
        f"nnc compress docs/sample.png changed its bytes on {kind}: files nnc writes must "
        "stay byte-identical")

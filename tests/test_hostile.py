"""Hostile .nnc input: every damaged file is refused with a FormatError/ModelError, or decodes
to an image of the declared size — never another exception, never a hang."""
import random
import struct

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from nnc import codec, container
from nnc.errors import FormatError, ModelError, NNCError
from nnc.image_io import read_image
from mutate import join_sections, mutate, split_sections
from conftest import png_bytes, smooth_image


@pytest.fixture(scope="module")
def small_file():
    return codec.compress(read_image(png_bytes(smooth_image(24, 40))), quality=0.6)


def _decode_ok_or_refused(data):
    try:
        img = codec.decompress(data, device="cpu")
    except (FormatError, ModelError):
        return None
    h = container.read(data).header
    assert img.rgb.shape == (h.height, h.width, 3)
    return img


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_parser_random_bytes(blob):
    for data in (blob, container.MAGIC + struct.pack("<H", 1) + blob):
        try:
            container.read(data)
        except FormatError:
            pass


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.integers(min_value=0, max_value=2 ** 32 - 1))
def test_decoder_on_mutations(small_file, seed):
    rng = random.Random(seed)
    _decode_ok_or_refused(mutate(small_file, rng))


def test_crafted_payloads_pass_crc_but_are_refused(small_file):
    prefix = small_file[:container.SIGNATURE_BYTES]
    secs = split_sections(small_file)
    tags = [t for t, _ in secs]
    z2 = tags.index(b"Z2SA")
    # group count larger than the latent: refused before any allocation of that size
    bad = list(secs)
    bad[z2] = (b"Z2SA", struct.pack("<IIBBB", 0, 10 ** 9, 0, 0, 0) + secs[z2][1][11:])
    with pytest.raises(FormatError):
        codec.decompress(join_sections(prefix, bad))
    # side information in both the current and the older coding
    z1 = tags.index(b"Z1SA")
    both = secs[:z1] + [(b"Z1SI", secs[z1][1])] + secs[z1:]
    with pytest.raises(FormatError, match="two codings|out of order"):
        codec.decompress(join_sections(prefix, both))
    # every live flag set: the counts stream runs out or the shapes disagree, never a crash
    z1s = secs[z1][1]
    flags = list(secs)
    flags[z1] = (b"Z1SA", z1s[:4] + bytes(len(z1s) - 4))
    try:
        codec.decompress(join_sections(prefix, flags))
    except FormatError:
        pass
    # a missing required section
    with pytest.raises(FormatError, match="missing"):
        codec.decompress(join_sections(prefix, [s for s in secs if s[0] != b"Z1IX"]))
    # huge declared dimensions: refused by the pixel cap, not by running out of memory
    h = container.read(small_file).header
    h.width, h.height = 60000, 60000
    huge = [(b"HEAD", h.pack())] + secs[1:]
    with pytest.raises(FormatError, match="limit"):
        codec.decompress(join_sections(prefix, huge))


def test_unknown_model_and_wrong_hash(small_file):
    prefix = small_file[:container.SIGNATURE_BYTES]
    secs = split_sections(small_file)
    h = container.read(small_file).header
    h.model_name = "no-such-model"
    with pytest.raises(ModelError, match="not installed"):
        codec.decompress(join_sections(prefix, [(b"HEAD", h.pack())] + secs[1:]))
    h = container.read(small_file).header
    h.weights_sha256 = bytes(32)
    with pytest.raises(ModelError, match="other weights"):
        codec.decompress(join_sections(prefix, [(b"HEAD", h.pack())] + secs[1:]))


def test_every_truncation_of_a_real_file(small_file):
    for n in range(0, len(small_file), 7):
        with pytest.raises(NNCError):
            codec.decompress(small_file[:n])


def crafted(small_file: bytes, width: int, height: int, level2_ok: bool,
            live_channels: int = 4) -> bytes:
    """A small file that declares width x height (issue 15, item 2): level-2 groups of the
    largest size, their indices present or not (``level2_ok``), ``live_channels`` channels
    whose every block claims 15 shards, and an empty level-1 index section."""
    import math
    import numpy as np
    from dataclasses import replace
    from nnc.coding import greedy, importance
    from nnc.model.weights import load_model
    c = container.read(small_file)
    hd = replace(c.header, width=width, height=height)
    loaded = load_model(hd.model_name, "cpu")
    model = loaded.net
    H, W = -(-height // 64) * 64, -(-width // 64) * 64
    n2 = model.cfg.g * (H // 64) * (W // 64)
    n_groups = math.ceil(n2 / hd.l2_max_group)
    sizes = np.full(n_groups, hd.l2_max_group, np.int64)
    sizes[-1] = n2 - hd.l2_max_group * (n_groups - 1)
    code = importance.Level2Code(np.zeros(0, np.int64), np.zeros(0, np.int64), sizes,
                                 np.zeros(n_groups, np.int64))
    z2 = importance.write_sections(code, n2, importance.Level2Format.from_header(hd))
    z2sa, z2ix = z2["Z2SA"], z2["Z2IX"]
    if not level2_ok:
        z2ix = b""
    rows, cols = H // 16 // hd.l1_block_h, W // 16 // hd.l1_block_w
    shards = np.zeros((model.cfg.m, rows, cols), np.int64)
    shards[:live_channels] = 15
    z1sa = greedy.write_sections(
        greedy.Level1Code(shards, np.zeros((0, 0), np.int64), np.zeros(0, np.int64),
                          np.zeros(0, np.int64)),
        greedy.Level1Format.from_header(hd), loaded.shard_table)["Z1SA"]
    return container.write(container.Container(hd, {"Z2SA": z2sa, "Z2IX": z2ix,
                                                    "Z1SA": z1sa, "Z1IX": b""}))


@pytest.mark.parametrize("size,level2_ok", [((4000, 3000), False), ((4000, 3000), True),
                                            ((10000, 10000), False)])
def test_crafted_huge_headers_are_refused_before_any_allocation(small_file, size, level2_ok):
    """Refused with memory bounded by the file's bytes, not the image it declares (the
    whole-process times are measured by benchmarks/time_limits.py)."""
    import tracemalloc
    data = crafted(small_file, *size, level2_ok=level2_ok)
    assert len(data) < 200_000
    codec.decompress(small_file, device="cpu")          # the model loaded, caches warm
    tracemalloc.start()
    try:
        with pytest.raises(FormatError, match="too few for the"):
            codec.decompress(data, device="cpu")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20, peak        # a 4000x3000 image's level-1 latents alone: 141 MB


def test_bad_files_are_refused_without_loading_torch(small_file, tmp_path):
    """The decoder's integers are read and checked before the network exists (nnc/codes.py):
    a crafted file is refused by a process that never imports torch."""
    import subprocess
    import sys
    bad = tmp_path / "crafted.nnc"
    bad.write_bytes(crafted(small_file, 4000, 3000, level2_ok=True))
    probe = ("import sys\nfrom nnc.cli import main\ntry:\n    main(sys.argv[1:])\n"
             "except SystemExit as e:\n    print(e.code, 'torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", probe, "decompress", str(bad),
                        str(tmp_path / "o.png")], capture_output=True, text=True, timeout=120)
    assert r.stdout.split() == ["4", "False"], r.stdout + r.stderr
    assert "too few for the" in r.stderr and not (tmp_path / "o.png").exists()


def test_shipped_shard_tables_match_the_weights():
    """weights/<name>.shard-table.npy (read without torch) is the table in the weights file."""
    import numpy as np
    from nnc.codes import model_entry
    from nnc.model.weights import load_model, manifest
    for name in manifest()["models"]:
        _, table = model_entry(name)
        assert np.array_equal(table, load_model(name, "cpu").shard_table)

"""The .nnc container: round trip, checksums, versions, unknown sections, bad headers."""
import struct
import zlib

import pytest

from nnc import container
from nnc.errors import FormatError
from mutate import join_sections, split_sections


def header(**kw):
    base = dict(width=100, height=50, channels=3, alpha=False, quality=0.5, seed=7,
                l1_block_w=4, l1_block_h=2, l1_shard_bits=8, l1_max_shards=15, l1_shard_decay=0.375, l1_outlier_kl_bits=16.0,
                l2_index_bits=12, l2_max_group=64, l2_group_kl_bits=11.0,
                l2_outlier_kl_bits=11.0, model_name="m", weights_sha256=bytes(range(32)))
    base.update(kw)
    return container.Header(**base)


def sample_file(**kw) -> bytes:
    return container.write(container.Container(header(**kw), {"Z2SI": b"abc", "Z1IX": b"x" * 9}))


def test_roundtrip():
    data = sample_file()
    c = container.read(data)
    assert c.header == header()
    assert c.sections == {"Z2SI": b"abc", "Z1IX": b"x" * 9}
    assert sum(r["bytes"] for r in container.layout(data)) == len(data)


def test_every_truncation_is_rejected():
    data = sample_file()
    for n in range(len(data)):
        with pytest.raises(FormatError):
            container.read(data[:n])


def test_every_byte_flip_is_rejected():
    data = sample_file()
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= 0x40
        with pytest.raises(FormatError):
            container.read(bytes(bad))


def test_wrong_magic_and_newer_version():
    data = sample_file()
    with pytest.raises(FormatError, match="not an .nnc"):
        container.read(b"PNG not nnc at all")
    newer = data[:8] + struct.pack("<H", container.VERSION + 1) + data[10:]
    with pytest.raises(FormatError, match="upgrade"):
        container.read(newer)
    text_mode = data.replace(b"\r\n", b"\n", 1)
    with pytest.raises(FormatError, match="signature"):
        container.read(text_mode)


def _insert(data: bytes, tag: str, payload: bytes) -> bytes:
    """``data`` with a section inserted before END, framed as a writer would (valid CRCs)."""
    secs = split_sections(data)
    return join_sections(data[:container.SIGNATURE_BYTES],
                         secs[:-1] + [(tag.encode("ascii"), payload)] + secs[-1:])


def test_unknown_sections():
    data = sample_file()
    assert container.read(_insert(data, "xtra", b"hello")).sections.keys() == {"Z2SI", "Z1IX"}
    with pytest.raises(FormatError, match="critical"):
        container.read(_insert(data, "XTRA", b"hello"))


def test_absurd_header_values():
    for kw in [dict(width=0), dict(height=10 ** 6), dict(channels=2), dict(quality=7.0),
               dict(l1_shard_bits=0), dict(l2_index_bits=40), dict(l1_shard_decay=0.0), dict(l1_block_w=0)]:
        h = header(**kw)
        data = container.MAGIC + struct.pack("<H", 1) + \
            container.section_bytes("HEAD", h.pack()) + container.section_bytes("END ", b"")
        with pytest.raises(FormatError):
            container.read(data)


def test_trailing_bytes_and_duplicate_sections():
    data = sample_file()
    with pytest.raises(FormatError):
        container.read(data + b"\0")
    with pytest.raises(FormatError, match="twice"):
        container.read(_insert(data, "Z2SI", b"again"))


def test_crc_is_over_tag_and_payload():
    sec = container.section_bytes("Z1IX", b"abc")
    assert struct.unpack("<I", sec[-4:])[0] == zlib.crc32(b"Z1IXabc")


def test_version_1_files_still_read():
    """Files from before 2026-11-30 (version 1, CRCs not chained) read as before."""
    v1 = container.frame([(b"HEAD", header().pack()), (b"Z2SI", b"abc"), (b"Z1IX", b"x" * 9),
                          (b"END ", b"")], version=1)
    assert container.read(v1).sections == {"Z2SI": b"abc", "Z1IX": b"x" * 9}
    assert v1 != sample_file() and sample_file()[8:10] == struct.pack("<H", 2)


def test_sections_spliced_from_another_file_are_caught():
    """Each section intact, the file as a whole not: version 2 chains the CRCs."""
    a, b = sample_file(seed=1), sample_file(seed=2)
    sa, sb = split_sections(a), split_sections(b)
    spliced = a[:container.SIGNATURE_BYTES] + b"".join(
        t + struct.pack("<I", len(p)) + p + raw[-4:]
        for (t, p), raw in zip([sa[0], *sb[1:]], _raw_sections(a)[:1] + _raw_sections(b)[1:]))
    with pytest.raises(FormatError, match="pieced together"):
        container.read(spliced)


def _raw_sections(data: bytes) -> list[bytes]:
    return [data[pos:pos + size] for _, _, pos, size in container.iter_sections(data)]


def test_section_order_and_stray_alpha_are_refused():
    h = header().pack()
    swapped = container.frame([(b"HEAD", h), (b"Z1IX", b"x"), (b"Z2SI", b"abc"),
                               (b"END ", b"")])
    with pytest.raises(FormatError, match="out of order"):
        container.read(swapped)
    stray = container.frame([(b"HEAD", h), (b"Z2SI", b"abc"), (b"ALPH", b"zz"),
                             (b"END ", b"")])
    with pytest.raises(FormatError, match="alpha"):
        container.read(stray)


def test_uniform_ranges_beyond_the_range_coders_limit():
    """Level-1 outlier positions of images over ~22 MP range past 2^24 (a 24 MP photo made
    constriction panic): they are sent as two symbols each (spec §5)."""
    import numpy as np
    from nnc.coding import sideinfo
    for n in ((1 << 24) + 5, 75_000_000, 3 * (1 << 30)):
        vals = np.array([0, 1, 4095, 4096, n // 2, n - 1], dtype=np.int64)
        w = sideinfo.Writer()
        w.uniform(vals, n)
        w.uniform(np.array([7]), 10)
        r = sideinfo.Reader(w.bytes())
        assert (r.uniform(len(vals), n) == vals).all() and r.uniform(1, 10)[0] == 7


def test_info_reports_the_files_own_version():
    from nnc.info import describe
    v1 = container.frame([(b"HEAD", header().pack()), (b"END ", b"")], version=1)
    assert describe(v1)["version"] == 1 and describe(sample_file())["version"] == 2

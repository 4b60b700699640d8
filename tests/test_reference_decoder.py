"""The spec is normative for everything entropy-coded: a decoder written from
formats/nnc-v1.md and formats/entropy-coding.md alone (tests/reference_decoder.py: Python and
numpy, no constriction, no torch, no nnc) gets exactly nnc's integers from every golden file
and from fresh files, refuses the same damaged files, and agrees with constriction on random
streams and on the boundaries of every model's intervals."""
import ast
import json
import random
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import constriction
from nnc import codec, container
from nnc.codes import read_codes
from nnc.coding import sideinfo
from nnc.errors import FormatError, ModelError
from nnc.image_io import RasterImage
from nnc.settings import Settings
import reference_decoder as ref
from mutate import join_sections, mutate, split_sections

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "formats" / "golden"
WEIGHTS = ROOT / "weights"
REF_SOURCE = Path(ref.__file__)
MAX_PIXELS = 100_000_000


def _golden_entries():
    return json.loads((GOLDEN / "golden.json").read_text())["files"]


def _assert_same(r: ref.Codes, c) -> None:
    """Every integer of the file, from both decoders."""
    hd = c.header
    for f in ("width", "height", "channels", "seed", "l1_block_w", "l1_block_h",
              "l1_shard_bits", "l1_max_shards", "l2_index_bits", "l2_max_group",
              "model_name", "weights_sha256"):
        assert getattr(r.header, f) == getattr(hd, f), f
    for f in ("quality", "l1_shard_decay", "l1_outlier_kl_bits", "l2_group_kl_bits",
              "l2_outlier_kl_bits"):
        assert struct.pack("<f", getattr(r.header, f)) == struct.pack("<f", getattr(hd, f)), f
    assert bool(r.header.alpha) == hd.alpha
    assert r.shape2 == c.shape2 and r.shape1 == c.shape1
    pairs = [(r.l2_outlier_positions, c.level2.outlier_positions),
             (r.l2_outlier_values, c.level2.outlier_values),
             (r.group_sizes, c.level2.group_sizes), (r.l2_indices, c.level2.indices),
             (r.l1_outlier_positions, c.level1.outlier_positions),
             (r.l1_outlier_values, c.level1.outlier_values),
             (r.shards, c.level1.shards.ravel()), (r.l1_indices, c.level1.indices)]
    for i, (a, b) in enumerate(pairs):
        assert a.shape == np.shape(b) and np.array_equal(a, b), i
    assert (r.alpha is None) == (c.alpha is None)
    if r.alpha is not None:
        assert np.array_equal(r.alpha, c.alpha)


def _outcome(data: bytes, max_pixels: int = MAX_PIXELS):
    """(nnc's codes or None if refused, the reference's codes or None if refused)."""
    try:
        c = read_codes(data, max_pixels)
    except (FormatError, ModelError):
        c = None
    try:
        r = ref.decode(data, WEIGHTS, max_pixels)
    except ref.Refused:
        r = None
    return c, r


# --- the reference decoder is independent ------------------------------------------------

def test_reference_decoder_imports_no_codec_code():
    tree = ast.parse(REF_SOURCE.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "no relative imports"
            imported.add(node.module.split(".")[0])
    assert imported <= {"__future__", "hashlib", "io", "json", "math", "struct", "zlib",
                        "dataclasses", "pathlib", "numpy"}, imported


def test_reference_decoder_runs_with_codec_modules_blocked():
    """In a fresh interpreter where importing torch, constriction or nnc fails."""
    golden = GOLDEN / _golden_entries()[-1]["nnc"]
    script = (
        "import sys\n"
        "for m in ('torch', 'constriction', 'nnc'):\n"
        "    sys.modules[m] = None\n"
        "import importlib.util\n"
        f"spec = importlib.util.spec_from_file_location('refdec', {str(REF_SOURCE)!r})\n"
        "mod = sys.modules['refdec'] = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(mod)\n"
        f"c = mod.decode(open({str(golden)!r}, 'rb').read(), {str(WEIGHTS)!r})\n"
        "assert not any(k.split('.')[0] in ('torch', 'constriction', 'nnc')\n"
        "               for k, v in sys.modules.items() if v is not None)\n"
        "print(int(c.group_sizes.sum()), int(c.shards.sum()))\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert len(out.stdout.split()) == 2


# --- golden and fresh files: the same integers --------------------------------------------

@pytest.mark.parametrize("entry", _golden_entries(), ids=lambda e: e["nnc"])
def test_golden_file_same_integers(entry):
    data = (GOLDEN / entry["nnc"]).read_bytes()
    r = ref.decode(data, WEIGHTS)
    _assert_same(r, read_codes(data, MAX_PIXELS))
    assert r.version == entry.get("container_version", r.version)
    assert [r.header.width, r.header.height] == entry["size"]
    assert r.header.model_name == entry["model"]


def test_golden_files_cover_both_codings_and_versions():
    seen = set()
    for e in _golden_entries():
        r = ref.decode((GOLDEN / e["nnc"]).read_bytes(), WEIGHTS)
        seen |= {r.side2, r.side1, f"v{r.version}"}
    assert seen >= {"Z2SA", "Z2SI", "Z1SA", "Z1SI", "v1", "v2"}


# fresh files: low outlier thresholds, so that both levels have outliers; another block
# size, group cap (Laplace support) and index widths; gray with alpha
FRESH = [
    ("pln-cpu-1", 1.0, (64, 128), False, False,
     dict(l2_outlier_kl_bits=4.0, l1_outlier_kl_bits=8.0, l1_beam=2)),
    ("pln-gpu-1", 0.3, (64, 64), True, True,
     dict(l2_max_group=6, l2_index_bits=5, l1_shard_bits=4, l1_block_w=2, l1_block_h=2,
          l1_beam=1, l1_rd_kappa=0.0, l2_outlier_kl_bits=3.0)),
    ("pln-gpu-1", 0.0, (50, 70), False, False, dict(l1_beam=1)),
]


def _image(h: int, w: int, seed: int) -> np.ndarray:
    """Smooth gradients and a little noise: photo-like enough for every coder path."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([128 + 100 * np.sin(x / 23 + c) * np.cos(y / 31 - c) for c in range(3)],
                    -1)
    return np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)


def make_fresh_files() -> list[bytes]:
    """The FRESH cases as files: outliers at both levels, other block sizes, group caps and
    index widths, gray with alpha (also tests/test_web.py's)."""
    out = []
    for i, (model, q, (h, w), gray, alpha, kw) in enumerate(FRESH):
        rgb = _image(h, w, seed=i)
        if gray:
            rgb = np.repeat(rgb[..., :1], 3, 2)
        a = np.tile(np.arange(w, dtype=np.uint8) * 3, (h, 1)) if alpha else None
        img = RasterImage(rgb, gray=gray, alpha=a)
        out.append(codec.compress(img, q, seed=7 + i, model_name=model, device="cpu",
                                  settings=Settings().replace(**kw)))
    return out


@pytest.fixture(scope="module")
def fresh_files():
    return make_fresh_files()


def test_fresh_files_same_integers(fresh_files):
    l2_out = l1_out = 0
    for data in fresh_files:
        r = ref.decode(data, WEIGHTS)
        _assert_same(r, read_codes(data, MAX_PIXELS))
        l2_out += len(r.l2_outlier_positions)
        l1_out += len(r.l1_outlier_positions)
    assert l2_out > 0 and l1_out > 0, "the fresh files should exercise the outliers"


# --- damaged files: refused by both, or decoded to the same integers ------------------------

def _reframe(data: bytes, tag: bytes, payload: bytes) -> bytes:
    secs = split_sections(data)
    i = [t for t, _ in secs].index(tag)
    secs[i] = (tag, payload)
    return join_sections(data[:container.SIGNATURE_BYTES], secs)


def _payload(data: bytes, tag: bytes) -> bytes:
    return dict(split_sections(data))[tag]


def _both_refuse(data: bytes) -> None:
    c, r = _outcome(data)
    assert c is None and r is None, (c is None, r is None)


def test_truncated_files_refused():
    for e in _golden_entries()[::3]:
        data = (GOLDEN / e["nnc"]).read_bytes()
        for cut in (0, 5, 9, 10, 17, len(data) // 2, len(data) - 13, len(data) - 1):
            _both_refuse(data[:cut])


def test_crafted_section_damage_refused(fresh_files):
    data = fresh_files[0]
    z2, z2ix, z1 = _payload(data, b"Z2SA"), _payload(data, b"Z2IX"), _payload(data, b"Z1SA")
    n_out, n_groups = struct.unpack_from("<II", z2)
    cases = [
        _reframe(data, b"Z2IX", z2ix[:len(z2ix) // 4 * 4 - 12]),     # too short (§5.6)
        _reframe(data, b"Z2IX", z2ix + b"\0"),                       # not whole words (§E1)
        _reframe(data, b"Z1SA", z1 + b"\0\0"),
        _reframe(data, b"Z2SA", z2[:8] + bytes([16]) + z2[9:]),      # s0 out of the grid
        _reframe(data, b"Z2SA", struct.pack("<I", n_out) + struct.pack("<I", n_groups - 1)
                 + z2[8:]),                                          # sizes do not add up
        _reframe(data, b"Z2SA", z2[:10]),                            # prefix cut
        _reframe(data, b"Z1SA", struct.pack("<I", 1 << 30) + z1[4:]),  # n_out > n1
    ]
    for d in cases:
        _both_refuse(d)


def test_quantile_out_of_range_refused():
    """A stream whose point lies beyond the model's total (§E2 step 2)."""
    data = (GOLDEN / "2026-11-30-tiny-rgba-q90.nnc").read_bytes()
    z2 = _payload(data, b"Z2SA")
    bad = _reframe(data, b"Z2SA", z2[:11] + b"\xff" * (len(z2) - 11))
    with pytest.raises(ref.Refused, match="quantile"):
        ref.decode(bad, WEIGHTS)
    _both_refuse(bad)


def test_level2_outliers_out_of_order(fresh_files):
    """§5.2: level-2 outlier positions increase; a file with two of them swapped (and their
    values with them) is refused. nnc's reader sorts the positions without their values."""
    data = fresh_files[0]
    r = ref.decode(data, WEIGHTS)
    pos, vals = r.l2_outlier_positions.copy(), r.l2_outlier_values.copy()
    assert len(pos) >= 2
    pos[[0, 1]], vals[[0, 1]] = pos[[1, 0]], vals[[1, 0]]
    z2 = _payload(data, b"Z2SA")
    n_out, n_groups, s0, s1, m0 = struct.unpack_from("<IIBBB", z2)
    sizes = r.group_sizes - 1
    w = sideinfo.Writer()
    w.uniform(pos, int(np.prod(r.shape2)))
    w.uniform(vals, 1 << 16)
    w.laplace(sizes, np.concatenate([[m0], sizes[:-1]]).astype(np.float64), s0, s1,
              r.header.l2_max_group - 1)
    bad = _reframe(data, b"Z2SA", z2[:11] + w.bytes())
    with pytest.raises(ref.Refused, match="increasing"):
        ref.decode(bad, WEIGHTS)
    with pytest.raises(FormatError, match="not increasing"):
        read_codes(bad, MAX_PIXELS)


def _same_outcome(data: bytes, max_pixels: int) -> bool | None:
    """Both refuse (False), or both decode to the same integers (True); None for the one
    known difference: level-2 outlier positions out of order, which nnc sorts (see
    test_level2_outliers_out_of_order)."""
    c, r = _outcome(data, max_pixels)
    if c is not None and r is None:
        try:
            ref.decode(data, WEIGHTS, max_pixels)
        except ref.Refused as e:
            if "strictly increasing" in str(e):
                return None
    assert (c is None) == (r is None), f"nnc refused: {c is None}"
    if c is not None:
        _assert_same(r, c)
    return c is not None


def test_mutated_files_same_outcome(fresh_files):
    """nnc.mutate's damage (half of it with valid CRCs): both refuse, or both decode to the
    same integers. A low pixel limit keeps mutated headers from declaring huge images."""
    rng = random.Random(20261130)
    sources = [(GOLDEN / e["nnc"]).read_bytes() for e in _golden_entries()] + fresh_files
    seen = [_same_outcome(mutate(sources[i % len(sources)], rng), 1 << 16)
            for i in range(600)]
    assert seen.count(False) > 200 and seen.count(True) > 20, seen.count(True)


def test_damaged_streams_same_outcome(fresh_files):
    """Bits flipped, tails replaced by noise or cut in the range-coded streams (CRCs valid):
    garbage streams decode to the same integers in both decoders, or both refuse."""
    rng = random.Random(5)
    sources = [(GOLDEN / e["nnc"]).read_bytes() for e in _golden_entries()[-4:]] + fresh_files
    coded = (b"Z2SA", b"Z2SI", b"Z2IX", b"Z1SA", b"Z1SI", b"Z1IX")
    seen = []
    for i in range(300):
        data = sources[i % len(sources)]
        secs = split_sections(data)
        k = rng.choice([j for j, (t, _) in enumerate(secs) if t in coded])
        tag, b = secs[k][0], bytearray(secs[k][1])
        prefix = {b"Z2SA": 11, b"Z2SI": 11, b"Z1SA": 4, b"Z1SI": 4}.get(tag, 0)
        if len(b) > prefix:
            j = rng.randrange(prefix, len(b))
            op = rng.randrange(3)
            if op == 0:
                b[j] ^= 1 << rng.randrange(8)
            elif op == 1:
                b[j:] = bytes(rng.randrange(256) for _ in range(len(b) - j))
            else:
                del b[j - (j - prefix) % 4:]
        secs[k] = (tag, bytes(b))
        seen.append(_same_outcome(join_sections(data[:container.SIGNATURE_BYTES], secs),
                                  1 << 16))
    assert seen.count(False) > 50 and seen.count(True) > 50


# --- the models and the range decoder against constriction --------------------------------

def _random_model(rng: random.Random):
    """(constriction model, its parameters, the reference's model, a value to code)."""
    kind = rng.randrange(3)
    if kind == 0:
        n = rng.choice([2, 3, 7, 256, 4096, 65536, rng.randint(2, 1 << 24), 1 << 24])
        return constriction.stream.model.Uniform(n), (), ref.Uniform(n), rng.randrange(n)
    if kind == 1:
        n = rng.randint(2, 64)
        w = np.array([rng.choice([0.0, rng.random(), rng.random() * 1e6, 1e-30,
                                  float(rng.randint(1, 2000)), rng.randint(0, 3) + 0.5])
                      for _ in range(n)])
        w[rng.randrange(n)] += 1.0
        return (constriction.stream.model.Categorical(perfect=False), (w[None, :],),
                ref.Categorical(w), rng.randrange(n))
    vmax = rng.choice([1, 2, 5, 255, 1023, 4095, rng.randint(1, 100000)])
    mean = rng.choice([float(rng.randint(0, vmax)), rng.uniform(-50, vmax + 50)])
    scale = rng.choice([0.02, 0.05, rng.uniform(1e-3, 1e4), rng.uniform(0.1, 20)])
    v = rng.randint(0, vmax) if rng.random() < 0.3 else \
        min(vmax, max(0, int(round(mean + rng.gauss(0, scale)))))
    return (constriction.stream.model.QuantizedLaplace(0, vmax),
            (np.array([mean]), np.array([scale])), ref.QuantizedLaplace(mean, scale, vmax), v)


def test_random_streams_decode_like_constriction():
    rng = random.Random(1)
    for _ in range(200):
        enc = constriction.stream.queue.RangeEncoder()
        coded = []
        for _ in range(rng.randint(0, 40)):
            cm, params, rm, v = _random_model(rng)
            enc.encode(np.array([v], dtype=np.int32), cm, *params)
            coded.append((rm, v))
        d = ref.RangeDecoder(enc.get_compressed().astype("<u4").tobytes())
        assert [d.decode(rm) for rm, _ in coded] == [v for _, v in coded]


_SCALE0 = ((1 << 64) - 1) >> 24      # a fresh decoder's scale (§E2)


def _constriction_symbol(q: int, cm, params) -> int:
    """The symbol constriction's decoder gives for quantile q: a two-word stream whose
    point is q times a fresh decoder's scale."""
    p = q * _SCALE0
    d = constriction.stream.queue.RangeDecoder(np.array([p >> 32, p & 0xFFFFFFFF],
                                                        dtype=np.uint32))
    return int((d.decode(cm, *params) if params else d.decode(cm, 1))[0])


def test_model_intervals_match_constriction_exactly():
    """Each probed symbol's first and last quantile decode to it in constriction: with C
    increasing, that pins C(s) and C(s + 1) exactly."""
    rng = random.Random(2)
    for _ in range(120):
        cm, params, rm, _ = _random_model(rng)
        if isinstance(rm, ref.Uniform):
            n = rm.n
        elif isinstance(rm, ref.Categorical):
            n = len(rm.c) - 1
        else:
            n = rm.vmax + 1
        probe = {0, n - 1, *(rng.randrange(n) for _ in range(12))}
        for s in sorted(probe):
            s_lo = rm.lookup(_first_quantile(rm, s))
            assert s_lo[0] == s
            assert _constriction_symbol(s_lo[1], cm, params) == s
            assert _constriction_symbol(s_lo[2] - 1, cm, params) == s


def _first_quantile(rm, s: int) -> int:
    if isinstance(rm, ref.Uniform):
        return s * rm.w
    if isinstance(rm, ref.Categorical):
        return rm.c[s]
    return rm.c(s)


# (s, scale) with mean 0 on {0 ... 4095} where fw * F(s - 1/2) lies within an ulp of an
# integer and glibc's exp (Python's math.exp on Linux) rounds differently from §E7's: C(s)
# with glibc's exp is off by one, and constriction agrees with §E7 (found by search)
EXP_VECTORS = [(37, 116.2873925340123, 10645865), (5, 26.02249748455463, 9718361),
               (29, 179.6074364742703, 9617149), (9, 386.0867785912778, 8569188),
               (1, 1.9177272507977903, 10311339), (50, 184.30440418145028, 10361927)]


@pytest.mark.parametrize("s,scale,c_s", EXP_VECTORS)
def test_laplace_uses_the_spec_exp(s, scale, c_s):
    rm = ref.QuantizedLaplace(0.0, scale, 4095)
    assert rm.c(s) == c_s
    cm = constriction.stream.model.QuantizedLaplace(0, 4095)
    params = (np.array([0.0]), np.array([scale]))
    assert _constriction_symbol(c_s, cm, params) == s
    assert _constriction_symbol(c_s - 1, cm, params) == s - 1


def test_split_uniform_decodes_like_nnc_writes():
    """§E6: values of ranges above 2^24, as nnc's writer splits them."""
    rng = np.random.default_rng(3)
    for n in (1 << 24, (1 << 24) + 1, 3 * 10 ** 9, (1 << 36) + 5, (1 << 48) + 7):
        v = rng.integers(0, n, 50, dtype=np.int64)
        v[:2] = (0, n - 1)
        w = sideinfo.Writer()
        w.uniform(v, n)
        w.uniform(np.array([1, 0, 2]), 3)
        d = ref.RangeDecoder(w.bytes())
        assert d.uniform(len(v), n) == v.tolist()
        assert d.uniform(3, 3) == [1, 0, 2]


def test_exp_special_cases():
    import math
    assert ref.exp_e7(0.0) == 1.0 and ref.exp_e7(-1e-300) == 1.0
    assert ref.exp_e7(-746.0) == 0.0 and ref.exp_e7(710.0) == math.inf
    assert math.isnan(ref.exp_e7(math.nan))
    for x in (-700.0, -20.5, -1.0, -0.3, 0.3, 1.0, 2.0, 700.0):
        assert abs(ref.exp_e7(x) / math.exp(x) - 1) < 3e-16

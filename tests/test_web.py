"""The JavaScript decoder (web/) against nnc: its integer layer in Node (every golden file,
and damaged files refused exactly when nnc refuses them, otherwise the same integers), and
whole decodes in headless Chromium (Debian's chromium, driven by puppeteer-core) within the
conformance tolerance of nnc-v1.md §11: every golden file, and a fresh Kodak kodim23 file,
at most 2 levels from `nnc decompress` with the PSNR within 0.05 dB."""
import json
import os
import random
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nnc import container
from nnc.errors import FormatError, ModelError
from nnc.metrics import psnr
import make_vectors
from mutate import join_sections, mutate, split_sections
from test_reference_decoder import make_fresh_files

ROOT = Path(__file__).resolve().parents[1]
WEB = ROOT / "web"
GOLDEN = ROOT / "formats" / "golden"
KODIM23 = Path("/work/shared/data/kodak/kodim23.png")

NODE = shutil.which("node")
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed (.ci/run "
                                "installs it with chromium)")
needs_chromium = pytest.mark.skipif(
    NODE is None or CHROMIUM is None or not (WEB / "node_modules" / "puppeteer-core").is_dir(),
    reason="needs node, Debian's chromium and web/node_modules (.ci/run: apt-get install "
           "chromium; npm ci in web/)")


def _golden():
    return json.loads((GOLDEN / "golden.json").read_text())["files"]


def _fresh_files() -> list[bytes]:
    """test_reference_decoder's fresh files."""
    return make_fresh_files()


def _reframe(data: bytes, tag: bytes, payload: bytes) -> bytes:
    secs = [(t, payload if t == tag else p) for t, p in split_sections(data)]
    return join_sections(data[:container.SIGNATURE_BYTES], secs)


def _hostile_cases(fresh: list[bytes]) -> list[tuple[str, bytes, int]]:
    """(what, bytes, pixel limit): the damage of tests/test_hostile.py and
    tests/test_reference_decoder.py."""
    sources = [(GOLDEN / e["nnc"]).read_bytes() for e in _golden()] + fresh
    cases = [("fresh", d, 10 ** 8) for d in fresh]
    for d in sources[::3]:                                   # truncations
        for cut in (0, 5, 9, 10, 17, len(d) // 2, len(d) - 13, len(d) - 1):
            cases.append(("truncated", d[:cut], 10 ** 8))
    d = fresh[0]
    z2, z2ix, z1 = (dict(split_sections(d))[t] for t in (b"Z2SA", b"Z2IX", b"Z1SA"))
    n_out, n_groups = struct.unpack_from("<II", z2)
    prefix, secs = d[:container.SIGNATURE_BYTES], split_sections(d)
    tags = [t for t, _ in secs]
    h = container.read(d).header
    huge, unknown, other = (container.read(d).header for _ in range(3))
    huge.width = huge.height = 60000
    unknown.model_name = "no-such-model"
    other.weights_sha256 = bytes(32)
    crafted = [
        _reframe(d, b"Z2IX", z2ix[:len(z2ix) // 4 * 4 - 12]),
        _reframe(d, b"Z2IX", z2ix + b"\0"),
        _reframe(d, b"Z1SA", z1 + b"\0\0"),
        _reframe(d, b"Z2SA", z2[:8] + bytes([16]) + z2[9:]),
        _reframe(d, b"Z2SA", struct.pack("<II", n_out, n_groups - 1) + z2[8:]),
        _reframe(d, b"Z2SA", z2[:10]),
        _reframe(d, b"Z1SA", struct.pack("<I", 1 << 30) + z1[4:]),
        _reframe(d, b"Z2SA", struct.pack("<IIBBB", 0, 10 ** 9, 0, 0, 0) + z2[11:]),
        _reframe(d, b"Z2SA", z2[:11] + b"\xff" * (len(z2) - 11)),
        _reframe(d, b"Z1SA", z1[:4] + bytes(len(z1) - 4)),
        join_sections(prefix, secs[:tags.index(b"Z1SA")] + [(b"Z1SI", z1)]
                      + secs[tags.index(b"Z1SA"):]),
        join_sections(prefix, [s for s in secs if s[0] != b"Z1IX"]),
        *(join_sections(prefix, [(b"HEAD", x.pack())] + secs[1:]) for x in (huge, unknown, other)),
    ]
    cases += [("crafted", c, 10 ** 8) for c in crafted]
    rng = random.Random(20261206)
    cases += [("mutated", mutate(sources[i % len(sources)], rng), 1 << 16) for i in range(400)]
    coded = (b"Z2SA", b"Z2SI", b"Z2IX", b"Z1SA", b"Z1SI", b"Z1IX", b"ALPH")
    for i in range(200):                                     # damaged streams, CRCs valid
        data = sources[i % len(sources)]
        secs = split_sections(data)
        k = rng.choice([j for j, (t, _) in enumerate(secs) if t in coded])
        tag, b = secs[k][0], bytearray(secs[k][1])
        if b:
            j = rng.randrange(len(b))
            op = rng.randrange(3)
            if op == 0:
                b[j] ^= 1 << rng.randrange(8)
            elif op == 1:
                b[j:] = bytes(rng.randrange(256) for _ in range(len(b) - j))
            else:
                del b[j:]
        secs[k] = (tag, bytes(b))
        cases.append(("stream", join_sections(data[:container.SIGNATURE_BYTES], secs), 1 << 16))
    return cases


@needs_node
def test_node_integer_layer(tmp_path):
    cases, refused = [], 0
    for i, (what, data, max_pixels) in enumerate(_hostile_cases(_fresh_files())):
        name = f"{i:04d}.nnc"
        (tmp_path / name).write_bytes(data)
        case = {"file": name, "what": what, "max_pixels": max_pixels}
        try:
            codes = make_vectors.codes_vectors(data, max_pixels)
        except (FormatError, ModelError):
            case["refused"] = True
            refused += 1
        else:
            case["refused"] = False
            case["codes"] = f"{i:04d}.json"
            (tmp_path / case["codes"]).write_text(json.dumps(codes))
        cases.append(case)
    assert refused > 300 and len(cases) - refused > 30, refused
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    r = subprocess.run([NODE, "--test", "test/integers.test.js"], cwd=WEB, capture_output=True,
                       text=True, env={**os.environ, "NNC_HOSTILE_DIR": str(tmp_path)},
                       timeout=600)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "# skipped 0" in r.stdout and "# fail 0" in r.stdout and "decoded alike" in r.stdout, r.stdout[-2000:]


def _browser_decode(tmp_path, files: list[Path]) -> dict:
    r = subprocess.run([NODE, "test/browser.js", "--out", str(tmp_path), *map(str, files)],
                       cwd=WEB, capture_output=True, text=True, timeout=900,
                       env={**os.environ, "CHROMIUM": CHROMIUM})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return json.loads((tmp_path / "results.json").read_text())


def _rgba(tmp_path, name: str, entry: dict) -> np.ndarray:
    assert "error" not in entry, entry
    return np.fromfile(tmp_path / f"{name}.rgba", np.uint8).reshape(
        entry["height"], entry["width"], 4)


def _within(got: np.ndarray, ref: np.ndarray, source: np.ndarray | None = None) -> None:
    """§11: at most 2 levels apart; the PSNR against the source within 0.05 dB (without a
    source: at least 50 dB against nnc's decode, or equal)."""
    assert got.shape == ref.shape
    assert np.abs(got.astype(int) - ref).max() <= 2
    if source is not None:
        assert abs(psnr(source, got) - psnr(source, ref)) <= 0.05
    elif not np.array_equal(got, ref):
        assert psnr(ref, got) >= 50


@needs_chromium
def test_chromium_decodes_every_golden_file(tmp_path):
    cut = tmp_path / "cut.nnc"           # a refusal, through the page
    cut.write_bytes((GOLDEN / _golden()[-1]["nnc"]).read_bytes()[:60])
    results = _browser_decode(tmp_path, [GOLDEN / e["nnc"] for e in _golden()] + [cut])
    assert "truncated" in results["cut.nnc"]["error"]
    element = results["_element"]        # <nnc-img>: drawn as decode() decodes; alt on error
    assert element["drawn"] and element["same"] and element["refused"] and element["alt_shown"]
    assert "signature" in element["message"]
    for e in _golden():
        got = _rgba(tmp_path, e["nnc"], results[e["nnc"]])
        ref = Image.open(GOLDEN / e["decoded"])
        if ref.mode == "L":
            assert np.array_equal(got[..., 0], got[..., 1]) and np.array_equal(got[..., 0], got[..., 2])
            _within(got[..., 0], np.asarray(ref))
        else:
            _within(got[..., :3], np.asarray(ref.convert("RGB")))
        alpha = np.asarray(ref)[..., 3] if ref.mode == "RGBA" else np.full(got.shape[:2], 255)
        assert np.array_equal(got[..., 3], alpha), e["nnc"]


@needs_chromium
@pytest.mark.kodak
def test_chromium_decodes_fresh_kodim23(tmp_path):
    nnc_file, png = tmp_path / "kodim23.nnc", tmp_path / "kodim23.png"
    subprocess.run([sys.executable, "-m", "nnc.cli", "compress", str(KODIM23), str(nnc_file)],
                   check=True, timeout=600)
    subprocess.run([sys.executable, "-m", "nnc.cli", "decompress", str(nnc_file), str(png)],
                   check=True, timeout=600)
    results = _browser_decode(tmp_path, [nnc_file])
    got = _rgba(tmp_path, "kodim23.nnc", results["kodim23.nnc"])[..., :3]
    _within(got, np.asarray(Image.open(png).convert("RGB")),
            np.asarray(Image.open(KODIM23).convert("RGB")))

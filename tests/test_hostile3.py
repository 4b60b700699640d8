"""Hostile input, round 3 (issue 30): nnc never writes a file it cannot read, never loses a
model, and behaves like a library. One test (or a few) per item of the issue; the crafted
files come from tests/make_crafted.py."""
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, PngImagePlugin

import nnc
from nnc.cli import main
from nnc.codes import weights_dir
from nnc.errors import InputError, ModelError, OutputError
from nnc.image_io import RasterImage, read_image
from conftest import png_bytes, smooth_image
from make_crafted import icc_profile, make_all

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def crafted(tmp_path_factory):
    return make_all(tmp_path_factory.mktemp("crafted"))


# --- 1. the encoder enforces every limit the decoder enforces ---------------------------

@pytest.mark.parametrize("name,size", [("wide-65537x1.png", "65537x1"),
                                       ("tall-1x100000000.png", "1x100000000")])
def test_images_the_format_cannot_hold_are_refused_by_the_cli(crafted, tmp_path, name, size):
    out = tmp_path / "o.nnc"
    r = CliRunner().invoke(main, ["compress", str(crafted[name]), str(out)])
    assert r.exit_code == 3, r.output
    assert f"image size {size} is out of range" in r.stderr
    assert not out.exists()


def test_the_decoder_refuses_the_same_sizes_in_the_same_words(crafted):
    """The encoder's message is the decoder's (container.Header.validate)."""
    from nnc import container
    data = (ROOT / "formats/golden/2026-11-30-kodim23-crop-q50.nnc").read_bytes()
    c = container.read(data)
    c.header.width = 65537
    c.header.height = 1
    with pytest.raises(nnc.errors.FormatError, match="image size 65537x1 is out of range"):
        container.read(container.write(c))


def test_the_api_refuses_them_before_encoding(crafted):
    with pytest.raises(InputError, match="image size 70000x1 is out of range"):
        nnc.compress(np.zeros((1, 70000, 3), np.uint8))
    with pytest.raises(InputError, match="image size 1x100000000 is out of range"):
        nnc.compress(crafted["tall-1x100000000.png"])
    with pytest.raises(InputError, match="image size 65537x1 is out of range"):
        nnc.compress(Image.new("L", (65537, 1)))
    assert InputError.exit_code == 3


def test_max_pixels_is_checked_on_the_header(crafted):
    """A header over --max-pixels is refused before its (absent) pixels are decoded."""
    from make_crafted import png_declaring
    with pytest.raises(InputError, match="over the limit of 1000000"):
        read_image(png_declaring(2000, 2000), max_pixels=10 ** 6)


# --- 2. an installed model name is never replaced (unless --replace) --------------------

@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny model's checkpoint (1 step)."""
    base = tmp_path_factory.mktemp("train")
    data = base / "data"
    data.mkdir()
    for i in range(2):
        Image.fromarray(smooth_image(80, 80, i)).save(data / f"{i}.png")
    r = CliRunner().invoke(main, ["train", str(data), str(base / "run"), "--steps", "1",
                                  "--batch", "2", "--arch", "8,8,8,8", "--crop", "64",
                                  "--threads", "1", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    return base / "run" / "ckpt.pt"


@pytest.fixture
def scratch(tmp_path):
    """A weights folder with the shipped manifest (the shipped one is never touched)."""
    d = tmp_path / "weights"
    d.mkdir()
    shutil.copy(weights_dir() / "manifest.json", d)
    return d


def _small():
    return RasterImage(smooth_image(64, 64), gray=False, alpha=None)


def test_a_second_install_of_a_name_is_refused(checkpoint, scratch):
    from nnc.model.weights import install
    first = install(checkpoint, "mine", [], directory=scratch)
    pt = (scratch / "mine.pt").read_bytes()
    with pytest.raises(ModelError, match="already installed"):
        install(checkpoint, "mine", [_small()], directory=scratch)
    assert (scratch / "mine.pt").read_bytes() == pt
    assert json.loads((scratch / "manifest.json").read_text())["models"]["mine"] == first
    again = install(checkpoint, "mine", [_small()], directory=scratch, replace=True)
    assert again["shard_table_from"] == "1 training images x 5 rates"
    assert hashlib.sha256((scratch / "mine.pt").read_bytes()).hexdigest() == again["sha256"]


def test_two_installs_racing_for_a_name_leave_the_first(checkpoint, scratch):
    """The name is checked again under the manifest's lock: an install that took the name
    while this one was making its shard table wins, and keeps its files."""
    from nnc.model.weights import install
    won = {}

    def meanwhile(done, total):
        won.update(install(checkpoint, "raced", [], directory=scratch))

    with pytest.raises(ModelError, match="already installed"):
        install(checkpoint, "raced", [_small()], directory=scratch, progress=meanwhile)
    m = json.loads((scratch / "manifest.json").read_text())
    assert m["models"]["raced"] == won
    for f in ("raced.pt", "raced.shard-table.npy"):
        assert (scratch / f).exists()
    assert hashlib.sha256((scratch / "raced.pt").read_bytes()).hexdigest() == won["sha256"]
    assert not [p for p in scratch.iterdir() if p.name.startswith(".install-")]


def test_the_cli_refuses_an_installed_name_and_knows_replace(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    r = CliRunner().invoke(main, ["train", str(data), str(tmp_path / "run"), "--export",
                                  "pln-gpu-1"])
    assert r.exit_code == 6 and "--replace" in r.stderr
    r = CliRunner().invoke(main, ["train", str(data), str(tmp_path / "run"), "--replace"])
    assert r.exit_code == 2 and "needs --export" in r.stderr


# --- 3. the manifest is written atomically, under a lock, never recreated ---------------

def test_a_failed_manifest_write_leaves_it_whole(scratch):
    """A file-size limit (as a full disk) while writing: the old manifest stays."""
    before = (scratch / "manifest.json").read_bytes()
    code = f"""
import resource, signal, sys
sys.path.insert(0, {str(ROOT)!r})
from pathlib import Path
from nnc.model.weights import manifest, manifest_lock, write_manifest
from nnc.errors import OutputError
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
d = Path({str(scratch)!r})
m = manifest(d)
m["models"]["pln-gpu-1"]["padding"] = "x" * 100000
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
with manifest_lock(d):
    try:
        write_manifest(m, d)
    except OutputError as e:
        print("refused:", e)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "refused:" in r.stdout and "it is unchanged" in r.stdout, r.stdout + r.stderr
    assert (scratch / "manifest.json").read_bytes() == before
    assert sorted(p.name for p in scratch.iterdir()) == [".manifest.lock", "manifest.json"]


def test_a_missing_manifest_is_not_recreated(checkpoint, scratch):
    from nnc.model.weights import install
    (scratch / "manifest.json").unlink()
    with pytest.raises(ModelError, match="no weights manifest"):
        install(checkpoint, "lonely", [], directory=scratch)
    assert not (scratch / "manifest.json").exists()
    assert not (scratch / "lonely.pt").exists()


def test_installs_write_the_manifest_under_its_lock(checkpoint, scratch, monkeypatch):
    """When an install writes the manifest, the lock is held (another taker is refused)."""
    import fcntl
    from nnc.model import weights
    held = []
    real = weights.write_manifest

    def spy(m, directory):
        fd = os.open(directory / ".manifest.lock", os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            held.append(False)
        except BlockingIOError:
            held.append(True)
        finally:
            os.close(fd)
        real(m, directory)

    monkeypatch.setattr(weights, "write_manifest", spy)
    weights.install(checkpoint, "locked", [], directory=scratch)
    assert held == [True]
    assert "locked" in json.loads((scratch / "manifest.json").read_text())["models"]


# --- 5. Pillow's bomb guard is never turned off for the process -------------------------

def test_reading_an_image_leaves_pillows_limits_alone(monkeypatch):
    """While nnc reads an image, Pillow's process-wide limits are what they were (another
    thread's Image.open keeps its guard); and nnc's --max-pixels is still the only limit."""
    seen = []
    original = PngImagePlugin.PngImageFile._open

    def spy(self):
        seen.append((Image.MAX_IMAGE_PIXELS, PngImagePlugin.MAX_TEXT_CHUNK))
        return original(self)

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "_open", spy)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)       # Pillow's guard, made tiny
    data = png_bytes(smooth_image(50, 50))
    assert read_image(data).rgb.shape == (50, 50, 3)             # 2,500 > 2 x 100: nnc's
    nnc.compress(data, refine=0)                                 # limit is the one applied
    assert seen and all(s == (100, PngImagePlugin.MAX_TEXT_CHUNK) for s in seen)
    with pytest.raises(Image.DecompressionBombError):            # ... and Pillow's stays on
        Image.open(io.BytesIO(data))


# --- 6. the API validates its arguments before any encoding -----------------------------

@pytest.mark.parametrize("kwargs,error,name", [
    (dict(refine=10 ** 9), ValueError, "refine"), (dict(refine=-1), ValueError, "refine"),
    (dict(refine=1.5), TypeError, "refine"), (dict(refine=True), TypeError, "refine"),
    (dict(seed=-1), ValueError, "seed"), (dict(seed=2 ** 70), ValueError, "seed"),
    (dict(seed="3"), TypeError, "seed"), (dict(seed=1.0), TypeError, "seed"),
    (dict(quality="0.5"), TypeError, "quality"), (dict(quality=1.5), ValueError, "quality"),
    (dict(quality=float("nan")), ValueError, "quality"),
    (dict(bpp=0), ValueError, "bpp"), (dict(bpp=float("inf")), ValueError, "bpp"),
    (dict(model=3), TypeError, "model"), (dict(device=0), TypeError, "device")])
def test_api_arguments_are_checked_up_front(monkeypatch, kwargs, error, name):
    from nnc import codec
    monkeypatch.setattr(codec, "compress", lambda *a, **k: pytest.fail("encoding started"))
    monkeypatch.setattr(nnc.api, "_to_raster", lambda *a: pytest.fail("the image was read"))
    with pytest.raises(error, match=name):
        nnc.compress(np.zeros((8, 8, 3), np.uint8), **kwargs)


def test_the_cli_ranges_are_the_apis():
    from nnc.cli import compress
    opts = {p.name: p.type for p in compress.params}
    assert (opts["seed"].min, opts["seed"].max) == (0, nnc.MAX_SEED)
    assert (opts["refine_steps"].min, opts["refine_steps"].max) == (0, nnc.MAX_REFINE)
    assert nnc.compress(np.full((8, 8, 3), 99, np.uint8), seed=np.uint32(2 ** 32 - 1),
                        refine=np.int64(0))[:4] == b"\x89NNC"


# --- 9. colour profiles -------------------------------------------------------------------

def test_a_16_mib_profile_is_left_out_of_a_jpeg_with_a_warning(crafted, tmp_path):
    out = tmp_path / "o.jpg"
    r = CliRunner().invoke(main, ["decompress", str(crafted["icc-16mib.nnc"]), str(out)])
    assert r.exit_code == 0, r.output
    assert "warning:" in r.stderr and "written without it" in r.stderr
    im = Image.open(out)
    im.load()                                  # a whole JPEG
    assert im.size == (128, 96) and "icc_profile" not in im.info
    png = tmp_path / "o.png"                   # PNG readers take 1 MiB: left out too
    r = CliRunner().invoke(main, ["decompress", str(crafted["icc-16mib.nnc"]), str(png)])
    assert r.exit_code == 0 and "written without it" in r.stderr
    Image.open(png).load()                     # stock Pillow reopens it
    assert nnc.decompress(crafted["icc-16mib.nnc"]).info["icc_profile"] == \
        icc_profile(b"RGB ", 16 << 20)         # the API hands the profile over as it is


@pytest.mark.parametrize("name", ["icc-rgb-on-gray.nnc", "icc-cmyk.nnc"])
def test_a_profile_that_contradicts_the_header_is_ignored(crafted, tmp_path, name):
    out = tmp_path / "o.png"
    r = CliRunner().invoke(main, ["decompress", str(crafted[name]), str(out)])
    assert r.exit_code == 0, r.output
    assert "icc_profile" not in Image.open(out).info
    assert "icc_profile" not in nnc.decompress(crafted[name]).info


def test_png_profiles_past_pillows_text_limit(crafted):
    """2 MiB (over Pillow's 1 MiB): kept; 17 MiB (over the format's 16): dropped, the pixels
    kept. Pillow's limit itself is not changed."""
    limit = PngImagePlugin.MAX_TEXT_CHUNK
    assert read_image(crafted["icc-2mib.png"].read_bytes()).icc == icc_profile(b"RGB ", 2 << 20)
    img = read_image(crafted["icc-17mib.png"].read_bytes())
    assert img.icc is None and img.rgb.shape == (16, 24, 3)
    assert PngImagePlugin.MAX_TEXT_CHUNK == limit


def test_a_png_nnc_writes_reopens_in_stock_pillow(crafted, tmp_path):
    """A profile up to 1 MiB goes into the PNG, and Pillow reads it back."""
    from nnc.image_io import encode_for
    small = RasterImage(smooth_image(8, 8), False, None, icc_profile(b"RGB ", 1 << 20))
    back = Image.open(io.BytesIO(encode_for(small, "x.png")))
    assert back.info["icc_profile"] == small.icc
    big = RasterImage(smooth_image(8, 8), False, None, icc_profile(b"RGB ", (1 << 20) + 1))
    said = []
    Image.open(io.BytesIO(encode_for(big, "x.png", said.append))).load()
    assert said and "PNG" in said[0]


# --- 4. workers stop when their batch's process is killed outright ----------------------

def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"   # a zombie has ended
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_kill_9_of_the_batch_ends_its_workers(tmp_path):
    """Handshake: each worker says it has started a job (a file named by its pid); then the
    batch's process is killed with SIGKILL, and every worker must end (by itself: nobody
    terminates it). The deadline below only bounds a failing run."""
    import signal
    import time
    ready = tmp_path / "ready"
    ready.mkdir()
    code = f"""
import sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
import batch_jobs
from nnc import cli
if __name__ == "__main__":
    pairs = [(n, {str(tmp_path)!r} + "/" + n) for n in ["a", "b", "c"]]
    cli._batch(pairs, batch_jobs.wait_forever, {{"ready": {str(ready)!r}}}, "x", jobs=2)
"""
    script = tmp_path / "drive.py"
    script.write_text(code)
    parent = subprocess.Popen([sys.executable, str(script)], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        def started():      # a worker's file, once renamed into place (not its .tmp)
            return [int(p.name) for p in ready.iterdir() if p.name.isdigit()]
        while len(started()) < 2:                      # both workers are in a job
            assert parent.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        workers = started()
        assert len(workers) == 2 and all(map(_alive, workers))
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 60
    while any(map(_alive, workers)) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = [w for w in workers if _alive(w)]
    for w in left:
        os.kill(w, signal.SIGKILL)                     # do not leave them to the machine
    assert not left, "workers outlived their batch"
    assert not list(tmp_path.glob("*.part")) and not list(tmp_path.glob(".nnc-*"))


# --- 7. the Pillow plugin behaves like Pillow's own -----------------------------------

GOLDEN_GRAY = ROOT / "formats/golden/2026-11-30-kodim23-gray-q20.nnc"


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="counts /proc/self/fd")
def test_load_closes_the_file():
    Image.open(GOLDEN_GRAY).load()            # the decoder's own, once: ONNX Runtime's
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        im = Image.open(GOLDEN_GRAY)
        im.load()
        assert im.fp is None
    assert len(os.listdir("/proc/self/fd")) == before
    with Image.open(GOLDEN_GRAY) as im:       # and the context manager still works
        assert im.convert("L").size == (90, 70)


def test_identifying_reads_only_the_header():
    class Counting(io.BytesIO):
        read_bytes = 0

        def read(self, n=-1):
            out = super().read(n)
            self.read_bytes += len(out)
            return out

    f = Counting(GOLDEN_GRAY.read_bytes() + bytes(4 << 20))   # a long tail after it
    im = Image.open(f)
    assert im.format == "NNC" and im.size == (90, 70)
    assert f.read_bytes < 200


def test_load_errors_are_oserrors_without_cli_options():
    from nnc import container
    c = container.read(GOLDEN_GRAY.read_bytes())
    c.header.weights_sha256 = bytes(32)            # other weights than the installed ones
    im = Image.open(io.BytesIO(container.write(c)))
    with pytest.raises(OSError) as e:
        im.load()
    assert isinstance(e.value.__cause__, ModelError)
    assert "other weights" in str(e.value) and "--" not in str(e.value)
    damaged = bytearray(GOLDEN_GRAY.read_bytes())
    damaged[-40] ^= 0xFF                           # a payload byte: its CRC fails
    im = Image.open(io.BytesIO(bytes(damaged)))
    with pytest.raises(OSError, match="checksum mismatch"):
        im.load()


# --- 8. exit codes and messages ----------------------------------------------------------

def test_names_too_long_are_output_and_input_errors(tmp_path):
    long = str(tmp_path / ("a" * 300))
    r = CliRunner().invoke(main, ["decompress", str(GOLDEN_GRAY), long + ".png"])
    assert r.exit_code == 5 and "File name too long" in r.stderr, r.output
    r = CliRunner().invoke(main, ["info", long + ".nnc"])
    assert r.exit_code == 3 and "File name too long" in r.stderr, r.output


@pytest.fixture
def weights_copy(tmp_path, monkeypatch):
    """A copy of the weights folder (pln-gpu-1's files and the manifest), used by every
    reader of it here."""
    from nnc import codes, decoder
    from nnc.model import weights
    d = tmp_path / "weights"
    d.mkdir()
    m = json.loads((weights_dir() / "manifest.json").read_text())
    for f in weights_dir().glob("pln-gpu-1.*"):
        shutil.copy(f, d)
    (d / "manifest.json").write_text(json.dumps(m))
    for mod in (codes, decoder, weights):
        monkeypatch.setattr(mod, "weights_dir", lambda: d)
    for cached in (codes.model_entry, decoder.sessions, weights.load_model):
        cached.cache_clear()
    yield d
    for cached in (codes.model_entry, decoder.sessions, weights.load_model):
        cached.cache_clear()


GOLDEN_RGB = ROOT / "formats/golden/2026-11-30-kodim23-crop-q50.nnc"


def test_a_manifest_without_its_keys_is_a_model_problem(weights_copy, tmp_path):
    m = json.loads((weights_copy / "manifest.json").read_text())
    del m["models"]["pln-gpu-1"]["config"]
    (weights_copy / "manifest.json").write_text(json.dumps(m))
    for args in (["models"], ["decompress", str(GOLDEN_RGB), str(tmp_path / "o.png")]):
        r = CliRunner().invoke(main, args)
        assert r.exit_code == 6 and "is damaged" in r.stderr and "reinstall" in r.stderr, \
            r.output
    (weights_copy / "manifest.json").write_text("{}")
    data = tmp_path / "data"
    data.mkdir()
    r = CliRunner().invoke(main, ["train", str(data), str(tmp_path / "run"), "--export", "new"])
    assert r.exit_code == 6 and "reinstall" in r.stderr and not (tmp_path / "run").exists()


def test_a_graph_that_does_not_fit_its_model(weights_copy, tmp_path):
    m = json.loads((weights_copy / "manifest.json").read_text())
    graphs = m["models"]["pln-gpu-1"]["onnx"]
    graphs["synthesis"] = dict(graphs["prior1"])      # the prior's graph in its place
    (weights_copy / "manifest.json").write_text(json.dumps(m))
    r = CliRunner().invoke(main, ["decompress", str(GOLDEN_RGB), str(tmp_path / "o.png")])
    assert r.exit_code == 6 and "synthesis graph" in r.stderr and "does not fit" in r.stderr, \
        r.output
    assert not (tmp_path / "o.png").exists()


def test_a_missing_graph_is_named(weights_copy, tmp_path, monkeypatch):
    from nnc import decoder
    (weights_copy / "pln-gpu-1.synthesis.onnx").unlink()
    r = CliRunner().invoke(main, ["decompress", str(GOLDEN_RGB), str(tmp_path / "a.png")])
    assert r.exit_code == 0, r.output                 # torch is here: it decodes, and says so
    assert "nnc: warning:" in r.stderr and "synthesis graph" in r.stderr \
        and "PyTorch" in r.stderr
    monkeypatch.setattr(decoder, "_torch_installed", lambda: False)   # a decoder-only install
    r = CliRunner().invoke(main, ["decompress", str(GOLDEN_RGB), str(tmp_path / "b.png")])
    assert r.exit_code == 6 and "synthesis graph" in r.stderr and "missing" in r.stderr, \
        r.output
    assert "needs PyTorch" not in r.stderr


def test_an_empty_export_name_is_refused(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    r = CliRunner().invoke(main, ["train", str(data), str(tmp_path / "run"), "--export", ""])
    assert r.exit_code == 6 and "not a model name" in r.stderr
    assert not (tmp_path / "run").exists()


def test_file_names_cannot_forge_lines(tmp_path):
    forged = tmp_path / "x\nnnc: 0 of 2 inputs failed.nnc"
    shutil.copy(GOLDEN_GRAY, forged)
    r = CliRunner().invoke(main, ["info", str(forged)])
    assert r.exit_code == 0 and r.stdout.splitlines()[0].startswith(str(tmp_path))
    assert "x\\nnnc: 0 of 2" in r.stdout.splitlines()[0]
    r = CliRunner().invoke(main, ["decompress", str(forged), str(tmp_path / "nope.nnc"),
                                  "-o", str(tmp_path / "out")])
    assert r.exit_code == 3
    assert [line for line in r.stderr.splitlines() if line.startswith("nnc: 0 of")] == []
    assert len(r.stderr.splitlines()) == 2             # one error line, one summary


def test_library_warnings_are_one_line(tmp_path, monkeypatch, png):
    import warnings
    from nnc import image_io
    real = image_io.read_image

    def warns(*a, **k):
        warnings.warn("Possibly corrupt EXIF data.\nSkipping tag 1", UserWarning)
        return real(*a, **k)

    monkeypatch.setattr(image_io, "read_image", warns)
    r = CliRunner().invoke(main, ["compress", "--refine", "0", str(png), str(tmp_path / "o.nnc")])
    assert r.exit_code == 0, r.output
    assert r.stderr == "nnc: warning: Possibly corrupt EXIF data.\\nSkipping tag 1\n"


# --- 10. the engines' pixels on files with extreme level-1 values -----------------------

def test_engines_agree_within_the_stated_bound_on_extreme_latents(monkeypatch):
    """A file crafted with level-1 posteriors pushed 16 times as far from the prior as the
    encoder puts them (the coder sends them, mostly as outliers): ONNX Runtime's and
    torch's decodes differ by at most 2 levels (docs/cli.md, "Decoding without torch")."""
    from nnc import codec, decoder
    from nnc.codes import read_codes
    real = codec.refine_level1

    def pushed(*a, **kw):
        mu, s = real(*a, **kw)
        mu_p, _ = kw["prior"]
        return mu_p + 16 * (mu - mu_p), s

    monkeypatch.setattr(codec, "refine_level1", pushed)
    img = RasterImage(smooth_image(64, 96, 3), gray=False, alpha=None)
    codes = read_codes(codec.compress(img, settings=codec.refined(0)), 10 ** 8)
    onnx = decoder.decompress_codes(codes).rgb.astype(int)
    torch_ = codec.decompress_codes(codes, device="cpu").rgb.astype(int)
    diff = np.abs(onnx - torch_)
    assert diff.max() <= 2
    assert (diff > 0).mean() < 0.01

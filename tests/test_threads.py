"""Thread count and wait policy (nnc/threads.py), and NNC_PRECISION (model/fused.py)."""
import pytest
import torch

from nnc import threads
from nnc.errors import DeviceError
from nnc.model.fused import encoder_dtype, fast_bf16


def test_omp_num_threads_in_openmp_list_form(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2,1")
    assert threads.intra_op_threads() == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "")
    assert 1 <= threads.intra_op_threads() <= threads.usable_cores()


def test_free_cores_leave_out_other_runnable_work(monkeypatch):
    cores = threads.usable_cores()
    monkeypatch.setattr(threads, "runnable_others", lambda: 0)
    assert threads.free_cores() == cores
    monkeypatch.setattr(threads, "runnable_others", lambda: cores + 5)
    assert threads.free_cores() == 1
    if cores > 1:
        monkeypatch.setattr(threads, "runnable_others", lambda: 1)
        assert threads.free_cores() == cores - 1


@pytest.mark.skipif(not threads.os.path.isdir("/proc/self/task"), reason="Linux /proc")
def test_this_process_own_busy_threads_are_not_other_work():
    """A thread of this process computing (as OpenBLAS's do after `import numpy`) counts
    as its own, not as another process's work that would take a core."""
    import hashlib
    import threading
    stop = threading.Event()
    data = bytes(16 << 20)

    def busy():                       # sha256 of a large buffer runs without the GIL
        while not stop.is_set():
            hashlib.sha256(data).digest()

    t = threading.Thread(target=busy)
    t.start()
    try:
        assert max(threads.own_runnable() for _ in range(20)) >= 2
    finally:
        stop.set()
        t.join()
    assert threads.own_runnable() >= 1


def test_free_cores_ignore_work_seen_once(monkeypatch):
    """A transient runnable thread (one look of several) does not take a core; work seen in
    every look does."""
    cores = threads.usable_cores()
    looks = iter([1, 0, 1])
    monkeypatch.setattr(threads, "runnable_others", lambda: next(looks))
    monkeypatch.setattr(threads, "RECHECK_GAP_S", 0.0)
    assert threads.free_cores() == cores
    monkeypatch.setattr(threads, "runnable_others", lambda: 1)
    assert threads.free_cores() == max(1, cores - 1)


def test_runnable_others_reads_this_machine():
    assert threads.runnable_others() >= 0


def test_configure_keeps_what_the_user_set(monkeypatch):
    for name in ("GOMP_SPINCOUNT", "KMP_BLOCKTIME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    threads.configure()
    assert (threads.os.environ["OMP_NUM_THREADS"], threads.os.environ["OMP_WAIT_POLICY"]) \
        == ("3", "ACTIVE")
    assert "GOMP_SPINCOUNT" not in threads.os.environ     # the user chose a policy
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.delenv("OMP_WAIT_POLICY")
    for name in ("GOMP_SPINCOUNT", "KMP_BLOCKTIME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(threads, "runnable_others", lambda: 0)
    threads.configure()
    # a short spin, then sleep: GNU OpenMP's spin count, the others' block time 0
    assert "OMP_WAIT_POLICY" not in threads.os.environ
    assert threads.os.environ["GOMP_SPINCOUNT"] == str(threads.SPIN_ROUNDS)
    assert threads.os.environ["KMP_BLOCKTIME"] == "0"
    assert threads.os.environ["OMP_NUM_THREADS"] == str(threads.usable_cores())


def test_nnc_precision_forces_the_encoder_path(monkeypatch):
    monkeypatch.setenv("NNC_PRECISION", "float32")
    assert encoder_dtype("cpu") == torch.float32
    monkeypatch.setenv("NNC_PRECISION", "BFloat16")
    assert encoder_dtype("cpu") == torch.bfloat16
    assert encoder_dtype("cpu", "float32") == torch.float32     # a setting named outright wins
    monkeypatch.setenv("NNC_PRECISION", "")
    assert encoder_dtype("cpu") == (torch.bfloat16 if fast_bf16() else torch.float32)
    monkeypatch.setenv("NNC_PRECISION", "half")
    with pytest.raises(DeviceError, match="NNC_PRECISION=half"):
        encoder_dtype("cpu")


def test_nnc_precision_float32_writes_the_float32_file(monkeypatch, tmp_path):
    """The CLI honours it: the file equals the one made with the float32 settings."""
    import numpy as np
    from click.testing import CliRunner
    from nnc import codec
    from nnc.cli import main
    from nnc.image_io import RasterImage
    from PIL import Image
    rgb = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    monkeypatch.setenv("NNC_PRECISION", "float32")
    r = CliRunner().invoke(main, ["compress", "--device", "cpu", str(tmp_path / "a.png"),
                                  str(tmp_path / "a.nnc")])
    assert r.exit_code == 0, r.output
    monkeypatch.delenv("NNC_PRECISION")
    s = codec.default_settings("cpu").replace(refine_precision="float32",
                                              analysis_precision="float32")
    want = codec.compress(RasterImage(rgb, False, None), 0.5, device="cpu", settings=s)
    assert (tmp_path / "a.nnc").read_bytes() == want
    monkeypatch.setenv("NNC_PRECISION", "half")
    r = CliRunner().invoke(main, ["compress", "--device", "cpu", str(tmp_path / "a.png"),
                                  str(tmp_path / "b.nnc")])
    assert r.exit_code == 2 and "NNC_PRECISION=half" in r.output
    assert not (tmp_path / "b.nnc").exists()

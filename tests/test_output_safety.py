"""Outputs and inputs that must never be lost or clobbered (issue 15: items 1, 4, 5, 6, 7,
10, 12), each reproduced first."""
import errno
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import nnc.cli as cli
from nnc.cli import main
from nnc.errors import InputError, OutputError
from conftest import png_bytes, smooth_image


@pytest.fixture
def nnc_file(runner, png, tmp_path):
    out = tmp_path / "x.nnc"
    assert runner.invoke(main, ["compress", "--refine", "0", str(png), str(out)]).exit_code == 0
    return out


def test_a_device_is_written_into_not_replaced(runner, nnc_file):
    before = os.stat("/dev/null")
    for args in (["decompress", "-f", str(nnc_file), "/dev/null"],
                 ["decompress", str(nnc_file), "/dev/null"]):
        r = runner.invoke(main, args)
        assert r.exit_code == 0, r.output
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_ino == before.st_ino


def test_a_fifo_is_written_into(nnc_file, tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE)
    w = subprocess.run([sys.executable, "-m", "nnc.cli", "decompress", "-f", str(nnc_file),
                        str(fifo)], capture_output=True, timeout=120)
    data = reader.communicate(timeout=30)[0]
    assert w.returncode == 0, w.stderr
    assert data[:4] == b"\x89PNG" and stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_modes_follow_the_umask_and_survive_force(runner, png, tmp_path):
    old = os.umask(0o002)
    try:
        out = tmp_path / "o.nnc"
        assert runner.invoke(main, ["compress", "--refine", "0", str(png), str(out)]).exit_code == 0
        assert stat.S_IMODE(out.stat().st_mode) == 0o664
        os.chmod(out, 0o640)
        r = runner.invoke(main, ["compress", "--refine", "0", "-f", "-q", "0.9", str(png),
                                 str(out)])
        assert r.exit_code == 0
        assert stat.S_IMODE(out.stat().st_mode) == 0o640
    finally:
        os.umask(old)


def test_no_clobber_holds_against_a_file_created_meanwhile(tmp_path, monkeypatch):
    target = tmp_path / "o.nnc"
    real_fsync = os.fsync

    def racing_writer(fd):          # another program creates the target mid-write
        target.write_bytes(b"theirs")
        real_fsync(fd)
    monkeypatch.setattr(cli.os, "fsync", racing_writer)
    with pytest.raises(OutputError, match="already exists"):
        cli.write_output(str(target), b"ours", force=False)
    assert target.read_bytes() == b"theirs"
    assert not list(tmp_path.glob("*.part"))


def test_interrupt_while_creating_the_temporary_leaves_nothing(tmp_path, monkeypatch):
    real_fdopen = os.fdopen

    def interrupted(fd, *a, **k):    # the temporary exists, nothing is written yet
        os.close(fd)
        raise KeyboardInterrupt
    monkeypatch.setattr(cli.os, "fdopen", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cli.write_output(str(tmp_path / "o.nnc"), b"data", force=False)
    monkeypatch.setattr(cli.os, "fdopen", real_fdopen)
    assert list(tmp_path.iterdir()) == []


def test_sigterm_exits_143_and_leaves_no_part_file(png, tmp_path):
    """SIGTERM inside the encoder: the command's process says on stdout when the encoder has
    started (a readiness handshake, not a sleep) and then waits there for the signal."""
    code = f"""
import sys, threading
import nnc.codec
real = nnc.codec.compress
def compress(*a, **k):          # inside the encoder: say so, and wait for the signal
    print("ready", flush=True)
    threading.Event().wait()
    return real(*a, **k)
nnc.codec.compress = compress
from nnc.cli import main
sys.argv = ["nnc", "compress", "--refine", "0", {str(png)!r}, {str(tmp_path / "o.nnc")!r}]
main()
"""
    script = tmp_path / "drive.py"
    script.write_text(code)
    p = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    assert p.stdout.readline() == b"ready\n"
    p.send_signal(signal.SIGTERM)
    err = p.communicate(timeout=60)[1].decode()
    assert p.returncode == 143, err
    assert "terminated" in err and "Traceback" not in err
    assert sorted(x.name for x in tmp_path.iterdir()) == ["drive.py", "in.png"]


def test_endless_inputs_are_refused_early():
    """A read stops at the limit (/dev/zero never ends: without the limit this never returns;
    the time it takes is measured by benchmarks/time_limits.py)."""
    with pytest.raises(InputError, match="larger than"):
        cli.read_input("/dev/zero", limit=1 << 20)


def test_an_output_that_is_its_own_input_is_refused(runner, nnc_file, tmp_path):
    same = tmp_path / "same.png"
    same.write_bytes(nnc_file.read_bytes())         # a .nnc named .png
    before = same.read_bytes()
    r = runner.invoke(main, ["decompress", "-f", str(same)])
    assert r.exit_code == 5 and "also the input" in r.stderr
    assert same.read_bytes() == before


def test_batch_clash_is_found_before_any_work(runner, tmp_path):
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "x.png").write_bytes(png_bytes(smooth_image(20, 30)))
    out = tmp_path / "out"
    out.mkdir()
    r = runner.invoke(main, ["compress", "-f", str(tmp_path / "a" / "x.png"),
                             str(tmp_path / "b" / "x.png"), "-o", str(out)])
    assert r.exit_code == 5 and "both be written" in r.stderr
    assert list(out.iterdir()) == []
    # an -o folder that is not there yet is made only once the checks have passed
    r = runner.invoke(main, ["compress", "-f", str(tmp_path / "a" / "x.png"),
                             str(tmp_path / "b" / "x.png"), "-o", str(tmp_path / "new")])
    assert r.exit_code == 5 and not (tmp_path / "new").exists()


def test_a_long_legal_output_name_works(runner, png, tmp_path):
    out = tmp_path / ("n" * 240 + ".nnc")
    r = runner.invoke(main, ["compress", "--refine", "0", str(png), str(out)])
    assert r.exit_code == 0, r.output
    assert out.exists()


def test_a_closed_pipe_is_an_output_error(nnc_file):
    p = subprocess.Popen([sys.executable, "-m", "nnc.cli", "decompress", str(nnc_file), "-"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.close()                 # the reader is gone before nnc writes
    err = p.communicate(timeout=120)[1].decode()
    assert p.returncode == 5, err
    assert "pipe" in err and "Traceback" not in err


def test_info_into_a_closed_pipe_is_an_output_error(nnc_file):
    """`nnc info *.nnc | head -c 10`: the report outgrows the pipe's buffer after the
    reader has left, and that is the closed pipe's one-line error, exit 5 (it was an
    internal error with a BrokenPipeError)."""
    p = subprocess.Popen([sys.executable, "-m", "nnc.cli", "info", *[str(nnc_file)] * 200],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    os.read(p.stdout.fileno(), 10)
    p.stdout.close()
    err = p.communicate(timeout=120)[1].decode()
    assert p.returncode == 5, err
    assert "pipe" in err and "Traceback" not in err and "internal" not in err


def test_a_pipe_closed_in_the_middle_is_an_output_error():
    """The reader takes 10 bytes of a megabyte and leaves: the write into the pipe is cut
    short (the kernel returns the count written so far), and that is an error, not a
    truncated output and exit 0."""
    code = ("import sys\nfrom nnc.storage import write_output\nfrom nnc.errors import "
            "OutputError\ntry:\n    write_output('-', b'x' * (1 << 20), False)\n"
            "except OutputError as e:\n    sys.exit(f'error: {e}')\n")
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    os.read(p.stdout.fileno(), 10)
    p.stdout.close()
    err = p.communicate(timeout=120)[1].decode()
    assert p.returncode == 1 and "pipe" in err, err


def test_stdout_taking_part_of_a_write_gets_the_rest(monkeypatch):
    class Slow:
        def __init__(self):
            self.got = b""

        def write(self, data):
            self.got += bytes(data[:7])
            return min(7, len(data))

        def flush(self):
            pass

    class Out:
        buffer = Slow()

        def isatty(self):
            return False
    monkeypatch.setattr(cli.sys, "stdout", Out())
    cli.write_output("-", bytes(range(100)), force=False)
    assert Out.buffer.got == bytes(range(100))


def test_disk_full_on_stdout_is_an_output_error(monkeypatch, capsysbinary):
    class Full:
        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def flush(self):
            pass

    class Out:
        buffer = Full()

        def isatty(self):
            return False
    monkeypatch.setattr(cli.sys, "stdout", Out())
    with pytest.raises(OutputError, match="No space left"):
        cli.write_output("-", b"data", force=False)


@pytest.mark.parametrize("name,message", [("../../x", "not a model name"),
                                          ("a/b", "not a model name"),
                                          ("pln-gpu-1", "already installed")])
def test_export_names_are_checked_before_training(runner, tmp_path, name, message):
    from nnc.model.weights import manifest
    before = manifest()
    data = tmp_path / "data"
    data.mkdir()
    r = runner.invoke(main, ["train", str(data), str(tmp_path / "run"), "--steps", "1",
                             "--export", name])
    assert r.exit_code == 6 and message in r.stderr
    assert not (tmp_path / "run").exists()          # refused before any training
    assert manifest() == before


def test_parts_left_by_a_killed_nnc_are_removed(runner, png, tmp_path):
    """kill -9 cannot be caught; the next nnc writing into the folder removes what a
    process that no longer exists left behind, and leaves a live process's alone."""
    dead = tmp_path / ".nnc-4194305-0123456789ab.part"      # above Linux's largest pid
    dead.write_bytes(b"partial")
    live = tmp_path / f".nnc-{os.getppid()}-0123456789ab.part"
    live.write_bytes(b"in progress")
    r = runner.invoke(main, ["compress", "--refine", "0", str(png), str(tmp_path / "o.nnc")])
    assert r.exit_code == 0, r.output
    assert not dead.exists() and live.exists()


def test_kill_9_then_rerun_leaves_only_the_output(png, tmp_path):
    big = tmp_path / "big.png"
    big.write_bytes(png_bytes(smooth_image(1024, 2048)))
    out = tmp_path / "o.nnc"
    cmd = [sys.executable, "-m", "nnc.cli", "compress", "--refine", "0", str(big), str(out)]
    p = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
    fake = tmp_path / f".nnc-{p.pid}-0123456789ab.part"    # as if killed while writing
    fake.write_bytes(b"partial")
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=60)
    again = [sys.executable, "-m", "nnc.cli", "compress", "--refine", "0", str(png), str(out)]
    assert subprocess.run(again, capture_output=True, timeout=300).returncode == 0
    assert sorted(x.name for x in tmp_path.iterdir()) == ["big.png", "in.png", "o.nnc"]


def test_a_glob_never_overwrites_a_photo(runner, tmp_path):
    """`nnc compress -f *.png` in a folder of a.png and b.png: both are inputs (issue 16,
    point 2); b.png is not taken for the output."""
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    a.write_bytes(png_bytes(smooth_image(20, 30, seed=1)))
    b.write_bytes(png_bytes(smooth_image(20, 30, seed=2)))
    before = b.read_bytes()
    r = runner.invoke(main, ["compress", "-f", "--refine", "0", str(a), str(b)])
    assert r.exit_code == 0, r.output
    assert b.read_bytes() == before
    assert (tmp_path / "a.nnc").exists() and (tmp_path / "b.nnc").exists()
    # a second argument that names an output by its suffix is still one
    r = runner.invoke(main, ["compress", "-f", "--refine", "0", str(a), str(tmp_path / "o.nnc")])
    assert r.exit_code == 0 and (tmp_path / "o.nnc").exists()
    r = runner.invoke(main, ["decompress", "-f", str(tmp_path / "o.nnc"), str(tmp_path / "o.png")])
    assert r.exit_code == 0 and (tmp_path / "o.png").exists()


def _inputs_one_broken(folder, n: int, broken: int) -> list[str]:
    """n small PNGs im0.png ... in ``folder``, im{broken}.png not an image."""
    ins = []
    for i in range(n):
        p = folder / f"im{i}.png"
        p.write_bytes(b"not a png" if i == broken else png_bytes(smooth_image(16, 24, seed=i)))
        ins.append(str(p))
    return ins


def test_a_batch_goes_on_past_a_broken_input(runner, tmp_path):
    """Every input is tried, each failure is one line, a summary follows, the exit code is
    non-zero, and -o makes its folder (issue 16, point 3)."""
    ins = _inputs_one_broken(tmp_path, 5, broken=2)
    out = tmp_path / "new" / "out"
    r = runner.invoke(main, ["compress", "--refine", "0", *ins, "-o", str(out)])
    assert r.exit_code == 3
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 2 and "im2.png" in lines[0]
    assert lines[1] == "nnc: 4 written, 0 skipped, 1 failed (of 5 inputs)"
    assert sorted(p.name for p in out.iterdir()) == ["im0.nnc", "im1.nnc", "im3.nnc",
                                                     "im4.nnc"]


def test_jobs_give_the_same_files_as_one_process(tmp_path):
    """-j 2: worker processes, the same files as -j 1, every failure one line (issue 16)."""
    ins = _inputs_one_broken(tmp_path, 4, broken=1)
    runs = {}
    for jobs in ("1", "2"):
        out = tmp_path / f"j{jobs}"
        r = subprocess.run([sys.executable, "-m", "nnc.cli", "compress", "--refine", "0",
                            "-j", jobs, *ins, "-o", str(out)], capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 3, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 2 and "im1.png: not an image" in lines[0], lines
        assert lines[1] == "nnc: 3 written, 0 skipped, 1 failed (of 4 inputs)"
        runs[jobs] = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(runs["2"]) == ["im0.nnc", "im2.nnc", "im3.nnc"]
    assert runs["1"] == runs["2"]
    assert not list(tmp_path.rglob("*.part"))


def test_a_killed_worker_costs_only_its_own_input(tmp_path):
    """A worker killed outright (an OOM kill) breaks the pool; the other inputs are tried
    again, and only the one that kills its worker again is reported."""
    code = f"""
import sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
import batch_jobs
from nnc import cli
if __name__ == "__main__":
    names = ["a", "b", "die", "c", "d", "e"]
    pairs = [(n, {str(tmp_path)!r} + "/" + n) for n in names]
    cli._batch(pairs, batch_jobs.write_or_die, {{}}, "x", jobs=2)
"""
    script = tmp_path / "drive.py"
    script.write_text(code)
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 1, r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines == ["nnc: error: die: its worker process ended (killed, or out of memory?)",
                     "nnc: 5 written, 0 skipped, 1 failed (of 6 inputs)"], lines
    assert sorted(p.name for p in tmp_path.iterdir() if len(p.name) == 1) == \
        ["a", "b", "c", "d", "e"]

"""Batches on a Dask cluster (issue 32): a LocalCluster of 2 worker processes, inputs and
outputs in folders and in the buckets of an S3 server of the test's own (moto); a broken
input, a rerun that resumes, and a worker killed mid-write. Skipped without dask (and the
S3 test without moto and s3fs); pyproject's test extra installs them."""
import csv
import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from conftest import png_bytes, smooth_image
from nnc.cli import main

distributed = pytest.importorskip("distributed")

N, BROKEN = 20, "im07.png"


def _images() -> dict[str, bytes]:
    """20 small PNGs, im07.png not an image."""
    return {f"im{i:02d}.png": b"not a png" if f"im{i:02d}.png" == BROKEN
            else png_bytes(smooth_image(48, 64, seed=i)) for i in range(N)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3():
    """An S3 endpoint (moto's server on a free port), named to the S3 clients of this
    process and of the cluster's workers (started after it) by the environment; None
    without moto or s3fs."""
    try:
        from moto.server import ThreadedMotoServer
        import s3fs  # noqa: F401
    except ImportError:
        yield None
        return
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield env["AWS_ENDPOINT_URL"]
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()


@pytest.fixture(scope="module")
def cluster(s3):
    from distributed import LocalCluster
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None, silence_logs=50) as c:
        yield c.scheduler_address


def _manifest(text: str):
    lines = text.splitlines()
    assert lines[-1].startswith("# summary: ")
    return list(csv.DictReader(lines[:-1])), lines[-1]


def _check_run(r, outputs: dict[str, bytes], rows, summary, skipped: bool):
    """19 outputs, the broken input's row with its error, the exit status of a batch."""
    assert r.exit_code == 3, r.output          # the broken input's: unreadable input
    done, kept = (0, N - 1) if skipped else (N - 1, 0)
    assert r.stderr.strip().splitlines()[-1] == \
        f"nnc: {done} written, {kept} skipped, 1 failed (of {N} inputs)"
    assert sorted(outputs) == sorted(n.replace(".png", ".nnc") for n in _images()
                                     if n != BROKEN)
    assert sorted(Path(row["input"]).name for row in rows) == sorted(_images())
    failed = [row for row in rows if row["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["input"].endswith(BROKEN)
    assert "not an image" in failed[0]["error"] and failed[0]["code"] == "3"
    assert {row["status"] for row in rows} - {"failed"} == {"skipped" if skipped else "done"}
    assert summary.startswith(f"# summary: {done} done, {kept} skipped, 1 failed")


def test_a_folder_on_a_local_cluster_with_a_broken_input_and_a_rerun(cluster, runner,
                                                                     tmp_path):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    for name, data in _images().items():        # a directory input is walked recursively
        (src / ("sub" if name == "im15.png" else "") / name).write_bytes(data)
    out = tmp_path / "out"
    argv = ["compress", "--refine", "0", "--scheduler", cluster, str(src), "-o", str(out)]
    r = runner.invoke(main, argv)

    def outputs():
        return {p.name: p.read_bytes() for p in out.rglob("*.nnc")}
    first = outputs()
    rows, summary = _manifest((out / "nnc-manifest.csv").read_text())
    _check_run(r, first, rows, summary, skipped=False)
    assert (out / "sub" / "im15.nnc").exists()
    assert all(int(row["bytes_out"]) > 0 and float(row["bpp"]) > 0 for row in rows
               if row["status"] == "done")
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.nnc")}
    r = runner.invoke(main, argv)               # a rerun: no work, 19 skipped
    rows, summary = _manifest((out / "nnc-manifest.csv").read_text())
    _check_run(r, outputs(), rows, summary, skipped=True)
    assert outputs() == first and {p: p.stat().st_mtime_ns for p in stamps} == stamps


def test_relative_paths_reach_workers_in_other_folders(cluster, tmp_path, monkeypatch):
    """The workers were started elsewhere (this test moves to another folder): the
    client's relative paths reach them absolute, and the rows name them as given."""
    from nnc import batch
    monkeypatch.chdir(tmp_path)
    Path("in").mkdir()
    for i in range(3):
        Path(f"in/im{i}.png").write_bytes(png_bytes(smooth_image(48, 64, seed=i)))
    rows = batch.compress(["in"], "out", refine=0, scheduler=cluster)
    assert [(r["input"], r["output"], r["status"]) for r in rows] == [
        (f"in/im{i}.png", f"out/im{i}.nnc", "done") for i in range(3)]
    assert sorted(p.name for p in Path("out").iterdir()) == [
        "im0.nnc", "im1.nnc", "im2.nnc", "nnc-manifest.csv"]


def _run_killing_the_victim(cluster, pairs, job, hs: Path, mid_write) -> list[dict]:
    """Handshake: the victim input's task stops inside its write and says so with its
    process id (``hs``/ready); the test checks ``mid_write()`` (what is there of the output
    then), kills that worker process outright and lets the retry go on (``hs``/go). The
    deadline only bounds a failing run."""
    from nnc import batch
    opts = dict(quality=0.5, bpp=None, seed=0, refine_steps=0, model_name=None,
                max_pixels=10 ** 8, device="cpu", force=False, strip=False,
                skip_existing=True, victim="im03.png", handshake=str(hs))
    killed = []

    def kill_the_victim():
        deadline = time.monotonic() + 120
        while not (hs / "ready").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        pid = int((hs / "ready").read_text())
        seen = mid_write()
        os.kill(pid, signal.SIGKILL)
        killed.append((pid, seen))
        (hs / "go").write_text("")
    watch = threading.Thread(target=kill_the_victim)
    watch.start()
    try:
        rows = batch.run(pairs, job, opts, scheduler=cluster)
    finally:
        (hs / "go").write_text("")
        watch.join()
    assert killed and killed[0][1], killed
    assert [r["status"] for r in rows].count("done") == N - 1
    assert [Path(r["input"]).name for r in rows if r["status"] == "failed"] == [BROKEN]
    return rows


def test_a_worker_killed_mid_write_loses_nothing(cluster, tmp_path):
    """Killed with its temporary file written, not yet moved into place."""
    import batch_jobs
    from nnc import batch
    from nnc.resume import output_decodes
    src, out, hs = tmp_path / "in", tmp_path / "out", tmp_path / "handshake"
    for d in (src, hs):
        d.mkdir()
    for name, data in _images().items():
        (src / name).write_bytes(data)
    pairs = batch.plan([str(src)], str(out), ".nnc")
    _run_killing_the_victim(cluster, pairs, batch_jobs.compress_killed_mid_write, hs,
                            lambda: bool(list(out.glob(".nnc-*.part"))))   # its temp file
    assert sorted(p.name for p in out.iterdir()) == sorted(
        n.replace(".png", ".nnc") for n in _images() if n != BROKEN)   # no .part left
    assert all(output_decodes(p) for p in out.iterdir())


def test_a_worker_killed_mid_upload_to_a_bucket_loses_nothing(cluster, s3, tmp_path):
    """The same with inputs and outputs in buckets: killed inside its upload, nothing of
    the victim's output stored then; at the end 19 objects, each whole, and no other."""
    if s3 is None:
        pytest.skip("needs moto[server] and s3fs (pip install -e '.[test]')")
    import batch_jobs
    import s3fs
    from nnc import batch, decompress
    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": s3}, skip_instance_cache=True)
    for bucket in ("killin", "killout"):
        fs.mkdir(bucket)
    for name, data in _images().items():
        fs.pipe_file(f"killin/{name}", data)
    hs = tmp_path / "handshake"
    hs.mkdir()
    pairs = [(f"s3://killin/{n}", f"s3://killout/{n.replace('.png', '.nnc')}")
             for n in _images()]

    def victim_absent():
        fs.invalidate_cache()
        return not fs.exists("killout/im03.nnc")
    _run_killing_the_victim(cluster, pairs, batch_jobs.compress_killed_mid_upload, hs,
                            victim_absent)
    fs.invalidate_cache()
    stored = sorted(p.rsplit("/", 1)[1] for p in fs.find("killout"))
    assert stored == sorted(n.replace(".png", ".nnc") for n in _images() if n != BROKEN)
    assert all(decompress(fs.cat_file(f"killout/{n}")).size == (64, 48) for n in stored)


def test_buckets_through_an_s3_server(cluster, s3, runner, tmp_path):
    """The same batch from one bucket to another, through moto's S3 server, the inputs
    named in a list (--from-list); the manifest lands beside the outputs."""
    if s3 is None:
        pytest.skip("needs moto[server] and s3fs (pip install -e '.[test]')")
    import s3fs
    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": s3}, skip_instance_cache=True)
    fs.mkdir("photos")
    fs.mkdir("archive")
    for name, data in _images().items():
        fs.pipe_file(f"photos/2026/{name}", data)
    listing = tmp_path / "files.txt"
    listing.write_text("".join(f"s3://photos/2026/{n}\n" for n in _images()))
    argv = ["compress", "--refine", "0", "--scheduler", cluster, "--from-list", str(listing),
            "-o", "s3://archive/nnc/"]

    def outputs():
        fs.invalidate_cache()
        return {p.rsplit("/", 1)[1]: fs.cat_file(p) for p in fs.find("archive/nnc")
                if p.endswith(".nnc")}
    r = runner.invoke(main, argv)
    first = outputs()
    rows, summary = _manifest(fs.cat_file("archive/nnc/nnc-manifest.csv").decode())
    _check_run(r, first, rows, summary, skipped=False)
    assert all(row["output"].startswith("s3://archive/nnc/") for row in rows)
    r = runner.invoke(main, argv)
    rows, summary = _manifest(fs.cat_file("archive/nnc/nnc-manifest.csv").decode())
    _check_run(r, outputs(), rows, summary, skipped=True)
    assert outputs() == first
    from nnc import decompress      # the outputs decode
    assert decompress(first["im00.nnc"]).size == (64, 48)

"""nnc.batch from Python, in this process (jobs=1): a folder walked recursively, a broken
input's row, the manifest, and a rerun that keeps what is done (issue 32); the same shards
run on worker processes (-j) and on a Dask cluster (tests/test_cluster.py)."""
import csv

from conftest import png_bytes, smooth_image
from nnc import batch


def test_a_folder_from_python_with_a_manifest_and_a_rerun(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    (src / "a" / "b").mkdir(parents=True)
    (src / "im0.png").write_bytes(png_bytes(smooth_image(16, 24, seed=0)))
    (src / "a" / "b" / "im1.png").write_bytes(png_bytes(smooth_image(16, 24, seed=1)))
    (src / "a" / "broken.png").write_bytes(b"not a png")
    (src / "notes.txt").write_text("not an input")          # not an image: not walked
    rows = batch.compress(src, out, refine=0, jobs=1)
    assert [(r["input"][len(str(src)) + 1:], r["status"]) for r in rows] == [
        ("a/b/im1.png", "done"), ("a/broken.png", "failed"), ("im0.png", "done")]
    assert rows[1]["code"] == 3 and "not an image" in rows[1]["error"]
    assert (out / "a" / "b" / "im1.nnc").exists() and (out / "im0.nnc").exists()
    assert rows[0]["bpp"] == round(8 * (out / "a" / "b" / "im1.nnc").stat().st_size / 384, 5)
    lines = (out / "nnc-manifest.csv").read_text().splitlines()
    assert [r["status"] for r in csv.DictReader(lines[:-1])] == ["done", "failed", "done"]
    s = batch.summary(rows)
    assert lines[-1] == (f"# summary: 2 done, 0 skipped, 1 failed; {s['bytes_in']} bytes in, "
                         f"{s['bytes_out']} bytes out")
    again = batch.compress(src, out, refine=0, jobs=1)
    assert [r["status"] for r in again] == ["skipped", "failed", "skipped"]
    # a rerun's rows and summary still weigh what is there: the kept outputs and their inputs
    assert [r["bytes_out"] for r in again] == [rows[0]["bytes_out"], None, rows[2]["bytes_out"]]
    assert [r["bytes_in"] for r in again] == [rows[0]["bytes_in"], None, rows[2]["bytes_in"]]
    assert batch.summary(again) == dict(s, done=0, skipped=2)


def test_a_manifest_that_cannot_be_written_is_refused_before_any_work(tmp_path):
    import pytest
    from click.testing import CliRunner
    from nnc.cli import main
    from nnc.errors import OutputError
    src = tmp_path / "a.png"
    src.write_bytes(png_bytes(smooth_image(16, 24, seed=0)))
    with pytest.raises(OutputError, match="does not exist"):
        batch.compress(src, tmp_path / "out", refine=0, jobs=1,
                       manifest=str(tmp_path / "nowhere" / "m.csv"))
    r = CliRunner().invoke(main, ["compress", "--refine", "0", str(src), "-o",
                                  str(tmp_path / "out2"), "--manifest",
                                  str(tmp_path / "nowhere" / "m.csv")])
    assert r.exit_code == 5 and "nowhere" in r.output and "does not exist" in r.output
    assert not list((tmp_path / "out").glob("*")) and not list((tmp_path / "out2").glob("*"))

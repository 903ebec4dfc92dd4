"""The command line: outputs, keys, exit codes."""
import json
import subprocess
import sys

import numpy as np
import pytest

import voxscale
from voxscale.cli import main
from voxscale.fit import rotation_from_vector
from voxscale.maps import relabel_voxel_size, transform_structure
from voxscale.reciprocal.model_map import model_map
def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "voxscale", *map(str, args)],
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def scan_pair(shared_file, tmp_path_factory):
    """Reference and a target 2 % too large, rotated 10°; returns paths and the true factor."""
    folder = tmp_path_factory.mktemp("pair")
    st = voxscale.read_model(shared_file("models/pdb5me2_haemoglobin.pdb"))
    cen = np.array([a.pos.tolist() for ch in st[0] for r in ch for a in r]).mean(axis=0)
    ref = model_map(st, voxel_size=1.5, shape=(64, 64, 64), origin=cen - 1.5 * 31.5,
                    d_min=4.0)
    rot = rotation_from_vector(np.radians(10.0) * np.array([1.0, 0.0, 0.0]))
    t = np.eye(4)
    t[:3, :3] = rot
    t[:3, 3] = cen - rot @ cen + [2.0, 1.0, -1.0]
    st_t = transform_structure(st, t)
    f = 1.02
    tgt = relabel_voxel_size(model_map(st_t, voxel_size=1.4 / f, shape=(70, 70, 70),
                                       origin=rot @ cen + t[:3, 3] - 1.4 / f * 34.5,
                                       d_min=4.0), 1.4)
    ref.write(folder / "ref.mrc")
    tgt.write(folder / "target.mrc")
    st_t.write_pdb(str(folder / "target.pdb"))
    return folder, 1.0 / f


def test_scan_cli_writes_outputs(scan_pair, shared_file, tmp_path):
    folder, truth = scan_pair
    out = tmp_path / "scan"
    proc = run_cli("scan", folder / "ref.mrc", folder / "target.mrc", "--ref-model",
                   shared_file("models/pdb5me2_haemoglobin.pdb"), "--target-model",
                   folder / "target.pdb", "--threads", 2, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stderr  # stderr is a pipe (a log file): no progress bar drawn
    report = json.loads((out / "scan.json").read_text())
    for key in ("best_scale", "uncertainty", "percent", "scales", "cc", "cc_at_unit",
                "transform", "rotation_deg", "shift_A", "seconds"):
        assert key in report
    assert abs(report["best_scale"] - truth) < 1e-3
    assert report["percent"] == pytest.approx(100 * (report["best_scale"] - 1))
    assert len(report["scales"]) == len(report["cc"]) and np.array(report["transform"]).shape == (4, 4)
    assert abs(report["rotation_deg"] - 10.0) < 0.2
    corrected = voxscale.read_map(out / "target_corrected.mrc")
    ref = voxscale.read_map(folder / "ref.mrc")
    assert corrected.shape == ref.shape
    np.testing.assert_allclose(corrected.voxel_size, ref.voxel_size)
    np.testing.assert_allclose(corrected.origin, ref.origin, atol=1e-4)
    assert voxscale.maps.correlation(corrected.data, ref.data) > 0.98
    assert (out / "scan.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # A second run into the same folder is refused (exit 2, one line), --force replaces.
    again = run_cli("scan", folder / "ref.mrc", folder / "target.mrc", "--quiet", "--out", out)
    assert again.returncode == 2 and again.stderr.count("\n") == 1 and "--force" in again.stderr


def test_scan_cli_quiet_map_only(scan_pair, tmp_path, capsys):
    folder, truth = scan_pair
    out = tmp_path / "q"
    assert main(["scan", str(folder / "ref.mrc"), str(folder / "target.mrc"), "--quiet",
                 "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""
    assert abs(json.loads((out / "scan.json").read_text())["best_scale"] - truth) < 1e-3


@pytest.mark.parametrize("args, message", [
    (["scan", "missing.mrc", "missing2.mrc", "--out", "o"], "missing.mrc"),
    (["info", "missing.mrc"], "missing.mrc"),
])
def test_cli_bad_input_exit_2(tmp_path, args, message, monkeypatch):
    monkeypatch.chdir(tmp_path)
    proc = run_cli(*args)
    assert proc.returncode == 2
    assert message in proc.stderr and proc.stderr.count("\n") == 1
    assert "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []  # no output folder for a failed run


def test_scan_cli_one_model_only_is_an_error(scan_pair, tmp_path):
    folder, _ = scan_pair
    proc = run_cli("scan", folder / "ref.mrc", folder / "target.mrc", "--target-model",
                   folder / "target.pdb", "--out", tmp_path / "x")
    assert proc.returncode == 2 and "--ref-model" in proc.stderr
    assert not (tmp_path / "x" / "scan.json").exists()


def test_cli_warnings_are_one_line(tmp_path):
    """A readable file with a quirk (longer than its header declares) gives one warning line."""
    m = voxscale.Map(np.random.default_rng(0).random((8, 8, 8), np.float32), 1.0)
    m.write(tmp_path / "long.mrc")
    with open(tmp_path / "long.mrc", "ab") as fh:
        fh.write(b"\0" * 100)
    proc = run_cli("info", tmp_path / "long.mrc")
    assert proc.returncode == 0
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("voxscale info: warning: ")
    assert "longer than its header" in proc.stderr


def test_progress_bar_is_drawn_on_a_terminal_only():
    import io

    from voxscale.cli.progress import ProgressBar

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    for stream, drawn in ((Terminal(), True), (io.StringIO(), False)):
        with ProgressBar("scan", stream=stream) as bar:
            bar(1, 4, "s = 1.0000")
            bar(4, 4, "s = 1.0200")
        text = stream.getvalue()
        assert ("scan [" in text and "4/4" in text and "s = 1.0200" in text) == drawn, text
    quiet = Terminal()
    with ProgressBar("scan", enabled=False, stream=quiet) as bar:
        bar(1, 2, "x")
    assert quiet.getvalue() == ""

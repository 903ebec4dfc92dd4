"""Hardening (issue 12): the cases of an outside review, each rerun here on generated inputs.

Every refusal ends with exit status 2 and exactly one line naming the file or the option
(130 or 143 for SIGINT or SIGTERM); no file outside ``--out`` is touched; nothing of a failed
or interrupted run is left (no output, no stage folder, no lock); nothing hangs (every command
runs under a timeout, so a hang is a failure, not a stuck test run).
"""
from __future__ import annotations

import gzip
import os
import signal
import struct
import subprocess
import sys
import time
import tracemalloc
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

import voxscale
from voxscale import InputFileError, OptionError, ResolutionRangeError, _core
from voxscale.maps import relabel_voxel_size
from voxscale.pipeline.output import OutputLock
from voxscale.reciprocal.model_map import model_map
from voxscale.testing.molecules import helix_bundle

TIMEOUT = 120


def run(*args, cwd=None, timeout=TIMEOUT):
    env = dict(os.environ, MPLBACKEND="Agg")
    return subprocess.run([sys.executable, "-m", "voxscale", *map(str, args)], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=timeout)


def assert_refused(proc, *words, code=2):
    assert proc.returncode == code, (proc.returncode, proc.stderr[-2000:])
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    for w in words:
        assert w in proc.stderr, (w, proc.stderr)


def leftovers(folder: Path) -> list:
    """Stage folders and locks of voxscale in a folder."""
    return sorted(p.name for p in folder.iterdir() if ".voxscale-" in p.name)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A 40³ reference and a 36³ target with a 2 % voxel-size error, and the model."""
    folder = tmp_path_factory.mktemp("inputs")
    st = helix_bundle()
    ref = model_map(st, voxel_size=1.5, shape=(40, 40, 40), origin=np.full(3, -19.5 * 1.5),
                    d_min=4.0)
    spacing = 1.5 / 1.02
    tgt = relabel_voxel_size(model_map(st, voxel_size=spacing, shape=(36, 36, 36),
                                       origin=np.full(3, -17.5 * spacing), d_min=4.0), 1.5)
    ref.write(folder / "ref.mrc")
    tgt.write(folder / "tgt.mrc")
    st.write_pdb(str(folder / "model.pdb"))
    return {"dir": folder, "ref": folder / "ref.mrc", "tgt": folder / "tgt.mrc",
            "model": folder / "model.pdb"}


# -- 1. hangs: FIFOs as inputs ------------------------------------------------------------------

@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "pipe.mrc"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("command", ["scan", "diff", "compare", "info"])
def test_fifo_as_map_is_refused_without_hanging(command, fifo, inputs, tmp_path):
    args = [command, fifo] if command == "info" else [command, inputs["ref"], fifo, "--out",
                                                      tmp_path / "out"]
    proc = run(*args, timeout=60)
    assert_refused(proc, str(fifo), "FIFO")
    assert not (tmp_path / "out").exists()


def test_fifo_as_model_is_refused_without_hanging(fifo, inputs, tmp_path):
    pdb = fifo.with_name("pipe.pdb")
    os.rename(fifo, pdb)
    proc = run("scan", inputs["ref"], inputs["tgt"], "--ref-model", inputs["model"],
               "--target-model", pdb, "--out", tmp_path / "out", timeout=60)
    assert_refused(proc, str(pdb), "FIFO")
    proc = run("expansion", inputs["model"], pdb, "--out", tmp_path / "exp", timeout=60)
    assert_refused(proc, str(pdb), "FIFO")
    with pytest.raises(InputFileError, match="FIFO"):
        voxscale.read_model(pdb)


# -- 2. the memory guard ------------------------------------------------------------------------

def _with_extended_header(src: Path, dst: Path, nsymbt: int) -> Path:
    """src with an extended header of nsymbt zero bytes, written as a sparse file."""
    raw = src.read_bytes()
    header = bytearray(raw[:1024])
    header[92:96] = struct.pack("<i", nsymbt)
    with open(dst, "wb") as fh:
        fh.write(header)
        fh.seek(1024 + nsymbt)  # a hole: no disk used
        fh.write(raw[1024:])
    return dst


def test_huge_extended_header_costs_no_memory(inputs, tmp_path):
    big = _with_extended_header(inputs["tgt"], tmp_path / "ext.mrc", 1_500_000_000)
    tracemalloc.start()
    try:
        m = voxscale.read_map(big)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert np.array_equal(m.data, voxscale.read_map(inputs["tgt"]).data)
    assert peak < 50 * 2**20, peak  # the map is 0.2 MB; the extended header is never held
    proc = run("scan", inputs["ref"], big, "--max-memory", "400M", "--out", tmp_path / "o",
               "--quiet", "--threads", "1")
    assert proc.returncode == 0, proc.stderr


def test_memory_guard_refuses_from_the_header(inputs, tmp_path):
    """A gzip whose header declares 1200³ voxels: refused before anything is decompressed."""
    header = bytearray(inputs["tgt"].read_bytes()[:1024])
    header[0:12] = struct.pack("<3i", 1200, 1200, 1200)
    header[28:40] = struct.pack("<3i", 1200, 1200, 1200)
    header[40:52] = struct.pack("<3f", 1800.0, 1800.0, 1800.0)
    bomb = tmp_path / "bomb.mrc.gz"
    with gzip.open(bomb, "wb") as fh:
        fh.write(bytes(header) + bytes(1 << 20))
    for args in (["absolute", bomb, inputs["model"], "--out", tmp_path / "a"],
                 ["scan", inputs["ref"], bomb, "--out", tmp_path / "s"],
                 ["info", bomb]):
        proc = run(*args, "--max-memory", "1G")
        assert_refused(proc, str(bomb), "--max-memory")


def test_memory_guard_counts_half_maps(inputs, tmp_path):
    """Half maps are read too: the estimate grows by HALF_MAP_FACTOR of their float32 bytes,
    and a limit between the estimates without and with them refuses the comparison (from the
    headers: the half maps here are copies, never read as data)."""
    from voxscale.pipeline.memory import HALF_MAP_FACTOR, estimate_bytes
    halves = []
    for i, role in enumerate(("ref", "ref", "tgt", "tgt")):
        halves.append(tmp_path / f"half{i}.mrc")
        halves[-1].write_bytes(inputs[role].read_bytes())
    without = estimate_bytes("compare", inputs["ref"], inputs["tgt"])
    with_halves = estimate_bytes("compare", inputs["ref"], inputs["tgt"], halves)
    voxels = 2 * (voxscale.read_map(inputs["ref"]).data.size
                  + voxscale.read_map(inputs["tgt"]).data.size)
    assert with_halves - without == pytest.approx(4 * HALF_MAP_FACTOR * voxels, abs=1)
    limit = str((without + with_halves) // 2)
    proc = run("compare", inputs["ref"], inputs["tgt"], "--ref-halves", *halves[:2],
               "--target-halves", *halves[2:], "--max-memory", limit, "--out", tmp_path / "o")
    assert_refused(proc, "4 half maps", "--max-memory")
    assert not (tmp_path / "o").exists()


def test_batch_declares_the_memory_model_of_compare(inputs):
    from voxscale.batch import estimate_memory, map_voxels
    from voxscale.pipeline.memory import estimate_bytes
    n_ref, n_tgt = map_voxels(inputs["ref"]), map_voxels(inputs["tgt"])
    assert estimate_memory(n_ref, n_tgt) == estimate_bytes("compare", inputs["ref"],
                                                           inputs["tgt"])


# -- 3. option values ---------------------------------------------------------------------------

OPTION_CASES = [
    (["scan", "{ref}", "{tgt}", "--step", "1e-12"], "refits"),
    (["scan", "{ref}", "{tgt}", "--step", "1e-7"], "refits"),
    (["scan", "{ref}", "{tgt}", "--step", "0.5"], "--step"),
    (["scan", "{ref}", "{tgt}", "--range", "0.9999999", "1.0000001"], "--step"),
    (["scan", "{ref}", "{tgt}", "--range", "1.01", "1.05"], "contain 1"),
    (["scan", "{ref}", "{tgt}", "--threads", "2147483648"], "--threads"),
    (["scan", "{ref}", "{tgt}", "--threads", "-1"], "--threads"),
    (["scan", "{ref}", "{tgt}", "--step", "nan"], "--step"),
    (["scan", "{ref}", "{tgt}", "--max-memory", "lots"], "--max-memory"),
    (["absolute", "{ref}", "{model}", "--range", "0.5", "inf"], "--range"),
    (["absolute", "{ref}", "{model}", "--mask-radius", "1e9"], "--mask-radius"),
    (["absolute", "{ref}", "{model}", "--resolution", "1e-9"], "--resolution"),
    (["absolute", "{ref}", "{model}", "--resolution", "1.0"], "Nyquist"),
    (["compare", "{ref}", "{tgt}", "--resolution", "1e9", "3"], "--resolution"),
    (["diff", "{ref}", "{ref}", "--resolution", "3", "10"], "--resolution"),
    (["compare", "{ref}", "{tgt}", "--resolution", "3", "3"], "--resolution"),
    (["diff", "{ref}", "{ref}", "--sigma", "-1"], "--sigma"),
    (["demo", "--size", "0"], "--size"),
    (["demo", "--size", "100000"], "--size"),
    (["demo", "--size", "-5"], "--size"),
    (["scan", "{ref}"], "target"),  # argparse's own error, on one line
]


@pytest.mark.parametrize("argv, word", OPTION_CASES, ids=[" ".join(c[0][:1] + c[0][3:])
                                                          for c in OPTION_CASES])
def test_option_values_are_refused_in_one_line(argv, word, inputs, tmp_path):
    args = [a.format(**{k: str(v) for k, v in inputs.items()}) for a in argv]
    if args[0] != "info":
        args += ["--out", str(tmp_path / "out")]
    proc = run(*args, cwd=tmp_path, timeout=60)
    assert_refused(proc, word)
    assert not (tmp_path / "out").exists() and not leftovers(tmp_path)


# -- 4. writes outside --out --------------------------------------------------------------------

OLD_FIXED_TEMPORARIES = [".scan.json.tmp", "scan.png.tmp.png", ".structure_factors.mtz.tmp",
                         ".report.html.tmp", ".results.csv.tmp", ".summary.json.tmp"]


def test_planted_symlinks_are_never_followed(inputs, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    for name in OLD_FIXED_TEMPORARIES:
        (out / name).symlink_to(victim)
    (out / "scan.json").symlink_to(victim)  # an output name itself, replaced with --force
    proc = run("scan", inputs["ref"], inputs["tgt"], "--out", out, "--quiet", "--force",
               "--threads", "1")
    assert proc.returncode == 0, proc.stderr
    assert victim.read_text() == "precious\n"
    for name in ("scan.json", "scan.png", "target_corrected.mrc"):
        assert (out / name).is_file() and not (out / name).is_symlink(), name


def test_dangling_symlink_output_is_not_replaced_without_force(inputs, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "scan.json").symlink_to(tmp_path / "nowhere.json")
    proc = run("scan", inputs["ref"], inputs["tgt"], "--out", out, "--quiet")
    assert_refused(proc, "scan.json", "--force")
    assert (out / "scan.json").is_symlink() and not (tmp_path / "nowhere.json").exists()


def test_out_is_normalised_before_anything_is_created(inputs, tmp_path):
    proc = run("scan", inputs["ref"], inputs["tgt"], "--out", f"{tmp_path}/x/../out", "--quiet",
               "--threads", "1")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / "scan.json").is_file() and not (tmp_path / "x").exists()
    assert not leftovers(tmp_path)


# -- 5. half-written results --------------------------------------------------------------------

def test_a_failed_write_leaves_nothing(inputs, tmp_path):
    out = tmp_path / "out"
    (out / "scan.png").mkdir(parents=True)  # a folder in the way of one output
    proc = run("scan", inputs["ref"], inputs["tgt"], "--out", out, "--quiet", "--force",
               "--threads", "1")
    assert_refused(proc, "scan.png")
    assert sorted(p.name for p in out.iterdir()) == ["scan.png"]
    assert not leftovers(tmp_path)


def test_compare_that_fails_writes_nothing(inputs, tmp_path):
    out = tmp_path / "cmp"
    proc = run("compare", inputs["ref"], inputs["tgt"], "--ref-model", inputs["model"],
               "--target-model", tmp_path / "missing.pdb", "--out", out)
    assert_refused(proc, "missing.pdb")
    assert not out.exists() and not leftovers(tmp_path)


def test_a_second_run_into_the_same_folder_is_refused(inputs, tmp_path):
    out = tmp_path / "out"
    with OutputLock(out):  # a run in progress
        proc = run("scan", inputs["ref"], inputs["tgt"], "--out", out, "--quiet")
        assert_refused(proc, "another voxscale run")
    assert not out.exists()
    assert not leftovers(tmp_path)


def test_a_stale_lock_is_taken_over(inputs, tmp_path):
    out = tmp_path / "out"
    lock = OutputLock(out)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    import socket
    lock.path.write_text(f"{socket.gethostname()} {dead}\n")
    proc = run("scan", inputs["ref"], inputs["tgt"], "--out", out, "--quiet", "--threads", "1")
    assert proc.returncode == 0, proc.stderr
    assert not leftovers(tmp_path)


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_leaves_nothing(signum, code, inputs, tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ, MPLBACKEND="Agg")
    proc = subprocess.Popen([sys.executable, "-m", "voxscale", "compare", inputs["ref"],
                             inputs["tgt"], "--out", str(out), "--threads", "1",
                             "--step", "0.0005"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            # a suite started in the background (`pytest &`) has SIGINT
                            # ignored, which the child would inherit: give it the default
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    # wait until it is working (its lock exists), then interrupt it
    lock = OutputLock(out).path
    deadline = time.monotonic() + 60
    while not lock.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert err.strip().count("\n") == 0 and "interrupted" in err and "Traceback" not in err, err
    assert not out.exists() and not leftovers(tmp_path)


# -- 6. smaller ---------------------------------------------------------------------------------

def test_markers_are_escaped():
    table = voxscale.PeakTable([voxscale.Peak(1.0, 2.0, 3.0, -5.0, 1.0, -2.0,
                                              {"ref": {"chain": "A&<\"", "residue_name": "LYS",
                                                       "residue_number": 7, "atom": "NZ",
                                                       "distance": 1.2}})])
    root = ET.fromstring(table.to_cmm(name='peaks "&" more'))
    assert root.get("name") == 'peaks "&" more'
    assert 'A&<"/LYS7' in root[0].get("note")


def test_expansion_of_non_finite_coordinates_is_refused(tmp_path):
    st = helix_bundle(10)
    for ch in st[0]:
        for res in ch:
            for atom in res:
                atom.pos = voxscale.maps.models.gemmi.Position(float("nan"), 0.0, 0.0)
    st.write_pdb(str(tmp_path / "nan.pdb"))
    helix_bundle(10).write_pdb(str(tmp_path / "ok.pdb"))
    proc = run("expansion", tmp_path / "ok.pdb", tmp_path / "nan.pdb", "--out", tmp_path / "o")
    assert_refused(proc, "nan.pdb", "not finite")


def test_api_checks(inputs):
    m = voxscale.read_map(inputs["ref"])
    with pytest.raises(OptionError, match="max_peaks"):
        voxscale.find_peaks(m, 1.0, max_peaks=0)
    for bad in (0.0, float("nan"), -1.0):
        with pytest.raises(ResolutionRangeError):
            voxscale.low_pass(m, bad)
    with pytest.raises(OptionError, match="initial_transform"):
        voxscale.scan_voxel_scale(m, voxscale.read_map(inputs["tgt"]),
                                  initial_transform=np.eye(3))
    f = np.zeros(10, np.complex64)
    start = time.perf_counter()
    with pytest.raises(ValueError, match="nshells"):
        _core.shell_sums(f, None, np.zeros(10, np.int32), 10**8, 1)
    assert time.perf_counter() - start < 1.0
    with pytest.raises(ValueError, match="too large"):
        _core.resample_affine(m.data, np.zeros((3, 4)), (2**40, 2**40, 2**40), 1, 0.0, 1)

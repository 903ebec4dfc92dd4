"""A corpus of bad inputs (issue 8, item 1), generated here: no binary file is committed.

Every case is run twice:

* through the Python API: a :class:`voxscale.VoxscaleError` (``MapFormatError``,
  ``ModelFormatError``, ...) whose message names the file (when the API is given a path) and
  the problem; fast, and without allocating what a lying header declares;
* through the command line (``python -m voxscale info|scan|diff|compare``): exit status 2,
  exactly one line on stderr (``voxscale CMD: error: ...``) naming the file and the problem,
  no traceback, and no output folder or stray file left behind.

A few cases are not errors by design (integer and half-float modes are read as float32; a file
longer than its header declares is read with a warning): for those the API must return the
right data and the command must succeed.

Test files are made from small maps of ``voxscale.molecule.helix_bundle`` and then patched
byte by byte at the MRC2014 header offsets (nx, ny, nz int32 at 0, 4, 8; mode 12; mx, my, mz
28, 32, 36; cella float32 40, 44, 48; mapc, mapr, maps 64, 68, 72; nsymbt 92; origin 196, 200,
204). tests/test_io.py already checks many of the same header faults for ``read_map`` alone;
here each fault also goes through the commands, and the corpus adds what is above the file
level (models, pairs of maps, contour levels, options).

The command-line runs are started together, a few at a time, by a module fixture, so the ~50
interpreter start-ups do not run one after the other.
"""
from __future__ import annotations

import bz2
import concurrent.futures
import gzip
import json
import os
import struct
import subprocess
import sys
import time
import tracemalloc
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import mrcfile
import numpy as np
import pytest

import voxscale
from voxscale import MapFormatError, ModelFormatError, VoxscaleError, read_map, read_model
from voxscale.testing.molecules import helix_bundle
from voxscale.maps import relabel_voxel_size, transform_structure
from voxscale.reciprocal.model_map import model_map
HEADER = 1024


# --------------------------------------------------------------------------------------------
# building the inputs
# --------------------------------------------------------------------------------------------

def write_mrc(path, data_zyx, *, voxel=1.5, origin=(0.0, 0.0, 0.0)):
    """Write (nz, ny, nx) data in standard axis order with mrcfile; the dtype sets the mode."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # statistics of NaN/Inf data
        with mrcfile.new(path, overwrite=True) as mrc:
            mrc.set_data(data_zyx)
            mrc.voxel_size = voxel
            mrc.header.origin = tuple(origin)
    return Path(path)


def patch(path, offset, fmt, *values):
    """Overwrite little-endian header fields at ``offset``."""
    with open(path, "r+b") as fh:
        fh.seek(212)
        assert fh.read(2) == b"\x44\x44", "the corpus files are little-endian"
        fh.seek(offset)
        fh.write(struct.pack("<" + fmt, *values))
    return Path(path)


def copy_to(src: Path, dst: Path) -> Path:
    dst.write_bytes(src.read_bytes())
    return dst


def cut(src: Path, dst: Path, nbytes: int) -> Path:
    dst.write_bytes(src.read_bytes()[:nbytes])
    return dst


@dataclass
class Case:
    """One bad input.

    api : callable raising the expected exception (or returning, for ``ok`` cases).
    exc : expected exception class (checked with issubclass).
    words : groups of alternatives; every group must have one member in the message.
    names_file : the file the API message must start with (API calls given a path).
    cli : arguments of ``python -m voxscale`` (``--out`` is added for scan/diff/compare).
    cli_file : the file the command's message must name.
    cli_words : like ``words``, for the command's message (default: ``words``).
    ok : the input is acceptable by design; API returns, command exits 0.
    extra : more checks (``stderr_words`` for ``ok`` cases).
    """

    id: str
    api: Callable
    cli: list
    exc: type = VoxscaleError
    words: tuple = ()
    names_file: Optional[Path] = None
    cli_file: Optional[Path] = None
    cli_words: Optional[tuple] = None
    ok: bool = False
    extra: dict = field(default_factory=dict)


def _has(message: str, groups) -> list:
    """The groups none of whose alternatives occur in the message (case-insensitive)."""
    low = message.lower()
    missing = []
    for group in groups:
        alts = (group,) if isinstance(group, str) else tuple(group)
        if not any(a.lower() in low for a in alts):
            missing.append(alts)
    return missing


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """Valid inputs: reference 40³ and target 36³ maps of a helix bundle, and its model."""
    folder = tmp_path_factory.mktemp("good")
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
            "model": folder / "model.pdb", "ref_map": ref, "tgt_map": tgt, "st": st}


def _expect_read_error(path, *words):
    def api():
        read_map(path)
    return dict(api=api, exc=MapFormatError, words=words, names_file=path, cli_file=path)


def build_cases(b) -> list:
    d: Path = b["dir"] / "bad"
    d.mkdir()
    ref, tgt, model = b["ref"], b["tgt"], b["model"]
    ref_map, tgt_map, st = b["ref_map"], b["tgt_map"], b["st"]
    data_bytes = 36 ** 3 * 4
    cases = []

    def add(id_, cli, **kw):
        cases.append(Case(id_, cli=cli, **kw))

    # -- truncation ----------------------------------------------------------------------
    p = cut(tgt, d / "trunc_empty.mrc", 0)
    add("truncated-empty-file", ["scan", ref, p], **_expect_read_error(p, "1024"))
    p = cut(tgt, d / "trunc_100.mrc", 100)
    add("truncated-inside-header-100B", ["scan", p, tgt], **_expect_read_error(p, "1024"))
    p = cut(tgt, d / "trunc_1024.mrc", HEADER)
    add("truncated-after-header-no-data", ["info", p], **_expect_read_error(p, "shorter"))
    p = cut(tgt, d / "trunc_mid.mrc", HEADER + data_bytes // 2 + 3)
    add("truncated-mid-data", ["diff", ref, p], **_expect_read_error(p, "shorter"))
    p = cut(tgt, d / "trunc_1short.mrc", HEADER + data_bytes - 1)
    add("truncated-one-byte-short", ["compare", p, tgt], **_expect_read_error(p, "shorter"))

    # -- header sizes against the data ------------------------------------------------------
    p = patch(copy_to(tgt, d / "nz_larger.mrc"), 8, "i", 37)
    add("header-nz-larger-than-data", ["scan", ref, p], **_expect_read_error(p, "shorter"))
    p = patch(copy_to(tgt, d / "nsymbt_larger.mrc"), 92, "i", 4096)
    add("header-nsymbt-larger-than-file", ["info", p], **_expect_read_error(p, "shorter"))
    p = patch(copy_to(tgt, d / "nz_smaller.mrc"), 8, "i", 35)

    def api_smaller(p=p):
        with pytest.warns(RuntimeWarning, match="longer") as rec:
            m = read_map(p)
        assert any(str(p) in str(w.message) for w in rec), "the warning must name the file"
        assert m.shape == (35, 36, 36)
        np.testing.assert_array_equal(m.data, tgt_map.data[:35])
    add("header-nz-smaller-than-data-warns-and-reads", ["info", p], api=api_smaller, ok=True,
        extra={"stderr_words": ["longer"]})

    # -- dimensions ------------------------------------------------------------------------
    p = patch(copy_to(tgt, d / "nx_negative.mrc"), 0, "i", -36)
    add("dims-negative-nx", ["scan", ref, p], **_expect_read_error(p, "nx, ny, nz"))
    p = patch(copy_to(tgt, d / "ny_zero.mrc"), 4, "i", 0)
    add("dims-zero-ny", ["diff", p, ref], **_expect_read_error(p, "nx, ny, nz"))
    p = patch(copy_to(tgt, d / "dims_1e9.mrc"), 0, "iii", 10**9, 10**9, 10**9)
    add("dims-absurd-1e9-all-axes", ["scan", ref, p], **_expect_read_error(p, "shorter"))
    p = patch(copy_to(tgt, d / "dims_int32max.mrc"), 0, "iii", *(2**31 - 1,) * 3)
    add("dims-absurd-int32-max", ["info", p], **_expect_read_error(p, "shorter"))
    raw = bytearray(tgt.read_bytes())
    raw[0:12] = struct.pack("<iii", 10**9, 10**9, 10**9)
    p = d / "dims_1e9.mrc.gz"
    p.write_bytes(gzip.compress(bytes(raw), compresslevel=1))
    # The size of a compressed file's content is not known before it is decompressed: the
    # command may refuse it from the declared size (memory guard) instead.
    add("dims-absurd-1e9-gzip", ["compare", ref, p], **_expect_read_error(p, "shorter"),
        cli_words=(("shorter", "memory"),))

    # -- modes -----------------------------------------------------------------------------
    p = patch(copy_to(tgt, d / "mode3.mrc"), 12, "i", 3)
    add("mode-3-complex-int16-rejected", ["scan", ref, p],
        **_expect_read_error(p, "complex", "mode 3"))
    p = write_mrc(d / "mode4.mrc", np.ones((6, 7, 8), np.complex64))
    add("mode-4-complex-float32-rejected", ["info", p],
        **_expect_read_error(p, "complex", "mode 4"))
    p = patch(copy_to(tgt, d / "mode_neg.mrc"), 12, "i", -1)
    add("mode-negative-rejected", ["diff", ref, p], **_expect_read_error(p, "mode"))

    levels = ref_map.data / np.abs(ref_map.data).max()
    for mode, dtype, scale in ((0, np.int8, 127), (1, np.int16, 32000), (6, np.uint16, 32000),
                               (12, np.float16, 1000.0)):
        stored = (levels * scale + (32000 if dtype == np.uint16 else 0)).astype(dtype)
        p = write_mrc(d / f"mode{mode}.mrc", stored, voxel=1.5, origin=ref_map.origin)
        assert struct.unpack("<i", p.read_bytes()[12:16])[0] == mode

        def api_mode(p=p, stored=stored):
            m = read_map(p)
            assert m.data.dtype == np.float32 and m.data.flags.c_contiguous
            np.testing.assert_array_equal(m.data, stored.astype(np.float32))
            np.testing.assert_allclose(m.voxel_size, 1.5)
            np.testing.assert_allclose(m.origin, ref_map.origin, atol=1e-4)
        name = {0: "int8", 1: "int16", 6: "uint16", 12: "float16"}[mode]
        # int16 goes through a whole 'diff' (it is on the reference grid); the rest through 'info'
        cli = ["diff", ref, p, "--resolution", "20", "4"] if mode == 1 else ["info", p]
        add(f"mode-{mode}-{name}-read-as-float32", cli, api=api_mode, ok=True)
    half = (levels * 1000).astype(np.float16)
    half[3, 4, 5] = np.inf
    p = write_mrc(d / "mode12_inf.mrc", half)
    add("mode-12-float16-with-inf-data", ["scan", ref, p], **_expect_read_error(p, "non-finite"))

    # -- axis order ------------------------------------------------------------------------
    for id_, axes in (("axes-out-of-range-0-2-3", (0, 2, 3)),
                      ("axes-out-of-range-1-2-4", (1, 2, 4)), ("axes-negative--1-2-3", (-1, 2, 3)),
                      ("axes-repeated-3-3-1", (3, 3, 1)), ("axes-repeated-2-2-2", (2, 2, 2))):
        p = patch(copy_to(tgt, d / f"axes_{'_'.join(map(str, axes))}.mrc"), 64, "iii", *axes)
        cli = ["scan", ref, p] if axes[0] != 2 else ["info", p]
        add(id_, cli, **_expect_read_error(p, "mapc, mapr, maps"))

    # -- non-finite data ---------------------------------------------------------------------
    bad = tgt_map.data.copy()
    bad[10, 11, 12] = np.nan
    p = write_mrc(d / "nan.mrc", bad, voxel=1.5, origin=tgt_map.origin)
    add("data-one-nan", ["scan", ref, p], **_expect_read_error(p, "1 non-finite"))
    bad = ref_map.data.copy()
    bad[0, 0, 0], bad[-1, -1, -1] = np.inf, -np.inf
    p = write_mrc(d / "inf.mrc", bad, voxel=1.5, origin=ref_map.origin)
    add("data-plus-and-minus-inf", ["diff", p, ref], **_expect_read_error(p, "2 non-finite"))
    p = d / "allnan.mrc.gz"
    p.write_bytes(gzip.compress(write_mrc(d / "allnan.mrc", np.full((5, 6, 7), np.nan,
                                                                     np.float32)).read_bytes()))
    add("data-all-nan-gzip", ["info", p], **_expect_read_error(p, "non-finite"))

    # -- constant maps -------------------------------------------------------------------------
    const_t = write_mrc(d / "constant_target.mrc", np.full(tgt_map.shape, 0.25, np.float32),
                        voxel=1.5, origin=tgt_map.origin)
    const_r = write_mrc(d / "constant_ref.mrc", np.full(ref_map.shape, 0.25, np.float32),
                        voxel=1.5, origin=ref_map.origin)
    add("constant-target-scan", ["scan", ref, const_t],
        api=lambda: voxscale.scan_voxel_scale(ref_map, read_map(const_t), nthreads=2),
        words=(("constant", "flat", "contour"),), cli_file=const_t)
    add("constant-ref-scan", ["scan", const_r, tgt],
        api=lambda: voxscale.scan_voxel_scale(read_map(const_r), tgt_map, nthreads=2),
        words=("reference", ("constant", "flat", "contour")), cli_file=const_r)
    add("constant-ref-scan-with-models",
        ["scan", const_r, tgt, "--ref-model", model, "--target-model", model],
        api=lambda: voxscale.scan_voxel_scale(read_map(const_r), tgt_map, st, st, nthreads=2),
        words=(("constant", "flat"),), cli_file=const_r)
    add("constant-target-diff", ["diff", ref, const_r],
        api=lambda: voxscale.vector_difference(ref_map, read_map(const_r), nthreads=2),
        words=(("constant", "flat", "no signal", "no amplitude"),), cli_file=const_r)

    # -- voxel size -------------------------------------------------------------------------
    p = patch(copy_to(tgt, d / "cella_zero.mrc"), 40, "f", 0.0)
    add("voxel-size-zero", ["scan", ref, p], **_expect_read_error(p, "voxel size"))
    p = patch(copy_to(ref, d / "cella_negative.mrc"), 44, "f", -60.0)
    add("voxel-size-negative-cella", ["compare", p, tgt], **_expect_read_error(p, "voxel size"))
    p = patch(copy_to(tgt, d / "mz_negative.mrc"), 36, "i", -36)
    add("voxel-size-negative-mz", ["info", p], **_expect_read_error(p, "voxel size"))
    p = patch(copy_to(tgt, d / "cella_inf.mrc"), 48, "f", float("inf"))
    add("voxel-size-infinite", ["scan", ref, p], **_expect_read_error(p, "voxel size"))

    # -- compressed files that stop early -----------------------------------------------------
    gz = gzip.compress(tgt.read_bytes(), compresslevel=6)
    for id_, n in (("gzip-stops-inside-gzip-header", 6), ("gzip-stops-inside-map-header", 40),
                   ("gzip-stops-mid-data", len(gz) // 2), ("gzip-missing-trailer", len(gz) - 8),
                   ("gzip-missing-last-byte", len(gz) - 1)):
        p = d / f"{id_}.mrc.gz"
        p.write_bytes(gz[:n])
        add(id_, ["scan", ref, p] if "data" in id_ else ["info", p],
            **_expect_read_error(p, ("truncated", "corrupt", "shorter", "1024")))
    p = d / "gzip_bad_crc.mrc.gz"
    p.write_bytes(gz[:-8] + bytes([gz[-8] ^ 0xFF]) + gz[-7:])
    add("gzip-corrupt-crc", ["diff", ref, p], **_expect_read_error(p, ("corrupt", "crc")))
    bz = bz2.compress(ref.read_bytes())
    p = d / "bzip2_cut.mrc.bz2"
    p.write_bytes(bz[: len(bz) // 2])
    add("bzip2-stops-mid-data", ["scan", p, tgt],
        **_expect_read_error(p, ("truncated", "corrupt", "shorter")))

    # -- models ----------------------------------------------------------------------------
    empty = d / "empty_model.pdb"
    empty.write_bytes(b"")
    add("model-empty-file", ["scan", ref, tgt, "--ref-model", model, "--target-model", empty],
        api=lambda: read_model(empty), exc=ModelFormatError, words=(("no atoms", "empty"),),
        names_file=empty, cli_file=empty)
    garbage = d / "binary_model.cif"
    garbage.write_bytes(np.random.default_rng(5).bytes(3000))
    add("model-binary-garbage", ["diff", ref, ref, "--ref-model", garbage],
        api=lambda: read_model(garbage), exc=ModelFormatError, words=(("cannot", "no atoms"),),
        names_file=garbage, cli_file=garbage)
    water = d / "waters_only.pdb"
    water.write_text("".join(
        f"HETATM{i:5d}  O   HOH W{i:4d}    {x:8.3f}{y:8.3f}{z:8.3f}  1.00 20.00           O\n"
        for i, (x, y, z) in enumerate(np.random.default_rng(1).uniform(-15, 15, (40, 3)),
                                      start=1)) + "END\n")
    add("model-no-protein-waters-only",
        ["scan", ref, tgt, "--ref-model", model, "--target-model", water],
        api=lambda: voxscale.scan_voxel_scale(ref_map, tgt_map, st, read_model(water),
                                              nthreads=2),
        exc=ModelFormatError, words=("protein",), cli_file=water)
    shift = np.eye(4)
    shift[:3, 3] = [500.0, -400.0, 300.0]
    far = d / "model_far_outside.pdb"
    transform_structure(st, shift).write_pdb(str(far))
    add("model-outside-ref-map-scan",
        ["scan", ref, tgt, "--ref-model", far, "--target-model", model],
        api=lambda: voxscale.scan_voxel_scale(ref_map, tgt_map, read_model(far), st, nthreads=2),
        words=(("outside", "overlap"),), cli_file=far)
    add("model-outside-both-maps-scan",
        ["scan", ref, tgt, "--ref-model", far, "--target-model", far],
        api=lambda: voxscale.scan_voxel_scale(ref_map, tgt_map, read_model(far),
                                              read_model(far), nthreads=2),
        words=(("outside", "overlap"),), cli_file=far)
    # A target on the reference grid with one extra blob, so that the difference has a peak
    # for the model to name.
    zyx = np.stack(np.meshgrid(*(np.arange(40.0),) * 3, indexing="ij"))
    blob = np.exp(-((zyx - np.array([20.0, 18.0, 23.0])[:, None, None, None]) ** 2).sum(0) / 4)
    blob_map = voxscale.Map(ref_map.data + 0.3 * blob.astype(np.float32), 1.5, ref_map.origin)
    with_blob = d / "ref_plus_blob.mrc"
    blob_map.write(with_blob)
    add("model-outside-map-diff", ["diff", ref, with_blob, "--ref-model", far],
        api=lambda: voxscale.find_peaks(voxscale.difference_map(ref_map, blob_map), 4.0,
                                        {"ref": read_model(far)}),
        words=(("outside", "overlap"),), cli_file=far)

    # -- pairs of maps, contour ----------------------------------------------------------------
    away = d / "target_far_away.mrc"
    Map = voxscale.Map
    Map(tgt_map.data, tgt_map.voxel_size, tgt_map.origin + 1000.0).write(away)
    add("maps-do-not-overlap-scan-with-models",
        ["scan", ref, away, "--ref-model", model, "--target-model", model],
        api=lambda: voxscale.scan_voxel_scale(ref_map, read_map(away), st, st, nthreads=2),
        words=(("overlap", "outside"),), cli_words=(("overlap", "outside"),))
    away_same = d / "ref_grid_far_away.mrc"
    Map(ref_map.data, ref_map.voxel_size, ref_map.origin + 1000.0).write(away_same)
    add("maps-do-not-overlap-diff", ["diff", ref, away_same],
        api=lambda: voxscale.vector_difference(ref_map, read_map(away_same), nthreads=2),
        words=(("grid", "overlap"),), cli_words=(("grid", "overlap"),))
    add("contour-above-target-max", ["scan", ref, tgt, "--contour", "1e6"],
        api=lambda: voxscale.scan_voxel_scale(ref_map, tgt_map, contour=1e6, nthreads=2),
        words=("contour",), cli_words=("contour",))
    add("contour-nan", ["scan", ref, tgt, "--contour", "nan"],
        api=lambda: voxscale.scan_voxel_scale(ref_map, tgt_map, contour=float("nan"),
                                              nthreads=2),
        exc=(VoxscaleError, ValueError), words=("contour",), cli_words=("contour",))

    # -- out-of-range options (plain ValueError accepted from the API) ------------------------
    add("option-scan-range-to-infinity", ["scan", ref, tgt, "--range", "0.95", "inf"],
        api=lambda: voxscale.scan_voxel_scale(ref_map, tgt_map, st, st,
                                              scale_range=(0.95, float("inf")), nthreads=2),
        exc=ValueError, words=("range",), cli_words=("range",))
    add("option-resolution-dmin-zero", ["diff", ref, ref, "--resolution", "10", "0"],
        api=lambda: voxscale.vector_difference(ref_map, ref_map, 10.0, 0.0, nthreads=2),
        exc=ValueError, words=("d_min",), cli_words=(("d_min", "resolution"),))
    add("option-resolution-dmin-negative", ["diff", ref, ref, "--resolution", "10", "-3"],
        api=lambda: voxscale.vector_difference(ref_map, ref_map, 10.0, -3.0, nthreads=2),
        exc=ValueError, words=("d_min",), cli_words=(("d_min", "resolution"),))
    return cases


# --------------------------------------------------------------------------------------------
# running the commands (all at once, a few at a time)
# --------------------------------------------------------------------------------------------

@dataclass
class CliRun:
    args: list
    returncode: int
    stdout: str
    stderr: str
    rundir: Path
    out: Optional[Path]
    inputs_before: set
    inputs_after: set


def _listing(folder: Path) -> set:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


# Runs ``voxscale.cli.main(argv)`` for many argument lists in one fresh interpreter, as
# ``python -m voxscale`` would: stdout and stderr captured, warnings shown as the interpreter
# shows them, an escaping exception printed as a traceback with exit status 1, SystemExit's
# code kept. One interpreter start instead of ~60 keeps the corpus fast; the fidelity of this
# driver is itself checked against real ``python -m voxscale`` runs below.
_DRIVER = r"""
import contextlib, io, json, os, sys, traceback, warnings
from voxscale.cli import main
jobs = json.load(open(sys.argv[1]))
results = {}
for job in jobs:
    out, err = io.StringIO(), io.StringIO()
    os.chdir(job["cwd"])
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
            warnings.catch_warnings():
        warnings.simplefilter("default")
        try:
            code = main(job["argv"])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:
            traceback.print_exc()
            code = 1
    results[job["id"]] = {"returncode": code, "stdout": out.getvalue(),
                          "stderr": err.getvalue()}
json.dump(results, open(sys.argv[2], "w"))
"""


def _cli_args(case: Case, rundir: Path):
    args = [str(a) for a in case.cli]
    out = None
    if args[0] in ("scan", "diff", "compare"):
        out = rundir / "out"
        args += ["--out", str(out), "--threads", "1"]
    return args, out


def _run_python_m(args, cwd):
    env = dict(os.environ, MPLBACKEND="Agg")
    return subprocess.run([sys.executable, "-m", "voxscale", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def corpus(base, tmp_path_factory):
    """Build every case and run every command (one interpreter, the cases one by one)."""
    cases = build_cases(base)
    root = tmp_path_factory.mktemp("runs")
    inputs = base["dir"]
    jobs, meta = [], {}
    before = _listing(inputs)
    for case in cases:
        rundir = root / case.id
        rundir.mkdir()
        args, out = _cli_args(case, rundir)
        jobs.append({"id": case.id, "argv": args, "cwd": str(rundir)})
        meta[case.id] = (args, rundir, out)
    job_file, result_file = root / "jobs.json", root / "results.json"
    job_file.write_text(json.dumps(jobs))
    driver = subprocess.run([sys.executable, "-c", _DRIVER, str(job_file), str(result_file)],
                            cwd=root, env=dict(os.environ, MPLBACKEND="Agg"),
                            capture_output=True, text=True, timeout=600)
    assert driver.returncode == 0, f"the driver died (crash?):\n{driver.stderr[-3000:]}"
    results = json.loads(result_file.read_text())
    job_file.unlink()
    result_file.unlink()
    after = _listing(inputs)
    runs = {}
    for case in cases:
        args, rundir, out = meta[case.id]
        r = results[case.id]
        runs[case.id] = CliRun(args, r["returncode"], r["stdout"], r["stderr"], rundir, out,
                               before, after)
    return {c.id: c for c in cases}, runs


# Cases also run through a real ``python -m voxscale``: one per command, to check the driver.
REAL_RUN_IDS = ["truncated-after-header-no-data", "dims-negative-nx", "mode-negative-rejected",
                "truncated-one-byte-short", "header-nz-smaller-than-data-warns-and-reads",
                "option-scan-range-to-infinity"]


def test_driver_matches_python_m_voxscale(corpus, tmp_path):
    cases, runs = corpus
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        real = {}
        for case_id in REAL_RUN_IDS:
            rundir = tmp_path / case_id
            rundir.mkdir()
            args, _ = _cli_args(cases[case_id], rundir)
            real[case_id] = (args, pool.submit(_run_python_m, args, rundir))
        for case_id, (args, future) in real.items():
            proc, run = future.result(), runs[case_id]
            assert proc.returncode == run.returncode, (case_id, proc.stderr, run.stderr)
            tmp = str(tmp_path / case_id)
            norm = lambda text: text.replace(tmp, "RUN").replace(str(run.rundir), "RUN")  # noqa
            assert norm(proc.stdout) == norm(run.stdout), case_id
            real_err, driver_err = norm(proc.stderr), norm(run.stderr)
            if "Traceback" in real_err:  # the innermost frames and the error line agree
                assert "Traceback" in driver_err
                assert real_err.splitlines()[-1] == driver_err.splitlines()[-1]
            elif "Warning" in real_err:  # the warning text agrees (its source line may not)
                assert real_err.splitlines()[0].split("RuntimeWarning: ")[1] in driver_err
            else:
                assert real_err == driver_err, case_id
            assert list(rundir.iterdir()) == [] or cases[case_id].ok


# The case ids, fixed here so that pytest can list them before the corpus is built.
CASE_IDS = [
    "truncated-empty-file", "truncated-inside-header-100B", "truncated-after-header-no-data",
    "truncated-mid-data", "truncated-one-byte-short",
    "header-nz-larger-than-data", "header-nsymbt-larger-than-file",
    "header-nz-smaller-than-data-warns-and-reads",
    "dims-negative-nx", "dims-zero-ny", "dims-absurd-1e9-all-axes", "dims-absurd-int32-max",
    "dims-absurd-1e9-gzip",
    "mode-3-complex-int16-rejected", "mode-4-complex-float32-rejected", "mode-negative-rejected",
    "mode-0-int8-read-as-float32", "mode-1-int16-read-as-float32",
    "mode-6-uint16-read-as-float32", "mode-12-float16-read-as-float32",
    "mode-12-float16-with-inf-data",
    "axes-out-of-range-0-2-3", "axes-out-of-range-1-2-4", "axes-negative--1-2-3",
    "axes-repeated-3-3-1", "axes-repeated-2-2-2",
    "data-one-nan", "data-plus-and-minus-inf", "data-all-nan-gzip",
    "constant-target-scan", "constant-ref-scan", "constant-ref-scan-with-models",
    "constant-target-diff",
    "voxel-size-zero", "voxel-size-negative-cella", "voxel-size-negative-mz",
    "voxel-size-infinite",
    "gzip-stops-inside-gzip-header", "gzip-stops-inside-map-header", "gzip-stops-mid-data",
    "gzip-missing-trailer", "gzip-missing-last-byte", "gzip-corrupt-crc", "bzip2-stops-mid-data",
    "model-empty-file", "model-binary-garbage", "model-no-protein-waters-only",
    "model-outside-ref-map-scan", "model-outside-both-maps-scan", "model-outside-map-diff",
    "maps-do-not-overlap-scan-with-models", "maps-do-not-overlap-diff",
    "contour-above-target-max", "contour-nan",
    "option-scan-range-to-infinity", "option-resolution-dmin-zero",
    "option-resolution-dmin-negative",
]


def test_case_list_is_complete(corpus):
    cases, _ = corpus
    assert sorted(cases) == sorted(CASE_IDS)
    assert len(cases) >= 30


# --------------------------------------------------------------------------------------------
# the Python API
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("case_id", CASE_IDS)
def test_api(corpus, case_id):
    case = corpus[0][case_id]
    if case.ok:
        case.api()
        return
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            with pytest.raises(Exception) as info:
                case.api()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    elapsed = time.perf_counter() - start
    err = info.value
    expected = case.exc if isinstance(case.exc, tuple) else (case.exc,)
    assert isinstance(err, expected), (
        f"expected {' or '.join(e.__name__ for e in expected)}, got "
        f"{type(err).__name__}: {err}")
    message = str(err)
    if case.names_file is not None:
        assert message.startswith(str(case.names_file)), f"the file is not named: {message}"
    missing = _has(message, case.words)
    assert not missing, f"message {message!r} lacks any of {missing}"
    assert "\n" not in message.strip(), message
    assert "np.float64(" not in message, f"numpy repr leaked into the message: {message}"
    assert elapsed < 20.0, f"took {elapsed:.1f} s to reject"
    assert peak < 64 * 2**20, f"allocated {peak / 2**20:.0f} MiB to reject"


# --------------------------------------------------------------------------------------------
# the command line
# --------------------------------------------------------------------------------------------

def _describe(run: CliRun) -> str:
    return (f"\n$ voxscale {' '.join(run.args)}\nexit {run.returncode}\n--- stderr ---\n"
            f"{run.stderr}--- stdout ---\n{run.stdout}")


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_cli(corpus, case_id):
    cases, runs = corpus
    case, run = cases[case_id], runs[case_id]
    what = _describe(run)
    assert "Traceback" not in run.stderr, what
    # Never anything written beside the inputs (temporary files included).
    assert run.inputs_after == run.inputs_before, what
    if case.ok:
        assert run.returncode == 0, what
        for word in case.extra.get("stderr_words", ()):
            assert word in run.stderr, what
        if run.out is not None:
            left = [p.name for p in run.out.iterdir() if p.name.startswith(".")]
            assert not left, f"temporary files left in the output folder: {left}{what}"
        return
    assert run.returncode == 2, what
    lines = run.stderr.splitlines()
    assert len(lines) == 1 and run.stderr.endswith("\n"), "not exactly one line on stderr" + what
    command = run.args[0]
    assert lines[0].startswith(f"voxscale {command}: error: "), what
    assert "np.float64(" not in lines[0], "numpy repr leaked into the message" + what
    if case.cli_file is not None:
        assert str(case.cli_file) in lines[0] or case.cli_file.name in lines[0], (
            f"the message does not name {case.cli_file.name}" + what)
    words = case.words if case.cli_words is None else case.cli_words
    missing = _has(lines[0], words)
    assert not missing, f"message lacks any of {missing}" + what
    # No output folder and no partial file anywhere in the working directory.
    assert run.out is None or not run.out.exists(), (
        f"output folder left behind: {sorted(p.name for p in run.out.iterdir())}" + what)
    assert list(run.rundir.iterdir()) == [], what


def test_failed_run_into_existing_folder_leaves_it_unchanged(base, tmp_path):
    """A bad input given with --force and an existing output folder touches nothing in it."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "scan.json").write_text("{}\n")
    bad = cut(base["tgt"], tmp_path / "cut.mrc", HEADER + 100)
    proc = subprocess.run([sys.executable, "-m", "voxscale", "scan", str(base["ref"]), str(bad),
                           "--out", str(out), "--force", "--quiet"], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["scan.json"]
    assert (out / "scan.json").read_text() == "{}\n"

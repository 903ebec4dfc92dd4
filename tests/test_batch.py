"""voxscale batch: a survey of map pairs on a real dask.distributed LocalCluster.

Eight small pairs are made from the haemoglobin model 5ME2 (48³ reference boxes of 1.8 Å
voxels, maps at 4.5 Å): six with a known voxel-size error (the target sampled every v/f Å and
labelled v, docs/method.md §6, so the correction is s = 1/f), one whose target file is corrupt and
one whose reference file is missing. One cluster of two worker processes serves the module.
"""
from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

pytest.importorskip("distributed")
pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")  # results.parquet (the 'batch' extra installs all three)

import voxscale  # noqa: E402
import voxscale.batch as vbatch  # noqa: E402
from voxscale import cli  # noqa: E402
from voxscale.maps import relabel_voxel_size, transform_structure  # noqa: E402
from voxscale.reciprocal.model_map import model_map  # noqa: E402
from voxscale.reciprocal.resolution import RESAMPLING_VOXELS  # noqa: E402

HAEMOGLOBIN = "models/pdb5me2_haemoglobin.pdb"
VOXEL, BOX, RESOLUTION = 1.8, 48, 4.5
SCALE_TOLERANCE = 0.002
VALUE_COLUMNS = ["best_scale", "uncertainty", "percent", "cc_before", "cc_after", "r_before",
                 "r_after", "d_max", "d_min", "memory_estimate"]

# id, factor f of the target's true spacing (s = 1/f), target rotation (deg), options
# (d_min is the maps' resolution; one pair keeps the default, the resolution where the FSC of
# the reference and the corrected target falls below 0.143, as in 'voxscale compare')
GOOD = [
    ("hb-up2", 1.02, 0.0, {"d_min": "4.5"}),
    ("hb-down1.5", 0.985, 0.0, {}),
    ("hb-up1-rot", 1.01, 15.0, {"d_min": "4.5", "d_max": "30"}),
    ("hb-down3", 0.97, 0.0, {"d_min": "4.5"}),
    ("hb-unit", 1.0, 0.0, {"range_lo": "0.97", "range_hi": "1.03", "d_min": "5.0"}),
    ("", 0.99, 0.0, {"models": True, "d_min": "4.5"}),  # no id: its row number (8) is its id
]


def _rotation(axis, degrees):
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    a = np.radians(degrees)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * k @ k


def _box_origin(center, voxel, n):
    return np.asarray(center) - voxel * (n - 1) / 2.0


@pytest.fixture(scope="module")
def survey(tmp_path_factory, shared_file):
    """The pair files and tables: {'folder', 'csv', 'half', 'rows', 's_true', 'default_id'}."""
    model_path = shared_file(HAEMOGLOBIN)
    structure = voxscale.read_model(model_path)
    xyz = np.array([a.pos.tolist() for ch in structure[0] for r in ch for a in r])
    center = xyz.mean(axis=0)
    folder = tmp_path_factory.mktemp("survey")
    (folder / "maps").mkdir()
    ref = model_map(structure, voxel_size=VOXEL, shape=(BOX,) * 3,
                    origin=_box_origin(center, VOXEL, BOX), d_min=RESOLUTION)
    ref.write(folder / "maps" / "ref.mrc")
    rows, s_true = [], {}
    n_t = BOX - 4
    for number, (ident, f, degrees, options) in enumerate(GOOD, start=1):
        moved = structure
        if degrees:
            m = np.eye(4)
            m[:3, :3] = _rotation((1, 1, 0), degrees)
            m[:3, 3] = center - m[:3, :3] @ center
            moved = transform_structure(structure, m)
        spacing = VOXEL / f
        target = model_map(moved, voxel_size=spacing, shape=(n_t,) * 3,
                           origin=_box_origin(center, spacing, n_t), d_min=RESOLUTION)
        if f != 1.0:
            target = relabel_voxel_size(target, VOXEL)
        name = f"target_{number}.mrc"
        target.write(folder / "maps" / name)
        row = {"id": ident, "ref": "maps/ref.mrc", "target": f"maps/{name}"}
        options = dict(options)
        if options.pop("models", False):
            row["ref_model"] = str(model_path)
            row["target_model"] = str(model_path)
        row.update(options)
        rows.append(row)
        s_true[ident or "default"] = 1.0 / f
    # a corrupt header: garbage where nx, ny, nz, mode ... are
    (folder / "maps" / "corrupt.mrc").write_bytes(b"\x7f" * 4096)
    rows.insert(3, {"id": "corrupt", "ref": "maps/ref.mrc", "target": "maps/corrupt.mrc"})
    rows.insert(5, {"id": "missing", "ref": "maps/no_such_ref.mrc",
                    "target": "maps/target_1.mrc"})
    default_id = str(len(rows))  # the row without an id is the last one
    s_true[default_id] = s_true.pop("default")
    columns = ["id", "ref", "target", "ref_model", "target_model", "d_max", "d_min",
               "range_lo", "range_hi", "step", "contour"]
    table = pd.DataFrame(rows).reindex(columns=columns)
    table.to_csv(folder / "pairs.csv", index=False)
    half = table.iloc[:4].copy()
    half.to_csv(folder / "half.csv", index=False)
    return {"folder": folder, "csv": folder / "pairs.csv", "half": folder / "half.csv",
            "rows": rows, "s_true": s_true, "default_id": default_id}


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    import logging
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  resources={"MEMORY": 2e9}, dashboard_address=":0",
                                  silence_logs=logging.ERROR) as lc:
        with distributed.Client(lc) as client:
            yield client


@pytest.fixture
def run_cli(monkeypatch):
    return lambda *argv: cli.main([str(a) for a in argv])


@pytest.fixture(scope="module")
def full(survey, cluster, tmp_path_factory):
    """An uninterrupted CLI run of the whole table on the module's cluster."""
    out = tmp_path_factory.mktemp("full")
    mp = pytest.MonkeyPatch()
    try:
        code = cli.main(["batch", str(survey["csv"]), "--out", str(out), "--scheduler",
                         cluster.scheduler.address, "--quiet"])
    finally:
        mp.undo()
    assert code == 0  # the batch ran, although two pairs failed
    return out


def _csv(out):
    return vbatch.read_results(out / "results.csv")


def _same_table(a, b):
    a = a.sort_values("id").reset_index(drop=True)
    b = b.sort_values("id").reset_index(drop=True)
    assert list(a["id"]) == list(b["id"])
    assert list(a["status"]) == list(b["status"])
    assert list(a["error"]) == list(b["error"])
    ok = a["status"] == "ok"
    for column in VALUE_COLUMNS:
        x = a.loc[ok, column].astype(float).to_numpy()
        y = b.loc[ok, column].astype(float).to_numpy()
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=0, equal_nan=True, err_msg=column)


def test_good_pairs_find_their_scale(full, survey):
    table = _csv(full)
    ok = table[table["status"] == "ok"].set_index("id")
    assert set(ok.index) == set(survey["s_true"])
    for ident, s in survey["s_true"].items():
        row = ok.loc[ident]
        assert abs(row["best_scale"] - s) < SCALE_TOLERANCE, (ident, row["best_scale"], s)
        assert row["percent"] == pytest.approx(100 * (row["best_scale"] - 1))
        assert 0 < row["uncertainty"] < 0.01
        assert row["cc_after"] >= row["cc_before"] - 1e-9
        assert row["r_after"] > 0 and row["r_before"] > 0
        assert row["error"] == ""
        assert row["seconds"] > 0 and row["worker"].startswith("tcp://")
        assert row["memory_estimate"] == vbatch.estimate_memory(BOX**3, (BOX - 4) ** 3)
    # the correction improves both the fit and the amplitude agreement (R within the maps'
    # resolution): 20 % -> 5 % for a 2 % error
    for ident in ("hb-up2", "hb-down1.5", "hb-up1-rot", "hb-down3", survey["default_id"]):
        row = ok.loc[ident]
        assert row["cc_after"] > row["cc_before"] + 0.002, ident
        assert row["r_after"] < 0.6 * row["r_before"], ident
    # per-row options reach the task; the default d_min is the worse of the FSC's and the
    # resampling limit ...
    assert ok.loc["hb-up1-rot", "d_max"] == 30.0 and ok.loc["hb-up1-rot", "d_min"] == 4.5
    assert np.isnan(ok.loc["hb-up2", "d_max"]) and ok.loc["hb-up2", "d_min"] == 4.5
    # ... here the resampling limit, coarser than the maps' 4.5 Å at 2.5 voxels per 4.5 Å:
    # 3.3 voxels of the resampled target (1.8 Å × s)
    assert ok.loc["hb-down1.5", "d_min"] == pytest.approx(
        RESAMPLING_VOXELS * VOXEL / 0.985, rel=1e-3)
    assert ok.loc["hb-unit", "d_min"] == 5.0


def test_bad_pairs_are_error_rows(full, survey):
    table = _csv(full).set_index("id")
    assert len(table) == len(survey["rows"])
    corrupt = table.loc["corrupt"]
    assert corrupt["status"] == "error"
    assert "corrupt.mrc" in corrupt["error"] and "\n" not in corrupt["error"]
    assert "dimensions" in corrupt["error"] or "mode" in corrupt["error"]
    missing = table.loc["missing"]
    assert missing["status"] == "error"
    assert "no_such_ref.mrc" in missing["error"] and "not found" in missing["error"]
    for row in (corrupt, missing):
        assert np.isnan(row["best_scale"])


def test_results_in_table_order_and_parquet(full, survey):
    table = _csv(full)
    assert list(table["id"]) == [r["id"] or survey["default_id"] for r in survey["rows"]]
    parquet = pd.read_parquet(full / "results.parquet")
    assert list(parquet.columns) == list(vbatch.COLUMNS)
    _same_table(table, parquet)
    assert parquet["best_scale"].dtype == np.float64


def test_interrupted_then_resumed_equals_uninterrupted(full, survey, cluster, run_cli,
                                                       tmp_path):
    """Ctrl-C after two rows of a run on the first half of the table (same ids), then the
    whole table with --resume: the same table as the uninterrupted run."""
    out = tmp_path / "resumed"
    scheduler = cluster.scheduler.address
    seen = []

    def stop_after_two(done, total, message):
        seen.append((done, total, message))
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        vbatch.batch(survey["half"], cluster, out=out, progress=stop_after_two)
    first = _csv(out).set_index("id")
    assert len(first) == len(seen) == 2  # nothing finished is lost
    assert len(pd.read_parquet(out / "results.parquet")) == 2
    with open(out / "results.csv", "a") as fh:  # a line cut short by a crash is run again
        fh.write('hb-down3,"/cut sho')
    # without --resume (or --force) the existing results are not touched: exit 2
    assert run_cli("batch", survey["csv"], "--out", out, "--scheduler", scheduler,
                   "--quiet") == 2
    assert run_cli("batch", survey["csv"], "--out", out, "--scheduler", scheduler,
                   "--quiet", "--resume") == 0
    resumed = _csv(out)
    _same_table(resumed, _csv(full))
    again = resumed.set_index("id")
    for ident, row in first.iterrows():
        if row["status"] == "ok":  # kept, not recomputed
            assert again.loc[ident, "seconds"] == row["seconds"]
            assert again.loc[ident, "worker"] == row["worker"]
    _same_table(pd.read_parquet(out / "results.parquet"), _csv(full))
    # an error row is retried by --resume, an ok row is not; --force starts again
    retry = tmp_path / "retry.csv"
    retry.write_text(f"id,ref,target\nmissing,{survey['folder'] / 'maps' / 'nope.mrc'},x.mrc\n")
    assert run_cli("batch", retry, "--out", out, "--scheduler", scheduler, "--quiet",
                   "--resume") == 0
    assert "nope.mrc" in _csv(out).set_index("id").loc["missing", "error"]
    assert len(_csv(out)) == len(survey["rows"])
    assert run_cli("batch", retry, "--out", out, "--scheduler", scheduler, "--quiet",
                   "--force") == 0
    assert list(_csv(out)["id"]) == ["missing"]


def test_python_api_with_explicit_client(survey, cluster, tmp_path, shared_file):
    folder = survey["folder"]
    model = shared_file(HAEMOGLOBIN)
    # no overlap: the target's density 500 Å away from where its model says
    target = voxscale.read_map(folder / "maps/target_1.mrc")
    far_path = tmp_path / "far.mrc"
    voxscale.Map(target.data, target.voxel_size, target.origin + 500.0).write(far_path)
    # a gzipped file whose header declares 3000³ voxels: more than any worker offers
    header = bytearray(1024)
    struct.pack_into("<3i i 3i 3i 3f 3f 3i", header, 0, 3000, 3000, 3000, 2, 0, 0, 0,
                     3000, 3000, 3000, 3000.0, 3000.0, 3000.0, 90.0, 90.0, 90.0, 1, 2, 3)
    struct.pack_into("<i", header, 88, 1)  # ispg
    header[208:212] = b"MAP "
    header[212:216] = b"\x44\x44\x00\x00"
    huge = tmp_path / "huge.mrc.gz"
    with gzip.open(huge, "wb") as fh:
        fh.write(bytes(header) + b"\0" * 4096)
    pairs = [{"id": "a", "ref": str(folder / "maps/ref.mrc"),
              "target": str(folder / "maps/target_1.mrc")},
             {"id": "huge", "ref": str(folder / "maps/ref.mrc"), "target": str(huge)},
             {"id": "far", "ref": str(folder / "maps/ref.mrc"), "target": str(far_path),
              "ref_model": str(model), "target_model": str(model)}]
    calls = []
    table = voxscale.batch.batch(pairs, cluster, progress=lambda *a: calls.append(a))
    assert list(table["id"]) == ["a", "huge", "far"]
    assert len(calls) == 3 and calls[-1] == (3, 3, "ok 1 failed 2 remaining 0")
    a, big, away = table.iloc[0], table.iloc[1], table.iloc[2]
    # With models the target model is found outside its map first; without, the maps do not overlap.
    assert away["status"] == "error" and ("overlap" in away["error"] or "outside" in away["error"])
    assert "far.mrc" in away["error"] and away["worker"].startswith("tcp://")
    assert a["status"] == "ok" and abs(a["best_scale"] - 1 / 1.02) < SCALE_TOLERANCE
    assert big["status"] == "error"
    assert "GB" in big["error"] and "more than any worker" in big["error"]
    assert big["memory_estimate"] > 2e9
    # the module is callable too: voxscale.batch(pairs, client)
    same = voxscale.batch(pairs[:1], cluster)
    assert same.loc[0, "best_scale"] == a["best_scale"]


def test_read_pairs_defaults_and_relative_paths(survey):
    specs = vbatch.read_pairs(survey["csv"])
    assert [s.id for s in specs] == [r["id"] or survey["default_id"] for r in survey["rows"]]
    plain = specs[1]  # hb-down1.5: no options
    assert plain.ref == str(survey["folder"] / "maps" / "ref.mrc")
    assert (plain.range_lo, plain.range_hi, plain.step) == (0.95, 1.05, 0.002)
    assert plain.d_min is None and plain.d_max is None and plain.contour is None
    assert plain.ref_model is None and specs[-1].ref_model.endswith("haemoglobin.pdb")
    assert specs[0].d_min == 4.5
    assert vbatch.map_voxels(plain.ref) == BOX**3


@pytest.mark.parametrize("content, expected", [
    (None, "not found"),
    ("ref,other\na.mrc,b.mrc\n", "no 'target' column"),
    ("ref,target,d_min\na.mrc,b.mrc,fine\n", "row 1: column d_min"),
    ("id,ref,target\nx,a.mrc,b.mrc\nx,c.mrc,d.mrc\n", "id 'x' already used"),
    ("ref,target\n", "no pairs"),
    ("ref,target,range_lo,range_hi\na.mrc,b.mrc,1.01,1.05\n", "must be positive and contain 1"),
])
def test_unusable_table_exits_2(run_cli, tmp_path, capsys, content, expected):
    table = tmp_path / "pairs.csv"
    if content is not None:
        table.write_text(content)
    assert run_cli("batch", table, "--out", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert err.startswith("voxscale batch: error:") and expected in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_cli_starts_its_own_local_cluster(survey, run_cli, tmp_path, capsys):
    table = tmp_path / "two.csv"
    maps = survey["folder"] / "maps"
    table.write_text(f"id,ref,target\none,{maps / 'ref.mrc'},{maps / 'target_2.mrc'}\n"
                     f"gone,{maps / 'ref.mrc'},{maps / 'nothing.mrc'}\n")
    assert run_cli("batch", table, "--out", tmp_path / "out", "--workers", "1",
                   "--memory-per-worker", "2GB") == 0
    captured = capsys.readouterr()
    assert "2 pairs: 1 ok, 1 failed" in captured.out
    assert "\r" not in captured.err  # not a terminal: no progress bar drawn
    result = _csv(tmp_path / "out").set_index("id")
    assert abs(result.loc["one", "best_scale"] - 1 / 0.985) < SCALE_TOLERANCE
    assert "nothing.mrc" in result.loc["gone", "error"]


def test_resume_reruns_an_ok_row_whose_numbers_do_not_parse(full, survey, cluster, run_cli,
                                                            tmp_path):
    """An 'ok' row damaged on disk (best_scale not a number) is not kept by --resume."""
    out = tmp_path / "damaged"
    out.mkdir()
    lines = (full / "results.csv").read_text().splitlines()
    header = lines[0].split(",")
    col = header.index("best_scale")
    damaged = None
    for i, line in enumerate(lines[1:], start=1):
        cells = line.split(",")
        if cells[header.index("status")] == "ok":
            cells[col] = "not-a-number"
            lines[i], damaged = ",".join(cells), cells[0]
            break
    (out / "results.csv").write_text("\n".join(lines) + "\n")
    assert run_cli("batch", survey["csv"], "--out", out, "--scheduler",
                   cluster.scheduler.address, "--resume", "--quiet") == 0
    table = _csv(out).set_index("id")
    assert table.loc[damaged, "status"] == "ok"
    assert np.isfinite(table.loc[damaged, "best_scale"])
    _same_table(_csv(full), _csv(out))

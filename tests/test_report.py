"""The comparison's report, as a person sees it: headless Chromium opens report.html, every plot
must have loaded, and a screenshot is kept in the test's folder. Also the demo end to end."""
import json
import shutil
import subprocess

import gemmi
import numpy as np
import pytest

from voxscale.cli import main


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    assert main(["demo", "--out", str(out), "--size", "56", "--quiet"]) == 0
    return out


def test_demo_recovers_truth(demo_run):
    s = json.loads((demo_run / "summary.json").read_text())
    truth = s["demo_truth"]
    assert abs(s["voxel_scale"]["best_scale"] - truth["scale"]) < 1e-3
    assert s["amplitude_difference"]["after"] < s["amplitude_difference"]["before"]
    negative = [p for p in s["peaks"] if p["height_sigma"] < 0][:len(truth["substitutions"])]
    named = {(p["chain"], p["residue_number"]) for p in negative}
    assert named == {(t["chain"], t["number"]) for t in truth["substitutions"]}
    for key in ("scan", "resample", "scaling_and_difference", "peaks", "models"):
        assert s["timings"][key] >= 0
    # the difference map's verdict, in the JSON, the report and the log
    verdict = s["difference_map"]["verdict"]
    assert verdict.startswith(f"{s['difference_map']['peaks_found']} peaks beyond")
    assert verdict in (demo_run / "report.html").read_text()
    assert f"difference map: {verdict}" in (demo_run / "compare.log").read_text()
    for name in ("report.html", "target_corrected.mrc", "difference.mrc",
                 "difference_realspace.mrc", "peaks.csv", "peaks.json", "peaks.cmm",
                 "structure_factors.mtz", "compare.log"):
        assert (demo_run / name).is_file(), name


def test_existing_output_folder_is_refused(demo_run, capsys):
    assert main(["demo", "--out", str(demo_run), "--quiet"]) == 2
    assert "--force" in capsys.readouterr().err


def test_report_renders_in_chromium(demo_run, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("no headless Chromium (Debian package 'chromium'; .ci/run installs it)")
    report = demo_run / "report.html"
    html = report.read_text()
    n_images = html.count("<img ")
    assert n_images >= 3  # scan, shells, expansion
    # Every image must have decoded: the page writes the count of complete images with a
    # non-zero natural width into its title, which --dump-dom shows.
    probe = tmp_path / "probe.html"
    probe.write_text(html.replace(
        "</body>",
        "<script>window.addEventListener('load',()=>{const ok=[...document.images].filter("
        "i=>i.complete&&i.naturalWidth>0).length;document.title='loaded '+ok+' of '+"
        "document.images.length;});</script></body>"))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([browser, *flags, "--virtual-time-budget=5000", "--dump-dom",
                          probe.as_uri()], capture_output=True, text=True, timeout=120)
    assert f"loaded {n_images} of {n_images}" in dom.stdout, dom.stderr[-2000:]
    shot = tmp_path / "report.png"
    subprocess.run([browser, *flags, f"--screenshot={shot}", "--window-size=1200,2400",
                    report.as_uri()], capture_output=True, timeout=120)
    assert shot.is_file() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_real_actin_pair_writes_a_complete_report(shared_file, tmp_path):
    """EMD-5170 (2.38 Å voxels) against EMD-5168 (1.742 Å voxels), one actin model placed in
    both: the whole comparison runs and writes every output with the documented keys."""
    model = shared_file("models/pdb3mfp_actin_modeller_tempy.pdb")
    out = tmp_path / "actin"
    assert main(["compare", str(shared_file("maps/emd_5170_tempy.map")),
                 str(shared_file("maps/emd_5168_factin_tempy.map")), "--ref-model", str(model),
                 "--target-model", str(model), "--quiet", "--out", str(out)]) == 0
    s = json.loads((out / "summary.json").read_text())
    for key in ("best_scale", "uncertainty", "percent"):
        assert key in s["voxel_scale"]
    # the two filaments hardly share signal at their common resolution (MANIFEST.md): whatever
    # factor the scan finds, the verdict must not be "ok", and the reasons are in the summary
    assert np.isfinite(s["voxel_scale"]["best_scale"])
    assert s["quality"]["status"] == "unreliable"
    assert "r_near_unrelated" in {r["code"] for r in s["quality"]["reasons"]}
    assert set(s["amplitude_difference"]) >= {"before", "after"}
    assert {"scan", "resample", "scaling_and_difference", "peaks", "models"} <= set(s["timings"])
    assert s["expansion"]["n_pairs"] > 300 and abs(s["expansion"]["slope_radial"]) < 1e-6
    html = (out / "report.html").read_text()
    # scan, shells, expansion and the difference slices
    assert html.count("<img ") == 4 and "voxel-scale error" in html
    assert "Residues with the largest differences" in html
    for name in ("residue_scores.csv", "model_scored.pdb", "open_in_chimerax.cxc",
                 "difference_slices.png"):
        assert (out / name).is_file(), name
    script = (out / "open_in_chimerax.cxc").read_text()
    for line in script.splitlines():  # every file the script opens is there
        if line.startswith("open ") and not line.startswith('open "'):
            assert (out / line.split()[1]).is_file(), line
    scores = (out / "residue_scores.csv").read_text().splitlines()
    # EMD-5168's box covers a part of the reference's filament: only residues where the
    # corrected target has data are scored, the others get occupancy 0 in the scored model
    coverage = s["difference_map"]["target_coverage"]
    assert coverage["molecule"] < 0.9 and coverage["box"] < 0.9
    assert "partial_coverage" in {r["code"] for r in s["quality"]["reasons"]}
    assert scores[0].startswith("rank,chain,residue_name") and len(scores) > 50
    scored = gemmi.read_structure(str(out / "model_scored.pdb"))
    occupancy = {(ch.name, r.seqid.num): r[0].occ for ch in scored[0] for r in ch}
    assert sum(o > 0 for o in occupancy.values()) == len(scores) - 1
    for p in s["peaks"]:
        assert {"height_sigma", "chain", "residue_name", "residue_number"} <= set(p)

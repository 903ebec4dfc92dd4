"""MTZ output (voxscale.write_mtz), read back with gemmi.

gemmi moves reflections into its P1 asymmetric unit (ensure_asu), so values are compared by
matching each MTZ row with our reflection or its Friedel mate (F(−h) = F(h)*), and through
gemmi's own map synthesis (transform_f_phi_to_map), which docs/method.md §2 says uses our
convention; the maps to compare with are low-passed here with numpy.fft.
"""
from __future__ import annotations

import gemmi
import numpy as np
import pytest

import voxscale

SHAPE = (30, 36, 40)                 # nz, ny, nx
VOXEL = np.array([1.0, 0.9, 1.1])    # x, y, z
D_MIN = 3.0


def numpy_low_pass(data, d_min):
    nz, ny, nx = data.shape
    s2 = (np.fft.rfftfreq(nx, d=VOXEL[0])[None, None, :] ** 2
          + np.fft.fftfreq(ny, d=VOXEL[1])[None, :, None] ** 2
          + np.fft.fftfreq(nz, d=VOXEL[2])[:, None, None] ** 2)
    f = np.fft.rfftn(data.astype(np.float64)) * (s2 <= (1 / d_min) ** 2 * (1 + 1e-9))
    f[0, 0, 0] = 0.0                       # MTZ files carry no F(000)
    return np.fft.irfftn(f, s=data.shape, axes=(0, 1, 2))


@pytest.fixture(scope="module")
def maps():
    rng = np.random.default_rng(1)
    ref = voxscale.Map(rng.standard_normal(SHAPE).astype(np.float32), VOXEL)
    tgt = voxscale.Map(ref.data + 0.5 * rng.standard_normal(SHAPE).astype(np.float32), VOXEL)
    return ref, tgt


@pytest.fixture(scope="module")
def written(maps, tmp_path_factory):
    ref, tgt = maps
    sf_r = voxscale.structure_factors(ref, D_MIN)
    sf_t = voxscale.structure_factors(tgt, D_MIN)
    path = tmp_path_factory.mktemp("mtz") / "out.mtz"
    voxscale.write_mtz(path, sf_r, sf_t)
    return path, sf_r, sf_t


def column(mtz, label):
    return np.array(mtz.column_with_label(label), dtype=np.float64)


def complex_column(mtz, amp, phase):
    return column(mtz, amp) * np.exp(1j * np.radians(column(mtz, phase)))


def test_columns_types_cell_and_symmetry(written):
    path, sf_r, _ = written
    mtz = gemmi.read_mtz_file(str(path))
    types = {c.label: c.type for c in mtz.columns}
    assert types == {"H": "H", "K": "H", "L": "H", "FREF": "F", "PHIREF": "P", "FTGT": "F",
                     "PHITGT": "P", "DELFWT": "F", "PHDELWT": "P"}
    assert mtz.spacegroup.hm == "P 1"
    cell = mtz.cell
    assert [cell.a, cell.b, cell.c] == pytest.approx(list(VOXEL * SHAPE[::-1]))
    assert [cell.alpha, cell.beta, cell.gamma] == [90, 90, 90]
    assert mtz.nreflections == len(sf_r)
    assert mtz.resolution_high() == pytest.approx(D_MIN, rel=0.02)
    assert mtz.resolution_high() >= D_MIN * (1 - 1e-6)
    assert not path.with_name(f".{path.name}.tmp").exists()


def test_values_match_per_reflection(written):
    path, sf_r, sf_t = written
    mtz = gemmi.read_mtz_file(str(path))
    hkl = np.stack([column(mtz, x) for x in "HKL"], axis=1).astype(int)
    ours = {tuple(h): i for i, h in enumerate(sf_r.hkl.tolist())}
    index, conj = [], []
    for h in hkl.tolist():
        if tuple(h) in ours:
            index.append(ours[tuple(h)])
            conj.append(False)
        else:
            index.append(ours[tuple(-x for x in h)])   # KeyError = reflection lost
            conj.append(True)
    index, conj = np.array(index), np.array(conj)
    assert len(set(index.tolist())) == len(sf_r)            # each reflection exactly once
    for (amp, phase), sf in ((("FREF", "PHIREF"), sf_r), (("FTGT", "PHITGT"), sf_t)):
        expected = np.where(conj, np.conj(sf.f[index]), sf.f[index])
        got = complex_column(mtz, amp, phase)
        scale = np.abs(expected).max()
        assert np.abs(got - expected).max() < 1e-5 * scale
    delta = complex_column(mtz, "DELFWT", "PHDELWT")
    vec = complex_column(mtz, "FTGT", "PHITGT") - complex_column(mtz, "FREF", "PHIREF")
    assert np.abs(delta - vec).max() < 1e-5 * np.abs(vec).max()


def test_columns_written_in_chunks_equal_one_pass(maps, tmp_path, monkeypatch):
    """The columns are filled a chunk of reflections at a time (memory): chunks of 97 (not a
    divisor) must write the same file contents as one chunk, with an origin (phase shift) and
    a low-resolution limit (DELFWT zeroed) in play."""
    from voxscale.maps import mtz as mtz_module
    ref, tgt = maps
    moved = voxscale.Map(ref.data, VOXEL, (5.0, -3.0, 2.5))
    sf_r = voxscale.structure_factors(moved, D_MIN)
    sf_t = voxscale.structure_factors(voxscale.Map(tgt.data, VOXEL, moved.origin), D_MIN)
    tables = []
    for chunk in (1 << 30, 97):
        monkeypatch.setattr(mtz_module, "MTZ_CHUNK", chunk)
        path = tmp_path / f"chunk{chunk}.mtz"
        voxscale.write_mtz(path, sf_r, sf_t, d_max=8.0)
        tables.append(np.array(gemmi.read_mtz_file(str(path)), copy=True))
    assert len(sf_r) > 20 * 97
    np.testing.assert_array_equal(tables[0], tables[1])
    delfwt = tables[0][:, 7]
    assert np.any(delfwt == 0) and np.any(delfwt > 0)  # the limit zeroed some, not all


def test_gemmi_synthesis_reproduces_the_low_passed_maps(written, maps):
    path, _, _ = written
    ref, tgt = maps
    nz, ny, nx = SHAPE
    mtz = gemmi.read_mtz_file(str(path))

    def synth(amp, phase):
        grid = mtz.transform_f_phi_to_map(amp, phase, exact_size=[nx, ny, nz])
        return np.array(grid, copy=False).transpose(2, 1, 0)   # gemmi grid is x, y, z

    lp_ref = numpy_low_pass(ref.data, D_MIN)
    lp_tgt = numpy_low_pass(tgt.data, D_MIN)
    scale = np.abs(lp_ref).max()
    assert np.abs(synth("FREF", "PHIREF") - lp_ref).max() < 1e-5 * scale
    assert np.abs(synth("FTGT", "PHITGT") - lp_tgt).max() < 1e-5 * scale
    assert np.abs(synth("DELFWT", "PHDELWT") - (lp_tgt - lp_ref)).max() < 1e-5 * scale


def test_without_difference_and_mismatched_reflections(maps, tmp_path):
    ref, tgt = maps
    sf_r = voxscale.structure_factors(ref, D_MIN)
    sf_t = voxscale.structure_factors(tgt, D_MIN)
    voxscale.write_mtz(tmp_path / "a.mtz", sf_r, sf_t, difference=False)
    labels = [c.label for c in gemmi.read_mtz_file(str(tmp_path / "a.mtz")).columns]
    assert labels == ["H", "K", "L", "FREF", "PHIREF", "FTGT", "PHITGT"]
    with pytest.raises(ValueError, match="same reflections"):
        voxscale.write_mtz(tmp_path / "b.mtz", sf_r, voxscale.structure_factors(tgt, 4.0))
    assert not (tmp_path / "b.mtz").exists()


def test_mtz_map_sits_where_the_density_is_in_cartesian_space(tmp_path):
    """A blob at a known Cartesian position in a map whose origin is not zero: the map gemmi
    synthesises from the MTZ (periodic cell from (0, 0, 0), as Coot uses it) must have the
    blob at the same Cartesian position, where the models are."""
    origin = np.array([12.0, -7.5, 30.25])
    centre = origin + np.array([14.3, 11.2, 19.7])
    nz, ny, nx = SHAPE
    x = origin[0] + np.arange(nx) * VOXEL[0]
    y = origin[1] + np.arange(ny) * VOXEL[1]
    z = origin[2] + np.arange(nz) * VOXEL[2]
    r2 = ((x[None, None, :] - centre[0]) ** 2 + (y[None, :, None] - centre[1]) ** 2
          + (z[:, None, None] - centre[2]) ** 2)
    m = voxscale.Map(np.exp(-r2 / (2 * 1.5**2)).astype(np.float32), VOXEL, origin)
    sf = voxscale.structure_factors(m, 2.5)
    voxscale.write_mtz(tmp_path / "o.mtz", sf, sf)
    mtz = gemmi.read_mtz_file(str(tmp_path / "o.mtz"))
    grid = mtz.transform_f_phi_to_map("FREF", "PHIREF", exact_size=[nx, ny, nz])
    at_blob = grid.interpolate_value(gemmi.Position(*centre))
    arr = np.array(grid, copy=False)
    assert at_blob > 0.8 * arr.max(), (at_blob, arr.max())

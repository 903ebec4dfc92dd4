"""Tests of map and model file IO (voxscale.maps.mrc, voxscale.maps.models).

Test files are built with mrcfile directly, header fields set by hand, or patched byte by byte
(MRC2014 header layout: nx, ny, nz int32 at bytes 0, 4, 8; mode 12; nxstart, nystart, nzstart
16, 20, 24; mx, my, mz 28, 32, 36; cella float32 40, 44, 48; mapc, mapr, maps 64, 68, 72;
nsymbt 92; origin float32 196, 200, 204; 'MAP ' at 208), so that the expectations come from
the file format, not from voxscale's own writer. The real-data tests check the origin and axis
handling physically: the density at the atoms of a fitted model must be high.
"""
import gzip
import itertools
import os
import struct
import time
import tracemalloc
import warnings

import mrcfile
import numpy as np
import pytest

from voxscale import InputFileError, Map, MapFormatError, ModelFormatError, read_map, read_model
from voxscale.maps.models import model_atom_positions

# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def write_mrc(path, stored, *, axes=(1, 2, 3), voxel=(1.0, 1.0, 1.0), nstart=(0, 0, 0),
              origin=(0.0, 0.0, 0.0), compression=None):
    """Write ``stored`` (sections, rows, columns) with mrcfile, setting the header by hand.

    ``axes`` = (mapc, mapr, maps); ``voxel`` and ``origin`` are x, y, z; ``nstart`` is
    (nxstart, nystart, nzstart), i.e. columns, rows, sections.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NaN data in the header statistics
        with mrcfile.new(path, overwrite=True, compression=compression) as mrc:
            mrc.set_data(stored)
            h = mrc.header
            h.mapc, h.mapr, h.maps = axes
            # mx, my, mz sample the physical axes x, y, z: the length of the stored axis on each.
            length_on = dict(zip(axes, stored.shape[::-1]))
            h.mx, h.my, h.mz = length_on[1], length_on[2], length_on[3]
            h.cella = tuple(v * length_on[a] for a, v in zip((1, 2, 3), voxel))
            h.nxstart, h.nystart, h.nzstart = nstart
            h.origin = tuple(origin)
    return path


def patch(path, offset, fmt, *values):
    """Overwrite header bytes at ``offset`` with little-endian ``struct`` values."""
    with open(path, "r+b") as fh:
        fh.seek(212)
        assert fh.read(2) == b"\x44\x44", "test files are expected to be little-endian"
        fh.seek(offset)
        fh.write(struct.pack("<" + fmt, *values))
    return path


def assert_map_error(path, *words):
    """read_map(path) raises MapFormatError fast, without allocating much; check the message."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(MapFormatError) as info:
            read_map(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 2.0
    assert peak < 16 * 2**20, f"reading a bad file allocated {peak / 2**20:.0f} MiB"
    message = str(info.value)
    assert message.startswith(str(path)), message
    for word in words:
        assert word.lower() in message.lower(), message
    return message


@pytest.fixture
def valid_mrc(tmp_path):
    """A valid 20x20x20 float32 map (80 kB of data)."""
    data = np.random.default_rng(0).normal(size=(20, 20, 20)).astype(np.float32)
    return write_mrc(tmp_path / "valid.mrc", data, voxel=(1.5, 1.5, 1.5))


# --------------------------------------------------------------------------------------------
# the Map class
# --------------------------------------------------------------------------------------------


def test_map_geometry():
    m = Map(np.zeros((4, 5, 6), dtype=np.float64), (1.0, 2.0, 3.0), origin=(10.0, 20.0, 30.0))
    assert m.data.dtype == np.float32 and m.data.flags.c_contiguous
    assert m.shape == (4, 5, 6)
    np.testing.assert_array_equal(m.grid_size, [6, 5, 4])
    np.testing.assert_allclose(m.cell, [6.0, 10.0, 12.0])
    # centre of the voxel grid: origin + v (n - 1) / 2 along x, y, z
    np.testing.assert_allclose(m.center, [10.0 + 2.5, 20.0 + 4.0, 30.0 + 4.5])
    np.testing.assert_array_equal(Map(np.ones((2, 2, 2)), 1.25).voxel_size, [1.25] * 3)
    np.testing.assert_array_equal(Map(np.ones((2, 2, 2)), 1.25).origin, [0.0] * 3)
    assert "voxel_size=(1, 2, 3)" in repr(m)


def test_map_fortran_input_is_made_c_contiguous():
    zyx = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    m = Map(np.asfortranarray(zyx), 1.0)
    assert m.data.flags.c_contiguous
    np.testing.assert_array_equal(m.data, zyx)


@pytest.mark.parametrize("kwargs, name", [
    (dict(data=np.zeros((4, 5))), "3-D"),
    (dict(data=np.zeros((4, 0, 5))), "length"),
    (dict(data=np.full((2, 2, 2), np.nan)), "non-finite"),
    (dict(data=np.array([[[1.0, np.inf]]])), "non-finite"),
    (dict(data=np.zeros((2, 2, 2), dtype=np.complex64)), "complex"),
    (dict(voxel_size=0.0), "voxel_size"),
    (dict(voxel_size=(1.0, -1.0, 1.0)), "voxel_size"),
    (dict(voxel_size=(1.0, np.nan, 1.0)), "voxel_size"),
    (dict(voxel_size=(1.0, 1.0)), "voxel_size"),
    (dict(origin=(0.0, np.inf, 0.0)), "origin"),
    (dict(origin="abc"), "origin"),
])
def test_map_rejects_invalid_values(kwargs, name):
    args = dict(data=np.zeros((2, 2, 2)), voxel_size=1.0, origin=(0.0, 0.0, 0.0)) | kwargs
    with pytest.raises(ValueError, match=name):
        Map(**args)


def test_map_vectors_are_read_only_and_copy_is_independent():
    m = Map(np.zeros((2, 2, 2)), 1.0)
    with pytest.raises(ValueError):
        m.voxel_size[0] = -1.0
    with pytest.raises(ValueError, match="voxel_size"):
        m.voxel_size = -1.0
    c = m.copy()
    c.data[0, 0, 0] = 5.0
    c.origin = (1.0, 2.0, 3.0)
    assert m.data[0, 0, 0] == 0.0 and not np.any(m.origin)


# --------------------------------------------------------------------------------------------
# writing, and reading back
# --------------------------------------------------------------------------------------------

VOXEL = np.array([1.1, 0.9, 1.3])
ORIGINS = {
    "zero": (np.zeros(3), (0, 0, 0)),
    "integral": (VOXEL * [3, -4, 7], (3, -4, 7)),
    "fractional": (np.array([1.234, -5.5, 10.01]), (0, 0, 0)),
}


@pytest.mark.parametrize("suffix", [".mrc", ".map.gz"])
@pytest.mark.parametrize("origin_kind", list(ORIGINS))
def test_write_then_read_round_trip(tmp_path, suffix, origin_kind):
    origin, nstart = ORIGINS[origin_kind]
    data = np.random.default_rng(1).normal(size=(5, 6, 7)).astype(np.float32)  # nz, ny, nx
    path = tmp_path / f"map{suffix}"
    Map(data, VOXEL, origin).write(path)

    if suffix.endswith(".gz"):
        assert path.read_bytes()[:2] == b"\x1f\x8b"
    with mrcfile.open(path) as mrc:  # the file as any MRC reader sees it
        h = mrc.header
        assert int(h.mode) == 2
        assert (int(h.nx), int(h.ny), int(h.nz)) == (7, 6, 5)
        assert (int(h.mx), int(h.my), int(h.mz)) == (7, 6, 5)
        assert (int(h.mapc), int(h.mapr), int(h.maps)) == (1, 2, 3)
        np.testing.assert_allclose([h.cella.x, h.cella.y, h.cella.z], VOXEL * [7, 6, 5], rtol=1e-6)
        np.testing.assert_allclose([h.origin.x, h.origin.y, h.origin.z], origin, rtol=1e-6)
        assert (int(h.nxstart), int(h.nystart), int(h.nzstart)) == nstart
        np.testing.assert_array_equal(mrc.data, data)
        np.testing.assert_allclose([h.dmin, h.dmax, h.dmean, h.rms],
                                   [data.min(), data.max(), data.mean(), data.std()], rtol=1e-5)

    m = read_map(path)
    np.testing.assert_array_equal(m.data, data)
    np.testing.assert_allclose(m.voxel_size, VOXEL, rtol=1e-6)
    np.testing.assert_allclose(m.origin, origin, rtol=1e-6, atol=1e-6)
    assert os.listdir(tmp_path) == [path.name]  # no temporary file left


def test_write_overwrite_flag(tmp_path):
    path = tmp_path / "m.mrc"
    Map(np.zeros((2, 3, 4)), 1.0).write(path)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="m.mrc"):
        Map(np.ones((2, 3, 4)), 1.0).write(path, overwrite=False)
    assert path.read_bytes() == before
    Map(np.ones((2, 3, 4)), 1.0).write(path)
    np.testing.assert_array_equal(read_map(path).data, 1.0)
    assert os.listdir(tmp_path) == ["m.mrc"]


def test_failed_write_keeps_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "m.mrc"
    Map(np.zeros((2, 3, 4)), 1.0).write(path)
    before = path.read_bytes()

    def broken(self):
        raise RuntimeError("disk full (simulated)")

    monkeypatch.setattr(mrcfile.mrcobject.MrcObject, "update_header_stats", broken)
    with pytest.raises(RuntimeError, match="simulated"):
        Map(np.ones((2, 3, 4)), 1.0).write(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.mrc"]


# --------------------------------------------------------------------------------------------
# header conventions: axis order, nstart, origin, modes
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("axes", list(itertools.permutations((1, 2, 3))))
def test_axis_order_is_transposed_to_zyx(tmp_path, axes):
    zyx = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)  # nz, ny, nx: all distinct
    voxel = np.array([0.5, 0.7, 0.9])
    nstart = (2, -3, 5)  # columns, rows, sections
    # zyx axis of physical axis a (1 = x, 2 = y, 3 = z) is 3 - a; stored = (maps, mapr, mapc)
    stored = np.ascontiguousarray(zyx.transpose([3 - a for a in axes[::-1]]))
    path = write_mrc(tmp_path / "axes.mrc", stored, axes=axes, voxel=voxel, nstart=nstart)

    m = read_map(path)
    assert m.shape == (4, 5, 6)
    for s, r, c in np.ndindex(stored.shape):  # element by element, from the header definition
        at = {axes[0]: c, axes[1]: r, axes[2]: s}  # physical axis -> index
        assert m.data[at[3], at[2], at[1]] == stored[s, r, c]
    np.testing.assert_array_equal(m.data, zyx)
    np.testing.assert_allclose(m.voxel_size, voxel, rtol=1e-6)
    expected_origin = np.zeros(3)
    for axis, start in zip(axes, nstart):
        expected_origin[axis - 1] = start * voxel[axis - 1]
    np.testing.assert_allclose(m.origin, expected_origin, rtol=1e-6)


@pytest.mark.parametrize("origin_field, nstart, expected", [
    ((0.0, 0.0, 0.0), (-50, -50, -50), (-87.1, -87.1, -87.1)),  # nstart x voxel (1.742)
    ((10.5, -3.0, 2.0), (1, 2, 3), (10.5, -3.0, 2.0)),  # a non-zero origin field wins
    ((0.0, 0.0, 7.5), (4, 4, 4), (0.0, 0.0, 7.5)),  # ... even when only one component is set
])
def test_origin_field_or_nstart(tmp_path, origin_field, nstart, expected):
    stored = np.zeros((3, 3, 3), dtype=np.float32)
    path = write_mrc(tmp_path / "o.mrc", stored, voxel=(1.742,) * 3, nstart=nstart,
                     origin=origin_field)
    np.testing.assert_allclose(read_map(path).origin, expected, rtol=1e-6)


@pytest.mark.parametrize("dtype, mode", [
    (np.int8, 0), (np.int16, 1), (np.uint16, 6), (np.float16, 12), (np.float32, 2),
])
def test_modes_are_read_as_float32(tmp_path, dtype, mode):
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else np.finfo(dtype)
    stored = np.linspace(float(info.min), float(info.max), 2 * 3 * 4).astype(dtype).reshape(2, 3, 4)
    path = write_mrc(tmp_path / "mode.mrc", stored)
    assert np.frombuffer(path.read_bytes()[12:16], "<i4")[0] == mode
    m = read_map(path)
    assert m.data.dtype == np.float32 and m.data.flags.c_contiguous
    np.testing.assert_array_equal(m.data, stored.astype(np.float32))


def test_big_endian_file(tmp_path):
    stored = np.arange(24, dtype=">f4").reshape(2, 3, 4)
    path = write_mrc(tmp_path / "be.mrc", stored, voxel=(2.0, 2.0, 2.0), nstart=(1, 1, 1))
    assert path.read_bytes()[212:214] == b"\x11\x11"
    m = read_map(path)
    np.testing.assert_array_equal(m.data, np.arange(24).reshape(2, 3, 4))
    np.testing.assert_allclose(m.origin, [2.0, 2.0, 2.0])


def test_complex_mode_is_not_a_density(tmp_path):
    path = write_mrc(tmp_path / "c.mrc", np.ones((2, 3, 4), dtype=np.complex64))
    assert_map_error(path, "complex mode 4")
    write_mrc(path, np.ones((2, 3, 4), dtype=np.float32))
    assert_map_error(patch(path, 12, "i", 3), "complex mode 3")


def test_longer_file_warns_but_reads(valid_mrc):
    with open(valid_mrc, "ab") as fh:
        fh.write(b"\0" * 100)
    with pytest.warns(RuntimeWarning, match="longer"):
        assert read_map(valid_mrc).shape == (20, 20, 20)


# --------------------------------------------------------------------------------------------
# malformed files
# --------------------------------------------------------------------------------------------

CORRUPTIONS = {
    "truncated": (lambda p: os.truncate(p, 1024 + 1000), ["shorter", "truncated"]),
    "dims larger than data": (lambda p: patch(p, 8, "i", 30), ["shorter"]),
    "dims 10^9": (lambda p: patch(p, 0, "iii", 10**9, 10**9, 10**9), ["shorter"]),
    "nx 10^9": (lambda p: patch(p, 0, "i", 10**9), ["shorter"]),
    "zero dim": (lambda p: patch(p, 4, "i", 0), ["nx, ny, nz"]),
    "negative dim": (lambda p: patch(p, 8, "i", -5), ["nx, ny, nz"]),
    "two negative dims": (lambda p: patch(p, 0, "ii", -20, -20), ["nx, ny, nz"]),
    "voxel size 0": (lambda p: patch(p, 40, "f", 0.0), ["voxel size", "cella"]),
    "negative cella": (lambda p: patch(p, 44, "f", -30.0), ["voxel size"]),
    "cella NaN": (lambda p: patch(p, 48, "f", float("nan")), ["voxel size"]),
    "mx 0": (lambda p: patch(p, 28, "i", 0), ["voxel size", "mx"]),
    "axes repeated": (lambda p: patch(p, 64, "iii", 1, 1, 3), ["mapc, mapr, maps"]),
    "axes zero": (lambda p: patch(p, 64, "iii", 0, 0, 0), ["mapc, mapr, maps"]),
    "axis out of range": (lambda p: patch(p, 64, "iii", 1, 2, 4), ["mapc, mapr, maps"]),
    "unknown mode": (lambda p: patch(p, 12, "i", 7), ["mode 7"]),
    "mode 101": (lambda p: patch(p, 12, "i", 101), ["mode 101"]),
    "negative nsymbt": (lambda p: patch(p, 92, "i", -8), ["nsymbt"]),
    "huge nsymbt": (lambda p: patch(p, 92, "i", 2**31 - 1), ["shorter"]),
    "origin NaN": (lambda p: patch(p, 196, "f", float("nan")), ["origin"]),
    "volume stack": (lambda p: patch(p, 36, "i", 10) and patch(p, 88, "i", 401), ["stack"]),
    "empty file": (lambda p: open(p, "wb").close(), ["not an mrc", "1024"]),
    "text file": (lambda p: p.write_text("this is not a map\n" * 200), ["not an mrc"]),
    "random bytes": (lambda p: p.write_bytes(np.random.default_rng(3).bytes(5000)), ["not an mrc"]),
}


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_malformed_file_raises_map_format_error(valid_mrc, case):
    corrupt, words = CORRUPTIONS[case]
    corrupt(valid_mrc)
    assert_map_error(valid_mrc, *words)


def test_nan_data(tmp_path):
    stored = np.zeros((3, 4, 5), dtype=np.float32)
    stored[1, 2, 3] = np.nan
    stored[0, 0, 0] = np.inf
    assert_map_error(write_mrc(tmp_path / "nan.mrc", stored), "2 non-finite")


def test_gzip_cut_short(tmp_path):
    path = tmp_path / "m.mrc.gz"
    Map(np.random.default_rng(2).normal(size=(20, 20, 20)), 1.0).write(path)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    assert_map_error(path, "compressed", "truncated")


def test_gzip_of_short_content(tmp_path):
    path = tmp_path / "m.mrc.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(b"MAP " * 100)
    assert_map_error(path, "not an mrc", "1024")


def test_gzip_with_absurd_dims(tmp_path, valid_mrc):
    patch(valid_mrc, 0, "iii", 10**9, 10**9, 10**9)
    path = tmp_path / "absurd.mrc.gz"
    path.write_bytes(gzip.compress(valid_mrc.read_bytes()))
    assert_map_error(path, "shorter")


def test_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nowhere.mrc"
    with pytest.raises(FileNotFoundError, match="nowhere.mrc"):
        read_map(path)


def test_directory_is_not_a_map(tmp_path):
    with pytest.raises(InputFileError, match="is a folder, not a regular file"):
        read_map(tmp_path)


# --------------------------------------------------------------------------------------------
# real maps and models (../shared/data)
# --------------------------------------------------------------------------------------------

# From MANIFEST.md: shape (nz, ny, nx), voxel x, y, z (Å), origin x, y, z (Å).
REAL_MAPS = {
    "emd_3488_haemoglobin_ccpemutils.mrc": ((100, 100, 100), (1.05,) * 3, (0.0, 0.0, 0.0)),
    "emd_21457_spikeNTDseg_ccpemutils.mrc": ((47, 40, 48), (1.05,) * 3, (162.75, 231.0, 204.75)),
    "emd_5168_factin_tempy.map": ((100, 100, 100), (1.742,) * 3, (-50 * 1.742,) * 3),
    "emd_5170_tempy.map": ((100, 100, 100), (2.38,) * 3, (-49 * 2.38,) * 3),
}


def test_every_shared_map_reads(shared_data):
    paths = sorted(p for p in (shared_data / "maps").iterdir() if p.is_file())
    assert paths
    for path in paths:
        m = read_map(path)
        assert m.data.dtype == np.float32 and m.data.flags.c_contiguous
        assert np.all(m.voxel_size > 0) and m.data.std() > 0


@pytest.mark.parametrize("name", list(REAL_MAPS))
def test_real_map_header_matches_manifest(shared_file, name):
    shape, voxel, origin = REAL_MAPS[name]
    m = read_map(shared_file(f"maps/{name}"))
    assert m.shape == shape
    np.testing.assert_allclose(m.voxel_size, voxel, rtol=1e-5)
    np.testing.assert_allclose(m.origin, origin, atol=1e-3)


def test_emd3001_unusual_axis_order(shared_file):
    """EMD-3001: axes (mapc, mapr, maps) = (3, 1, 2), nstart (0, -21, -12), anisotropic voxel."""
    path = shared_file("maps/emd_3001_microED_P21_mrcfile.map.gz")
    m = read_map(path)
    with mrcfile.open(path) as mrc:
        raw = np.array(mrc.data)  # (sections, rows, columns) = physical (y, x, z)
    assert raw.shape == (25, 43, 73)
    assert m.shape == (73, 25, 43)  # (nz, ny, nx): columns on z, sections on y, rows on x
    np.testing.assert_array_equal(m.data, raw.transpose(2, 0, 1))
    np.testing.assert_allclose(m.voxel_size, (0.448, 0.3925, 0.459), atol=1e-3)
    # nxstart = 0 belongs to the columns (z), nystart = -21 to the rows (x),
    # nzstart = -12 to the sections (y)
    np.testing.assert_allclose(m.origin, (-21 * m.voxel_size[0], -12 * m.voxel_size[1], 0.0))


def sigma_at_atoms(m, xyz):
    """Mean trilinear density at the atoms inside the box, in σ above the map mean.

    Returns (σ, fraction of the atoms inside the box).
    """
    from scipy.ndimage import map_coordinates

    fractional = (xyz - m.origin) / m.voxel_size  # x, y, z voxel indices
    inside = np.all((fractional >= 0) & (fractional <= np.array(m.shape[::-1]) - 1), axis=1)
    values = map_coordinates(m.data, fractional[inside][:, ::-1].T, order=1)
    return (values.mean() - m.data.mean()) / m.data.std(), inside.mean()


# (map, model, minimum σ at the atoms, sharp enough for the displacement check).
# EMD-21457's segment is cut around the N-terminal domain, so it is mostly molecule and its σ
# is large; the weakly ordered NTD reaches only about 1.4 σ (its maximum over ±4-voxel shifts
# of the model is at zero shift), hence the lower bound. EMD-5170 is blurred: an 8 Å
# displacement of the model barely changes its density.
REAL_PAIRS = [
    ("emd_3488_haemoglobin_ccpemutils.mrc", "pdb5me2_haemoglobin.pdb", 2.0, True),
    ("emd_21457_spikeNTDseg_ccpemutils.mrc", "pdb6vyb_chainA_Ndom_ccpemutils.pdb", 1.0, True),
    ("emd_5168_factin_tempy.map", "pdb3mfp_actin_modeller_tempy.pdb", 2.0, True),
    ("emd_5170_tempy.map", "pdb3mfp_actin_modeller_tempy.pdb", 2.0, False),
]


@pytest.mark.parametrize("map_name, model_name, min_sigma, sharp", REAL_PAIRS)
def test_model_atoms_sit_in_density(shared_file, map_name, model_name, min_sigma, sharp):
    pytest.importorskip("scipy")
    m = read_map(shared_file(f"maps/{map_name}"))
    xyz = model_atom_positions(read_model(shared_file(f"models/{model_name}")))
    sigma, inside = sigma_at_atoms(m, xyz)
    assert inside > 0.95, "the model must lie in the box"
    assert sigma > min_sigma
    if sharp:  # a misplaced axis or origin would not give a maximum at the file's placement
        for shift in np.vstack([np.eye(3), -np.eye(3)]) * 8.0:
            assert sigma_at_atoms(m, xyz + shift)[0] < 0.6 * sigma, shift


# From MANIFEST.md: atom counts.
REAL_MODELS = {
    "pdb5me2_haemoglobin.pdb": 4468,
    "pdb6vyb_chainA_Ndom_ccpemutils.pdb": 1615,
    "pdb3mfp_actin_modeller_tempy.pdb": 2882,
    "pdb1j6z_actin_xtal_tempy.pdb": 2872,
    "pdb6vxx_spike_closed_BIOVIA_reexport.pdb.gz": 22812,
    "pdb7bv2_CA_P.pdb": 1036,
    "pdb6xez_CA_P.pdb": 2633,
}


@pytest.mark.parametrize("name", list(REAL_MODELS))
def test_real_models_read(shared_file, name):
    structure = read_model(shared_file(f"models/{name}"))
    xyz = model_atom_positions(structure)
    assert xyz.shape == (REAL_MODELS[name], 3) and xyz.dtype == np.float64
    assert np.all(np.isfinite(xyz))


# --------------------------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------------------------

TWO_MODEL_PDB = """\
MODEL        1
ATOM      1  CA  ALA A   1       1.000   2.000   3.000  1.00 10.00           C
ATOM      2  CA  GLY A   2       4.500  -5.250   6.125  1.00 10.00           C
ENDMDL
MODEL        2
ATOM      1  CA  ALA A   1      11.000  12.000  13.000  1.00 10.00           C
ATOM      2  CA  GLY A   2      14.500 -15.250  16.125  1.00 10.00           C
ENDMDL
END
"""


def test_model_atom_positions(tmp_path):
    path = tmp_path / "two.pdb"
    path.write_text(TWO_MODEL_PDB)
    structure = read_model(path)
    np.testing.assert_array_equal(model_atom_positions(structure),
                                  [[1.0, 2.0, 3.0], [4.5, -5.25, 6.125]])
    np.testing.assert_array_equal(model_atom_positions(structure, model_index=1)[1],
                                  [14.5, -15.25, 16.125])
    with pytest.raises(IndexError, match="model_index"):
        model_atom_positions(structure, model_index=2)


def test_gzipped_model(tmp_path):
    path = tmp_path / "two.pdb.gz"
    path.write_bytes(gzip.compress(TWO_MODEL_PDB.encode()))
    assert model_atom_positions(read_model(path)).shape == (2, 3)


@pytest.mark.parametrize("name, content", [
    ("empty.pdb", b""),
    ("garbage.pdb", b"this is not a model\nnor is this\n"),
    ("garbage.cif", b"data_x\nloop_\n_atom_site.id\n"),
    ("binary.pdb", bytes(range(256)) * 8),
    ("broken.cif", b"data_x\n_cell.length_a 'unterminated\n"),
])
def test_bad_model_raises_model_format_error(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ModelFormatError) as info:
        read_model(path)
    assert str(info.value).startswith(str(path))


def test_missing_model_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.pdb"):
        read_model(tmp_path / "nowhere.pdb")


def test_mean_std_over_a_mask_against_numpy():
    """The chunked, masked statistics equal numpy's over the selected elements (chunks much
    smaller than the array); a non-boolean mask is refused rather than used as indices."""
    from voxscale.maps.map import mean_std
    rng = np.random.default_rng(7)
    data = rng.standard_normal((30, 20, 25)).astype(np.float32) * 3 + 1
    mask = rng.random(data.shape) < 0.3
    mean, sd = mean_std(data, mask=mask, chunk=997)
    assert mean == pytest.approx(float(data[mask].astype(np.float64).mean()), rel=1e-12)
    assert sd == pytest.approx(float(data[mask].astype(np.float64).std()), rel=1e-12)
    assert all(np.isnan(mean_std(data, mask=np.zeros(data.shape, bool))))
    with pytest.raises(TypeError, match="boolean"):
        mean_std(data, mask=mask.astype(np.uint8))


@pytest.mark.parametrize("shape, voxel, radius", [((70, 23, 31), (0.9, 1.1, 1.3), 3.2),
                                                  ((9, 40, 33), (1.0, 1.0, 1.0), 2.5),
                                                  ((130, 17, 12), (0.7, 0.8, 0.6), 1.9)])
def test_dilate_equals_a_ball_structuring_element(shape, voxel, radius):
    """dilate (FFT in z-slabs, several slabs for 70 and 130 planes) against scipy's binary
    dilation with the ball of the same radius in Å, voxel sizes x, y, z."""
    import scipy.ndimage as ndi
    from voxscale.maps.masks import dilate
    rng = np.random.default_rng(11)
    mask = rng.random(shape) < 0.002
    mask[0, 0, 0] = mask[-1, -1, -1] = True  # corners: no wrap-around may reach the far side
    like = Map(np.zeros(shape, np.float32), voxel)
    half = [int(radius // v) for v in voxel[::-1]]  # z, y, x half-widths in voxels
    iz, iy, ix = np.meshgrid(*(np.arange(-h, h + 1) for h in half), indexing="ij")
    ball = (iz * voxel[2]) ** 2 + (iy * voxel[1]) ** 2 + (ix * voxel[0]) ** 2 <= radius ** 2
    expected = ndi.binary_dilation(mask, structure=ball)
    np.testing.assert_array_equal(dilate(mask, like, radius), expected)

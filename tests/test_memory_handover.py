"""The memory-saving hand-overs inside ``compare`` change no result (issue 15, item 4).

``compare_files`` hands its target to ``compare``, which replaces the samples by their spline
coefficients in place and keeps only the grid; the scan's matcher drops its two half transforms
while the scan runs and computes them again when it rematches; a filtered reference's
coefficients replace it in place; a plain MRC file is read into a buffer of its exact size.
Each is checked against the path without it (the same computation with copies).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import voxscale
from voxscale.errors import OptionError
from voxscale.fit.matched import MapMatcher
from voxscale.fit.rigid import ReferenceGrid
from voxscale.pipeline.compare import compare, compare_files

from _pairs import HAEMOGLOBIN, make_pair


@pytest.fixture(scope="module")
def pair(shared_file):
    import gemmi
    st = gemmi.read_structure(str(shared_file(HAEMOGLOBIN)))
    st.setup_entities()
    return make_pair(st, f=1.02, resolution=4.0, ref_shape=(64, 64, 64), ref_voxel=1.4,
                     tgt_shape=(66, 66, 66), tgt_voxel=1.35, degrees=15.0)


def test_compare_files_equals_compare_in_memory(pair, tmp_path):
    """The target handed over and dropped after resampling: the same scale, amplitudes,
    difference map and voxel-fixed target as compare() on maps the caller keeps, and the
    caller's target is left untouched."""
    ref_path, tgt_path = tmp_path / "ref.mrc", tmp_path / "target.mrc"
    pair.ref.write(ref_path)
    pair.target.write(tgt_path)
    from_files = compare_files(ref_path, tgt_path, nthreads=2)
    target = voxscale.read_map(tgt_path)
    kept = target.data.copy()
    in_memory = compare(voxscale.read_map(ref_path), target, nthreads=2)
    np.testing.assert_array_equal(target.data, kept)
    assert from_files.scan.best_scale == in_memory.scan.best_scale
    assert abs(from_files.scan.best_scale - pair.s_true) < 1e-3
    assert from_files.after.r_overall == in_memory.after.r_overall
    np.testing.assert_array_equal(from_files.difference.map.data, in_memory.difference.map.data)
    np.testing.assert_array_equal(from_files.corrected.data, in_memory.corrected.data)
    expected = in_memory.target_voxel_fixed
    # read from the file when asked, also from a copy of the result (dataclasses.replace)
    for result in (from_files, dataclasses.replace(from_files)):
        fixed = result.target_voxel_fixed
        np.testing.assert_array_equal(fixed.data, expected.data)
        np.testing.assert_allclose(fixed.voxel_size, expected.voxel_size, rtol=0, atol=0)
        np.testing.assert_allclose(fixed.origin, expected.origin, rtol=0, atol=0)
    from_files.target_voxel_fixed = None  # a value set replaces the file
    assert from_files.target_voxel_fixed is None


def test_matcher_release_recomputes_the_same_pair(pair):
    """After release() the transforms are computed again: the same matched maps."""
    transform = pair.truth
    matcher = MapMatcher(pair.ref, pair.target, transform, d_min=6.0, nthreads=2)
    first = matcher.pair(3.0, 1.0)
    matcher.release()
    assert matcher._f_ref is None and matcher._f_tgt is None
    again = matcher.pair(3.0, 1.0, release=True)
    np.testing.assert_array_equal(first.ref.data, again.ref.data)
    np.testing.assert_array_equal(first.target.data, again.target.data)
    assert matcher._f_ref is None and matcher._f_tgt is None
    # the maps themselves were not touched by the in-place filtering
    third = matcher.pair(3.0, 1.0)
    np.testing.assert_array_equal(first.ref.data, third.ref.data)


def test_reference_grid_in_place(pair):
    m = pair.ref.copy() if hasattr(pair.ref, "copy") else voxscale.Map(
        pair.ref.data.copy(), pair.ref.voxel_size, pair.ref.origin)
    expected = ReferenceGrid(pair.ref, order=3).grid
    grid = ReferenceGrid(m, order=3, keep_map=False, overwrite=True)
    assert grid.grid is m.data or np.shares_memory(grid.grid, m.data)
    np.testing.assert_array_equal(grid.grid, expected)
    with pytest.raises(OptionError, match="keep_map=False"):
        ReferenceGrid(pair.ref, order=3, overwrite=True)


def test_plain_map_is_read_into_a_buffer_of_its_size(pair, tmp_path):
    path = tmp_path / "m.mrc"
    pair.ref.write(path)
    m = voxscale.read_map(path)
    base = m.data.base
    while getattr(base, "base", None) is not None:
        base = base.base
    size = base.nbytes if hasattr(base, "nbytes") else len(base)
    assert size == m.data.nbytes
    np.testing.assert_array_equal(m.data, pair.ref.data)

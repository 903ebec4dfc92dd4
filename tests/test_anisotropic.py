"""Anisotropic magnification: a target sampled with a known anisotropic stretch."""
import numpy as np
import pytest

import voxscale
from voxscale.fit.anisotropic import polar_decomposition
from voxscale.fit import rotation_angle_deg, rotation_from_vector
from voxscale.fit.scan import corrected_target, scan_voxel_scale
from voxscale.maps import relabel_voxel_size, transform_structure
from voxscale.reciprocal.model_map import model_map
def test_polar_decomposition_known_parts():
    rot = rotation_from_vector([0.3, -0.2, 0.5])
    q = rotation_from_vector([0.1, 0.7, -0.4])
    stretch = q @ np.diag([0.97, 1.0, 1.04]) @ q.T
    r, s = polar_decomposition(rot @ stretch)
    np.testing.assert_allclose(r, rot, atol=1e-12)
    np.testing.assert_allclose(s, stretch, atol=1e-12)


@pytest.fixture(scope="module")
def stretched_pair(shared_file):
    st = voxscale.read_model(shared_file("models/pdb5me2_haemoglobin.pdb"))
    cen = np.array([a.pos.tolist() for ch in st[0] for r in ch for a in r]).mean(axis=0)
    ref = model_map(st, voxel_size=1.4, shape=(72, 72, 72), origin=cen - 1.4 * 35.5,
                    d_min=3.5)
    factors = np.array([1.03, 1.00, 0.98])  # the target is sampled every 1.3/f Å along x, y, z
    rot = rotation_from_vector(np.radians(12.0) * np.array([0.0, 0.6, 0.8]))
    t = np.eye(4)
    t[:3, :3] = rot
    t[:3, 3] = cen - rot @ cen + [1.5, -2.0, 1.0]
    st_t = transform_structure(st, t)
    tc = rot @ cen + t[:3, 3]
    spacing = 1.3 / factors
    target = relabel_voxel_size(
        model_map(st_t, voxel_size=spacing, shape=(78, 80, 76),
                  origin=tc - spacing * (np.array([76, 80, 78]) - 1) / 2, d_min=3.5), 1.3)
    return ref, target, st, st_t, 1.0 / factors, rot


def test_anisotropic_scale_recovered(stretched_pair):
    ref, target, st, st_t, truth, rot = stretched_pair
    result = scan_voxel_scale(ref, target, st, st_t, anisotropic=True)
    aniso = result.anisotropic
    # The stretch is along the target's grid axes: S = diag(1/f) in the target frame.
    np.testing.assert_allclose(aniso["principal_scales"], np.sort(truth), atol=5e-4)
    np.testing.assert_allclose(aniso["scale_matrix"], np.diag(truth), atol=5e-4)
    for value, axis in zip(aniso["principal_scales"], aniso["principal_axes"]):
        k = int(np.argmin(np.abs(truth - value)))
        assert abs(abs(axis[k]) - 1.0) < 1e-2  # each principal axis is a grid axis
    assert aniso["cc"] > aniso["cc_isotropic"]
    assert rotation_angle_deg(aniso["rotation"] @ rot) < 0.1  # R undoes the applied rotation
    # The isotropic scan lands near the geometric mean of the three factors.
    assert abs(result.best_scale - np.cbrt(np.prod(truth))) < 5e-3
    # Resampled with the matrix, the target matches the reference better than isotropically.
    ref_in = ref.data > ref.data.mean() + ref.data.std()
    cc_aniso = voxscale.maps.correlation(corrected_target(ref, target, result).data[ref_in],
                                    ref.data[ref_in])
    cc_iso = voxscale.maps.correlation(
        corrected_target(ref, target, result, anisotropic=False).data[ref_in], ref.data[ref_in])
    assert cc_aniso > cc_iso
    assert cc_aniso > 0.99

"""Helpers that build reference/target pairs with a known relation, for the placement and scan
tests.

Every pair is built from an atomic model, so its truth is known by construction and never taken
from voxscale's own output:

* the target model is the reference model moved by a known rigid transform T (about the
  model's centroid, then shifted), so the transform the code must find is T⁻¹ (target
  coordinates into the reference frame, docs/method.md §2);
* a true voxel-size error f is simulated as docs/method.md §6 says: the target model map is sampled
  every v/f Å and then labelled v (``relabel_voxel_size``, which keeps the box centre), so the
  correction factor is exactly s = 1/f about the target's box centre.
"""
from __future__ import annotations

from dataclasses import dataclass

import gemmi
import numpy as np

import voxscale
from voxscale.fit import rotation_angle_deg, rotation_from_vector
from voxscale.maps import relabel_voxel_size, transform_structure
from voxscale.reciprocal.model_map import model_map
HAEMOGLOBIN = "models/pdb5me2_haemoglobin.pdb"
ACTIN = "models/pdb3mfp_actin_modeller_tempy.pdb"
SPIKE_NTD = "models/pdb6vyb_chainA_Ndom_ccpemutils.pdb"
EMD_3488 = "maps/emd_3488_haemoglobin_ccpemutils.mrc"
EMD_5168 = "maps/emd_5168_factin_tempy.map"
EMD_5170 = "maps/emd_5170_tempy.map"


def atom_xyz(structure: gemmi.Structure) -> np.ndarray:
    """All atom positions of the first model, (n, 3)."""
    return np.array([a.pos.tolist() for ch in structure[0] for r in ch for a in r])


def centroid(structure: gemmi.Structure) -> np.ndarray:
    return atom_xyz(structure).mean(axis=0)


def rotation(axis, degrees) -> np.ndarray:
    axis = np.asarray(axis, dtype=np.float64)
    return rotation_from_vector(np.radians(degrees) * axis / np.linalg.norm(axis))


def rigid(rot, center, shift) -> np.ndarray:
    """4x4 of x -> rot·(x − center) + center + shift (rot may include a scale factor)."""
    m = np.eye(4)
    m[:3, :3] = rot
    m[:3, 3] = np.asarray(center) + np.asarray(shift) - np.asarray(rot) @ np.asarray(center)
    return m


def apply(transform, xyz) -> np.ndarray:
    t = np.asarray(transform)
    return np.asarray(xyz) @ t[:3, :3].T + t[:3, 3]


def rotation_error_deg(found, truth) -> float:
    """Angle of found·truth⁻¹ (4x4 or 3x3) in degrees."""
    a = np.asarray(found)[:3, :3]
    b = np.asarray(truth)[:3, :3]
    return rotation_angle_deg(a @ b.T)


def position_error(found, truth, point) -> float:
    """Distance (Å) between where the two transforms put ``point``: the translation error
    measured at a point in the molecule, independent of where the coordinate origin is."""
    return float(np.linalg.norm(apply(found, [point])[0] - apply(truth, [point])[0]))


def kabsch(p_ref, q_tgt):
    """4x4 least-squares rigid transform taking q_tgt onto p_ref (SVD; independent of gemmi)."""
    cp, cq = p_ref.mean(axis=0), q_tgt.mean(axis=0)
    h = (q_tgt - cq).T @ (p_ref - cp)
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(vt.T @ u.T))
    r = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    m = np.eye(4)
    m[:3, :3] = r
    m[:3, 3] = cp - r @ cq
    return m


def ca_positions(structure: gemmi.Structure, chains=None):
    """{chain name: {residue number: Cα position}} for the first model."""
    out = {}
    for ch in structure[0]:
        if chains is not None and ch.name not in chains:
            continue
        cas = {}
        for res in ch:
            ca = res.find_atom("CA", "*")
            info = gemmi.find_tabulated_residue(res.name)
            if ca is not None and info is not None and info.is_amino_acid():
                cas[res.seqid.num] = np.array(ca.pos.tolist())
        out[ch.name] = cas
    return out


def haemoglobin_twofold(structure: gemmi.Structure) -> np.ndarray:
    """The (non-crystallographic) 2-fold of the haemoglobin tetramer 5ME2, A↔C and B↔D,
    computed from the model by an independent Kabsch fit. Its map is symmetric under it, so
    a map-only placement may legitimately return truth·twofold."""
    ca = ca_positions(structure)
    p, q = [], []
    for a, b in (("A", "C"), ("B", "D"), ("C", "A"), ("D", "B")):
        for n in ca[a]:
            if n in ca[b]:
                p.append(ca[a][n])
                q.append(ca[b][n])
    return kabsch(np.array(p), np.array(q))


def box_origin(center, voxel, shape) -> np.ndarray:
    """Origin of a (nz, ny, nx) box of spacing ``voxel`` whose centre is ``center``."""
    n = np.array(shape[::-1], dtype=np.float64)
    return np.asarray(center, dtype=np.float64) - np.asarray(voxel) * (n - 1) / 2.0


@dataclass
class Pair:
    ref: voxscale.Map
    target: voxscale.Map
    ref_model: gemmi.Structure
    target_model: gemmi.Structure
    applied: np.ndarray        # T: reference model -> target model (true frame)
    truth: np.ndarray          # T⁻¹: the transform the code must find
    s_true: float              # correction factor 1/f
    center: np.ndarray         # reference model centroid
    target_center: np.ndarray  # target model centroid (true frame)


def make_pair(structure, *, f=1.0, resolution=3.0, axis=(1, 1, 0), degrees=25.0,
              shift=(4.0, -3.0, 2.0), ref_voxel=1.1, ref_shape=(96, 96, 96),
              tgt_voxel=1.0, tgt_shape=(100, 100, 100), box_offset=(0.0, 0.0, 0.0),
              expand=1.0) -> Pair:
    """Reference = model map; target = moved model sampled every tgt_voxel/f Å, labelled tgt_voxel.

    ``box_offset`` moves the target box centre away from the molecule (Å, true frame), so the
    molecule sits off-centre in its box. ``expand`` scales the target model's coordinates
    about its centroid (a larger homologue with atoms of unchanged size, not a voxel error).
    """
    c = centroid(structure)
    ref = model_map(structure, voxel_size=ref_voxel, shape=ref_shape,
                    origin=box_origin(c, ref_voxel, ref_shape), d_min=resolution)
    applied = rigid(expand * rotation(axis, degrees), c, shift)
    tgt_model = transform_structure(structure, applied)
    ct = apply(applied, [c])[0]
    true_spacing = tgt_voxel / f
    tgt_true = model_map(tgt_model, voxel_size=true_spacing, shape=tgt_shape,
                         origin=box_origin(ct + np.asarray(box_offset), true_spacing, tgt_shape),
                         d_min=resolution)
    target = relabel_voxel_size(tgt_true, tgt_voxel) if f != 1.0 else tgt_true
    return Pair(ref, target, structure, tgt_model, applied, np.linalg.inv(applied), 1.0 / f, c,
                ct)


def low_pass_noise(like: voxscale.Map, resolution: float, seed: int) -> np.ndarray:
    """White Gaussian noise on ``like``'s grid with every Fourier component beyond
    ``resolution`` removed (numpy FFT, independent of voxscale's)."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(like.shape)
    nz, ny, nx = like.shape
    vx, vy, vz = like.voxel_size
    fz = np.fft.fftfreq(nz, vz)[:, None, None]
    fy = np.fft.fftfreq(ny, vy)[None, :, None]
    fx = np.fft.rfftfreq(nx, vx)[None, None, :]
    mask = fx ** 2 + fy ** 2 + fz ** 2 <= 1.0 / resolution ** 2
    out = np.fft.irfftn(np.fft.rfftn(noise) * mask, s=like.shape, axes=(0, 1, 2))
    return out / out.std()


def true_pose_correlation(pair: Pair, target_data: np.ndarray) -> float:
    """Correlation, over the reference voxels covered by the target box, of the reference with
    the target data resampled onto the reference grid at the true pose and scale."""
    tgt = voxscale.Map(target_data, pair.target.voxel_size, pair.target.origin)
    onto = pair.ref
    res = voxscale.resample(tgt, onto, pair.truth, scale=pair.s_true, order=3).data
    ones = voxscale.Map(np.ones(pair.target.shape, np.float32), pair.target.voxel_size,
                        pair.target.origin)
    inside = voxscale.resample(ones, onto, pair.truth, scale=pair.s_true, order=1).data > 0.999
    return float(np.corrcoef(res[inside].astype(np.float64),
                             onto.data[inside].astype(np.float64))[0, 1])


def add_noise_for_cc(pair: Pair, resolution: float, cc_target: float = 0.5, seed: int = 0):
    """Copy of ``pair`` whose target has low-pass noise added so that its correlation with the
    noise-free reference at the true pose is ``cc_target``. Returns (pair, cc achieved).

    Resampling is linear, so the clean target and the noise are resampled once and the noise
    amplitude k solves corr(Rt + k·Rn, ref) = cc_target in closed form (a quadratic in k).
    """
    noise = low_pass_noise(pair.target, resolution, seed) * float(pair.target.data.std())
    onto = pair.ref

    def on_ref(data):
        m = voxscale.Map(np.asarray(data, np.float32), pair.target.voxel_size,
                         pair.target.origin)
        return voxscale.resample(m, onto, pair.truth, scale=pair.s_true, order=3).data

    ones = np.ones(pair.target.shape, np.float32)
    inside = on_ref(ones) > 0.999
    r = onto.data[inside].astype(np.float64)
    a = on_ref(pair.target.data)[inside].astype(np.float64)
    b = on_ref(noise)[inside].astype(np.float64)
    r, a, b = r - r.mean(), a - a.mean(), b - b.mean()
    # corr² · |a + k b|² |r|² = ((a + k b)·r)²  ->  quadratic in k
    c2, rr = cc_target ** 2, r @ r
    ar, br = a @ r, b @ r
    qa = c2 * rr * (b @ b) - br ** 2
    qb = 2 * (c2 * rr * (a @ b) - ar * br)
    qc = c2 * rr * (a @ a) - ar ** 2
    roots = np.roots([qa, qb, qc])
    k = float(max(x.real for x in roots if abs(x.imag) < 1e-9 and x.real > 0))
    data = (pair.target.data.astype(np.float64) + k * noise).astype(np.float32)
    noisy = voxscale.Map(data, pair.target.voxel_size, pair.target.origin)
    out = Pair(pair.ref, noisy, pair.ref_model, pair.target_model, pair.applied, pair.truth,
               pair.s_true, pair.center, pair.target_center)
    return out, true_pose_correlation(pair, data)

"""Amplitude scaling by resolution (docs/method.md §1 step 5, §2; CCP4 scaleit's models).

The target's structure factors are put on the reference's scale,
F_tgt' = k·g(h)·F_tgt, with g(h) = exp(−B·s²/4) (isotropic), exp(−¼·sᵀ·B·s) with a symmetric
3x3 B in Å² (anisotropic; s the Cartesian reciprocal vector, orthogonal boxes) or 1 ("scale").
Two targets:

* ``"wilson"`` (default): k and B make the mean intensities ⟨F²⟩ of the two maps agree shell
  by shell (and, for the anisotropic model, direction by direction within each shell), by
  Gauss–Newton on the logarithms of the per-bin intensity sums, each bin weighted by its
  reflection count times one plus its signal-to-noise FSC/(1 − FSC), so that shells of noise
  do not drive k and B. This removes the resolution
  and B-factor difference and keeps the meaning of R: two unrelated maps give the acentric
  Wilson value 2 − √2 = 58.6 % in every shell.
* ``"lsq"``: minimise Σ(|F_ref| − |F_tgt'|)² with unit weights, as scaleit does. Least squares
  shrinks k when the maps are weakly related (unrelated maps then give about 55 %).

Per shell the result lists the reflection count, ⟨|F_ref|⟩, ⟨|F_tgt'|⟩, the amplitude
difference R = Σ||F_ref| − |F_tgt'|| / Σ|F_ref| (the seed paper's "amplitude difference"),
the FSC (Re ΣF_ref·F_tgt'* / √(Σ|F_ref|² Σ|F_tgt'|²), not mean-subtracted) and
⟨F_ref²⟩/⟨F_tgt'²⟩, which is 1 after Wilson scaling (scaleit's own check).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

from .transform import StructureFactors
from .shells import ShellSums, check_resolution_range, shell_edges, shell_sums
from ..threads import resolve_threads

__all__ = ["ScalingResult", "scale_amplitudes", "scale_arrays", "WILSON_R_ACENTRIC"]

#: FSC clip of the signal weights of the Wilson fit (see ``_signal_weights``).
SIGNAL_FSC_FLOOR, SIGNAL_FSC_CAP = 0.01, 0.999
#: Below this median FSC over the bins the maps share no signal and the bins weigh alike.
SIGNAL_FSC_MEDIAN = 0.2

#: Expected amplitude difference R of two unrelated acentric data sets after Wilson scaling.
WILSON_R_ACENTRIC = 2.0 - np.sqrt(2.0)

# Directions (up to Friedel sign) that split each shell for the anisotropic Wilson fit.
_DIRECTIONS = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1],
                        [1, 1, 0], [1, -1, 0], [1, 0, 1], [1, 0, -1], [0, 1, 1], [0, 1, -1],
                        [1, 1, 1], [1, 1, -1], [1, -1, 1], [-1, 1, 1]], dtype=np.float64)
_DIRECTIONS /= np.linalg.norm(_DIRECTIONS, axis=1)[:, None]


@dataclass
class ScalingResult:
    """Amplitude scaling of a target onto a reference, with per-shell statistics.

    Attributes
    ----------
    k : float
        Overall scale.
    B : float or numpy.ndarray
        Isotropic B in Å² (float), or the symmetric 3x3 B tensor in Å² (anisotropic model),
        or 0 ("scale" model). F' = k·exp(−B s²/4)·F: a positive B blurs the target, a
        negative one sharpens it.
    model, target : str
        The scale model and the fitting target.
    shells : list of dict
        One row per shell with keys ``d_max``, ``d_min`` (Å), ``n``, ``mean_f_ref``,
        ``mean_f_tgt`` (after scaling), ``r`` (%), ``fsc``, ``intensity_ratio``, and ``r_before``
        (%, R before scaling).
    r_overall : float
        R over all reflections in the range, in %.
    r_overall_before : float
        The same before scaling, in %.
    d_max, d_min : float
        Resolution range in Å.
    """

    k: float
    B: object
    model: str
    target: str
    shells: list
    r_overall: float
    r_overall_before: float
    d_max: float
    d_min: float
    edges: np.ndarray = field(repr=False, default=None)

    @property
    def b_tensor(self) -> np.ndarray:
        """numpy.ndarray : B as a 3x3 tensor (isotropic B·I, or zeros for the "scale" model)."""
        b = np.asarray(self.B, dtype=np.float64)
        return b if b.ndim == 2 else np.eye(3) * float(b)

    @property
    def b_six(self) -> np.ndarray:
        """numpy.ndarray : The 6 B terms (B11, B22, B33, B12, B13, B23) in Å²."""
        b = self.b_tensor
        return np.array([b[0, 0], b[1, 1], b[2, 2], b[0, 1], b[0, 2], b[1, 2]])

    def factors(self, s_vectors: np.ndarray) -> np.ndarray:
        """k·g(h) for reciprocal vectors s (n, 3) in Å⁻¹ (x, y, z).

        Parameters
        ----------
        s_vectors : numpy.ndarray, shape (n, 3)

        Returns
        -------
        numpy.ndarray of float64, shape (n,)
        """
        return _factors(np.log(self.k), self.b_tensor, s_vectors)

    def apply(self, sf: StructureFactors) -> StructureFactors:
        """The target's structure factors on the reference scale.

        Parameters
        ----------
        sf : StructureFactors

        Returns
        -------
        StructureFactors
        """
        s = sf.hkl / sf.cell
        return StructureFactors(sf.hkl, (sf.f * self.factors(s)).astype(np.complex64), sf.d,
                                sf.f000 * self.k, sf.grid_shape, sf.cell, sf.origin)


def _factors(log_k: float, b: np.ndarray, s: np.ndarray) -> np.ndarray:
    if np.allclose(b, np.eye(3) * b[0, 0], rtol=0, atol=0):  # isotropic: B·s², no tensor
        quad = b[0, 0] * np.einsum("ni,ni->n", s, s)
    else:
        quad = np.einsum("ni,ni->n", s @ b, s)
    return np.exp(log_k - 0.25 * quad)


def _b_from_params(p: np.ndarray, model: str) -> np.ndarray:
    if model == "scale":
        return np.zeros((3, 3))
    if model == "isotropic":
        return np.eye(3) * p[1]
    b11, b22, b33, b12, b13, b23 = p[1:7]
    return np.array([[b11, b12, b13], [b12, b22, b23], [b13, b23, b33]])


def _quadratic_terms(s, model: str, s2: np.ndarray) -> np.ndarray:
    """d(sᵀBs)/d(B parameters): (n, n_B), from |s|² ``s2`` and, for the anisotropic model,
    the vectors ``s`` (n, 3)."""
    if model == "scale":
        return np.zeros((len(s2), 0))
    if model == "isotropic":
        return s2[:, None]
    x, y, z = s[:, 0], s[:, 1], s[:, 2]
    return np.stack([x * x, y * y, z * z, 2 * x * y, 2 * x * z, 2 * y * z], axis=1)


def _signal_weights(sums: ShellSums) -> np.ndarray:
    """Per-bin weight 1 + FSC/(1 − FSC) (one plus the signal-to-noise) of the two maps, from
    their per-bin sums, FSC clipped to [0.01, 0.999].

    The variance of a bin's log intensity ratio grows as its shared signal falls, so a
    weighted fit lets shells of noise (beyond a filter edge, or where interpolation error
    dominates a weak shell) no longer drive k and B; the clip keeps unrelated maps fitted
    with about equal weights and no shell of identical maps infinitely heavy.
    """
    fsc = np.nan_to_num(sums.fsc, nan=0.0)
    if np.median(fsc) < SIGNAL_FSC_MEDIAN:
        # maps that share no signal beyond their envelope: every shell is noise alike, and
        # weights would hand the fit to the envelope's shell
        return np.ones(len(fsc))
    fsc = np.clip(fsc, SIGNAL_FSC_FLOOR, SIGNAL_FSC_CAP)
    # 1 + SNR: shells without shared signal keep a unit weight
    return 1.0 + fsc / (1.0 - fsc)


#: Reflections per chunk of the per-reflection work of a fit (memory: the temporaries are a
#: chunk's, not a reflection list's).
CHUNK = 1 << 18


def _chunks(n: int):
    return (slice(start, min(start + CHUNK, n)) for start in range(0, n, CHUNK))


def _direction_sums(f_ref, f_tgt, shell, direction, n_shells: int,
                    nthreads: int) -> ShellSums:
    """The sums over the anisotropic fit's bins, shell × len(_DIRECTIONS) + direction: through
    :func:`shell_sums` one direction at a time, so that each call stays within its limit of
    shells (shells × 13 directions need not)."""
    parts = []
    for d in range(len(_DIRECTIONS)):
        mine = direction == d
        parts.append(shell_sums(f_ref[mine], f_tgt[mine], shell[mine], n_shells,
                                nthreads=nthreads))
    return ShellSums(*(np.stack([getattr(part, f.name) for part in parts], axis=1).reshape(-1)
                       for f in fields(ShellSums)))


def _fit_wilson(sums: ShellSums, f_tgt, q, bins, signal=None):
    """Gauss–Newton on log per-bin intensity sums: ln Σ F_ref² = ln Σ k²g²F_tgt², each bin
    weighted by its reflection count times ``signal`` (the bins' signal-to-noise, or 1);
    ``sums`` the two maps' sums over ``bins``, ``q`` the reflections' quadratic terms
    (:func:`_quadratic_terms`)."""
    n_bins = len(sums.count)
    i_ref, i_tgt0, counts = sums.sum_f1_sq, sums.sum_f2_sq, sums.count
    n_b = q.shape[1]
    # Bins without signal in either map (beyond a map's filter edge) would pull B without
    # bound: keep bins whose mean intensities are above 1e-6 of the median of both maps.
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_ref, mean_tgt = i_ref / counts, i_tgt0 / counts
    populated = counts >= 2
    floor_ref = 1e-6 * np.median(mean_ref[populated]) if populated.any() else 0.0
    floor_tgt = 1e-6 * np.median(mean_tgt[populated]) if populated.any() else 0.0
    use = populated & (mean_ref > floor_ref) & (mean_tgt > floor_tgt)
    if use.sum() < 1 + n_b:
        raise ValueError("too few populated resolution bins to fit the scale model")
    weights = np.sqrt(counts[use] * (1.0 if signal is None else signal[use]))
    p = np.zeros(1 + n_b)
    for _ in range(50):
        # Σ g²F² and Σ q_j g²F² per bin, a chunk of reflections at a time (memory)
        i_t = np.zeros(n_bins) if n_b else i_tgt0
        moments = np.zeros((n_b, n_bins))
        for part in _chunks(len(q) if n_b else 0):
            g2t2 = q[part] @ p[1:]
            g2t2 *= -0.5
            np.exp(g2t2, out=g2t2)
            t2 = np.abs(f_tgt[part]).astype(np.float64)
            g2t2 *= t2 * t2
            i_t += np.bincount(bins[part], g2t2, n_bins)
            for j in range(n_b):
                moments[j] += np.bincount(bins[part], q[part, j] * g2t2, n_bins)
        i_t = i_t[use]
        resid = np.log(i_ref[use]) - (2 * p[0] + np.log(i_t))
        jac = np.empty((use.sum(), 1 + n_b))
        jac[:, 0] = 2.0
        for j in range(n_b):  # d ln Σ g²F² / dB_j = −½ Σ q_j g²F² / Σ g²F²
            jac[:, 1 + j] = -0.5 * moments[j][use] / i_t
        step, *_ = np.linalg.lstsq(jac * weights[:, None], resid * weights, rcond=None)
        p += step
        if np.all(np.abs(step) < 1e-10 * (1 + np.abs(p))):
            break
    return p


def _fit_lsq(a_ref, a_tgt, q):
    """Gauss–Newton on Σ(|F_ref| − k·g·|F_tgt|)² over reflections (``q`` as for
    :func:`_fit_wilson`)."""
    a_ref = a_ref.astype(np.float64)
    a_tgt = a_tgt.astype(np.float64)
    n_b = q.shape[1]
    denom = a_tgt @ a_tgt
    if not denom > 0:
        raise ValueError("the target has no amplitude in the range")
    p = np.zeros(1 + n_b)
    p[0] = np.log(max((a_ref @ a_tgt) / denom, 1e-30))
    for _ in range(100):
        model_f = np.exp(p[0] - 0.25 * (q @ p[1:])) * a_tgt
        resid = a_ref - model_f
        jac = np.empty((len(q), 1 + n_b))
        jac[:, 0] = model_f
        jac[:, 1:] = -0.25 * q * model_f[:, None]
        step, *_ = np.linalg.lstsq(jac, resid, rcond=None)
        p += step
        if np.all(np.abs(step) < 1e-10 * (1 + np.abs(p))):
            break
    return p


def _direction_class(s: np.ndarray) -> np.ndarray:
    unit = s / np.maximum(np.linalg.norm(s, axis=1), 1e-30)[:, None]
    return np.argmax(np.abs(unit @ _DIRECTIONS.T), axis=1)


def scale_arrays(f_ref, f_tgt, s_vectors, *, d_max=None, d_min, model: str = "isotropic",
                 target: str = "wilson", n_shells: int = 20, reflections_per_shell=None,
                 nthreads: int = 0) -> ScalingResult:
    """Scale target structure factors onto reference ones (arrays of unique reflections).

    Parameters
    ----------
    f_ref, f_tgt : numpy.ndarray of complex64, shape (n,)
        Structure factors of the same reflections.
    s_vectors : numpy.ndarray, shape (n, 3)
        Their reciprocal vectors (x, y, z) in Å⁻¹.
    d_max, d_min, model, target, n_shells, reflections_per_shell, nthreads
        See :func:`scale_amplitudes`.

    Returns
    -------
    ScalingResult
    """
    nthreads = resolve_threads(nthreads)
    _check_model(model, target)
    s_vectors = np.asarray(s_vectors, dtype=np.float64)
    s2 = np.einsum("ij,ij->i", s_vectors, s_vectors)
    if model != "anisotropic":
        s_vectors = None  # only |s|² is needed (memory)
    return scale_reflections(f_ref, f_tgt, s2, s_vectors, d_max=d_max,
                             d_min=d_min, model=model, target=target, n_shells=n_shells,
                             reflections_per_shell=reflections_per_shell, nthreads=nthreads)


def _check_model(model: str, target: str) -> None:
    if model not in ("isotropic", "anisotropic", "scale"):
        raise ValueError(f"model must be 'isotropic', 'anisotropic' or 'scale', not {model!r}")
    if target not in ("wilson", "lsq"):
        raise ValueError(f"target must be 'wilson' or 'lsq', not {target!r}")


def scale_reflections(f_ref, f_tgt, s_squared, s_vectors=None, *, d_max=None, d_min,
                      model: str = "isotropic", target: str = "wilson", n_shells: int = 20,
                      reflections_per_shell=None, nthreads: int = 0) -> ScalingResult:
    """:func:`scale_arrays` given |s|² of the reflections, and their vectors only for the
    anisotropic model: 8 bytes a reflection instead of 24 (memory, for callers that select
    reflections from a half transform). Arrays handed over (held by nothing else) are freed
    here when they are done with.

    Parameters
    ----------
    s_squared : numpy.ndarray of float64, shape (n,)
        |s|² of the reflections (Å⁻²).
    s_vectors : numpy.ndarray, shape (n, 3), optional
        Required for ``model="anisotropic"`` only.
    f_ref, f_tgt, d_max, d_min, model, target, n_shells, reflections_per_shell, nthreads
        See :func:`scale_arrays`.
    """
    nthreads = resolve_threads(nthreads)
    _check_model(model, target)
    if model == "anisotropic" and s_vectors is None:
        raise ValueError("the anisotropic model needs the reflections' vectors (s_vectors)")
    d_max, d_min = check_resolution_range(d_max, d_min)
    s2 = np.asarray(s_squared, dtype=np.float64)
    s_len = np.sqrt(s2)
    s_lo = 0.0 if d_max is None else 1.0 / d_max
    in_range = (s_len >= s_lo) & (s_len <= 1.0 / d_min * (1 + 1e-9)) & (s_len > 0)
    if not in_range.all():  # callers that selected the range already pay no copies (memory)
        f_ref, f_tgt = f_ref[in_range], f_tgt[in_range]
        s_len, s2 = s_len[in_range], s2[in_range]
        if s_vectors is not None:
            s_vectors = s_vectors[in_range]
    del in_range
    f_ref = np.ascontiguousarray(f_ref, dtype=np.complex64)
    f_tgt = np.ascontiguousarray(f_tgt, dtype=np.complex64)
    # the fit and the factors need only sᵀBs: without anisotropy |s|²
    q = _quadratic_terms(s_vectors, model, s2)
    del s2
    if len(s_len) < 10:
        raise ValueError(f"only {len(s_len)} reflections between {d_max} and {d_min} Å")
    if reflections_per_shell:
        n_shells = max(1, len(s_len) // int(reflections_per_shell))
    edges = shell_edges(d_max, d_min, n_shells)
    shell = np.clip(np.searchsorted(edges, s_len, side="right") - 1, 0, n_shells - 1)
    shell = shell.astype(np.int32)
    del s_len  # memory: the shells are all that is needed of it
    # the unscaled sums over the shells (R and FSC before; the Wilson fit's intensities and
    # signal weights when its bins are the shells)
    before = shell_sums(f_ref, f_tgt, shell, n_shells, nthreads=nthreads)
    if target == "wilson":
        bins, sums = shell, before
        if model == "anisotropic":
            direction = _direction_class(s_vectors)
            bins = (shell * len(_DIRECTIONS) + direction).astype(np.int32)
            sums = _direction_sums(f_ref, f_tgt, shell, direction, n_shells, nthreads)
            del direction
        p = _fit_wilson(sums, f_tgt, q, bins, _signal_weights(sums))
        del bins, sums
    else:
        p = _fit_lsq(np.abs(f_ref), np.abs(f_tgt), q)
    b = _b_from_params(p, model)
    # the sums after scaling, a chunk at a time: F_tgt·k·g in float32 (memory)
    after = None
    for part in _chunks(len(shell)):
        if model == "anisotropic":
            factors = _factors(p[0], b, s_vectors[part])
        else:  # the same k·exp(−B·s²/4) as _factors
            factors = np.exp(p[0] - 0.25 * (q[part] @ p[1:]))
        sums = shell_sums(f_ref[part], f_tgt[part] * factors.astype(np.float32), shell[part],
                          n_shells, nthreads=nthreads)
        after = sums if after is None else after + sums
    del q, s_vectors
    rows = _shell_rows(edges, after, before)
    b_out = float(b[0, 0]) if model == "isotropic" else (0.0 if model == "scale" else b)
    return ScalingResult(k=float(np.exp(p[0])), B=b_out, model=model, target=target,
                         shells=rows, r_overall=_percent(after.sum_abs_diff.sum(),
                                                         after.sum_f1.sum()),
                         r_overall_before=_percent(before.sum_abs_diff.sum(),
                                                   before.sum_f1.sum()),
                         d_max=float("inf") if s_lo == 0 else float(d_max), d_min=float(d_min),
                         edges=edges)


def _percent(num, den) -> float:
    return float(100.0 * num / den) if den > 0 else float("nan")


def _shell_rows(edges, after: ShellSums, before: ShellSums) -> list:
    rows = []
    with np.errstate(invalid="ignore", divide="ignore"):
        for j in range(len(edges) - 1):
            n = int(after.count[j])
            rows.append({
                "d_max": float(1.0 / edges[j]) if edges[j] > 0 else float("inf"),
                "d_min": float(1.0 / edges[j + 1]),
                "n": n,
                "mean_f_ref": float(after.sum_f1[j] / n) if n else float("nan"),
                "mean_f_tgt": float(after.sum_f2[j] / n) if n else float("nan"),
                "r": _percent(after.sum_abs_diff[j], after.sum_f1[j]),
                "r_before": _percent(before.sum_abs_diff[j], before.sum_f1[j]),
                "fsc": float(after.fsc[j]),
                "intensity_ratio": float(after.sum_f1_sq[j] / after.sum_f2_sq[j]),
            })
    return rows


def scale_amplitudes(sf_ref: StructureFactors, sf_tgt: StructureFactors, d_max, d_min, *,
                     model: str = "isotropic", target: str = "wilson", n_shells: int = 20,
                     reflections_per_shell=None, nthreads: int = 0) -> ScalingResult:
    """Put the target's amplitudes on the reference's scale by resolution.

    Parameters
    ----------
    sf_ref, sf_tgt : StructureFactors
        Structure factors of two maps on the same grid (same reflections).
    d_max : float or None
        Low-resolution limit in Å (None: no limit).
    d_min : float
        High-resolution limit in Å.
    model : {"isotropic", "anisotropic", "scale"}, optional
        Scale model (default isotropic): k·exp(−B s²/4), k·exp(−¼ sᵀBs), or k.
    target : {"wilson", "lsq"}, optional
        Match mean intensities per shell (default), or least squares on amplitudes.
    n_shells : int, optional
        Number of shells, equal in 1/d³ (default 20).
    reflections_per_shell : int, optional
        Instead of ``n_shells``: about this many reflections per shell.
    nthreads : int, optional
        Threads (0 = all available).

    Returns
    -------
    ScalingResult

    Examples
    --------
    >>> import numpy as np, voxscale
    >>> m = voxscale.Map(np.random.default_rng(0).random((24, 24, 24), np.float32), 1.0)
    >>> sf = voxscale.structure_factors(m, d_min=2.5)
    >>> res = voxscale.scale_amplitudes(sf, sf, None, 2.5, n_shells=4)
    >>> round(res.k, 6), round(res.r_overall, 6)
    (1.0, 0.0)

    References
    ----------
    P. Evans, CCP4 program scaleit; A. J. C. Wilson, Acta Cryst. 2 (1949) 318-321.
    """
    nthreads = resolve_threads(nthreads)
    if tuple(sf_ref.grid_shape) != tuple(sf_tgt.grid_shape) or not np.array_equal(
            sf_ref.hkl, sf_tgt.hkl):
        raise ValueError("the two sets of structure factors must come from maps on the same "
                         "grid, with the same reflections (resample the target onto the "
                         "reference grid first)")
    return scale_arrays(sf_ref.f, sf_tgt.f, sf_ref.hkl / sf_ref.cell, d_max=d_max, d_min=d_min,
                        model=model, target=target, n_shells=n_shells,
                        reflections_per_shell=reflections_per_shell, nthreads=nthreads)

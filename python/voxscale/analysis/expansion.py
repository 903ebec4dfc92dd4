"""Expansion coefficients between two superposed models (docs/method.md §1 step 7).

Two models of one molecule built into maps whose voxel sizes are inconsistent differ by a
uniform expansion: after the best rigid superposition every Cα of the target sits at
f·(x − c) + c, c the centre of mass of the matched Cα atoms, so its shift from the reference
grows linearly with its distance from c. The slope of the shift against that radius is the
*expansion coefficient*, f − 1, reported in %.

Method
------
1. Residues are matched as in the scan's placement (:func:`voxscale.fit.superpose.residue_pairs`:
   by chain name and residue number, or by per-chain sequence alignment).
2. The target is superposed on the reference by least squares on *all* matched Cα atoms
   (gemmi's QCP superposition; no pruning, since pruning the outer residues of an expanded
   copy would bias the fit).
3. For every pair: the shift vector d = (superposed target) − (reference), the radius
   r = |x_ref − c| from the centre of mass c of the matched reference Cα atoms, the shift
   length |d| and the radial projection d·(x_ref − c)/r.
4. Shift length and radial projection are fitted against r: through the origin (the model of
   a uniform expansion about c), with an intercept, and robustly (a Tukey biweight
   M-estimate started from least absolute deviations, which ignores a few moved loops),
   overall and per chain (per-chain fits use the global superposition and centre).

Why this gives the factor exactly: if the target is a copy of the reference expanded by f
about *any* point p, then rotated and shifted, the least-squares rigid superposition maps it
onto x → f·(x − c) + c. The translation absorbs the centre offset (f − 1)(c − p), and the
rotation is the identity because the cross-covariance of x − c with f·(x − c) is symmetric
positive definite. So every shift is (f − 1)(x − c): the radial projection is (f − 1)·r
exactly, the shift length |f − 1|·r. A larger target (f > 1) gives positive slopes.

Sign convention and reading the numbers: the radial slope is signed (positive = the target is
larger than the reference). The shift length is never negative, so its slope is positive
for an expansion and for a contraction alike, and random coordinate differences (noise,
genuine conformational change) add to it: it is an upper bound on the magnitude of the
expansion, the radial slope the estimate of the expansion itself. A voxel-size error of the
target's map by a factor f (its voxel size should be f⁻¹ × the header) expands the target's
model by f.

Example: the seed paper's RdRp pair, PDB 6XEZ (target) against 7BV2 (reference), Cα of
chains A–C (1011 pairs, RMSD 1.04 Å after superposition; the paper reports 2.4 %):

=====================  =================  =================
fit                    shift length (%)   radial shift (%)
=====================  =================  =================
through the origin     2.72 ± 0.06        1.90 ± 0.04
with an intercept      3.10 ± 0.20        2.39 ± 0.12
robust, origin         2.41 ± 0.03        1.83 ± 0.03
robust, intercept      2.17 ± 0.09        2.18 ± 0.10
=====================  =================  =================

(intercepts −0.12 and −0.16 Å; per chain, radial through the origin: A 1.88, B 1.78,
C 2.20 %). 6XEZ is the larger model, as expected from its map's larger voxel size (1.1 Å
against 1.014 Å), by about 2 %.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional, Sequence, Union

import gemmi
import numpy as np

from ..errors import ModelFormatError, ModelMismatchError
from ..fit.superpose import apply_transform, residue_pairs, superpose
from ..maps.models import calpha_residues, read_model

__all__ = ["LineFit", "ExpansionResult", "expansion", "fit_line", "MAX_RMSD"]

ModelLike = Union[str, "os.PathLike[str]", gemmi.Structure]

#: Tukey biweight tuning constant (95 % efficiency for normal errors).
_BISQUARE_C = 4.685


@dataclass
class LineFit:
    """A straight-line fit y = a + b·r of a shift quantity against the radius.

    Attributes
    ----------
    slope : float
        b in % (100 × Å of shift per Å of radius).
    slope_se : float
        Standard error of ``slope`` in %.
    intercept : float
        a in Å (exactly 0 for fits through the origin).
    intercept_se : float
        Standard error of ``intercept`` in Å (0 for fits through the origin).
    n : int
        Number of pairs fitted.
    method : str
        "origin" (least squares through the origin), "intercept" (least squares with an
        intercept), "robust_origin" or "robust_intercept" (Tukey biweight).
    n_outliers : int
        Robust fits: pairs given zero weight (residual beyond 4.685 robust σ); else 0.
    """

    slope: float
    slope_se: float
    intercept: float
    intercept_se: float
    n: int
    method: str
    n_outliers: int = 0


def _design(r: np.ndarray, intercept: bool) -> np.ndarray:
    return np.stack([np.ones_like(r), r], axis=1) if intercept else r[:, None]


def _wls(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    sw = np.sqrt(w)
    coef, *_ = np.linalg.lstsq(x * sw[:, None], y * sw, rcond=None)
    return coef


def _as_fit(coef, cov, n, method, intercept, n_outliers=0) -> LineFit:
    se = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    if intercept:
        return LineFit(100.0 * coef[1], 100.0 * se[1], float(coef[0]), float(se[0]), n, method,
                       n_outliers)
    return LineFit(100.0 * coef[0], 100.0 * se[0], 0.0, 0.0, n, method, n_outliers)


def _nan_fit(n: int, method: str) -> LineFit:
    nan = float("nan")
    return LineFit(nan, nan, nan if "intercept" in method else 0.0,
                   nan if "intercept" in method else 0.0, n, method)


def _least_squares(r, y, intercept: bool) -> LineFit:
    method = "intercept" if intercept else "origin"
    x = _design(r, intercept)
    n, p = x.shape
    if n < p + 1 or not np.any(r > 0) or (intercept and np.ptp(r) == 0):
        return _nan_fit(n, method)
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    resid = y - x @ coef
    cov = np.linalg.inv(x.T @ x) * (resid @ resid) / (n - p)
    return _as_fit(coef, cov, n, method, intercept)


def _robust(r, y, intercept: bool, *, iterations: int = 100) -> LineFit:
    """Tukey biweight M-estimate with a fixed scale from a least-absolute-deviation start."""
    method = "robust_intercept" if intercept else "robust_origin"
    x = _design(r, intercept)
    n, p = x.shape
    if n < p + 2 or not np.any(r > 0) or (intercept and np.ptp(r) == 0):
        return _nan_fit(n, method)
    size = float(np.sqrt(np.mean(y * y)))
    if not size > 1e-12:  # identical models: no shift at all, and nothing to weight
        return _as_fit(np.zeros(p), np.zeros((p, p)), n, method, intercept)
    # Least absolute deviations by iteratively reweighted least squares.
    coef = _wls(x, y, np.ones(n))
    for _ in range(iterations):
        resid = np.abs(y - x @ coef)
        new = _wls(x, y, 1.0 / np.maximum(resid, 1e-9 * size))
        done = np.allclose(new, coef, rtol=0, atol=1e-12 * max(size, 1.0))
        coef = new
        if done:
            break
    resid = y - x @ coef
    sigma = max(1.4826 * float(np.median(np.abs(resid))), 1e-7 * size)
    # Biweight iterations at that scale (an MM-type estimate: the scale stays fixed).
    for _ in range(iterations):
        u = (y - x @ coef) / (_BISQUARE_C * sigma)
        w = np.where(np.abs(u) < 1, (1 - u * u) ** 2, 0.0)
        if np.count_nonzero(w) < p + 1:
            break
        new = _wls(x, y, w)
        done = np.allclose(new, coef, rtol=1e-12, atol=1e-14 * max(size, 1.0))
        coef = new
        if done:
            break
    # Huber's (1981) asymptotic covariance of an M-estimate.
    u = (y - x @ coef) / sigma
    a = u / _BISQUARE_C
    inside = np.abs(a) < 1
    psi = np.where(inside, u * (1 - a * a) ** 2, 0.0)
    dpsi = np.where(inside, (1 - a * a) * (1 - 5 * a * a), 0.0)
    m = float(dpsi.mean())
    if m <= 0:
        cov = np.full((p, p), np.nan)
    else:
        k = 1 + p / n * float(dpsi.var()) / m**2
        cov = (k**2 * float(psi @ psi) / (n - p) / m**2 * sigma**2
               * np.linalg.inv(x.T @ x))
    return _as_fit(coef, cov, n, method, intercept, int(np.count_nonzero(~inside)))


def fit_line(radius, values, *, intercept: bool = False, robust: bool = False) -> LineFit:
    """Fit a shift quantity against the radius.

    Parameters
    ----------
    radius : array_like, shape (n,)
        Distances from the centre of mass in Å.
    values : array_like, shape (n,)
        Shift lengths or radial projections in Å.
    intercept : bool, optional
        Fit y = a + b·r (default: y = b·r, through the origin).
    robust : bool, optional
        Tukey biweight M-estimate (scale from the median absolute residual of a least
        absolute deviation start) instead of least squares: gross outliers get zero weight.

    Returns
    -------
    LineFit
        Slope and its standard error in %, intercept and its standard error in Å. NaN
        when there are too few pairs (fewer than 2 through the origin, 3 with an intercept;
        one more for the robust fits).
    """
    r = np.asarray(radius, dtype=np.float64).ravel()
    y = np.asarray(values, dtype=np.float64).ravel()
    if r.shape != y.shape:
        raise ValueError(f"radius and values must have the same length, got {r.shape} and "
                         f"{y.shape}")
    return _robust(r, y, intercept) if robust else _least_squares(r, y, intercept)


def _all_fits(radius, length, radial) -> dict:
    out = {}
    for name, y in (("total", length), ("radial", radial)):
        out[name] = {
            "origin": fit_line(radius, y),
            "intercept": fit_line(radius, y, intercept=True),
            "robust_origin": fit_line(radius, y, robust=True),
            "robust_intercept": fit_line(radius, y, intercept=True, robust=True),
        }
    return out


def _summary(fits: dict, n: int) -> dict:
    """The flat JSON summary of one set of fits (overall or one chain)."""
    def block(origin_key, intercept_key):
        out = {}
        for q in ("total", "radial"):
            o, i = fits[q][origin_key], fits[q][intercept_key]
            out[f"slope_{q}"] = o.slope
            out[f"slope_{q}_se"] = o.slope_se
            out[f"slope_{q}_with_intercept"] = i.slope
            out[f"slope_{q}_with_intercept_se"] = i.slope_se
            out[f"intercept_{q}"] = i.intercept
            out[f"intercept_{q}_se"] = i.intercept_se
        return out

    out = {"n_pairs": n}
    out.update(block("origin", "intercept"))
    robust = block("robust_origin", "robust_intercept")
    for q in ("total", "radial"):
        robust[f"n_outliers_{q}"] = fits[q]["robust_origin"].n_outliers
        robust[f"n_outliers_{q}_with_intercept"] = fits[q]["robust_intercept"].n_outliers
    out["robust"] = robust
    return out


@dataclass
class ExpansionResult:
    """Outcome of :func:`expansion`.

    Attributes
    ----------
    ref_xyz : numpy.ndarray, shape (n, 3)
        Matched reference Cα positions in Å.
    target_xyz : numpy.ndarray, shape (n, 3)
        Matched target Cα positions after the superposition, in the reference frame, Å.
    chains : list of str
        Reference chain of each pair.
    center : numpy.ndarray, shape (3,)
        Centre of mass of the matched reference Cα atoms in Å.
    transform : numpy.ndarray, shape (4, 4)
        The superposition, x_ref = R·x_tgt + t.
    rmsd : float
        Cα RMSD after the superposition in Å.
    fits : dict
        ``fits[q][v]``: :class:`LineFit` for q in ("total", "radial") and v in ("origin",
        "intercept", "robust_origin", "robust_intercept").
    per_chain : dict
        Chain name -> the same structure as ``fits``, from that chain's pairs.
    ref_path, target_path : str or None
        The files, when the models were given as paths.
    """

    ref_xyz: np.ndarray
    target_xyz: np.ndarray
    chains: list
    center: np.ndarray
    transform: np.ndarray
    rmsd: float
    fits: dict
    per_chain: dict
    ref_path: Optional[str] = None
    target_path: Optional[str] = None

    @property
    def similarity(self) -> tuple:
        """(percent, standard error in %) : The isotropic factor f of the similarity transform
        (rigid plus one scale) that maps the reference onto the superposed target,
        y − c = f·(x − c), as f − 1 in %.

        f = Σ x·y / Σ|x|² over the pairs (x, y about the common centre c; the rotation of the
        similarity transform is the rigid one, Umeyama 1991), its standard error
        σ / √Σ|x|² with σ² = Σ|y − f·x|² / (3n − 7). Unlike the slope of the shift length,
        non-radial differences do not inflate it; unlike a line fit of the radial projection,
        every coordinate counts with its weight |x|².
        """
        x = self.ref_xyz - self.center
        y = self.target_xyz - self.center
        sxx = float(np.einsum("ij,ij->", x, x))
        f = float(np.einsum("ij,ij->", x, y)) / sxx
        dof = max(3 * self.n_pairs - 7, 1)
        sigma = np.sqrt(float(np.einsum("ij,ij->", y - f * x, y - f * x)) / dof)
        return 100.0 * (f - 1.0), 100.0 * sigma / np.sqrt(sxx)

    @property
    def n_pairs(self) -> int:
        """int : Number of matched Cα pairs."""
        return len(self.ref_xyz)

    @property
    def shift(self) -> np.ndarray:
        """numpy.ndarray, shape (n, 3) : Shift vectors (superposed target − reference), Å."""
        return self.target_xyz - self.ref_xyz

    @property
    def radius(self) -> np.ndarray:
        """numpy.ndarray, shape (n,) : Distance of each reference Cα from the centre, Å."""
        return np.linalg.norm(self.ref_xyz - self.center, axis=1)

    @property
    def shift_length(self) -> np.ndarray:
        """numpy.ndarray, shape (n,) : Length of each shift vector, Å."""
        return np.linalg.norm(self.shift, axis=1)

    @property
    def radial(self) -> np.ndarray:
        """numpy.ndarray, shape (n,) : Shift projected on the outward radial direction, Å.

        0 for a Cα exactly at the centre.
        """
        d = self.ref_xyz - self.center
        r = np.linalg.norm(d, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(r > 0, np.einsum("ij,ij->i", self.shift, d) / r, 0.0)

    @property
    def slope_total(self) -> float:
        """float : Slope of the shift length against the radius, through the origin, in %."""
        return self.fits["total"]["origin"].slope

    @property
    def slope_radial(self) -> float:
        """float : Slope of the radial projection against the radius, through the origin, %."""
        return self.fits["radial"]["origin"].slope

    def to_dict(self) -> dict:
        """The machine-readable summary (the content of ``expansion.json``).

        Returns
        -------
        dict
            ``slope_total``, ``slope_radial`` (through the origin, %), their standard errors
            (``*_se``), the fits with an intercept (``slope_*_with_intercept`` in %,
            ``intercept_*`` in Å, with standard errors), ``robust`` (the same keys from the
            biweight fits, plus the number of rejected pairs), ``n_pairs``, ``rmsd_A``,
            ``center`` (Å), ``transform`` and ``per_chain`` (chain -> the same flat keys).
        """
        similarity, similarity_se = self.similarity
        out = {"similarity_scale_percent": similarity,
               "similarity_scale_percent_se": similarity_se,
               "headline": "similarity_scale_percent and slope_radial lead; slope_total (the "
                           "shift length) is an upper bound that non-radial shifts inflate"}
        out.update(_summary(self.fits, self.n_pairs))
        chains = np.array(self.chains)
        out.update({
            "rmsd_A": self.rmsd,
            "center": self.center,
            "transform": self.transform,
            "units": {"slope": "%", "intercept": "Å", "center": "Å", "rmsd_A": "Å"},
            "per_chain": {name: _summary(fits, int(np.count_nonzero(chains == name)))
                          for name, fits in self.per_chain.items()},
            "inputs": {"ref_model": self.ref_path, "target_model": self.target_path},
        })
        return out


def _load(model: ModelLike, role: str):
    if isinstance(model, gemmi.Structure):
        return model, None, f"the {role} model"
    return read_model(model), os.fspath(model), os.fspath(model)


#: Fewest paired Cα atoms, and fraction of the smaller model's, for two models of one molecule.
MIN_PAIRS, MIN_PAIRED_FRACTION = 20, 0.25
#: Default largest Cα RMSD (Å) after superposition: a few % of voxel-size error moves atoms
#: at 50 Å by about 1 Å; beyond this the models are not of one molecule (or not matched).
MAX_RMSD = 5.0


def expansion(ref_model: ModelLike, target_model: ModelLike, *,
              chains: Optional[Sequence[str]] = None,
              max_rmsd: float = MAX_RMSD) -> ExpansionResult:
    """Expansion coefficients of a target model relative to a reference model.

    See the module documentation for the method. The target is superposed on the reference
    by least squares on the Cα atoms of all matched residues; shifts and radii are measured
    in the reference frame from the centre of mass of the matched reference Cα atoms.

    Parameters
    ----------
    ref_model, target_model : str, os.PathLike or gemmi.Structure
        The models (PDB or mmCIF; the first model of each file is used).
    chains : sequence of str, optional
        Reference chains to use (default all chains with Cα atoms). Target chains are
        paired by name, or by sequence when the name is absent.
    max_rmsd : float, optional
        Refuse models whose Cα RMSD after superposition is above this (Å, default 5).

    Returns
    -------
    ExpansionResult
        ``slope_total`` and ``slope_radial`` in % (positive: the target is larger), with the
        intercept and robust variants and per-chain fits in ``fits`` / ``per_chain``.

    Raises
    ------
    FileNotFoundError
        If a model file does not exist.
    ModelFormatError
        If a model cannot be read or has no protein Cα atoms (in the selected chains). The
        message names the file.
    ModelMismatchError
        If the two are not models of one molecule: fewer than 20 paired residues or than a
        quarter of the smaller model's, or a Cα RMSD after superposition above ``max_rmsd``.

    Examples
    --------
    >>> res = expansion("7bv2.pdb", "6xez.pdb", chains=["A", "B", "C"])  # doctest: +SKIP
    >>> round(res.slope_radial, 2)                                       # doctest: +SKIP
    """
    ref, ref_path, ref_name = _load(ref_model, "reference")
    tgt, tgt_path, tgt_name = _load(target_model, "target")
    if chains is not None:
        chains = [str(c) for c in chains]
        present = {ch.name for ch in ref[0]}
        missing = [c for c in chains if c not in present]
        if missing:
            raise ModelFormatError(f"{ref_name}: no chain(s) {', '.join(missing)} (chains: "
                                   f"{', '.join(sorted(present)) or 'none'})")
    if not calpha_residues(ref, chains=chains):
        where = f" in chains {', '.join(chains)}" if chains else ""
        raise ModelFormatError(f"{ref_name}: no protein Cα atoms{where}")
    if not calpha_residues(tgt):
        raise ModelFormatError(f"{tgt_name}: no protein Cα atoms")
    ref_xyz, tgt_xyz, labels = residue_pairs(ref, tgt, chains)
    smaller = min(len(calpha_residues(ref, chains=chains)), len(calpha_residues(tgt)))
    if len(ref_xyz) < max(MIN_PAIRS, MIN_PAIRED_FRACTION * smaller):
        raise ModelMismatchError(
            f"{tgt_name} and {ref_name}: only {len(ref_xyz)} paired residues of {smaller} "
            f"(at least {MIN_PAIRS} and a quarter are needed): are they models of one "
            "molecule, with matching chain names or sequences?")
    transform, rmsd = superpose(ref_xyz, tgt_xyz)
    if not rmsd <= max_rmsd:
        raise ModelMismatchError(
            f"{tgt_name} and {ref_name}: Cα RMSD {rmsd:.1f} Å after superposing "
            f"{len(ref_xyz)} paired residues, above {max_rmsd:g} Å: these are not models of "
            "one molecule in one conformation (or their residues are paired wrongly), and an "
            "expansion coefficient would mean nothing")
    moved = apply_transform(transform, tgt_xyz)
    center = ref_xyz.mean(axis=0)
    result = ExpansionResult(ref_xyz, moved, list(labels), center, transform, rmsd, {}, {},
                             ref_path, tgt_path)
    radius, length, radial = result.radius, result.shift_length, result.radial
    result.fits = _all_fits(radius, length, radial)
    names = np.array(labels)
    for name in dict.fromkeys(labels):  # reference chain order
        sel = names == name
        result.per_chain[name] = _all_fits(radius[sel], length[sel], radial[sel])
    return result

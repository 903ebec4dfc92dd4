"""Correlation of map values."""
from __future__ import annotations

import numpy as np

from .. import _core
from ..threads import resolve_threads

__all__ = ["correlation"]


def correlation(a, b, weights=None, *, nthreads: int = 0) -> float:
    """Pearson correlation about the mean (ChimeraX "correlation about mean").

    Parameters
    ----------
    a, b : array_like
        Values of equal size (any shape; flattened); converted to float32.
    weights : array_like, optional
        Non-negative weights of the same size.
    nthreads : int, optional
        Threads (0 = all available).

    Returns
    -------
    float
        Σw(a−ā)(b−b̄) / √(Σw(a−ā)² Σw(b−b̄)²) with weighted means ā, b̄, sums in double
        precision; NaN when either array is constant.

    Examples
    --------
    >>> import numpy as np, voxscale
    >>> round(voxscale.correlation(np.arange(5.0), 2 * np.arange(5.0) + 1), 6)
    1.0
    """
    a = np.ascontiguousarray(a, dtype=np.float32).ravel()
    b = np.ascontiguousarray(b, dtype=np.float32).ravel()
    w = None if weights is None else np.ascontiguousarray(weights, dtype=np.float32).ravel()
    if w is not None and np.any(w < 0):
        raise ValueError("weights must be non-negative")
    return float(_core.pearson(a, b, w, resolve_threads(nthreads)))

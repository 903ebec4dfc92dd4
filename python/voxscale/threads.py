"""The number of threads of a call, resolved once at the public entry point.

Every public function that runs kernels takes ``nthreads`` (0 = all available cores,
honouring ``OMP_NUM_THREADS``), resolves it here once and passes the resolved number to every
kernel it calls, so that ``nthreads=1`` really runs everything on one core.
"""
from __future__ import annotations

import numbers

from . import _core
from .errors import OptionError

__all__ = ["resolve_threads", "MAX_THREADS"]

#: Largest thread count accepted (the C++ core's own cap).
MAX_THREADS = 256


def resolve_threads(nthreads, *, option: str = "nthreads") -> int:
    """The concrete thread count for a requested one.

    Parameters
    ----------
    nthreads : int
        0 for all available cores (``OMP_NUM_THREADS`` if set), else 1 to :data:`MAX_THREADS`.
    option : str, optional
        Name of the option in messages (``--threads`` on the command line).

    Returns
    -------
    int
        At least 1.

    Raises
    ------
    OptionError
        If ``nthreads`` is not a whole number from 0 to :data:`MAX_THREADS`.

    Examples
    --------
    >>> resolve_threads(1)
    1
    """
    if isinstance(nthreads, bool) or not isinstance(nthreads, numbers.Integral):
        raise OptionError(f"{option} must be a whole number from 0 (all cores) to "
                          f"{MAX_THREADS}, got {nthreads!r}")
    n = int(nthreads)
    if not 0 <= n <= MAX_THREADS:
        raise OptionError(f"{option} = {n} is out of range: give 0 (all cores) to "
                          f"{MAX_THREADS}")
    return int(_core.resolve_threads(n))

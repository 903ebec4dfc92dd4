"""The quasi-Newton (BFGS) ascent used by every fit of voxscale.

Fits are parametrised as a small update of the current state, re-based after every accepted
step, so gradients are always taken at zero update where the analytic ones of the C++ kernel
are exact (Nocedal & Wright, *Numerical Optimization*, 2nd ed., 2006, ch. 6).
"""
from __future__ import annotations

import numpy as np

from ..errors import VoxscaleError

__all__ = ["ascend"]


def ascend(evaluate, update, state, n_params: int, *, max_steps: int = 200, xtol: float = 1e-4,
           first_step: float = 0.5):
    """Quasi-Newton (BFGS) maximisation of a correlation over a re-based parametrisation.

    The parameters are always a small update of the current state; after each accepted step
    the state is re-based (``update``), so gradients are always taken at zero update. The
    first step moves ``first_step`` (≈ Å) along the gradient whatever its magnitude — at low
    correlation the gradient is tiny and a fixed gain would crawl — and the inverse Hessian
    is rescaled after it from the observed curvature (Nocedal & Wright eq. 6.20).

    Parameters
    ----------
    evaluate : callable
        evaluate(state) -> (cc, gradient (n_params,), n_inside), gradient with respect to the
        update parameters at zero.
    update : callable
        update(state, step) -> new state for an update vector ``step``.
    state : object
        Starting state.
    n_params : int
        Number of update parameters.
    max_steps : int, optional
        Maximum number of steps.
    xtol : float, optional
        Converged when an accepted full step is shorter than this (parameter units, ~Å).
    first_step : float, optional
        Length of the first step.

    Returns
    -------
    state, cc, n_inside, steps, history, converged
    """
    cc, grad, inside = evaluate(state)
    if not np.isfinite(cc):
        raise VoxscaleError("the fit points do not overlap the reference map (correlation "
                            "undefined); check the placement or the maps' origins")
    f, g = -cc, -grad  # minimise -cc
    eye = np.eye(n_params)

    def fresh_inverse_hessian(gradient):
        return eye * (first_step / max(float(np.linalg.norm(gradient)), 1e-30))

    hess_inv = fresh_inverse_hessian(g)
    history = [cc]
    steps, converged, first = 0, False, True
    for steps in range(1, max_steps + 1):
        direction = -hess_inv @ g
        if g @ direction >= 0:  # not a descent direction: restart from steepest descent
            hess_inv = fresh_inverse_hessian(g)
            direction = -hess_inv @ g
        step_len = 1.0
        while step_len >= 1e-8:  # backtracking line search with the Armijo condition
            step = step_len * direction
            new_state = update(state, step)
            cc_new, grad_new, inside_new = evaluate(new_state)
            if np.isfinite(cc_new) and -cc_new <= f + 1e-4 * step_len * (g @ direction):
                break
            step_len *= 0.5
        else:  # no decrease along a descent direction: at the optimum to rounding
            converged = True
            break
        y_vec = -grad_new - g
        improvement = f - (-cc_new)
        state, f, g, inside = new_state, -cc_new, -grad_new, inside_new
        history.append(cc_new)
        sy = step @ y_vec
        if sy > 1e-16:
            if first:  # scale the initial guess by the measured curvature
                hess_inv = eye * (sy / (y_vec @ y_vec))
                first = False
            rho = 1.0 / sy
            hess_inv = ((eye - rho * np.outer(step, y_vec)) @ hess_inv
                        @ (eye - rho * np.outer(y_vec, step)) + rho * np.outer(step, step))
        if (np.linalg.norm(step) < xtol and step_len == 1.0) or improvement < 1e-12 * abs(f):
            converged = True
            break
    return state, -f, inside, steps, history, converged

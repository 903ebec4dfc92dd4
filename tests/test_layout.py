"""The layout and the "one way to do each thing" rules: checked, not hoped for.

- the C++ core knows no Python;
- every doctest of the package runs;
- a calcium ion named CA is not a Cα;
- ``nthreads`` reaches every kernel: with nthreads=1 no kernel is asked for more threads;
- the quasi-Newton ascent agrees with scipy.optimize on known functions;
- every error class is exported.
"""
import doctest
import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import gemmi
import numpy as np
import pytest
from scipy import optimize

import voxscale
from voxscale import _core, errors
from voxscale.fit.optimise import ascend
from voxscale.maps.models import calpha_residues
from voxscale.testing.molecules import helix_bundle

ROOT = Path(__file__).resolve().parents[1]


def test_cpp_core_knows_no_python():
    offending = [str(p.relative_to(ROOT)) for p in (ROOT / "cpp/include/voxscale").glob("*.hpp")
                 if re.search(r"#include\s*[<\"](Python\.h|pybind11/)", p.read_text())]
    assert not offending, offending


def _package_modules():
    names = ["voxscale"]
    for info in pkgutil.walk_packages(voxscale.__path__, "voxscale."):
        if info.name.endswith("__main__"):
            continue
        names.append(info.name)
    return names


@pytest.mark.parametrize("name", _package_modules())
def test_doctests_of_the_package(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
                             verbose=False)
    assert result.failed == 0, f"{name}: {result.failed} doctest(s) failed"


def test_there_are_doctests_to_run():
    finder = doctest.DocTestFinder()
    examples = sum(len(t.examples) for name in _package_modules()
                   for t in finder.find(importlib.import_module(name)))
    assert examples >= 15, examples


def test_calcium_named_ca_is_not_a_calpha():
    pdb = ("ATOM      1  N   GLY A   1      -0.500   1.400   0.000  1.00 20.00           N\n"
           "ATOM      2  CA  GLY A   1       0.000   0.000   0.000  1.00 20.00           C\n"
           "ATOM      3  C   GLY A   1       1.500   0.000   0.000  1.00 20.00           C\n"
           "HETATM    4 CA    CA A 101       5.000   5.000   5.000  1.00 20.00          CA\n"
           "HETATM    5  CA  XYZ B   1       9.000   9.000   9.000  1.00 20.00          CA\n")
    st = gemmi.read_pdb_string(pdb)
    residues = calpha_residues(st)
    assert list(residues) == ["A"] and [(r.number, r.code) for r in residues["A"]] == [(1, "G")]
    # a modified residue gemmi does not know, with a backbone, still counts
    mod = gemmi.read_pdb_string(pdb.replace("GLY", "ZZQ"))
    assert [r.code for r in calpha_residues(mod)["A"]] == ["X"]


def test_superposition_ignores_a_calcium_ion_named_ca():
    from voxscale.fit.superpose import residue_pairs
    st = helix_bundle(12)
    moved = st.clone()
    chain = moved[0][0]
    ion = gemmi.Residue()
    ion.name, ion.het_flag = "CA", "H"
    ion.seqid = gemmi.SeqId(chain[0].seqid.num, " ")  # numbered like the first residue
    atom = gemmi.Atom()
    atom.name, atom.element, atom.pos = "CA", gemmi.Element("Ca"), gemmi.Position(50, 50, 50)
    ion.add_atom(atom)
    chain.add_residue(ion)
    ref_xyz, tgt_xyz, _ = residue_pairs(st, moved)
    assert len(ref_xyz) == sum(len(v) for v in calpha_residues(st).values())
    assert np.max(np.linalg.norm(ref_xyz - tgt_xyz, axis=1)) < 1e-9  # no ion in the pairs


class _ThreadSpy:
    """Wraps every function of the C++ core and records the nthreads it is called with."""

    def __init__(self, monkeypatch):
        self.calls = []
        for name, func in inspect.getmembers(_core, callable):
            if name.startswith("_") or name in ("has_openmp", "resolve_threads", "label_regions"):
                # label_regions is serial: it takes no thread count
                continue
            monkeypatch.setattr(_core, name, self._wrap(name, func))

    def _wrap(self, name, func):
        def spy(*args, **kwargs):
            threads = kwargs.get("nthreads", args[-1] if args else None)
            self.calls.append((name, threads))
            return func(*args, **kwargs)
        return spy


def test_nthreads_one_reaches_every_kernel(monkeypatch):
    from voxscale.reciprocal.model_map import model_map
    st = helix_bundle(14)
    xyz = np.array([a.pos.tolist() for ch in st[0] for r in ch for a in r])
    center = xyz.mean(axis=0)
    ref = model_map(st, voxel_size=1.0, shape=(48, 48, 48), origin=center - 23.5, d_min=4.0)
    tgt = voxscale.Map(ref.data, 1.01, ref.center - 1.01 * 23.5)
    spy = _ThreadSpy(monkeypatch)
    result = voxscale.compare(ref, tgt, nthreads=1,
                              scan_options=voxscale.ScanOptions(step=0.005))
    assert result.peaks is not None
    kernels = {name for name, _ in spy.calls}
    # the smoothing FFTs of the fit points, the fits, resampling, shells and peaks all ran
    assert {"map_to_sf", "sf_to_map", "rigid_score", "resample_affine", "shell_sums",
            "local_extrema", "spline_prefilter"} <= kernels, kernels
    wrong = sorted({(n, t) for n, t in spy.calls if t != 1})
    assert not wrong, f"kernels called with other thread counts: {wrong}"


@pytest.mark.parametrize("name, f, grad, x0, step", [
    ("quadratic", lambda x: -((x[0] - 1.5) ** 2 + 4 * (x[1] + 0.5) ** 2 + 0.5 * x[0] * x[1]),
     lambda x: -np.array([2 * (x[0] - 1.5) + 0.5 * x[1], 8 * (x[1] + 0.5) + 0.5 * x[0]]),
     [0.0, 0.0], 0.5),
    ("rosenbrock", lambda x: -optimize.rosen(x), lambda x: -optimize.rosen_der(x),
     [-1.2, 1.0, 0.8], 0.1),
    ("gaussian", lambda x: float(np.exp(-np.sum((x - [0.3, -0.2, 0.1]) ** 2 / 2.0))),
     lambda x: -(x - [0.3, -0.2, 0.1]) * np.exp(-np.sum((x - [0.3, -0.2, 0.1]) ** 2 / 2.0)),
     [1.0, 1.0, -1.0], 0.5),
])
def test_ascend_agrees_with_scipy(name, f, grad, x0, step):
    """ascend maximises over a re-based parametrisation; here the state is the point itself."""
    x0 = np.array(x0, dtype=float)
    state, best, _, steps, _, converged = ascend(
        lambda s: (f(s), grad(s), 1), lambda s, d: s + d, x0, len(x0), max_steps=5000,
        xtol=1e-10, first_step=step)
    ref = optimize.minimize(lambda x: -f(x), x0, jac=lambda x: -grad(x), method="BFGS",
                            options={"gtol": 1e-10})
    assert converged and ref.success
    np.testing.assert_allclose(state, ref.x, atol=1e-5)
    assert best == pytest.approx(-ref.fun, abs=1e-9)


def test_every_error_class_is_exported():
    classes = {name for name, obj in inspect.getmembers(errors, inspect.isclass)
               if issubclass(obj, errors.VoxscaleError)}
    assert classes == set(errors.__all__)
    assert classes <= set(voxscale.__all__)
    assert all(getattr(voxscale, name) is getattr(errors, name) for name in classes)

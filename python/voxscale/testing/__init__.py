"""Known-answer test material that voxscale makes itself: an ideal-geometry helix bundle and
the demo's map pair with a known voxel-size error. Used by ``voxscale demo`` and the tests;
nothing in the method depends on it.

Modules
-------
molecules
    Ideal-geometry polypeptides (NeRF construction) and a four-helix bundle.
demo
    The demo's reference and target maps and models, with their truth.
"""
from .demo import DEMO_FACTOR, DEMO_SUBSTITUTIONS, demo_inputs
from .molecules import helix_bundle, make_atom, place_atom

__all__ = ["DEMO_FACTOR", "DEMO_SUBSTITUTIONS", "demo_inputs", "helix_bundle", "make_atom",
           "place_atom"]

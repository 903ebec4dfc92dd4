"""A test molecule built from ideal geometry: a four-helix bundle with side chains.

Nothing is downloaded or copied: backbone atoms are placed one after the other from ideal
bond lengths and angles (Engh & Huber 1991) and the α-helical torsions φ = −57.8°,
ψ = −47.0°, ω = 180° by the natural extension reference frame (NeRF) construction; side chains
from standard rotamers. Used by ``voxscale demo`` and by tests that need a molecule without the
shared data.
"""
from __future__ import annotations

import gemmi
import numpy as np

__all__ = ["helix_bundle", "make_atom", "place_atom", "SIDE_CHAINS"]

# (atom, element, (bond, angle, torsion) given the three previous atoms named) per residue.
# Each entry: name, element, parents (a, b, c), bond length (Å), angle b-c-d (°), torsion (°).
SIDE_CHAINS = {
    "ALA": [],
    "SER": [("OG", "O", ("N", "CA", "CB"), 1.417, 111.1, 60.0)],
    "LEU": [("CG", "C", ("N", "CA", "CB"), 1.530, 116.3, -65.0),
            ("CD1", "C", ("CA", "CB", "CG"), 1.524, 110.7, 175.0),
            ("CD2", "C", ("CA", "CB", "CG"), 1.524, 110.7, -65.0)],
    "LYS": [("CG", "C", ("N", "CA", "CB"), 1.520, 114.1, -65.0),
            ("CD", "C", ("CA", "CB", "CG"), 1.520, 111.3, 180.0),
            ("CE", "C", ("CB", "CG", "CD"), 1.520, 111.3, 180.0),
            ("NZ", "N", ("CG", "CD", "CE"), 1.489, 111.9, 180.0)],
    "GLU": [("CG", "C", ("N", "CA", "CB"), 1.520, 114.1, -65.0),
            ("CD", "C", ("CA", "CB", "CG"), 1.516, 112.6, 180.0),
            ("OE1", "O", ("CB", "CG", "CD"), 1.249, 118.4, 0.0),
            ("OE2", "O", ("CB", "CG", "CD"), 1.249, 118.4, 180.0)],
    "PHE": [("CG", "C", ("N", "CA", "CB"), 1.502, 113.8, -65.0),
            ("CD1", "C", ("CA", "CB", "CG"), 1.384, 120.7, 90.0),
            ("CD2", "C", ("CA", "CB", "CG"), 1.384, 120.7, -90.0),
            ("CE1", "C", ("CB", "CG", "CD1"), 1.382, 120.7, 180.0),
            ("CE2", "C", ("CB", "CG", "CD2"), 1.382, 120.7, 180.0),
            ("CZ", "C", ("CG", "CD1", "CE1"), 1.382, 120.0, 0.0)],
}

# Heptad (a–g) of a coiled coil: hydrophobic core at a and d, charges at e and g.
_HEPTAD = ["LEU", "ALA", "LYS", "LEU", "GLU", "PHE", "LYS"]


def place_atom(a, b, c, bond: float, angle_deg: float, torsion_deg: float) -> np.ndarray:
    """Position of atom d from a, b, c, |cd|, angle b-c-d and torsion a-b-c-d (NeRF).

    Parameters
    ----------
    a, b, c : array_like, shape (3,)
        Previous atoms (Å).
    bond : float
        Length c–d in Å.
    angle_deg, torsion_deg : float
        Bond angle b–c–d and torsion a–b–c–d in degrees.

    Returns
    -------
    numpy.ndarray, shape (3,)
    """
    a, b, c = (np.asarray(v, dtype=np.float64) for v in (a, b, c))
    bc = c - b
    bc /= np.linalg.norm(bc)
    n = np.cross(b - a, bc)
    n /= np.linalg.norm(n)
    m = np.cross(n, bc)
    theta, phi = np.radians(angle_deg), np.radians(torsion_deg)
    d2 = np.array([-bond * np.cos(theta), bond * np.sin(theta) * np.cos(phi),
                   bond * np.sin(theta) * np.sin(phi)])
    return c + d2[0] * bc + d2[1] * m + d2[2] * n


def _helix(sequence):
    """Atoms (name, element, xyz) per residue of an ideal α-helix."""
    phi, psi, omega = -57.8, -47.0, 180.0
    n = np.zeros(3)
    ca = np.array([1.458, 0.0, 0.0])
    c = place_atom([0.0, 1.0, 0.0], n, ca, 1.525, 111.2, -60.0)
    residues = []
    for i, name in enumerate(sequence):
        atoms = {"N": n, "CA": ca, "C": c}
        n_next = place_atom(n, ca, c, 1.329, 116.2, psi)
        atoms["O"] = place_atom(n, ca, c, 1.231, 120.8, psi + 180.0)
        atoms["CB"] = place_atom(c, n, ca, 1.530, 110.5, -122.6)
        for atom, _, (p1, p2, p3), bond, angle, torsion in SIDE_CHAINS[name]:
            atoms[atom] = place_atom(atoms[p1], atoms[p2], atoms[p3], bond, angle, torsion)
        order = ["N", "CA", "C", "O", "CB"] + [s[0] for s in SIDE_CHAINS[name]]
        elements = {"N": "N", "CA": "C", "C": "C", "O": "O", "CB": "C"}
        elements.update({s[0]: s[1] for s in SIDE_CHAINS[name]})
        residues.append((name, [(a, elements[a], atoms[a]) for a in order]))
        ca_next = place_atom(ca, c, n_next, 1.458, 121.7, omega)
        c_next = place_atom(c, n_next, ca_next, 1.525, 111.2, phi)
        n, ca, c = n_next, ca_next, c_next
    return residues


def _axis_frame(points: np.ndarray):
    centre = points.mean(axis=0)
    _, _, vt = np.linalg.svd(points - centre)
    axis = vt[0] if vt[0][2] >= 0 else -vt[0]
    # Rotation taking the helix axis onto +z.
    v = np.cross(axis, [0.0, 0.0, 1.0])
    s, cth = np.linalg.norm(v), axis[2]
    if s < 1e-12:
        return centre, np.eye(3)
    k = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]]) / s
    rot = np.eye(3) + s * k + (1 - cth) * k @ k
    return centre, rot


def make_atom(name: str, element: str, xyz, b_factor: float = 20.0) -> gemmi.Atom:
    """A gemmi atom with full occupancy.

    Parameters
    ----------
    name, element : str
        Atom name (e.g. "CA") and element symbol.
    xyz : array_like, shape (3,)
        Position in Å.
    b_factor : float, optional
        Isotropic B in Å².

    Returns
    -------
    gemmi.Atom
    """
    atom = gemmi.Atom()
    atom.name = name
    atom.element = gemmi.Element(element)
    atom.pos = gemmi.Position(*np.asarray(xyz, dtype=np.float64))
    atom.b_iso = b_factor
    atom.occ = 1.0
    return atom


def helix_bundle(n_residues: int = 28, *, spacing: float = 12.0, b_factor: float = 20.0,
                 substitutions=()) -> gemmi.Structure:
    """A four-helix bundle (chains A–D, antiparallel neighbours) with side chains.

    Parameters
    ----------
    n_residues : int, optional
        Residues per helix (default 28, about 42 Å long).
    spacing : float, optional
        Distance between neighbouring helix axes in Å (default 12).
    b_factor : float, optional
        Isotropic B of every atom in Å².
    substitutions : iterable of (chain, number, residue name)
        Residues to build as another type (e.g. ("A", 6, "ALA")).

    Returns
    -------
    gemmi.Structure
        One model, residues numbered from 1, in a P1 "cell" of 1 Å (no crystal).
    """
    subs = {(ch, int(num)): name for ch, num, name in substitutions}
    st = gemmi.Structure()
    st.name = "voxscale helix bundle"
    model = gemmi.Model(1)
    corners = [(1, 1), (1, -1), (-1, -1), (-1, 1)]
    for h, chain_name in enumerate("ABCD"):
        sequence = [subs.get((chain_name, i + 1), _HEPTAD[(i + 2 * h) % 7])
                    for i in range(n_residues)]
        residues = _helix(sequence)
        ca = np.array([[xyz for a, _, xyz in atoms if a == "CA"][0] for _, atoms in residues])
        centre, rot = _axis_frame(ca)
        flip = np.diag([1.0, -1.0, -1.0]) if h % 2 else np.eye(3)  # antiparallel neighbours
        turn = np.radians(90.0 * h)
        spin = np.array([[np.cos(turn), -np.sin(turn), 0], [np.sin(turn), np.cos(turn), 0],
                         [0, 0, 1]])
        offset = 0.5 * spacing * np.array([*corners[h], 0.0])
        chain = gemmi.Chain(chain_name)
        for number, (name, atoms) in enumerate(residues, start=1):
            res = gemmi.Residue()
            res.name = name
            res.seqid = gemmi.SeqId(number, " ")
            res.entity_type = gemmi.EntityType.Polymer
            for atom_name, element, xyz in atoms:
                res.add_atom(make_atom(atom_name, element,
                                       spin @ flip @ rot @ (xyz - centre) + offset, b_factor))
            chain.add_residue(res)
        model.add_chain(chain)
    st.add_model(model)
    st.setup_entities()
    return st

"""Verdicts: whether a result can be trusted, in words a user reads and codes a program reads.

Every result voxscale reports carries a :class:`Quality`: ``status`` is ``"ok"``,
``"warning"`` (use the number with care; the reasons say why) or ``"unreliable"`` (do not use
it), and ``reasons`` lists a code and one sentence for each problem found. The codes are
stable (programs may rely on them); the sentences may improve.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List

__all__ = ["Reason", "Quality", "STATUSES", "REASON_CODES"]

#: From best to worst.
STATUSES = ("ok", "warning", "unreliable")

#: Every reason code, what it means, and the status it implies.
REASON_CODES = {
    "range_edge": ("unreliable", "the correlation is largest at the end of the scanned range"),
    "flat_curve": ("unreliable", "the correlation hardly changes over the scanned factors"),
    "no_gain_over_unit": ("warning", "the best factor fits no better than s = 1, within noise"),
    "imprecise": ("warning", "the factor's uncertainty is more than 0.1 %"),
    "low_correlation": ("unreliable", "the correlation at the best factor is too low"),
    "modest_correlation": ("warning", "the correlation at the best factor is modest"),
    "weak_placement": ("unreliable", "the map-only placement found no convincing pose"),
    "ambiguous_placement": ("warning", "two different poses fit about equally well"),
    "mirror_fits_better": ("unreliable", "the mirrored (other-hand) target fits better"),
    "directions_disagree": ("warning", "the two scan directions disagree"),
    "r_not_improved": ("warning", "the amplitude difference R is not lower after correction"),
    "r_near_unrelated": ("unreliable", "R after correction is near that of unrelated maps"),
    "implausible_b": ("unreliable", "the relative B of the amplitude scaling is beyond ±300 Å²"),
    "sigma_from_box": ("warning", "too little solvent: σ of the difference is its own spread"),
    "flat_solvent": ("warning", "the solvent is flat (masked map): σ is the difference's spread"),
    "models_mismatched": ("warning", "the two models are not of one molecule: no expansion"),
    "peaks_capped": ("warning", "more peaks than the cap: only the strongest are listed"),
    "partial_coverage": ("warning", "the target's box leaves part of the molecule without data"),
    "shared_noise": ("warning", "the maps share their noise: σ of the solvent is not the noise"),
}


@dataclass(frozen=True)
class Reason:
    """One problem found.

    Attributes
    ----------
    code : str
        One of :data:`REASON_CODES`.
    message : str
        One sentence for a person, with the numbers.
    """

    code: str
    message: str

    @property
    def severity(self) -> str:
        """str : The status this reason implies ("warning" or "unreliable")."""
        return REASON_CODES[self.code][0]


@dataclass
class Quality:
    """The verdict on a result.

    Attributes
    ----------
    reasons : list of Reason
        Problems found (empty: ok).

    Examples
    --------
    >>> q = Quality()
    >>> q.add("directions_disagree", "forward 0.981, reverse 0.975.")
    >>> q.status, q.to_dict()["reasons"][0]["code"]
    ('warning', 'directions_disagree')
    """

    reasons: List[Reason] = field(default_factory=list)

    @property
    def status(self) -> str:
        """str : "ok", "warning" or "unreliable": the worst of the reasons."""
        worst = 0
        for r in self.reasons:
            worst = max(worst, STATUSES.index(r.severity))
        return STATUSES[worst]

    @property
    def codes(self) -> list:
        """list of str : The reasons' codes, in the order found."""
        return [r.code for r in self.reasons]

    @property
    def ok(self) -> bool:
        """bool : No reason was found."""
        return not self.reasons

    def add(self, code: str, message: str) -> None:
        """Add a reason (a code of :data:`REASON_CODES`); a code is recorded once."""
        if code not in REASON_CODES:
            raise ValueError(f"unknown quality reason {code!r}")
        if all(r.code != code for r in self.reasons):
            self.reasons.append(Reason(code, message))

    def extend(self, other: "Quality") -> None:
        """Add the reasons of another verdict."""
        for r in other.reasons:
            self.add(r.code, r.message)

    def to_dict(self) -> dict:
        """dict : ``{"status": ..., "reasons": [{"code", "severity", "message"}, ...]}``."""
        return {"status": self.status,
                "reasons": [{"code": r.code, "severity": r.severity, "message": r.message}
                            for r in self.reasons]}

    def lines(self) -> list:
        """list of str : One line per reason, for a log or stderr."""
        return [f"{r.severity}: {r.message} [{r.code}]" for r in self.reasons]

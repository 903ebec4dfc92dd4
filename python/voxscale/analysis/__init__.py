"""Analyses beside the scale correction: model expansion, absolute-scale hints from a model,
local realignment of model parts. Each returns a result object with ``to_dict()``; none reads
options or draws (the command line and :mod:`voxscale.pipeline.plots` do).

Modules
-------
expansion
    Expansion coefficients between two superposed models.
absolute_scale
    Model–map correlation against voxel scale, backbone bond lengths.
local
    Rigid refits of model parts and a difference per part.

The functions :func:`expansion.expansion` and :func:`absolute_scale.absolute_scale` are
imported from their modules (``from voxscale.analysis.expansion import expansion``).
"""
from .absolute_scale import AbsoluteScaleResult, backbone_bonds
from .expansion import ExpansionResult, LineFit, fit_line
from .local import DomainFit, LocalRealignment, local_realignment, parse_domain

__all__ = ["AbsoluteScaleResult", "backbone_bonds", "ExpansionResult", "LineFit", "fit_line",
           "DomainFit", "LocalRealignment", "local_realignment", "parse_domain"]

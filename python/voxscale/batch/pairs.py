"""The pair table of a survey: a CSV file, a DataFrame or dicts, validated row by row."""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..errors import VoxscaleError
from ..fit.scan import ScanOptions
from ..files import require_regular_file
from ..reciprocal.shells import RESOLUTION_BOUNDS, check_resolution_range

__all__ = ["PairSpec", "read_pairs", "KNOWN_COLUMNS"]

log = logging.getLogger("voxscale.batch")

_OPTION_COLUMNS = ("ref_model", "target_model", "d_max", "d_min", "range_lo", "range_hi",
                   "step", "contour")
KNOWN_COLUMNS = ("id", "ref", "target") + _OPTION_COLUMNS


@dataclass(frozen=True)
class PairSpec:
    """One row of the pair table, validated; paths absolute.

    Attributes
    ----------
    id : str
    ref, target : str
        Map paths.
    ref_model, target_model : str or None
        Model paths.
    d_max, d_min : float or None
        Resolution range of the amplitude statistics (Å); default no low limit and, as in
        ``voxscale compare``, the resolution where the FSC of the reference and the corrected
        target falls below 0.143 (:func:`voxscale.reciprocal.estimate_resolution`).
    range_lo, range_hi, step : float
        Scan range and finest step.
    contour : float or None
        Target contour level of the fit points.
    """

    id: str
    ref: str
    target: str
    ref_model: Optional[str] = None
    target_model: Optional[str] = None
    d_max: Optional[float] = None
    d_min: Optional[float] = None
    range_lo: float = 0.95
    range_hi: float = 1.05
    step: float = 0.002
    contour: Optional[float] = None

    def as_dict(self) -> dict:
        """dict : The fields as a plain dict (what a task receives)."""
        return dict(self.__dict__)


def _cell(value) -> Optional[str]:
    """A table cell as stripped text, or None when empty / missing."""
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    text = str(value).strip()
    return text or None


def read_pairs(pairs, *, base=None) -> list:
    """Read and validate a pair table.

    Parameters
    ----------
    pairs : str, os.PathLike, pandas.DataFrame or sequence of dict
        A CSV file with columns ``ref``, ``target`` and optionally ``id``, ``ref_model``,
        ``target_model``, ``d_max``, ``d_min``, ``range_lo``, ``range_hi``, ``step``,
        ``contour`` (empty cells take the defaults), or the same as a DataFrame or as dicts.
    base : str or os.PathLike, optional
        Folder that relative paths are relative to: default the CSV file's folder, or the
        current folder for a DataFrame or dicts.

    Returns
    -------
    list of PairSpec
        In table order. A missing ``id`` is the row number (1 for the first row).

    Raises
    ------
    MissingInputError, InputFileError
        If the CSV file does not exist or is not a regular file.
    VoxscaleError
        If the table cannot be read, lacks ``ref`` or ``target``, has an empty ``ref`` or
        ``target`` cell, a value that is not a number, an invalid range or duplicate ids.
        The message names the file, row and column.
    """
    import pandas as pd

    if isinstance(pairs, (str, os.PathLike)):
        source = require_regular_file(pairs, "pair table")
        try:
            table = pd.read_csv(source, dtype=str, keep_default_na=False,
                                skipinitialspace=True)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
            raise VoxscaleError(f"{source}: cannot read as a CSV table ({' '.join(str(err).split())})") from None
        rows = table.to_dict("records")
        columns = list(table.columns)
        where = str(source)
        folder = Path(base) if base is not None else source.resolve().parent
    else:
        if isinstance(pairs, pd.DataFrame):
            columns = list(pairs.columns)
            rows = pairs.to_dict("records")
        else:
            rows = [dict(r) for r in pairs]
            columns = sorted({k for r in rows for k in r})
        where = "pair table"
        folder = Path(base) if base is not None else Path.cwd()

    names = {str(c).strip().lower(): c for c in columns}
    for required in ("ref", "target"):
        if required not in names:
            raise VoxscaleError(f"{where}: no '{required}' column (columns: "
                                f"{', '.join(map(str, columns)) or 'none'}); the table needs "
                                "at least 'ref' and 'target'")
    unknown = [str(names[n]) for n in names if n not in KNOWN_COLUMNS]
    if unknown:
        log.warning("%s: ignoring unknown column(s) %s (known: %s)", where, ", ".join(unknown),
                    ", ".join(KNOWN_COLUMNS))
    if not rows:
        raise VoxscaleError(f"{where}: no pairs in the table")

    def path(text: Optional[str]) -> Optional[str]:
        if text is None:
            return None
        p = Path(os.path.expanduser(text))
        return os.path.normpath(p if p.is_absolute() else folder / p)

    specs, seen = [], {}
    for number, raw in enumerate(rows, start=1):
        row = {n: _cell(raw.get(c)) for n, c in names.items()}
        here = f"{where}: row {number}"

        def number_or_none(column: str) -> Optional[float]:
            text = row.get(column)
            if text is None:
                return None
            try:
                value = float(text)
            except ValueError:
                raise VoxscaleError(f"{here}: column {column}: {text!r} is not a number") from None
            if not math.isfinite(value):
                raise VoxscaleError(f"{here}: column {column}: {text!r} is not finite")
            return value

        for required in ("ref", "target"):
            if row.get(required) is None:
                raise VoxscaleError(f"{here}: column {required} is empty")
        ident = row.get("id") or str(number)
        if ident in seen:
            raise VoxscaleError(f"{here}: id {ident!r} already used in row {seen[ident]}")
        seen[ident] = number
        values = {c: number_or_none(c) for c in ("d_max", "d_min", "range_lo", "range_hi",
                                                 "step", "contour")}
        defaults = ScanOptions()
        lo = defaults.scale_range[0] if values["range_lo"] is None else values["range_lo"]
        hi = defaults.scale_range[1] if values["range_hi"] is None else values["range_hi"]
        step = defaults.step if values["step"] is None else values["step"]
        d_max, d_min = values["d_max"], values["d_min"]
        try:
            ScanOptions(scale_range=(lo, hi), step=step)
            # d_min alone, d_max alone (d_min from the FSC later) or both
            check_resolution_range(d_max, RESOLUTION_BOUNDS[0] if d_min is None else d_min)
        except VoxscaleError as err:
            raise VoxscaleError(f"{here}: {err} (columns range_lo, range_hi, step, d_max, "
                                "d_min)") from None
        specs.append(PairSpec(id=ident, ref=path(row["ref"]), target=path(row["target"]),
                              ref_model=path(row.get("ref_model")),
                              target_model=path(row.get("target_model")), d_max=d_max,
                              d_min=d_min, range_lo=lo, range_hi=hi, step=step,
                              contour=values["contour"]))
    return specs



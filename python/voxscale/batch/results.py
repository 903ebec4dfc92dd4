"""The results of a survey: ``results.csv``, appended and synced row by row, and
``results.parquet``, rewritten atomically from it."""
from __future__ import annotations

import csv
import logging
import math
import os
import time
from pathlib import Path
from typing import Optional

from ..errors import VoxscaleError
from ..files import atomic_write
from .task import COLUMNS, squash

__all__ = ["Results", "read_results", "compact"]

log = logging.getLogger("voxscale.batch")

_TEXT_COLUMNS = ("id", "ref", "target", "status", "error", "worker", "quality",
                 "quality_reasons")
_FLOAT_COLUMNS = tuple(c for c in COLUMNS if c not in _TEXT_COLUMNS and c != "memory_estimate")


def _format(value) -> str:
    """A cell of results.csv: empty for missing, floats exactly (shortest repr)."""
    value = _plain(value)
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(float(value))
    return str(value)


def read_results(path: Path):
    """results.csv as a DataFrame with the standard columns and types (every row).

    Read with the csv module, so that a last line cut short by a crash (too few fields, or an
    unterminated quote) is dropped with a warning instead of making the file unreadable.
    """
    import pandas as pd

    try:
        with open(path, newline="", encoding="utf-8") as fh:
            records = list(csv.reader(fh))
    except (UnicodeDecodeError, csv.Error) as err:
        raise VoxscaleError(f"{path}: cannot read the existing results ({squash(err)}); "
                            "use --force to start again") from None
    if not records:
        return _typed(pd.DataFrame(columns=list(COLUMNS)))
    header, rows = records[0], records[1:]
    if "id" not in header or "status" not in header:
        raise VoxscaleError(f"{path}: not a voxscale results table (no id or status column); "
                            "use --force to start again")
    whole = [r for r in rows if len(r) == len(header)]
    if len(whole) < len(rows):
        log.warning("%s: ignoring %d incomplete line(s) (an interrupted write); those pairs "
                    "are run again", path, len(rows) - len(whole))
    return _typed(pd.DataFrame(whole, columns=header))


def _typed(table):
    """Reindex to COLUMNS and give every column its type."""
    import pandas as pd

    table = table.reindex(columns=list(COLUMNS))
    for column in _TEXT_COLUMNS:
        table[column] = table[column].fillna("").astype(str)
    for column in _FLOAT_COLUMNS:
        table[column] = pd.to_numeric(table[column], errors="coerce").astype("float64")
    table["memory_estimate"] = pd.to_numeric(table["memory_estimate"],
                                             errors="coerce").astype("Int64")
    return table.reset_index(drop=True)


def compact(table, order=()):
    """The last row of each id, in the given id order first, then the others as they came."""
    table = table[table["id"] != ""]
    last = table.drop_duplicates("id", keep="last").set_index("id", drop=False)
    first = [i for i in order if i in last.index]
    wanted = set(first)
    rest = [i for i in last.index if i not in wanted]
    return last.loc[first + rest].reset_index(drop=True)


class Results:
    """results.csv (append-only while running, one fsync per row) and results.parquet."""

    def __init__(self, folder: Optional[Path], order, parquet_interval: float):
        self.folder, self.order = folder, list(order)
        self.rows: list = []
        self.parquet_interval = parquet_interval
        self._last_parquet = time.monotonic()
        self._handle = None
        self._parquet_ok = True
        self._started = False

    @property
    def csv(self) -> Path:
        return self.folder / "results.csv"

    @property
    def parquet(self) -> Path:
        return self.folder / "results.parquet"

    def start(self, previous) -> None:
        """Rewrite results.csv from the previous rows (compacted), then open it to append."""
        self.rows = previous.to_dict("records") if previous is not None else []
        self._started = True
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        self._write_csv_atomically(self.rows)
        self._handle = open(self.csv, "a", newline="", encoding="utf-8")
        self._writer = csv.writer(self._handle)

    def _write_csv_atomically(self, rows) -> None:
        with atomic_write(self.csv) as tmp:
            with open(tmp, "w", newline="", encoding="utf-8") as fh:
                writer = csv.writer(fh)
                writer.writerow(COLUMNS)
                for row in rows:
                    writer.writerow([_format(row.get(c)) for c in COLUMNS])

    def append(self, row: dict) -> None:
        self.rows.append(row)
        if self._handle is None:
            return
        self._writer.writerow([_format(row.get(c)) for c in COLUMNS])
        self._handle.flush()
        os.fsync(self._handle.fileno())
        if time.monotonic() - self._last_parquet >= self.parquet_interval:
            self.write_parquet()

    def table(self):
        import pandas as pd

        frame = pd.DataFrame([{c: _plain(r.get(c)) for c in COLUMNS} for r in self.rows],
                             columns=list(COLUMNS))
        return compact(_typed(frame), self.order)

    def write_parquet(self) -> None:
        self._last_parquet = time.monotonic()
        if self.folder is None or not self._parquet_ok:
            return
        try:
            with atomic_write(self.parquet) as tmp:
                self.table().to_parquet(tmp, index=False)
        except ImportError as err:
            self._parquet_ok = False
            log.warning("results.parquet not written: %s (pip install pyarrow); results.csv "
                        "has every row", squash(err))

    def finish(self) -> None:
        """Close results.csv, rewrite it compacted (last row per id), write the parquet."""
        if not self._started:
            return
        if self._handle is not None:
            self._handle.close()
            self._handle = None
            self._write_csv_atomically(self.table().to_dict("records"))
        self.write_parquet()


def _plain(value):
    """pandas missing values (NA, NaN) as None, numpy scalars as Python ones."""
    if value is None:
        return None
    try:
        import pandas as pd
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return value.item() if hasattr(value, "item") else value



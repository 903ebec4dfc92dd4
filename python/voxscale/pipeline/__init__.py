"""The comparison as a product: one pipeline (:func:`compare_files`), its summary, report,
figures, output folders and memory model. ``voxscale compare``, ``voxscale demo`` and every
task of ``voxscale batch`` run this pipeline and write its summary.

Modules
-------
compare
    The whole method in one call (:func:`compare`, :func:`compare_files`).
summary
    summary.json, and the row of a survey.
report
    report.html and every output file of ``voxscale compare``.
plots
    The figures of every command (matplotlib's object API).
output
    Output folders: refusing to overwrite, atomic writes, strict JSON.
memory
    The memory model and the guard of ``--max-memory``.
"""
from .compare import CompareResult, compare, compare_files
from .summary import summary, survey_row

__all__ = ["CompareResult", "compare", "compare_files", "summary", "survey_row"]

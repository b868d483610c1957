"""Private: HiGHS (``highspy``) as the allocation uses it — silent, models from triplets.

:func:`_new_highs` builds a ``Highs`` without its banner on the CLI's stdout, and
:func:`_lp` a maximisation ``HighsLp`` from column bounds and ``(row, column, value)``
triplets (one column-wise sparse matrix, no row-by-row calls).  Used by the quota MILP
(:mod:`landquota.allocation.milp`) and the stock LP (:mod:`landquota.allocation.matching`).
"""

from __future__ import annotations

import os
import sys

import highspy
import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

_banner_done = False


def _new_highs() -> highspy.Highs:
    """Return a silent ``Highs``.

    HiGHS prints its copyright banner to the C-level stdout when the first
    instance of a process is built, before any option can silence it; in a CLI
    whose stdout may be a CSV pipe that line does harm, so the first
    construction runs with file descriptor 1 pointed at the null device.
    """
    global _banner_done
    if _banner_done:
        h = highspy.Highs()  # type: ignore[no-untyped-call]
    else:
        sys.stdout.flush()
        saved = os.dup(1)
        try:
            with open(os.devnull, "w") as null:
                os.dup2(null.fileno(), 1)
                h = highspy.Highs()  # type: ignore[no-untyped-call]
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        _banner_done = True
    h.setOptionValue("output_flag", False)
    return h


def _csc(
    rows: IntArray, cols: IntArray, vals: FloatArray, n_col: int
) -> tuple[IntArray, IntArray, FloatArray]:
    order = np.lexsort((rows, cols))
    counts = np.bincount(cols, minlength=n_col)
    start = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
    return start, rows[order].astype(np.int64), vals[order].astype(np.float64)


def _lp(
    n_col: int,
    lower: FloatArray,
    upper: FloatArray,
    triplets: tuple[IntArray, IntArray, FloatArray],
    row_lower: FloatArray,
    row_upper: FloatArray,
    integer: BoolArray | None = None,
) -> highspy.HighsLp:
    """Return a maximisation ``HighsLp`` (zero costs) from column bounds and row triplets."""
    rows, cols, vals = triplets
    start, index, coef = _csc(rows, cols, vals, n_col)
    lp = highspy.HighsLp()
    lp.num_col_ = n_col
    lp.num_row_ = int(row_lower.size)
    lp.col_cost_ = np.zeros(n_col)
    lp.col_lower_ = lower
    lp.col_upper_ = upper
    lp.row_lower_ = row_lower
    lp.row_upper_ = row_upper
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.num_col_ = n_col
    lp.a_matrix_.num_row_ = int(row_lower.size)
    lp.a_matrix_.start_ = start
    lp.a_matrix_.index_ = index
    lp.a_matrix_.value_ = coef
    if integer is not None:
        lp.integrality_ = [
            highspy.HighsVarType.kInteger if t else highspy.HighsVarType.kContinuous
            for t in integer
        ]
    lp.sense_ = highspy.ObjSense.kMaximize
    return lp

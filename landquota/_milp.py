"""Private: the lexicographic MILP behind ``allocate(..., mode="optimal")``.

The model has two independent parts that share only the objective stages:

* the quota part: one fraction column per fixed-site project (binary when the
  project cannot be phased, semicontinuous ``{0} ∪ [m, u]`` as a binary plus a
  continuous column otherwise) under four resource rows (new quota = plan +
  linkage surplus, and the three compensation dimensions of R4);
* the stock part: one binary per not-fixed project (matched or not) and a
  compressed flow network that proves the matched set can be given distinct
  parcels.  Parcels of one planned use are sorted by area and chained, so a
  project reaches every parcel at least as large as its demand through one arc
  per compatible use instead of one arc per parcel (O(projects + parcels)
  columns instead of O(projects × parcels)).  With integral supplies the flow
  polytope has integral vertices, so only the project binaries need be integer.

Everything is built as one column-wise sparse matrix from NumPy triplets (no
row-by-row API calls) and solved with HiGHS in stages: one stage per level
(R18: national first) maximising the sum of ``score × fraction`` with earlier
stages held at their optimum (minus a relative tolerance of 1e-9; each stage is
solved to a relative MIP gap of 1e-6), then a final tie-break stage maximising ``Σ w_i × fraction_i`` with ``w`` decreasing in
project-id order.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass

import highspy
import numpy as np
import numpy.typing as npt

__all__ = ["LexInput", "LexOutput", "solve_lexicographic"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: Relative slack of a stage row: sum >= optimum - STAGE_TOL * max(1, |optimum|).
#: Kept at the solver's feasibility tolerance: a looser slack lets a later stage buy
#: a sliver of a continuous (phased) project with a sliver of an earlier level.
STAGE_TOL = 1e-9
#: Relative MIP gap of every stage.  Proving the last 1e-7 of a 5,000-item level
#: stage took HiGHS 45 s of strong branching at the root for no practical gain.
MIP_GAP = 1e-6


@dataclass(frozen=True)
class LexInput:
    """Arrays describing one optimal-mode problem (all already prefiltered).

    Quota items (``q_*``, length k) need ``need[i, d]`` of resource ``d`` per unit
    fraction; fraction 0 or in ``[q_min, q_upper]`` when phaseable, 0 or 1
    otherwise.  Stock items (``s_*``, length s) are not-fixed projects; edge ``e``
    lets stock item ``edge_item[e]`` enter chain node ``edge_node[e]``; nodes of
    one planned use are consecutive, sorted by area, and ``node_class`` says which
    chain a node belongs to.
    """

    need: FloatArray  # (k, 4)
    cap: FloatArray  # (4,)
    q_level: IntArray
    q_score: FloatArray
    q_weight: FloatArray
    q_phaseable: BoolArray
    q_min: FloatArray
    q_upper: FloatArray
    s_level: IntArray
    s_score: FloatArray
    s_weight: FloatArray
    edge_item: IntArray
    edge_node: IntArray
    node_class: IntArray
    n_levels: int = 4


@dataclass(frozen=True)
class LexOutput:
    """Solution of :func:`solve_lexicographic`."""

    q_fraction: FloatArray
    s_selected: BoolArray
    stage_values: tuple[float, ...]
    proven_optimal: bool
    status: str


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


def solve_lexicographic(data: LexInput, *, time_limit: float | None = None) -> LexOutput:
    """Solve the staged problem; see the module docstring."""
    k = int(data.need.shape[0])
    s = int(data.s_level.shape[0])
    e = int(data.edge_item.shape[0])
    n_node = int(data.node_class.shape[0])
    semi = np.flatnonzero(data.q_phaseable & (data.q_min > 0))
    n_semi = int(semi.size)
    # chain arcs: node v -> v+1 within one planned use
    same_next = np.zeros(n_node, dtype=bool)
    if n_node > 1:
        same_next[:-1] = data.node_class[:-1] == data.node_class[1:]
    arc_from = np.flatnonzero(same_next)
    n_arc = int(arc_from.size)

    # column layout
    c_f = 0
    c_z = c_f + k
    c_y = c_z + n_semi
    c_x = c_y + s
    c_g = c_x + e
    c_u = c_g + n_arc
    n_col = c_u + n_node

    if n_col == 0:
        return LexOutput(
            q_fraction=np.zeros(0),
            s_selected=np.zeros(0, dtype=bool),
            stage_values=(),
            proven_optimal=True,
            status="optimal",
        )
    lower = np.zeros(n_col)
    upper = np.ones(n_col)
    upper[c_f : c_f + k] = np.where(data.q_phaseable, data.q_upper, 1.0)
    upper[c_g : c_g + n_arc] = float(max(s, 1))
    integrality = np.zeros(n_col, dtype=np.int64)  # 0 continuous, 1 integer
    integrality[c_f : c_f + k] = (~data.q_phaseable).astype(np.int64)
    integrality[c_z : c_z + n_semi] = 1
    integrality[c_y : c_y + s] = 1

    r_parts: list[IntArray] = []
    c_parts: list[IntArray] = []
    v_parts: list[FloatArray] = []
    row_lo: list[FloatArray] = []
    row_hi: list[FloatArray] = []
    n_row = 0

    # resource rows (R4, R5): sum_i need[i, d] * f_i <= cap[d]
    used_dims = [d for d in range(4) if k and np.any(data.need[:, d] > 0)]
    for d in used_dims:
        nz = np.flatnonzero(data.need[:, d] > 0)
        r_parts.append(np.full(nz.size, n_row, dtype=np.int64))
        c_parts.append(c_f + nz.astype(np.int64))
        v_parts.append(data.need[nz, d])
        row_lo.append(np.array([-np.inf]))
        row_hi.append(np.array([data.cap[d]]))
        n_row += 1

    # semicontinuous links: f - m z >= 0 and f - u z <= 0
    if n_semi:
        ra = n_row + np.arange(n_semi, dtype=np.int64)
        rb = ra + n_semi
        zc = c_z + np.arange(n_semi, dtype=np.int64)
        fc = c_f + semi.astype(np.int64)
        r_parts += [ra, ra, rb, rb]
        c_parts += [fc, zc, fc, zc]
        v_parts += [np.ones(n_semi), -data.q_min[semi], np.ones(n_semi), -data.q_upper[semi]]
        row_lo += [np.zeros(n_semi), np.full(n_semi, -np.inf)]
        row_hi += [np.full(n_semi, np.inf), np.zeros(n_semi)]
        n_row += 2 * n_semi

    # stock: y_j - sum_e x_e = 0; node balance: in(x) + g_prev - g_next - u_v = 0
    if s:
        ry = n_row + np.arange(s, dtype=np.int64)
        r_parts += [ry, n_row + data.edge_item]
        c_parts += [c_y + np.arange(s, dtype=np.int64), c_x + np.arange(e, dtype=np.int64)]
        v_parts += [np.ones(s), -np.ones(e)]
        row_lo.append(np.zeros(s))
        row_hi.append(np.zeros(s))
        n_row += s
    if n_node:
        base = n_row
        g_cols = c_g + np.arange(n_arc, dtype=np.int64)
        r_parts += [
            base + data.edge_node,
            base + arc_from + 1,
            base + arc_from,
            base + np.arange(n_node, dtype=np.int64),
        ]
        c_parts += [
            c_x + np.arange(e, dtype=np.int64),
            g_cols,
            g_cols,
            c_u + np.arange(n_node, dtype=np.int64),
        ]
        v_parts += [np.ones(e), np.ones(n_arc), -np.ones(n_arc), -np.ones(n_node)]
        row_lo.append(np.zeros(n_node))
        row_hi.append(np.zeros(n_node))
        n_row += n_node

    rows = np.concatenate(r_parts) if r_parts else np.zeros(0, dtype=np.int64)
    cols = np.concatenate(c_parts) if c_parts else np.zeros(0, dtype=np.int64)
    vals = np.concatenate(v_parts) if v_parts else np.zeros(0)
    start, index, coef = _csc(rows, cols, vals, n_col)

    lp = highspy.HighsLp()
    lp.num_col_ = n_col
    lp.num_row_ = n_row
    lp.col_cost_ = np.zeros(n_col)
    lp.col_lower_ = lower
    lp.col_upper_ = upper
    lp.row_lower_ = np.concatenate(row_lo) if row_lo else np.zeros(0)
    lp.row_upper_ = np.concatenate(row_hi) if row_hi else np.zeros(0)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.num_col_ = n_col
    lp.a_matrix_.num_row_ = n_row
    lp.a_matrix_.start_ = start
    lp.a_matrix_.index_ = index
    lp.a_matrix_.value_ = coef
    lp.integrality_ = [
        highspy.HighsVarType.kInteger if t else highspy.HighsVarType.kContinuous
        for t in integrality
    ]
    lp.sense_ = highspy.ObjSense.kMaximize

    h = _new_highs()
    h.setOptionValue("mip_rel_gap", MIP_GAP)
    h.setOptionValue("mip_abs_gap", 1e-9)  # the relative gap governs
    h.setOptionValue("primal_feasibility_tolerance", 1e-9)
    # NB: do not tighten mip_feasibility_tolerance (to 1e-9, say): with HiGHS 1.16
    # presolve that returned a suboptimal point reported as optimal on a 5-column
    # semicontinuous model (tests/test_allocation_properties.py found it).
    h.setOptionValue("random_seed", 0)
    h.passModel(lp)

    # objective columns: the fraction of every quota item and the y of every stock item
    obj_cols = np.concatenate(
        (c_f + np.arange(k, dtype=np.int64), c_y + np.arange(s, dtype=np.int64))
    ).astype(np.int32)
    obj_level = np.concatenate((data.q_level, data.s_level))
    obj_score = np.concatenate((data.q_score, data.s_score))
    obj_weight = np.concatenate((data.q_weight, data.s_weight))
    # columns whose upper bound a level stage closes: f, z and y of lower levels
    gate_cols = np.concatenate(
        (
            c_f + np.arange(k, dtype=np.int64),
            c_z + np.arange(n_semi, dtype=np.int64),
            c_y + np.arange(s, dtype=np.int64),
        )
    ).astype(np.int32)
    gate_level = np.concatenate((data.q_level, data.q_level[semi], data.s_level))
    gate_upper = upper[gate_cols]
    gate_lower = lower[gate_cols]

    deadline = math.inf if time_limit is None else time.monotonic() + time_limit
    proven = True
    status = "optimal"
    stage_values: list[float] = []
    solution: FloatArray = np.zeros(n_col)

    def run_stage(costs: FloatArray) -> float | None:
        nonlocal proven, status, solution
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            proven = False
            status = "time_limit"
            return None
        h.setOptionValue("time_limit", float(remaining) if math.isfinite(remaining) else math.inf)
        h.changeColsCost(obj_cols.size, obj_cols, costs)
        # No warm start from the previous stage on purpose: with HiGHS 1.16 a start
        # given by setSolution made presolve return suboptimal points reported as
        # optimal (found by the brute-force tests).
        h.run()
        model_status = h.getModelStatus()
        info = h.getInfo()
        has_solution = info.primal_solution_status == 2  # kSolutionStatusFeasible
        if model_status != highspy.HighsModelStatus.kOptimal:
            proven = False
            status = h.modelStatusToString(model_status).lower().replace(" ", "_")
            if not has_solution:
                return None
        solution = np.asarray(h.getSolution().col_value, dtype=np.float64)
        return float(np.dot(costs, solution[obj_cols]))

    for level in range(data.n_levels):
        mask = (obj_level == level) & (obj_score > 0)
        if not mask.any():
            stage_values.append(0.0)
            continue
        open_ = gate_level <= level
        h.changeColsBounds(gate_cols.size, gate_cols, gate_lower, np.where(open_, gate_upper, 0.0))
        value = run_stage(np.where(obj_level == level, obj_score, 0.0))
        if value is None:
            break
        stage_values.append(value)
        # the row is normalised by the optimum so that the solver's absolute
        # feasibility tolerance acts relative to it
        scale = max(1.0, abs(value))
        idx = obj_cols[mask]
        h.addRow((value / scale) - STAGE_TOL, math.inf, int(idx.size), idx, obj_score[mask] / scale)
    else:
        h.changeColsBounds(gate_cols.size, gate_cols, gate_lower, gate_upper)
        value = run_stage(obj_weight.astype(np.float64))
        if value is not None:
            stage_values.append(value)

    q_fraction = np.clip(solution[c_f : c_f + k], 0.0, 1.0)
    if n_semi:
        # a semicontinuous item is on only when its binary is
        on = solution[c_z : c_z + n_semi] > 0.5
        q_fraction[semi[~on]] = 0.0
    s_selected = solution[c_y : c_y + s] > 0.5
    return LexOutput(
        q_fraction=q_fraction,
        s_selected=s_selected,
        stage_values=tuple(stage_values),
        proven_optimal=proven,
        status=status,
    )

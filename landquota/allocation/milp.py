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
(R18: national first) maximising the sum of ``score × fraction`` with the earlier
stages held at the value their point reached (:data:`HOLD_MARGINS`; each stage to a
relative MIP gap of :data:`MIP_GAP`), then the R18 tie-break: the items' values in
R18 order (level, score descending, project id) made lexicographically largest by
settling the items one by one (:func:`_tie_break`), never by a weighted sum.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import highspy
import numpy as np
import numpy.typing as npt

__all__ = ["LexInput", "LexOutput", "solve_lexicographic"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: Feasibility tolerances given to HiGHS (primal rows, and integrality/rows of MIP
#: points).  Hold rows are normalised by their value, so on them they are relative.
#: HiGHS's defaults (1e-7, 1e-6) let a MIP point sit 1e-6 below a hold row, which is
#: what made a later stage "infeasible" (issue 16).
PRIMAL_TOL = 1e-10
#: Margins of a stage hold, relative: ``Σ score × x >= value − margin × max(1, |value|)``.
#: ``value`` is what the solver's own point of the stage reached (never more than that
#: point made exact reaches), so that point satisfies its hold whatever the margin:
#: the first margin is 0.  A positive margin is not free: a later stage spends it
#: (the tests measured a city project buying a 1e-9 sliver of a national one with a
#: 1e-9 margin).  A numerical failure ("infeasible" although the previous point
#: satisfies every row) is retried without presolve from the previous point, and
#: only then with the looser margins, which the run's status reports.
HOLD_MARGINS = (0.0, 1e-9, 1e-7, 1e-5)
#: Relative MIP gap of every stage.
MIP_GAP = 1e-9
#: A tie-break probe must raise a fraction by more than this to count.
FRACTION_TOL = 1e-9
#: Items at 0 probed together in the tie-break (see :func:`_tie_break`).
_BLOCK = 256


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
    q_rank: IntArray
    q_phaseable: BoolArray
    q_min: FloatArray
    q_upper: FloatArray
    s_level: IntArray
    s_score: FloatArray
    s_rank: IntArray
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
    probes: int = 0


@dataclass
class _State:
    """What the stages learn as they go."""

    proven: bool = True
    status: str = "optimal"
    hold_index: int = 0
    relaxed: list[str] = field(default_factory=list)
    probes: int = 0
    presolve_off: int = 0
    started: int = 0
    solution: FloatArray = field(default_factory=lambda: np.zeros(0))


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
    h.setOptionValue("mip_abs_gap", 1e-12)  # the relative gap governs
    h.setOptionValue("primal_feasibility_tolerance", PRIMAL_TOL)
    h.setOptionValue("mip_feasibility_tolerance", PRIMAL_TOL)
    # NB: a tight mip_feasibility_tolerance once made HiGHS 1.16's presolve return a
    # suboptimal point reported as optimal (a 5-column semicontinuous model); the
    # tie-break probes run without presolve, and tests/test_allocation_exact.py
    # checks 500 instances against an exhaustive optimum.
    h.setOptionValue("random_seed", 0)
    h.passModel(lp)

    # objective items: the fraction of every quota item and the y of every stock item
    obj_cols = np.concatenate(
        (c_f + np.arange(k, dtype=np.int64), c_y + np.arange(s, dtype=np.int64))
    ).astype(np.int32)
    obj_level = np.concatenate((data.q_level, data.s_level))
    obj_score = np.concatenate((data.q_score, data.s_score))
    obj_rank = np.concatenate((data.q_rank, data.s_rank))
    obj_upper = upper[obj_cols]
    obj_binary = integrality[obj_cols] == 1
    # the binary z of each semicontinuous item, by item (-1: none)
    z_of = np.full(k + s, -1, dtype=np.int64)
    z_of[semi] = c_z + np.arange(n_semi, dtype=np.int64)
    # columns whose upper bound a level stage closes: f, z and y of lower levels
    gate_cols = np.concatenate(
        (
            c_f + np.arange(k, dtype=np.int64),
            c_z + np.arange(n_semi, dtype=np.int64),
            c_y + np.arange(s, dtype=np.int64),
        )
    ).astype(np.int32)
    gate_level = np.concatenate((data.q_level, data.q_level[semi], data.s_level))
    int_cols = np.flatnonzero(integrality == 1)

    deadline = math.inf if time_limit is None else time.monotonic() + time_limit
    state = _State(solution=np.zeros(n_col))  # all off is feasible

    def clean(x: FloatArray) -> FloatArray:
        """Return the solver's point made exact: integers rounded, an item off when its z is."""
        y = np.clip(x, lower, upper)
        y[int_cols] = np.round(y[int_cols])
        if n_semi:
            off = y[c_z : c_z + n_semi] < 0.5
            y[c_f + semi[off]] = 0.0
        return y

    def level_values(x: FloatArray) -> FloatArray:
        vals = obj_score * x[obj_cols]
        return np.array(
            [math.fsum(vals[obj_level == lv]) for lv in range(data.n_levels)], dtype=np.float64
        )

    holds: list[tuple[int, float, float]] = []  # (row, value, scale)

    def set_holds(margin: float) -> None:
        for row, value, scale in holds:
            h.changeRowBounds(row, value / scale - margin, math.inf)

    def solve_once(
        costs: FloatArray, *, presolve: bool, start: FloatArray | None = None
    ) -> tuple[str, FloatArray | None]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return "time_limit", None
        h.setOptionValue("time_limit", float(remaining) if math.isfinite(remaining) else math.inf)
        h.setOptionValue("presolve", "on" if presolve else "off")
        h.changeColsCost(obj_cols.size, obj_cols, costs)
        # No warm start from the previous stage by default: with HiGHS 1.16 a start
        # given by setSolution made presolve return suboptimal points reported as
        # optimal (found by the brute-force tests).  Only the last retry, without
        # presolve, starts from the previous point (which satisfies every row).
        if start is not None:
            sol = highspy.HighsSolution()
            sol.col_value = list(start)
            sol.value_valid = True
            h.setSolution(sol)
        h.run()
        model_status = h.getModelStatus()
        has_solution = h.getInfo().primal_solution_status == 2  # kSolutionStatusFeasible
        x = np.asarray(h.getSolution().col_value, dtype=np.float64) if has_solution else None
        if model_status == highspy.HighsModelStatus.kOptimal and x is not None:
            return "optimal", x
        if model_status == highspy.HighsModelStatus.kTimeLimit:
            return "time_limit", x
        return h.modelStatusToString(model_status).lower().replace(" ", "_"), None

    def run(costs: FloatArray, *, presolve: bool = True) -> FloatArray | None:
        """Solve with *costs* on the objective items.

        The previous point satisfies every hold and every settled bound, so
        "infeasible" (or any failure without a point) is numerical: solve again
        without presolve (HiGHS 1.16's presolve has reported such models
        infeasible) starting from the previous point, then with looser holds, which
        the run's status reports.
        """
        started = False
        # once presolve has failed on this model it fails again on the next probe:
        # go straight to the retry that works
        presolve = presolve and state.presolve_off == 0
        started = not presolve and state.presolve_off > 0
        while True:
            name, x = solve_once(
                costs, presolve=presolve, start=state.solution if started else None
            )
            if name == "time_limit":
                state.proven = False
                state.status = "time_limit"
                return x
            if name == "optimal" and x is not None:
                return x
            if presolve or not started:
                # HiGHS has reported a model infeasible although the previous point
                # satisfies every row and bound of it: solve it again without presolve,
                # starting from that point (without the start, the same solve failed too
                # and took minutes at 10,000 projects)
                presolve = False
                started = True
                state.presolve_off += 1
                state.started += 1
                continue
            if holds and state.hold_index + 1 < len(HOLD_MARGINS):
                state.hold_index += 1
                state.relaxed.append(name)
                set_holds(HOLD_MARGINS[state.hold_index])
                continue
            state.proven = False
            state.status = name
            return None

    for level in range(data.n_levels):
        mask = (obj_level == level) & (obj_score > 0)
        if not mask.any():
            continue
        open_ = gate_level <= level
        h.changeColsBounds(
            gate_cols.size, gate_cols, lower[gate_cols], np.where(open_, upper[gate_cols], 0.0)
        )
        sol = run(np.where(obj_level == level, obj_score, 0.0))
        if sol is None:
            break
        state.solution = sol
        # held at what the solver's point reaches (so that point satisfies its hold)
        # and never above what the point made exact reaches
        value = float(min(level_values(sol)[level], level_values(clean(sol))[level]))
        # The row is normalised by the optimum so that the margin, and the solver's
        # absolute feasibility tolerance, act relative to it.
        scale = max(1.0, abs(value))
        idx = obj_cols[mask]
        h.addRow(
            value / scale - HOLD_MARGINS[state.hold_index],
            math.inf,
            int(idx.size),
            idx,
            obj_score[mask] / scale,
        )
        holds.append((h.getNumRow() - 1, value, scale))
    else:
        h.changeColsBounds(gate_cols.size, gate_cols, lower[gate_cols], upper[gate_cols])
        _tie_break(
            h,
            state,
            run,
            data,
            obj_cols=obj_cols,
            obj_rank=obj_rank,
            obj_upper=obj_upper,
            obj_binary=obj_binary,
            z_of=z_of,
            deadline=deadline,
        )
    solution = clean(state.solution)
    stage_values = tuple(float(v) for v in level_values(solution))
    status = state.status
    if state.relaxed and status == "optimal":
        status = (
            f"optimal (stage holds relaxed to {HOLD_MARGINS[state.hold_index]:g} after HiGHS "
            f"reported {', '.join(dict.fromkeys(state.relaxed))})"
        )
        state.proven = False

    q_fraction = np.clip(solution[c_f : c_f + k], 0.0, 1.0)
    if n_semi:
        # a semicontinuous item is on only when its binary is
        on = solution[c_z : c_z + n_semi] > 0.5
        q_fraction[semi[~on]] = 0.0
    s_selected = solution[c_y : c_y + s] > 0.5
    return LexOutput(
        q_fraction=q_fraction,
        s_selected=s_selected,
        stage_values=stage_values,
        proven_optimal=state.proven,
        status=status,
        probes=state.probes,
    )


def _tie_break(
    h: highspy.Highs,
    state: _State,
    run: Callable[..., FloatArray | None],
    data: LexInput,
    *,
    obj_cols: npt.NDArray[np.int32],
    obj_rank: IntArray,
    obj_upper: FloatArray,
    obj_binary: BoolArray,
    z_of: IntArray,
    deadline: float,
) -> None:
    """Settle the items lexicographically largest in R18 order among the level optima.

    R18 exactly: level, then score descending, then project id.  Items are settled
    one by one in R18 order, each fixed at its value so that no later item can be
    bought with it.  An item at its upper bound, or one that the resources left by
    the items already settled cannot raise, is settled where it is.  Otherwise the
    model is solved for its largest value with every hold and every settled item in
    place (a *probe*).  Items at 0 go in windows: one solve maximising the sum of
    the window's zeros (everything not yet settled free) settles the whole window
    when no zero rises — more freedom than the item's turn allows could not raise
    one, so none can rise — and otherwise the first item is probed alone.  A
    weighted sum of the items cannot do this: it can trade one project for two.
    """
    k = int(data.need.shape[0])
    used = np.zeros(4)
    order = [int(i) for i in np.argsort(obj_rank, kind="stable")]

    def settle(idx: int, v: float) -> None:
        col = int(obj_cols[idx])
        ub = float(obj_upper[idx])
        if obj_binary[idx]:
            v = float(round(v))
            h.changeColBounds(col, v, v)
        else:
            h.changeColBounds(col, max(0.0, v - FRACTION_TOL), min(ub, v + FRACTION_TOL))
            if z_of[idx] >= 0:
                on = 1.0 if v > 0 else 0.0
                h.changeColBounds(int(z_of[idx]), on, on)
        if idx < k:
            used[:] += data.need[idx] * v

    def can_rise(idx: int) -> bool:
        v = float(state.solution[int(obj_cols[idx])])
        ub = float(obj_upper[idx])
        if v >= ub - FRACTION_TOL:
            return False
        if idx >= k:
            return True
        need = data.need[idx]
        room = data.cap - used
        on = need > 0
        if obj_binary[idx]:
            slack = PRIMAL_TOL * np.maximum(1.0, data.cap[on])
            return bool(np.all(need[on] <= room[on] + slack))
        if not on.any():
            return True
        fmax = min(ub, float(np.min(np.maximum(room[on], 0.0) / need[on])))
        least = v if v > 0 else float(data.q_min[idx])
        return fmax > v + FRACTION_TOL and fmax >= least - FRACTION_TOL

    def maximise(items: list[int]) -> float | None:
        """Solve for the largest (weighted) sum of *items*; keep the point; None on failure.

        The weights fall from 2 to 1 along the items (R18 order), so that of the items
        that can rise the solver favours the earlier ones; any positive sum still
        means that some item can rise.
        """
        state.probes += 1
        costs = np.zeros(obj_cols.size)
        costs[items] = 2.0 - np.arange(len(items)) / max(len(items), 1)
        sol = run(costs)  # presolve first; the ladder in run() turns it off on a failure
        if sol is None:
            return None
        state.solution = sol
        return float(np.sum(sol[obj_cols[items]]))

    pos = 0
    done: set[int] = set()  # zeros settled ahead of their turn by a bisection
    while pos < len(order):
        if time.monotonic() > deadline:
            state.proven = False
            state.status = "time_limit"
            return
        idx = order[pos]
        if idx in done:
            pos += 1
            continue
        v = float(state.solution[int(obj_cols[idx])])
        if not can_rise(idx):
            settle(idx, v)
            pos += 1
            continue
        if v > FRACTION_TOL:  # on, below its bound: probe it alone
            got = maximise([idx])
            if got is None:
                return
            settle(idx, max(v, float(state.solution[int(obj_cols[idx])])))
            pos += 1
            continue
        # A window of items from here: the items at 0 that the room allows to rise
        # (up to _BLOCK of them), passing over items at their bound or held by the
        # room.  One solve maximising the zeros' sum, everything after the settled
        # items free: if no zero rises, none can (the freedom only helps), so the
        # zeros stay at 0 and the others are at their bound: the window is settled.
        window = [idx]
        zeros = [idx]
        nxt = pos + 1
        while nxt < len(order) and len(zeros) < _BLOCK:
            j = order[nxt]
            if j in done:
                window.append(j)
                nxt += 1
                continue
            vj = float(state.solution[int(obj_cols[j])])
            if can_rise(j):
                if vj > FRACTION_TOL:
                    break  # a partial item: probed alone, in its turn
                zeros.append(j)
            window.append(j)
            nxt += 1
        before = state.solution
        got = maximise(zeros)
        if got is None:
            return
        if not any(state.solution[int(obj_cols[j])] > FRACTION_TOL for j in zeros):
            # the point before the solve has the zeros at 0 and the others where they
            # were (at their bound): keep it, the new one may have moved them for nothing
            state.solution = before
            zero_set = set(zeros)
            for j in window:
                if j not in done:
                    settle(j, 0.0 if j in zero_set else float(before[int(obj_cols[j])]))
            pos += len(window)
            continue
        # Some zero can rise; the first that can is at or before the first that did.
        # Bisect the zeros up to it: a half none of whose zeros rises (everything
        # else not settled free) stays at 0 for good; the loop then goes on in R18
        # order, past the zeros settled here, to the first one that can rise.
        risen = next(
            n for n, j in enumerate(zeros) if state.solution[int(obj_cols[j])] > FRACTION_TOL
        )
        cand = zeros[: risen + 1]
        while len(cand) > 1:
            half = cand[: len(cand) // 2]
            before = state.solution
            got = maximise(half)
            if got is None:
                return
            if any(state.solution[int(obj_cols[j])] > FRACTION_TOL for j in half):
                cand = half
            else:
                state.solution = before
                for j in half:
                    settle(j, 0.0)
                    done.add(j)
                cand = cand[len(half) :]
        pos += 1 if idx in done else 0
        if idx not in done:
            # the first zero is the candidate itself: probe it alone, in its turn
            got = maximise([idx])
            if got is None:
                return
            settle(idx, float(state.solution[int(obj_cols[idx])]))
            pos += 1

"""Private: the exact lexicographic optimum behind ``allocate(..., mode="optimal")``.

The problem has two parts that share no resource, only the objective stages:

* the **quota part**: one fraction column per fixed-site project (binary when the
  project cannot be phased, semicontinuous ``{0} ∪ [m, u]`` as a binary plus a
  continuous column otherwise) under four resource rows (new quota = plan +
  linkage surplus, and the three compensation dimensions of R4);
* the **stock part**: which not-fixed projects get a parcel.  Parcels of one
  planned use are sorted by area and chained, so a project reaches every parcel at
  least as large as its demand through one arc per compatible use (O(projects +
  parcels) columns instead of O(projects × parcels)).

Because the parts share nothing, the lexicographic optimum of the whole (every
level, then the R18 fraction vector) is the optimum of each part on its own: a
level's total is largest exactly when both parts' shares of it are, and the R18
vector's positions of one part never constrain the other's.  So they are solved
apart (:func:`solve_lexicographic`):

* The stock part is a transversal matroid (the sets of projects that can be
  given distinct parcels).  For a matroid the greedy walk in one order is the
  lexicographic optimum here — projects with a positive score in R18 order (level,
  score descending, id), then the score-0 projects in R18 order — and any weights
  strictly decreasing along that order have that set as their unique maximum
  (Gale; Edmonds).  The chained flow is a network matrix, so its LP has integral
  vertices: **one LP** (:func:`landquota.allocation.matching._solve_stock`) gives
  the exact answer, no stages and no probes.
* The quota part is solved with HiGHS in stages (:class:`_Quota`): one MILP per
  level (R18: national first) maximising ``Σ score × fraction`` with the earlier
  stages held at the value their point reached (:data:`HOLD_MARGINS`; each stage
  to a relative MIP gap of :data:`MIP_GAP`), then the R18 tie-break: the fractions
  in R18 order made lexicographically largest by settling the items one by one,
  never by a weighted sum.  Before and after every level stage, its LP relaxation
  bounds what each item can reach (reduced costs, :meth:`_Quota.relax`): what the
  bounds decide is fixed, and an item they keep where it is needs no probe solve.

Everything is built as one column-wise sparse matrix from NumPy triplets (no
row-by-row API calls, :mod:`landquota.allocation.highs`).  The resource rows are scaled by their balance (at most
:data:`ROW_SCALE_MAX`), so that the feasibility tolerance means the same on a pool
of 10 m² and one of 10⁸ m².
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import highspy
import numpy as np

from landquota.allocation.highs import BoolArray, FloatArray, IntArray, _lp, _new_highs
from landquota.allocation.matching import _solve_stock

__all__ = ["LexInput", "LexOutput", "solve_lexicographic"]

#: Feasibility tolerances given to HiGHS (primal rows, and integrality/rows of MIP
#: points).  Resource rows are scaled by their balance and hold rows by their value,
#: so on them these are relative.  HiGHS's defaults (1e-7, 1e-6) let a MIP point sit
#: 1e-6 below a hold row, which is what made a later stage "infeasible" (issue 16).
PRIMAL_TOL = 1e-10
#: Largest scale of a resource row, m² (kg): the row ``Σ need × x <= balance`` is
#: divided by ``min(balance, ROW_SCALE_MAX)``.  Unscaled, 1e-10 on a pool of 10⁸ m²
#: asks for 18 significant digits: HiGHS spent minutes per stage and returned points
#: below the optimum as "optimal" (bench_allocate, 1,000 projects, seed 6: a city
#: level of 10,002 where greedy reaches 13,602).  Capped, 1e-10 of the scale is at
#: most 0.005 m², half a hundredth, so a set of whole projects that overdraws a pool
#: by one hundredth is still refused (tests/test_allocation_scale.py).
ROW_SCALE_MAX = 5e7
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
#: Safety factor on the solver's tolerances when a reduced-cost bound is trusted
#: (:meth:`_Quota.relax`): the bound must hold for any point HiGHS accepts.
_BOUND_SAFETY = 100.0
#: Items at 0 probed together in the tie-break (see :meth:`_Quota.tie_break`).
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


def solve_lexicographic(data: LexInput, *, time_limit: float | None = None) -> LexOutput:
    """Solve both parts; see the module docstring."""
    deadline = math.inf if time_limit is None else time.monotonic() + time_limit
    s_selected = _solve_stock(
        data.s_score, data.s_rank, data.edge_item, data.edge_node, data.node_class
    )
    quota = _Quota(data, deadline)
    quota.solve()
    state = quota.state
    q_fraction = quota.fractions()
    values = np.zeros(data.n_levels)
    for lv in range(data.n_levels):
        q_terms = data.q_score[data.q_level == lv] * q_fraction[data.q_level == lv]
        s_terms = data.s_score[(data.s_level == lv) & s_selected]
        values[lv] = math.fsum([*q_terms.tolist(), *s_terms.tolist()])
    status = state.status
    if state.relaxed and status == "optimal":
        status = (
            f"optimal (stage holds relaxed to {HOLD_MARGINS[state.hold_index]:g} after HiGHS "
            f"reported {', '.join(dict.fromkeys(state.relaxed))})"
        )
        state.proven = False
    return LexOutput(
        q_fraction=q_fraction,
        s_selected=s_selected,
        stage_values=tuple(float(v) for v in values),
        proven_optimal=state.proven,
        status=status,
        probes=state.probes,
    )


# ------------------------------------------------------------------ the quota part


class _Quota:
    """The quota part: level stages, then the R18 tie-break, on one HiGHS model.

    Columns: ``f`` per item (its fraction), then ``z`` per semicontinuous item (on
    or off; ``m z <= f <= u z``).
    """

    def __init__(self, data: LexInput, deadline: float) -> None:
        self.data = data
        self.deadline = deadline
        k = self.k = int(data.need.shape[0])
        self.semi = semi = np.flatnonzero(data.q_phaseable & (data.q_min > 0))
        n_semi = self.n_semi = int(semi.size)
        self.n_col = n_col = k + n_semi
        self.state = _State(solution=np.zeros(n_col))  # all off is feasible
        self.holds: list[tuple[int, int, float, float]] = []  # (level, row, value, scale)
        self.finished = False
        self.lower = np.zeros(n_col)
        self.upper = np.ones(n_col)
        self.upper[:k] = np.where(data.q_phaseable, data.q_upper, 1.0)
        self.binary = np.zeros(n_col, dtype=bool)
        self.binary[:k] = ~data.q_phaseable
        self.binary[k:] = True
        # the binary z of each semicontinuous item, by item (-1: none)
        self.z_of = np.full(k, -1, dtype=np.int64)
        self.z_of[semi] = k + np.arange(n_semi, dtype=np.int64)
        # the resource rows, scaled by their balance (see ROW_SCALE_MAX)
        self.res_dims = [d for d in range(4) if k and np.any(data.need[:, d] > 0)]
        self.row_scale = np.array(
            [min(max(float(data.cap[d]), 1.0), ROW_SCALE_MAX) for d in self.res_dims]
        )
        self.a_res = (
            data.need[:, self.res_dims] / self.row_scale if k else np.zeros((0, 0))
        )  # (k, rows)
        self.b_res = np.array([data.cap[d] for d in self.res_dims]) / self.row_scale
        self.h: highspy.Highs | None = None
        self.hl: highspy.Highs | None = None  # the stages' LP relaxations (relax)
        # bounds of each fraction on the level-optimal face so far (relax)
        self.face_ub = self.upper[:k].copy()
        self.face_lb = np.zeros(k)

    # -- the model

    def _resource_triplets(self) -> tuple[list[IntArray], list[IntArray], list[FloatArray]]:
        r_parts: list[IntArray] = []
        c_parts: list[IntArray] = []
        v_parts: list[FloatArray] = []
        for row in range(len(self.res_dims)):
            nz = np.flatnonzero(self.a_res[:, row] > 0)
            r_parts.append(np.full(nz.size, row, dtype=np.int64))
            c_parts.append(nz.astype(np.int64))
            v_parts.append(self.a_res[nz, row])
        return r_parts, c_parts, v_parts

    def _build(self) -> highspy.Highs:
        data, k, semi, n_semi = self.data, self.k, self.semi, self.n_semi
        r_parts, c_parts, v_parts = self._resource_triplets()
        n_res = len(self.res_dims)
        row_lo = [np.full(n_res, -np.inf)]
        row_hi = [self.b_res]
        # semicontinuous links: f - m z >= 0 and f - u z <= 0
        if n_semi:
            ra = n_res + np.arange(n_semi, dtype=np.int64)
            rb = ra + n_semi
            zc = k + np.arange(n_semi, dtype=np.int64)
            fc = semi.astype(np.int64)
            r_parts += [ra, ra, rb, rb]
            c_parts += [fc, zc, fc, zc]
            v_parts += [np.ones(n_semi), -data.q_min[semi], np.ones(n_semi), -data.q_upper[semi]]
            row_lo += [np.zeros(n_semi), np.full(n_semi, -np.inf)]
            row_hi += [np.full(n_semi, np.inf), np.zeros(n_semi)]
        triplets = (
            np.concatenate(r_parts) if r_parts else np.zeros(0, dtype=np.int64),
            np.concatenate(c_parts) if c_parts else np.zeros(0, dtype=np.int64),
            np.concatenate(v_parts) if v_parts else np.zeros(0),
        )
        lp = _lp(
            self.n_col,
            self.lower,
            self.upper,
            triplets,
            np.concatenate(row_lo),
            np.concatenate(row_hi),
            integer=self.binary,
        )
        h = _new_highs()
        h.setOptionValue("mip_rel_gap", MIP_GAP)
        h.setOptionValue("mip_abs_gap", 1e-12)  # the relative gap governs
        h.setOptionValue("primal_feasibility_tolerance", PRIMAL_TOL)
        h.setOptionValue("mip_feasibility_tolerance", PRIMAL_TOL)
        # NB: a tight mip_feasibility_tolerance once made HiGHS 1.16's presolve return a
        # suboptimal point reported as optimal (a 5-column semicontinuous model); the
        # retry ladder in run() turns presolve off after a failure, and
        # tests/test_allocation_exact.py checks 500 instances against an exhaustive
        # optimum.
        h.setOptionValue("random_seed", 0)
        h.passModel(lp)
        return h

    def clean(self, x: FloatArray) -> FloatArray:
        """Return the solver's point made exact: integers rounded, an item off when its z is."""
        y = np.clip(x, self.lower, self.upper)
        y[self.binary] = np.round(y[self.binary])
        if self.n_semi:
            off = y[self.k :] < 0.5
            y[self.semi[off]] = 0.0
        return y

    def fractions(self) -> FloatArray:
        """Every item's fraction at the final point (a semicontinuous item only when on)."""
        return np.clip(self.clean(self.state.solution)[: self.k], 0.0, 1.0)

    def level_values(self, x: FloatArray) -> FloatArray:
        data = self.data
        vals = data.q_score * x[: self.k]
        return np.array(
            [math.fsum(vals[data.q_level == lv]) for lv in range(data.n_levels)], dtype=np.float64
        )

    # -- solving

    def _set_holds(self, margin: float) -> None:
        assert self.h is not None
        for _, row, value, scale in self.holds:
            self.h.changeRowBounds(row, value / scale - margin, math.inf)

    def _solve_once(
        self, costs: FloatArray, *, presolve: bool, start: FloatArray | None = None
    ) -> tuple[str, FloatArray | None]:
        h = self.h
        assert h is not None
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            return "time_limit", None
        h.setOptionValue("time_limit", float(remaining) if math.isfinite(remaining) else math.inf)
        h.setOptionValue("presolve", "on" if presolve else "off")
        h.changeColsCost(self.k, np.arange(self.k, dtype=np.int32), costs)
        # No warm start by default: with HiGHS 1.16 a start given by setSolution made
        # presolve return suboptimal points reported as optimal (found by the
        # brute-force tests).  Only the retry without presolve starts from the
        # previous point (which satisfies every row).
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

    def run(self, costs: FloatArray) -> FloatArray | None:
        """Solve with *costs* on the items' fractions.

        The previous point satisfies every hold and every settled bound, so
        "infeasible" (or any failure without a point) is numerical: solve again
        without presolve (HiGHS 1.16's presolve has reported such models
        infeasible) starting from the previous point, then with looser holds, which
        the run's status reports.
        """
        state = self.state
        # once presolve has failed on this model it fails again on the next probe:
        # go straight to the retry that works
        presolve = state.presolve_off == 0
        started = not presolve
        while True:
            name, x = self._solve_once(
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
            if self.holds and state.hold_index + 1 < len(HOLD_MARGINS):
                state.hold_index += 1
                state.relaxed.append(name)
                self._set_holds(HOLD_MARGINS[state.hold_index])
                continue
            state.proven = False
            state.status = name
            return None

    def _gate(self, level: int | None) -> None:
        """Open the items of levels <= *level* (None: all), close the others."""
        assert self.h is not None
        data = self.data
        gate_level = np.concatenate((data.q_level, data.q_level[self.semi]))
        cols = np.arange(self.n_col, dtype=np.int32)
        open_ = np.ones(self.n_col, dtype=bool) if level is None else gate_level <= level
        self.h.changeColsBounds(self.n_col, cols, self.lower, np.where(open_, self.upper, 0.0))

    def solve(self) -> None:
        """Level stages, then the tie-break (nothing to do without items)."""
        if self.k == 0:
            return
        data = self.data
        self.h = self._build()
        state = self.state
        for level in range(data.n_levels):
            mask = (data.q_level == level) & (data.q_score > 0)
            if not mask.any():
                continue
            self._gate(level)
            # before the stage: what the stage's optimum can be, against the value the
            # current point already has (less the MIP gap the solver may stop within)
            before = float(self.level_values(self.clean(state.solution))[level])
            self.relax(level, before - 10 * MIP_GAP * max(1.0, abs(before)), max(1.0, abs(before)))
            sol = self.run(np.where(data.q_level == level, data.q_score, 0.0))
            if sol is None:
                return
            state.solution = sol
            if state.status == "time_limit":
                return
            # held at what the solver's point reaches (so that point satisfies its hold)
            # and never above what the point made exact reaches
            value = float(
                min(self.level_values(sol)[level], self.level_values(self.clean(sol))[level])
            )
            # The row is normalised by the optimum so that the margin, and the solver's
            # absolute feasibility tolerance, act relative to it.
            scale = max(1.0, abs(value))
            idx = np.flatnonzero(mask).astype(np.int32)
            self.h.addRow(
                value / scale - HOLD_MARGINS[state.hold_index],
                math.inf,
                int(idx.size),
                idx,
                data.q_score[mask] / scale,
            )
            self.holds.append((level, self.h.getNumRow() - 1, value, scale))
            # after it: the face, whose points reach the held value
            self.relax(level, value - HOLD_MARGINS[state.hold_index] * scale, scale)
        self._gate(None)
        self.tie_break()

    # -- what the level-optimal face allows

    def relax(self, level: int, floor: float, scale: float) -> None:
        """Bound every item by the LP relaxation of *level*'s stage; fix what that decides.

        Every point of the level-optimal face (and every optimum of *level*'s stage),
        with the items of lower levels switched off (they only use resources), is a
        point of the stage whose level value is at least *floor*: the current
        point's value before the stage is solved (an optimum is at least that), the
        held value after.  For any multipliers λ of the stage's rows with the right
        signs (λ ≥ 0 on a ``<=`` row, λ <= 0 on a ``>=`` row) and reduced costs
        ``r = c − Aᵀλ``, such a point x has ``floor <= B − Σ_i (max over the box of
        r_i y − r_i x_i)`` (weak duality over the items' boxes ``[l_i, u_i]``), so an
        item with ``r_i < 0`` cannot exceed ``l_i + (B − floor) / −r_i`` and one with
        ``r_i > 0`` cannot fall below ``u_i − (B − floor) / r_i``.  λ are the duals of
        the stage's LP relaxation, but the bound holds for any λ: only the arithmetic
        is trusted, with the solver's tolerances (× :data:`_BOUND_SAFETY`) on every
        row it might bend.

        A binary (or the on/off of a semicontinuous item) that the bounds decide is
        fixed in the model: every later solve moves only among such points, so this
        loses nothing and leaves HiGHS a smaller problem.  The bounds also settle
        items in the tie-break without a probe (:meth:`tie_break`).
        """
        data, k = self.data, self.k
        n_res = len(self.res_dims)
        margin = HOLD_MARGINS[self.state.hold_index]
        if time.monotonic() > self.deadline:
            return
        if self.hl is None:
            r_parts, c_parts, v_parts = self._resource_triplets()
            triplets = (
                np.concatenate(r_parts) if r_parts else np.zeros(0, dtype=np.int64),
                np.concatenate(c_parts) if c_parts else np.zeros(0, dtype=np.int64),
                np.concatenate(v_parts) if v_parts else np.zeros(0),
            )
            lp = _lp(
                k,
                np.zeros(k),
                self.upper[:k].copy(),
                triplets,
                np.full(n_res, -np.inf),
                self.b_res.copy(),
            )
            self.hl = _new_highs()
            self.hl.setOptionValue("primal_feasibility_tolerance", PRIMAL_TOL)
            self.hl.setOptionValue("dual_feasibility_tolerance", PRIMAL_TOL)
            self.hl.setOptionValue("random_seed", 0)
            self.hl.passModel(lp)
        hl = self.hl
        # the holds so far are rows of the LP too (every point in question meets them)
        while hl.getNumRow() < n_res + len(self.holds):
            lv, _, value, sc = self.holds[hl.getNumRow() - n_res]
            on_l = (data.q_level == lv) & (data.q_score > 0)
            idx = np.flatnonzero(on_l).astype(np.int32)
            hl.addRow(value / sc - margin, math.inf, int(idx.size), idx, data.q_score[on_l] / sc)
        # the box of each item (a semicontinuous item fixed on ranges over [m, u]);
        # lower levels are off in this stage
        inside = data.q_level <= level
        f_lo = self.lower[:k].copy()
        if self.n_semi:
            on = self.lower[self.k :] >= 0.5
            f_lo[self.semi[on]] = np.maximum(f_lo[self.semi[on]], data.q_min[self.semi[on]])
        lo = np.where(inside, f_lo, 0.0)
        hi = np.where(inside, self.upper[:k], 0.0)
        cols = np.arange(k, dtype=np.int32)
        hl.changeColsBounds(k, cols, lo, hi)
        c = np.where(data.q_level == level, data.q_score, 0.0)
        # scores (up to 10²) over row coefficients of 10⁻³ make duals of 10⁵, where
        # HiGHS's dual simplex stops ("excessive dual values"): solve with the costs
        # divided by the largest, and scale the duals back
        c_scale = max(1.0, float(np.max(c)))
        hl.changeColsCost(k, cols, c / c_scale)
        hl.run()
        if hl.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            return  # no bound from this stage: its items are probed
        lam = np.asarray(hl.getSolution().row_dual, dtype=np.float64) * c_scale
        a_full = np.concatenate(
            [self.a_res]
            + [
                np.where((data.q_level == lv) & (data.q_score > 0), data.q_score / sc, 0.0)[:, None]
                for lv, _, _, sc in self.holds
            ],
            axis=1,
        )  # (k, rows of the LP)
        lam[:n_res] = np.maximum(lam[:n_res], 0.0)  # <= rows
        lam[n_res:] = np.minimum(lam[n_res:], 0.0)  # >= rows (holds)
        rhs = np.concatenate((self.b_res, [v / sc - margin for _, _, v, sc in self.holds]))
        r = c - a_full @ lam
        r_box = np.where(r > 0, r * hi, r * lo)
        b = math.fsum(r_box.tolist()) + math.fsum((lam * rhs).tolist())
        # what any point HiGHS accepts may gain over B: each row bent by its tolerance,
        # each box by its own, the floor by the hold's tolerance, and rounding
        slack_tol = _BOUND_SAFETY * PRIMAL_TOL * (
            float(np.sum(np.abs(lam))) + float(np.sum(np.abs(r[inside]))) + scale
        ) + 1e-12 * (abs(b) + float(np.sum(np.abs(r_box))) + float(np.sum(np.abs(lam * rhs))))
        slack = b - floor + slack_tol
        if not slack >= 0.0:  # pragma: no cover - B below a value a point reached
            return
        with np.errstate(divide="ignore"):
            up = np.where(inside & (r < 0), lo + slack / -r, np.inf)
            down = np.where(inside & (r > 0), hi - slack / r, -np.inf)
        self.face_ub = np.minimum(self.face_ub, up)
        self.face_lb = np.maximum(self.face_lb, down)
        self._fix_decided()

    def _fix_decided(self) -> None:
        """Fix the binaries and the on/off of semicontinuous items the face bounds decide."""
        h = self.h
        assert h is not None
        data, k = self.data, self.k
        x = self.state.solution
        tol = FRACTION_TOL
        least_on = np.where(data.q_phaseable, data.q_min, 1.0)
        decides = self.binary[:k] | (self.z_of >= 0)
        z_lower = np.zeros(k)
        z_lower[self.semi] = self.lower[k:]
        fixed_on = np.where(self.z_of >= 0, z_lower, self.lower[:k]) >= 0.5
        off = decides & (self.face_ub < least_on - tol) & (self.upper[:k] > 0)
        on = decides & (self.face_lb > tol) & ~fixed_on
        # only what the current point (on the face) agrees with: a bound it breaks
        # would be a numerical accident, and is not used
        off &= x[:k] <= tol
        on &= x[:k] >= least_on - tol
        for i in np.flatnonzero(off):
            self.upper[i] = 0.0
            h.changeColBounds(int(i), float(self.lower[i]), 0.0)
            z = int(self.z_of[i])
            if z >= 0:
                self.upper[z] = 0.0
                h.changeColBounds(z, 0.0, 0.0)
        for i in np.flatnonzero(on):
            z = int(self.z_of[i])
            if z >= 0:
                self.lower[z] = 1.0
                h.changeColBounds(z, 1.0, float(self.upper[z]))
            else:
                self.lower[i] = 1.0
                h.changeColBounds(int(i), 1.0, float(self.upper[i]))

    # -- the R18 tie-break

    def tie_break(self) -> None:
        """Settle the items lexicographically largest in R18 order among the level optima.

        R18 exactly: level, then score descending, then project id.  Items are settled
        one by one in R18 order, each fixed at its value so that no later item can be
        bought with it.  An item at its upper bound, one that *face_ub* (the
        level-optimal face, :meth:`relax`) keeps where it is, or one that the
        resources left by the items already settled cannot raise, is settled where it
        is.  Otherwise the model is solved for its largest value with every hold and
        every settled item in place (a *probe*).  Items at 0 go in windows: one solve
        maximising the sum of the window's zeros (everything not yet settled free)
        settles the whole window when no zero rises — more freedom than the item's
        turn allows could not raise one, so none can rise — and otherwise the zeros
        up to the first that rose are bisected.  A weighted sum of the items cannot do
        this: it can trade one project for two.
        """
        h = self.h
        assert h is not None
        data, k, state = self.data, self.k, self.state
        ub_all = self.upper[:k]
        face_ub = self.face_ub
        used = np.zeros(4)
        order = [int(i) for i in np.argsort(data.q_rank, kind="stable")]
        # the least value an item takes when on (binaries 1, semicontinuous q_min)
        least_on = np.where(data.q_phaseable, data.q_min, 1.0)

        def value(idx: int) -> float:
            return float(state.solution[idx])

        def settle(idx: int, v: float) -> None:
            ub = float(ub_all[idx])
            if self.binary[idx]:
                v = float(round(v))
                h.changeColBounds(idx, v, v)
            else:
                h.changeColBounds(idx, max(0.0, v - FRACTION_TOL), min(ub, v + FRACTION_TOL))
                if self.z_of[idx] >= 0:
                    on = 1.0 if v > 0 else 0.0
                    h.changeColBounds(int(self.z_of[idx]), on, on)
            used[:] += data.need[idx] * v

        def can_rise(idx: int) -> bool:
            v = value(idx)
            ub = float(ub_all[idx])
            if v >= ub - FRACTION_TOL:
                return False
            if face_ub[idx] <= v + FRACTION_TOL:
                return False  # the face allows no more
            if v <= FRACTION_TOL and face_ub[idx] < least_on[idx] - FRACTION_TOL:
                return False  # the face keeps it off
            need = data.need[idx]
            room = data.cap - used
            on = need > 0
            if self.binary[idx]:
                slack = PRIMAL_TOL * np.maximum(1.0, data.cap[on])
                return bool(np.all(need[on] <= room[on] + slack))
            if not on.any():
                return True
            fmax = min(ub, float(np.min(np.maximum(room[on], 0.0) / need[on])))
            least = v if v > 0 else float(data.q_min[idx])
            return fmax > v + FRACTION_TOL and fmax >= least - FRACTION_TOL

        def maximise(items: list[int]) -> float | None:
            """Solve for the largest (weighted) sum of *items*; keep the point; None on failure.

            The weights fall from 2 to 1 along the items (R18 order), so that of the
            items that can rise the solver favours the earlier ones; any positive sum
            still means that some item can rise.
            """
            state.probes += 1
            costs = np.zeros(k)
            costs[items] = 2.0 - np.arange(len(items)) / max(len(items), 1)
            sol = self.run(costs)  # presolve first; run() turns it off after a failure
            if sol is None:
                return None
            state.solution = sol
            return float(np.sum(sol[items]))

        pos = 0
        done: set[int] = set()  # zeros settled ahead of their turn by a bisection
        while pos < len(order):
            if time.monotonic() > self.deadline:
                state.proven = False
                state.status = "time_limit"
                return
            idx = order[pos]
            if idx in done:
                pos += 1
                continue
            v = value(idx)
            if not can_rise(idx):
                settle(idx, v)
                pos += 1
                continue
            if v > FRACTION_TOL:  # on, below its bound: probe it alone
                if maximise([idx]) is None:
                    return
                settle(idx, max(v, value(idx)))
                pos += 1
                continue
            # A window of items from here: the items at 0 that can rise (up to _BLOCK
            # of them), passing over items that cannot.  One solve maximising the
            # zeros' sum, everything after the settled items free: if no zero rises,
            # none can (the freedom only helps), so the zeros stay at 0 and the others
            # where they are: the window is settled.
            window = [idx]
            zeros = [idx]
            nxt = pos + 1
            while nxt < len(order) and len(zeros) < _BLOCK:
                j = order[nxt]
                if j in done:
                    window.append(j)
                    nxt += 1
                    continue
                if can_rise(j):
                    if value(j) > FRACTION_TOL:
                        break  # a partial item: probed alone, in its turn
                    zeros.append(j)
                window.append(j)
                nxt += 1
            before = state.solution
            if maximise(zeros) is None:
                return
            if not any(value(j) > FRACTION_TOL for j in zeros):
                # the point before the solve has the zeros at 0 and the others where they
                # were: keep it, the new one may have moved them for nothing
                state.solution = before
                zero_set = set(zeros)
                for j in window:
                    if j not in done:
                        settle(j, 0.0 if j in zero_set else float(before[j]))
                pos += len(window)
                continue
            # Some zero can rise; the first that can is at or before the first that did.
            # Bisect the zeros up to it: a half none of whose zeros rises (everything
            # else not settled free) stays at 0 for good; the loop then goes on in R18
            # order, past the zeros settled here, to the first one that can rise.
            risen = next(n for n, j in enumerate(zeros) if value(j) > FRACTION_TOL)
            cand = zeros[: risen + 1]
            while len(cand) > 1:
                half = cand[: len(cand) // 2]
                before = state.solution
                if maximise(half) is None:
                    return
                if any(value(j) > FRACTION_TOL for j in half):
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
                if maximise([idx]) is None:
                    return
                settle(idx, value(idx))
                pos += 1

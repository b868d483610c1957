"""Private: optimal mode around the MILP — its input, and its point made exact (R6, R18).

:func:`_optimal` builds the arrays of :class:`landquota.allocation.milp.LexInput` from
the validated projects and parcels (quota items with their upper bounds; stock items
entering the chains of parcels sorted by area), solves, and turns the solver's point
into exact fractions: rounded DOWN to the 1e-9 grid, what rounding put in taken back
where it overdraws a pool (:func:`_repair`), and the crumb left in each pool given in
R18 order (:func:`_top_up`).  The parcels are then assigned by
:func:`landquota.allocation.parcels._assign_parcels`.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping

import numpy as np

from landquota.allocation.items import (
    _FRAC_UNIT,
    _P,
    _S,
    _TOL_UNITS,
    _largest_fraction,
    _r18_key,
)
from landquota.allocation.parcels import _assign_parcels


def _optimal(
    ps: list[_P], parcels: list[_S], bal: dict[str, int], time_limit: float | None
) -> tuple[dict[int, int], dict[int, int], bool, str]:
    from landquota.allocation.milp import LexInput, solve_lexicographic

    cap = [
        bal["new_construction"] + bal["linkage_surplus"],
        bal["comp_area"],
        bal["comp_paddy"],
        bal["comp_grain"],
    ]
    frac: dict[int, int] = {}
    q_items: list[tuple[_P, int]] = []  # (project, upper bound in 1e-9 units)
    for p in ps:
        if p.blocked or not p.fixed:
            continue
        if not any(p.need):
            frac[p.i] = _FRAC_UNIT  # needs nothing: always funded
            continue
        upper = _largest_fraction(p.need, cap)
        if upper < p.min_q or upper == 0:
            frac[p.i] = 0  # cannot fit even alone in the full pools
            continue
        q_items.append((p, upper))
    s_items = [p for p in ps if not p.blocked and not p.fixed and p.uses]

    # chain nodes: parcels of one planned use sorted by (area, id)
    node_list: list[_S] = sorted(
        (s for s in parcels if s.use is not None), key=lambda s: (s.use or "", s.area, s.sid)
    )
    class_of: dict[str, tuple[int, list[int]]] = {}
    node_class = np.zeros(len(node_list), dtype=np.int64)
    first_node: dict[str, int] = {}
    for v, s in enumerate(node_list):
        use = s.use or ""
        if use not in class_of:
            class_of[use] = (len(class_of), [])
            first_node[use] = v
        cid, areas = class_of[use]
        node_class[v] = cid
        areas.append(s.area)
    e_item: list[int] = []
    e_node: list[int] = []
    kept: list[_P] = []
    for p in s_items:
        targets = []
        for u in sorted(p.uses):
            if u not in class_of:
                continue
            areas = class_of[u][1]
            k = bisect.bisect_left(areas, p.demand)
            if k < len(areas):
                targets.append(first_node[u] + k)
        if targets:
            for t in targets:
                e_item.append(len(kept))
                e_node.append(t)
            kept.append(p)

    k_arr = np.array([[n / 100 for n in p.need] for p, _ in q_items], dtype=np.float64).reshape(
        -1, 4
    )
    data = LexInput(
        need=k_arr,
        cap=np.array([c / 100 for c in cap], dtype=np.float64),
        q_level=np.array([p.level for p, _ in q_items], dtype=np.int64),
        q_score=np.array([p.score for p, _ in q_items], dtype=np.float64),
        q_rank=np.array([p.rank for p, _ in q_items], dtype=np.int64),
        q_phaseable=np.array([p.phaseable for p, _ in q_items], dtype=bool),
        q_min=np.array([p.min_q / _FRAC_UNIT for p, _ in q_items], dtype=np.float64),
        q_upper=np.array([u / _FRAC_UNIT for _, u in q_items], dtype=np.float64),
        s_level=np.array([p.level for p in kept], dtype=np.int64),
        s_score=np.array([p.score for p in kept], dtype=np.float64),
        s_rank=np.array([p.rank for p in kept], dtype=np.int64),
        edge_item=np.array(e_item, dtype=np.int64),
        edge_node=np.array(e_node, dtype=np.int64),
        node_class=node_class,
    )
    sol = solve_lexicographic(data, time_limit=time_limit)

    # The MILP's fractions, made exact: a binary is on or off; a phased fraction is
    # rounded DOWN to the 1e-9 grid (never up, so rounding alone never overdraws a
    # pool), and lifted to min_fraction when the solver left it a sliver below.
    lift_rows: list[tuple[int, int, float]] = []
    for (p, upper), f in zip(q_items, sol.q_fraction, strict=True):
        if not p.phaseable:
            q = _FRAC_UNIT if f > 0.5 else 0
        elif f <= 0:
            q = 0
        else:
            # down to the grid; a point within the solver's tolerance (0.1 step, 1e-10)
            # of its upper bound is at it (1 - 3e-11 is a whole project, not a sliver)
            steps = f * _FRAC_UNIT
            q = upper if steps >= upper - 0.1 else math.floor(steps)
            q = max(min(upper, q), p.min_q)
        frac[p.i] = q
        lift_rows.append((p.i, q, float(f) if p.phaseable else q / _FRAC_UNIT))
    status = sol.status
    lifted = {i: q - math.floor(f * _FRAC_UNIT) for i, q, f in lift_rows}
    if not _repair(ps, frac, cap, lifted=lifted):
        # the solver's own point overdrew a pool beyond its tolerance: not an optimum
        status = f"{status} (repaired: a pool was overdrawn beyond the solver's tolerance)"
    _top_up(ps, frac, cap)

    chosen = sorted((p for p, on in zip(kept, sol.s_selected, strict=True) if on), key=_r18_key)
    parcel = _assign_parcels(chosen, parcels)
    proven = sol.proven_optimal and status == sol.status
    return frac, parcel, proven, status


def _exact_use(ps: list[_P], frac: dict[int, int]) -> list[int]:
    """Σ need × q per resource, exactly (hundredths × 1e9): no rounding slack."""
    used = [0, 0, 0, 0]
    for p in ps:
        q = frac.get(p.i, 0)
        for d in range(4):
            used[d] += p.need[d] * q
    return used


def _fit_exact(p: _P, used: list[int], cap: list[int], q_now: int) -> int:
    """Largest q with need × q fitting the exact room left besides p's own share."""
    q = _FRAC_UNIT
    for d in range(4):
        if p.need[d]:
            room = cap[d] * _FRAC_UNIT - (used[d] - p.need[d] * q_now)
            q = min(q, max(room, 0) // p.need[d])
    return q


def _top_up(ps: list[_P], frac: dict[int, int], cap: list[int]) -> None:
    """Raise partial projects into unused room in R18 order, taking from no one.

    The MILP stops within a relative gap of 1e-6 and fractions are rounded to the
    1e-9 grid, so a phased project may sit a sliver below what fits.  Raising it
    into unused room only improves every stage.
    """
    used = _exact_use(ps, frac)
    for p in sorted(ps, key=_r18_key):
        q = frac.get(p.i, 0)
        if q == 0 or q >= _FRAC_UNIT:
            continue  # only partial projects: crumbs must not start new slivers
        best = _fit_exact(p, used, cap, q)
        if best > q:
            frac[p.i] = best
            used = [u + n * (best - q) for u, n in zip(used, p.need, strict=True)]


def _repair(
    ps: list[_P], frac: dict[int, int], cap: list[int], *, lifted: Mapping[int, int]
) -> bool:
    """Take back an overdraw of the rounded MILP point, exactly; return whether it was a sliver.

    Rounding down never overdraws.  What can is what rounding put *in*: a fraction
    within the solver's tolerance of its bound taken to it, or one lifted to its
    min_fraction (*lifted*: grid steps added per project).  That is taken back first,
    lowest R18 priority first, each project giving at most what it was given.  The
    solver's own row tolerance comes next: phased projects above their min_fraction,
    lowest priority first, at most 1e-6 of a fraction each.  Should neither be
    enough, the lowest-priority project on the pool goes (to the largest fraction
    that fits, or 0) and False is returned: the run is then not proven optimal, and
    its status says so.
    """
    by_i = {p.i: p for p in ps}
    given_back = {i: max(n, 0) for i, n in lifted.items()}
    budget = dict.fromkeys(lifted, _TOL_UNITS)
    sliver = True
    while True:
        used = _exact_use(ps, frac)
        over = [d for d in range(4) if used[d] > cap[d] * _FRAC_UNIT]
        if not over:
            return sliver
        d = over[0]
        users = sorted(
            (by_i[i] for i, q in frac.items() if q > 0 and by_i[i].need[d] > 0),
            key=_r18_key,
            reverse=True,
        )
        excess = used[d] - cap[d] * _FRAC_UNIT
        lifted_users = [p for p in users if given_back.get(p.i, 0) > 0]
        if lifted_users:
            p = lifted_users[0]
            step = min(-(-excess // p.need[d]), given_back[p.i])
            if p.phaseable and frac[p.i] - step >= p.min_q:
                frac[p.i] -= step
                given_back[p.i] -= step
                continue
            given_back[p.i] = 0  # cannot give back part of it: fall through next time
            continue
        elastic = [
            p for p in users if p.phaseable and frac[p.i] > p.min_q and budget.get(p.i, 0) > 0
        ]
        if elastic:
            p = elastic[0]
            step = min(-(-excess // p.need[d]), budget[p.i], frac[p.i] - p.min_q)
            frac[p.i] -= step
            budget[p.i] -= step
            continue
        sliver = False
        p = users[0]
        q = min(_fit_exact(p, used, cap, frac[p.i]), frac[p.i] - 1)
        frac[p.i] = q if p.phaseable and q >= p.min_q else 0

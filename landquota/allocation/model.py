"""Allocation: match key projects to stock land and quota pools (R4, R5, R13–R18).

This is the pure matching engine behind ``landquota allocate``: it takes the
projects' needs, the pool balances and the offered stock parcels, and decides
for every project one outcome — ``funded``, ``partial``, ``stock_matched``,
``blocked`` or ``unfunded`` — with the quota given and the reasons when a
project is not fully served.  It reads and writes no workspace; the caller
turns the ledger into :class:`Pools` and writes :meth:`AllocationResult.to_frame`.
The full description, with worked examples, is ``docs/allocation.md``.

Semantics
---------
* **Blocked** projects (non-empty ``blocked_reasons``, from the compliance rules
  R13–R15) are never funded: outcome ``blocked``, reasons = ``blocked_reasons``.
* **Stock first** (存量优先).  A project whose site is not fixed can only be
  served by one stock parcel whose ``planned_use`` fits (equal, or listed in
  :data:`USE_COMPATIBILITY`) and whose area is at least ``demand_m2``.  Each
  parcel serves at most one project.  Among fitting parcels a project prefers
  one in its own town, then the least leftover area, then the lower
  ``stock_id``.  Such a project uses no quota; unmatched it is ``unfunded`` with
  ``site_not_fixed`` and ``no_matching_stock``.
* **Quota** for fixed sites.  New-quota need (R3) is met from
  ``new_construction`` first (annual plan quota expires) and then from
  ``linkage_surplus`` (R5, only accepted surplus is in the pool); the two are
  one resource for feasibility.  The three compensation dimensions of R4
  (cultivated area, paddy, grain) must each cover ``need × fraction``; a project
  is refused if any one would go negative.
* **Fractions.**  A phaseable project takes a fraction in ``{0} ∪ [min_fraction, 1]``,
  others ``{0, 1}``; every need scales linearly with the fraction.
* **greedy** walks the projects in R18 order (level national > provincial >
  city > county, then score descending, then ``project_id`` ascending) and
  funds each that still fits; a phaseable project that does not fully fit takes
  the largest feasible fraction if it is at least ``min_fraction``.  Stock is
  matched in the same order, each project taking its preferred free parcel.
* **optimal** maximises lexicographically, level by level from national to
  county, ``Σ score × fraction`` (a stock-matched project counts ``score × 1``),
  then breaks ties exactly as R18 says: every project's fraction, taken in R18
  order (level, score descending, ``project_id``), is lexicographically largest
  among those optima — never a weighted sum, which can trade one project for two.
  Solved with HiGHS (``highspy``) in stages, each held at the value its point
  reached; see :mod:`landquota.allocation.milp`.  The set of stock-matched projects is part of the
  optimisation; the parcels are then chosen by the greedy preference in R18
  order, re-arranged along an augmenting path only where that walk would leave
  a selected project without a parcel.

Exactness and rounding
----------------------
Needs, balances, demands and parcel areas are handled in integer hundredths
(0.01 m² or 0.01 kg), rounded to the nearest hundredth on entry, so that
feasibility tests are exact integer comparisons and no pool can go negative
(R6).  A partial fraction is a multiple of 1e-9 and the amounts
given are ``floor(need × fraction)`` hundredths; a fully funded project gets its
need exactly.  Optimal mode rounds the MILP's fractions DOWN to that grid (so
rounding never overdraws a pool), then gives the crumb left in each pool exactly,
raising the partly funded projects in R18 order to the largest grid fraction that
fits; an overdraw by the solver's own tolerance is taken back from phased projects
(lowest R18 priority first), never more than 1e-6 of a fraction from any one.

Reasons
-------
Every project that is not fully served gets at least one code (see
:data:`REASON_CODES`).  ``insufficient_<pool>`` means the project's full need of
that resource exceeds what was left for it (greedy: when its turn came;
optimal: the balance minus what every other project got).  ``outranked`` means
the project alone would have fitted in the full balances (or some parcel of the
stock fits it) but projects ranked higher in R18 order hold what it lacks.  In
optimal mode ``better_total_score`` says that projects ranked *lower* hold it,
because the levels' total scores are higher that way (a project may have both).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from landquota.allocation.data import (
    REASON_CODES,
    USE_COMPATIBILITY,
    AllocationResult,
    Pools,
    ProjectAllocation,
    ProjectNeed,
    StockOffer,
)
from landquota.allocation.greedy import _greedy
from landquota.allocation.items import (
    _DIMS,
    _FRAC_UNIT,
    _given,
    _largest_fraction,
    _prepare,
    _r18_key,
)
from landquota.allocation.optimal import _exact_use, _optimal
from landquota.allocation.parcels import _Holders, _StockIndex
from landquota.errors import ParameterError
from landquota.store.schema import ALLOCATION_OUTCOMES, LEVELS

__all__ = [
    "REASON_CODES",
    "USE_COMPATIBILITY",
    "AllocationResult",
    "Pools",
    "ProjectAllocation",
    "ProjectNeed",
    "StockOffer",
    "allocate",
]

_MODES = ("greedy", "optimal")


def allocate(
    projects: Sequence[ProjectNeed],
    pools: Pools,
    stock: Sequence[StockOffer] = (),
    *,
    mode: str = "greedy",
    time_limit: float | None = None,
    compatible_uses: Mapping[str, Iterable[str]] | None = None,
) -> AllocationResult:
    """Decide stock parcels and quota for every project (R4, R5, R13–R18).

    Parameters
    ----------
    projects : sequence of ProjectNeed
        All projects of the run, blocked ones included.
    pools : Pools
        Balances available (m²; grain in kg/year), each ``>= 0`` (R6).
    stock : sequence of StockOffer
        Parcels offered to projects whose site is not fixed.
    mode : {"greedy", "optimal"}
        R18 walk, or exact lexicographic optimisation (see the module docstring).
    time_limit : float, optional
        Seconds allowed to the optimal solver in all; when reached, the best
        solution found is returned with ``proven_optimal=False``.
    compatible_uses : mapping, optional
        Project planned use -> stock planned uses that also fit; defaults to
        :data:`USE_COMPATIBILITY`.

    Returns
    -------
    AllocationResult

    Raises
    ------
    ParameterError
        An unknown mode, a bad time limit, or an input that breaks the contract.

    Examples
    --------
    One pool of 10,000 m²: A takes 6,000, B (5,000) no longer fits, C (4,000) does.

    >>> ps = [ProjectNeed("A", "county", 5, new_quota_m2=6000),
    ...       ProjectNeed("B", "county", 4, new_quota_m2=5000),
    ...       ProjectNeed("C", "county", 3, new_quota_m2=4000)]
    >>> r = allocate(ps, Pools(new_construction=10_000))
    >>> [(a.project_id, a.outcome) for a in r.allocations]
    [('A', 'funded'), ('B', 'unfunded'), ('C', 'funded')]
    >>> r["B"].reasons
    ('insufficient_new_quota', 'outranked')
    """
    if mode not in _MODES:
        raise ParameterError(f"mode={mode!r}; use one of {', '.join(_MODES)}")
    if time_limit is not None and (
        isinstance(time_limit, bool)
        or not isinstance(time_limit, int | float)
        or not time_limit > 0
    ):
        raise ParameterError(f"time_limit={time_limit!r} must be a number of seconds > 0, or None")
    compat = USE_COMPATIBILITY if compatible_uses is None else compatible_uses
    ps, parcels, bal = _prepare(projects, pools, stock, compat)
    cap = [
        bal["new_construction"] + bal["linkage_surplus"],
        bal["comp_area"],
        bal["comp_paddy"],
        bal["comp_grain"],
    ]

    room_at: dict[int, tuple[int, ...]] = {}
    if mode == "greedy":
        frac, parcel, room_at = _greedy(ps, parcels, bal)
        proven, status = True, "greedy"
    else:
        frac, parcel, proven, status = _optimal(ps, parcels, bal, time_limit)

    # amounts given, and the plan/linkage split in R18 order (plan quota first, R5)
    given = {i: _given(ps[i].need, q) for i, q in frac.items()}
    used = [sum(g[d] for g in given.values()) for d in range(4)]
    nc_left = bal["new_construction"]
    split: dict[int, tuple[int, int]] = {}
    for p in sorted(ps, key=_r18_key):
        if p.i in given:
            a = given[p.i][0]
            nc = min(a, nc_left)
            nc_left -= nc
            split[p.i] = (nc, a - nc)

    fit_index = _StockIndex(parcels)
    holders = _Holders(ps, parcels, parcel)
    exact = _exact_use(ps, frac)
    # per R18 rank: what the projects ranked before it were given, per resource
    earlier_use: list[tuple[int, ...]] = []
    acc = [0, 0, 0, 0]
    for p in sorted(ps, key=_r18_key):
        earlier_use.append(tuple(acc))
        for d, a in enumerate(given.get(p.i, (0, 0, 0, 0))):
            acc[d] += a
    rows: list[ProjectAllocation] = []
    objective = dict.fromkeys(LEVELS, 0.0)
    tie_terms: dict[int, float] = {}
    obj_terms: dict[str, list[float]] = {lv: [] for lv in LEVELS}
    for p in ps:
        need_f = tuple(n / 100 for n in p.need) if p.fixed else (math.nan,) * 4
        reasons: list[str] = []
        stock_id: str | None = None
        q = 0
        if p.blocked:
            outcome = "blocked"
            reasons = list(p.blocked)
        elif not p.fixed:
            if p.i in parcel:
                outcome = "stock_matched"
                stock_id = parcels[parcel[p.i]].sid
                q = _FRAC_UNIT
            else:
                outcome = "unfunded"
                reasons = ["site_not_fixed", "no_matching_stock"]
                if mode == "greedy":
                    # the walk: every parcel that fits went to a project earlier in R18 order
                    if fit_index.fits_any(p):
                        reasons.append("outranked")
                else:
                    # optimal: every parcel that fits is held (a free one would have been
                    # taken); say who holds them, truly
                    earlier, later = holders.around(p)
                    reasons += ["outranked"] * earlier + ["better_total_score"] * later
        else:
            q = frac[p.i]
            outcome = "funded" if q >= _FRAC_UNIT else ("partial" if q > 0 else "unfunded")
            if q < _FRAC_UNIT:
                if mode == "greedy":
                    room = list(room_at[p.i])
                    short = [d for d in range(4) if p.need[d] > room[d]]
                else:
                    own = given[p.i]
                    room = [cap[d] - used[d] + own[d] for d in range(4)]
                    # what is left for it, exactly (1e-9 units): the others' shares
                    # before flooring to hundredths, so a grid crumb counts as taken
                    short = [
                        d
                        for d in range(4)
                        if p.need[d] * _FRAC_UNIT > cap[d] * _FRAC_UNIT - (exact[d] - p.need[d] * q)
                    ]
                reasons = [f"insufficient_{_DIMS[d]}" for d in short]
                best = _largest_fraction(p.need, room)
                if p.phaseable and q == 0 and 0 < best < p.min_q:
                    reasons.append("below_min_fraction")
                if all(p.need[d] <= cap[d] for d in range(4)):
                    if mode == "greedy":
                        reasons.append("outranked")  # projects earlier in the walk took it
                    else:
                        # optimal: "outranked" only when projects ranked higher (R18) hold
                        # some of what it is short of; lower-ranked holders are there
                        # because the level objectives are higher that way
                        before = earlier_use[p.rank]
                        own = given[p.i]
                        if any(before[d] > 0 for d in short):
                            reasons.append("outranked")
                        if any(used[d] - before[d] - own[d] > 0 for d in short):
                            reasons.append("better_total_score")
        g = given.get(p.i, (0, 0, 0, 0))
        nc, ls = split.get(p.i, (0, 0))
        fraction = q / _FRAC_UNIT
        obj_terms[LEVELS[p.level]].append(p.score * fraction)
        tie_terms[p.rank] = fraction
        rows.append(
            ProjectAllocation(
                project_id=p.pid,
                outcome=outcome,
                fraction=fraction,
                need_new_quota_m2=need_f[0],
                need_comp_area_m2=need_f[1],
                need_comp_paddy_m2=need_f[2],
                need_comp_grain_kg=need_f[3],
                new_quota_m2=nc / 100,
                linkage_quota_m2=ls / 100,
                comp_area_m2=g[1] / 100,
                comp_paddy_m2=g[2] / 100,
                comp_grain_kg=g[3] / 100,
                stock_id=stock_id,
                approval_level=p.approval,
                reasons=tuple(reasons),
            )
        )
    for lv in LEVELS:
        objective[lv] = math.fsum(obj_terms[lv])
    nc_used = sum(s[0] for s in split.values())
    ls_used = sum(s[1] for s in split.values())
    used_pool = {
        "new_construction": nc_used,
        "linkage_surplus": ls_used,
        "comp_area": used[1],
        "comp_paddy": used[2],
        "comp_grain": used[3],
    }
    rows.sort(key=lambda a: a.project_id)
    if any(a.outcome not in ALLOCATION_OUTCOMES for a in rows):  # pragma: no cover
        raise RuntimeError("internal error: unknown allocation outcome")
    return AllocationResult(
        allocations=tuple(rows),
        mode=mode,
        pools_used={k: v / 100 for k, v in used_pool.items()},
        pools_left={k: (bal[k] - v) / 100 for k, v in used_pool.items()},
        objective=objective,
        tie_break=tuple(tie_terms[r] for r in sorted(tie_terms)),
        proven_optimal=proven,
        status=status,
    )

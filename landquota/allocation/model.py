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

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import numpy.typing as npt
import pandas as pd

from landquota.errors import ParameterError
from landquota.store.schema import ALLOCATION_OUTCOMES, APPROVAL_LEVELS, LEVELS, layer

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

#: Reason codes the engine itself gives (blocked projects carry the compliance codes).
REASON_CODES: dict[str, str] = {
    "insufficient_new_quota": "new-construction plus linkage quota left is below the need (R3, R5)",
    "insufficient_comp_area": "cultivated-area compensation left is below the need (R4)",
    "insufficient_comp_paddy": "paddy compensation left is below the need (R4)",
    "insufficient_comp_grain": "grain-capacity compensation left is below the need (R4)",
    "site_not_fixed": "the site is not fixed, so only stock land can serve the project",
    "no_matching_stock": "no free stock parcel has a fitting use and enough area",
    "below_min_fraction": "the largest fraction that fits is below the project's min_fraction",
    "outranked": "it would fit alone, but the capacity went to higher-ranked projects (R18)",
    "better_total_score": (
        "it would fit alone, but lower-ranked projects hold what it lacks: the levels' total "
        "scores are higher that way (optimal mode, R18)"
    ),
}

#: Planned uses of stock land that also fit a project of the given use (besides the
#: same use).  Industrial and warehouse land are one GB/T 21010 class (06 工矿仓储用地),
#: commercial and office land one class (05 商服用地).
USE_COMPATIBILITY: dict[str, frozenset[str]] = {
    "industrial": frozenset({"warehouse"}),
    "warehouse": frozenset({"industrial"}),
    "commercial": frozenset({"office"}),
    "office": frozenset({"commercial"}),
}

_DIMS = ("new_quota", "comp_area", "comp_paddy", "comp_grain")
_FRAC_UNIT = 10**9  # partial fractions are multiples of 1e-9
_TOL_UNITS = 1000  # the MILP's tolerance on a fraction: 1e-6 of it, in 1e-9 units
_MODES = ("greedy", "optimal")
_FRAME_COLUMNS = tuple(
    c for c in layer("allocations").column_names if c not in ("allocation_id", "run_id")
)


@dataclass(frozen=True)
class ProjectNeed:
    """What one key project needs (the input of :func:`allocate`).

    Parameters
    ----------
    project_id : str
        Stable project id; the last R18 tie-break.
    level : str
        One of ``national``, ``provincial``, ``city``, ``county`` (R18).
    score : float
        Priority score within the level, ``>= 0`` (R18).
    phaseable : bool
        Whether a fraction of the need may be funded.
    min_fraction : float or None
        Least fraction when phaseable, in ``[0, 1]``; ``None`` means 0.
    site_fixed : bool
        Whether the site red line is fixed; if not, only stock land can serve it.
    new_quota_m2, comp_area_m2, comp_paddy_m2, comp_grain_kg : float
        Needs of a fixed site (R3, R4); ignored when the site is not fixed.
    demand_m2 : float or None
        Land demand when the site is not fixed.
    planned_use, town : str or None
        Used to match stock parcels.
    blocked_reasons : tuple of str
        Compliance reasons (R13, R15); non-empty means blocked.
    approval_level : str or None
        ``province`` or ``state_council`` (R14), passed through.
    """

    project_id: str
    level: str
    score: float
    phaseable: bool = False
    min_fraction: float | None = None
    site_fixed: bool = True
    new_quota_m2: float = 0.0
    comp_area_m2: float = 0.0
    comp_paddy_m2: float = 0.0
    comp_grain_kg: float = 0.0
    demand_m2: float | None = None
    planned_use: str | None = None
    town: str | None = None
    blocked_reasons: tuple[str, ...] = ()
    approval_level: str | None = None


@dataclass(frozen=True)
class StockOffer:
    """One stock parcel offered to projects whose site is not fixed."""

    stock_id: str
    area_m2: float
    planned_use: str | None = None
    town: str | None = None


@dataclass(frozen=True)
class Pools:
    """Pool balances available to the run, m² (compensation grain: kg/year)."""

    new_construction: float = 0.0
    linkage_surplus: float = 0.0
    comp_area: float = 0.0
    comp_paddy: float = 0.0
    comp_grain: float = 0.0


@dataclass(frozen=True)
class ProjectAllocation:
    """The decision for one project (one ``allocations`` row)."""

    project_id: str
    outcome: str
    fraction: float
    need_new_quota_m2: float
    need_comp_area_m2: float
    need_comp_paddy_m2: float
    need_comp_grain_kg: float
    new_quota_m2: float
    linkage_quota_m2: float
    comp_area_m2: float
    comp_paddy_m2: float
    comp_grain_kg: float
    stock_id: str | None
    approval_level: str | None
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class AllocationResult:
    """The outcome of :func:`allocate`.

    Attributes
    ----------
    allocations : tuple of ProjectAllocation
        One per project, sorted by ``project_id``.
    mode : str
        ``greedy`` or ``optimal``.
    pools_used, pools_left : dict of str to float
        Per pool of :data:`landquota.store.schema.POOLS`, what the run gives and what remains.
    objective : dict of str to float
        Per level, ``Σ score × fraction`` (stock-matched projects count fraction 1).
    tie_break : tuple of float
        Every project's fraction (stock-matched: 1) in R18 order — level, score
        descending, ``project_id`` — the key that optimal mode maximises
        lexicographically after the level objectives (see the module docstring).
    proven_optimal : bool
        True in greedy mode; in optimal mode, whether HiGHS proved every stage optimal
        (False when ``time_limit`` cut a stage short: the best solution found is returned).
    status : str
        ``optimal``, ``greedy`` or the HiGHS status that stopped the search.
    """

    allocations: tuple[ProjectAllocation, ...]
    mode: str
    pools_used: dict[str, float]
    pools_left: dict[str, float]
    objective: dict[str, float]
    tie_break: tuple[float, ...]
    proven_optimal: bool = True
    status: str = "optimal"
    _index: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    def __getitem__(self, project_id: str) -> ProjectAllocation:
        """Return the allocation of *project_id*."""
        if not self._index:
            self._index.update({a.project_id: i for i, a in enumerate(self.allocations)})
        try:
            return self.allocations[self._index[project_id]]
        except KeyError:
            raise KeyError(f"no project {project_id!r} in this allocation result") from None

    def to_frame(self) -> pd.DataFrame:
        """Return the ``allocations`` rows (without ``allocation_id`` and ``run_id``).

        Columns follow :mod:`landquota.store.schema`; text columns use missing = NaN
        (``stock_id`` when no parcel, ``reasons`` when none), sorted by ``project_id``.
        """
        data: dict[str, object] = {}
        for name in _FRAME_COLUMNS:
            if name == "reasons":
                values: list[object] = [",".join(a.reasons) or None for a in self.allocations]
            else:
                values = [getattr(a, name) for a in self.allocations]
            col = layer("allocations").column(name)
            if col.type == "real":
                data[name] = pd.Series(values, dtype="float64")
            else:
                data[name] = pd.Series([np.nan if v is None else v for v in values], dtype="str")
        return pd.DataFrame(data, columns=list(_FRAME_COLUMNS))


# --------------------------------------------------------------------- internals


@dataclass
class _P:
    """A validated project in integer hundredths."""

    i: int
    pid: str
    level: int
    score: float
    phaseable: bool
    min_q: int  # least fraction in 1e-9 units
    fixed: bool
    need: tuple[int, int, int, int]
    demand: int
    uses: frozenset[str]
    town: str | None
    blocked: tuple[str, ...]
    approval: str | None
    rank: int = 0  # position in R18 order (level, score descending, project id)


@dataclass
class _S:
    """A validated stock parcel."""

    j: int
    sid: str
    area: int
    use: str | None
    town: str | None


def _hundredths(value: float) -> int:
    return round(value * 100)


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _amount(name: str, value: object, where: str, *, down: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
        raise ParameterError(
            f"{where}: {name}={value!r} is not a number; give an amount in m2 (kg for grain)"
        )
    v = float(value)
    if not math.isfinite(v) or v < 0:
        raise ParameterError(
            f"{where}: {name}={value!r} must be a finite amount >= 0; "
            "fix the input (run `landquota demand` for fixed sites)"
        )
    if down:
        # A pool's balance is rounded DOWN to the hundredth: rounded to nearest, a balance
        # of 666,666.6667 m² became 666,666.67 and a run using all of it could not be
        # committed (R6: the ledger's debits would exceed the balance by 0.003 m²).
        # The 1e-5 absorbs float noise of the product (15,000 × 100 = 1,499,999.999…).
        return math.floor(v * 100 + 1e-5)
    return _hundredths(v)


def _text(value: object) -> str | None:
    if _is_missing(value):
        return None
    return str(value)


def _prepare(
    projects: Sequence[ProjectNeed],
    pools: Pools,
    stock: Sequence[StockOffer],
    compat: Mapping[str, Iterable[str]],
) -> tuple[list[_P], list[_S], dict[str, int]]:
    if not isinstance(pools, Pools):
        raise ParameterError(f"pools={pools!r} is not a Pools; build one with Pools(...)")
    balances = {
        name: _amount(name, getattr(pools, name), "pools", down=True)
        for name in ("new_construction", "linkage_surplus", "comp_area", "comp_paddy", "comp_grain")
    }
    seen: set[str] = set()
    out: list[_P] = []
    for i, p in enumerate(projects):
        if not isinstance(p, ProjectNeed):
            raise ParameterError(f"projects[{i}]={p!r} is not a ProjectNeed; build one per project")
        where = f"project {p.project_id!r}"
        if not isinstance(p.project_id, str) or not p.project_id:
            raise ParameterError(
                f"projects[{i}]: project_id={p.project_id!r} must be a non-empty str"
            )
        if p.project_id in seen:
            raise ParameterError(f"{where} appears twice; project ids must be unique")
        seen.add(p.project_id)
        if p.level not in LEVELS:
            raise ParameterError(f"{where}: level={p.level!r}; use one of {', '.join(LEVELS)}")
        score = float(p.score) if isinstance(p.score, int | float | np.number) else math.nan
        if not math.isfinite(score) or score < 0:
            raise ParameterError(f"{where}: score={p.score!r} must be a finite number >= 0 (R18)")
        mf = 0.0 if _is_missing(p.min_fraction) else p.min_fraction
        if not isinstance(mf, int | float | np.number) or not 0.0 <= float(mf) <= 1.0:
            raise ParameterError(
                f"{where}: min_fraction={p.min_fraction!r} must be in [0, 1] or None"
            )
        if p.approval_level is not None and p.approval_level not in APPROVAL_LEVELS:
            raise ParameterError(
                f"{where}: approval_level={p.approval_level!r}; use one of "
                f"{', '.join(APPROVAL_LEVELS)} or None"
            )
        blocked = tuple(p.blocked_reasons)
        if not all(isinstance(r, str) and r for r in blocked):
            raise ParameterError(
                f"{where}: blocked_reasons={p.blocked_reasons!r} must be codes (str)"
            )
        need = (0, 0, 0, 0)
        demand = 0
        if p.site_fixed:
            need = (
                _amount("new_quota_m2", p.new_quota_m2, where),
                _amount("comp_area_m2", p.comp_area_m2, where),
                _amount("comp_paddy_m2", p.comp_paddy_m2, where),
                _amount("comp_grain_kg", p.comp_grain_kg, where),
            )
        elif not blocked:
            demand = _amount("demand_m2", p.demand_m2, where + " (site not fixed)")
        use = _text(p.planned_use)
        uses = frozenset() if use is None else frozenset({use, *compat.get(use, ())})
        # ceil so that a phased project never goes below its min_fraction
        min_q = math.ceil(Fraction(float(mf)) * _FRAC_UNIT) if p.phaseable else _FRAC_UNIT
        out.append(
            _P(
                i=i,
                pid=p.project_id,
                level=LEVELS.index(p.level),
                score=score,
                phaseable=bool(p.phaseable),
                min_q=min_q,
                fixed=bool(p.site_fixed),
                need=need,
                demand=demand,
                uses=uses,
                town=_text(p.town),
                blocked=blocked,
                approval=p.approval_level,
            )
        )
    for rank, q in enumerate(sorted(out, key=_r18_key)):
        q.rank = rank
    sids: set[str] = set()
    parcels: list[_S] = []
    for j, s in enumerate(stock):
        if not isinstance(s, StockOffer):
            raise ParameterError(f"stock[{j}]={s!r} is not a StockOffer; build one per parcel")
        if not isinstance(s.stock_id, str) or not s.stock_id:
            raise ParameterError(f"stock[{j}]: stock_id={s.stock_id!r} must be a non-empty str")
        if s.stock_id in sids:
            raise ParameterError(f"stock parcel {s.stock_id!r} appears twice; ids must be unique")
        sids.add(s.stock_id)
        parcels.append(
            _S(
                j,
                s.stock_id,
                _amount("area_m2", s.area_m2, f"stock parcel {s.stock_id!r}"),
                _text(s.planned_use),
                _text(s.town),
            )
        )
    return out, parcels, balances


def _r18_key(p: _P) -> tuple[int, float, str]:
    return (p.level, -p.score, p.pid)


class _StockIndex:
    """Free parcels by planned use (and use + town), each list sorted by (area, id)."""

    def __init__(self, parcels: Sequence[_S]) -> None:
        self.parcels = parcels
        self.by_use: dict[str, list[tuple[int, str, int]]] = {}
        self.by_use_town: dict[tuple[str, str], list[tuple[int, str, int]]] = {}
        for s in sorted(parcels, key=lambda s: (s.area, s.sid)):
            if s.use is None:
                continue
            item = (s.area, s.sid, s.j)
            self.by_use.setdefault(s.use, []).append(item)
            if s.town is not None:
                self.by_use_town.setdefault((s.use, s.town), []).append(item)

    @staticmethod
    def _first_fit(
        lists: Iterable[list[tuple[int, str, int]]], demand: int
    ) -> tuple[int, str, int] | None:
        best: tuple[int, str, int] | None = None
        for lst in lists:
            k = bisect.bisect_left(lst, (demand, ""))
            if k < len(lst) and (best is None or lst[k][:2] < best[:2]):
                best = lst[k]
        return best

    def best(self, p: _P) -> int | None:
        """Preferred free parcel: same town, then least leftover, then lower id."""
        uses = sorted(p.uses)
        if p.town is not None:
            hit = self._first_fit(
                (self.by_use_town[(u, p.town)] for u in uses if (u, p.town) in self.by_use_town),
                p.demand,
            )
            if hit is not None:
                return hit[2]
        hit = self._first_fit((self.by_use[u] for u in uses if u in self.by_use), p.demand)
        return None if hit is None else hit[2]

    def remove(self, j: int) -> None:
        """Take parcel *j* out of the free lists."""
        s = self.parcels[j]
        item = (s.area, s.sid, s.j)
        keys: list[list[tuple[int, str, int]]] = []
        if s.use is not None:
            keys.append(self.by_use[s.use])
            if s.town is not None:
                keys.append(self.by_use_town[(s.use, s.town)])
        for lst in keys:
            del lst[bisect.bisect_left(lst, item)]

    def fits_any(self, p: _P) -> bool:
        """Whether any parcel (free or not, from the lists built at start) fits *p*."""
        return (
            self._first_fit((self.by_use[u] for u in p.uses if u in self.by_use), p.demand)
            is not None
        )


class _Holders:
    """Who holds the parcels that fit a project whose site is not fixed.

    Projects ranked before it (R18), after it, or both: one suffix minimum and
    maximum of the holders' ranks per planned use, so each question is a bisection.
    """

    def __init__(self, ps: Sequence[_P], parcels: Sequence[_S], parcel: Mapping[int, int]) -> None:
        rank_of = {j: ps[i].rank for i, j in parcel.items()}
        self.areas: dict[str, list[int]] = {}
        self.lo: dict[str, list[float]] = {}
        self.hi: dict[str, list[float]] = {}
        by_use: dict[str, list[_S]] = {}
        for s in sorted(parcels, key=lambda s: (s.area, s.sid)):
            if s.use is not None:
                by_use.setdefault(s.use, []).append(s)
        for use, lst in by_use.items():
            lo = [math.inf] * (len(lst) + 1)
            hi = [-math.inf] * (len(lst) + 1)
            for k in range(len(lst) - 1, -1, -1):
                r = rank_of.get(lst[k].j)
                lo[k] = min(lo[k + 1], math.inf if r is None else r)
                hi[k] = max(hi[k + 1], -math.inf if r is None else r)
            self.areas[use] = [s.area for s in lst]
            self.lo[use], self.hi[use] = lo, hi

    def around(self, p: _P) -> tuple[bool, bool]:
        """(held by a project ranked before *p*, held by one ranked after it)."""
        before = after = False
        for use in p.uses:
            if use in self.areas:
                k = bisect.bisect_left(self.areas[use], p.demand)
                before = before or self.lo[use][k] < p.rank
                after = after or self.hi[use][k] > p.rank
        return before, after


def _preference(p: _P, s: _S) -> tuple[bool, int, str]:
    return (p.town is None or s.town != p.town, s.area - p.demand, s.sid)


class _Preferences:
    """Each project's fitting parcels in its order of preference (:func:`_preference`).

    Built once per run: per planned use, the parcels sorted by (area, id) as NumPy
    arrays; a project's list is the slices of its uses from the first area that
    fits, ordered by (other town, area, id) — the preference order, since the
    leftover ``area − demand`` orders as the area does.  Listed when first asked
    (the augmenting-path search reaches only some projects).
    """

    def __init__(self, parcels: Sequence[_S]) -> None:
        self.parcels = parcels
        ordered = sorted(parcels, key=lambda s: (s.area, s.sid))
        self.rank = np.empty(len(parcels), dtype=np.int64)
        self.rank[[s.j for s in ordered]] = np.arange(len(parcels), dtype=np.int64)
        towns = sorted({s.town for s in parcels if s.town is not None})
        self.town_code = {t: c for c, t in enumerate(towns)}
        self.town = np.array(
            [-1 if s.town is None else self.town_code[s.town] for s in parcels], dtype=np.int64
        )
        self.js: dict[str, npt.NDArray[np.int64]] = {}
        self.areas: dict[str, npt.NDArray[np.int64]] = {}
        by_use: dict[str, list[_S]] = {}
        for s in ordered:
            if s.use is not None:
                by_use.setdefault(s.use, []).append(s)
        for use, lst in by_use.items():
            self.js[use] = np.array([s.j for s in lst], dtype=np.int64)
            self.areas[use] = np.array([s.area for s in lst], dtype=np.int64)
        self.cache: dict[int, list[int]] = {}

    def of(self, p: _P) -> list[int]:
        """Parcel indexes that fit *p*, most preferred first."""
        if p.i not in self.cache:
            parts = [
                self.js[u][int(np.searchsorted(self.areas[u], p.demand, side="left")) :]
                for u in sorted(p.uses)
                if u in self.js
            ]
            js = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
            if p.town is None:
                other = np.ones(js.size, dtype=bool)
            else:
                other = self.town[js] != self.town_code.get(p.town, -2)
            self.cache[p.i] = js[np.lexsort((self.rank[js], other))].tolist()
        return self.cache[p.i]


def _assign_parcels(chosen: Sequence[_P], parcels: Sequence[_S]) -> dict[int, int]:
    """Give each chosen project a parcel: preference walk, then augmenting paths."""
    idx = _StockIndex(parcels)
    owner: dict[int, int] = {}  # parcel j -> project i
    match: dict[int, int] = {}  # project i -> parcel j
    failed: list[_P] = []
    for p in chosen:
        j = idx.best(p)
        if j is None:
            failed.append(p)
            continue
        idx.remove(j)
        owner[j] = p.i
        match[p.i] = j
    if failed:
        prefs = _Preferences(parcels)
        by_i = {p.i: p for p in chosen}
        for root in failed:
            # BFS over alternating paths from the unmatched project (Berge)
            parent: dict[int, tuple[int, int | None]] = {}  # parcel -> (project, prev parcel)
            queue: list[tuple[int, int | None]] = [(root.i, None)]
            end: int | None = None
            while queue and end is None:
                nxt: list[tuple[int, int | None]] = []
                for pi, via in queue:
                    for j in prefs.of(by_i[pi]):
                        if j in parent:
                            continue
                        parent[j] = (pi, via)
                        if j not in owner:
                            end = j
                            break
                        nxt.append((owner[j], j))
                    if end is not None:
                        break
                queue = nxt
            if end is None:  # cannot happen when the MILP proved the set matchable
                continue
            step: int | None = end
            while step is not None:  # flip the path: each project takes the parcel it reached
                pi, prev = parent[step]
                owner[step] = pi
                match[pi] = step
                step = prev
    return match


def _greedy(
    ps: list[_P], parcels: list[_S], bal: dict[str, int]
) -> tuple[dict[int, int], dict[int, int], dict[int, tuple[int, ...]]]:
    """R18 walk.  Returns fraction (1e-9 units), parcel and the room at each turn."""
    order = sorted(ps, key=_r18_key)
    frac: dict[int, int] = {}
    parcel: dict[int, int] = {}
    room_at: dict[int, tuple[int, ...]] = {}
    room = [
        bal["new_construction"] + bal["linkage_surplus"],
        bal["comp_area"],
        bal["comp_paddy"],
        bal["comp_grain"],
    ]
    idx = _StockIndex(parcels)
    for p in order:
        if p.blocked:
            continue
        if not p.fixed:
            j = idx.best(p)
            if j is not None:
                idx.remove(j)
                parcel[p.i] = j
            continue
        room_at[p.i] = tuple(room)
        q = _largest_fraction(p.need, room)
        if q < p.min_q:
            q = 0
        frac[p.i] = q
        given = _given(p.need, q)
        for d in range(4):
            room[d] -= given[d]
    return frac, parcel, room_at


def _largest_fraction(need: Sequence[int], room: Sequence[int]) -> int:
    """Largest q (1e-9 units, <= 1e9) with need * q / 1e9 <= room in every dimension."""
    q = _FRAC_UNIT
    for n, r in zip(need, room, strict=True):
        if n > r:
            q = min(q, max(r, 0) * _FRAC_UNIT // n)
    return q


def _given(need: Sequence[int], q: int) -> tuple[int, ...]:
    if q >= _FRAC_UNIT:
        return tuple(need)
    return tuple(n * q // _FRAC_UNIT for n in need)


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

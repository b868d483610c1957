"""Private: the projects and parcels of a run as the engine works on them (R4, R6, R18).

:func:`_prepare` checks the inputs at the boundary (one :class:`ParameterError`
naming the project or pool, the value and the fix) and turns them into integer
hundredths (0.01 m² or 0.01 kg), so that feasibility is an exact integer comparison
and no pool can go negative (R6).  Fractions are integers in units of 1e-9
(:data:`_FRAC_UNIT`).  :func:`_r18_key` is the R18 order: level, score descending,
project id.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from landquota.allocation.data import Pools, ProjectNeed, StockOffer
from landquota.errors import ParameterError
from landquota.store.schema import APPROVAL_LEVELS, LEVELS

_DIMS = ("new_quota", "comp_area", "comp_paddy", "comp_grain")
_FRAC_UNIT = 10**9  # partial fractions are multiples of 1e-9
_TOL_UNITS = 1000  # the MILP's tolerance on a fraction: 1e-6 of it, in 1e-9 units


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

"""The data of an allocation: what it reads and what it returns (R4, R5, R13–R18).

The inputs of :func:`landquota.allocation.model.allocate` — :class:`ProjectNeed`,
:class:`StockOffer`, :class:`Pools` — and its result, :class:`AllocationResult` of one
:class:`ProjectAllocation` per project; the reason codes it gives and the planned uses of
stock land that fit one another.  Import them from :mod:`landquota.allocation.model` (or
``landquota``); they live here so that every part of the engine can use them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from landquota.store.schema import layer

__all__ = [
    "REASON_CODES",
    "USE_COMPATIBILITY",
    "AllocationResult",
    "Pools",
    "ProjectAllocation",
    "ProjectNeed",
    "StockOffer",
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

"""Allocation before and after a plan adjustment (规划调整完善), side by side.

:func:`adjusted_run` plans the allocation twice without saving, once on the
plan as it stands and once with a :class:`~landquota.rules.adjustment.PlanAdjustment`
as scenario (it must pass the R16 checks), and :func:`compare_scenarios` says
which projects change outcome and how much of each pool each run uses. The
adjustment itself (polygons, R15/R16 checks) is a land rule in
:mod:`landquota.rules.adjustment`; this module builds on the allocation, one
layer up. ``docs/adjustment.md`` describes both.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

import geopandas as gpd
import numpy as np
import pandas as pd

from landquota.allocation.runs import Run, plan_allocation
from landquota.errors import ParameterError
from landquota.rules.adjustment import PlanAdjustment
from landquota.store.schema import CRS_EPSG
from landquota.store.workspace import Workspace

__all__ = ["ScenarioComparison", "adjusted_run", "compare_scenarios"]

_HA: Final = 10_000.0

_POOL_COLUMNS: Final = {
    "new_quota_m2": ("新增建设用地指标", "plan quota", "m2"),
    "linkage_quota_m2": ("挂钩节余指标", "linkage surplus", "m2"),
    "comp_area_m2": ("补充耕地数量", "compensation: cultivated area", "m2"),
    "comp_paddy_m2": ("补充水田", "compensation: paddy", "m2"),
    "comp_grain_kg": ("补充粮食产能", "compensation: grain capacity", "kg"),
}
_COMPARED: Final = ("outcome", "fraction", *_POOL_COLUMNS, "stock_id", "reasons")


@dataclass(frozen=True)
class ScenarioComparison:
    """Two allocation runs side by side (before and after a plan adjustment, say).

    Attributes
    ----------
    run_a, run_b : Run
        The runs compared.
    labels : (str, str)
        Suffixes of the columns of each run (default ``before``, ``after``).
    projects : pandas.DataFrame
        One row per project: ``project_id``, ``project_name``, ``level``,
        ``score``, then ``outcome``, ``fraction``, the pool columns,
        ``stock_id`` and ``reasons`` of each run (suffixed ``_<label>``), and
        ``changed`` (outcome, fraction, a pool amount or the stock parcel
        differs) and ``change`` ('blocked → funded').
    pools : pandas.DataFrame
        One row per pool: ``pool``, ``name_zh``, ``name_en``, ``unit``, the
        amount used by each run (``used_<label>``) and ``difference``; plus a
        ``stock_parcels`` row (parcels matched).
    """

    run_a: Run
    run_b: Run
    labels: tuple[str, str]
    projects: pd.DataFrame
    pools: pd.DataFrame

    @property
    def changed(self) -> pd.DataFrame:
        """Projects whose allocation differs between the runs."""
        return self.projects[self.projects["changed"]].reset_index(drop=True)

    def table(self) -> pd.DataFrame:
        """Return the changed projects with the columns of :attr:`projects` (for CSV)."""
        return self.changed

    def to_geodataframe(self, *, changed_only: bool = True) -> gpd.GeoDataFrame:
        """Return the comparison joined to the project sites (EPSG:4490), for mapping."""
        rows = self.changed if changed_only else self.projects
        sites = self.run_b.projects[["project_id", "geometry"]]
        out = rows.merge(pd.DataFrame(sites), on="project_id", how="left")
        return gpd.GeoDataFrame(out, geometry="geometry", crs=CRS_EPSG)

    def summary(self) -> str:
        """Return a short Chinese/English summary."""
        a, b = self.labels
        lines = [
            f"方案比较 comparison {a} = {self.run_a.run_id}, {b} = {self.run_b.run_id}: "
            f"{int(self.projects['changed'].sum())} 个项目变化 projects change"
        ]
        for r in self.changed.itertuples():
            lines.append(f"  {r.project_id} {r.project_name}: {r.change}")
        for r in self.pools.itertuples():
            ua, ub = getattr(r, f"used_{a}"), getattr(r, f"used_{b}")
            if r.unit == "m2":
                lines.append(f"  {r.name_zh} {r.name_en}: {ua / _HA:,.2f} ha → {ub / _HA:,.2f} ha")
            else:
                lines.append(f"  {r.name_zh} {r.name_en}: {ua:,.0f} → {ub:,.0f} {r.unit}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        a, b = self.labels
        head = html.escape(self.summary().splitlines()[0])
        cols = [
            "project_id",
            "project_name",
            "level",
            f"outcome_{a}",
            f"outcome_{b}",
            f"fraction_{a}",
            f"fraction_{b}",
            f"new_quota_m2_{a}",
            f"new_quota_m2_{b}",
            "change",
        ]
        changed = self.changed[cols].to_html(
            index=False, na_rep="", float_format=lambda v: f"{v:,.2f}"
        )
        pools = self.pools.to_html(index=False, na_rep="", float_format=lambda v: f"{v:,.2f}")
        return f"<b>{head}</b>{changed}<b>指标使用 pools used</b>{pools}"


def _same(x: Any, y: Any) -> bool:
    if pd.isna(x) and pd.isna(y):
        return True
    if pd.isna(x) or pd.isna(y):
        return False
    if isinstance(x, float | int | np.floating) and isinstance(y, float | int | np.floating):
        return abs(float(x) - float(y)) <= 1e-6 * max(1.0, abs(float(x)), abs(float(y)))
    return bool(x == y)


def compare_scenarios(
    run_a: Run, run_b: Run, *, labels: tuple[str, str] = ("before", "after")
) -> ScenarioComparison:
    """Compare two allocation runs project by project and pool by pool.

    Parameters
    ----------
    run_a, run_b : Run
        Runs of :func:`landquota.allocation.runs.plan_allocation` (saved or not).
    labels : (str, str), default ('before', 'after')
        Names of the runs, used as column suffixes.

    Returns
    -------
    ScenarioComparison
    """
    if (
        len(labels) != 2
        or labels[0] == labels[1]
        or not all(isinstance(x, str) and x.isidentifier() for x in labels)
    ):
        raise ParameterError(
            f"labels={labels!r}; give two different identifiers, e.g. ('before', 'after')"
        )
    a, b = labels
    ta = run_a.table()
    tb = run_b.table()
    keep = ["project_id", *_COMPARED]
    merged = (
        ta[["project_id", "project_name", "level", "score"]]
        .merge(ta[keep], on="project_id")
        .merge(tb[keep], on="project_id", how="outer", suffixes=(f"_{a}", f"_{b}"))
    )
    changed = []
    change = []
    for r in merged.to_dict("records"):
        diff = any(not _same(r[f"{c}_{a}"], r[f"{c}_{b}"]) for c in _COMPARED if c != "reasons")
        changed.append(diff)
        oa, ob = r[f"outcome_{a}"], r[f"outcome_{b}"]
        if not diff:
            change.append("")
        elif oa != ob:
            change.append(f"{oa} → {ob}")
        else:
            change.append(f"{oa}: {r[f'fraction_{a}']:.2f} → {r[f'fraction_{b}']:.2f}")
    merged["changed"] = pd.Series(changed, index=merged.index, dtype=bool)
    merged["change"] = pd.Series(change, index=merged.index, dtype="str")
    merged = merged.sort_values("project_id", kind="stable").reset_index(drop=True)

    pool_rows = []
    for col, (zh, en, unit) in _POOL_COLUMNS.items():
        ua = float(ta[col].fillna(0).sum())
        ub = float(tb[col].fillna(0).sum())
        pool_rows.append(
            {
                "pool": col,
                "name_zh": zh,
                "name_en": en,
                "unit": unit,
                f"used_{a}": ua,
                f"used_{b}": ub,
                "difference": ub - ua,
            }
        )
    sa = float(ta["stock_id"].notna().sum())
    sb = float(tb["stock_id"].notna().sum())
    pool_rows.append(
        {
            "pool": "stock_parcels",
            "name_zh": "存量土地宗数",
            "name_en": "stock parcels matched",
            "unit": "parcels",
            f"used_{a}": sa,
            f"used_{b}": sb,
            "difference": sb - sa,
        }
    )
    pools = pd.DataFrame(pool_rows)
    for c in ("pool", "name_zh", "name_en", "unit"):
        pools[c] = pools[c].astype("str")
    return ScenarioComparison(run_a=run_a, run_b=run_b, labels=(a, b), projects=merged, pools=pools)


def adjusted_run(
    ws: Workspace,
    adjustment: PlanAdjustment,
    *,
    mode: str = "greedy",
    as_of: date,
    labels: tuple[str, str] = ("before", "after"),
    **options: Any,
) -> tuple[Run, Run, ScenarioComparison]:
    """Allocate before and after a plan adjustment without writing anything; compare.

    Both runs are made with ``save=False`` (what-if runs: no draft is stored and
    the ledger is untouched).

    Parameters
    ----------
    ws : Workspace
    adjustment : PlanAdjustment
        Must pass :func:`~landquota.rules.adjustment.check_r16` (else ``PlanAdjustmentError``, from
        :func:`landquota.allocation.runs.plan_allocation`).
    mode : {'greedy', 'optimal'}
    as_of : date
    labels : (str, str)
        See :func:`compare_scenarios`.
    **options
        Passed to :func:`~landquota.allocation.runs.plan_allocation` (``carry_years``,
        ``time_limit``, ``force``).

    Returns
    -------
    (Run, Run, ScenarioComparison)
        The run before, the run after, and their comparison.
    """
    if "save" in options or "scenario" in options:
        raise ParameterError(
            "adjusted_run never saves and sets the scenario itself; drop save= / scenario="
        )
    before = plan_allocation(ws, mode=mode, as_of=as_of, save=False, **options)
    after = plan_allocation(ws, mode=mode, as_of=as_of, scenario=adjustment, save=False, **options)
    return before, after, compare_scenarios(before, after, labels=labels)

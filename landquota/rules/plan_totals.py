"""The plan's totals that R16 keeps, measured: the R16 report, its measures, retirement.

A plan adjustment (:mod:`landquota.rules.adjustment`) must keep the total planned
construction scale, the cultivated land to retain and the basic farmland (R16),
and may not touch the prohibited zone or the eco red line (R15).
:func:`~landquota.rules.adjustment.check_r16` measures those totals before and after
with the helpers here and returns an :class:`R16Report`;
:func:`retirement_polygons` proposes allowed zone to retire elsewhere so that
the construction scale stays the same. The polygon arithmetic of plan zones
(union, intersection, difference) lives here too. Nothing
here knows the :class:`~landquota.rules.adjustment.PlanAdjustment` class, so the
adjustment builds on this module and not the other way round.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from landquota.errors import ParameterError
from landquota.rules.overlay import Centre, measure, polygonal, sites_centre
from landquota.store.schema import CRS_EPSG

if TYPE_CHECKING:
    from landquota.store.workspace import Workspace

__all__ = [
    "DEFAULT_TOLERANCE_M2",
    "R16_CHECKS",
    "R16Report",
    "retirement_polygons",
]

#: Default tolerance of the R16 checks, m²: the sliver tolerance of compliance and
#: the last digit of an area reported in ha to four decimals (0.0001 ha = 1 m²).
DEFAULT_TOLERANCE_M2: Final = 1.0

_HA: Final = 10_000.0
_EMPTY: Final = shapely.from_wkt("MULTIPOLYGON EMPTY")

#: The checks of :func:`check_r16`, in report order: code → (rule, Chinese, English).
R16_CHECKS: Final[dict[str, tuple[str, str, str]]] = {
    "construction_scale": (
        "R16",
        "建设用地总规模不变（允许建设区面积）",
        "total planned construction scale (allowed-zone area) unchanged",
    ),
    "cultivated_retention": (
        "R16",
        "耕地保有量不减少（允许建设区外耕地净面积）",
        "cultivated land retained (net cultivated area outside the allowed zone) not reduced",
    ),
    "basic_farmland_quantity": (
        "R16",
        "基本农田数量不减少",
        "basic-farmland quantity unchanged",
    ),
    "basic_farmland_quality": (
        "R16",
        "基本农田质量不降低（水田占比）",
        "basic-farmland quality (paddy share) not lowered",
    ),
    "protected_zones": (
        "R15",
        "不得调整禁止建设区、不得在生态保护红线内新增允许建设区",
        "prohibited zone and eco red line left alone",
    ),
    "retired_sites": (
        "R15",
        "核减的允许建设区内不得有已定址项目",
        "no fixed project site inside the retired allowed zone",
    ),
}

def _union(geoms: Iterable[Any]) -> Any:
    arr = np.asarray([g for g in geoms if g is not None and not shapely.is_empty(g)], dtype=object)
    if arr.size == 0:
        return _EMPTY
    return polygonal(np.array([shapely.union_all(arr)], dtype=object))[0]


def _inter(a: Any, b: Any) -> Any:
    return polygonal(np.array([shapely.intersection(a, b)], dtype=object))[0]


def _diff(a: Any, b: Any) -> Any:
    return polygonal(np.array([shapely.difference(a, b)], dtype=object))[0]


@dataclass(frozen=True)
class R16Report:
    """The checks of a plan adjustment (R16, with the R15 consistency checks).

    Attributes
    ----------
    name : str
        The adjustment's name.
    checks : pandas.DataFrame
        One row per check of :data:`R16_CHECKS`: ``check``, ``rule``, ``what_zh``,
        ``what_en``, ``unit`` ('m2' or 'share'), ``before``, ``after``,
        ``change``, ``tolerance_m2``, ``passed``, ``failed_by_m2`` and
        ``failed_by_ha`` (0 when passed).
    areas : geopandas.GeoDataFrame
        The areas behind the figures, for maps: ``what`` (``made_allowed``,
        ``retired``, ``basic_farmland_taken``, ``protected_weakened``,
        ``sites_in_retired``), ``area_m2`` and the geometry (EPSG:4490).
    notes : tuple of str
        Remarks that do not fail a check (polygons with no effect).
    tolerance_m2 : float
        The tolerance used.
    """

    name: str
    checks: pd.DataFrame
    areas: gpd.GeoDataFrame
    notes: tuple[str, ...] = ()
    tolerance_m2: float = DEFAULT_TOLERANCE_M2

    @property
    def passed(self) -> bool:
        """Whether every check passed."""
        return bool(self.checks["passed"].all())

    def failures(self) -> pd.DataFrame:
        """Return the failed checks (rows of :attr:`checks`)."""
        return self.checks[~self.checks["passed"]].reset_index(drop=True)

    def __bool__(self) -> bool:
        return self.passed

    def _figures(self) -> list[dict[str, str]]:
        out = []
        for r in self.checks.to_dict("records"):
            if r["unit"] == "share":
                before, after = f"{r['before']:.4%}", f"{r['after']:.4%}"
            else:
                before, after = f"{r['before'] / _HA:,.4f} ha", f"{r['after'] / _HA:,.4f} ha"
            fail = (
                "" if r["passed"] else f"{r['failed_by_m2']:,.2f} m² = {r['failed_by_ha']:,.4f} ha"
            )
            out.append(
                {
                    "mark": "✓" if r["passed"] else "✗",
                    "zh": str(r["what_zh"]),
                    "en": str(r["what_en"]),
                    "rule": str(r["rule"]),
                    "before": before,
                    "after": after,
                    "fail": fail,
                }
            )
        return out

    def __str__(self) -> str:
        verdict = "通过 PASSED" if self.passed else "未通过 FAILED"
        lines = [f"规划调整审查 R16 check of {self.name!r}: {verdict}"]
        for r in self._figures():
            line = (
                f"  {r['mark']} {r['zh']} / {r['en']} ({r['rule']}): {r['before']} → {r['after']}"
            )
            if r["fail"]:
                line += f"; 差 fails by {r['fail']}"
            lines.append(line)
        lines.extend(f"  注 note: {n}" for n in self.notes)
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        verdict = "通过 PASSED" if self.passed else "未通过 FAILED"
        colour = "#1a7f37" if self.passed else "#cf222e"
        rows = []
        for r in self._figures():
            style = " style='color:#cf222e'" if r["fail"] else ""
            rows.append(
                f"<tr{style}><td>{r['mark']}</td>"
                f"<td>{html.escape(r['zh'])}<br><small>{html.escape(r['en'])}</small></td>"
                f"<td>{html.escape(r['rule'])}</td><td style='text-align:right'>{r['before']}</td>"
                f"<td style='text-align:right'>{r['after']}</td>"
                f"<td style='text-align:right'>{html.escape(r['fail'])}</td></tr>"
            )
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in self.notes)
        return (
            f"<b>R16 check of {html.escape(self.name)}: "
            f"<span style='color:{colour}'>{verdict}</span></b>"
            "<table><tr><th></th><th>check 审查项</th><th>rule</th><th>before 调整前</th>"
            "<th>after 调整后</th><th>fails by 差额</th></tr>"
            + "".join(rows)
            + "</table>"
            + (f"<ul>{notes}</ul>" if notes else "")
        )


@dataclass(frozen=True)
class _PlanFrames:
    zones: gpd.GeoDataFrame
    lines: gpd.GeoDataFrame
    parcels: gpd.GeoDataFrame
    cultivated_total_m2: float
    projects: gpd.GeoDataFrame | None


def _cultivated_codes() -> list[str]:
    from landquota.rules.landclasses import LAND_CLASSES

    return sorted(code for code, c in LAND_CLASSES.items() if c.cultivated)


def _select_version(frame: gpd.GeoDataFrame, version: str | None, layer: str) -> gpd.GeoDataFrame:
    versions = sorted({str(v) for v in frame["plan_version"].dropna()}) if len(frame) else []
    if version is None:
        if len(versions) > 1:
            raise ParameterError(
                f"{layer} holds plan versions {versions}; give the adjustment a plan_version"
            )
        return frame
    if len(frame) and version not in versions:
        raise ParameterError(
            f"plan_version={version!r} is not in {layer}; its versions are {versions}"
        )
    return frame[frame["plan_version"].astype(str) == version]


def _cultivated_total(parcels: pd.DataFrame) -> float:
    from landquota.rules.landclasses import is_cultivated

    if not len(parcels):
        return 0.0
    mask = is_cultivated(parcels["land_class"], where="parcels.land_class")
    return float(pd.to_numeric(parcels.loc[mask, "net_m2"]).sum())


def _net(
    parts: Mapping[str, Any], parcels: gpd.GeoDataFrame, centre: Centre | None
) -> dict[str, tuple[float, float]]:
    """Net cultivated and net paddy area (R2) of each named area, from the survey patches."""
    from landquota.rules.demand import demand_from_sites

    names = [k for k, g in parts.items() if not shapely.is_empty(g)]
    out = {k: (0.0, 0.0) for k in parts}
    if not names or not len(parcels):
        return out
    sites = gpd.GeoDataFrame(
        {"project_id": pd.Series(names, dtype="str")},
        geometry=gpd.GeoSeries(np.asarray([parts[k] for k in names], dtype=object), crs=CRS_EPSG),
        crs=CRS_EPSG,
    )
    d = demand_from_sites(sites, parcels, check_coverage=False, centre=centre)
    table = d.table.set_index("project_id")
    cultivated = table["cultivated_m2"].to_dict()
    paddy = table["paddy_m2"].to_dict()
    for k in names:
        out[k] = (float(cultivated[k]), float(paddy[k]))
    return out


def _row(
    check: str, unit: str, before: float, after: float, failed_by: float, tol: float
) -> dict[str, Any]:
    rule, zh, en = R16_CHECKS[check]
    failed = failed_by > tol
    return {
        "check": check,
        "rule": rule,
        "what_zh": zh,
        "what_en": en,
        "unit": unit,
        "before": before,
        "after": after,
        "change": after - before,
        "tolerance_m2": tol,
        "passed": not failed,
        "failed_by_m2": failed_by if failed else 0.0,
        "failed_by_ha": failed_by / _HA if failed else 0.0,
    }


# --------------------------------------------------------------------------- retirement


def retirement_polygons(
    ws_or_frames: Workspace | Mapping[str, pd.DataFrame],
    area_m2: float,
    *,
    avoid: Sequence[Any] | gpd.GeoSeries | None = None,
    plan_version: str | None = None,
    prefer_cultivated: bool = True,
) -> gpd.GeoSeries:
    """Choose allowed zone to retire: pieces of free allowed zone adding up to *area_m2*.

    Candidates are the allowed zone less the fixed project sites, the stock
    land and the linkage plots (and *avoid*), cut by the survey patches.
    Cultivated pieces come first (retiring them raises the cultivated-land
    retention, R16), largest first; the last piece is trimmed from the west so
    that the total matches *area_m2* to 0.01 m² (R1 areas, the measure of
    :func:`check_r16`).

    Parameters
    ----------
    ws_or_frames : Workspace or mapping of str to frames
        Needs ``plan_zones`` and ``parcels``; uses ``projects``, ``stock_land``
        and ``linkage_plots`` when present.
    area_m2 : float
        Area to retire, m² (> 0).
    avoid : GeoSeries or sequence of shapes, optional
        More areas not to retire (say, the polygons being made allowed).
    plan_version : str, optional
        Plan version of the zones.
    prefer_cultivated : bool, default True
        Take cultivated pieces first.

    Returns
    -------
    geopandas.GeoSeries
        MultiPolygons, EPSG:4490, inside the allowed zone, not overlapping.

    Raises
    ------
    ParameterError
        A bad area, or not enough free allowed zone.
    """
    if not (isinstance(area_m2, int | float) and area_m2 > 0):
        raise ParameterError(f"area_m2={area_m2!r}; give the area to retire in m² (> 0)")

    def layer_of(name: str) -> pd.DataFrame | None:
        if isinstance(ws_or_frames, Mapping):
            return ws_or_frames.get(name)
        return ws_or_frames.read_layer(name)

    zones = layer_of("plan_zones")
    if zones is None:
        raise ParameterError("ws_or_frames has no 'plan_zones'")
    zones = _select_version(gpd.GeoDataFrame(zones), plan_version, "plan_zones")
    allowed = _union(zones.loc[zones["zone_type"] == "allowed"].geometry.array)
    blocked: list[Any] = []
    for name in ("projects", "stock_land", "linkage_plots"):
        frame = layer_of(name)
        if frame is not None and len(frame):
            blocked.extend(g for g in gpd.GeoDataFrame(frame).geometry.array if g is not None)
    if avoid is not None:
        blocked.extend(avoid.array if isinstance(avoid, gpd.GeoSeries) else avoid)
    free = _diff(allowed, _union(blocked))
    if isinstance(ws_or_frames, Mapping):
        parcels = gpd.GeoDataFrame(ws_or_frames["parcels"])
    else:
        from landquota.rules.parcel_reads import read_parcels_near

        parcels = read_parcels_near(
            ws_or_frames, np.asarray(shapely.get_parts(np.array([free])), dtype=object)
        )
    from landquota.rules.landclasses import is_cultivated

    pgeoms = np.asarray(parcels.geometry.array, dtype=object)
    tree = shapely.STRtree(pgeoms)
    hit = tree.query(free, predicate="intersects")
    pieces = polygonal(np.asarray(shapely.intersection(pgeoms[hit], free), dtype=object))
    centre = sites_centre(np.array([allowed], dtype=object))
    sizes = measure(pieces, centre, name="pieces")
    cult = (
        is_cultivated(parcels["land_class"].iloc[hit], where="parcels.land_class")
        if prefer_cultivated
        else np.zeros(len(hit), dtype=bool)
    )
    keep = sizes > 1.0
    order = np.lexsort((parcels["parcel_id"].astype(str).to_numpy()[hit], -sizes, ~cult))
    order = order[keep[order]]
    chosen: list[Any] = []
    total = 0.0
    for k in order:
        if total + sizes[k] <= area_m2:
            chosen.append(pieces[k])
            total += float(sizes[k])
            if area_m2 - total <= 0.01:
                break
            continue
        chosen.append(_trim(pieces[k], area_m2 - total, centre))
        total = area_m2
        break
    if area_m2 - total > 0.01:
        raise ParameterError(
            f"area_m2={area_m2:,.1f}: only {total:,.1f} m² of allowed zone are free of project "
            "sites, stock land and linkage plots; retire less or free more"
        )
    return gpd.GeoSeries(np.asarray(chosen, dtype=object), crs=CRS_EPSG)


def _trim(piece: Any, target: float, centre: Centre | None) -> Any:
    """Return the west part of *piece* whose area is *target* (bisection on a meridian)."""
    xmin, ymin, xmax, ymax = shapely.bounds(piece)
    lo, hi = float(xmin), float(xmax)
    best = piece
    for _ in range(80):
        mid = (lo + hi) / 2.0
        part = _inter(piece, shapely.box(xmin - 1.0, ymin - 1.0, mid, ymax + 1.0))
        a = float(measure(np.array([part], dtype=object), centre, name="trim")[0])
        best = part
        if abs(a - target) <= 0.001:
            break
        if a < target:
            lo = mid
        else:
            hi = mid
    return best

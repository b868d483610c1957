"""The overlays of the HTML map: land use, plans, stock land, linkage, key projects, outlines.

Each builder turns one workspace layer into an :class:`_Overlay` (encoded features, their
styles, the legend entries and the popups); :func:`landquota.outputs.maps.build_map` writes
the overlays into the page. The county mode dissolves the survey patches by display class;
the tiled mode (:mod:`landquota.outputs.tiled`) keeps every patch clickable at city scale.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray

from landquota.errors import DataError
from landquota.outputs import symbology as sym
from landquota.outputs.map_geometry import (
    DISPLAY_TOLERANCE_DEG,
    _areas_m2,
    _dissolve,
    _encode,
    _geoms,
    _polygonal,
)
from landquota.outputs.map_popups import (
    _ACCEPT,
    _CAUSE,
    _COHORT_COLOURS,
    _DISPOSAL,
    _LINES,
    _OUTCOMES,
    _OVERLAY_NAMES,
    _PATCH_CLASSES,
    _ROLES,
    _STAFF,
    _STOCK_KIND,
    _STOCK_STATUS,
    _ZONES,
    _fmt_date,
    _fmt_m2,
    _fmt_yuan,
    _present,
    _project_popup,
    _stage_rows,
    _text,
    _use,
)
from landquota.outputs.stage_map import STAGE_COLOURS, StageInfo
from landquota.rules.pipeline import STAGE_LABELS
from landquota.store.schema import CONTROL_KINDS, PLOT_ROLES


def _display_classes(codes: Iterable[Any]) -> NDArray[np.object_]:
    """:func:`land_display_class` of each code, vectorised (one lookup per distinct code)."""
    raw = codes if isinstance(codes, pd.Series) else pd.Series(np.asarray(codes, dtype=object))
    text = raw.astype(object).where(raw.notna())
    text = text.map(lambda c: str(c).strip().upper(), na_action="ignore")
    index, uniques = pd.factorize(text, use_na_sentinel=True)
    table = np.array([sym.land_display_class(u) for u in uniques] + ["unknown"], dtype=object)
    return np.asarray(table[index], dtype=object)  # index -1 (missing) takes the last: unknown


class _Overlay:
    """Features, styles and legend entries of one overlay, before it becomes a FeatureGroup."""

    def __init__(self, key: str, *, show: bool = True) -> None:
        self.key = key
        self.name = _OVERLAY_NAMES[key]
        self.show = show
        self.features: list[dict[str, Any]] = []
        self.styles: dict[str, dict[str, Any]] = {}
        self.legend: list[dict[str, Any]] = []
        #: own map pane (and canvas), drawn at this opacity, or None for the overlay pane
        self.pane: str | None = None
        self.pane_opacity = 0.8
        #: more keys of the layer's JSON block (the tiled mode's levels of detail)
        self.extra: dict[str, Any] = {}
        #: patch tiles of the tiled mode (landquota.outputs.tiled.encode_tiles), or None
        self.tiles: dict[str, Any] | None = None

    def style(self, key: str, legend: str | None = None, **options: Any) -> str:
        if key not in self.styles:
            options = {k: v for k, v in options.items() if v is not None}
            self.styles[key] = options
            if legend is not None:
                self.legend.append(
                    {
                        "label": legend,
                        "fill": options.get("fillColor") if options.get("fill", True) else None,
                        "stroke": options.get("color", options.get("fillColor")),
                        "dash": bool(options.get("dashArray")),
                    }
                )
        return key

    def add(self, geoms: Any, style: str, **extra: Any) -> dict[str, Any]:
        feature: dict[str, Any] = {"s": style}
        code = _encode(geoms) if geoms is not None else None
        if code is not None:
            feature.update(code)
        feature.update({k: v for k, v in extra.items() if v is not None})
        self.features.append(feature)
        return feature


def _outline_layers(frames: Mapping[str, pd.DataFrame]) -> list[_Overlay]:
    out = []
    if "towns" in frames:
        towns = frames["towns"]
        ov = _Overlay("towns")
        st = ov.style(
            "town",
            sym.TOWNS.label,
            color=sym.TOWNS.stroke,
            weight=sym.TOWNS.stroke_width,
            dashArray="6 4",
            fill=False,
            interactive=False,
        )
        simple = shapely.simplify(_geoms(towns), DISPLAY_TOLERANCE_DEG, preserve_topology=True)
        points = shapely.point_on_surface(_geoms(towns))
        for g, pt, name in zip(simple, points, towns["name"], strict=True):
            label = None
            if _present(pt) and not pt.is_empty:
                label = {"text": _text(name), "lat": round(pt.y, 5), "lng": round(pt.x, 5)}
            ov.add(g, st, label=label)
        out.append(ov)
    if "county" in frames:
        ov = _Overlay("county")
        st = ov.style(
            "county",
            sym.COUNTY.label,
            color=sym.COUNTY.stroke,
            weight=sym.COUNTY.stroke_width,
            fill=False,
            interactive=False,
        )
        ov.add(
            shapely.simplify(
                _geoms(frames["county"]), DISPLAY_TOLERANCE_DEG, preserve_topology=True
            ),
            st,
        )
        out.append(ov)
    return out


#: Shells painted per feature; see the chunking note in the JS runtime.
_SHELLS_PER_FEATURE = 24


def _patch_layer(parcels: gpd.GeoDataFrame, bar: Any) -> _Overlay:
    """Patches dissolved by class, painted as hole-less shells, largest first.

    A dissolved class can be one polygon with thousands of holes, and Chromium's
    canvas fills such a path in seconds. In a coverage every hole of a class is
    filled by patches of other classes, all smaller than the shell around them, so
    painting shells without holes in order of decreasing area gives the same
    picture (painter's algorithm); each feature then holds a few shells of one
    class. A gap in the survey (no patch at all) shows the colour around it.
    """
    ov = _Overlay("parcels")
    ov.pane = "lq-patches"
    classes = _display_classes(parcels["land_class"])
    groups = _dissolve(_geoms(parcels), classes, DISPLAY_TOLERANCE_DEG, bar)
    bar.set_postfix_str("encoding patches")
    shells, keys = [], []
    for key, (label, colour) in _PATCH_CLASSES.items():
        if key in groups:
            ov.style(key, label, stroke=False, fillColor=colour, fillOpacity=1.0, interactive=False)
            polys = shapely.get_parts(groups[key])
            polys = polys[shapely.get_type_id(polys) == 3]
            shells.append(shapely.polygons(shapely.get_exterior_ring(polys)))
            keys.append(np.full(len(polys), key, dtype=object))
    if shells:
        all_shells, all_keys = np.concatenate(shells), np.concatenate(keys)
        order = np.argsort(-shapely.area(all_shells), kind="stable")
        all_shells, all_keys = all_shells[order], all_keys[order]
        start = 0
        for i in range(1, len(all_keys) + 1):
            if (
                i == len(all_keys)
                or all_keys[i] != all_keys[start]
                or i - start == _SHELLS_PER_FEATURE
            ):
                ov.add(all_shells[start:i], str(all_keys[start]))
                start = i
    bar.update()
    return ov


def _tiled_patch_layer(parcels: gpd.GeoDataFrame, bar: Any) -> _Overlay:
    """City scale: levels of detail for low zooms, every patch from tiles at street zoom.

    See :mod:`landquota.outputs.tiled` and ``docs/maps.md`` (tiled mode).
    """
    from landquota.outputs import tiled
    from landquota.rules.landclasses import LAND_CLASSES

    if "parcel_id" not in parcels.columns:
        raise DataError(
            "layer 'parcels' has no column 'parcel_id'; the tiled map shows each patch's id "
            f"in its popup. It has {list(parcels.columns)}"
        )
    ov = _Overlay("parcels")
    ov.pane = "lq-patches"
    geoms = _geoms(parcels)
    ok = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    parcels, geoms = parcels[ok], _polygonal(geoms[ok])
    display = _display_classes(parcels["land_class"])
    for key, (label, colour) in _PATCH_CLASSES.items():
        if (display == key).any():
            ov.style(key, label, stroke=False, fillColor=colour, fillOpacity=1.0, interactive=False)
    ov.extra["lods"] = [[lod.min_zoom, lod.max_zoom] for lod in tiled.LODS]
    for level, lod in enumerate(tiled.LODS):
        bar.set_postfix_str(f"level of detail {level} (zoom {lod.min_zoom}-{lod.max_zoom})")
        shells, keys = tiled.lod_shells(geoms, display, lod)
        # Largest first, but by area class (factor 4) and then by land class, so that a
        # path holds up to 24 shells of one class (sorted strictly by area, neighbours in
        # the order mostly differ in class: 1 shell per path, 10x the layers). Within an
        # area class a small shell is rarely inside a hole of a bigger one; if it is, it
        # is hidden at these zooms (a level of detail) and shows from the patch tiles on.
        # Inside a run, shells are grouped by the zoom-10 tile of their centre (~35 km), so
        # that a path's bounds are compact and Leaflet skips the paths outside the view.
        size = np.floor(np.log(np.maximum(shapely.area(shells), 1e-18)) / np.log(4.0))
        cls_rank = pd.factorize(keys)[0]
        c = shapely.get_coordinates(shapely.centroid(shells))
        cell = tiled.tile_of(c[:, 0], c[:, 1], 10)
        where = cell[:, 0] * 1024 + cell[:, 1]
        order = np.lexsort((where, cls_rank, -size))
        shells, keys, size = shells[order], keys[order], size[order]
        where = where[order]
        change = np.r_[
            True, (keys[1:] != keys[:-1]) | (size[1:] != size[:-1]) | (where[1:] != where[:-1])
        ]
        runs = [*np.flatnonzero(change).tolist(), len(keys)]
        for a, b in itertools.pairwise(runs):
            for start in range(a, b, _SHELLS_PER_FEATURE):
                end = min(start + _SHELLS_PER_FEATURE, b)
                ov.add(shells[start:end], str(keys[start]), z=level)
        bar.update()
    bar.set_postfix_str(f"encoding {len(geoms):,} patches into tiles")
    codes = parcels["land_class"].astype(object).where(parcels["land_class"].notna(), "")
    code_index, uniques = pd.factorize(codes.map(lambda c: str(c).strip().upper()))
    table = []
    for code in uniques:
        lc = LAND_CLASSES.get(code)
        label = f"{code} {lc.name_zh} {lc.name_en}" if lc else f"{code or '—'} 未知地类 unknown class"
        table.append([label, _PATCH_CLASSES[sym.land_display_class(code)][1]])
    if "net_m2" in parcels.columns:
        area = pd.to_numeric(parcels["net_m2"], errors="coerce").to_numpy(np.float64)
    else:
        area = _areas_m2(parcels.geometry)
    ov.tiles = tiled.encode_tiles(
        geoms, code_index, area, parcels["parcel_id"].astype(str).to_numpy(dtype=object)
    )
    ov.tiles.update(classes=table, paneOpacity=ov.pane_opacity)
    bar.update()
    return ov


def _zone_layers(frames: Mapping[str, pd.DataFrame], bar: Any) -> list[_Overlay]:
    out = []
    if "plan_zones" in frames:
        zones = frames["plan_zones"]
        ov = _Overlay("plan_zones", show=False)
        keys = _group_keys(zones, "zone_type")
        groups = _dissolve(_geoms(zones), keys, DISPLAY_TOLERANCE_DEG, bar)
        for (zone, version), parts in sorted(groups.items(), key=lambda kv: _order(kv[0], _ZONES)):
            label, colour = _ZONES[zone]
            st = ov.style(zone, label, color=colour, weight=1, fillColor=colour, fillOpacity=0.35)
            rows = [["分区 Zone", label], ["规划版本 Plan version", _text(version)]]
            ov.add(parts, st, p={"title": _OVERLAY_NAMES["plan_zones"], "rows": rows}, t=label)
        out.append(ov)
    if "control_lines" in frames:
        lines = frames["control_lines"]
        keys = _group_keys(lines, "kind")
        groups = _dissolve(_geoms(lines), keys, DISPLAY_TOLERANCE_DEG, bar)
        for kind in CONTROL_KINDS:
            mine = {k: v for k, v in groups.items() if k[0] == kind}
            if not mine:
                continue
            label, colour, fill, opacity = _LINES[kind]
            ov = _Overlay(kind)
            st = ov.style(
                kind,
                label,
                color=colour,
                weight=1.5,
                fill=fill is not None,
                fillColor=fill,
                fillOpacity=opacity,
                dashArray="8 4" if kind == "urban_boundary" else None,
            )
            for (_, version), parts in sorted(mine.items(), key=lambda kv: str(kv[0][1])):
                rows = [["控制线 Line", label], ["规划版本 Plan version", _text(version)]]
                ov.add(parts, st, p={"title": label, "rows": rows}, t=label)
            out.append(ov)
    return out


def _group_keys(frame: pd.DataFrame, column: str) -> np.ndarray:
    version = (
        frame["plan_version"]
        if "plan_version" in frame.columns
        else pd.Series([None] * len(frame), index=frame.index)
    )
    keys = np.empty(len(frame), dtype=object)
    keys[:] = list(zip(frame[column].astype(str), version.map(_text), strict=True))
    return keys


def _order(key: tuple[str, str], table: Mapping[str, Any]) -> tuple[int, str]:
    return (list(table).index(key[0]), str(key[1]))


def _stock_table(stock: gpd.GeoDataFrame, idle: pd.DataFrame | None) -> pd.DataFrame:
    """Status, cohort, days idle, fee and area per stock parcel (the ``idle`` frame wins)."""
    table = pd.DataFrame({"stock_id": stock["stock_id"].astype(str).to_numpy()})
    approval = (
        pd.to_datetime(stock["approval_date"]).to_numpy()
        if "approval_date" in stock.columns
        else np.full(len(stock), np.datetime64("NaT"))
    )
    years = pd.DatetimeIndex(approval).year
    table["cohort"] = [str(int(y)) if _present(y) else None for y in years]
    if idle is None:
        # Without a review the map only knows the recorded kind: approved land is
        # shown by cohort, supplied land as not reviewed (pass landquota.rules.stock.idle_review).
        table["status"] = np.where(
            stock["kind"].to_numpy() == "approved_unsupplied", "approved_unsupplied", "unreviewed"
        )
        table["days_idle"] = np.nan
        table["fee_due_yuan"] = np.nan
        table["area_m2"] = np.nan
    else:
        review = idle.assign(stock_id=idle["stock_id"].astype(str)).set_index("stock_id")
        joined = review.reindex(table["stock_id"])
        table["status"] = joined["status"].where(joined["status"].notna(), "unreviewed").to_numpy()
        for column in ("days_idle", "fee_due_yuan", "area_m2"):
            table[column] = (
                joined[column].astype("float64").to_numpy() if column in joined.columns else np.nan
            )
        if "cohort" in joined.columns:
            given = [_text(c) if _present(c) else None for c in joined["cohort"]]
            table["cohort"] = [
                g if g is not None else c for g, c in zip(given, table["cohort"], strict=True)
            ]
    missing_area = table["area_m2"].isna().to_numpy()
    if missing_area.any():
        table.loc[missing_area, "area_m2"] = _areas_m2(stock.geometry[missing_area])
    return table


def _stock_layer(stock: gpd.GeoDataFrame, idle: pd.DataFrame | None) -> _Overlay:
    ov = _Overlay("stock_land")
    table = _stock_table(stock, idle)
    cohorts = sorted(
        {
            c
            for c, s in zip(table["cohort"], table["status"], strict=True)
            if s == "approved_unsupplied" and c is not None
        }
    )
    # Styles are declared in legend order: statuses, then the unsupplied cohorts.
    for status, (label, colour) in _STOCK_STATUS.items():
        if status == "approved_unsupplied":
            for i, year in enumerate(cohorts):
                c = _COHORT_COLOURS[i % len(_COHORT_COLOURS)]
                ov.style(
                    f"cohort:{year}",
                    f"{label} · {year} 年批次 cohort",
                    color=c,
                    weight=1.5,
                    fillColor=c,
                    fillOpacity=0.45,
                )
            if (table["status"].eq(status) & table["cohort"].isna()).any():
                ov.style(
                    status,
                    f"{label} · 年份不详 cohort unknown",
                    color=colour,
                    weight=1.5,
                    fillColor=colour,
                    fillOpacity=0.45,
                )
        elif table["status"].eq(status).any():
            ov.style(
                status,
                label,
                color=colour,
                weight=1.5,
                fillColor=colour,
                fillOpacity=0.45,
                dashArray="5 3" if status == "lapsed" else None,
            )
    rows_iter = zip(stock.itertuples(index=False), table.itertuples(index=False), strict=True)
    for i, (row, trow) in enumerate(rows_iter):
        status = str(trow.status)
        cohort: Any = trow.cohort
        key = f"cohort:{cohort!s}" if status == "approved_unsupplied" and cohort else status
        label = _STOCK_STATUS[status][0]
        rows: list[list[str]] = [
            ["编号 ID", _text(row.stock_id)],
            ["类型 Kind", _STOCK_KIND.get(str(row.kind), _text(row.kind))],
            ["状态 Status", label],
            ["面积 Area", _fmt_m2(trow.area_m2)],
        ]
        for column, lab, fmt in (
            ("town", "乡镇 Town", _text),
            ("approval_batch", "批次 Approval batch", _text),
            ("approval_date", "批准日期 Approved", _fmt_date),
            ("supply_date", "供地日期 Supplied", _fmt_date),
            ("agreed_start_date", "约定开工 Agreed start", _fmt_date),
            ("planned_use", "规划用途 Planned use", _use),
        ):
            value = getattr(row, column, None)
            if _present(value):
                rows.append([lab, fmt(value)])
        if cohort and status in ("approved_unsupplied", "lapsed"):
            rows.append(["批次年度 Cohort", str(cohort)])
        days: Any = trow.days_idle
        if _present(days):
            rows.append(["闲置天数 Days idle", f"{int(days):,} 天 days"])
        if _present(trow.fee_due_yuan):
            rows.append(["应缴闲置费 Idle fee due (R11)", _fmt_yuan(trow.fee_due_yuan)])
        cause = getattr(row, "cause", None)
        if status == "idle" and _present(cause):
            rows.append(["闲置原因 Cause", _CAUSE.get(str(cause), str(cause))])
        method = getattr(row, "disposal_method", None)
        if _present(method) and str(method) != "none":
            rows.append(["处置方式 Disposal", _DISPOSAL.get(str(method), str(method))])
        ov.add(
            stock.geometry.iloc[i],
            key,
            p={"title": f"存量土地 Stock land {_text(row.stock_id)}", "rows": rows},
            t=f"{_text(row.stock_id)} · {label}",
        )
    return ov


def _linkage_layer(plots: gpd.GeoDataFrame, areas: pd.DataFrame | None) -> _Overlay:
    ov = _Overlay("linkage")
    area_info = (
        {} if areas is None else {str(r.linkage_id): r for r in areas.itertuples(index=False)}
    )
    colours = {role: str(s.fill) for role, s in sym.LINKAGE_ROLES.items()}
    for role in PLOT_ROLES:
        ov.style(
            role,
            _ROLES[role],
            color=colours[role],
            weight=1.5,
            fillColor=colours[role],
            fillOpacity=0.5,
        )
    link = ov.style(
        "link",
        "挂钩关系 Linkage (demolition → construction)",
        color="#542788",
        weight=2,
        dashArray="6 4",
        fill=False,
    )
    areas_m2 = plots["reclaimed_m2"] if "reclaimed_m2" in plots.columns else None
    plot_area = _areas_m2(plots.geometry)
    for i, row in enumerate(plots.itertuples(index=False)):
        info = area_info.get(str(row.linkage_id))
        area_name = _text(info.name) if info is not None else _text(row.linkage_id)
        rows = [
            ["编号 ID", _text(row.plot_id)],
            ["项目区 Project area", f"{area_name} ({_text(row.linkage_id)})"],
            ["类型 Role", _ROLES[str(row.role)]],
            ["面积 Area", _fmt_m2(plot_area[i])],
        ]
        if areas_m2 is not None and _present(areas_m2.iloc[i]):
            rows.append(["已复垦 Reclaimed", _fmt_m2(areas_m2.iloc[i])])
        cult = getattr(row, "reclaimed_cultivated_m2", None)
        if _present(cult):
            rows.append(["复垦耕地 Reclaimed cultivated (R7)", _fmt_m2(cult)])
        if info is not None:
            rows.append(["批准日期 Approved", _fmt_date(getattr(info, "approval_date", None))])
            rows.append(
                ["验收 Acceptance (R5)", _ACCEPT.get(str(getattr(info, "acceptance", "")), "—")]
            )
        ov.add(
            plots.geometry.iloc[i],
            str(row.role),
            p={"title": f"增减挂钩 Linkage plot {_text(row.plot_id)}", "rows": rows},
            t=f"{area_name} · {_ROLES[str(row.role)]}",
        )
    # One dashed line from each demolition plot to the new-construction plots of its area.
    points = shapely.point_on_surface(_geoms(plots))
    for linkage_id, group in plots.groupby(plots["linkage_id"].astype(str), sort=True):
        idx = group.index.to_numpy()
        pos = plots.index.get_indexer(idx)
        built = pos[group["role"].to_numpy() == "construction"]
        razed = pos[group["role"].to_numpy() == "demolition"]
        if len(built) == 0 or len(razed) == 0:
            continue
        target = shapely.point_on_surface(shapely.union_all(_geoms(plots)[built]))
        lines = shapely.linestrings([[(p.x, p.y), (target.x, target.y)] for p in points[razed]])
        info = area_info.get(linkage_id)
        ov.add(lines, link, t=f"{_text(info.name) if info is not None else linkage_id}")
    return ov


def _project_layer(
    projects: gpd.GeoDataFrame,
    stock: gpd.GeoDataFrame | None,
    allocations: pd.DataFrame | None,
    demand: pd.DataFrame | None,
    stages: StageInfo | None = None,
) -> tuple[_Overlay, list[str]]:
    ov = _Overlay("projects")
    alloc = (
        {}
        if allocations is None
        else {str(r["project_id"]): r for r in allocations.to_dict("records")}
    )
    need = {} if demand is None else {str(r["project_id"]): r for r in demand.to_dict("records")}
    stock_geom = (
        {}
        if stock is None
        else dict(zip(stock["stock_id"].astype(str), stock.geometry, strict=True))
    )
    outcomes = [
        str(alloc[pid]["outcome"]) if pid in alloc else "not_allocated"
        for pid in projects["project_id"].astype(str)
    ]
    counts = pd.Series(outcomes).value_counts()
    for outcome, (label, colour) in _OUTCOMES.items():
        if outcome in counts.index:
            ov.style(
                outcome,
                f"{label} ({counts[outcome]})",
                color=colour,
                weight=2,
                fillColor=colour,
                fillOpacity=0.6,
            )
    notes: list[str] = []
    unsited = 0
    for row, outcome in zip(projects.to_dict("records"), outcomes, strict=True):
        pid = str(row["project_id"])
        a, d = alloc.get(pid), need.get(pid)
        geom = row.get("geometry")
        style = outcome
        if not _present(geom) or geom.is_empty:
            sid = _text(a.get("stock_id")) if a is not None else "—"
            geom = stock_geom.get(sid)
            if geom is not None:  # site not fixed: shown on the stock parcel it was matched to
                style = ov.style(
                    f"{outcome}:stock",
                    "虚线：场址未定，显示匹配的存量地块 "
                    "dashed: site not fixed, shown on its matched stock parcel",
                    color=_OUTCOMES[outcome][1],
                    weight=2.5,
                    dashArray="5 4",
                    fillColor=_OUTCOMES[outcome][1],
                    fillOpacity=0.2,
                )
            else:
                unsited += 1
        ov.add(
            geom,
            style,
            p=_project_popup(row, outcome, a, d, stages),
            t=_text(row["name"]),
            n=_text(row["name"]),
            id=pid,
        )
    if unsited:
        notes.append(
            f"{unsited} 个项目场址未定、未上图（可搜索）; {unsited} project(s) without a "
            "fixed site are not drawn (searchable)"
        )
    return ov, notes


def _stage_layer(projects: gpd.GeoDataFrame, stages: StageInfo) -> _Overlay:
    """Sites coloured by current approval stage (issue 14); off until switched on."""
    ov = _Overlay("project_stages", show=False)
    pids = projects["project_id"].astype(str).tolist()
    current = [stages.current.get(p, "none") for p in pids]
    counts = pd.Series(current).value_counts()
    for code, colour in STAGE_COLOURS.items():
        if code in counts.index:
            zh, en = STAGE_LABELS[code]
            ov.style(code, f"{zh} {en} ({counts[code]})", color="#555555", weight=1,
                     fillColor=colour, fillOpacity=0.75)
    for row, code in zip(projects.to_dict("records"), current, strict=True):
        geom = row.get("geometry")
        if not _present(geom) or geom.is_empty:
            continue
        pid = str(row["project_id"])
        rows = [["编号 ID", pid], *_stage_rows(pid, stages), ["三级服务 Service staff"]]
        rows += [[label, _text(row.get(column))] for column, label in _STAFF]
        ov.add(geom, code, p={"title": _text(row["name"]), "rows": rows}, t=_text(row["name"]))
    return ov

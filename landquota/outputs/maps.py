"""Offline Folium maps of the county: land use, plans, stock land, linkage and key projects.

:func:`build_map` turns the workspace layers (and optionally an allocation run, the
demand table and an idle-land review) into a :class:`folium.Map`; :func:`save_map`
writes it as one self-contained UTF-8 HTML file that fetches nothing: Leaflet is
inlined from ``landquota/outputs/_vendor`` and there is no basemap unless the bureau's own
tile server is given.

County scale (10⁵–10⁶ survey patches) is handled by dissolving patches by display
class after a topology-preserving coverage simplification, quantising coordinates
to 1e-5° (about 1 m), delta-coding them into one compact JSON block per layer and
drawing on a canvas. ``docs/maps.md`` explains the choices and the measured cost.
"""

from __future__ import annotations

import html
import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from branca.element import MacroElement
from jinja2 import Template
from numpy.typing import NDArray
from pyproj import CRS

from landquota import labels as lbl
from landquota._progress import progress_bar
from landquota.errors import CRSError, DataError, LayerError, ParameterError
from landquota.outputs import symbology as sym
from landquota.outputs._mapjs import external_references, inline_leaflet, json_for_html
from landquota.outputs.stage_map import STAGE_COLOURS, StageInfo
from landquota.rules.pipeline import STAGE_LABELS
from landquota.store.schema import (
    ALLOCATION_OUTCOMES,
    CONTROL_KINDS,
    CRS_EPSG,
    LAYERS,
    LEVELS,
    PLOT_ROLES,
    STOCK_KINDS,
    ZONE_TYPES,
)

if TYPE_CHECKING:
    from landquota.store.workspace import Workspace

__all__ = [
    "DISPLAY_TOLERANCE_DEG",
    "MAP_LAYERS",
    "build_map",
    "land_display_class",
    "map_workspace",
    "save_map",
]

#: Layers :func:`build_map` draws, in drawing order (later ones on top).
MAP_LAYERS = (
    "parcels",
    "plan_zones",
    "control_lines",
    "stock_land",
    "linkage_areas",
    "linkage_plots",
    "projects",
    "towns",
    "county",
)

#: Simplification tolerance of the survey patches, plan zones and control lines, in
#: degrees (about 2 m): below one screen pixel up to zoom 16 at 24.5°N.
DISPLAY_TOLERANCE_DEG = 2e-5
#: Coordinates are stored as integers of 1e-5 degree (about 1.1 m north–south).
_SCALE = 100_000

# Columns each drawn layer needs beyond its geometry.
_REQUIRED: dict[str, tuple[str, ...]] = {
    "county": (),
    "towns": ("name",),
    "parcels": ("land_class",),
    "plan_zones": ("zone_type",),
    "control_lines": ("kind",),
    "stock_land": ("stock_id", "kind"),
    "linkage_areas": ("linkage_id", "name"),
    "linkage_plots": ("plot_id", "linkage_id", "role"),
    "projects": ("project_id", "name", "level"),
}

# --- display names (Chinese first, English beside) ---------------------------------

_OVERLAY_NAMES = {
    "county": "县界 County boundary",
    "towns": "乡镇界 Town boundaries",
    "parcels": "地类图斑 Land-use patches",
    "plan_zones": "建设用地管制分区 Plan control zones",
    **lbl.label_map(lbl.CONTROL_KIND_LABELS, capitalize=True),
    "stock_land": "存量土地 Stock land",
    "linkage": "增减挂钩 Linkage plots",
    "projects": "重点项目 Key projects",
    "project_stages": "重点项目报批阶段 Key projects by approval stage",
}

# Classes, colours and legend labels: one definition (landquota.outputs.symbology) for the
# map, the QGIS styles and project stored in the workspace, and the report charts.
_PATCH_CLASSES: dict[str, tuple[str, str]] = {
    key: (d.label, d.colour) for key, d in sym.LAND_DISPLAY.items()
}
_ZONES = {code: (s.label, str(s.fill)) for code, s in sym.ZONES.items()}
_LINES: dict[str, tuple[str, str, str | None, float]] = {
    # kind: (label, colour, fill colour, fill opacity)
    kind: (s.label, str(s.stroke), s.fill, s.fill_opacity if s.fill else 0.0)
    for kind, s in sym.CONTROL_LINES.items()
}
_STOCK_STATUS = {code: (s.label, str(s.fill)) for code, s in sym.STOCK_STATUSES.items()}
_COHORT_COLOURS = sym.STOCK_COHORT_COLOURS
_OUTCOMES = {code: (s.label, str(s.fill)) for code, s in sym.OUTCOMES.items()}

_LEVELS = lbl.label_map(lbl.LEVEL_LABELS)
_APPROVAL = lbl.label_map(lbl.APPROVAL_LABELS, capitalize=True)
_ROLES = lbl.label_map(lbl.PLOT_ROLE_LABELS, capitalize=True)
_ACCEPT = lbl.label_map(lbl.ACCEPTANCE_LABELS)
_CAUSE = lbl.label_map(lbl.CAUSE_LABELS)
_STOCK_KIND = lbl.label_map(lbl.STOCK_KIND_LABELS)
_DISPOSAL = lbl.label_map(lbl.DISPOSAL_METHOD_LABELS)

# Demand rows of the popup: column of the demand table -> label.
_DEMAND_ROWS = (
    ("site_m2", "场址面积 Site"),
    ("cultivated_m2", "耕地 Cultivated"),
    ("paddy_m2", "其中水田 of which paddy"),
    ("agricultural_m2", "农用地 Agricultural"),
    ("construction_m2", "建设用地 Construction"),
    ("unused_m2", "未利用地 Unused"),
    ("new_quota_m2", "需新增建设用地指标 New-quota need"),
    ("comp_area_m2", "需补充耕地 Compensation need: area"),
    ("comp_paddy_m2", "需补充水田 Compensation need: paddy"),
    ("comp_grain_kg", "需粮食产能 Compensation need: grain"),
)
# Allocation rows: column of the allocations table -> label naming the pool (ledger).
_ALLOC_ROWS = (
    ("new_quota_m2", "新增建设用地计划指标 Plan quota (new_construction)"),
    ("linkage_quota_m2", "增减挂钩节余指标 Linkage surplus (linkage_surplus)"),
    ("comp_area_m2", "补充耕地 Compensation area (comp_area)"),
    ("comp_paddy_m2", "补充水田 Compensation paddy (comp_paddy)"),
    ("comp_grain_kg", "粮食产能 Grain capacity (comp_grain)"),
)
_STAFF = (
    ("county_leader", "县领导 County leader"),
    ("town_cadre", "镇干部 Town cadre"),
    ("dept_cadre", "部门干部 Department cadre"),
)
_IDLE_STATUSES = frozenset(_STOCK_STATUS) - {"unreviewed"}


# --- formatting -----------------------------------------------------------------


def _present(v: Any) -> bool:
    if v is None:
        return False
    try:
        return not bool(pd.isna(v))
    except (TypeError, ValueError):  # arrays and other containers count as present
        return True


def _fmt_m2(v: Any) -> str:
    """``12,345 m² (1.23 ha, 18.52 亩)``; 1 ha = 10,000 m² = 15 mu exactly."""
    if not _present(v):
        return "—"
    x = float(v)
    return f"{x:,.0f} m² ({x / 10_000:,.2f} ha, {x * 15 / 10_000:,.2f} 亩)"


def _fmt_kg(v: Any) -> str:
    return f"{float(v):,.0f} kg/年" if _present(v) else "—"


def _fmt_yuan(v: Any) -> str:
    return f"{float(v):,.0f} 元 yuan" if _present(v) else "—"


def _fmt_date(v: Any) -> str:
    return pd.Timestamp(v).date().isoformat() if _present(v) else "—"


def _text(v: Any) -> str:
    if not _present(v):
        return "—"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _use(v: Any) -> str:
    """Return a planned use in Chinese with English (``交通运输 transport``), or as stored."""
    return lbl.label(lbl.PLANNED_USE_LABELS, _text(v)) if _present(v) else "—"


def _reasons(v: Any) -> list[str]:
    if not _present(v):
        return []
    codes = [c.strip() for c in str(v).split(",") if c.strip()]
    return [lbl.reason_label(c) + (f" [{c}]" if c in lbl.REASON_LABELS else "") for c in codes]


# --- land classes -----------------------------------------------------------------


def land_display_class(code: Any) -> str:
    """Return the map display class of a GB/T 21010 / survey land-class code.

    The three cultivated classes keep their code; other agricultural land is drawn
    by GB/T 21010 first-level class (garden, forest, grassland, and the agricultural
    water classes 1103, 1104, 1107 with their survey sub-codes), then construction
    land, unused natural waters and other unused land
    (:data:`landquota.outputs.symbology.LAND_DISPLAY`, shared with the QGIS styles).
    A code that is not in :data:`landquota.rules.landclasses.LAND_CLASSES` (validation
    rule LQ-002 reports it) is drawn as ``'unknown'`` rather than guessed.

    Parameters
    ----------
    code : str
        A code such as ``'0101'``, ``'0301'``, ``'05H1'`` or ``'1104A'``.

    Returns
    -------
    str
        A key of :data:`landquota.outputs.symbology.LAND_DISPLAY`: ``'0101'``,
        ``'0102'``, ``'0103'``, ``'garden'``, ``'forest'``, ``'grassland'``,
        ``'agri_water'``, ``'agricultural'``, ``'construction'``, ``'water'``,
        ``'unused'`` or ``'unknown'``.

    Examples
    --------
    >>> [land_display_class(c) for c in ("0101", "0301", "08H2", "1104A", "1101", "XX")]
    ['0101', 'forest', 'construction', 'agri_water', 'water', 'unknown']
    """
    return str(_display_classes([code])[0])


def _display_classes(codes: Iterable[Any]) -> NDArray[np.object_]:
    """:func:`land_display_class` of each code, vectorised (one lookup per distinct code)."""
    raw = codes if isinstance(codes, pd.Series) else pd.Series(np.asarray(codes, dtype=object))
    text = raw.astype(object).where(raw.notna())
    text = text.map(lambda c: str(c).strip().upper(), na_action="ignore")
    index, uniques = pd.factorize(text, use_na_sentinel=True)
    table = np.array([sym.land_display_class(u) for u in uniques] + ["unknown"], dtype=object)
    return np.asarray(table[index], dtype=object)  # index -1 (missing) takes the last: unknown


# --- geometry -----------------------------------------------------------------------


def _encode(geoms: Any) -> dict[str, list[int]] | None:
    """Encode polygons or lines as integer 1e-5° delta chains (see the JS runtime).

    Returns ``{"c": deltas, "r": points per ring, "q": rings per polygon}`` (no
    ``q`` for lines), or ``None`` when nothing drawable is left after quantising.
    The closing vertex of each ring is dropped (Leaflet closes rings) and so are
    repeated points; rings left with fewer than 3 points (2 for lines), and polygons
    whose shell went, are dropped.
    """
    parts = shapely.get_parts(np.asarray(geoms, dtype=object).ravel())
    parts = parts[~shapely.is_empty(parts)]
    kinds = shapely.get_type_id(parts)
    polys = parts[kinds == 3]
    if len(polys):
        rings, ring_owner = shapely.get_rings(polys, return_index=True)
        polygonal = True
    else:
        rings = parts[(kinds == 1) | (kinds == 2)]
        ring_owner = np.arange(len(rings))
        polygonal = False
    if len(rings) == 0:
        return None
    coords, ring_of = shapely.get_coordinates(rings, return_index=True)
    q = np.rint(coords * _SCALE).astype(np.int64)
    same_ring_next = ring_of[1:] == ring_of[:-1]
    keep = np.ones(len(q), dtype=bool)
    keep[1:] &= ~((q[1:] == q[:-1]).all(axis=1) & same_ring_next)
    if polygonal:
        keep &= ~np.r_[~same_ring_next, True]  # drop each ring's closing vertex
    counts = np.bincount(ring_of[keep], minlength=len(rings))
    ring_ok = counts >= (3 if polygonal else 2)
    out: dict[str, list[int]] = {}
    if polygonal:
        shell = np.r_[True, ring_owner[1:] != ring_owner[:-1]]
        poly_ok = np.zeros(len(polys), dtype=bool)
        poly_ok[ring_owner[shell & ring_ok]] = True
        ring_ok &= poly_ok[ring_owner]
        out["q"] = np.bincount(ring_owner[ring_ok], minlength=len(polys))[poly_ok].tolist()
    keep &= ring_ok[ring_of]
    pts = q[keep]
    if len(pts) == 0:
        return None
    out["c"] = np.diff(pts, axis=0, prepend=np.zeros((1, 2), dtype=np.int64)).ravel().tolist()
    out["r"] = counts[ring_ok].tolist()
    return out


def _polygonal(geoms: np.ndarray) -> np.ndarray:
    """Repair invalid polygons so that GEOS coverage operations accept them."""
    bad = ~shapely.is_valid(geoms)
    if bad.any():
        geoms = geoms.copy()
        geoms[bad] = shapely.make_valid(geoms[bad], method="structure", keep_collapsed=False)
    return geoms


def _dissolve(geoms: np.ndarray, keys: np.ndarray, tolerance: float, bar: Any) -> dict[Any, Any]:
    """Simplify a coverage and dissolve it by *keys*: ``{key: array of polygons}``.

    When the patches form a valid coverage (they tessellate, as survey patches
    should) ``coverage_simplify`` keeps shared edges shared, so no gaps or
    slivers open between neighbours, and ``coverage_union`` dissolves each class
    by dropping the shared edges. Otherwise each patch is simplified on its own
    and a class is drawn as the set of its patches (no union: slow and fragile on
    overlapping data), which looks the same with fill only.
    """
    ok = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    geoms, keys = _polygonal(geoms[ok]), keys[ok]
    out: dict[Any, Any] = {}
    if len(geoms) == 0:
        return out
    bar.set_postfix_str(f"checking coverage of {len(geoms):,} polygons")
    coverage = bool(shapely.coverage_is_valid(geoms))
    bar.set_postfix_str(f"simplifying {len(geoms):,} polygons")
    if coverage:
        simple = shapely.coverage_simplify(geoms, tolerance)
    else:
        simple = shapely.simplify(geoms, tolerance, preserve_topology=True)
    bar.update()
    rows: dict[Any, list[int]] = {}  # keys may be tuples: no vectorised ==
    for i, key in enumerate(keys.tolist()):
        rows.setdefault(key, []).append(i)
    for key, index in rows.items():
        bar.set_postfix_str(f"dissolving {key}")
        members = simple[index]
        if coverage:
            members = shapely.get_parts(shapely.coverage_union_all(members))
        out[key] = members
    bar.update()
    return out


def _areas_m2(geoms: gpd.GeoSeries) -> np.ndarray:
    """Ellipsoidal areas (R1) for popups: landquota.rules.areas when present, else pyproj.Geod."""
    try:
        from landquota.rules.areas import ellipsoidal_area
    except ImportError:  # the areas module is written in parallel; Geod is exact too
        from pyproj import Geod

        geod = Geod(ellps="GRS80")  # CGCS2000's ellipsoid differs from GRS80 by ~0.1 mm
        return np.array(
            [
                abs(geod.geometry_area_perimeter(g)[0])
                if _present(g) and not g.is_empty
                else np.nan
                for g in geoms
            ]
        )
    return np.asarray(ellipsoidal_area(geoms), dtype="float64")


# --- input checks -------------------------------------------------------------------


def _check_tiles(tiles: str | None, attribution: str | None) -> None:
    if tiles is None:
        if attribution is not None:
            raise ParameterError(
                f"attribution={attribution!r} was given without tiles; the default map has no "
                "basemap, so pass tiles=URL with it or drop the attribution"
            )
        return
    if (
        not isinstance(tiles, str)
        or not all(t in tiles for t in ("{z}", "{x}"))
        or ("{y}" not in tiles and "{-y}" not in tiles)
    ):
        raise ParameterError(
            f"tiles={tiles!r} is not a tile URL template; give the bureau's tile server as "
            "e.g. 'https://tiles.example.gov.cn/{z}/{x}/{y}.png'"
        )
    if attribution is None or not str(attribution).strip():
        raise ParameterError(
            f"tiles={tiles!r} needs an attribution (the tile owner's credit line); "
            "pass attribution='© …' as well"
        )


def _check_columns(frame: pd.DataFrame, name: str, columns: Iterable[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"layer {name!r} has no column(s) {missing}; it has {list(frame.columns)}. "
            f"The map needs {list(_REQUIRED.get(name, ()))} (see landquota.store.schema)"
        )


def _check_codes(frame: pd.DataFrame, name: str, column: str, allowed: Sequence[str]) -> None:
    values = frame[column]
    bad = sorted({str(v) for v in values[values.notna() & ~values.isin(allowed)]})
    if bad:
        raise DataError(
            f"layer {name!r}, column {column!r} has unknown code(s) {bad}; allowed: "
            f"{list(allowed)}. Fix the rows or run `landquota validate`"
        )


def _check_unique(frame: pd.DataFrame, name: str, column: str) -> None:
    dup = frame[column][frame[column].duplicated()]
    if len(dup):
        raise DataError(
            f"{name}: column {column!r} repeats value(s) {sorted(map(str, dup.unique()))[:10]}; "
            "each must appear once"
        )


def _to_cgcs2000(frame: gpd.GeoDataFrame, name: str) -> gpd.GeoDataFrame:
    if frame.crs is None:
        raise CRSError(
            f"layer {name!r} has no CRS; set it (frame.set_crs('EPSG:4490') for CGCS2000 "
            "degrees) rather than let the map guess"
        )
    crs = CRS.from_user_input(frame.crs)
    # CGCS2000 is drawn as WGS 84 (centimetres apart, domain.md); anything else is moved.
    if crs.to_epsg() in (CRS_EPSG, 4326):
        return frame
    return frame.to_crs(CRS_EPSG)


def _check_layers(layers: Mapping[str, Any]) -> dict[str, pd.DataFrame]:
    if not isinstance(layers, Mapping):
        raise ParameterError(
            f"layers={type(layers).__name__!r} is not a mapping; pass "
            "{'parcels': frame, 'projects': frame, ...} keyed by workspace layer names"
        )
    frames: dict[str, pd.DataFrame] = {}
    for name, frame in layers.items():
        if name not in LAYERS:
            raise LayerError(
                f"layers has an unknown key {name!r}; the map draws {', '.join(MAP_LAYERS)}"
            )
        if name not in _REQUIRED or frame is None:
            continue  # a workspace table the map does not draw (the ledger, say)
        if not isinstance(frame, pd.DataFrame):
            raise ParameterError(
                f"layers[{name!r}] is a {type(frame).__name__}, not a (Geo)DataFrame; pass "
                "what Workspace.read_layer returns"
            )
        _check_columns(frame, name, _REQUIRED[name])
        if LAYERS[name].geometry:
            if not isinstance(frame, gpd.GeoDataFrame):
                raise ParameterError(
                    f"layers[{name!r}] has no geometry column; pass a GeoDataFrame in EPSG:4490"
                )
            frame = _to_cgcs2000(frame, name)
        frames[name] = frame
    for name, column, codes in (
        ("plan_zones", "zone_type", ZONE_TYPES),
        ("control_lines", "kind", CONTROL_KINDS),
        ("stock_land", "kind", STOCK_KINDS),
        ("linkage_plots", "role", PLOT_ROLES),
        ("projects", "level", LEVELS),
    ):
        if name in frames:
            _check_codes(frames[name], name, column, codes)
    for name in ("stock_land", "projects", "linkage_plots"):
        if name in frames:
            _check_unique(frames[name], f"layer {name!r}", LAYERS[name].id_column)
    return frames


def _check_table(
    frame: pd.DataFrame | None, name: str, key: str, required: Sequence[str]
) -> pd.DataFrame | None:
    if frame is None:
        return None
    if not isinstance(frame, pd.DataFrame):
        raise ParameterError(f"{name}= is a {type(frame).__name__}, not a DataFrame")
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataError(
            f"{name}= has no column(s) {missing}; it has {list(frame.columns)}. "
            f"It needs at least {list(required)}"
        )
    _check_unique(frame, f"{name}=", key)
    return frame


def _check_allocations(frame: pd.DataFrame | None) -> pd.DataFrame | None:
    frame = (
        frame
        if frame is None or "run_id" not in frame.columns or frame["run_id"].nunique() <= 1
        else _many_runs(frame)
    )
    frame = _check_table(frame, "allocations", "project_id", ("project_id", "outcome"))
    if frame is not None:
        _check_codes(frame, "allocations", "outcome", ALLOCATION_OUTCOMES)
    return frame


def _many_runs(frame: pd.DataFrame) -> pd.DataFrame:
    runs = sorted(map(str, frame["run_id"].unique()))
    raise ParameterError(
        f"allocations= holds {len(runs)} runs {runs[:5]}; the map shows one run, so pass "
        "allocations[allocations.run_id == RUN_ID]"
    )


def _check_idle(frame: pd.DataFrame | None, stock: pd.DataFrame | None) -> pd.DataFrame | None:
    frame = _check_table(frame, "idle", "stock_id", ("stock_id", "status"))
    if frame is None:
        return None
    _check_codes(frame, "idle", "status", sorted(_IDLE_STATUSES))
    known = set() if stock is None else set(stock["stock_id"].astype(str))
    unknown = sorted(set(frame["stock_id"].astype(str)) - known)
    if unknown:
        raise DataError(
            f"idle= names stock_id(s) {unknown[:10]} that are not in layers['stock_land']; "
            "review the same stock_land layer you pass to the map"
        )
    return frame


# --- folium elements ------------------------------------------------------------------


class _DataLayer(MacroElement):
    """The features of one overlay: a JSON block, decoded into the parent FeatureGroup."""

    _template = Template(
        """
        {% macro html(this, kwargs) %}
        <script type="application/json" id="{{ this.data_id }}">{{ this.payload }}</script>
        {% endmacro %}
        {% macro script(this, kwargs) %}
        landquota.addLayer({{ this._parent.get_name() }}, {{ this.data_id|tojson }},
                           {{ this._parent._parent.get_name() }});
        {% endmacro %}
        """
    )

    def __init__(self, payload: Mapping[str, Any]) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._name = "LandquotaData"
        self.data_id = f"lq-data-{self._id}"
        self.payload = json_for_html(json.dumps(payload, ensure_ascii=False, separators=(",", ":")))


class _TileData(MacroElement):
    """The patch tiles of the tiled mode: one JSON block, decoded tile by tile in the browser."""

    _template = Template(
        """
        {% macro html(this, kwargs) %}
        <script type="application/json" id="{{ this.data_id }}" data-min-zoom="{{ this.min_zoom
        }}">{{ this.payload }}</script>
        {% endmacro %}
        {% macro script(this, kwargs) %}
        landquota.addTiles({{ this._parent.get_name() }}, {{ this.data_id|tojson }},
                           {{ this._parent._parent.get_name() }});
        {% endmacro %}
        """
    )

    def __init__(self, payload: Mapping[str, Any]) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._name = "LandquotaTiles"
        self.data_id = f"lq-tiles-{self._id}"
        self.min_zoom = int(payload["minZoom"])
        self.payload = json_for_html(json.dumps(payload, ensure_ascii=False, separators=(",", ":")))


class _Call(MacroElement):
    """``landquota.<function>(map, …)``, with an optional JSON block as second argument."""

    _template = Template(
        """
        {% macro html(this, kwargs) %}{% if this.payload is not none %}
        <script type="application/json" id="{{ this.data_id }}">{{ this.payload }}</script>
        {% endif %}{% endmacro %}
        {% macro script(this, kwargs) %}
        landquota.{{ this.function }}({{ this._parent.get_name() }}{% if this.payload is not none
        %}, {{ this.data_id|tojson }}{% endif %}{% if this.arg is not none
        %}, {{ this.arg }}{% endif %});
        {% endmacro %}
        """
    )

    def __init__(self, function: str, payload: Any = None, arg: Any = None) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._name = "LandquotaCall"
        self.function = function
        self.data_id = f"lq-data-{self._id}"
        self.payload = (
            None if payload is None else json_for_html(json.dumps(payload, ensure_ascii=False))
        )
        self.arg = None if arg is None else json_for_html(json.dumps(arg, ensure_ascii=False))


# --- the layers -------------------------------------------------------------------------


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


def _geoms(frame: gpd.GeoDataFrame) -> np.ndarray:
    return np.asarray(frame.geometry.array, dtype=object)


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


def _stage_rows(pid: str, stages: StageInfo) -> list[list[str]]:
    code = stages.current.get(pid, "none")
    days = stages.days.get(pid)
    now = STAGE_LABELS[code][0] + (f"（{days} 天 days）" if days is not None else "")
    return [["当前阶段 Current stage", now], ["报批历程 Stage history"], *stages.history.get(pid, [])]


def _project_popup(
    row: Mapping[Any, Any],
    outcome: str,
    a: Mapping[Any, Any] | None,
    d: Mapping[Any, Any] | None,
    stages: StageInfo | None = None,
) -> dict[str, Any]:
    rows: list[list[str]] = [
        ["编号 ID", _text(row["project_id"])],
        ["级别 Level", _LEVELS.get(str(row["level"]), _text(row["level"]))],
    ]
    for column, label, fmt in (
        ("town", "乡镇 Town", _text),
        ("planned_use", "用途 Planned use", _use),
    ):
        if _present(row.get(column)):
            rows.append([label, fmt(row[column])])
    result = _OUTCOMES[outcome][0]
    if a is not None and _present(a.get("fraction")) and outcome in ("funded", "partial"):
        result += f" ({float(a['fraction']):.0%})"
    rows.append(["分配结果 Outcome", result])
    level = a.get("approval_level") if a is not None else None
    if not _present(level) and d is not None:
        level = d.get("approval_level")
    rows.append(
        [
            "审批级别 Approval level (R14)",
            _APPROVAL.get(str(level), _text(level)) if _present(level) else "—",
        ]
    )
    rows.append(["用地需求 Demand"])
    if d is not None:
        for column, label in _DEMAND_ROWS:
            if column in d:
                fmt = _fmt_kg if column.endswith("_kg") else _fmt_m2
                rows.append([label, fmt(d[column])])
    elif _present(row.get("demand_m2")):
        rows.append(["用地需求 Land demand (site not fixed)", _fmt_m2(row["demand_m2"])])
    else:
        rows.append(["—", "未计算 not computed"])
    rows.append(["已安排 Allocated (pool / stock)"])
    if a is None:
        rows.append(["—", "尚未分配 not yet allocated"])
    else:
        for column, label in _ALLOC_ROWS:
            if column in a and _present(a[column]):
                fmt = _fmt_kg if column.endswith("_kg") else _fmt_m2
                rows.append([label, fmt(a[column])])
        if _present(a.get("stock_id")):
            rows.append(["存量地块 Stock parcel", _text(a["stock_id"])])
    reasons = _reasons(a.get("reasons") if a is not None else None)
    if not reasons and d is not None:
        reasons = _reasons(d.get("reasons"))
    if reasons:
        rows.append(["原因 Reasons"])
        rows.extend([["•", r] for r in reasons])
    if stages is not None:
        rows.extend(_stage_rows(str(row["project_id"]), stages))
    rows.append(["三级服务 Service staff"])
    for column, label in _STAFF:
        rows.append([label, _text(row.get(column))])
    return {"title": _text(row["name"]), "rows": rows}


# --- public API -----------------------------------------------------------------------


def _bounds(frames: Mapping[str, pd.DataFrame]) -> tuple[float, float, float, float] | None:
    county = frames.get("county")
    if isinstance(county, gpd.GeoDataFrame) and len(county) and not county.geometry.is_empty.all():
        w, s, e, n = (float(v) for v in county.total_bounds)
        return (w, s, e, n)
    boxes = [
        f.total_bounds
        for n, f in frames.items()
        if isinstance(f, gpd.GeoDataFrame) and len(f) and not f.geometry.is_empty.all()
    ]
    boxes = [b for b in boxes if np.isfinite(b).all()]
    if not boxes:
        return None
    arr = np.array(boxes)
    return (
        float(arr[:, 0].min()),
        float(arr[:, 1].min()),
        float(arr[:, 2].max()),
        float(arr[:, 3].max()),
    )


def build_map(
    layers: Mapping[str, gpd.GeoDataFrame | pd.DataFrame],
    *,
    allocations: pd.DataFrame | None = None,
    demand: pd.DataFrame | None = None,
    idle: pd.DataFrame | None = None,
    stages: StageInfo | None = None,
    tiles: str | None = None,
    attribution: str | None = None,
    progress: bool = False,
    tiled: bool | None = None,
) -> folium.Map:
    """Build the county map: land use, plans, stock land, linkage and key projects.

    Parameters
    ----------
    layers : mapping of str to GeoDataFrame or DataFrame
        Workspace layers by their schema names, as ``Workspace.read_layer`` returns
        them: any of ``county``, ``towns``, ``parcels``, ``plan_zones``,
        ``control_lines``, ``stock_land``, ``linkage_areas``, ``linkage_plots``,
        ``projects``. Absent layers are not drawn; other workspace tables are
        ignored. Spatial layers must have a CRS (other than EPSG:4490 they are
        transformed).
    allocations : DataFrame, optional
        The ``allocations`` rows of **one** run (``project_id``, ``outcome``; the pool
        columns, ``stock_id``, ``approval_level``, ``reasons`` when present).
        Projects without a row are shown as not yet allocated.
    demand : DataFrame, optional
        One row per project with a fixed site: ``project_id`` and any of
        ``site_m2``, ``cultivated_m2``, ``paddy_m2``, ``agricultural_m2``,
        ``construction_m2``, ``unused_m2``, ``new_quota_m2``, ``comp_area_m2``,
        ``comp_paddy_m2``, ``comp_grain_kg``, ``approval_level``, ``reasons``
        (the ``landquota demand`` table).
    idle : DataFrame, optional
        An idle-land review of ``stock_land`` (``landquota.rules.stock.idle_review``):
        ``stock_id``, ``status`` and, when present, ``days_idle``,
        ``fee_due_yuan``, ``cohort`` (else the approval year) and ``area_m2``.
        Without it, approved-unsupplied land is shown by cohort and supplied land
        as not reviewed.
    stages : StageInfo, optional
        Current approval stage and stage history per project
        (:func:`landquota.outputs.stage_map.stage_info`): each project popup
        lists its stages, and an overlay (off at first) colours the sites by
        current stage.
    tiles, attribution : str, optional
        The bureau's tile server as a URL template (``…/{z}/{x}/{y}.png``) and its
        credit line, required together. By default the map has no basemap and
        fetches nothing.
    progress : bool, default False
        Show a progress bar on stderr (simplifying 10⁵ patches takes seconds).
    tiled : bool, optional
        Draw the survey patches in the tiled mode (city scale: levels of detail for
        low zooms, every patch clickable from zoom 14, loaded by tile from compressed
        data inside the page; :mod:`landquota.outputs.tiled`). Default: tiled when
        ``parcels`` has more than :data:`landquota.outputs.tiled.TILED_THRESHOLD`
        (250,000) rows, else the county mode (dissolved by class, not clickable).

    Returns
    -------
    folium.Map
        Leaflet is inlined, so the map is offline however it is rendered; write it
        with :func:`save_map`.

    Raises
    ------
    ParameterError
        Tiles without attribution (or the reverse), allocations of several runs,
        nothing to draw.
    LayerError
        An unknown layer name.
    DataError
        A missing column, an unknown code, a repeated id, an idle review of
        unknown stock ids.
    CRSError
        A spatial layer without CRS.
    """
    _check_tiles(tiles, attribution)
    frames = _check_layers(layers)
    allocations = _check_allocations(allocations)
    demand = _check_table(demand, "demand", "project_id", ("project_id",))
    idle = _check_idle(idle, frames.get("stock_land"))
    bounds = _bounds(frames)
    if bounds is None:
        raise ParameterError(
            f"layers={sorted(layers)!r} hold no geometry to draw; pass at least the county "
            "boundary or the survey patches"
        )
    if tiled is None:
        from landquota.outputs.tiled import TILED_THRESHOLD

        tiled = "parcels" in frames and len(frames["parcels"]) > TILED_THRESHOLD
    steps = (
        2
        + ("parcels" in frames) * 3
        + ("plan_zones" in frames) * 2
        + ("control_lines" in frames) * 2
    )
    with progress_bar(steps, "地图 map", enabled=progress) as bar:
        bar.set_postfix_str("layers")
        west, south, east, north = bounds
        m = folium.Map(
            location=[(south + north) / 2, (west + east) / 2],
            zoom_start=10,
            tiles=None,
            prefer_canvas=True,
            control_scale=True,
            font_size="0.8rem",
        )
        inline_leaflet(m)
        root: Any = m.get_root()
        root.title = "landquota 地图 map"
        if tiles is not None:
            # Leaflet puts attributions in as HTML; the credit line is text, so escape it.
            folium.TileLayer(
                tiles=tiles,
                attr=html.escape(str(attribution)),
                name="底图 Basemap",
                overlay=False,
                control=False,
            ).add_to(m)
        overlays: list[_Overlay] = []
        notes: list[str] = []
        if "parcels" in frames:
            patch_layer = _tiled_patch_layer if tiled else _patch_layer
            overlays.append(patch_layer(frames["parcels"], bar))
        overlays.extend(_zone_layers(frames, bar))
        if "stock_land" in frames:
            overlays.append(_stock_layer(frames["stock_land"], idle))
        if "linkage_plots" in frames:
            overlays.append(_linkage_layer(frames["linkage_plots"], frames.get("linkage_areas")))
        if "projects" in frames:
            ov, more = _project_layer(
                frames["projects"], frames.get("stock_land"), allocations, demand, stages
            )
            overlays.append(ov)
            notes.extend(more)
            if stages is not None:
                overlays.append(_stage_layer(frames["projects"], stages))
        overlays.extend(_outline_layers(frames))
        bar.update()
        bar.set_postfix_str("writing layers")
        for ov in overlays:
            group = folium.FeatureGroup(name=ov.name, show=ov.show)
            payload: dict[str, Any] = {
                "name": ov.name,
                "styles": ov.styles,
                "features": ov.features,
            }
            if ov.pane is not None:
                payload.update(pane=ov.pane, paneOpacity=ov.pane_opacity)
            payload.update(ov.extra)
            group.add_child(_DataLayer(payload))
            if ov.tiles is not None:
                group.add_child(_TileData(ov.tiles))
            group.add_to(m)
        # Not folium's fit_bounds: that one animates the zoom, and a map still
        # animating is not ready (clicks land where the layers are about to be).
        m.add_child(_Call("fitCounty", arg=[[south, west], [north, east]]))
        sections = [
            {"title": ov.name, "items": ov.legend} for ov in reversed(overlays) if ov.legend
        ]
        if tiles is None:
            notes.append("无底图（离线）No basemap: the map is offline")
        m.add_child(
            _Call("addLegend", {"title": "图例 Legend", "sections": sections, "notes": notes})
        )
        if "projects" in frames:
            m.add_child(
                _Call(
                    "addSearch",
                    arg={
                        "placeholder": "搜索项目 Search projects",
                        "notFound": "未找到该项目 No such project",
                        "noSite": "该项目场址未定 This project has no fixed site",
                    },
                )
            )
        folium.LayerControl(collapsed=False).add_to(m)
        m.add_child(_Call("responsive"))  # phones: panels closed, opened on demand
        m.add_child(_Call("markReady"))
        bar.update()
    return m


def save_map(m: folium.Map, path: str | Path) -> Path:
    """Write *m* as one self-contained UTF-8 HTML file and return its path.

    Parameters
    ----------
    m : folium.Map
        A map from :func:`build_map` (elements added since must be offline too).
    path : str or Path
        Output file; its folder must exist.

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    ParameterError
        The folder does not exist, or the map would fetch something from the
        network (a CDN link of a folium plugin added after :func:`build_map`, say);
        only the tile server given to :func:`build_map` is allowed.
    """
    out = Path(path)
    if not out.parent.is_dir():
        raise ParameterError(
            f"path={str(path)!r}: folder {str(out.parent)!r} does not exist; create it first"
        )
    if not isinstance(m, folium.Map):
        raise ParameterError(f"m is a {type(m).__name__}, not a folium.Map from build_map()")
    page = m.get_root().render()
    allowed = {c.tiles for c in m._children.values() if isinstance(c, folium.TileLayer)}
    fetched = [
        ref
        for ref in external_references(page)
        if not any(ref == t or t.startswith(ref) or ref.startswith(t) for t in allowed)
    ]
    if fetched:
        raise ParameterError(
            f"the map would fetch {fetched[:5]} from the network; it must work offline. "
            "Vendor and inline such assets, or add them through build_map(tiles=...)"
        )
    out.write_text(page, encoding="utf-8")
    return out


def map_workspace(
    ws: Workspace,
    *,
    run_id: str | None = None,
    as_of: date | None = None,
    tiles: str | None = None,
    attribution: str | None = None,
    progress: bool = False,
    tiled: bool | None = None,
) -> folium.Map:
    """Build the map of a workspace: every layer, the stock review and one run's outcomes.

    Parameters
    ----------
    ws : Workspace
        The workspace to draw.
    run_id : str, optional
        The run whose outcomes colour the project sites; default: the latest
        committed run, else the latest draft, else none (sites shown as not yet
        allocated).
    as_of : date, optional
        Date of the idle-land review (days idle, fees); default: the run's date,
        else the workspace's recorded ``as_of``, else today.
    tiles, attribution : str, optional
        The bureau's own tile server; by default the map has no basemap and
        fetches nothing.
    tiled : bool, optional
        As for :func:`build_map` (default: tiled above 250,000 patches).
    """
    from landquota.engines.api import demand_from_workspace
    from landquota.outputs.reports import select_run
    from landquota.outputs.stage_map import stage_info
    from landquota.rules.staff import with_staff_names
    from landquota.rules.stock import idle_review

    layers = {name: ws.read_layer(name) for name in MAP_LAYERS}
    # the popups show the service staff's names, not their staff ids (issue 14)
    layers["projects"] = with_staff_names(layers["projects"], ws.read_layer("staff"))
    runs = ws.read_layer("allocation_runs")
    chosen = select_run(runs, None, run_id)
    allocations = ws.read_layer("allocations", where={"run_id": chosen}) if chosen else None
    if as_of is None:
        if chosen:
            # run_id is the key and as_of a date column, so .loc gives one Timestamp
            run_as_of = cast("pd.Timestamp", runs.set_index("run_id").loc[chosen, "as_of"])
            as_of = pd.Timestamp(run_as_of).date()
        elif "as_of" in ws.meta():
            as_of = date.fromisoformat(ws.meta()["as_of"])
        else:
            as_of = date.today()
    demand = demand_from_workspace(ws, progress=progress).table
    idle = idle_review(layers["stock_land"], as_of=as_of)
    stages = stage_info(ws.read_layer("project_stages"), as_of=as_of)
    return build_map(
        layers,
        allocations=allocations,
        demand=demand,
        idle=idle,
        stages=stages,
        tiles=tiles,
        attribution=attribution,
        progress=progress,
        tiled=tiled,
    )

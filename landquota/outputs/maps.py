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

This module is the page: input checks, the Leaflet/folium elements, the legend and
search controls and the file. The overlays are built in :mod:`landquota.outputs.map_layers`,
their legend and popup text in :mod:`landquota.outputs.map_popups`, and the geometry
(simplifying, dissolving, encoding) in :mod:`landquota.outputs.map_geometry`.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
from branca.element import MacroElement
from jinja2 import Template
from pyproj import CRS

from landquota._progress import progress_bar
from landquota.errors import CRSError, DataError, LayerError, ParameterError
from landquota.outputs._mapjs import external_references, inline_leaflet, json_for_html
from landquota.outputs.map_geometry import DISPLAY_TOLERANCE_DEG
from landquota.outputs.map_layers import (
    _display_classes,
    _linkage_layer,
    _outline_layers,
    _Overlay,
    _patch_layer,
    _project_layer,
    _stage_layer,
    _stock_layer,
    _tiled_patch_layer,
    _zone_layers,
)
from landquota.outputs.map_popups import _STOCK_STATUS
from landquota.outputs.stage_map import StageInfo
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

# DISPLAY_TOLERANCE_DEG is defined with the geometry (map_geometry) and stays part of
# this module's documented API (docs/maps.md).
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

_IDLE_STATUSES = frozenset(_STOCK_STATUS) - {"unreviewed"}


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


class _LayerData(MacroElement):
    """One overlay's JSON block, handed to the JS runtime with its FeatureGroup and map.

    ``landquota.addLayer`` decodes the features into the parent FeatureGroup. With
    ``tiles=True`` the block holds the patch tiles of the tiled mode, which
    ``landquota.addTiles`` decodes tile by tile in the browser from ``minZoom`` on.
    """

    _template = Template(
        """
        {% macro html(this, kwargs) %}
        <script type="application/json" id="{{ this.data_id }}"{% if this.min_zoom is not none
        %} data-min-zoom="{{ this.min_zoom }}"{% endif %}>{{ this.payload }}</script>
        {% endmacro %}
        {% macro script(this, kwargs) %}
        landquota.{{ this.function }}({{ this._parent.get_name() }}, {{ this.data_id|tojson }},
                           {{ this._parent._parent.get_name() }});
        {% endmacro %}
        """
    )

    def __init__(self, payload: Mapping[str, Any], *, tiles: bool = False) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._name = "LandquotaTiles" if tiles else "LandquotaData"
        self.function = "addTiles" if tiles else "addLayer"
        self.data_id = f"lq-{'tiles' if tiles else 'data'}-{self._id}"
        self.min_zoom = int(payload["minZoom"]) if tiles else None
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
            group.add_child(_LayerData(payload))
            if ov.tiles is not None:
                group.add_child(_LayerData(ov.tiles, tiles=True))
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

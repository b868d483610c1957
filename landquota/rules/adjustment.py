"""Plan adjustments (规划调整完善): build one from polygons, check R16, run it, compare runs.

A :class:`PlanAdjustment` is a proposed mid-term change of the construction-control
zones of the land-use master plan, drawn by a planner as polygons:

- ``make_allowed``: areas turned into allowed construction zone (允许建设区), for
  example the sites of key projects that sit in the conditional or restricted
  zone (R15);
- ``retire_allowed``: allowed zone retired elsewhere, to keep the total planned
  construction scale (R15, R16); it becomes ``retired_to`` (restricted zone by
  default);
- ``zone_changes``: polygons given a new ``zone_type`` (``allowed`` works like
  ``make_allowed``; any other type over allowed zone works like a retirement).

:func:`check_r16` measures what the adjustment does to the plan's totals (R16) and
returns an :class:`R16Report`; the adjustment also implements the
:class:`landquota.allocation.runs.Scenario` protocol, so ``plan_allocation(ws, scenario=adj)``
and ``landquota allocate --scenario FILE`` refuse it unless it passes and then run
compliance with the made-allowed polygons as allowed zone (R15).
:func:`~landquota.allocation.scenarios.adjusted_run` runs the allocation before
and after without committing anything, and
:func:`~landquota.allocation.scenarios.compare_scenarios` says which projects
change outcome and how much of each pool each run uses (they build on the
allocation, one layer up, so they live in :mod:`landquota.allocation.scenarios`). ``docs/adjustment.md`` sets out the checks
and the scenario file layout.
"""

from __future__ import annotations

import hashlib
import html
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray
from pyproj import CRS

from landquota.errors import CRSError, DataError, ParameterError, PlanAdjustmentError
from landquota.rules.overlay import measure, polygonal, sites_centre
from landquota.rules.plan_totals import (
    DEFAULT_TOLERANCE_M2,
    R16_CHECKS,
    R16Report,
    _cultivated_codes,
    _cultivated_total,
    _diff,
    _inter,
    _net,
    _PlanFrames,
    _row,
    _select_version,
    _union,
)
from landquota.store.schema import CRS_EPSG, ZONE_TYPES

if TYPE_CHECKING:
    from landquota.store.workspace import Workspace

__all__ = [
    "ACTIONS",
    "DEFAULT_TOLERANCE_M2",
    "R16_CHECKS",
    "SCENARIO_COLUMNS",
    "SCENARIO_LAYER",
    "PlanAdjustment",
    "check_r16",
    "read_scenario",
]

#: Values of the ``action`` column of a scenario file.
ACTIONS: Final = ("make_allowed", "retire_allowed", "change_zone")
#: Layer name of a scenario in a GeoPackage.
SCENARIO_LAYER: Final = "adjustment"
#: Columns of a scenario file (besides the geometry), in order.
SCENARIO_COLUMNS: Final = ("action", "zone_type", "scenario", "plan_version")

_HA: Final = 10_000.0
_EMPTY: Final = shapely.from_wkt("MULTIPOLYGON EMPTY")
_RETIRE_TO: Final = tuple(t for t in ZONE_TYPES if t != "allowed")


# --------------------------------------------------------------------------- polygons


def _empty_series() -> gpd.GeoSeries:
    return gpd.GeoSeries(np.array([], dtype=object), crs=CRS_EPSG)


def _empty_changes() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"zone_type": pd.Series([], dtype="str")}, geometry=_empty_series(), crs=CRS_EPSG
    )


def _check_crs(crs: Any, what: str) -> None:
    if crs is None:
        raise CRSError(
            f"{what}: the polygons have no CRS; they must be EPSG:4490 (CGCS2000). If the "
            "coordinates are CGCS2000 lon/lat use .set_crs(4490), else .to_crs(4490)"
        )
    if CRS.from_user_input(crs) != CRS.from_epsg(CRS_EPSG):
        raise CRSError(
            f"{what}: CRS is {CRS.from_user_input(crs).to_string()!r}, expected 'EPSG:4490' "
            "(CGCS2000); reproject with .to_crs(4490) before building the adjustment"
        )


def _multipolygons(value: Any, what: str) -> NDArray[np.object_]:
    """Check polygons for an adjustment and return them normalised, as MultiPolygons."""
    if value is None:
        return np.array([], dtype=object)
    if isinstance(value, gpd.GeoDataFrame):
        value = value.geometry
    if not isinstance(value, gpd.GeoSeries):
        raise ParameterError(
            f"{what} must be a GeoSeries or GeoDataFrame in EPSG:4490 (or None); got "
            f"{type(value).__name__}. Wrap shapes with geopandas.GeoSeries(shapes, crs=4490)"
        )
    if len(value) == 0:
        return np.array([], dtype=object)
    _check_crs(value.crs, what)
    geoms = np.asarray(shapely.force_2d(np.asarray(value.array, dtype=object)), dtype=object)
    bad = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    if bad.any():
        raise ParameterError(
            f"{what}: row(s) {np.flatnonzero(bad).tolist()[:5]} have no geometry; drop them"
        )
    kinds = shapely.get_type_id(geoms)
    polygonal_kind = np.isin(
        kinds, [int(shapely.GeometryType.POLYGON), int(shapely.GeometryType.MULTIPOLYGON)]
    )
    if not polygonal_kind.all():
        i = int(np.flatnonzero(~polygonal_kind)[0])
        raise ParameterError(
            f"{what}: row {i} is a {shapely.get_type_id(geoms[i])!r} (shapely type id), not a "
            "polygon; an adjustment is made of polygons"
        )
    invalid = ~shapely.is_valid(geoms)
    if invalid.any():
        i = int(np.flatnonzero(invalid)[0])
        raise ParameterError(
            f"{what}: row {i} is invalid ({shapely.is_valid_reason(geoms[i])}); repair it "
            "with shapely.make_valid"
        )
    multi = np.array(
        [g if isinstance(g, shapely.MultiPolygon) else shapely.MultiPolygon([g]) for g in geoms],
        dtype=object,
    )
    # Normalised rings: the digest and a file round trip do not depend on where a
    # ring starts or which way it turns.
    return np.asarray(shapely.normalize(multi), dtype=object)


# --------------------------------------------------------------------------- adjustment


@dataclass(frozen=True, eq=False)
class PlanAdjustment:
    """A proposed adjustment of the construction-control zones (R15, R16).

    Parameters
    ----------
    name : str
        Scenario name (recorded with every run made under it).
    make_allowed : geopandas.GeoSeries, optional
        Areas turned into allowed construction zone, EPSG:4490 (a GeoDataFrame
        is taken by its geometry).
    retire_allowed : geopandas.GeoSeries, optional
        Allowed zone retired elsewhere; only its part inside today's allowed
        zone retires anything. It becomes zone ``retired_to``.
    zone_changes : geopandas.GeoDataFrame, optional
        Polygons with a new ``zone_type`` (allowed, conditional, restricted,
        prohibited).
    plan_version : str, optional
        Plan version of the zones and lines the adjustment applies to; needed
        when the workspace holds more than one.
    retired_to : str, default 'restricted'
        Zone type the retired allowed zone becomes.

    Raises
    ------
    ParameterError
        An empty name, a bad zone type, non-polygonal, empty or invalid shapes,
        or polygons of different effect that overlap by more than 1 m² (an area
        cannot be made allowed and retired at once).
    CRSError
        Polygons not in EPSG:4490.

    Examples
    --------
    >>> import geopandas as gpd
    >>> from shapely import box
    >>> adj = PlanAdjustment(
    ...     "free K009",
    ...     make_allowed=gpd.GeoSeries([box(112.70, 24.50, 112.702, 24.501)], crs=4490),
    ...     retire_allowed=gpd.GeoSeries([box(112.80, 24.50, 112.802, 24.501)], crs=4490),
    ... )
    >>> len(adj.allowed_geometry()), len(adj.digest())
    (1, 64)
    """

    name: str
    make_allowed: gpd.GeoSeries = field(default_factory=_empty_series)
    retire_allowed: gpd.GeoSeries = field(default_factory=_empty_series)
    zone_changes: gpd.GeoDataFrame = field(default_factory=_empty_changes)
    plan_version: str | None = None
    retired_to: str = "restricted"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ParameterError(
                f"name={self.name!r}; give the scenario a non-empty name (it is recorded "
                "with every run made under it)"
            )
        if self.plan_version is not None and not isinstance(self.plan_version, str):
            raise ParameterError(f"plan_version={self.plan_version!r} must be a str or None")
        if self.retired_to not in _RETIRE_TO:
            raise ParameterError(
                f"retired_to={self.retired_to!r}; the retired allowed zone becomes one of "
                f"{', '.join(map(repr, _RETIRE_TO))}"
            )
        made = _multipolygons(self.make_allowed, "make_allowed")
        retired = _multipolygons(self.retire_allowed, "retire_allowed")
        changes = self.zone_changes
        if changes is None:
            changes = _empty_changes()
        if not isinstance(changes, gpd.GeoDataFrame):
            raise ParameterError(
                "zone_changes must be a GeoDataFrame with a 'zone_type' column (EPSG:4490); "
                f"got {type(changes).__name__}"
            )
        if len(changes) and "zone_type" not in changes.columns:
            raise ParameterError(
                "zone_changes has no 'zone_type' column; give each polygon its new type, one "
                f"of {', '.join(ZONE_TYPES)}"
            )
        types = (
            changes["zone_type"].astype(object).to_numpy()
            if len(changes)
            else np.array([], dtype=object)
        )
        bad = sorted({repr(t) for t in types if t not in ZONE_TYPES})
        if bad:
            raise ParameterError(
                f"zone_changes: zone_type {', '.join(bad)}; allowed are "
                f"{', '.join(map(repr, ZONE_TYPES))}"
            )
        changed = _multipolygons(changes, "zone_changes")
        object.__setattr__(self, "make_allowed", gpd.GeoSeries(made, crs=CRS_EPSG))
        object.__setattr__(self, "retire_allowed", gpd.GeoSeries(retired, crs=CRS_EPSG))
        object.__setattr__(
            self,
            "zone_changes",
            gpd.GeoDataFrame(
                {"zone_type": pd.Series([str(t) for t in types], dtype="str")},
                geometry=gpd.GeoSeries(changed, crs=CRS_EPSG),
                crs=CRS_EPSG,
            ),
        )
        self._check_conflicts()

    # -- effects -------------------------------------------------------------
    def _effects(self) -> dict[str, list[Any]]:
        """Polygons by the zone type they get: 'allowed' and the retired/changed types."""
        out: dict[str, list[Any]] = {t: [] for t in ZONE_TYPES}
        out["allowed"].extend(self.make_allowed.array)
        out[self.retired_to].extend(self.retire_allowed.array)
        for t, g in zip(
            self.zone_changes["zone_type"], self.zone_changes.geometry.array, strict=True
        ):
            out[str(t)].append(g)
        return out

    def _check_conflicts(self) -> None:
        groups = {t: _union(g) for t, g in self._effects().items() if g}
        names = sorted(groups)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                both = _inter(groups[a], groups[b])
                area = float(measure(np.array([both], dtype=object), None, name="overlap")[0])
                if area > DEFAULT_TOLERANCE_M2:
                    raise ParameterError(
                        f"adjustment {self.name!r}: {area:,.1f} m² are given zone type {a!r} and "
                        f"{b!r} at once (make_allowed/retire_allowed/zone_changes overlap); "
                        "cut the polygons so that each area gets one new zone type"
                    )

    def allowed_geometry(self) -> gpd.GeoSeries | None:
        """Areas the adjustment makes allowed construction zone (None when none).

        Compliance treats them as allowed zone over the conditional and
        restricted zones and unzoned land (R15), never over the prohibited zone
        or the control lines.
        """
        made = self._effects()["allowed"]
        if not made:
            return None
        return gpd.GeoSeries(np.asarray(made, dtype=object), crs=CRS_EPSG)

    def retired_geometry(self) -> gpd.GeoSeries | None:
        """Areas given a zone type other than allowed (None when none)."""
        rest = [g for t, gs in self._effects().items() if t != "allowed" for g in gs]
        if not rest:
            return None
        return gpd.GeoSeries(np.asarray(rest, dtype=object), crs=CRS_EPSG)

    def adjusted_zones(self, zones: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
        """Return a ``plan_zones`` layer with the adjustment applied (for maps).

        Every zone loses the adjustment's polygons; each polygon is added as a
        zone of its new type with id ``ADJ-<n>``. The plan version is the
        adjustment's, else the zones' own.
        """
        from landquota.rules.overlay import check_frame

        zones = check_frame(
            zones, layer="plan_zones", id_column="zone_id", required=("zone_type", "plan_version")
        )
        zones = _select_version(zones, self.plan_version, "plan_zones")
        effects = self._effects()
        cut = _union(g for gs in effects.values() for g in gs)
        kept = polygonal(
            np.asarray(shapely.difference(np.asarray(zones.geometry.array), cut), dtype=object)
        )
        out = zones.copy()
        out["geometry"] = gpd.GeoSeries(kept, index=zones.index, crs=CRS_EPSG)
        out = out[~shapely.is_empty(kept)]
        version = self.plan_version or (
            str(zones["plan_version"].iloc[0]) if len(zones) else "adjusted"
        )
        new = [(t, g) for t, gs in effects.items() for g in gs]
        added = gpd.GeoDataFrame(
            {
                "zone_id": pd.Series([f"ADJ-{k + 1}" for k in range(len(new))], dtype="str"),
                "zone_type": pd.Series([t for t, _ in new], dtype="str"),
                "plan_version": pd.Series([version] * len(new), dtype="str"),
            },
            geometry=gpd.GeoSeries(np.asarray([g for _, g in new], dtype=object), crs=CRS_EPSG),
            crs=CRS_EPSG,
        )
        merged = pd.concat([out, added], ignore_index=True)
        return gpd.GeoDataFrame(merged, geometry="geometry", crs=CRS_EPSG)

    # -- file layout ---------------------------------------------------------
    def to_frame(self) -> gpd.GeoDataFrame:
        """Return the adjustment in the scenario file layout (one row per polygon).

        Columns :data:`SCENARIO_COLUMNS` and ``geometry``: ``action`` (one of
        :data:`ACTIONS`), ``zone_type`` (empty for ``make_allowed``, the
        retired-to type for ``retire_allowed``, the new type for
        ``change_zone``), ``scenario`` (the name) and ``plan_version``.
        """
        actions: list[str] = []
        types: list[str | None] = []
        geoms: list[Any] = []
        for g in self.make_allowed.array:
            actions.append("make_allowed")
            types.append(None)
            geoms.append(g)
        for g in self.retire_allowed.array:
            actions.append("retire_allowed")
            types.append(self.retired_to)
            geoms.append(g)
        for t, g in zip(
            self.zone_changes["zone_type"], self.zone_changes.geometry.array, strict=True
        ):
            actions.append("change_zone")
            types.append(str(t))
            geoms.append(g)
        n = len(actions)
        return gpd.GeoDataFrame(
            {
                "action": pd.Series(actions, dtype="str"),
                "zone_type": pd.Series(types, dtype="str"),
                "scenario": pd.Series([self.name] * n, dtype="str"),
                "plan_version": pd.Series([self.plan_version] * n, dtype="str"),
            },
            geometry=gpd.GeoSeries(np.asarray(geoms, dtype=object), crs=CRS_EPSG),
            crs=CRS_EPSG,
        )

    @classmethod
    def from_frame(
        cls,
        frame: gpd.GeoDataFrame,
        *,
        name: str | None = None,
        plan_version: str | None = None,
        source: str = "frame",
    ) -> PlanAdjustment:
        """Build an adjustment from a frame in the scenario file layout.

        Parameters
        ----------
        frame : geopandas.GeoDataFrame
            Columns ``action`` and ``geometry`` (EPSG:4490); optional
            ``zone_type``, ``scenario`` and ``plan_version`` (see :meth:`to_frame`).
        name, plan_version : str, optional
            Override the ``scenario`` / ``plan_version`` columns.
        source : str
            Named in error messages (the file read).
        """
        if not isinstance(frame, gpd.GeoDataFrame):
            raise ParameterError(f"{source}: expected a GeoDataFrame, got {type(frame).__name__}")
        if "action" not in frame.columns:
            raise DataError(
                f"{source}: no 'action' column; a scenario has one row per polygon with action "
                f"{', '.join(map(repr, ACTIONS))} (see docs/adjustment.md)"
            )
        _check_crs(frame.crs, source)
        actions = frame["action"].astype(object).to_numpy()
        bad = sorted({repr(a) for a in actions if a not in ACTIONS})
        if bad:
            raise DataError(
                f"{source}: action {', '.join(bad)}; allowed are {', '.join(map(repr, ACTIONS))}"
            )
        types = (
            frame["zone_type"].astype(object).where(frame["zone_type"].notna(), None).to_numpy()
            if "zone_type" in frame.columns
            else np.full(len(frame), None, dtype=object)
        )
        name = name if name is not None else _single(frame, "scenario", source, required=True)
        if plan_version is None:
            plan_version = _single(frame, "plan_version", source, required=False)
        is_made = actions == "make_allowed"
        wrong = [t for t in types[is_made] if t not in (None, "allowed")]
        if wrong:
            raise DataError(
                f"{source}: a make_allowed row has zone_type {wrong[0]!r}; leave it empty "
                "(or 'allowed'), or use action 'change_zone'"
            )
        is_retired = actions == "retire_allowed"
        retired_types = sorted({str(t) for t in types[is_retired] if t is not None})
        if len(retired_types) > 1:
            raise DataError(
                f"{source}: retire_allowed rows become different zone types {retired_types}; "
                "use one (default 'restricted') or 'change_zone' rows for the others"
            )
        is_changed = actions == "change_zone"
        if any(t is None for t in types[is_changed]):
            raise DataError(
                f"{source}: a change_zone row has no zone_type; give its new type, one of "
                f"{', '.join(ZONE_TYPES)}"
            )
        geoms = frame.geometry
        return cls(
            str(name),
            make_allowed=gpd.GeoSeries(geoms[is_made].array, crs=frame.crs),
            retire_allowed=gpd.GeoSeries(geoms[is_retired].array, crs=frame.crs),
            zone_changes=gpd.GeoDataFrame(
                {"zone_type": pd.Series(types[is_changed], dtype=object)},
                geometry=gpd.GeoSeries(geoms[is_changed].array, crs=frame.crs),
                crs=frame.crs,
            ),
            plan_version=plan_version,
            retired_to=retired_types[0] if retired_types else "restricted",
        )

    def to_file(self, path: str | Path) -> Path:
        """Write the adjustment as a scenario file: ``.gpkg`` (layer ``adjustment``) or ``.geojson``.

        The GeoPackage keeps coordinates bit for bit, so a scenario read back
        has the same :meth:`digest` (and the same run ids). An existing file is
        replaced.

        Raises
        ------
        ParameterError
            Another suffix, a missing folder, or an adjustment without polygons.
        """
        out = Path(path)
        suffix = out.suffix.lower()
        if suffix not in (".gpkg", ".geojson", ".json"):
            raise ParameterError(
                f"path={str(path)!r}: write a scenario as .gpkg (recommended) or .geojson"
            )
        if not out.parent.is_dir():
            raise ParameterError(f"path={str(path)!r}: folder {str(out.parent)!r} does not exist")
        frame = self.to_frame()
        if not len(frame):
            raise ParameterError(
                f"adjustment {self.name!r} has no polygons; there is nothing to write"
            )
        import pyogrio

        if out.exists():
            out.unlink()
        if suffix == ".gpkg":
            pyogrio.write_dataframe(
                frame, out, layer=SCENARIO_LAYER, driver="GPKG", promote_to_multi=True
            )
        else:
            # 17 significant digits round-trip every double exactly (the digest holds).
            pyogrio.write_dataframe(
                frame,
                out,
                driver="GeoJSON",
                layer=SCENARIO_LAYER,
                promote_to_multi=True,
                RFC7946=False,
                SIGNIFICANT_FIGURES=17,
                COORDINATE_PRECISION=17,
            )
        return out

    # -- Scenario protocol ---------------------------------------------------
    def digest(self) -> str:
        """SHA-256 of the adjustment: name, plan version, and every row's action, type and WKB."""
        h = hashlib.sha256()
        head = {"name": self.name, "plan_version": self.plan_version}
        h.update(json.dumps(head, sort_keys=True, ensure_ascii=False).encode("utf-8"))
        frame = self.to_frame()
        for a, t, g in zip(frame["action"], frame["zone_type"], frame.geometry.array, strict=True):
            h.update(f"|{a}|{'' if pd.isna(t) else t}|".encode())
            h.update(shapely.to_wkb(g, byte_order=1, flavor="iso"))
        return h.hexdigest()

    def check_r16(
        self,
        ws_or_frames: Workspace | Mapping[str, pd.DataFrame],
        *,
        tolerance_m2: float = DEFAULT_TOLERANCE_M2,
    ) -> R16Report:
        """Check R16 on the adjustment; see :func:`check_r16`."""
        return check_r16(self, ws_or_frames, tolerance_m2=tolerance_m2)

    def require_r16(self, ws: Workspace) -> None:
        """Raise ``PlanAdjustmentError`` listing every failed check unless the adjustment passes.

        Called by :func:`landquota.allocation.runs.plan_allocation` before it allocates
        under the adjustment.
        """
        report = self.check_r16(ws)
        if report.passed:
            return
        failed = report.failures()
        parts = [
            f"{r.check} ({r.rule}) fails by {r.failed_by_m2:,.2f} m² ({r.failed_by_ha:,.4f} ha)"
            for r in failed.itertuples()
        ]
        raise PlanAdjustmentError(
            f"plan adjustment {self.name!r} breaks the plan's totals: "
            + "; ".join(parts)
            + ". Retire or add allowed zone as the figures say (PlanAdjustment.check_r16 shows "
            "every check), then run again"
        )

    # -- display ---------------------------------------------------------------
    def summary(self) -> str:
        """Return a one-line Chinese/English description of the adjustment."""
        return (
            f"规划调整 plan adjustment {self.name!r}: 新增允许建设区 make allowed "
            f"{len(self.make_allowed)}, 核减 retire {len(self.retire_allowed)} (→ {self.retired_to}), "
            f"分区调整 zone changes {len(self.zone_changes)}"
            + (f", plan {self.plan_version!r}" if self.plan_version else "")
        )

    def __repr__(self) -> str:
        return f"<PlanAdjustment {self.name!r} digest={self.digest()[:12]}>"

    def __str__(self) -> str:
        return self.summary()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PlanAdjustment):
            return NotImplemented
        return self.digest() == other.digest() and self.retired_to == other.retired_to

    def __hash__(self) -> int:
        return hash(self.digest())

    def _repr_html_(self) -> str:
        frame = self.to_frame()
        frame["area_m2"] = measure(np.asarray(frame.geometry.array, dtype=object), None, name="adj")
        table = pd.DataFrame(frame.drop(columns="geometry")).to_html(
            index=False, na_rep="", float_format=lambda v: f"{v:,.1f}"
        )
        return f"<b>{html.escape(self.summary())}</b>{table}"


def _single(frame: pd.DataFrame, column: str, source: str, *, required: bool) -> str | None:
    if column not in frame.columns or frame[column].isna().all():
        if required:
            raise DataError(
                f"{source}: no {column!r} column (the scenario name); add it to every row, "
                "or pass name=…"
            )
        return None
    values = sorted({str(v) for v in frame[column].dropna()})
    if len(values) > 1 or frame[column].isna().any():
        raise DataError(
            f"{source}: column {column!r} holds {values} (or is empty in some rows); a "
            "scenario file holds one scenario: give every row the same value"
        )
    return values[0]


def read_scenario(path: str | Path) -> PlanAdjustment:
    """Read a scenario file written by :meth:`PlanAdjustment.to_file` (or by hand in QGIS).

    Parameters
    ----------
    path : str or Path
        A GeoPackage with layer ``adjustment`` (or a single layer), or a GeoJSON
        file; see ``docs/adjustment.md`` for the columns.

    Raises
    ------
    ParameterError
        The file does not exist or has several layers and none named ``adjustment``.
    DataError
        Missing or bad columns.
    CRSError
        The file is not in EPSG:4490.
    """
    import pyogrio

    p = Path(path)
    if not p.is_file():
        raise ParameterError(
            f"--scenario {str(path)!r}: no such file; write one with PlanAdjustment.to_file"
        )
    try:
        layers = [str(name) for name, _ in pyogrio.list_layers(p)]
    except Exception as exc:  # GDAL cannot open it: say which file
        raise DataError(
            f"{str(path)!r} is not a GeoPackage or GeoJSON file GDAL can read: {exc}"
        ) from exc
    if SCENARIO_LAYER in layers:
        layer_name = SCENARIO_LAYER
    elif len(layers) == 1:
        layer_name = layers[0]
    else:
        raise ParameterError(
            f"{str(path)!r} has layers {layers} and none is named {SCENARIO_LAYER!r}; name the "
            "scenario layer 'adjustment'"
        )
    frame = pyogrio.read_dataframe(p, layer=layer_name)
    if frame.crs is None and p.suffix.lower() in (".geojson", ".json"):
        frame = frame.set_crs(4326)  # RFC 7946 says WGS 84; refused below with a hint
    return PlanAdjustment.from_frame(frame, source=str(path))


# --------------------------------------------------------------------------- R16


def _plan_frames(
    adj: PlanAdjustment, source: Workspace | Mapping[str, pd.DataFrame]
) -> _PlanFrames:
    from landquota.rules.overlay import check_frame

    if isinstance(source, Mapping):
        missing = [k for k in ("parcels", "plan_zones", "control_lines") if k not in source]
        if missing:
            raise ParameterError(
                f"ws_or_frames is missing layer(s) {missing}; pass a Workspace or a mapping "
                "with 'parcels', 'plan_zones', 'control_lines' (and 'projects')"
            )
        parcels = check_frame(
            source["parcels"], layer="parcels", id_column="parcel_id", required=("land_class",)
        )
        zones = check_frame(
            source["plan_zones"],
            layer="plan_zones",
            id_column="zone_id",
            required=("zone_type", "plan_version"),
        )
        lines = check_frame(
            source["control_lines"],
            layer="control_lines",
            id_column="line_id",
            required=("kind", "plan_version"),
        )
        projects = source.get("projects")
        total = _cultivated_total(parcels)
        zones = _select_version(zones, adj.plan_version, "plan_zones")
        lines = _select_version(lines, adj.plan_version, "control_lines")
        return _PlanFrames(
            zones,
            lines,
            parcels,
            total,
            None if projects is None else gpd.GeoDataFrame(projects),
        )
    from landquota.rules.parcel_reads import read_parcels_near

    ws = source
    where = None if adj.plan_version is None else {"plan_version": adj.plan_version}
    zones = _select_version(
        ws.read_layer("plan_zones", where=where), adj.plan_version, "plan_zones"
    )
    lines = _select_version(
        ws.read_layer("control_lines", where=where), adj.plan_version, "control_lines"
    )
    cultivated = ws.read_layer(
        "parcels", where={"land_class": _cultivated_codes()}, columns=["land_class", "net_m2"]
    )
    interest = [
        *zones.loc[zones["zone_type"] == "allowed"].geometry.array,
        *adj.make_allowed.array,
        *adj.retire_allowed.array,
        *adj.zone_changes.geometry.array,
    ]
    if (
        "paddy_m2" not in lines.columns
        or lines.loc[lines["kind"] == "basic_farmland", "paddy_m2"].isna().any()
    ):
        interest.extend(lines.loc[lines["kind"] == "basic_farmland"].geometry.array)
    geoms = np.asarray(
        shapely.get_parts(np.asarray([g for g in interest if g is not None], dtype=object)),
        dtype=object,
    )
    parcels = read_parcels_near(ws, geoms)
    projects = ws.read_layer("projects", columns=["site_fixed"])
    return _PlanFrames(zones, lines, parcels, _cultivated_total(cultivated), projects)


def check_r16(
    adjustment: PlanAdjustment,
    ws_or_frames: Workspace | Mapping[str, pd.DataFrame],
    *,
    tolerance_m2: float = DEFAULT_TOLERANCE_M2,
) -> R16Report:
    """Check a plan adjustment against R16 (and R15), with its figures before and after.

    Every area is ellipsoidal (R1), measured in one equal-area projection
    centred on the plan; cultivated and paddy areas are the survey's net areas
    (R2: a piece's area × TBDLMJ/TBMJ of its patch). With A the allowed zone,
    M the made-allowed area and R the retired/changed area:

    ``construction_scale``
        Planned construction scale = area of the allowed zone (the 2006–2020
        plans' scale boundary; the conditional zone carries no scale, see
        ``docs/adjustment.md``). After = before + (|M| − |M ∩ A|) − |R ∩ A|.
        Fails when |after − before| > tolerance, by that difference.
    ``cultivated_retention``
        Net cultivated area outside the allowed zone: all cultivated patches'
        ``net_m2`` minus the net cultivated area inside A; after = before −
        cultivated(M − A) + cultivated(R ∩ A). Fails when it drops by more than
        the tolerance.
    ``basic_farmland_quantity``
        Area of the ``basic_farmland`` control lines; M takes it out (less the
        part already in A). Fails when reduced by more than the tolerance.
    ``basic_farmland_quality``
        Paddy share = net paddy area in basic farmland ÷ basic-farmland area
        (the lines' ``paddy_m2`` when every line has it, else computed from the
        patches). Fails when lowered; it fails by the paddy area that would
        restore the share (share before × area after − paddy after).
    ``protected_zones`` (R15)
        Area of the prohibited zone given another zone type, plus M on the eco
        red line; must be 0.
    ``retired_sites`` (R15)
        Area of fixed project sites inside R ∩ A; must be 0 (compliance would
        still read them as allowed zone).

    Parameters
    ----------
    adjustment : PlanAdjustment
    ws_or_frames : Workspace or mapping of str to frames
        A workspace, or the layers ``parcels``, ``plan_zones``,
        ``control_lines`` and optionally ``projects`` as frames.
    tolerance_m2 : float, default :data:`DEFAULT_TOLERANCE_M2`
        Largest difference, in m², that still passes (1 m² = 0.0001 ha).

    Returns
    -------
    R16Report

    Raises
    ------
    ParameterError
        A bad tolerance, missing layers, or an ambiguous plan version.
    DataError, CRSError
        Layers that break the contract.
    """
    if not isinstance(adjustment, PlanAdjustment):
        raise ParameterError(
            f"adjustment must be a PlanAdjustment, got {type(adjustment).__name__}"
        )
    if not (isinstance(tolerance_m2, int | float) and tolerance_m2 >= 0):
        raise ParameterError(f"tolerance_m2={tolerance_m2!r}; give an area ≥ 0 in m²")
    tol = float(tolerance_m2)
    f = _plan_frames(adjustment, ws_or_frames)
    zone_geoms = np.asarray(f.zones.geometry.array, dtype=object)
    ztype = f.zones["zone_type"].to_numpy()
    kinds = f.lines["kind"].to_numpy()
    line_geoms = np.asarray(f.lines.geometry.array, dtype=object)

    allowed = _union(zone_geoms[ztype == "allowed"])
    prohibited = _union(zone_geoms[ztype == "prohibited"])
    bf = _union(line_geoms[kinds == "basic_farmland"])
    eco = _union(line_geoms[kinds == "eco_redline"])
    effects = adjustment._effects()
    made = _union(effects["allowed"])
    changed = _union(g for t, gs in effects.items() if t != "allowed" for g in gs)
    weakening = _union(g for t, gs in effects.items() if t != "prohibited" for g in gs)

    everything = np.array([allowed, bf, made, changed], dtype=object)
    centre = sites_centre(everything)

    def area(g: Any) -> float:
        return float(measure(np.array([g], dtype=object), centre, name="adjustment")[0])

    made_in_allowed = _inter(made, allowed)
    retired = _inter(changed, allowed)
    bf_taken = _inter(made, bf)
    bf_taken_in_allowed = _inter(bf_taken, allowed)

    # (a) Construction scale. Gains are measured as |M| − |M ∩ A| rather than |M − A|:
    # a difference leaves degenerate slivers along shared edges that weigh
    # ~1 m² ellipsoidally (see landquota.rules.overlay.lonlat_area_m2).
    scale_before = area(allowed)
    gained = area(made) - area(made_in_allowed)
    lost = area(retired)
    scale_after = scale_before + gained - lost

    # (b) Cultivated retention (R2 net areas).
    allowed_parts = {
        f"A{i}": g for i, g in enumerate(shapely.get_parts(np.array([allowed], dtype=object)))
    }
    net = _net(
        {
            **allowed_parts,
            "M": made,
            "MA": made_in_allowed,
            "R": retired,
            "BF_M": bf_taken,
            "BF_MA": bf_taken_in_allowed,
        },
        f.parcels,
        centre,
    )
    cult_in_allowed = sum(net[k][0] for k in allowed_parts)
    ret_before = f.cultivated_total_m2 - cult_in_allowed
    ret_after = ret_before - (net["M"][0] - net["MA"][0]) + net["R"][0]

    # (c) Basic-farmland quantity.
    bf_before = area(bf)
    bf_lost = area(bf_taken) - area(bf_taken_in_allowed)
    bf_after = bf_before - bf_lost

    # (d) Basic-farmland quality: paddy share.
    bf_lines = f.lines[kinds == "basic_farmland"]
    if "paddy_m2" in bf_lines.columns and len(bf_lines) and bf_lines["paddy_m2"].notna().all():
        paddy_before = float(pd.to_numeric(bf_lines["paddy_m2"]).sum())
    else:
        parts = {f"B{i}": g for i, g in enumerate(shapely.get_parts(np.array([bf], dtype=object)))}
        paddy_before = sum(v[1] for v in _net(parts, f.parcels, centre).values())
    paddy_after = paddy_before - (net["BF_M"][1] - net["BF_MA"][1])
    share_before = paddy_before / bf_before if bf_before > 0 else 0.0
    share_after = paddy_after / bf_after if bf_after > 0 else 0.0
    quality_short = share_before * bf_after - paddy_after

    # (e) Prohibited zone and eco red line (R15).
    weakened = _union([_inter(weakening, prohibited), _inter(made, eco)])
    weakened_m2 = area(weakened)

    # (f) Sites in the retired allowed zone (R15: compliance does not see retirements).
    sites_hit = _EMPTY
    if f.projects is not None and len(f.projects):
        from landquota.rules.overlay import fixed_sites

        fixed = fixed_sites(f.projects)
        sites_hit = _inter(_union(fixed.geoms), retired)
    sites_m2 = area(sites_hit)

    rows = [
        _row(
            "construction_scale",
            "m2",
            scale_before,
            scale_after,
            abs(scale_after - scale_before),
            tol,
        ),
        _row("cultivated_retention", "m2", ret_before, ret_after, ret_before - ret_after, tol),
        _row("basic_farmland_quantity", "m2", bf_before, bf_after, bf_before - bf_after, tol),
        _row("basic_farmland_quality", "share", share_before, share_after, quality_short, tol),
        _row("protected_zones", "m2", 0.0, weakened_m2, weakened_m2, tol),
        _row("retired_sites", "m2", 0.0, sites_m2, sites_m2, tol),
    ]
    checks = pd.DataFrame(rows)
    for c in ("check", "rule", "what_zh", "what_en", "unit"):
        checks[c] = checks[c].astype("str")
    checks["passed"] = checks["passed"].astype(bool)

    notes: list[str] = []
    if area(made_in_allowed) > tol:
        notes.append(
            f"make_allowed: {area(made_in_allowed):,.1f} m² are allowed zone already and add "
            "no scale 已属允许建设区"
        )
    outside = area(changed) - lost
    if len(adjustment.retire_allowed) and outside > tol:
        notes.append(
            f"retire_allowed / zone_changes: {outside:,.1f} m² lie outside the allowed zone and "
            "retire no scale 不在允许建设区内"
        )
    if scale_after > scale_before + tol:
        notes.append(
            f"退出 retire {scale_after - scale_before:,.1f} m² more allowed zone elsewhere to keep "
            "the scale (R15)"
        )
    what = {
        "made_allowed": _diff(made, allowed),
        "retired": retired,
        "basic_farmland_taken": _diff(bf_taken, allowed),
        "protected_weakened": weakened,
        "sites_in_retired": sites_hit,
    }
    geoms = np.asarray(list(what.values()), dtype=object)
    areas = gpd.GeoDataFrame(
        {
            "what": pd.Series(list(what), dtype="str"),
            "area_m2": [gained, lost, bf_lost, weakened_m2, sites_m2],
        },
        geometry=gpd.GeoSeries(geoms, crs=CRS_EPSG),
        crs=CRS_EPSG,
    )
    return R16Report(
        name=adjustment.name,
        checks=checks,
        areas=areas,
        notes=tuple(notes),
        tolerance_m2=tol,
    )



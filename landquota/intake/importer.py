"""Import a layer from a bureau's file into a workspace: ``landquota import``.

Bureau data arrive as survey shapefiles, File Geodatabases, GeoPackages, GeoJSON
and spreadsheets of coordinates, messy in ways specific to China (see
``docs/import.md`` and the domain notes "Units and coordinates"). This module
turns any of them into the contract's frames, or refuses with a message that
names the file, the row or field, and the fix:

* **Encodings.** The field names and text of DBF-based sources (shapefiles) are
  examined as bytes and their encoding chosen strictly: UTF-8, else GB18030 (a
  superset of GBK/CP936); GDAL then decodes them with it (SHAPE_ENCODING), so
  Chinese field names open too. Decoded text that still looks like mojibake is
  refused. ``encoding=`` overrides.
* **CRS.** A source without CRS is refused unless ``crs=`` is given; the message
  suggests the CGCS2000 Gauss–Krüger code that the coordinates point to.
  Swapped axes are detected and refused (``swap_xy=True`` fixes them). Xian 1980
  and Beijing 1954 are transformed by PROJ with a warning about accuracy.
* **Fields.** The standards' names — pinyin codes (BSM, DLBM, TBDLMJ …), Chinese
  names (标识码, 地类编码 …), aliases and DBF-cut forms, for every layer
  (:mod:`landquota.intake.fieldnames`) — map to the contract's columns; a YAML or
  TOML mapping file handles other schemas.
* **Geometry.** Invalid polygons are repaired with ``make_valid`` (polygonal
  part kept), null or empty ones rejected, Z/M dropped, everything stored as
  MultiPolygon in EPSG:4490. Each repair and reject is reported.
* **Atomic and fast.** Batches stream from GDAL through Arrow into the
  workspace's bulk writer (COPY on PostGIS, one SQLite transaction on a
  GeoPackage) inside ONE transaction, so an import lands whole or not at all,
  even when the process is killed, with memory bounded by the batch size.
"""

from __future__ import annotations

import json
import math
import queue
import re
import threading
import time
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyogrio
import shapely
from numpy.typing import NDArray
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError as _PyprojCRSError

from landquota._parallel import chunked
from landquota.errors import CRSError, DataError, ImportDataError, ParameterError
from landquota.intake.fieldnames import match_fields, normalize
from landquota.intake.gdal_errors import GdalErrors, gdal_errors
from landquota.settings import OUT_DIR
from landquota.store.schema import CRS_EPSG, Column, Layer, layer
from landquota.store.workspace import Workspace, arrow_text, prepare_frame

__all__ = [
    "SURVEY_FIELDS",
    "ImportReport",
    "detect_encoding",
    "import_layer",
    "load_mapping",
    "suggest_crs",
]

#: Rows per batch streamed from GDAL to the workspace: bounds memory (about
#: 50 MB per 50,000 parcels, and at most a few batches in flight) while keeping
#: COPY batches large; smaller batches than 100,000 fill the read-ahead pipeline
#: sooner (the first batch waits for nobody else's work to overlap with).
BATCH_ROWS = 50_000

#: From this many source rows on, a PostGIS replace truncates the table and rebuilds
#: its non-unique indexes after the load (readers of that layer wait until commit).
BULK_ROWS = 50_000

#: Layers written by landquota itself, never imported from files.
_NOT_IMPORTABLE = ("quota_ledger", "allocation_runs", "allocations", "validation_errors", "ledger_chain")

#: Standard field names of the third land survey (三调) and their contract column,
#: per layer. Matching ignores case. DLMC (class name) is checked, not stored.
SURVEY_FIELDS: Mapping[str, Mapping[str, str]] = {
    "parcels": {
        "BSM": "parcel_id",  # 标识码, unique in the county
        "DLBM": "land_class",  # 地类编码
        "ZLDWMC": "town",  # 坐落单位名称
        "TBMJ": "gross_m2",  # 图斑面积 (ellipsoidal)
        "KCMJ": "deduction_m2",  # 扣除面积 (field ridges)
        "TBDLMJ": "net_m2",  # 图斑地类面积 = TBMJ - KCMJ (R2)
    },
}
# The Chinese names, aliases and DBF-cut forms of these and of every other
# layer's standard fields are in landquota.intake.fieldnames.

#: Chinese names of code values, accepted on import besides the English tokens.
_CODE_ALIASES: Mapping[str, Mapping[str, str]] = {
    "zone_type": {
        "允许建设区": "allowed", "有条件建设区": "conditional", "限制建设区": "restricted", "禁止建设区": "prohibited",
        # 土地利用总体规划数据库标准 (TD/T 1026): 管制区类型代码 and its formal names
        "010": "allowed", "020": "conditional", "030": "restricted", "040": "prohibited",
        "允许建设用地区": "allowed", "有条件建设用地区": "conditional",
    },
    "kind": {
        "永久基本农田": "basic_farmland", "基本农田": "basic_farmland", "生态保护红线": "eco_redline",
        "城镇开发边界": "urban_boundary", "批而未供": "approved_unsupplied", "已供": "supplied", "供地": "supplied",
    },
    "role": {"拆旧区": "demolition", "拆旧": "demolition", "建新区": "construction", "建新": "construction"},
    "level": {"国家级": "national", "省级": "provincial", "市级": "city", "县级": "county"},
    "cause": {"政府原因": "government", "企业原因": "enterprise", "无": "none"},
    "acceptance": {"未验收": "pending", "待验收": "pending", "已验收": "passed", "验收通过": "passed", "验收未通过": "failed"},
    "status": {"前期": "preparatory", "新开工": "new_start", "续建": "continuing", "竣工": "completed"},
}

#: Defaults for required columns that sources rarely carry.
_DEFAULTS: Mapping[str, Mapping[str, Any]] = {
    "stock_land": {"disposal_status": "none", "disposal_method": "none"},
    "projects": {"phaseable": False, "national_exception": False},
}

_UNITS = {"m2": 1.0, "ha": 10_000.0, "mu": 10_000.0 / 15.0}

#: CGCS2000 3-degree Gauss–Krüger: zone-prefixed eastings (EPSG:4513 = zone 25 …
#: 4533 = zone 45) and central-meridian codes (EPSG:4534 = 75°E … 4554 = 135°E).
_GK_PREFIXED = {zone: 4513 + zone - 25 for zone in range(25, 46)}
_GK_CM = {cm: 4534 + (cm - 75) // 3 for cm in range(75, 136, 3)}

#: China's extent in degrees (with margin): coordinates outside are not Chinese data.
_CHINA = (73.0, 3.0, 136.0, 54.0)

_WKT_COLUMNS = ("wkt", "geometry", "geom", "shape", "the_geom")
_X_NAMES = ("x", "x坐标", "lon", "lng", "longitude", "经度", "e", "east", "easting", "东坐标")
_Y_NAMES = ("y", "y坐标", "lat", "latitude", "纬度", "n", "north", "northing", "北坐标")
_PART_NAMES = ("part", "ring", "圈号", "部件号")
#: Chinese survey tables call the northing "X" and the easting "Y".
_SURVEY_XY = {"x", "y", "x坐标", "y坐标"}

Mode = Literal["replace", "append"]


# --------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------
@dataclass
class ImportReport:
    """What an import did: rows, encoding, CRS, repairs and rejects.

    Attributes
    ----------
    source, layer, src_layer, driver : str
        The file, the workspace layer written, the layer read and GDAL's driver.
    mode : {'replace', 'append'}
        How the layer was written.
    rows_read, rows_imported : int
        Features read from the source and rows written to the workspace.
    rows_before : int
        Rows the layer held before a replace (0 for an append).
    encoding : str
        The text encoding used (``'utf-8'``, ``'gb18030'``, or the override).
    encoding_note : str
        How it was chosen (declared, detected, given).
    source_crs : str
        The CRS of the source (``'EPSG:4547'``), as read or as given.
    transformed : bool
        Whether coordinates were transformed to EPSG:4490.
    swapped_xy : bool
        Whether x and y were swapped on request.
    field_map : dict
        Source field → contract column.
    ignored_fields : list of str
        Source fields not stored.
    standard_not_stored : list of str
        Those of them that are standard survey fields the contract does not keep
        (QSXZ 权属性质, GDLX 耕地类型, KCDLBM 扣除地类编码 …): recognised, not overlooked.
    repaired : list of dict
        One entry per repaired geometry: ``row``, ``id``, ``reason``.
    rejected : list of dict
        One entry per rejected row: ``row``, ``id``, ``reason``.
    dropped_z : bool
        Whether Z or M values were dropped.
    unknown_land_classes : dict
        Unknown land class code → number of rows (parcels only; stored as they
        are, reported, and flagged by ``landquota validate`` as LQ-002).
    warnings : list of str
        Anything else the user should know (datum accuracy, DLMC mismatches…).
    seconds : float
        Wall time.
    """

    source: str
    layer: str
    src_layer: str | None = None
    driver: str = ""
    mode: str = "replace"
    rows_read: int = 0
    rows_imported: int = 0
    rows_before: int = 0
    encoding: str = "utf-8"
    encoding_note: str = ""
    source_crs: str = ""
    transformed: bool = False
    swapped_xy: bool = False
    field_map: dict[str, str] = field(default_factory=dict)
    ignored_fields: list[str] = field(default_factory=list)
    standard_not_stored: list[str] = field(default_factory=list)
    repaired: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    dropped_z: bool = False
    unknown_land_classes: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        """Return a short Chinese/English summary for the command line."""
        lines = [
            f"已导入 imported {self.rows_imported:,} / {self.rows_read:,} 行 rows "
            f"from {self.source!r} into layer {self.layer!r} ({self.mode}"
            + (f", {self.rows_before:,} rows before" if self.mode == "replace" else "")
            + f") in {self.seconds:.1f} s",
            f"编码 encoding: {self.encoding} ({self.encoding_note})",
            f"坐标系 CRS: {self.source_crs}"
            + (" → EPSG:4490" if self.transformed else "")
            + (" (x/y swapped on request)" if self.swapped_xy else ""),
            f"修复 repaired geometries: {len(self.repaired)}; 拒绝 rejected rows: {len(self.rejected)}"
            + ("; Z/M dropped" if self.dropped_z else ""),
        ]
        for r in (self.repaired[:5] + self.rejected[:5]):
            lines.append(f"  row {r['row']} ({r['id']!r}): {r['reason']}")
        if self.unknown_land_classes:
            codes = ", ".join(f"{k!r}×{v}" for k, v in sorted(self.unknown_land_classes.items())[:10])
            lines.append(f"未知地类 unknown land classes (LQ-002): {codes}")
        if self.field_map:
            lines.append("字段 fields: " + ", ".join(f"{k} → {v}" for k, v in self.field_map.items()))
        if self.ignored_fields:
            std = set(self.standard_not_stored)
            lines.append(
                f"未导入字段 fields not stored: {', '.join(f + (' (standard)' if f in std else '') for f in self.ignored_fields)}"
            )
        lines += [f"警告 warning: {w}" for w in self.warnings]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Return the report as plain data (JSON-ready)."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


# --------------------------------------------------------------------------------------
# encodings
# --------------------------------------------------------------------------------------
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_HIGH_LATIN = re.compile(r"[\u0080-\u00ff]")


def _looks_mojibake(text: str) -> bool:
    """Tell whether *text* is Chinese bytes decoded with the wrong codec.

    U+FFFD means bytes were lost. Latin-1 letters (``'Ë®Ìï'``) that turn into
    Chinese once re-encoded as Latin-1/CP1252 and decoded as UTF-8 or GB18030
    are GBK or UTF-8 text read as Latin-1. A genuine ``'m²'`` does not decode.
    """
    if "\ufffd" in text:
        return True
    if not _HIGH_LATIN.search(text):
        return False
    for wrong in ("latin-1", "cp1252"):
        try:
            raw = text.encode(wrong)
        except UnicodeEncodeError:
            continue
        for right in ("utf-8", "gb18030"):
            try:
                if _CJK.search(raw.decode(right)):
                    return True
            except UnicodeDecodeError:
                continue
    return False


def detect_encoding(values: Sequence[bytes], *, declared: str | None = None) -> tuple[str, str]:
    """Choose the encoding of raw text values: strict UTF-8, else GB18030.

    Parameters
    ----------
    values : sequence of bytes
        The raw bytes of every text value (a DBF's fields, a CSV file).
    declared : str, optional
        What the file claims (a ``.cpg``); only reported.

    Returns
    -------
    encoding : str
        ``'utf-8'`` or ``'gb18030'`` (GB18030 is a superset of GBK/CP936, the
        usual encoding of Chinese shapefiles without ``.cpg``).
    note : str
        How it was chosen, for the report.

    Raises
    ------
    ImportDataError
        When the bytes are neither UTF-8 nor GB18030.

    Examples
    --------
    >>> detect_encoding(["水田".encode("gbk")])
    ('gb18030', 'detected: not UTF-8, valid GB18030 (GBK/CP936)')
    """
    claim = f"; the file declares {declared!r}" if declared else ""
    if all(v.isascii() for v in values):
        return "utf-8", "all text is ASCII" + claim
    for enc in ("utf-8", "gb18030"):
        try:
            for v in values:
                v.decode(enc)
        except UnicodeDecodeError:
            continue
        note = "detected: valid UTF-8" if enc == "utf-8" else "detected: not UTF-8, valid GB18030 (GBK/CP936)"
        return enc, note + claim
    raise ImportDataError(
        "text is neither UTF-8 nor GB18030/GBK; give the encoding with --encoding "
        "(e.g. --encoding big5 for traditional Chinese data)"
    )


# --------------------------------------------------------------------------------------
# CRS
# --------------------------------------------------------------------------------------
def _digits(v: float) -> int:
    return len(str(int(abs(v)))) if math.isfinite(v) else 0


def suggest_crs(
    bounds: Sequence[float], *, near: Sequence[float] | None = None
) -> tuple[list[str], str]:
    """Suggest CGCS2000 CRSs for coordinates of unknown CRS.

    Parameters
    ----------
    bounds : (xmin, ymin, xmax, ymax)
        Coordinate ranges of the data.
    near : (lon_min, lat_min, lon_max, lat_max), optional
        Where the data should be (the workspace's county), to pick the central
        meridian of 6-digit eastings.

    Returns
    -------
    codes : list of str
        ``'EPSG:xxxx'`` codes, likeliest first (may be empty).
    hint : str
        One sentence saying why, including a swapped-axes hint.

    Examples
    --------
    >>> suggest_crs((38_360_000, 2_690_000, 38_370_000, 2_700_000))[0]
    ['EPSG:4526']
    >>> suggest_crs((2_690_000, 38_360_000, 2_700_000, 38_370_000))[1][:23]
    'x and y appear swapped:'
    """
    xmin, ymin, xmax, ymax = (float(b) for b in bounds)
    dx, dy = _digits(max(abs(xmin), abs(xmax))), _digits(max(abs(ymin), abs(ymax)))
    lon_lat = _CHINA[0] <= xmin <= xmax <= _CHINA[2] and _CHINA[1] <= ymin <= ymax <= _CHINA[3]
    lat_lon = _CHINA[1] <= xmin <= xmax <= _CHINA[3] and _CHINA[0] <= ymin <= ymax <= _CHINA[2]
    if lon_lat:
        return ["EPSG:4490"], "the coordinates are longitudes/latitudes in China (CGCS2000 geographic)"
    if lat_lon:
        return ["EPSG:4490"], (
            "x and y appear swapped: x holds latitudes and y longitudes; swap them with --swap-xy "
            "(swap_xy=True)"
        )
    if dx == 7 and dy in (6, 8):
        return [], (
            "x and y appear swapped: x looks like a northing (7 digits) and y like an easting; "
            "Chinese survey tables call the northing X — swap them with --swap-xy (swap_xy=True)"
        )
    if dx == 8 and dy == 7:
        zone = int(xmin // 1_000_000)
        if zone in _GK_PREFIXED and int(xmax // 1_000_000) == zone:
            code = _GK_PREFIXED[zone]
            return [f"EPSG:{code}"], (
                f"8-digit eastings carry the zone number {zone}: CGCS2000 3-degree Gauss–Krüger "
                f"zone {zone} (central meridian {zone * 3}°E) is EPSG:{code}"
            )
    if dx == 6 and dy == 7:
        cms = _central_meridians_near(bounds, near) if near is not None else []
        codes = [f"EPSG:{_GK_CM[cm]}" for cm in cms]
        where = (
            "the workspace's county boundary"
            if near is not None
            else "nothing (add the county boundary to the workspace to narrow it down)"
        )
        return codes[:3], (
            "6-digit eastings: a CGCS2000 3-degree Gauss–Krüger code without zone prefix, "
            f"EPSG:4534–4554 by central meridian (4534 + (CM − 75)/3); chosen by {where}"
        )
    return [], "the coordinate ranges match no CGCS2000 convention"


def _central_meridians_near(bounds: Sequence[float], near: Sequence[float]) -> list[int]:
    """Central meridians under which *bounds* land closest to *near*'s centre."""
    cx, cy = (near[0] + near[2]) / 2, (near[1] + near[3]) / 2
    scored = []
    for cm, code in _GK_CM.items():
        tr = Transformer.from_crs(code, CRS_EPSG, always_xy=True)
        lon, lat = tr.transform((bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2)
        if math.isfinite(lon) and math.isfinite(lat):
            scored.append((math.hypot(lon - cx, lat - cy), cm))
    return [cm for d, cm in sorted(scored) if d < 1.5] or [cm for _, cm in sorted(scored)[:1]]


def _legacy_datum(crs: CRS) -> str | None:
    geo = crs.geodetic_crs
    text = (geo.datum.name if geo is not None and geo.datum is not None else crs.name).lower()
    if "xian" in text or "xi'an" in text or ("1980" in text and "china" not in text):
        return "Xian 1980"
    if "beijing" in text or "1954" in text:
        return "Beijing 1954"
    return None


def _check_axes(
    bounds: Sequence[float], crs: CRS, source: str, *, given: bool, near: Sequence[float] | None = None
) -> None:
    """Refuse coordinates that cannot be in *crs* in China; hint swapped axes or the code.

    *near* is the workspace's county boundary (lon/lat bounds): with it, 6-digit
    eastings under a wrong ``.prj`` get the same central-meridian suggestion as a
    source without any CRS.
    """
    xmin, ymin, xmax, ymax = bounds
    code = _epsg(crs)
    label = f"EPSG:{code}" if code else crs.name
    codes, hint = suggest_crs(bounds, near=near)
    # Swapped axes first: a northing read as an easting can still land "in China"
    # (far east and near the equator), so the digit pattern decides.
    swapped = "swapped" in hint and (crs.is_geographic == (codes == ["EPSG:4490"]))
    if swapped:
        raise CRSError(
            f"{source}: coordinates x {xmin:,.6g}…{xmax:,.6g}, y {ymin:,.6g}…{ymax:,.6g} do not fit "
            f"{label}: {hint}."
        )
    try:
        tr = Transformer.from_crs(crs, CRS_EPSG, always_xy=True)
        lon0, lat0, lon1, lat1 = tr.transform_bounds(xmin, ymin, xmax, ymax)
        ok = all(math.isfinite(v) for v in (lon0, lat0, lon1, lat1)) and (
            _CHINA[0] <= lon0 <= lon1 <= _CHINA[2] and _CHINA[1] <= lat0 <= lat1 <= _CHINA[3]
        )
    except Exception:  # PROJ refuses out-of-domain coordinates in some versions
        ok = False
    if ok and near is not None and not _near(lon0, lat0, lon1, lat1, near):
        # In China, but nowhere near the workspace's county: a .prj of the wrong
        # Gauss–Krüger zone puts 6-digit eastings hundreds of kilometres east or west.
        others = [c for c in codes if c != label]
        if others:
            raise CRSError(
                f"{source}: under {label} ({'given with --crs' if given else 'from the file'}) the "
                f"coordinates lie at {lon0:.2f}–{lon1:.2f}°E, {lat0:.2f}–{lat1:.2f}°N, far from the "
                f"workspace's county ({near[0]:.2f}–{near[2]:.2f}°E, {near[1]:.2f}–{near[3]:.2f}°N), "
                f"so the CRS is wrong for these coordinates. Likely CRS: {', '.join(others)} ({hint}). "
                f"Give it with --crs {others[0]}."
            )
    if ok:
        return
    sugg = f" Likely CRS: {', '.join(codes)}." if codes else ""
    raise CRSError(
        f"{source}: coordinates x {xmin:,.6g}…{xmax:,.6g}, y {ymin:,.6g}…{ymax:,.6g} are not in China "
        f"under {label} ({'given with --crs' if given else 'from the file'}); {hint}.{sugg} "
        "Give the right one with --crs EPSG:xxxx."
    )


#: How far (degrees) data may lie from the county's bounds before its CRS is doubted.
_NEAR_DEG = 1.0


def _near(lon0: float, lat0: float, lon1: float, lat1: float, near: Sequence[float]) -> bool:
    m = _NEAR_DEG
    return not (lon1 < near[0] - m or lon0 > near[2] + m or lat1 < near[1] - m or lat0 > near[3] + m)


def _epsg(crs: CRS) -> int | None:
    try:
        return crs.to_epsg(min_confidence=70)
    except _PyprojCRSError:  # pragma: no cover - defensive
        return None


def _as_crs(value: Any, name: str) -> CRS:
    try:
        return CRS.from_user_input(value)
    except _PyprojCRSError as exc:
        raise CRSError(f"{name}={value!r} is not a CRS PROJ knows; give e.g. 'EPSG:4547'") from exc


# --------------------------------------------------------------------------------------
# mapping files
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FieldRule:
    """How one source field becomes a contract column."""

    column: str
    unit: float = 1.0


@dataclass
class Mapping_:
    """A parsed mapping file (see :func:`load_mapping`)."""

    fields: dict[str, FieldRule] = field(default_factory=dict)
    values: dict[str, dict[str, str]] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)
    layer: str | None = None


def load_mapping(path: str | Path | Mapping[str, Any], *, layer_name: str | None = None) -> Mapping_:
    """Read a field mapping from a YAML or TOML file (or a dict).

    The file says which source field fills which contract column, how to
    translate code values, and constants for columns the source lacks::

        layer = "plan_zones"                 # optional: checked against --layer
        [fields]
        GZQLXDM = "zone_type"
        MJ = { column = "gross_m2", unit = "mu" }   # units: m2, ha, mu
        [values.zone_type]
        "010" = "allowed"
        [defaults]
        plan_version = "2006-2020"

    Parameters
    ----------
    path : str, Path or mapping
        A ``.yaml``/``.yml``/``.toml`` file, or the same structure as a dict.
    layer_name : str, optional
        The target layer, to check the column names.

    Raises
    ------
    ImportDataError
        Unreadable file, unknown keys, columns or units; the message names the
        file and the entry.
    """
    where = str(path) if not isinstance(path, Mapping) else "mapping"
    if isinstance(path, Mapping):
        data: Any = dict(path)
    else:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise ImportDataError(f"mapping file {where!r} cannot be read: {exc.strerror}") from None
        try:
            if p.suffix.lower() == ".toml":
                data = tomllib.loads(text)
            elif p.suffix.lower() in (".yaml", ".yml"):
                import yaml

                data = yaml.safe_load(text) or {}
            else:
                raise ImportDataError(f"mapping file {where!r} must end in .yaml, .yml or .toml")
        except (tomllib.TOMLDecodeError, ValueError) as exc:
            raise ImportDataError(f"mapping file {where!r} is not valid: {exc}") from None
        except Exception as exc:  # yaml.YAMLError, without importing yaml at module level
            if type(exc).__module__.startswith("yaml"):
                raise ImportDataError(f"mapping file {where!r} is not valid YAML: {exc}") from None
            raise
    if not isinstance(data, dict):
        raise ImportDataError(f"mapping file {where!r} must hold a table with 'fields', 'values', 'defaults'")
    extra = set(data) - {"layer", "fields", "values", "defaults"}
    if extra:
        raise ImportDataError(
            f"mapping file {where!r} has unknown key(s) {sorted(extra)}; allowed: layer, fields, values, defaults"
        )
    lyr = layer(layer_name) if layer_name else None
    target = data.get("layer")
    if target is not None and layer_name is not None and target != layer_name:
        raise ImportDataError(f"mapping file {where!r} is for layer {target!r}, not {layer_name!r}")
    m = Mapping_(layer=target)
    for src, rule in (data.get("fields") or {}).items():
        if isinstance(rule, str):
            col, unit = rule, "m2"
        elif isinstance(rule, dict) and "column" in rule:
            col, unit = rule["column"], str(rule.get("unit", "m2"))
        else:
            raise ImportDataError(
                f"mapping file {where!r}: fields.{src} = {rule!r}; give a column name or "
                "{{ column = \"...\", unit = \"mu\" }}"
            )
        if lyr is not None and col not in lyr.column_names:
            raise ImportDataError(
                f"mapping file {where!r}: fields.{src} names column {col!r}, which layer "
                f"{lyr.name!r} does not have; its columns are {', '.join(lyr.column_names)}"
            )
        if unit not in _UNITS:
            raise ImportDataError(f"mapping file {where!r}: fields.{src} unit {unit!r}; use m2, ha or mu")
        m.fields[str(src)] = FieldRule(str(col), _UNITS[unit])
    for col, table in (data.get("values") or {}).items():
        if not isinstance(table, dict):
            raise ImportDataError(f"mapping file {where!r}: values.{col} must be a table of source → code")
        m.values[str(col)] = {str(k): str(v) for k, v in table.items()}
    m.defaults = dict(data.get("defaults") or {})
    if lyr is not None:
        bad = [c for c in list(m.values) + list(m.defaults) if c not in lyr.column_names]
        if bad:
            raise ImportDataError(
                f"mapping file {where!r}: layer {lyr.name!r} has no column(s) {bad}; "
                f"its columns are {', '.join(lyr.column_names)}"
            )
    return m


# --------------------------------------------------------------------------------------
# reading sources
# --------------------------------------------------------------------------------------
@dataclass
class _Source:
    path: str
    src_layer: str | None
    driver: str
    kind: Literal["ogr", "csv", "vct"]
    fields: list[str]
    ogr_types: dict[str, str]
    crs: CRS | None
    geometry_type: str | None
    count: int
    bounds: tuple[float, float, float, float] | None
    raw_text: bool = False  # DBF-based: landquota chooses the text encoding (see _choose_encoding)
    declared_encoding: str | None = None
    csv_raw: bytes = b""
    #: the encoding GDAL decodes the DBF's names and text with (pyogrio's encoding=,
    #: i.e. SHAPE_ENCODING), once chosen; None for sources that are UTF-8 by spec
    gdal_encoding: str | None = None
    #: the feature count the source declares (a shapefile's .shx), None when unknown
    declared: int | None = None


def _not_data(path: str, exc: BaseException | None) -> ImportDataError:
    why = f" (GDAL: {str(exc).splitlines()[0][:200]})" if exc else ""
    return ImportDataError(
        f"{path!r} is not spatial data landquota can read{why}. Give a Shapefile (.shp with its "
        ".dbf and .shx), a GeoPackage (.gpkg), GeoJSON, a File Geodatabase (.gdb folder) or a "
        "CSV with a WKT column or X/Y coordinate columns."
    )


def _open_source(path: str, src_layer: str | None) -> _Source:
    p = Path(path)
    if not p.exists():
        raise ImportDataError(f"source {path!r} does not exist; check the path")
    if p.suffix.lower() in (".csv", ".txt"):
        return _open_csv(path)
    if p.suffix.lower() == ".vct":
        return _open_vct(path, src_layer)
    try:
        layers = pyogrio.list_layers(path)
    except Exception as exc:
        raise _not_data(path, exc) from None
    names = [str(x) for x in layers[:, 0]]
    if src_layer is None:
        if len(names) != 1:
            raise ImportDataError(
                f"{path!r} holds {len(names)} layers ({', '.join(names[:10])}); choose one with "
                "--src-layer NAME"
            )
        src_layer = names[0]
    elif src_layer not in names:
        raise ImportDataError(f"{path!r} has no layer {src_layer!r}; its layers are {', '.join(names)}")
    try:
        # A DBF's field names and text are in whatever encoding its writer used. GDAL
        # recodes them with SHAPE_ENCODING (pyogrio's encoding=); ISO-8859-1 maps each
        # byte to one character, losslessly, so the bytes can be examined before the
        # real encoding is chosen (_choose_encoding), and GDAL then decodes with that.
        info = pyogrio.read_info(path, layer=src_layer, encoding=_TRANSPORT if _dbf_based(p) else None)
    except Exception as exc:
        raise _not_data(path, exc) from None
    crs = CRS.from_user_input(info["crs"]) if info.get("crs") else None
    bounds = info.get("total_bounds")
    b = tuple(float(v) for v in bounds) if bounds is not None and np.all(np.isfinite(bounds)) else None
    cpg = p.with_suffix(".cpg")
    declared = cpg.read_text(errors="replace").strip() if cpg.exists() else None
    return _Source(
        path=path,
        src_layer=src_layer,
        driver=str(info["driver"]),
        kind="ogr",
        fields=[str(f) for f in info["fields"]],
        ogr_types=dict(zip([str(f) for f in info["fields"]], info["ogr_types"], strict=True)),
        crs=crs,
        geometry_type=info.get("geometry_type"),
        count=int(info["features"]) if info["features"] is not None and info["features"] >= 0 else 0,
        bounds=b,  # type: ignore[arg-type]
        raw_text=_dbf_based(p),
        declared_encoding=declared,
        declared=int(info["features"]) if info["features"] is not None and info["features"] >= 0 else None,
    )


def _open_vct(path: str, src_layer: str | None) -> _Source:
    """Open a VCT file (GB/T 17798-2007) with landquota.intake.vct: GDAL has no VCT driver."""
    from landquota.intake import vct

    layers = [x for x in vct.list_layers(path) if x.geometry_type != "None"]
    names = [x.name for x in layers]
    if src_layer is None:
        if len(layers) != 1:
            raise ImportDataError(
                f"{path!r} holds {len(layers)} layers ({', '.join(f'{x.name} {x.alias}' for x in layers[:20])}); "
                "choose one with --src-layer NAME (e.g. --src-layer DLTB)"
            )
        chosen = layers[0]
    else:
        want = src_layer.strip().upper()
        match = [x for x in layers if want in (x.name.upper(), x.alias.upper(), *(c.upper() for c in x.codes))]
        if not match:
            raise ImportDataError(f"{path!r} has no layer {src_layer!r}; its layers are {', '.join(names)}")
        chosen = match[0]
    header = vct.read_header(path)
    return _Source(
        path=path,
        src_layer=chosen.name,
        driver="VCT",
        kind="vct",
        fields=[f.name for f in chosen.fields],
        ogr_types={f.name: f.ogr_type for f in chosen.fields},
        crs=chosen.crs,
        geometry_type=chosen.geometry_type,
        count=chosen.feature_count or 0,
        bounds=header.extent,
        declared_encoding=header.encoding,
    )


#: GDAL's byte-for-byte recoding: every byte becomes the character of the same number.
_TRANSPORT = "ISO-8859-1"

#: Python codec names -> the names GDAL's recoder (iconv) knows.
_GDAL_CODECS = {"utf-8": "UTF-8", "gb18030": "GB18030", "gbk": "CP936", "gb2312": "GB2312",
                "big5": "BIG5", "big5hkscs": "BIG5-HKSCS", "latin-1": "ISO-8859-1",
                "iso8859-1": "ISO-8859-1", "cp1252": "CP1252", "utf-16": "UTF-16"}


def _gdal_codec(enc: str) -> str:
    import codecs

    name = codecs.lookup(enc).name
    return _GDAL_CODECS.get(name, name.upper())


def _dbf_based(p: Path) -> bool:
    return p.suffix.lower() in (".shp", ".dbf") or (p.is_dir() and any(p.glob("*.shp")))


def _open_csv(path: str) -> _Source:
    raw = Path(path).read_bytes()
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    if b"\x00" in raw[:4096]:
        raise _not_data(path, None)
    return _Source(path, None, "CSV", "csv", [], {}, None, None, 0, None, csv_raw=raw)


def _csv_frame(src: _Source, enc: str, report: ImportReport) -> pd.DataFrame:
    import io

    text = src.csv_raw.decode(enc)
    try:
        df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_values=[""], sep=None,
                         engine="python")
    except (pd.errors.ParserError, ValueError, csv_error()) as exc:
        raise ImportDataError(f"{src.path!r} is not a readable CSV table: {exc}") from None
    df.columns = [str(c).strip() for c in df.columns]
    return df


def csv_error() -> type[Exception]:
    """Return the csv module's error class (pandas' python engine raises it)."""
    import csv

    return csv.Error


# --------------------------------------------------------------------------------------
# the import
# --------------------------------------------------------------------------------------
@dataclass
class _Plan:
    lyr: Layer
    source: str
    rules: dict[str, FieldRule]  # source field -> rule
    values: dict[str, dict[str, str]]
    defaults: dict[str, Any]
    encoding: str
    raw_text: bool
    src_crs: CRS | None
    transformer: Transformer | None
    swap_xy: bool
    check_names: str | None  # DLMC field to check against the land class names
    ogr_types: dict[str, str]
    #: number the rows as ids (a layer aggregated before loading, e.g. XZQ's parts)
    row_ids: bool = False
    #: KCXS (扣除地类系数), read to derive the deduction when there is no KCMJ (R2)
    coef_field: str | None = None


def import_layer(
    src: str | Path,
    ws: Workspace,
    *,
    layer: str,
    src_layer: str | None = None,
    mapping: str | Path | Mapping[str, Any] | None = None,
    encoding: str | None = None,
    crs: Any = None,
    swap_xy: bool = False,
    mode: Mode = "replace",
    progress: bool = False,
    allow_shrink: bool = False,
    rejects: str | Path | None = None,
) -> ImportReport:
    """Import one layer of a file into the workspace, atomically.

    Parameters
    ----------
    src : str or Path
        A Shapefile, GeoPackage, GeoJSON, File Geodatabase (``.gdb`` folder) or CSV
        (with a WKT column, or X/Y coordinate columns listing polygon vertices in
        order, one row per vertex, grouped by the id column).
    ws : Workspace
        An open workspace.
    layer : str
        The workspace layer to write (``'parcels'``, ``'plan_zones'``…).
    src_layer : str, optional
        The layer to read when the source holds several.
    mapping : path or dict, optional
        A YAML/TOML field mapping (see :func:`load_mapping`); survey field names
        and the contract's own column names are recognised without one.
    encoding : str, optional
        Text encoding of the source, overriding detection.
    crs : CRS-like, optional
        The source CRS; required when the source has none, and overrides the
        file's own (reported as a warning).
    swap_xy : bool, default False
        Swap x and y (a northing stored as x, a latitude as x).
    mode : {'replace', 'append'}, default 'replace'
        Replace the layer's content, or add rows (refusing ids already present).
    progress : bool, default False
        Show a progress bar on stderr.
    allow_shrink : bool, default False
        Let a replace leave the layer with fewer rows than it held. Without it, a
        replace whose accepted rows are fewer than the rows it would remove is
        refused, with both counts and the rejected rows.
    rejects : path, optional
        Write every rejected row (source row number, id, reason) to this CSV.
        Without it, a refusal that has more than 10 rejected rows to list writes
        them to ``out/landquota-rejected-<layer>-<time>.csv`` (``out/`` is made when missing).

    Returns
    -------
    ImportReport

    Raises
    ------
    ImportDataError
        The file cannot be read, a field has values of the wrong type, ids are
        missing or duplicated, code values are unknown… The message names the
        file, the row or field and the fix. The workspace is unchanged. Imports
        never lose data: a source GDAL reports any read error for, one with no
        features or no accepted row, and a replace that would shrink the layer
        (without *allow_shrink*) are refused too.
    CRSError
        The CRS is missing (the message suggests one), wrong for the
        coordinates, or the axes are swapped.
    """
    from landquota._progress import progress_bar

    prep = prepare_import(src, ws, layer=layer, src_layer=src_layer, mapping=mapping, encoding=encoding,
                          crs=crs, swap_xy=swap_xy, mode=mode, allow_shrink=allow_shrink, rejects=rejects)
    with progress_bar(prep.total or None, f"import {prep.lyr.name}", enabled=progress) as bar:
        load_layers(ws, [prep.load()], bar=bar)
    return prep.finish()


@dataclass
class Load:
    """One workspace layer to fill inside :func:`load_layers`' single transaction."""

    lyr: Layer
    #: prepared batches: (contract frame, the source's WKB when it can go to COPY as read)
    frames: Iterator[tuple[pd.DataFrame, Any]]
    #: the ``import.<layer>`` metadata record, made once the batches are consumed
    meta: Callable[[], str]
    source: str
    mode: Mode = "replace"
    expected_rows: int = 0
    #: called when the workspace refused a row: may raise a clearer error (a duplicate id)
    on_refusal: Callable[[], None] = lambda: None
    #: called with the rows a replace removed once every batch is written, before the
    #: commit: raising refuses the whole load (imports never lose data, issue 12)
    check: Callable[[int], None] | None = None


def load_layers(ws: Workspace, loads: Sequence[Load], *, bar: Any = None) -> None:
    """Write several layers in ONE transaction of the workspace: all of them, or none.

    Each :class:`Load` replaces (or appends to) its layer from a stream of batches,
    exactly as a single import does (binary COPY on PostGIS, one SQLite
    transaction on a GeoPackage), and records ``import.<layer>``; validation is
    marked stale once. An error in any batch of any layer, or a killed process,
    leaves every layer as it was. ``landquota import-survey`` loads a whole
    survey delivery through this.

    Raises
    ------
    ImportDataError
        The workspace refused a row (a key, an id already present on append); the
        message names the source. Errors of the batches themselves pass through.
    """
    names = [ld.lyr.name for ld in loads]
    if len(set(names)) != len(names):
        raise ParameterError(f"load_layers: a layer appears twice in {names}; combine its sources first")
    bar = bar if bar is not None else _NoBar()
    current: Load | None = None
    try:
        with _transaction(ws) as con:
            for ld in loads:
                current = ld
                _write_into(ws, con, ld.lyr, ld.frames, mode=ld.mode, bar=bar, meta=ld.meta,
                            expected_rows=ld.expected_rows, check=ld.check)
            _mark_stale(ws, con)
    except ImportDataError:
        raise
    except DataError as exc:  # the workspace refused (append of existing ids, a key…)
        if current is not None:
            current.on_refusal()  # its unique index may have met a duplicate of the source first
        where = current.source if current is not None else "the sources"
        raise ImportDataError(f"{where!r}: {exc}. Nothing was imported.") from exc
    finally:
        if ws.kind == "postgis":  # a rolled-back load's import stages go now, not at the next import
            from landquota.store import pgstage

            pgstage.release(ws)


def _transaction(ws: Workspace) -> Any:
    """Open the backend's one write transaction (SQLite BEGIN IMMEDIATE, or a PostgreSQL one)."""
    from landquota.store.gpkg import GpkgWorkspace
    from landquota.store.postgis import PostgisWorkspace

    if isinstance(ws, (GpkgWorkspace, PostgisWorkspace)):
        return ws._tx()
    raise TypeError(f"{ws!r} is neither a GeoPackage nor a PostGIS workspace")  # pragma: no cover


class _NoBar:
    def update(self, n: int) -> None:
        """Ignore progress."""


@dataclass
class PreparedImport:
    """A source layer opened, checked and planned (encoding, fields, CRS): ready to stream.

    Made by :func:`prepare_import`. Every refusal that does not need the rows
    (an unreadable file, a missing CRS, an unknown mapping field) has already
    happened; rows are checked as they stream.
    """

    lyr: Layer
    path: str
    report: ImportReport
    total: int
    mode: Mode
    _frames: Callable[[], Iterator[tuple[pd.DataFrame, Any]]]
    _ids: _IdGuard
    _state: _State
    _t0: float
    _check: Callable[[int], None] | None = None
    _gdal: GdalErrors | None = None
    _rejects: str | Path | None = None

    def frames(self) -> Iterator[tuple[pd.DataFrame, Any]]:
        """Stream the prepared batches (once)."""
        return self._frames()

    def load(self) -> Load:
        """Return this import as a :class:`Load` for :func:`load_layers`."""
        return Load(self.lyr, self.frames(), lambda: _meta_record(self.report), self.path, self.mode,
                    self.total, self._ids.check, self._check)

    def collect(self) -> pd.DataFrame:
        """Read every batch into one contract frame (for small layers that are aggregated first)."""
        parts = [df for df, _ in self.frames()]
        if not parts:
            return prepare_frame(self.lyr, pd.DataFrame(columns=list(self.lyr.column_names)), source=self.path)
        return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]

    def finish(self) -> ImportReport:
        """Complete the report once the rows have been written."""
        report, state = self.report, self._state
        if state.dlmc_mismatch:
            report.warnings.append(
                f"{state.dlmc_mismatch} row(s) have a DLMC name that does not match their DLBM code "
                f"(e.g. {state.dlmc_example}); DLBM was used"
            )
        report.unknown_land_classes = dict(state.unknown)
        if report.rows_imported == 0 and report.rows_read > 0:
            report.warnings.append("no row was imported: every row was rejected")
        if self._gdal is not None:
            report.warnings += [f"GDAL: {w}" for w in self._gdal.warnings[:5]]
        if self._rejects is not None and report.rejected:
            _write_rejects(report, Path(self._rejects))
        report.seconds = time.perf_counter() - self._t0
        return report


def prepare_import(
    src: str | Path,
    ws: Workspace,
    *,
    layer: str,
    src_layer: str | None = None,
    mapping: str | Path | Mapping[str, Any] | None = None,
    encoding: str | None = None,
    crs: Any = None,
    swap_xy: bool = False,
    mode: Mode = "replace",
    allow_shrink: bool = False,
    rejects: str | Path | None = None,
    row_ids: bool = False,
    adjust: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
) -> PreparedImport:
    """Open and check a source layer for *layer*; see :func:`import_layer` for the parameters.

    ``row_ids=True`` gives each row its source row number as id when no field
    gives one (for a layer that is aggregated before it is loaded). *adjust*
    rewrites the attribute columns of each converted batch before the contract's
    checks (``import-survey`` turns 坐落单位代码 into township names with it).
    Nothing is written. The result streams the source's rows through the
    contract's checks; :func:`load_layers` writes one or several of them in one
    transaction.
    """
    t0 = time.perf_counter()
    if mode not in ("replace", "append"):
        raise ParameterError(f"mode={mode!r}; use 'replace' or 'append'")
    lyr = _layer(layer)
    if lyr.name in _NOT_IMPORTABLE:
        raise ParameterError(
            f"layer={layer!r} is written by landquota itself (ledger, runs, findings) and cannot be "
            "imported; ledger entries go through `landquota ledger`"
        )
    path = str(src)
    gdal = GdalErrors()  # GDAL's read errors, from this thread and the read-ahead thread
    with gdal_errors(gdal):
        source = _open_source(path, src_layer)
    if source.declared == 0:
        # before the CRS checks, whose "coordinates 0…0" would hide the plain cause
        raise ImportDataError(
            f"{_where(path, source)}: the layer has no features; nothing was imported and the workspace is unchanged"
        )
    report = ImportReport(source=path, layer=lyr.name, src_layer=source.src_layer, driver=source.driver,
                          mode=mode, swapped_xy=swap_xy)
    m = load_mapping(mapping, layer_name=lyr.name) if mapping is not None else Mapping_()

    # --- encoding ------------------------------------------------------------------------
    with gdal_errors(gdal):
        enc = _choose_encoding(source, encoding, report)

    # --- CSV: read whole (spreadsheets are small), build geometries ---------------------------
    csv_frame: pd.DataFrame | None = None
    if source.kind == "csv":
        csv_frame = _csv_frame(source, enc, report)
        source.fields = [c for c in csv_frame.columns]
        if csv_frame.empty:
            raise ImportDataError(f"{path!r}: the table has no data rows; nothing was imported")

    # --- fields ----------------------------------------------------------------------------
    rules, names_field, coef_field = _field_rules(lyr, source.fields, m, report)
    if csv_frame is not None and lyr.geometry:
        csv_frame, source = _csv_geometry(csv_frame, source, lyr, rules, report)

    gtype = (source.geometry_type or "").replace(" Z", "").replace(" M", "").replace("3D ", "")
    if lyr.geometry and source.kind in ("ogr", "vct") and gtype in _PLAIN_TYPES:
        raise ImportDataError(_not_polygons(path, str(source.geometry_type), lyr.name))

    # --- CRS -------------------------------------------------------------------------------
    src_crs, transformer = _plan_crs(source, lyr, crs, swap_xy, report, ws)

    plan = _Plan(
        lyr=lyr,
        source=path,
        rules=rules,
        values={**{k: dict(v) for k, v in _CODE_ALIASES.items()}, **m.values},
        defaults={**_DEFAULTS.get(lyr.name, {}), **m.defaults},
        encoding=enc,
        raw_text=source.raw_text and source.kind == "ogr",
        src_crs=src_crs,
        transformer=transformer,
        swap_xy=swap_xy,
        check_names=names_field,
        row_ids=row_ids,
        coef_field=coef_field,
        ogr_types=source.ogr_types,
    )
    for col, table in m.values.items():
        plan.values[col] = {**_CODE_ALIASES.get(col, {}), **table}

    ids = _IdGuard(path, lyr)
    state = _State()

    def frames() -> Iterator[tuple[pd.DataFrame, NDArray[Any] | None]]:
        # (frame, the source's WKB when it can go to COPY unchanged): side data
        # travel beside the frame, not in .attrs, which pandas deep-copies on
        # every operation.
        row0 = 0
        for batch, decoded in read_ahead(_batches(source, plan, csv_frame, gdal), lambda b: _decode(b, plan)):
            report.rows_read += len(batch)
            out, rows, wkb, checked = _convert(batch, plan, row0, report, state, decoded)
            if adjust is not None:
                out = adjust(out)
            row0 += len(batch)
            ids.add(out[lyr.id_column], rows)
            try:
                prepared = prepare_frame(lyr, out, source=path, _checked=checked)
            except DataError as exc:
                ids.check()  # a duplicate id is reported with both of its rows
                fixed = _repair(out, rows, plan, report) if isinstance(out, gpd.GeoDataFrame) else None
                if fixed is None:
                    raise ImportDataError(str(exc)) from exc
                try:
                    prepared = prepare_frame(lyr, fixed, source=path)
                except DataError as exc2:
                    raise ImportDataError(str(exc2)) from exc2
                wkb = None
            report.rows_imported += len(prepared)
            yield prepared, wkb
        ids.check()

    total = source.count if source.kind in ("ogr", "vct") else len(csv_frame) if csv_frame is not None else 0
    def check(removed: int) -> None:
        _refuse_loss(report, source, gdal, removed, allow_shrink=allow_shrink, rejects=rejects)

    return PreparedImport(lyr, path, report, total, mode, frames, ids, state, t0, check, gdal, rejects)


def _layer(name: str) -> Layer:
    try:
        return layer(name)
    except KeyError as exc:
        raise ParameterError(str(exc)) from None


def _choose_encoding(source: _Source, encoding: str | None, report: ImportReport) -> str:
    if encoding is not None:
        try:
            "".encode(encoding)
        except LookupError:
            raise ParameterError(f"encoding={encoding!r} is not a codec Python knows; try gb18030 or utf-8") from None
        report.encoding, report.encoding_note = encoding, "given with --encoding"
        if source.raw_text:
            _dbf_encoding(source, encoding)  # every name and value must decode with it
        return encoding
    if source.kind == "csv":
        raw = source.csv_raw
        try:
            enc, note = detect_encoding([raw])
        except ImportDataError as exc:
            raise ImportDataError(f"{source.path!r}: {exc}") from None
    elif source.raw_text:
        enc, note = _dbf_encoding(source, None)
    elif source.kind == "vct":
        enc = source.declared_encoding or "gb18030"
        note = ("VCT text is GB18030 (GB/T 17798)" if enc == "gb18030"
                else f"VCT file in {enc} (a byte-order mark, or text valid only as UTF-8)")
    else:
        enc, note = "utf-8", f"{source.driver} stores text as UTF-8"
    report.encoding, report.encoding_note = enc, note
    return enc


def _dbf_encoding(source: _Source, given: str | None) -> tuple[str, str]:
    """Choose (or check) the encoding of a DBF's field names and text, then reopen with it.

    The names and the distinct text values are read through GDAL byte for byte
    (:data:`_TRANSPORT`) and tested strictly: UTF-8, else GB18030 (a superset of
    GBK/CP936), or the given codec. GDAL then decodes names and values itself with
    the chosen encoding (pyogrio's ``encoding=``, GDAL's ``SHAPE_ENCODING``), so a
    DBF whose *field names* are Chinese opens like any other.
    """
    names = list(source.fields)
    raw_names = [n.encode("latin-1") for n in names]
    text_fields = [f for f, t in source.ogr_types.items() if t == "OFTString"]
    values: dict[str, list[bytes]] = {}
    tbl = None
    if text_fields:
        tbl = pyogrio.read_arrow(source.path, layer=source.src_layer, columns=text_fields,
                                 read_geometry=False, encoding=_TRANSPORT)[1]
        for name in text_fields:
            col = pc.unique(tbl.column(name)).to_pylist()
            values[name] = [v.encode("latin-1") for v in col if v is not None]
    if given is None:
        try:
            enc, note = detect_encoding(raw_names + [v for vs in values.values() for v in vs],
                                        declared=source.declared_encoding)
        except ImportDataError as exc:
            raise ImportDataError(f"{source.path!r}: {exc}") from None
    else:
        enc, note = given, "given with --encoding"
        for i, raw in enumerate(raw_names):
            try:
                raw.decode(given)
            except UnicodeDecodeError:
                raise ImportDataError(
                    f"{source.path!r}: field name {i + 1} (bytes {raw!r}) is not valid {given}; give "
                    "the right encoding with --encoding, or leave it out to detect it"
                ) from None
        for name, vs in values.items():
            for v in vs:
                try:
                    v.decode(given)
                except UnicodeDecodeError as exc:
                    assert tbl is not None
                    row = tbl.column(name).to_pylist().index(v.decode("latin-1")) + 1
                    raise ImportDataError(
                        f"{source.path!r}: row {row}, field {name.encode('latin-1').decode(given, 'replace')!r}: "
                        f"bytes {v[:20]!r} are not valid {given} ({exc.reason}); give the right "
                        "encoding with --encoding"
                    ) from None
    source.gdal_encoding = _gdal_codec(enc)
    try:
        info = pyogrio.read_info(source.path, layer=source.src_layer, encoding=source.gdal_encoding)
    except Exception as exc:
        raise _not_data(source.path, exc) from None
    source.fields = [str(f) for f in info["fields"]]
    source.ogr_types = dict(zip(source.fields, info["ogr_types"], strict=True))
    return enc, note


def _field_rules(
    lyr: Layer, fields: Sequence[str], m: Mapping_, report: ImportReport
) -> tuple[dict[str, FieldRule], str | None, str | None]:
    """Source field → contract column: the mapping file, then survey names, then same names."""
    upper = {normalize(f): f for f in fields}
    rules: dict[str, FieldRule] = {}
    taken: set[str] = set()
    for src, rule in m.fields.items():
        f = upper.get(normalize(src))
        if f is None:
            raise ImportDataError(
                f"{report.source!r}: the mapping names field {src!r}, which the source lacks; its "
                f"fields are {', '.join(fields)}"
            )
        rules[f] = rule
        taken.add(rule.column)
    # the contract's own names first among the rest: a source written by landquota
    # (or by hand to the contract) means exactly what it says
    for f in fields:
        low = f.lower()
        if f not in rules and low in lyr.column_names and low not in taken:
            rules[f] = FieldRule(low)
            taken.add(low)
    # then the standards' names: pinyin codes, Chinese names, aliases, DBF-cut forms
    std = match_fields(lyr.name, [f for f in fields if f not in rules], taken=taken)
    for f, (col, unit) in std.columns.items():
        rules[f] = FieldRule(col, unit)
        taken.add(col)
    names_field = std.check if lyr.name == "parcels" and "land_class" in taken else None
    coef_field = std.coefficient if lyr.name == "parcels" and "gross_m2" in taken else None
    report.field_map = {f: r.column for f, r in rules.items()}
    report.ignored_fields = [f for f in fields if f not in rules and f not in (names_field, coef_field)
                             and not f.startswith("_lq_")]
    report.standard_not_stored = [f for f in std.known if f in report.ignored_fields]
    if coef_field is not None:
        report.field_map[coef_field] = "deduction_m2 (= gross_m2 × it)"
    return rules, names_field, coef_field


def _plan_crs(
    source: _Source, lyr: Layer, crs: Any, swap_xy: bool, report: ImportReport, ws: Workspace
) -> tuple[CRS | None, Transformer | None]:
    if not lyr.geometry:
        report.source_crs = "none (table without geometry)"
        return None, None
    bounds = source.bounds
    if bounds is not None and swap_xy:
        bounds = (bounds[1], bounds[0], bounds[3], bounds[2])
    if crs is not None:
        given = _as_crs(crs, "crs")
        if source.crs is not None and given != source.crs:
            report.warnings.append(
                f"the file declares {source.crs.to_string()!r}; used {given.to_string()!r} as given with --crs"
            )
        src_crs = given
    elif source.crs is None:
        near = _county_bounds(ws)
        codes, hint = suggest_crs(bounds, near=near) if bounds is not None else ([], "")
        sugg = f" Likely: --crs {codes[0]}" + (f" (or {', '.join(codes[1:])})" if len(codes) > 1 else "") if codes else ""
        raise CRSError(
            f"{source.path!r} has no CRS ("
            + ("its VCT header's Spheroid/Projection/Parameters name none landquota knows"
               if source.kind == "vct" else "no .prj or an empty one")
            + "), and landquota never guesses one."
            f"{sugg}{'.' if sugg else ''} {hint[:1].upper() + hint[1:] if hint else ''}".rstrip()
            + ". Give it with --crs EPSG:xxxx (crs='EPSG:xxxx')."
        )
    else:
        src_crs = source.crs
    code = _epsg(src_crs)
    report.source_crs = f"EPSG:{code}" if code else src_crs.name
    if bounds is not None:
        _check_axes(bounds, src_crs, source.path, given=crs is not None, near=_county_bounds(ws))
    legacy = _legacy_datum(src_crs)
    if legacy:
        how = Transformer.from_crs(src_crs, CRS_EPSG, always_xy=True).description
        accuracy = (
            "PROJ knows no published datum shift here ('ballpark': ellipsoid change only), so "
            "positions may be off by tens of metres or more"
            if "allpark" in how
            else "accuracy depends on the transformation PROJ chose"
        )
        report.warnings.append(
            f"the source is on the {legacy} datum and was transformed to CGCS2000 with PROJ "
            f"({how}); {accuracy}. Use the bureau's official conversion parameters where "
            "cadastral accuracy matters."
        )
    if code == CRS_EPSG:
        return src_crs, None
    report.transformed = True
    return src_crs, Transformer.from_crs(src_crs, CRS_EPSG, always_xy=True)


def _county_bounds(ws: Workspace) -> tuple[float, float, float, float] | None:
    try:
        c = ws.read_layer("county")
    except Exception:  # an import never fails because the hint could not be made
        return None
    if len(c) == 0:
        return None
    b = c.total_bounds
    return (float(b[0]), float(b[1]), float(b[2]), float(b[3]))


class _State:
    def __init__(self) -> None:
        self.unknown: dict[str, int] = {}
        self.dlmc_mismatch = 0
        self.dlmc_example = ""


def _batches(
    source: _Source, plan: _Plan, csv_frame: pd.DataFrame | None, gdal: GdalErrors | None = None
) -> Iterator[pd.DataFrame]:
    """Yield the source as DataFrames of raw values plus ``_lq_wkb`` (WKB or None).

    GDAL's error reports are collected into *gdal* on the reading thread; the
    first failure stops the read (see :func:`_refuse_loss`).
    """
    if csv_frame is not None:
        yield csv_frame
        return
    with gdal_errors(gdal):
        for df in _ogr_batches(source, plan):
            if gdal is not None and gdal.failures:
                raise _damaged(source, gdal)
            yield df


def _ogr_batches(source: _Source, plan: _Plan) -> Iterator[pd.DataFrame]:
    cols = list(plan.rules) + [f for f in (plan.check_names, plan.coef_field) if f]
    if source.kind == "vct":
        yield from _vct_batches(source, plan, cols)
        return
    try:
        ctx = pyogrio.raw.open_arrow(
            source.path,
            layer=source.src_layer,
            columns=cols,
            read_geometry=plan.lyr.geometry,
            encoding=source.gdal_encoding,  # GDAL decodes a DBF's text (SHAPE_ENCODING)
            batch_size=BATCH_ROWS,
            use_pyarrow=True,
            # Date/DateTime fields as GDAL's ISO text: each value keeps its own offset or its
            # lack of one (the Arrow timestamps would declare a naive GeoPackage DateTime UTC)
            datetime_as_string=True,
        )
        meta, reader = ctx.__enter__()
    except Exception as exc:
        raise _not_data(source.path, exc) from None
    try:
        geom_col = meta.get("geometry_name") or "wkb_geometry"
        for rb in reader:
            names = rb.schema.names
            data: dict[str, Any] = {}
            for c in cols:
                if c not in names:
                    continue
                data[c] = rb.column(names.index(c)).to_pandas()
            df = pd.DataFrame(data)
            if plan.lyr.geometry:
                gi = names.index(geom_col) if geom_col in names else len(names) - 1
                df["_lq_wkb"] = rb.column(gi).to_numpy(zero_copy_only=False)
            yield df
    finally:
        ctx.__exit__(None, None, None)


def _vct_batches(source: _Source, plan: _Plan, cols: list[str]) -> Iterator[pd.DataFrame]:
    """Yield a VCT layer's batches as _batches does: the fields, then ``_lq_wkb``."""
    from landquota.intake import vct

    assert source.src_layer is not None
    enc = plan.encoding  # as chosen: given with --encoding, or what the reader recognised
    for gdf in vct.iter_batches(source.path, source.src_layer, BATCH_ROWS, encoding=enc):
        df = pd.DataFrame({c: gdf[c].to_numpy() if gdf[c].dtype == object else gdf[c] for c in cols
                           if c in gdf.columns})
        df.index = pd.RangeIndex(len(gdf))
        if plan.lyr.geometry:
            df["_lq_wkb"] = shapely.to_wkb(gdf.geometry.to_numpy())
        yield df


@dataclass
class _Decoded:
    """A batch's geometries decoded ahead, and whether they need any work."""

    geoms: NDArray[np.object_]
    #: every geometry is a present, non-empty 2D MultiPolygon stored as decoded
    clean: bool = False
    #: ...and every one is valid: the workspace need not test them again
    valid: bool = False


def _decode(batch: pd.DataFrame, plan: _Plan) -> _Decoded | None:
    """Decode a batch's WKB and test it: the GEOS half of the work, run ahead.

    Runs on the read-ahead thread (shapely releases the GIL), while the caller
    converts the previous batch's attributes and the server ingests the one
    before. The tests only count when the geometries will be stored as decoded
    (no reprojection or axis swap); otherwise :func:`_geometries` and the
    workspace test the final geometries themselves.
    """
    if not plan.lyr.geometry or "_lq_wkb" not in batch.columns:
        return None
    geoms = shapely.from_wkb(np.asarray(batch["_lq_wkb"].to_numpy(), dtype=object), on_invalid="ignore")
    if plan.transformer is not None or plan.swap_xy or not len(geoms):
        return _Decoded(geoms)
    clean = bool(
        (shapely.get_type_id(geoms) == 6).all()  # -1 for missing
        and not shapely.is_empty(geoms).any()
        and not shapely.has_z(geoms).any()
        and not shapely.has_m(geoms).any()
    )
    return _Decoded(geoms, clean=clean, valid=clean and bool(shapely.is_valid(geoms).all()))


_T = TypeVar("_T")
_U = TypeVar("_U")


def read_ahead(items: Iterator[_T], fn: Callable[[_T], _U], depth: int = 2) -> Iterator[tuple[_T, _U]]:
    """Yield ``(item, fn(item))``, with reading and *fn* done on a worker thread.

    The worker stays at most *depth* items ahead, so memory stays bounded by a
    few batches. An exception in the worker (a read error, a bad file) is raised
    here, in the consumer, at the item where it happened; if the consumer stops
    early, the worker stops and the source is closed on its own thread.
    """
    q: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(msg: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                q.put(msg, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put(("item", (item, fn(item)))):
                    return
            put(("end", None))
        except BaseException as exc:  # handed to the consumer, which raises it
            put(("error", exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=work, name="landquota-read-ahead", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = q.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        worker.join()


def _csv_geometry(
    df: pd.DataFrame, source: _Source, lyr: Layer, rules: dict[str, FieldRule], report: ImportReport
) -> tuple[pd.DataFrame, _Source]:
    """Turn a CSV table into rows with ``_lq_wkb``: a WKT column or vertex lists."""
    low = {c.lower(): c for c in df.columns}
    wkt = next((low[n] for n in _WKT_COLUMNS if n in low), None)
    if wkt is not None:
        geoms = np.empty(len(df), dtype=object)
        for i, text in enumerate(df[wkt].tolist()):
            if text is None or (isinstance(text, float) and math.isnan(text)):
                continue
            try:
                geoms[i] = shapely.from_wkt(text)
            except shapely.errors.GEOSException:
                raise ImportDataError(
                    f"{source.path!r}: row {i + 2}, column {wkt!r}: {str(text)[:40]!r} is not WKT "
                    "(e.g. POLYGON ((x y, …))); fix the value"
                ) from None
        out = df.drop(columns=[wkt])
        report.ignored_fields = [f for f in report.ignored_fields if f != wkt]
    else:
        xc = next((low[n] for n in _X_NAMES if n in low), None)
        yc = next((low[n] for n in _Y_NAMES if n in low), None)
        id_src = next((f for f, r in rules.items() if r.column == lyr.id_column), None)
        if xc is None or yc is None or id_src is None:
            raise ImportDataError(
                f"{source.path!r}: a CSV for spatial layer {lyr.name!r} needs a WKT column "
                f"({', '.join(_WKT_COLUMNS)}) or X and Y coordinate columns plus the id column "
                f"{lyr.id_column!r} (one row per vertex); its columns are {', '.join(df.columns)}"
            )
        xs = _numbers(df[xc], xc, source.path)
        ys = _numbers(df[yc], yc, source.path)
        east, north = xs, ys
        if xc.lower() in _SURVEY_XY and yc.lower() in _SURVEY_XY:
            # Survey tables: X is the northing (7 digits), Y the easting (6 or 8 digits).
            dx = _digits(float(np.nanmax(np.abs(xs)))) if len(xs) else 0
            dy = _digits(float(np.nanmax(np.abs(ys)))) if len(ys) else 0
            if dx == 7 and dy in (6, 8):
                east, north = ys, xs
                report.warnings.append(
                    f"columns {xc!r}/{yc!r} read in the surveying convention: X = northing, Y = easting"
                )
        part_col = next((low[n] for n in _PART_NAMES if n in low), None)
        keys = df[id_src].astype(str)
        if part_col is not None:
            keys = keys + "\x00" + df[part_col].astype(str)
        order = pd.factorize(keys)[0]
        firsts = pd.Series(np.arange(len(df))).groupby(order).first().to_numpy()
        rings = []
        coords = np.column_stack([east, north])
        for k in range(order.max() + 1 if len(order) else 0):
            pts = coords[order == k]
            if len(pts) < 3:
                rid = df[id_src].iloc[firsts[k]]
                raise ImportDataError(
                    f"{source.path!r}: feature {rid!r} has {len(pts)} vertex row(s); a polygon needs "
                    "at least 3 (one row per vertex, in order)"
                )
            rings.append(shapely.Polygon(pts))
        part_ids = df[id_src].iloc[firsts].to_numpy()
        feat_order = pd.factorize(pd.Series(part_ids).astype(str))[0]
        n_feat = feat_order.max() + 1 if len(feat_order) else 0
        geoms = np.empty(n_feat, dtype=object)
        first_rows = []
        for k in range(n_feat):
            parts = [rings[j] for j in np.flatnonzero(feat_order == k)]
            geoms[k] = parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)
            first_rows.append(firsts[np.flatnonzero(feat_order == k)[0]])
        out = df.iloc[first_rows].drop(columns=[c for c in (xc, yc, part_col) if c]).reset_index(drop=True)
        report.ignored_fields = [f for f in report.ignored_fields if f not in (xc, yc, part_col)]
    out = out.copy()
    out["_lq_wkb"] = shapely.to_wkb(geoms)
    present = geoms[~shapely.is_missing(geoms)]
    bounds = tuple(float(v) for v in shapely.total_bounds(present)) if len(present) else None
    source.bounds = bounds  # type: ignore[assignment]
    source.count = len(out)
    return out, source


def _numbers(s: pd.Series, name: str, path: str) -> NDArray[np.float64]:
    v = pd.to_numeric(s.str.replace(",", "", regex=False), errors="coerce")
    bad = v.isna() & s.notna()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ImportDataError(
            f"{path!r}: row {i + 2}, column {name!r}: {s.iloc[i]!r} is not a number; fix the value"
        )
    return v.to_numpy(dtype="float64")


# --------------------------------------------------------------------------------------
# one batch: raw values -> contract frame
# --------------------------------------------------------------------------------------
def _convert(
    batch: pd.DataFrame,
    plan: _Plan,
    row0: int,
    report: ImportReport,
    state: _State,
    decoded: _Decoded | None = None,
) -> tuple[pd.DataFrame, NDArray[np.int64], NDArray[Any] | None, bool]:
    """Turn one batch of raw values into a contract frame, its source row numbers and WKB.

    *decoded* is the batch decoded and tested ahead by :func:`_decode`. The last
    item says the geometries are stored as decoded and were all found valid
    there, so the workspace need not test them again.
    """
    lyr = plan.lyr
    rows = np.arange(row0 + 1, row0 + 1 + len(batch))
    out: dict[str, Any] = {}
    for f, rule in plan.rules.items():
        s = batch[f].reset_index(drop=True)
        col = lyr.column(rule.column)
        out[col.name] = _convert_column(s, col, f, rule, plan, rows, report.warnings)
    frame = pd.DataFrame(out, index=pd.RangeIndex(len(batch)))
    for col_name, value in plan.defaults.items():
        if col_name not in frame.columns:
            frame[col_name] = value
        else:
            frame[col_name] = frame[col_name].where(frame[col_name].notna(), value)
    _check_mojibake(frame, lyr, plan, rows)
    if lyr.id_column not in frame.columns and plan.row_ids:
        frame[lyr.id_column] = pd.Series(rows.astype(str), dtype=object)
    if lyr.id_column not in frame.columns:
        raise ImportDataError(
            f"{plan.source!r}: no field gives the id column {lyr.id_column!r} of layer {lyr.name!r}; "
            f"map one in a mapping file (fields: {{YOURFIELD: {lyr.id_column}}})"
        )
    idv = frame[lyr.id_column]
    if idv.isna().any():
        r = rows[idv.isna().to_numpy()][:5].tolist()
        raise ImportDataError(
            f"{plan.source!r}: row(s) {r} have no {lyr.id_column} (source field "
            f"{_src_of(plan, lyr.id_column)!r}); every feature needs an id — fill it in the source"
        )
    if lyr.name == "parcels":
        _parcel_columns(frame, batch, plan, rows, state, report)
    if not lyr.geometry:
        return frame, rows, None, False
    wkb = batch["_lq_wkb"].to_numpy()
    z_before = report.dropped_z
    clean = decoded is not None and decoded.clean
    if clean:
        assert decoded is not None
        geoms = decoded.geoms  # present 2D MultiPolygons already: nothing to do
        keep = np.ones(len(geoms), dtype=bool)
    else:
        geoms = _geometries(wkb, plan, rows, frame[lyr.id_column], report,
                            decoded=None if decoded is None else decoded.geoms)
        keep = ~shapely.is_missing(geoms) if lyr.geometry_required else np.ones(len(geoms), dtype=bool)
    gdf = gpd.GeoDataFrame(frame, geometry=geoms, crs=f"EPSG:{CRS_EPSG}")
    mapped = {r.column for r in plan.rules.values()}
    if lyr.name == "parcels" and not mapped & {"net_m2", "gross_m2"} and gdf["net_m2"].isna().any():
        from landquota.rules.areas import ellipsoidal_area

        miss = gdf["net_m2"].isna().to_numpy() & keep
        if miss.any():
            gdf.loc[miss, "net_m2"] = ellipsoidal_area(geoms[miss], crs=CRS_EPSG)
            state_note = "net_m2 computed as the ellipsoidal area of the geometry (no TBDLMJ/TBMJ field)"
            if state_note not in report.warnings:
                report.warnings.append(state_note)
    if lyr.name == "projects" and "site_fixed" not in frame.columns:
        gdf["site_fixed"] = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    unchanged = clean or (
        plan.transformer is None
        and not plan.swap_xy
        and report.dropped_z == z_before
        and keep.all()
        and bool((shapely.get_type_id(geoms) == 6).all())
    )
    if not keep.all():
        gdf = gdf[keep].reset_index(drop=True)
    # when nothing changed, the source's own WKB can go to COPY as it is (_binary_rows),
    # and the validity computed ahead is the validity of what is stored
    if unchanged:
        return gdf, rows, wkb, clean and decoded is not None and decoded.valid
    return gdf, rows[keep], None, False


def _src_of(plan: _Plan, column: str) -> str | None:
    return next((f for f, r in plan.rules.items() if r.column == column), None)


_TRUE = {"1", "true", "t", "yes", "y", "是", "√"}
_FALSE = {"0", "false", "f", "no", "n", "否", ""}


def _convert_column(
    s: pd.Series, col: Column, f: str, rule: FieldRule, plan: _Plan, rows: NDArray[np.int64],
    warnings: list[str],
) -> pd.Series:
    where = f"{plan.source!r}: field {f!r} (→ {col.name})"
    ogr = plan.ogr_types.get(f, "")
    if col.type in ("text", "json"):
        if col.name == "land_class" and (ogr in ("OFTInteger", "OFTInteger64", "OFTReal") or pd.api.types.is_numeric_dtype(s)):
            raise ImportDataError(
                f"{where} is a number field ({ogr or s.dtype}), so leading zeros are lost ('101' for "
                "'0101'); land class codes must be text — store DLBM as a text field (or fix the "
                "codes in a mapping file's values section)"
            )
        if pd.api.types.is_float_dtype(s):
            txt = s.map(lambda v: None if v != v else (str(int(v)) if float(v).is_integer() else repr(v)))
        elif pd.api.types.is_string_dtype(s) and not pd.api.types.is_object_dtype(s):
            # Arrow-backed strings: vectorised strip (10^6 values in well under a second)
            txt = s.str.strip()
            txt = txt.where(txt.notna() & (txt != ""))
        else:
            txt = s.astype(object).where(s.notna(), None)
            txt = txt.map(lambda v: v.strip() if isinstance(v, str) else (None if v is None else str(v)))
            txt = txt.where(txt.notna() & (txt != ""))
        if col.codes is not None:
            table = plan.values.get(col.name, {})
            txt = txt.map(lambda v: table.get(v, v) if isinstance(v, str) else None)
            bad = txt.notna() & ~txt.isin(col.codes)
            if bad.any():
                vals = sorted(set(txt[bad].astype(str)))[:5]
                raise ImportDataError(
                    f"{where}: value(s) {vals} (first at row {int(rows[np.flatnonzero(bad)[0]])}) are not "
                    f"codes of {col.name!r}; allowed: {', '.join(col.codes)}. Translate them in a mapping "
                    f"file: [values.{col.name}] \"{vals[0]}\" = \"{col.codes[0]}\""
                )
        return txt
    if col.type in ("real", "integer"):
        if pd.api.types.is_numeric_dtype(s):
            v = s.astype("float64")
        else:
            clean = s.astype(object).map(lambda x: x.strip().replace(",", "") if isinstance(x, str) else x)
            clean = clean.where(clean != "", None)
            v = pd.to_numeric(clean, errors="coerce").astype("float64")
            bad = v.isna() & clean.notna()
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise ImportDataError(
                    f"{where} must hold numbers, but row {int(rows[i])} has {s.iloc[i]!r}"
                    f"{f' ({int(bad.sum())} rows in all)' if bad.sum() > 1 else ''}; fix the values or "
                    "map another field in a mapping file"
                )
        return v * rule.unit if rule.unit != 1.0 else v
    if col.type == "boolean":
        if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
            return s.fillna(0).astype(bool)
        low = s.astype(object).map(lambda x: str(x).strip().lower() if x is not None and x == x else "")
        bad = ~low.isin(_TRUE | _FALSE)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ImportDataError(
                f"{where} must hold yes/no values (1/0, true/false, 是/否), but row {int(rows[i])} has "
                f"{s.iloc[i]!r}; fix the value"
            )
        return low.isin(_TRUE)
    # dates and datetimes
    if pd.api.types.is_datetime64_any_dtype(s):
        # real Date/DateTime fields (GeoPackage, FileGDB, ...): naive or timezone-aware
        return _contract_dates(s, col, where, rows, warnings)
    txt = s.astype(object).map(_iso_date)
    any_aware = False
    if col.type == "datetime":
        when = pd.to_datetime(txt, errors="coerce", format="ISO8601", utc=True)
    else:
        # a date column may mix naive values and values with an offset (GDAL gives each
        # DateTime value its own): the aware ones become their calendar day in LOCAL_TZ
        aware = txt.map(lambda v: isinstance(v, str) and _OFFSET.search(v) is not None).astype(bool)
        when = pd.to_datetime(txt.where(~aware), errors="coerce", format="ISO8601")
        any_aware = bool(aware.any())
        if any_aware:
            local = pd.to_datetime(txt[aware], errors="coerce", format="ISO8601", utc=True)
            when = when.astype("datetime64[ns]")
            when[aware] = local.dt.tz_convert(LOCAL_TZ).dt.tz_localize(None).astype("datetime64[ns]")
        when = when.astype("datetime64[ns]")
    bad = when.isna() & txt.notna()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ImportDataError(
            f"{where} must hold dates (2014-01-15, 2014/1/15, 20140115 or 2014年1月15日), but row "
            f"{int(rows[i])} has {s.iloc[i]!r}; fix the value"
        )
    return _contract_dates(when, col, where, rows, warnings, aware=any_aware)


# an offset after a time of day (2012-06-01T00:00:00+08:00, ...Z); not the "-15" of a bare date
_OFFSET = re.compile(r"[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:[Zz]|[+-]\d{2}(?::?\d{2})?)$")

#: The county's civil time zone: a timezone-aware value of a date column is stored as the
#: calendar date it denotes there (2012-05-31T16:00Z is 2012-06-01 in Shanghai), because the
#: contract's dates are local calendar days (approval, supply, start dates; R8/R10 clocks).
LOCAL_TZ = "Asia/Shanghai"


def _contract_dates(when: pd.Series, col: Column, where: str, rows: NDArray[np.int64],
                    warnings: list[str], *, aware: bool = False) -> pd.Series:
    """Give parsed dates the contract's dtype: naive days for ``date``, UTC for ``datetime``.

    A ``date`` column keeps the calendar day only: an aware value is first converted to
    :data:`LOCAL_TZ`, a naive one is taken as it is; a time of day other than midnight is
    dropped and said once in the report's warnings (it is not an error: DateTime fields
    often carry 00:00 or a clock time the contract has no use for).
    """
    when = pd.Series(pd.to_datetime(when), index=when.index)
    tz = when.dt.tz
    if col.type == "datetime":
        # naive values read as UTC, as the text path (utc=True) reads them
        utc: pd.Series = when.dt.tz_localize("UTC") if tz is None else when.dt.tz_convert("UTC")
        return utc
    if tz is not None:
        when = when.dt.tz_convert(LOCAL_TZ).dt.tz_localize(None)
    day = when.dt.normalize()
    timed = when.notna() & (when != day)
    if timed.any():
        head = f"{where}: times of day dropped"
        if not any(w.startswith(head) for w in warnings):
            i = int(np.flatnonzero(timed.to_numpy())[0])
            zone = f" (values with an offset taken as dates in {LOCAL_TZ})" if aware or tz is not None else ""
            warnings.append(
                f"{head}, the column holds dates only{zone}: first at row {int(rows[i])}, "
                f"{when.iloc[i]:%Y-%m-%d %H:%M:%S} → {day.iloc[i]:%Y-%m-%d}"
            )
    days: pd.Series = day.astype("datetime64[ns]")
    return days


_DATE = re.compile(r"^(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?$")


def _iso_date(v: Any) -> str | None:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    text = str(v).strip()
    if not text:
        return None
    if re.fullmatch(r"\d{8}", text):
        return f"{text[:4]}-{text[4:6]}-{text[6:]}"
    m = _DATE.match(text)
    if m:
        return f"{m[1]}-{int(m[2]):02d}-{int(m[3]):02d}"
    return text


def _may_hold_latin1(s: pd.Series) -> bool:
    """Tell whether a value of *s* may hold a character in U+0080–U+00FF or U+FFFD.

    In UTF-8 those characters, and only they, start with the bytes C2/C3 (or are
    EF BF BD), so one scan of the Arrow text buffer answers for a whole batch
    without a regular expression over every value. True means "look closer".
    """
    arr = arrow_text(s)
    if arr is None:
        return True
    if arr.null_count == len(arr):
        return False
    data = arr.buffers()[2]
    if data is None:
        return False
    b = np.frombuffer(data, dtype=np.uint8)
    if ((b == 0xC2) | (b == 0xC3)).any():
        return True
    ef = np.flatnonzero(b[:-2] == 0xEF)
    return bool(((b[ef + 1] == 0xBF) & (b[ef + 2] == 0xBD)).any())


def _check_mojibake(frame: pd.DataFrame, lyr: Layer, plan: _Plan, rows: NDArray[np.int64]) -> None:
    """Never store mojibake: refuse text that is Chinese decoded with the wrong codec."""
    for c in lyr.columns:
        if c.type != "text" or c.name not in frame.columns:
            continue
        s = frame[c.name]
        if not _may_hold_latin1(s):
            continue
        # Only text with Latin-1 letters or U+FFFD can be mojibake: a vectorised
        # filter first, the (slow) round-trip test on the few candidates.
        cand = s[s.astype("str").str.contains("[\u0080-\u00ff\ufffd]", regex=True, na=False)]
        for v in pd.unique(cand):
            if isinstance(v, str) and _looks_mojibake(v):
                i = int(np.flatnonzero((s == v).to_numpy())[0])
                fix = (
                    "the file's text is in another encoding — give it with --encoding (gb18030 "
                    "for GBK/CP936 data)"
                    if plan.raw_text or plan.lyr is None
                    else "the text was garbled before it was saved (Chinese bytes read as Latin-1); "
                    "re-export it from the original data with the right encoding"
                )
                raise ImportDataError(
                    f"{plan.source!r}: row {int(rows[i])}, field {_src_of(plan, c.name)!r}: {v!r} is "
                    f"garbled text (mojibake) when read as {plan.encoding}; {fix}. Nothing was imported."
                )


def _parcel_columns(
    frame: pd.DataFrame, batch: pd.DataFrame, plan: _Plan, rows: NDArray[np.int64], state: _State, report: ImportReport
) -> None:
    from landquota.rules import landclasses
    if "land_class" not in frame.columns:
        raise ImportDataError(
            f"{plan.source!r}: no field gives the land class of the parcels (DLBM); map one in a "
            "mapping file (fields: {YOURFIELD: land_class})"
        )
    lc = frame["land_class"].astype("str").str.strip().str.upper().where(frame["land_class"].notna())
    frame["land_class"] = lc
    known = lc.isin(list(landclasses.LAND_CLASSES))
    for code, n in lc[~known & lc.notna()].value_counts().items():
        state.unknown[str(code)] = state.unknown.get(str(code), 0) + int(n)
    if plan.check_names and plan.check_names in batch.columns:
        names = batch[plan.check_names].reset_index(drop=True)
        expected = lc.map(lambda c: landclasses.LAND_CLASSES[c].name_zh if c in landclasses.LAND_CLASSES else None)
        mism = expected.notna() & names.notna() & (names.astype(str).str.strip() != expected)
        if mism.any():
            i = int(np.flatnonzero(mism)[0])
            state.dlmc_mismatch += int(mism.sum())
            if not state.dlmc_example:
                state.dlmc_example = f"row {int(rows[i])}: DLBM {lc.iloc[i]!r} is {expected.iloc[i]!r}, DLMC says {names.iloc[i]!r}"
    # R2: KCMJ = TBMJ × KCXS (扣除地类系数) when the source has the coefficient but no area
    if "deduction_m2" not in frame.columns and plan.coef_field and plan.coef_field in batch.columns:
        raw = batch[plan.coef_field].reset_index(drop=True)
        coef = pd.to_numeric(raw, errors="coerce").astype("float64")
        bad = coef.isna() & raw.notna() & (raw.astype(str).str.strip() != "")
        if bad.any() or ((coef < 0) | (coef >= 1)).any():
            i = int(np.flatnonzero((bad | (coef < 0) | (coef >= 1)).to_numpy())[0])
            raise ImportDataError(
                f"{plan.source!r}: row {int(rows[i])}, field {plan.coef_field!r} (扣除地类系数): "
                f"{raw.iloc[i]!r} is not a coefficient in [0, 1); fix the value"
            )
        frame["deduction_m2"] = (frame["gross_m2"] * coef.fillna(0.0)).round(2)
        note = f"deduction_m2 computed as TBMJ × {plan.coef_field} (the source has no KCMJ field), to 0.01 m²"
        if note not in report.warnings:
            report.warnings.append(note)
    # R2: the net area is TBDLMJ; derive it only when the source has none.
    if "net_m2" not in frame.columns and "gross_m2" in frame.columns:
        ded = frame["deduction_m2"].fillna(0.0) if "deduction_m2" in frame.columns else 0.0
        frame["net_m2"] = frame["gross_m2"] - ded
        note = "net_m2 computed as TBMJ − KCMJ (the source has no TBDLMJ field)"
        if note not in report.warnings:
            report.warnings.append(note)
    elif "net_m2" not in frame.columns:
        frame["net_m2"] = np.nan


def _geometries(
    wkb: NDArray[Any],
    plan: _Plan,
    rows: NDArray[np.int64],
    ids: pd.Series,
    report: ImportReport,
    *,
    decoded: NDArray[np.object_] | None = None,
) -> NDArray[np.object_]:
    """WKB → valid 2D MultiPolygons in EPSG:4490; rejects and repairs are reported."""
    geoms = decoded if decoded is not None else chunked(
        shapely.from_wkb, np.asarray(wkb, dtype=object), on_invalid="ignore"
    )
    have = geoms[~shapely.is_missing(geoms)]
    if shapely.has_z(have).any() or shapely.has_m(have).any():
        geoms = shapely.force_2d(geoms)
        report.dropped_z = True
    if plan.swap_xy:
        geoms = shapely.transform(geoms, lambda c: c[:, ::-1])
    if plan.transformer is not None:
        tr = plan.transformer

        def fwd(c: NDArray[np.float64]) -> NDArray[np.float64]:
            x, y = tr.transform(c[:, 0], c[:, 1])
            return np.column_stack([x, y])

        geoms = shapely.transform(geoms, fwd)
    bad = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    if bad.any():
        for i in np.flatnonzero(bad):
            why = "null geometry" if geoms[i] is None else "empty geometry"
            report.rejected.append({"row": int(rows[i]), "id": _idv(ids, i), "reason": why + " (rejected)"})
        geoms = geoms.copy()
        geoms[bad] = None
    present = ~bad
    types = np.full(len(geoms), -1)
    types[present] = shapely.get_type_id(geoms[present])
    polygonal = np.isin(types, (3, 6))
    other = present & ~polygonal
    if other.any():
        # collections may hold polygons; points and lines cannot become parcels
        for i in np.flatnonzero(other):
            part = _polygonal_part(geoms[i])
            if part is None:
                if report.rows_read <= len(rows) and other.all():
                    raise ImportDataError(_not_polygons(plan.source, geoms[i].geom_type, plan.lyr.name))
                report.rejected.append({"row": int(rows[i]), "id": _idv(ids, i),
                                        "reason": f"{geoms[i].geom_type} is not a polygon (rejected)"})
                geoms[i] = None
            else:
                geoms[i] = part
    present = ~shapely.is_missing(geoms)
    single = present.copy()
    single[present] = shapely.get_type_id(geoms[present]) == 3
    if single.any():
        geoms[single] = shapely.multipolygons(geoms[single, None])
    return np.asarray(geoms, dtype=object)


_PLAIN_TYPES = {"Point": "points 点", "MultiPoint": "points 点", "LineString": "lines 线",
                "MultiLineString": "lines 线", "LinearRing": "lines 线"}


def _not_polygons(source: str, geom_type: str, layer_name: str) -> str:
    """Say, in plain words, that a layer of points or lines is not polygons."""
    what = _PLAIN_TYPES.get(geom_type.replace(" Z", "").replace(" M", "").replace("3D ", ""), geom_type)
    return (
        f"{source!r} holds {what} ({geom_type}), not polygons 面; layer {layer_name!r} stores "
        "polygons (patches, zones, sites). Import the polygon layer of the delivery instead (for "
        "the survey: DLTB 地类图斑), or turn the features into polygons in a GIS first."
    )


def _repair(
    out: gpd.GeoDataFrame, rows: NDArray[np.int64], plan: _Plan, report: ImportReport
) -> gpd.GeoDataFrame | None:
    """Repair invalid geometries with make_valid (polygonal part kept); None if all were valid.

    Runs only after the workspace's own check refused a batch, so valid data pay
    for one validity test, not two.
    """
    geoms = np.asarray(out.geometry.values, dtype=object).copy()
    ids = out[plan.lyr.id_column]
    present = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    valid = np.ones(len(geoms), dtype=bool)
    valid[present] = shapely.is_valid(geoms[present])
    if valid.all():
        return None
    for i in np.flatnonzero(~valid):
        reason = shapely.is_valid_reason(geoms[i])
        fixed = _polygonal_part(shapely.make_valid(geoms[i]))
        if fixed is None or shapely.is_empty(fixed):
            report.rejected.append({"row": int(rows[i]), "id": _idv(ids, i),
                                    "reason": f"invalid geometry ({reason}) with no polygonal part (rejected)"})
            geoms[i] = None
        else:
            report.repaired.append({"row": int(rows[i]), "id": _idv(ids, i),
                                    "reason": f"invalid geometry ({reason}) repaired with make_valid"})
            geoms[i] = fixed if shapely.get_type_id(fixed) == 6 else shapely.multipolygons([fixed])
    fixed_frame = out.set_geometry(geoms)
    keep = ~shapely.is_missing(geoms) if plan.lyr.geometry_required else np.ones(len(geoms), dtype=bool)
    return fixed_frame[keep].reset_index(drop=True)


def _idv(ids: pd.Series, i: int | np.integer[Any]) -> Any:
    v = ids.iloc[int(i)] if int(i) < len(ids) else None
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v


def _polygonal_part(g: shapely.Geometry | None) -> shapely.Geometry | None:
    """Return the polygons of *g* as one (Multi)Polygon, or None."""
    if g is None:
        return None
    t = shapely.get_type_id(g)
    if t in (3, 6):  # Polygon, MultiPolygon
        return g
    if t == 7:  # GeometryCollection (make_valid's output for mixed results)
        polys: list[shapely.Polygon] = []
        for part in shapely.get_parts(g):
            p = _polygonal_part(part)
            if p is not None:
                polys += list(shapely.get_parts(p))
        if not polys:
            return None
        return shapely.MultiPolygon(polys) if len(polys) > 1 else polys[0]
    return None


class _IdGuard:
    """Refuses a duplicate id in the source, naming both rows: the id must be unique.

    Batches only keep their ids (Arrow buffers, no Python strings); one hash pass
    over all of them at the end of the stream finds duplicates, and only then are
    the rows looked up. The import is one transaction, so refusing at the end
    (or when the database's own unique index refuses first) still leaves the
    workspace unchanged.
    """

    def __init__(self, path: str, lyr: Layer) -> None:
        self.path, self.lyr = path, lyr
        self._ids: list[Any] = []
        self._rows: list[NDArray[np.int64]] = []

    def add(self, ids: pd.Series, rows: Any) -> None:
        s = ids.astype("str")
        arr = arrow_text(s)
        self._ids.append(arr if arr is not None else pa.array(s.to_numpy(dtype=object), type=pa.large_string()))
        self._rows.append(np.asarray(rows, dtype=np.int64))

    def check(self) -> None:
        """Raise ImportDataError naming the first duplicate id and its two rows."""
        if not self._ids:
            return
        ids = pa.chunked_array([a.cast(pa.large_string()) for a in self._ids], type=pa.large_string())
        if len(pc.unique(ids)) == len(ids):  # a third of count_distinct's time
            return
        values = pd.Series(ids.to_numpy(), dtype=object)
        rows = np.concatenate(self._rows)
        dup = np.flatnonzero(values.duplicated(keep=False).to_numpy())
        v = values.iloc[dup[0]]
        first, second = (int(r) for r in rows[dup[values.iloc[dup].to_numpy() == v]][:2])
        raise ImportDataError(
            f"{self.path!r}: {self.lyr.id_column} {v!r} appears in rows {first} and {second}; ids "
            "must be unique — fix the duplicate in the source, or map another id field"
        )


# --------------------------------------------------------------------------------------
# imports never lose data (issue 12)
# --------------------------------------------------------------------------------------
#: Rejected rows listed in a refusal's message; more go to a CSV file.
_REJECTS_IN_MESSAGE = 10


def _where(path: str, source: _Source) -> str:
    # a shapefile's layer is the file itself; other containers may hold several
    named = source.src_layer and source.kind == "ogr" and not source.raw_text
    return f"{path!r}" + (f" (layer {source.src_layer!r})" if named else "")


def _damaged(source: _Source, gdal: GdalErrors) -> ImportDataError:
    return ImportDataError(
        f"{_where(source.path, source)}: GDAL reported read errors ({gdal.first()}), so the file is damaged "
        "(cut short, or its parts do not match); nothing was imported and the workspace is unchanged. "
        "Get an intact copy of the source, or repair it (e.g. re-export it from the program that made it)."
    )


def _dbf_deleted(source: _Source) -> int:
    """Count the records marked deleted in a shapefile's DBF (GDAL counts them, then skips them)."""
    p = Path(source.path)
    dbf = p.with_suffix(".dbf") if p.is_file() else next(iter(sorted(p.glob(f"{source.src_layer}.dbf"))), None)
    if dbf is None or not dbf.is_file():
        return 0
    with open(dbf, "rb") as f:
        head = f.read(32)
        if len(head) < 32:
            return 0
        n = int.from_bytes(head[4:8], "little")
        header, size = int.from_bytes(head[8:10], "little"), int.from_bytes(head[10:12], "little")
        deleted = 0
        for i in range(n):  # only on a count mismatch: one byte per record
            f.seek(header + i * size)
            deleted += f.read(1) == b"*"
    return deleted


def _refuse_loss(
    report: ImportReport,
    source: _Source,
    gdal: GdalErrors,
    removed: int,
    *,
    allow_shrink: bool,
    rejects: str | Path | None,
) -> None:
    """Refuse an import that would lose data; runs inside the import's transaction.

    Called after the last batch was written and before the commit, with the number
    of rows the replace removed (0 for an append), so a refusal rolls everything
    back. Refused: any read error GDAL reported; a source with no features, or
    fewer than it declares; no accepted row at all; and, unless *allow_shrink*,
    a replace that leaves fewer rows than it removed.
    """
    where = _where(report.source, source)
    report.rows_before = removed
    if gdal.failures:
        raise _damaged(source, gdal)
    if report.rows_read == 0:
        raise ImportDataError(
            f"{where}: the layer has no features; nothing was imported and the workspace is unchanged"
        )
    if source.declared is not None and report.rows_read < source.declared:
        skipped = _dbf_deleted(source) if source.raw_text else 0
        if report.rows_read + skipped != source.declared:
            raise ImportDataError(
                f"{where}: GDAL read {report.rows_read:,} of the {source.declared:,} features the file "
                "declares, so it is damaged; nothing was imported and the workspace is unchanged. Get an "
                "intact copy of the source."
            )
        report.warnings.append(f"{skipped:,} record(s) marked deleted in the DBF were skipped")
    if report.rows_imported == 0:
        raise ImportDataError(
            f"{where}: every one of the {report.rows_read:,} rows was rejected, so nothing was imported "
            f"and the workspace is unchanged. {_rejects_listing(report, rejects)}"
        )
    if report.rows_imported < removed and not allow_shrink:
        raise ImportDataError(
            f"{where}: this replace would leave layer {report.layer!r} with {report.rows_imported:,} rows "
            f"instead of the {removed:,} it holds ({report.rows_read:,} read, {len(report.rejected):,} "
            f"rejected); nothing was imported. {_rejects_listing(report, rejects)} If the smaller layer is "
            "right, import again with --allow-shrink (allow_shrink=True)."
        )


def _rejects_listing(report: ImportReport, rejects: str | Path | None) -> str:
    """List the rejected rows for a refusal: in the message, or in a CSV file when many."""
    rows = report.rejected
    if not rows:
        return ""
    if rejects is None and len(rows) <= _REJECTS_IN_MESSAGE:
        return "Rejected rows: " + "; ".join(f"row {r['row']} ({r['id']!r}): {r['reason']}" for r in rows) + "."
    if rejects is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        rejects = Path.cwd() / OUT_DIR / f"landquota-rejected-{report.layer}-{stamp}.csv"
    try:
        if Path(rejects).parent == Path.cwd() / OUT_DIR:
            # issue 15: outputs go to out/ (as `landquota map`'s), made when missing
            Path(rejects).parent.mkdir(exist_ok=True)
        written = _write_rejects(report, Path(rejects))
    except OSError as exc:
        first = "; ".join(f"row {r['row']}: {r['reason']}" for r in rows[:_REJECTS_IN_MESSAGE])
        return f"{len(rows):,} rows were rejected (first: {first}); the full list could not be written ({exc})."
    return f"The {len(rows):,} rejected rows (row number, id, reason) are listed in {str(written)!r}."


def _write_rejects(report: ImportReport, path: Path) -> Path:
    """Write every rejected row to *path* (CSV, UTF-8 with BOM for Excel)."""
    frame = pd.DataFrame(report.rejected, columns=["row", "id", "reason"])
    frame.insert(0, "source", report.source)
    frame.to_csv(path, index=False, encoding="utf-8-sig")
    return path


def _meta_record(report: ImportReport) -> str:
    return json.dumps(
        {
            "source": report.source,
            "src_layer": report.src_layer,
            "source_crs": report.source_crs,
            "encoding": report.encoding,
            "rows": report.rows_imported,
            "mode": report.mode,
            "at": pd.Timestamp.now(tz="UTC").isoformat(),
        },
        ensure_ascii=False,
        sort_keys=True,
    )


# --------------------------------------------------------------------------------------
# the one transaction
# --------------------------------------------------------------------------------------
def _copy_stream(
    ws: Any, raw: Any, lyr: Layer, frames: Iterator[tuple[pd.DataFrame, Any]], *, mode: Mode, bar: Any,
    table: str | None = None,
) -> None:
    """ONE binary COPY for all batches into *table* (default: the layer) on psycopg connection *raw*.

    psycopg's queued writer sends batch *k* while this thread reads, checks and
    encodes batch *k + 1*, so the client's work and the server's (parsing,
    constraints) overlap on two cores instead of adding up.
    """
    from psycopg.copy import QueuedLibpqWriter

    from landquota.store.postgis import _COPY_SIGNATURE, _COPY_TRAILER, GEOM, _binary_rows

    names = list(lyr.column_names) + ([GEOM] if lyr.geometry else [])
    ident = ", ".join(f'"{n}"' for n in names)
    target = table or f'"{ws.schema}"."{lyr.name}"'
    sql = f"COPY {target} ({ident}) FROM STDIN (FORMAT BINARY)"
    with raw.cursor() as cur, cur.copy(sql, writer=QueuedLibpqWriter(cur)) as cp:
        cp.write(_COPY_SIGNATURE)
        for df, wkb in frames:
            if mode == "append":
                ws._check_new_ids({lyr.name: df})
            for start in range(0, len(df), BATCH_ROWS):
                part = df.iloc[start : start + BATCH_ROWS]
                src_wkb = wkb[start : start + BATCH_ROWS] if wkb is not None else None
                cp.write(bytes(_binary_rows(lyr, part, wkb=src_wkb)))
                bar.update(len(part))
        cp.write(_COPY_TRAILER)


def _still_referenced(name: str) -> DataError:
    """Build the refusal of a replace whose old rows other layers' rows still refer to.

    Both backends keep their foreign keys immediate, so emptying such a layer fails
    before a single new row is written; the ledger's allocations and the pipeline's
    stages, meetings and visits must never point at a project that is gone (R6).
    """
    from landquota.store.schema import LAYERS

    users = sorted(
        {
            other.name
            for other in LAYERS.values()
            for col in other.columns
            if col.references is not None and col.references.split(".")[0] == name
            and other.name != name
        }
    )
    return DataError(
        f"layer {name!r} cannot be replaced: rows of other layers "
        f"({', '.join(users) or 'a foreign key'}) refer to its rows; add new rows with --append (ids already present are refused), "
        f"or import into a new workspace"
    )


def _write_into(
    ws: Workspace,
    con: Any,
    lyr: Layer,
    frames: Iterator[tuple[pd.DataFrame, Any]],
    *,
    mode: Mode,
    bar: Any,
    meta: Any,
    expected_rows: int = 0,
    check: Callable[[int], None] | None = None,
) -> None:
    """Stream prepared batches into *lyr* inside the open transaction *con* (see :func:`load_layers`).

    Replaces (or appends to) the layer batch by batch, so memory stays bounded,
    and records the import in the metadata (``import.<layer>``) in the same
    transaction. A failure or a killed process leaves the workspace exactly as
    it was, because the caller's one transaction rolls back. *check* gets the
    number of rows a replace removed once every batch is written; raising
    refuses the load.
    """
    key = f"import.{lyr.name}"
    if ws.kind == "postgis":
        import sqlalchemy as sa

        from landquota.store.postgis import PostgisWorkspace

        if not isinstance(ws, PostgisWorkspace):  # pragma: no cover - kind says so
            raise TypeError(f"{ws!r} is not a PostGIS workspace")
        table = f'"{ws.schema}"."{lyr.name}"'
        rebuild: list[str] = []
        removed = 0
        if mode == "replace" and expected_rows >= BULK_ROWS:
            # issue 18: COPY into a committed stage, keys and indexes built in parallel
            # sessions, swapped in by this transaction (landquota.store.pgstage); None
            # when the layer is not a plain table pgstage can rebuild exactly
            from landquota.store import pgstage

            stage = pgstage.prepare(ws, con, lyr.name)
            if stage is not None:
                stage.load(ws, lambda raw, target: _copy_stream(ws, raw, lyr, frames, mode=mode, bar=bar,
                                                                table=target), check)
                stage.swap(con)
                con.execute(sa.text(f'INSERT INTO "{ws.schema}".landquota_meta (key, value) VALUES (:k, :v) '
                                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value"),
                            {"k": key, "v": meta()})
                return
        if mode == "replace":
            referenced = con.execute(
                sa.text("SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND confrelid = to_regclass(:t)"),
                {"t": table},
            ).scalar()
            # TRUNCATE and dropping keys and indexes need the table's owner: an editor's
            # import (docs/security.md) takes the row-by-row path instead
            owner = con.execute(
                sa.text("SELECT pg_has_role(relowner, 'USAGE') FROM pg_class WHERE oid = to_regclass(:t)"),
                {"t": table},
            ).scalar()
            big = expected_rows >= BULK_ROWS and bool(owner)
            # TRUNCATE (transactional in PostgreSQL) leaves no dead rows behind for
            # COPY to skip; it is not allowed on a table that others reference.
            if big and not referenced:
                # TRUNCATE tells no count: count under the lock it would take anyway
                con.execute(sa.text(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
                removed = int(con.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())
                con.execute(sa.text(f"TRUNCATE {table}"))
            else:
                try:
                    removed = con.execute(ws.table(lyr.name).delete()).rowcount
                except sa.exc.IntegrityError as exc:
                    raise _still_referenced(lyr.name) from exc
            if big and not referenced:
                # The primary key and unique id constraints go too: their B-trees cost the
                # COPY about half its server time (10^6 rows: 3.4 s against 1.5 s bare),
                # and built once afterwards they take a fraction of that. The source's
                # ids were checked for duplicates on the way (_IdGuard), and re-adding
                # the constraint checks them again, in the same transaction.
                for name, ddl in con.execute(
                    sa.text(
                        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                        "WHERE conrelid = to_regclass(:t) AND contype IN ('p', 'u') "
                        "ORDER BY contype, conname"
                    ),
                    {"t": table},
                ).all():
                    con.execute(sa.text(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"'))
                    rebuild.append(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {ddl}')
            if big:
                # Building the GiST and plain B-tree indexes once, sorted, after the
                # load is much cheaper than updating them row by row. DDL is
                # transactional, so a failure or a kill brings the indexes and
                # constraints back with the old rows.
                for name, ddl in con.execute(
                    sa.text(
                        "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i "
                        "JOIN pg_class c ON c.oid = i.indexrelid "
                        "WHERE i.indrelid = to_regclass(:t) AND NOT i.indisunique"
                    ),
                    {"t": table},
                ).all():
                    con.execute(sa.text(f'DROP INDEX "{ws.schema}"."{name}"'))
                    rebuild.append(str(ddl))
        _copy_stream(ws, con.connection.driver_connection, lyr, frames, mode=mode, bar=bar)
        if check is not None:
            check(removed)
        if rebuild:
            # The server's default (64 MB) makes a 10^6-row index sort spill to disk;
            # SET LOCAL ends with this transaction, as pg_restore's advice has it.
            con.execute(sa.text("SET LOCAL maintenance_work_mem = '512MB'"))
        for ddl in rebuild:
            con.execute(sa.text(ddl))
        stmt = (
            f'INSERT INTO "{ws.schema}".landquota_meta (key, value) VALUES (:k, :v) '
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
        )
        con.execute(sa.text(stmt), {"k": key, "v": meta()})
        return
    from landquota.store.gpkg import GEOM, META_UPSERT, GpkgWorkspace

    if not isinstance(ws, GpkgWorkspace):  # pragma: no cover - only two backends
        raise TypeError(f"{ws!r} is not a GeoPackage workspace")
    removed = 0
    if mode == "replace":
        import sqlite3

        try:
            removed = con.execute(f'DELETE FROM "{lyr.name}"').rowcount
        except sqlite3.IntegrityError as exc:
            raise _still_referenced(lyr.name) from exc
        if lyr.geometry:
            con.execute(f'DELETE FROM "rtree_{lyr.name}_{GEOM}"')
    indexed: list[tuple[Any, Any]] = []
    # issue 18: a large replace builds the plain indexes once at the end (GpkgWorkspace._bulk_start)
    restore = ws._bulk_start(con, lyr) if mode == "replace" and expected_rows >= BULK_ROWS else []
    for df, wkb in frames:
        if mode == "append":
            ws._check_new_ids({lyr.name: df})
        part = ws._insert(con, lyr, df, bar, rtree=False, wkb=wkb)
        if part is not None:
            indexed.append(part)
    if check is not None:
        check(removed)
    ws._bulk_end(con, restore)
    if lyr.geometry:
        # one spatial index fill for all batches: bulk-loaded when the layer was emptied
        ws._fill_rtree(con, lyr, indexed)
    con.execute(META_UPSERT, (key, meta()))


def _mark_stale(ws: Workspace, con: Any) -> None:
    """Mark validation stale in the load's transaction: ``validate`` must run before allocation."""
    from landquota.store.postgis import PostgisWorkspace

    if isinstance(ws, PostgisWorkspace):
        import sqlalchemy as sa

        con.execute(
            sa.text(
                f'INSERT INTO "{ws.schema}".landquota_meta (key, value) VALUES (:k, :v) '
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
            ),
            {"k": "validation.state", "v": "stale"},
        )
    else:
        from landquota.store.gpkg import META_UPSERT

        con.execute(META_UPSERT, ("validation.state", "stale"))

"""Take a whole survey delivery in one step: ``landquota import-survey PACKAGE``.

A county's third land survey (三调) database, and its plan and control-line
layers, arrive as one package — a File Geodatabase, a GeoPackage, a VCT file or
a folder of shapefiles — whose layers carry the standards' names. This module
finds those layers, maps each to the workspace's layers and loads all of them in
ONE transaction (:func:`landquota.intake.load.load_layers`): the workspace gets the
whole delivery or, when any layer is unusable, nothing.

=================  ======================  ==========================================
standard layer     name                    workspace layer
=================  ======================  ==========================================
``DLTB``           地类图斑                 ``parcels`` (required)
``XZQ``            行政区 (乡级)             ``towns`` (one row per 行政区代码, parts
                                           dissolved) and ``county`` (their union, per
                                           6-digit county code)
``YJJBNTTB``       永久基本农田图斑          ``control_lines``, kind ``basic_farmland``;
                                           ``paddy_m2`` = 图斑地类面积 of 水田 (0101)
``STBHHX``         生态保护红线              ``control_lines``, kind ``eco_redline``
``CZKFBJ``         城镇开发边界              ``control_lines``, kind ``urban_boundary``
``JSYDGZQ``        建设用地管制区            ``plan_zones`` (管制区类型代码 010–040)
=================  ======================  ==========================================

The urban development boundary goes to ``control_lines`` because that is where
the data contract keeps it (``kind = urban_boundary``, one of 三区三线); the
plan zones' ``zone_type`` has no code for it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

from landquota.errors import ImportDataError, LandquotaError, ParameterError
from landquota.intake.fieldnames import normalize
from landquota.intake.importer import PreparedImport, prepare_import
from landquota.intake.load import Load, load_layers
from landquota.intake.report import ImportReport
from landquota.store.schema import layer
from landquota.store.workspace import Workspace, prepare_frame

__all__ = ["STANDARD_LAYERS", "StandardLayer", "SurveyReport", "find_layers", "import_survey"]


@dataclass(frozen=True)
class StandardLayer:
    """A layer of the survey/plan database standards and where it goes."""

    code: str
    name_zh: str
    target: str  # parcels, towns+county, control_lines, plan_zones
    kind: str | None = None  # control line kind
    aliases: tuple[str, ...] = ()
    required: bool = False

    @property
    def label(self) -> str:
        """``'DLTB 地类图斑'``."""
        return f"{self.code} {self.name_zh}"


STANDARD_LAYERS: tuple[StandardLayer, ...] = (
    StandardLayer("DLTB", "地类图斑", "parcels", required=True),
    StandardLayer("XZQ", "行政区", "towns+county", aliases=("乡级行政区", "XJXZQ")),
    StandardLayer("YJJBNTTB", "永久基本农田图斑", "control_lines", "basic_farmland",
                  aliases=("YJJBNT", "永久基本农田", "永久基本农田保护图斑")),
    StandardLayer("STBHHX", "生态保护红线", "control_lines", "eco_redline", aliases=("生态红线",)),
    StandardLayer("CZKFBJ", "城镇开发边界", "control_lines", "urban_boundary"),
    StandardLayer("JSYDGZQ", "建设用地管制区", "plan_zones", aliases=("建设用地管制分区", "GZQ")),
)

#: What a Personal Geodatabase needs here: GDAL's PGeo driver reads .mdb only through
#: an ODBC driver for MDB files, which neither pyogrio's GDAL nor this system has.
MDB_RECIPE = (
    "sudo apt-get install odbc-mdbtools   # the MDB Tools ODBC driver GDAL's PGeo driver needs\n"
    "ogr2ogr -f GPKG delivery.gpkg {path}   # Debian's GDAL (PGeo driver) converts the whole .mdb\n"
    "landquota import-survey delivery.gpkg --db …"
)


@dataclass(frozen=True)
class _Found:
    path: str  # the file GDAL (or the VCT reader) opens
    src_layer: str | None  # its layer, when it holds several
    name: str  # as the package names it
    std: StandardLayer | None


@dataclass
class SurveyReport:
    """What ``import-survey`` found, loaded and could not use."""

    packages: list[str]
    found: list[tuple[str, str, str]] = field(default_factory=list)  # (package layer, standard, target)
    unrecognised: list[str] = field(default_factory=list)  # package layers that are no standard layer
    missing: list[str] = field(default_factory=list)  # standard layers absent from the package
    rows: dict[str, int] = field(default_factory=dict)  # workspace layer -> rows loaded
    layer_reports: dict[str, ImportReport] = field(default_factory=dict)  # package layer -> report
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        """Return the bilingual summary the command prints."""
        out = [
            f"导入调查成果 import-survey: {', '.join(self.packages)} — one transaction, "
            f"{self.seconds:.1f} s",
            "找到 found:",
        ]
        for src, label, target in self.found:
            out.append(f"  {src} = {label} → {target}")
        out.append("已导入 loaded: " + ", ".join(f"{k} {v:,}" for k, v in self.rows.items()))
        out.append("字段 fields mapped:")
        for src, rep in self.layer_reports.items():
            mapped = ", ".join(f"{k}→{v}" for k, v in rep.field_map.items())
            out.append(f"  {src}: {mapped}")
            if rep.ignored_fields:
                known = set(rep.standard_not_stored)
                out.append(
                    "    未导入 not stored: "
                    + ", ".join(f + (" (standard)" if f in known else "") for f in rep.ignored_fields)
                )
            for r in rep.repaired[:3] + rep.rejected[:3]:
                out.append(f"    row {r['row']} ({r['id']!r}): {r['reason']}")
            out += [f"    警告 warning: {w}" for w in rep.warnings]
        if self.unrecognised:
            out.append("未使用 not used (no standard layer landquota stores): " + ", ".join(self.unrecognised))
        if self.missing:
            out.append("缺少 not in the package: " + ", ".join(self.missing))
        out += [f"警告 warning: {w}" for w in self.warnings]
        return "\n".join(out)


# --------------------------------------------------------------------------------------
# finding the layers
# --------------------------------------------------------------------------------------
_AFFIX = re.compile(r"^[0-9_\-\s]+|[_\-\s]*[0-9]+$")


def _standard(name: str) -> StandardLayer | None:
    """Return the standard layer *name* stands for (its code or Chinese name, maybe with the county code)."""
    key = normalize(name)
    bare = normalize(_AFFIX.sub("", key)) or key
    for std in STANDARD_LAYERS:
        names = {normalize(n) for n in (std.code, std.name_zh, *std.aliases)}
        if key in names or bare in names:
            return std
    return None


def find_layers(package: str | Path) -> list[_Found]:
    """List the layers of a delivery and the standard layer each one is.

    Raises
    ------
    ImportDataError
        The package does not exist, cannot be read, or is a Personal Geodatabase
        (``.mdb``, with the command that converts it).
    """
    p = Path(package)
    if not p.exists():
        raise ImportDataError(f"package {str(p)!r} does not exist; give a .gdb folder, a .gpkg, a .vct or a folder of shapefiles")
    if p.suffix.lower() in (".mdb", ".accdb"):
        raise ImportDataError(
            f"{str(p)!r} is a Personal Geodatabase (Access .mdb), which this GDAL cannot read: its PGeo "
            "driver needs an ODBC driver for MDB files. Convert it first:\n"
            + MDB_RECIPE.format(path=p)
        )
    if p.suffix.lower() == ".vct":
        from landquota.intake import vct

        return [
            _Found(str(p), lyr.name, f"{lyr.name}" + (f" {lyr.alias}" if lyr.alias else ""),
                   _standard(lyr.name) or (_standard(lyr.alias) if lyr.alias else None))
            for lyr in vct.list_layers(p, count=False)
            if lyr.geometry_type != "None"
        ]
    if p.is_dir() and p.suffix.lower() != ".gdb":
        shps = sorted(p.glob("*.shp")) + sorted(p.glob("*.SHP"))
        mdbs = sorted(p.glob("*.mdb"))
        subs = sorted(x for x in p.iterdir() if x.suffix.lower() in (".gdb", ".gpkg", ".vct"))
        if not shps and not subs:
            extra = f" (it holds {mdbs[0].name}: see import-survey {mdbs[0]})" if mdbs else ""
            raise ImportDataError(
                f"folder {str(p)!r} holds no shapefiles, .gdb, .gpkg or .vct{extra}; give the delivery itself"
            )
        out = [_Found(str(s), None, s.name, _standard(s.stem)) for s in shps]
        for sub in subs:
            out += find_layers(sub)
        return out
    try:
        layers = pyogrio.list_layers(p)
    except Exception as exc:
        raise ImportDataError(
            f"{str(p)!r} is not a delivery landquota can read (GDAL: {str(exc).splitlines()[0][:200]}); "
            "give a File Geodatabase (.gdb folder), a GeoPackage, a VCT file or a folder of shapefiles"
        ) from None
    return [
        _Found(str(p), str(name), str(name), _standard(str(name)))
        for name, gtype in layers
        if gtype is not None  # attribute-only tables (e.g. a FileGDB's lookup tables)
    ]


# --------------------------------------------------------------------------------------
# the import
# --------------------------------------------------------------------------------------
def import_survey(
    packages: str | Path | Sequence[str | Path],
    ws: Workspace,
    *,
    plan_version: str | None = None,
    county_name: str | None = None,
    encoding: str | None = None,
    crs: Any = None,
    allow_shrink: bool = False,
) -> SurveyReport:
    """Load a survey delivery into the workspace in ONE transaction.

    Parameters
    ----------
    packages : path or sequence of paths
        A File Geodatabase (``.gdb``), GeoPackage, VCT file or folder of
        shapefiles (several are taken together, still in one transaction).
    ws : Workspace
        The workspace to fill.
    plan_version : str, optional
        ``plan_version`` of the control lines and plan zones (e.g.
        ``'2021-2035'``); needed when the package has any of them and their
        layers carry no 规划版本 field.
    county_name : str, optional
        The county's name (XZQ carries the township names only); by default the
        name already in the workspace for the same code, else the code itself
        (with a warning).
    encoding, crs : optional
        As for :func:`landquota.intake.importer.import_layer`, for every layer.
    allow_shrink : bool, default False
        Let a layer end with fewer rows than it holds (imports never lose data
        unless told so; see ``docs/import.md``).

    Returns
    -------
    SurveyReport

    Raises
    ------
    ImportDataError
        No 地类图斑 layer, a standard layer present twice, or any layer that
        cannot be imported (the message names the layer and why). The workspace
        is then unchanged.
    """
    t0 = time.perf_counter()
    pkgs = [packages] if isinstance(packages, (str, Path)) else list(packages)
    if not pkgs:
        raise ParameterError("import_survey needs at least one package")
    rep = SurveyReport(packages=[str(p) for p in pkgs])
    found: list[_Found] = []
    for pkg in pkgs:
        found += find_layers(pkg)
    by_std: dict[str, _Found] = {}
    for f in found:
        if f.std is None:
            rep.unrecognised.append(f"{f.name} ({Path(f.path).name})" if f.src_layer else f.name)
            continue
        if f.std.code in by_std:
            raise ImportDataError(
                f"the delivery has two {f.std.label} layers: {by_std[f.std.code].name!r} and "
                f"{f.name!r}; give the packages one at a time, or remove the extra one. Nothing was imported."
            )
        by_std[f.std.code] = f
    for std in STANDARD_LAYERS:
        if std.code not in by_std:
            rep.missing.append(std.label)
    if "DLTB" not in by_std:
        names = ", ".join(f.name for f in found) or "none"
        raise ImportDataError(
            f"{', '.join(rep.packages)}: no 地类图斑 (DLTB) layer, which a survey delivery must have; its "
            f"layers are: {names}. Nothing was imported."
        )
    kw: dict[str, Any] = {"encoding": encoding, "crs": crs}

    def prepare(f: _Found, target: str, mapping: dict[str, Any] | None = None, *,
                row_ids: bool = False) -> PreparedImport:
        assert f.std is not None
        try:
            return prepare_import(f.path, ws, layer=target, src_layer=f.src_layer, mapping=mapping,
                                  row_ids=row_ids, **kw)
        except LandquotaError as exc:
            raise ImportDataError(_refusal(f, exc)) from exc

    def collect(f: _Found, prep: PreparedImport) -> pd.DataFrame:
        try:
            frame = prep.collect()
        except LandquotaError as exc:
            raise ImportDataError(_refusal(f, exc)) from exc
        if not len(frame):
            # an empty layer would empty its workspace layer: refused, as a single import is
            raise ImportDataError(_refusal(f, ImportDataError(
                f"it has no feature that could be imported ({prep.report.rows_read} read, "
                f"{len(prep.report.rejected)} rejected)"
            )))
        return frame

    loads: list[Load] = []
    town_names: dict[str, str] = {}
    # --- small layers: read and checked whole before the transaction opens -------------
    xzq = by_std.get("XZQ")
    if xzq is not None:
        # The standard names (行政区代码, 行政区名称 …) as the towns layer knows them; a
        # township may have several parts (rows) under one code, dissolved below, so the
        # rows are read with their row numbers as ids.
        probe = prepare(xzq, "towns").report.field_map
        code_f = next((k for k, v in probe.items() if v == "town_id"), None)
        name_f = next((k for k, v in probe.items() if v == "name"), None)
        if code_f is None or name_f is None:
            raise ImportDataError(_refusal(xzq, ImportDataError(
                f"it has no {'行政区代码 (XZQDM)' if code_f is None else '行政区名称 (XZQMC)'} field; "
                f"its fields are mapped as {probe or 'nothing'}"
            )))
        prep = prepare(xzq, "county", {"fields": {code_f: "admin_code", name_f: "name"}}, row_ids=True)
        towns, county, notes = _towns_and_county(collect(xzq, prep), xzq, county_name, ws)
        town_names = dict(zip(towns["town_id"].astype(str), towns["name"].astype(str), strict=True))
        rep.layer_reports[xzq.name] = prep.report
        rep.warnings += notes
        rep.found.append((xzq.name, xzq.std.label if xzq.std else "", "towns, county"))
        for lyr_name, frame in (("county", county), ("towns", towns)):
            if len(frame):
                loads.append(_frame_load(lyr_name, frame, prep.report, xzq.path, allow_shrink))
                rep.rows[lyr_name] = len(frame)
    lines: list[pd.DataFrame] = []
    line_sources: list[str] = []
    zones: list[pd.DataFrame] = []
    zone_src: PreparedImport | None = None
    for code in ("YJJBNTTB", "STBHHX", "CZKFBJ", "JSYDGZQ"):
        if code not in by_std:
            continue
        f = by_std[code]
        if f.std is None:  # pragma: no cover - by_std holds standard layers only
            continue
        target = f.std.target
        defaults: dict[str, Any] = {}
        if f.std.kind:
            defaults["kind"] = f.std.kind
        if plan_version is not None:
            defaults["plan_version"] = plan_version
        prep = prepare(f, target, {"defaults": defaults})
        if plan_version is None and "plan_version" not in prep.report.field_map.values():
            raise ImportDataError(
                f"layer {f.std.label} ({f.name!r}) has no 规划版本 (plan version) field; give the plan "
                "version with --plan-version (e.g. --plan-version 2021-2035). Nothing was imported."
            )
        frame = collect(f, prep)
        rep.layer_reports[f.name] = prep.report
        rep.found.append((f.name, f.std.label, f"{target}" + (f" ({f.std.kind})" if f.std.kind else "")))
        if code == "YJJBNTTB":
            frame = _with_paddy(frame, f, ws, kw, rep, prep.report)
        if target == "control_lines":
            lines.append(frame)
            line_sources.append(f.std.code)
        else:
            zones.append(frame)
            zone_src = prep
    if lines:
        frame = _combine_lines(lines, line_sources, rep)
        loads.append(_frame_load("control_lines", frame, None, ", ".join(line_sources), allow_shrink))
        rep.rows["control_lines"] = len(frame)
    if zones and zone_src is not None:
        loads.append(_frame_load("plan_zones", zones[0], zone_src.report, zone_src.path, allow_shrink))
        rep.rows["plan_zones"] = len(zones[0])
    # --- the survey patches stream last: an error in their last batch still undoes all --
    dltb = by_std["DLTB"]
    try:
        prep = prepare_import(dltb.path, ws, layer="parcels", src_layer=dltb.src_layer,
                              allow_shrink=allow_shrink, **kw)
        zl = _zldwdm_field(prep.report)
        if zl is not None and town_names:
            # 坐落单位名称 names the village-level unit; the township is the XZQ row whose
            # 9-digit 行政区代码 begins 坐落单位代码 (19 digits), so parcels.town matches towns.name
            unmatched: dict[str, int] = {}
            prep = prepare_import(dltb.path, ws, layer="parcels", src_layer=dltb.src_layer,
                                  allow_shrink=allow_shrink, mapping={"fields": {zl: "town"}},
                                  adjust=lambda df: _township(df, town_names, unmatched), **kw)
    except LandquotaError as exc:
        raise ImportDataError(_refusal(dltb, exc)) from exc
    rep.found.insert(0, (dltb.name, "DLTB 地类图斑", "parcels"))
    loads.append(prep.load())
    try:
        load_layers(ws, loads)
    except LandquotaError as exc:
        # the patches were the only layer still streaming when the transaction rolled back
        raise ImportDataError(_refusal(dltb, exc)) from exc
    parcels = prep.finish()
    if zl is not None and town_names:
        rep.warnings.append(
            f"parcels.town: the township of each patch's 坐落单位代码 ({zl}, first 9 digits) in XZQ, "
            "not 坐落单位名称 (a village-level name)"
        )
        if unmatched:
            rep.warnings.append(
                f"{sum(unmatched.values())} patch(es) have a 坐落单位代码 whose township is not in XZQ "
                f"(e.g. {next(iter(unmatched))!r}); their town is that 9-digit code"
            )
    rep.layer_reports = {dltb.name: parcels, **rep.layer_reports}
    rep.rows = {"parcels": parcels.rows_imported, **rep.rows}
    rep.seconds = time.perf_counter() - t0
    return rep


_ZLDWDM = {normalize(n) for n in ("ZLDWDM", "坐落单位代码", "坐落单位代")}


def _zldwdm_field(report: ImportReport) -> str | None:
    """Return the DLTB field holding 坐落单位代码, if the layer has one."""
    return next((f for f in report.ignored_fields if normalize(f) in _ZLDWDM), None)


def _township(df: pd.DataFrame, names: dict[str, str], unmatched: dict[str, int]) -> pd.DataFrame:
    code = df["town"].astype("str").str.strip().str[:9]
    town = code.map(names)
    miss = town.isna() & df["town"].notna()
    for c in code[miss]:
        unmatched[str(c)] = unmatched.get(str(c), 0) + 1
    out = df.copy()
    out["town"] = town.where(~miss, code).where(df["town"].notna(), None)
    return out


def _refusal(f: _Found, exc: BaseException) -> str:
    label = f.std.label if f.std is not None else f.name
    text = str(exc).rstrip(".")
    text = text.removesuffix(". Nothing was imported").removesuffix(" Nothing was imported")
    return (
        f"layer {label} ({f.name!r}) cannot be imported: {text}. Nothing was imported: the "
        "workspace is unchanged (import-survey loads a delivery whole or not at all)."
    )


def _frame_load(
    lyr_name: str, frame: pd.DataFrame, report: ImportReport | None, source: str, allow_shrink: bool
) -> Load:
    import json

    lyr = layer(lyr_name)
    prepared = prepare_frame(lyr, frame, source=source)
    meta = json.dumps(
        {
            "source": source,
            "src_layer": report.src_layer if report is not None else None,
            "source_crs": report.source_crs if report is not None else "",
            "encoding": report.encoding if report is not None else "",
            "rows": len(prepared),
            "mode": "replace",
            "via": "import-survey",
            "at": pd.Timestamp.now(tz="UTC").isoformat(),
        },
        ensure_ascii=False,
        sort_keys=True,
    )
    frames: Iterator[tuple[pd.DataFrame, Any]] = iter([(prepared, None)])

    def check(removed: int) -> None:
        # imports never lose data (issue 12): a smaller layer needs allow_shrink
        if len(prepared) < removed and not allow_shrink:
            raise ImportDataError(
                f"{source}: layer {lyr_name!r} would hold {len(prepared):,} rows instead of the "
                f"{removed:,} it holds; nothing was imported. If the smaller layer is right, import "
                "again with --allow-shrink (allow_shrink=True)."
            )

    return Load(lyr, frames, lambda: meta, source, "replace", len(prepared), check=check)


def _towns_and_county(
    xzq: pd.DataFrame, f: _Found, county_name: str | None, ws: Workspace
) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, list[str]]:
    """Towns: one row per 行政区代码 (its parts dissolved); county: their union per 6-digit code."""
    notes: list[str] = []
    g = gpd.GeoDataFrame(xzq, geometry="geometry", crs=4490)
    codes = g["admin_code"].astype(str).str.strip()
    g = g.assign(town_id=codes)
    names = g.groupby("town_id")["name"].agg(lambda s: sorted(set(s.dropna().astype(str))))
    bad = names[names.map(len) > 1]
    if len(bad):
        code = bad.index[0]
        raise ImportDataError(_refusal(f, ImportDataError(
            f"行政区代码 {code!r} has two names {bad.iloc[0]}; one code, one township name"
        )))
    towns_src = g[codes.str.len() > 6]
    county_codes = codes.str[:6]
    towns = (
        towns_src.dissolve(by="town_id", aggfunc={"name": "first"}, as_index=False)
        if len(towns_src)
        else gpd.GeoDataFrame({"town_id": [], "name": []}, geometry=[], crs=4490)
    )
    dup = towns["name"][towns["name"].duplicated()]
    if len(dup):
        raise ImportDataError(_refusal(f, ImportDataError(
            f"township name {dup.iloc[0]!r} has two 行政区代码 "
            f"({', '.join(towns.loc[towns['name'] == dup.iloc[0], 'town_id'])}); town names must be unique"
        )))
    if not len(towns_src):
        notes.append(f"{f.name}: every 行政区代码 has 6 digits (county level), so no towns were made")
    existing = _existing_county_names(ws)
    rows = []
    for code in sorted(set(county_codes)):
        part = g[county_codes == code]
        geom = shapely.union_all(np.asarray(part.geometry.values, dtype=object))
        if county_name:
            name = county_name
        elif code in existing:
            name = existing[code]
        else:
            name = code
            notes.append(
                f"the county's name is not in {f.name} (行政区 names the townships); stored the code "
                f"{code!r} as its name — give it with --county-name"
            )
        rows.append({"county_id": code, "name": name, "admin_code": code, "geometry": _multi(geom)})
    county = gpd.GeoDataFrame(rows, geometry="geometry", crs=4490)
    towns["geometry"] = [_multi(x) for x in towns.geometry.values]
    return towns[["town_id", "name", "geometry"]], county, notes


def _existing_county_names(ws: Workspace) -> dict[str, str]:
    try:
        c = ws.read_layer("county")
    except LandquotaError:
        return {}
    return {str(a): str(n) for a, n in zip(c["admin_code"], c["name"], strict=True) if a is not None}


def _multi(g: Any) -> Any:
    polys = [p for p in shapely.get_parts(g) if shapely.get_type_id(p) == 3]
    return shapely.MultiPolygon(polys)


def _with_paddy(
    frame: pd.DataFrame, f: _Found, ws: Workspace, kw: dict[str, Any], rep: SurveyReport,
    lines_report: ImportReport,
) -> pd.DataFrame:
    """Fill ``paddy_m2`` of basic farmland: 图斑地类面积 of the 水田 (0101) patches, 0 otherwise.

    The basic-farmland layer carries the survey's own fields (DLBM, TBDLMJ …); they
    are read through the same pipeline as parcels, so their encodings, cut names
    and areas are handled alike.
    """
    try:
        prep = prepare_import(f.path, ws, layer="parcels", src_layer=f.src_layer, **kw)
        patches = prep.collect()
    except LandquotaError as exc:
        rep.warnings.append(
            f"{f.name}: paddy_m2 not filled (its 地类编码/图斑地类面积 could not be read: {str(exc)[:160]})"
        )
        return frame
    paddy = pd.Series(
        np.where(patches["land_class"].astype(str) == "0101", patches["net_m2"].astype(float), 0.0),
        index=patches["parcel_id"].astype(str),
    )
    out = frame.copy()
    out["paddy_m2"] = out["line_id"].astype(str).map(paddy).astype(float)
    src = {v: k for k, v in prep.report.field_map.items()}
    used = [src[c] for c in ("land_class", "net_m2") if c in src]
    if len(used) == 2:
        lines_report.field_map[f"{used[1]} where {used[0]} = 0101"] = "paddy_m2"
        lines_report.ignored_fields = [x for x in lines_report.ignored_fields if x not in used]
    return out


def _combine_lines(frames: list[pd.DataFrame], codes: list[str], rep: SurveyReport) -> pd.DataFrame:
    """One control-lines frame; ids that repeat across layers get their layer code as prefix."""
    seen: set[str] = set()
    clash = False
    for fr in frames:
        ids = set(fr["line_id"].astype(str))
        clash = clash or bool(ids & seen)
        seen |= ids
    if clash:
        frames = [fr.assign(line_id=code + "-" + fr["line_id"].astype(str)) for fr, code in zip(frames, codes, strict=True)]
        rep.warnings.append(
            "标识码 (BSM) values repeat across the control-line layers; line_id is the layer code "
            "plus BSM (e.g. 'YJJBNTTB-123')"
        )
    out = pd.concat(frames, ignore_index=True)
    return gpd.GeoDataFrame(out, geometry="geometry", crs=4490)  # type: ignore[no-any-return]

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

The steps live in their own modules: :mod:`~landquota.intake.sources` (opening,
encodings, batches), :mod:`~landquota.intake.encodings`, :mod:`~landquota.intake.crs`,
:mod:`~landquota.intake.mapping`, :mod:`~landquota.intake.convert` (one batch to a
contract frame) and :mod:`~landquota.intake.load` (the one transaction); this module
plans an import (:func:`prepare_import`), runs it (:func:`import_layer`) and refuses
one that would lose data.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
from numpy.typing import NDArray

from landquota.errors import DataError, ImportDataError, ParameterError
from landquota.intake.convert import (
    _PLAIN_TYPES,
    _convert,
    _ConvexShare,
    _decode,
    _IdGuard,
    _not_polygons,
    _Plan,
    _repair,
    _State,
)
from landquota.intake.crs import _plan_crs
from landquota.intake.gdal_errors import GdalErrors, gdal_errors
from landquota.intake.load import Load, Mode, load_layers, read_ahead
from landquota.intake.mapping import _CODE_ALIASES, _DEFAULTS, Mapping_, _field_rules, load_mapping
from landquota.intake.report import ImportReport
from landquota.intake.sources import (
    _batches,
    _choose_encoding,
    _csv_frame,
    _csv_geometry,
    _damaged,
    _dbf_deleted,
    _open_source,
    _Source,
    _where,
)
from landquota.settings import OUT_DIR
from landquota.store.schema import Layer, layer
from landquota.store.workspace import Workspace, prepare_frame

__all__ = ["PreparedImport", "import_layer", "prepare_import"]


#: Layers written by landquota itself, never imported from files.
_NOT_IMPORTABLE = ("quota_ledger", "allocation_runs", "allocations", "validation_errors", "ledger_chain")


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
    mode : {'replace', 'append', 'update'}, default 'replace'
        Replace the layer's content, add rows (refusing ids already present), or
        rewrite in place the rows whose id the source gives and add the others
        (rows it does not name stay; other layers' references to them hold).
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
    _frames: Callable[..., Iterator[tuple[pd.DataFrame, Any]]]
    _ids: _IdGuard
    _state: _State
    _t0: float
    _check: Callable[[int], None] | None = None
    _gdal: GdalErrors | None = None
    _rejects: str | Path | None = None

    def frames(self) -> Iterator[tuple[pd.DataFrame, Any]]:
        """Stream the prepared batches (once), their geometries decoded."""
        return self._frames()

    def load(self) -> Load:
        """Return this import as a :class:`Load` for :func:`load_layers`."""
        # a replace or append writes the source's WKB (PostGIS: COPY rows, _binary_rows;
        # GeoPackage: blobs and R-tree envelopes, gpkg.insert_rows) and never reads the
        # geometries; an update rewrites rows from the geometries
        wkb_only = self.mode in ("replace", "append")
        return Load(self.lyr, self._frames(wkb_only), lambda: _meta_record(self.report), self.path, self.mode,
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
    if mode not in ("replace", "append", "update"):
        raise ParameterError(f"mode={mode!r}; use 'replace', 'append' or 'update'")
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
    src_crs, transformer = _plan_crs(source.path, source.crs, source.bounds, vct=source.kind == "vct", lyr=lyr,
                                     crs=crs, swap_xy=swap_xy, report=report, ws=ws)

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

    def frames(wkb_only: bool = False) -> Iterator[tuple[pd.DataFrame, NDArray[Any] | None]]:
        # (frame, the source's WKB when it can go to COPY unchanged): side data
        # travel beside the frame, not in .attrs, which pandas deep-copies on
        # every operation. *wkb_only*: the consumer stores that WKB and never
        # reads the frame's geometries, so valid batches need not be decoded (_decode)
        row0 = 0
        convex = _ConvexShare()  # used on the read-ahead thread only
        for batch, decoded in read_ahead(_batches(source, plan, csv_frame, gdal),
                                         lambda b: _decode(b, plan, wkb_only=wkb_only and adjust is None,
                                                           convex=convex)):
            report.rows_read += len(batch)
            out, rows, wkb, checked = _convert(batch, plan, row0, report, state, decoded)
            if adjust is not None:
                out = adjust(out)
            row0 += len(batch)
            ids.add(out[lyr.id_column], rows)
            try:
                prepared = prepare_frame(lyr, out, source=path, _checked=checked, _ids_checked=True)
            except DataError as exc:
                ids.check()  # a duplicate id is reported with both of its rows
                if decoded is not None and decoded.geoms is None:
                    # not decoded, as all were valid: the refusal is about the attributes
                    raise ImportDataError(str(exc)) from exc
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


# --------------------------------------------------------------------------------------
# imports never lose data (issue 12)
# --------------------------------------------------------------------------------------
#: Rejected rows listed in a refusal's message; more go to a CSV file.
_REJECTS_IN_MESSAGE = 10


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

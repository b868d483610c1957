"""Reading sources: open a file, choose its text encoding, and stream it in batches of raw values.

Shapefiles, GeoPackages, GeoJSON and File Geodatabases are read through GDAL
(pyogrio's Arrow stream), VCT files through :mod:`landquota.intake.vct_reader` (GDAL
has no VCT driver), CSV tables whole (spreadsheets are small) with their geometry
built from a WKT column or vertex lists. A DBF's field names and text are read byte
for byte first, so that landquota, not GDAL, chooses their encoding
(:func:`_choose_encoding`). GDAL's read errors are collected
(:mod:`landquota.intake.gdal_errors`) and refuse the import (:func:`_damaged`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pyogrio
import shapely
from numpy.typing import NDArray
from pyproj import CRS

from landquota.errors import ImportDataError, ParameterError
from landquota.intake.convert import _Plan
from landquota.intake.crs import _digits
from landquota.intake.encodings import _TRANSPORT, _gdal_codec, detect_encoding
from landquota.intake.gdal_errors import GdalErrors, gdal_errors
from landquota.intake.mapping import FieldRule
from landquota.intake.report import ImportReport
from landquota.store.schema import Layer

__all__ = ["BATCH_ROWS"]


#: Rows per batch streamed from GDAL to the workspace: bounds memory (about
#: 50 MB per 50,000 parcels, and at most a few batches in flight) while keeping
#: COPY batches large; smaller batches than 100,000 fill the read-ahead pipeline
#: sooner (the first batch waits for nobody else's work to overlap with).
BATCH_ROWS = 50_000


_WKT_COLUMNS = ("wkt", "geometry", "geom", "shape", "the_geom")
_X_NAMES = ("x", "x坐标", "lon", "lng", "longitude", "经度", "e", "east", "easting", "东坐标")
_Y_NAMES = ("y", "y坐标", "lat", "latitude", "纬度", "n", "north", "northing", "北坐标")
_PART_NAMES = ("part", "ring", "圈号", "部件号")
#: Chinese survey tables call the northing "X" and the easting "Y".
_SURVEY_XY = {"x", "y", "x坐标", "y坐标"}


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
                # kept as Arrow: GEOS gets bytes objects on the read-ahead thread (_decode),
                # the writers the buffers themselves (convert._arrow_wkb)
                df["_lq_wkb"] = pd.arrays.ArrowExtensionArray(rb.column(gi))
            yield df
    finally:
        ctx.__exit__(None, None, None)


def _vct_batches(source: _Source, plan: _Plan, cols: list[str]) -> Iterator[pd.DataFrame]:
    """Yield a VCT layer's batches as _batches does: the fields, then ``_lq_wkb``."""
    from landquota.intake import vct_reader

    assert source.src_layer is not None
    enc = plan.encoding  # as chosen: given with --encoding, or what the reader recognised
    for gdf in vct_reader.iter_batches(source.path, source.src_layer, BATCH_ROWS, encoding=enc):
        df = pd.DataFrame({c: gdf[c].to_numpy() if gdf[c].dtype == object else gdf[c] for c in cols
                           if c in gdf.columns})
        df.index = pd.RangeIndex(len(gdf))
        if plan.lyr.geometry:
            df["_lq_wkb"] = shapely.to_wkb(gdf.geometry.to_numpy())
        yield df


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

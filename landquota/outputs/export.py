"""Export workspace layers for other systems: Shapefile, GeoPackage, FileGDB, VCT.

``landquota export --format shp|gpkg|filegdb|vct [--layer NAME]... --out PATH``.
Plain ``export`` and ``--format gpkg`` without ``--layer`` write the whole-workspace
backup, :func:`export_workspace`: the data and manifest by
:func:`landquota.store.backup.write_backup`, then the QGIS styles and project, so that the
backup opens in QGIS styled. The styling is done here, not in the store, because the
styles are outputs (the store never imports a layer above it).

* **shp**: a folder with one shapefile per layer (a table without geometry as a
  lone ``.dbf``). Text is written in UTF-8, or with ``encoding="gbk"`` in GBK for
  older desktop GIS; either way GDAL recodes it through its ``ENCODING`` layer
  creation option and writes the ``.cpg`` that names it. Field names are cut to
  DBF's 10 bytes by :func:`dbf_names` (documented, deterministic) and the
  mapping is written beside the shapefiles as ``fieldnames.csv``. Dates are DBF
  Date fields; timestamps with a time of day (DBF has no date-time) ISO 8601 text.
* **gpkg**: a plain GeoPackage holding the chosen layers (not a workspace).
* **filegdb**: an Esri File Geodatabase (``.gdb`` folder) by GDAL's OpenFileGDB
  writer (GDAL ≥ 3.6).
* **vct**: one GB/T 17798 VCT file (:func:`landquota.intake.vct_writer.write`); VCT 2.0
  has no attribute-only tables, so tables without geometry are left out (named
  in the result).

Everything is written under a temporary name beside *out* and renamed into place
when complete, so a failed export leaves nothing half-written. The CRS is the
workspace's EPSG:4490 unless *crs* names another (a Gauss–Krüger zone such as
EPSG:4547); GDAL writes it as the ESRI ``.prj``/WKT that desktop GIS and
``ogrinfo`` identify.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pyogrio
from pyproj import CRS

from landquota.errors import ParameterError
from landquota.outputs.qgis_project import write_qgis_project
from landquota.outputs.styles import write_layer_styles
from landquota.store.api import open_workspace
from landquota.store.backup import write_backup
from landquota.store.schema import LAYERS
from landquota.store.workspace import Workspace

__all__ = ["FORMATS", "ExportResult", "dbf_names", "export_layers", "export_workspace"]

FORMATS = ("shp", "gpkg", "filegdb", "vct")

#: text encodings for shapefiles: option value -> (Python codec, GDAL's ENCODING name)
_ENCODINGS = {"utf-8": ("utf-8", "UTF-8"), "utf8": ("utf-8", "UTF-8"), "gbk": ("gbk", "CP936"),
              "cp936": ("gbk", "CP936"), "gb18030": ("gb18030", "GB18030")}


@dataclass
class ExportResult:
    """What an export wrote."""

    out: Path
    format: str
    rows: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # layer -> why
    renamed: dict[str, dict[str, str]] = field(default_factory=dict)  # layer -> {column: dbf field}
    crs: str = "EPSG:4490"
    encoding: str | None = None
    warnings: list[str] = field(default_factory=list)


def export_workspace(ws: Workspace | str | Path, out: str | Path, *, force: bool = False) -> Path:
    """Write the whole workspace to one new GeoPackage, styled for QGIS; return its path.

    Every layer and table, the ledger with its stamps and a manifest
    (:func:`landquota.store.backup.write_backup`), then QGIS's ``layer_styles`` and a
    ``qgis_projects`` entry that names the backup's own file, so that the backup opens in
    QGIS styled as the HTML map.

    Parameters
    ----------
    ws : Workspace, str or Path
        The workspace (or its path/URL) to back up; either backend.
    out : str or Path
        The backup file, ending in ``.gpkg``. It appears only when complete.
    force : bool
        Replace an existing file of that name (atomically).

    Raises
    ------
    ParameterError
        *out* does not end in ``.gpkg``, exists (without ``force``) or is the
        workspace itself.
    """
    path = write_backup(ws, out, force=force)
    # The styles go in after the manifest was computed, as before the store/outputs split:
    # the manifest covers the workspace's layers, not QGIS's own tables.
    with open_workspace(path) as done:
        write_layer_styles(done)
        write_qgis_project(done)
    return path


def dbf_names(columns: Sequence[str], encoding: str = "utf-8") -> dict[str, str]:
    """Map column names to DBF field names of at most 10 bytes in *encoding*.

    Deterministic, in column order:

    1. a name that fits is kept;
    2. otherwise the vowels (a e i o u) after the first letter of each ``_`` part
       are dropped (``deduction_m2`` → ``ddctn_m2``);
    3. what is still too long is cut to 10 bytes (at a character boundary: a
       Chinese name keeps whole characters);
    4. a name already taken (case-insensitively, as DBF compares) gets ``_1``,
       ``_2``… in place of its last characters.
    """
    def nbytes(s: str) -> int:
        return len(s.encode(encoding, errors="replace"))

    def cut(s: str, limit: int) -> str:
        while nbytes(s) > limit:
            s = s[:-1]
        return s

    out: dict[str, str] = {}
    taken: set[str] = set()
    for col in columns:
        name = col
        if nbytes(name) > 10:
            parts = name.split("_")
            name = "_".join(p[:1] + re.sub(r"[aeiouAEIOU]", "", p[1:]) for p in parts)
        name = cut(name, 10)
        if name.upper() in taken:
            k = 1
            while True:
                cand = cut(name, 10 - len(f"_{k}")) + f"_{k}"
                if cand.upper() not in taken:
                    name = cand
                    break
                k += 1
        taken.add(name.upper())
        out[col] = name
    return out


def _frames(ws: Workspace, names: Sequence[str], crs: CRS | None) -> dict[str, pd.DataFrame]:
    frames: dict[str, pd.DataFrame] = {}
    for name in names:
        df = ws.read_layer(name)
        if isinstance(df, gpd.GeoDataFrame) and crs is not None and df.crs is not None and len(df):
            df = df.to_crs(crs)
        elif isinstance(df, gpd.GeoDataFrame) and crs is not None:
            df = df.set_crs(crs, allow_override=True)
        frames[name] = df
    return frames


def export_layers(
    ws: Workspace,
    out: str | os.PathLike[str],
    *,
    fmt: str,
    layers: Sequence[str] | None = None,
    crs: Any = None,
    encoding: str = "utf-8",
    force: bool = False,
) -> ExportResult:
    """Export *layers* (default: every layer holding rows) of *ws* to *out* in *fmt*.

    Parameters
    ----------
    ws : Workspace
    out : path
        The shapefile folder, ``.gpkg`` file, ``.gdb`` folder or ``.vct`` file.
    fmt : {'shp', 'gpkg', 'filegdb', 'vct'}
    layers : list of str, optional
        Layer names; default: all layers that hold rows.
    crs : CRS-like, optional
        Transform to this CRS (e.g. ``'EPSG:4547'``); default the workspace's EPSG:4490.
    encoding : {'utf-8', 'gbk', 'gb18030'}
        Shapefile text encoding (written by GDAL, named in the ``.cpg``).
    force : bool
        Replace an existing *out*.
    """
    if fmt not in FORMATS:
        raise ParameterError(f"--format {fmt!r}; use one of {', '.join(FORMATS)}")
    enc_key = encoding.lower().replace("_", "-")
    if enc_key not in _ENCODINGS:
        raise ParameterError(f"--encoding {encoding!r}; use utf-8 (default) or gbk (older desktop GIS)")
    if fmt != "shp" and enc_key not in ("utf-8", "utf8"):
        raise ParameterError(f"--encoding applies to shapefiles only; {fmt} stores text as its format says")
    target = CRS.from_user_input(crs) if crs is not None else None
    if target is not None and target.is_geocentric:
        raise ParameterError(f"--crs {crs!r} is geocentric; give a geographic or projected CRS")
    dest = Path(os.fspath(out))
    if dest.exists() and not force:
        raise ParameterError(f"{str(dest)!r} exists; choose another --out or add --force to replace it")
    counts = ws.layer_counts()
    if layers:
        unknown = [n for n in layers if n not in LAYERS]
        if unknown:
            raise ParameterError(f"--layer {unknown[0]!r} is not a workspace layer; layers: {', '.join(LAYERS)}")
        names = list(dict.fromkeys(layers))
    else:
        names = [n for n, c in counts.items() if c]
        if not names:
            raise ParameterError("the workspace holds no rows to export")
    res = ExportResult(out=dest, format=fmt, crs=target.to_string() if target is not None else "EPSG:4490")
    if fmt == "vct":
        no_geom = [n for n in names if not LAYERS[n].geometry]
        if layers and no_geom:
            raise ParameterError(f"--layer {no_geom[0]!r} has no geometry, and VCT 2.0 has no attribute-only "
                                 "tables; export it as shp, gpkg or filegdb")
        for n in no_geom:
            res.skipped[n] = "no geometry (VCT 2.0 has no attribute-only tables)"
        names = [n for n in names if LAYERS[n].geometry]
    frames = _frames(ws, names, target)
    # hidden, and with the same suffix: GDAL's FileGDB writer needs the name to end in .gdb
    tmp = dest.with_name(f".{dest.stem}-part{dest.suffix}")
    _remove(tmp)
    try:
        if fmt == "shp":
            res.encoding = _ENCODINGS[enc_key][1]
            _write_shp(tmp, frames, _ENCODINGS[enc_key], res)
        elif fmt == "vct":
            from landquota.intake import vct_writer

            vct_writer.write(tmp, {n: f for n, f in frames.items() if isinstance(f, gpd.GeoDataFrame)},
                      crs=target if target is not None else CRS.from_epsg(4490))
        else:
            driver = "GPKG" if fmt == "gpkg" else "OpenFileGDB"
            for n, f in frames.items():
                _write_ogr(tmp, n, f, driver=driver)
        for n, f in frames.items():
            res.rows.setdefault(n, len(f))
        if dest.exists():
            _remove(dest)
        os.replace(tmp, dest)
    finally:
        _remove(tmp)
    return res


def _remove(p: Path) -> None:
    if p.is_dir():
        shutil.rmtree(p)
    elif p.exists():
        p.unlink()


def _write_ogr(path: Path, name: str, df: pd.DataFrame, *, driver: str, **kw: Any) -> None:
    # an existing GeoPackage or .gdb gains the layer (pyogrio opens it for update)
    if driver == "OpenFileGDB":
        # a FileGDB stores 64-bit integers only for ArcGIS Pro 3.2+ (GDAL writes doubles
        # otherwise): integers that fit 32 bits are written as the Integer every version reads
        df = df.copy()
        for c in df.columns:
            s = df[c]
            if pd.api.types.is_integer_dtype(s) and (s.dropna().abs() < 2**31).all():
                df[c] = s.astype("Int32")
    if isinstance(df, gpd.GeoDataFrame):
        gtypes = set(df.geometry.dropna().geom_type)
        # a layer's type is fixed in a FileGDB: the contract's polygons are MultiPolygons,
        # whatever rows (or none) there are
        gtype = "MultiPolygon" if gtypes <= {"Polygon", "MultiPolygon"} else None
        pyogrio.write_dataframe(df, path, layer=name, driver=driver, promote_to_multi=True,
                                geometry_type=gtype, **kw)
    else:
        pyogrio.write_dataframe(df, path, layer=name, driver=driver, **kw)


def _dbf_dates(df: pd.DataFrame) -> pd.DataFrame:
    """Dates as DBF Date fields; timestamps with a time of day as ISO 8601 text.

    DBF has a Date type but no date-time: GDAL would make every datetime column a
    text field with a RuntimeWarning per column. A column whose values are all at
    midnight (the contract's dates) becomes Arrow ``date32``, written as Date; a
    real timestamp (``entered_at``) keeps its time as ``YYYY-MM-DDTHH:MM:SS.sss``.
    """
    out = df
    for c in df.columns:
        s = df[c]
        if not pd.api.types.is_datetime64_any_dtype(s):
            continue
        if out is df:
            out = df.copy()
        t = s.dt.tz_convert("UTC").dt.tz_localize(None) if s.dt.tz is not None else s
        if (t.dropna() == t.dropna().dt.normalize()).all():
            out[c] = pd.Series(t.dt.date, index=s.index, dtype="date32[pyarrow]")
        else:
            text = t.dt.strftime("%Y-%m-%dT%H:%M:%S.%f").str.slice(0, 23)
            out[c] = text.where(t.notna(), None)
    return out


def _write_shp(folder: Path, frames: dict[str, pd.DataFrame], enc: tuple[str, str], res: ExportResult) -> None:
    folder.mkdir(parents=True)
    rows: list[tuple[str, str, str]] = []
    for name, df in frames.items():
        geom = df.geometry.name if isinstance(df, gpd.GeoDataFrame) else None
        cols = [c for c in df.columns if c != geom]
        mapping = dbf_names(cols, enc[0])
        out = _dbf_dates(df).rename(columns=mapping)
        for c in cols:
            rows.append((name, c, mapping[c]))
        if any(c != mapping[c] for c in cols):
            res.renamed[name] = {c: mapping[c] for c in cols if c != mapping[c]}
        long = [c for c in cols if pd.api.types.is_string_dtype(out[mapping[c]]) and out[mapping[c]].map(
            lambda v: len(v.encode(enc[0], errors="replace")) if isinstance(v, str) else 0).max() > 254]
        if long:
            # DBF text fields hold 254 bytes: GDAL cuts longer values
            res.warnings.append(f"{name}: {', '.join(long)} hold(s) text longer than a DBF field's 254 bytes, "
                                "cut by GDAL; export to gpkg or filegdb to keep it whole")
        suffix = ".shp" if geom is not None else ".dbf"
        # pyogrio hands ``encoding`` to GDAL as the shapefile's ENCODING layer creation
        # option: GDAL recodes the text and writes the .cpg (a re-implementation here
        # would be the bug the issue reports)
        with warnings.catch_warnings():
            # reported above, in the result, with what to do about it
            warnings.filterwarnings("ignore", message=r".*has been truncated to 254", category=RuntimeWarning)
            # the Arrow writer, because only it writes a date32 column as DBF's Date field (the
            # row-by-row writer asks GDAL for DateTime, which DBF lacks, and gets text)
            _write_ogr(folder / f"{name}{suffix}", name, out, driver="ESRI Shapefile", encoding=enc[1],
                       use_arrow=True)
    with open(folder / "fieldnames.csv", "w", encoding="utf-8-sig", newline="") as f:
        w = csv.writer(f)
        w.writerow(["layer", "column", "dbf_field"])
        w.writerows(rows)

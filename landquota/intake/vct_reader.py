"""Read a layer of a VCT file: :func:`iter_batches` (streaming) and :func:`read_layer`.

Reading streams: the file is read line by line, never whole. Line coordinates
(which polygons reference) and the chosen layer's geometries (which must be
joined to the attribute rows at the end of the file) go to a temporary file
beside a small sorted id index, and are fetched back with ``pread``. Memory is
bounded by the index (about 24 bytes per line object and per feature) and one
batch of rows.

The file's header and layers are :mod:`landquota.intake.vct`; the geometry sections
:mod:`landquota.intake.vct_geometry`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from landquota.intake.vct import (
    VctField,
    _find_layer,
    _Lines,
    _Meta,
    _meta_of,
    _read_meta,
    _skip_section,
)
from landquota.intake.vct_geometry import _CoordStore, _Geo, _GeomStore, _read_objects

__all__ = ["iter_batches", "read_layer"]


def iter_batches(
    path: str | os.PathLike[str], layer: str, batch_size: int = 50_000, *, encoding: str | None = None
) -> Iterator[gpd.GeoDataFrame]:
    """Stream a VCT layer as GeoDataFrames of at most *batch_size* rows.

    Rows follow the attribute table's order; features with geometry but no
    attribute row come last (attributes empty), rows without geometry have None.
    Columns are the table's fields typed by the TableStructure (text, ``Int64``,
    ``float64``) then ``geometry``, with the header's CRS (None if the header does
    not describe one landquota recognises).
    """
    p = os.fspath(path)
    if batch_size <= 0:
        raise ValueError(f"batch_size={batch_size}; give a positive number of rows")
    lines = _Lines(p, encoding)
    try:
        with tempfile.TemporaryDirectory(prefix="landquota-vct-") as tmp:
            yield from _stream(lines, p, layer, batch_size, tmp)
    finally:
        lines.close()


def _stream(lines: _Lines, path: str, layer: str, batch_size: int, tmp: str) -> Iterator[gpd.GeoDataFrame]:
    meta, _ = _read_meta(lines)
    table, codes, geom_type, fields = _find_layer(path, meta, layer)
    geo = _Geo(lines, meta.header)
    lead = _Lead(fields)
    coords = _CoordStore(tmp)
    geoms = _GeomStore(tmp)
    try:
        sealed = False
        while True:
            item = lines.maybe()
            if item is None:
                break
            no, text = item
            if text in ("PointBegin", "LineBegin", "PolygonBegin"):
                kind = text[: -len("Begin")]
                if kind == "Polygon":
                    coords.seal()
                elif kind == "Line" and (sealed or coords.sealed):
                    raise lines.error("a Line section after the Polygon section: GB/T 17798 puts lines "
                                      "before the polygons made of them", no)
                _read_objects(lines, geo, kind, codes if _GEOM_KIND[kind] == geom_type else set(),
                              coords, geoms)
            elif text == "AttributeBegin":
                if not sealed:
                    geoms.seal(path, _SECTION[geom_type])
                    sealed = True
                yield from _attributes(lines, meta, table, fields, geoms, batch_size, lead)
            elif text.endswith("Begin"):
                _skip_section(lines, text)
            else:
                raise lines.error(f"expected a section (…Begin), found {text[:60]!r}", no)
        if not sealed:
            geoms.seal(path, _SECTION[geom_type])
        yield from _leftovers(meta, fields, bool(lead.value), geoms, batch_size)
    finally:
        coords.close()
        geoms.close()


_GEOM_KIND = {"Point": "Point", "Line": "LineString", "Polygon": "Polygon"}
_SECTION = {"Point": "Point", "LineString": "Line", "Polygon": "Polygon", "None": "geometry"}


class _Lead:
    """Whether rows carry the object id before the fields, or as the first field.

    GB/T 17798's generic tables put it before them; the survey databases make BSM the
    first field, so a row has exactly as many values as the table has fields.
    """

    def __init__(self, fields: tuple[VctField, ...]) -> None:
        self.value: bool | None = None if fields else True


def _attributes(lines: _Lines, meta: _Meta, table: str, fields: tuple[VctField, ...], geoms: _GeomStore,
                batch_size: int, state: _Lead) -> Iterator[gpd.GeoDataFrame]:
    sep = meta.header.separator
    while True:
        _no, text = lines.next("AttributeEnd")
        if text == "AttributeEnd":
            return
        name = text
        mine = name.upper() == table.upper()
        rows: list[list[str]] = []
        nos: list[int] = []
        nf = len(fields)
        lead = state.value
        while True:
            rno, rtext = lines.next(f"TableEnd of table {name!r}")
            if rtext == "TableEnd":
                break
            if not mine:
                continue
            vals = rtext.split(sep)
            if lead is None:
                if nf and len(vals) == nf:
                    lead = False
                elif len(vals) == nf + 1:
                    lead = True
                else:
                    raise lines.error(f"table {name!r} has {nf} fields but this row has {len(vals)} values "
                                      f"(or {nf} plus the object id expected)", rno)
            elif len(vals) != nf + (1 if lead else 0):
                raise lines.error(f"table {name!r}: this row has {len(vals)} values, the others "
                                  f"{nf + (1 if lead else 0)}", rno)
            rows.append(vals)
            nos.append(rno)
            if len(rows) >= batch_size:
                yield _frame(lines, meta, fields, rows, nos, bool(lead), geoms)
                rows, nos = [], []
        if mine and rows:
            yield _frame(lines, meta, fields, rows, nos, bool(lead), geoms)


def _columns(fields: tuple[VctField, ...], lead: bool) -> list[str]:
    names = [f.name for f in fields]
    if lead:
        names = ["BSM" if "BSM" not in {n.upper() for n in names} else "OID", *names]
    return names


def _frame(lines: _Lines, meta: _Meta, fields: tuple[VctField, ...], rows: list[list[str]], nos: list[int],
           lead: bool, geoms: _GeomStore) -> gpd.GeoDataFrame:
    names = _columns(fields, lead)
    kinds = (["int"] if lead else []) + [f.kind for f in fields]
    cols = list(zip(*rows, strict=True))
    data: dict[str, Any] = {}
    for name, kind, col in zip(names, kinds, cols, strict=True):
        data[name] = _typed(lines, name, kind, col, nos)
    first = data[names[0]]
    oids = np.zeros(len(rows), dtype=np.int64)
    for i, v in enumerate(first):
        try:
            oids[i] = int(str(v))
        except (TypeError, ValueError):
            raise lines.error(f"the object id {v!r} (the row's first value) is not an integer; it ties the "
                              "row to its geometry", nos[i]) from None
    return gpd.GeoDataFrame(pd.DataFrame(data), geometry=gpd.GeoSeries(geoms.take(oids), crs=meta.header.crs),
                            crs=meta.header.crs)


def _typed(lines: _Lines, name: str, kind: str, col: Sequence[str], nos: list[int]) -> pd.Series:
    s = pd.Series(col, dtype=object).str.strip()
    s = s.where(s != "", None)
    if kind == "str":
        return s.astype(object)
    try:
        num = pd.to_numeric(s, errors="raise")
    except (ValueError, TypeError):
        conv = pd.to_numeric(s, errors="coerce")
        bad = int(np.flatnonzero(conv.isna() & s.notna())[0])
        raise lines.error(f"field {name!r} is {'an integer' if kind == 'int' else 'a number'} field but "
                          f"holds {s.iloc[bad]!r}", nos[bad]) from None
    if kind == "int":
        if not pd.isna(num).all() and (np.asarray(num.dropna(), dtype=float) % 1 != 0).any():
            bad = int(np.flatnonzero((num.fillna(0) % 1) != 0)[0])
            raise lines.error(f"field {name!r} is an integer field but holds {s.iloc[bad]!r}", nos[bad])
        return num.astype("Int64")
    return num.astype("float64")


def _leftovers(meta: _Meta, fields: tuple[VctField, ...], lead: bool, geoms: _GeomStore,
               batch_size: int) -> Iterator[gpd.GeoDataFrame]:
    ids: list[int] = []
    gs: list[Any] = []
    for oid, g in geoms.unused():
        ids.append(oid)
        gs.append(g)
        if len(ids) >= batch_size:
            yield _bare(meta, fields, lead, ids, gs)
            ids, gs = [], []
    if ids:
        yield _bare(meta, fields, lead, ids, gs)


def _bare(meta: _Meta, fields: tuple[VctField, ...], lead: bool, ids: list[int], gs: list[Any]) -> gpd.GeoDataFrame:
    """Rows of features without an attribute row: the id, empty attributes."""
    names = _columns(fields, lead)
    kinds = (["int"] if lead else []) + [f.kind for f in fields]
    data: dict[str, Any] = {}
    for i, (name, kind) in enumerate(zip(names, kinds, strict=True)):
        if i == 0:
            data[name] = pd.array(ids, dtype="Int64") if kind == "int" else pd.Series(
                [str(v) for v in ids], dtype=object)
        elif kind == "int":
            data[name] = pd.array([None] * len(ids), dtype="Int64")
        elif kind == "float":
            data[name] = np.full(len(ids), np.nan)
        else:
            data[name] = pd.Series([None] * len(ids), dtype=object)
    return gpd.GeoDataFrame(pd.DataFrame(data), geometry=gpd.GeoSeries(gs, crs=meta.header.crs),
                            crs=meta.header.crs)


def read_layer(path: str | os.PathLike[str], layer: str, *, encoding: str | None = None) -> gpd.GeoDataFrame:
    """Read the whole layer as one GeoDataFrame (see :func:`iter_batches`)."""
    frames = list(iter_batches(path, layer, encoding=encoding))
    if not frames:
        p = os.fspath(path)
        meta, _enc = _meta_of(p, encoding)
        _t, _c, _g, fields = _find_layer(p, meta, layer)
        return _bare(meta, fields, not fields, [], [])
    if len(frames) == 1:
        return frames[0]
    crs = frames[0].crs
    return gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry", crs=crs)

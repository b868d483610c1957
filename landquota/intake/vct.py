"""Read and write VCT files: GB/T 17798-2007 地理空间数据交换格式 (``CNSDTF-VCT``).

VCT is the text exchange format in which third-national-land-survey (三调) and
land-use-planning results are submitted (成果汇交). A file is a sequence of
sections, each ``<Name>Begin`` … ``<Name>End``::

    HeadBegin … HeadEnd                   DataMark, Version, CRS description, extent, Separator
    FeatureCodeBegin … FeatureCodeEnd     code,name,geometry type,attribute table
    TableStructureBegin … End             TABLE,n  then n lines name,type[,width[,precision]]  then 0
    PointBegin / LineBegin / PolygonBegin objects: id, feature code, style code, body, 0
    AnnotationBegin, TopologyBegin, StyleBegin, …  (skipped: nothing a land-quota layer uses)
    AttributeBegin                        TABLE  then rows id,value,…  then TableEnd; … AttributeEnd

Geometry bodies (the object's lines after id, feature code and style code):

* point: feature type; one coordinate line (a directed point has a second, the
  direction, which is dropped), or a count and that many lines (a point group);
* line: feature type 1–6 = direct: number of segments, then per segment its
  type (11 = polyline), its point count and the points; feature type 100 = the
  line is made of other lines: a count, then the referenced line ids;
* polygon: feature type 1 = direct: a label point, the number of rings, then
  per ring its type, point count and points; feature type 100 = indirect: a
  label point, the make-up type (21 = of lines), the number of references and
  the references: line ids, negative for a line used backwards, ``0`` between
  rings. Rings are chained from the lines; which ring is a hole follows from
  containment (the file does not say).

Where the descriptions disagree, see ``docs/import.md`` (VCT) for which one this
module follows. Text is GB18030 (the standard's GB 2312, widened to what GBK
files carry); a UTF-8 byte-order mark switches to UTF-8.

Reading streams: the file is read line by line, never whole. Line coordinates
(which polygons reference) and the chosen layer's geometries (which must be
joined to the attribute rows at the end of the file) go to a temporary file
beside a small sorted id index, and are fetched back with ``pread``. Memory is
bounded by the index (about 24 bytes per line object and per feature) and one
batch of rows.
"""

from __future__ import annotations

import io
import itertools
import os
import re
import tempfile
from array import array
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray
from pyproj import CRS

from landquota.errors import ImportDataError

__all__ = ["VctError", "VctField", "VctHeader", "VctLayer", "iter_batches", "list_layers", "read_header",
           "read_layer", "write"]


class VctError(ImportDataError):
    """A VCT file breaks the format: the message names the file, the line and what was expected."""


# ----------------------------------------------------------------------------------------
# data model
# ----------------------------------------------------------------------------------------
#: VCT field types (GB/T 17798-2007 5.5) → pandas dtype of the column read.
_INT_TYPES = {"int", "int1", "int2", "int4", "int8", "integer", "smallint", "long"}
_FLOAT_TYPES = {"float", "double", "numeric", "real", "decimal"}
#: ... and the OGR field type the import pipeline reasons with (text, integer, real)
_OGR = {"str": "OFTString", "int": "OFTInteger64", "float": "OFTReal"}


@dataclass(frozen=True)
class VctField:
    """A field of a TableStructure: its name, VCT type, width and precision."""

    name: str
    type: str  # as written in the file: Char, Int, Float, Double, Date, Varchar…
    width: int | None = None
    precision: int | None = None

    @property
    def kind(self) -> str:
        """Return 'int', 'float' or 'str': how the column is typed when read."""
        t = self.type.lower()
        return "int" if t in _INT_TYPES else "float" if t in _FLOAT_TYPES else "str"

    @property
    def ogr_type(self) -> str:
        """Return the OGR field type the import pipeline reasons with."""
        return _OGR[self.kind]


@dataclass(frozen=True)
class VctLayer:
    """One layer of a VCT file: a feature class and its attribute table."""

    name: str  # the attribute table's name, e.g. "DLTB"
    code: str  # the (first) feature code, e.g. "2001010100"; "" for a table without geometry
    alias: str  # the feature type's name, e.g. "地类图斑"
    geometry_type: str  # "Point" | "LineString" | "Polygon" | "None"
    crs: CRS | None
    feature_count: int | None  # rows of its attribute table (None when not counted)
    fields: tuple[VctField, ...]
    codes: tuple[str, ...] = ()


@dataclass
class VctHeader:
    """The header: its raw values (keys lower-case) and what landquota made of them."""

    values: dict[str, str]
    separator: str = ","
    crs: CRS | None = None
    offset: tuple[float, float] = (0.0, 0.0)
    swap_xy: bool = False
    dim: int = 2
    extent: tuple[float, float, float, float] | None = None  # in the file's coordinates + offset
    version: str = ""
    encoding: str = "gb18030"  # the text encoding the file was read with


_GEOM_NAMES = {"point": "Point", "line": "LineString", "polygon": "Polygon", "annotation": "Annotation",
               "solid": "Solid", "aggregation": "Aggregation"}


@dataclass
class _Meta:
    header: VctHeader
    codes: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # code -> (alias, geom, table)
    tables: dict[str, tuple[VctField, ...]] = field(default_factory=dict)  # exact table name -> fields
    table_flags: dict[str, bool] = field(default_factory=dict)  # table -> has geometry


# ----------------------------------------------------------------------------------------
# line reading
# ----------------------------------------------------------------------------------------
def _sniff(raw: IO[bytes]) -> str:
    """GB18030 (the standard's), unless the first megabyte is non-ASCII text valid as UTF-8.

    Chinese text in GB18030 is practically never valid UTF-8, while UTF-8 read as
    GB18030 is mojibake, so a UTF-8 file without a byte-order mark is recognised here.
    """
    sample = raw.read(1 << 20)
    raw.seek(0)
    if sample.isascii():
        return "gb18030"
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(sample) - 3:  # not just a character cut by the sample's end
            return "gb18030"
    return "utf-8"


class _Lines:
    """The file's non-blank lines, decoded, with their 1-based numbers; comments skipped."""

    def __init__(self, path: str, encoding: str | None) -> None:
        self.path = path
        raw = open(path, "rb")  # noqa: SIM115 - closed by close(), through the wrapper
        head = raw.read(3)
        if head == b"\xef\xbb\xbf":
            self.encoding = encoding or "utf-8"
        else:
            raw.seek(0)
            self.encoding = encoding or _sniff(raw)
        # decoded in large chunks by the text layer (one decode call per line costs more than
        # the parsing); GB18030's multi-byte characters never contain a line-feed byte, so
        # splitting lines after decoding is the same as before
        self.f: IO[str] = io.TextIOWrapper(raw, encoding=self.encoding, errors="strict", newline=None)
        self.no = 0
        self._peeked: tuple[int, str] | None = None

    def close(self) -> None:
        self.f.close()

    def error(self, msg: str, no: int | None = None) -> VctError:
        return VctError(f"{self.path!r} line {no if no is not None else self.no}: {msg}")

    def _decode_error(self) -> VctError:
        """Find the first line that does not decode (the text layer only knows the chunk)."""
        bad = self.no + 1
        with open(self.path, "rb") as f:
            for no, raw in enumerate(f, start=1):
                try:
                    raw.decode(self.encoding)
                except UnicodeDecodeError:
                    bad = no
                    break
        return self.error(f"not {self.encoding} text (VCT files are GB18030 by GB/T 17798); give the "
                          "file's encoding with --encoding", bad)

    def _line(self) -> str:
        try:
            return self.f.readline()
        except UnicodeDecodeError:
            raise self._decode_error() from None

    def _raw(self) -> tuple[int, str] | None:
        while True:
            line = self._line()
            if not line:
                return None
            self.no += 1
            text = line.strip()
            if not text:
                continue
            if text == "CommentBegin":
                while True:
                    line = self._line()
                    if not line:
                        return None
                    self.no += 1
                    if line.strip().startswith("CommentEnd"):
                        break
                continue
            return self.no, text

    def next(self, what: str = "more lines") -> tuple[int, str]:
        if self._peeked is not None:
            peeked, self._peeked = self._peeked, None
            return peeked
        item = self._raw()
        if item is None:
            raise self.error(f"the file ends where {what} was expected")
        return item

    def physical(self, what: str) -> tuple[int, str]:
        """Return the next line even when it is blank (an empty style code)."""
        if self._peeked is not None:
            return self.next(what)
        line = self._line()
        if not line:
            raise self.error(f"the file ends where {what} was expected")
        self.no += 1
        return self.no, line.strip()

    def peek(self) -> tuple[int, str] | None:
        if self._peeked is None:
            self._peeked = self._raw()
        return self._peeked

    def maybe(self) -> tuple[int, str] | None:
        item = self.peek()
        self._peeked = None
        return item


def _int(lines: _Lines, no: int, text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise lines.error(f"expected {what} (an integer), found {text[:60]!r}", no) from None


# ----------------------------------------------------------------------------------------
# header, feature codes, table structures
# ----------------------------------------------------------------------------------------
def _parse_head(lines: _Lines) -> VctHeader:
    values: dict[str, str] = {}
    while True:
        no, text = lines.next("HeadEnd")
        if text == "HeadEnd":
            break
        key, sep, value = text.partition(":")
        if not sep:
            raise lines.error(f"a header line is 'Key:value'; found {text[:60]!r}", no)
        values[key.strip().lower()] = value.strip()
    h = VctHeader(values=values)
    h.version = values.get("version", "")
    mark = values.get("datamark", "")
    if "VCT" not in mark.upper():
        raise lines.error(f"DataMark is {mark!r}, not CNSDTF-VCT: this is not a GB/T 17798 VCT file", 1)
    sep = values.get("separator", ",") or ","
    h.separator = sep[0]
    h.dim = int(values.get("dim", "2") or 2) if (values.get("dim", "2") or "2").isdigit() else 2
    off = _floats(values.get("offset", ""), h.separator)
    h.offset = (off[0] if off else 0.0, off[1] if len(off) > 1 else 0.0)
    xdir = values.get("xaxisdirection", "E").upper()[:1]
    ydir = values.get("yaxisdirection", "N").upper()[:1]
    # Chinese survey practice names the northing X; a file that says so is read as (E, N).
    h.swap_xy = xdir == "N" and ydir == "E"
    if h.swap_xy:  # the offset is given in the file's axis order, like the coordinates
        h.offset = (h.offset[1], h.offset[0])
    mn = _floats(values.get("extentmin", ""), h.separator)
    mx = _floats(values.get("extentmax", ""), h.separator)
    if len(mn) < 2 and "minx" in values:
        mn = [_float0(values.get("minx")), _float0(values.get("miny"))]
        mx = [_float0(values.get("maxx")), _float0(values.get("maxy"))]
    if len(mn) >= 2 and len(mx) >= 2:
        x0, y0, x1, y1 = mn[0], mn[1], mx[0], mx[1]
        if h.swap_xy:
            x0, y0, x1, y1 = y0, x0, y1, x1
        ox, oy = h.offset
        h.extent = (x0 + ox, y0 + oy, x1 + ox, y1 + oy)
    h.crs = _header_crs(values, h.extent)
    return h


def _floats(text: str, sep: str) -> list[float]:
    out: list[float] = []
    for part in text.replace(sep, ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            out.append(float(part))
        except ValueError:
            return []
    return out


def _float0(text: str | None) -> float:
    try:
        return float(text or "")
    except ValueError:
        return float("nan")


#: reference ellipsoids of Chinese data: (EPSG geographic, 3° GK by zone 25..45, 3° GK by CM
#: 75..135, 6° GK by zone 13..23, 6° GK by CM 75..135)
_DATUMS = {
    "CGCS2000": (4490, 4513, 4534, 4491, 4502),
    "Xian 1980": (4610, 2349, 2370, 2327, 2338),
    "Beijing 1954": (4214, 2401, 2422, 21413, 21473),
}


def _datum_of(spheroid: str) -> str | None:
    s = spheroid.upper()
    nums = re.findall(r"\d+(?:\.\d+)?", s)
    if "2000" in s or "CGCS" in s or "6378137" in nums:
        return "CGCS2000"
    if "西安" in spheroid or "XIAN" in s or "1980" in s or "IAG" in s or "6378140" in nums:
        return "Xian 1980"
    if "北京" in spheroid or "BEIJING" in s or "1954" in s or "克拉索夫斯基" in spheroid or "KRASS" in s \
            or "6378245" in nums:
        return "Beijing 1954"
    return None


def _header_crs(v: Mapping[str, str], extent: tuple[float, float, float, float] | None) -> CRS | None:
    """Return the CRS the header describes (an EPSG CRS), or None when it cannot be told."""
    for key in ("horizontalcrs", "crs", "epsg"):
        if v.get(key):
            try:
                return CRS.from_user_input(v[key] if not v[key].isdigit() else f"EPSG:{v[key]}")
            except Exception:  # an unreadable optional key: fall back to the description
                pass
    datum = _datum_of(v.get("spheroid", ""))
    cst = (v.get("coordinatesystemtype") or v.get("coordsystype") or "").upper()[:1]
    unit = (v.get("xyunit") or v.get("unit") or "").upper()[:1]
    if datum is None:
        return None
    geo, z3, cm3, z6, cm6 = _DATUMS[datum]
    if cst == "D" or (not cst and unit == "D"):
        return CRS.from_epsg(geo)
    if cst not in ("P", ""):
        return None
    proj = v.get("projection", "")
    if not any(k in proj for k in ("高斯", "Gauss", "GAUSS", "gauss", "横轴墨卡托", "Transverse", "TM")):
        return None
    # Parameters in the order of GB/T 17798-2007 Annex C for Gauss-Krüger: central meridian,
    # latitude of origin, (standard parallels, unused), scale factor, false easting,
    # false northing, zone width. Only the central meridian and false easting decide the code.
    params = [p.strip() for p in v.get("parameters", "").replace(";", ",").split(",")]
    nums = [_float0(p) if p else float("nan") for p in params]
    cm = nums[0] if nums and nums[0] == nums[0] else None
    fe = nums[6] if len(nums) > 6 and nums[6] == nums[6] else None
    width = nums[8] if len(nums) > 8 and nums[8] == nums[8] else None
    if cm is None:
        return None
    six = width == 6  # 3-degree zones unless the header says 6 (survey data are 3-degree)
    # the zone number is part of the easting when the false easting says so, or when the
    # coordinates have 8 digits although the header gave 500 km (a common omission)
    zone_in_easting = (fe is not None and fe > 1_000_000) or (extent is not None and extent[0] >= 10_000_000)
    if six:
        zone = round((cm + 3) / 6)
        if zone_in_easting and 13 <= zone <= 23:
            return CRS.from_epsg(z6 + zone - 13)
        if 75 <= cm <= 135:
            return CRS.from_epsg(cm6 + round((cm - 75) / 6))
        return None
    if zone_in_easting:
        zone = round(cm / 3)
        if 25 <= zone <= 45 and abs(zone * 3 - cm) < 1e-9:
            return CRS.from_epsg(z3 + zone - 25)
        return None
    if 75 <= cm <= 135 and abs(cm / 3 - round(cm / 3)) < 1e-9:
        return CRS.from_epsg(cm3 + round((cm - 75) / 3))
    return None


def _parse_feature_codes(lines: _Lines, meta: _Meta) -> None:
    sep = meta.header.separator
    while True:
        no, text = lines.next("FeatureCodeEnd")
        if text == "FeatureCodeEnd":
            return
        parts = [p.strip() for p in text.split(sep)]
        if len(parts) < 3:
            raise lines.error(f"a feature code line is code{sep}name{sep}geometry type{sep}table; found {text!r}", no)
        geom = _GEOM_NAMES.get(parts[2].lower())
        if geom is None:
            raise lines.error(f"unknown geometry type {parts[2]!r} (Point, Line, Polygon, Annotation…)", no)
        # the table name is the 4th item (GB/T 17798-2007 D.2); files of the older land-use
        # format put a colour before it, so the first later item naming a table wins (resolved
        # once the table structures are known).
        meta.codes[parts[0]] = (parts[1], geom, sep.join(parts[3:]) if len(parts) > 3 else parts[0])


def _parse_tables(lines: _Lines, meta: _Meta) -> None:
    sep = meta.header.separator
    while True:
        no, text = lines.next("TableStructureEnd")
        if text == "TableStructureEnd":
            return
        parts = [p.strip() for p in text.split(sep)]
        name = parts[0]
        n = _int(lines, no, parts[1], f"the number of fields of table {name!r}") if len(parts) > 1 else None
        meta.table_flags[name] = not (len(parts) > 2 and parts[2].lower() == "nonegeometry")
        fields: list[VctField] = []
        while n is None or len(fields) < n:
            pk = lines.peek()
            if pk is None or pk[1] == "TableStructureEnd" or (n is None and pk[1] == "0"):
                break
            fno, ftext = lines.next()
            fp = [p.strip() for p in ftext.split(sep)]
            if len(fp) < 2 or not fp[0]:
                raise lines.error(f"a field of table {name!r} is name{sep}type[{sep}width[{sep}precision]]; "
                                  f"found {ftext!r}", fno)
            fields.append(VctField(fp[0], fp[1], _opt_int(fp, 2), _opt_int(fp, 3)))
        pk = lines.peek()
        if pk is not None and pk[1] == "0":
            lines.next()
        meta.tables[name] = tuple(fields)


def _opt_int(parts: Sequence[str], i: int) -> int | None:
    try:
        return int(parts[i]) if len(parts) > i and parts[i] else None
    except ValueError:
        return None


def _table_of(meta: _Meta, code: str) -> str:
    _alias, _geom, rest = meta.codes[code]
    upper = {t.upper(): t for t in meta.tables}
    for cand in rest.split(meta.header.separator):
        if cand.strip().upper() in upper:
            return upper[cand.strip().upper()]
    first = rest.split(meta.header.separator)[0].strip()
    return first or code


def _read_meta(lines: _Lines) -> tuple[_Meta, tuple[int, str] | None]:
    """Read up to the first geometry or attribute section; return it (not consumed)."""
    first = lines.next("HeadBegin")
    if first[1] != "HeadBegin":
        raise lines.error(f"a VCT file starts with HeadBegin; found {first[1][:60]!r}", first[0])
    meta = _Meta(header=_parse_head(lines))
    while True:
        item = lines.peek()
        if item is None:
            return meta, None
        _no, text = item
        if text == "FeatureCodeBegin":
            lines.next()
            _parse_feature_codes(lines, meta)
        elif text == "TableStructureBegin":
            lines.next()
            _parse_tables(lines, meta)
        else:
            return meta, item


def _skip_section(lines: _Lines, begin: str) -> None:
    end = begin[: -len("Begin")] + "End"
    while True:
        _no, text = lines.next(end)
        if text == end:
            return


# ----------------------------------------------------------------------------------------
# public: header and layers
# ----------------------------------------------------------------------------------------
def read_header(path: str | os.PathLike[str], *, encoding: str | None = None) -> VctHeader:
    """Read the header of a VCT file (its CRS, extent, separator…)."""
    lines = _Lines(os.fspath(path), encoding)
    try:
        first = lines.next("HeadBegin")
        if first[1] != "HeadBegin":
            raise lines.error(f"a VCT file starts with HeadBegin; found {first[1][:60]!r}", first[0])
        h = _parse_head(lines)
        h.encoding = lines.encoding
        return h
    finally:
        lines.close()


def list_layers(path: str | os.PathLike[str], *, encoding: str | None = None, count: bool = True) -> list[VctLayer]:
    """List the layers (feature classes with their attribute tables) of a VCT file.

    ``feature_count`` is the number of rows of the layer's attribute table, counted
    by a fast byte scan of the Attribute section (``count=False`` skips it: None).
    """
    p = os.fspath(path)
    lines = _Lines(p, encoding)
    try:
        meta, _ = _read_meta(lines)
    finally:
        lines.close()
    counts = _count_rows(p, meta, lines.encoding) if count else {}
    out: list[VctLayer] = []
    seen: dict[str, int] = {}
    for code in meta.codes:
        alias, geom, _rest = meta.codes[code]
        if geom not in ("Point", "LineString", "Polygon"):
            continue
        table = _table_of(meta, code)
        if table in seen:
            prev = out[seen[table]]
            out[seen[table]] = VctLayer(prev.name, prev.code, prev.alias, prev.geometry_type, prev.crs,
                                        prev.feature_count, prev.fields, (*prev.codes, code))
            continue
        seen[table] = len(out)
        out.append(VctLayer(table, code, alias, geom, meta.header.crs,
                            counts.get(table.upper()) if count else None,
                            meta.tables.get(table, ()), (code,)))
    for table, fields in meta.tables.items():
        if table not in seen:
            out.append(VctLayer(table, "", "", "None", None, counts.get(table.upper()) if count else None,
                                fields, ()))
    return out


def _count_rows(path: str, meta: _Meta, encoding: str) -> dict[str, int]:
    """Rows per attribute table: find the Attribute section with bytes.find, count newlines."""
    counts: dict[str, int] = {}
    chunk = 1 << 24
    with open(path, "rb") as f:
        pos = 0
        tail = b""
        start = -1
        while True:
            buf = f.read(chunk)
            if not buf:
                return counts
            data = tail + buf
            i = data.find(b"\nAttributeBegin")
            if i >= 0:
                start = pos - len(tail) + i + 1
                break
            tail = data[-32:]
            pos += len(buf)
        f.seek(start)
        f.readline()
        table: str | None = None
        n = 0
        for raw in f:
            s = raw.strip()
            if not s:
                continue
            if table is None:
                if s == b"AttributeEnd":
                    break
                table = s.decode(encoding, errors="replace").upper()
                n = 0
            elif s == b"TableEnd":
                counts[table] = counts.get(table, 0) + n
                table = None
            else:
                n += 1
    return counts


def _find_layer(path: str, meta: _Meta, layer: str) -> tuple[str, set[str], str, tuple[VctField, ...]]:
    """(table, feature codes, geometry type, fields) for a layer named by table, alias or code."""
    want = layer.strip().upper()
    names: list[str] = []
    for code in meta.codes:
        alias, geom, _ = meta.codes[code]
        table = _table_of(meta, code)
        names.append(table)
        if want in (table.upper(), alias.upper(), code.upper()):
            codes = {c for c in meta.codes if _table_of(meta, c) == table}
            return table, codes, geom, meta.tables.get(table, ())
    for table, fields in meta.tables.items():
        if want == table.upper():
            return table, set(), "None", fields
    known = sorted(set(names) | set(meta.tables))
    raise VctError(f"{path!r} has no layer {layer!r}; its layers are {', '.join(known) or '(none)'}")


# ----------------------------------------------------------------------------------------
# temporary stores
# ----------------------------------------------------------------------------------------
class _CoordStore:
    """Line coordinates on disk, with an in-memory id → (offset, count) index."""

    def __init__(self, tmpdir: str) -> None:
        self.f = open(os.path.join(tmpdir, "lines.bin"), "w+b")  # noqa: SIM115 - closed by close()
        self.ids = array("q")
        self.off = array("q")
        self.cnt = array("q")
        self.pos = 0  # in points
        self.sorted_ids: NDArray[np.int64] | None = None
        self.order: NDArray[np.int64] | None = None
        self._buf = io.BytesIO()

    def add(self, oid: int, xy: NDArray[np.float64]) -> None:
        self.ids.append(oid)
        self.off.append(self.pos)
        self.cnt.append(len(xy))
        self._buf.write(np.ascontiguousarray(xy, dtype="<f8").tobytes())
        self.pos += len(xy)
        if self._buf.tell() > 1 << 22:
            self._flush()

    def _flush(self) -> None:
        self.f.write(self._buf.getvalue())
        self._buf = io.BytesIO()

    def seal(self) -> None:
        if self.sorted_ids is not None:
            return
        self._flush()
        self.f.flush()
        ids = np.frombuffer(self.ids, dtype=np.int64)
        self.order = np.argsort(ids, kind="stable")
        self.sorted_ids = ids[self.order]

    def get(self, oid: int) -> NDArray[np.float64] | None:
        assert self.sorted_ids is not None and self.order is not None
        i = int(np.searchsorted(self.sorted_ids, oid))
        if i >= len(self.sorted_ids) or self.sorted_ids[i] != oid:
            return None
        k = int(self.order[i])
        n = self.cnt[k]
        raw = os.pread(self.f.fileno(), n * 16, self.off[k] * 16)
        return np.frombuffer(raw, dtype="<f8").reshape(n, 2)

    def close(self) -> None:
        self.f.close()


#: geometries turned into WKB and written out together (bounds the pending shapely objects)
_WKB_CHUNK = 5_000


class _GeomStore:
    """The chosen layer's geometries as WKB on disk, keyed by object id."""

    def __init__(self, tmpdir: str) -> None:
        self.f = open(os.path.join(tmpdir, "geoms.bin"), "w+b")  # noqa: SIM115 - closed by close()
        self.ids = array("q")
        self.off = array("q")
        self.len = array("q")
        self.pos = 0
        self._pending_ids: list[int] = []
        self._pending: list[Any] = []
        self.sorted_ids: NDArray[np.int64] = np.empty(0, dtype=np.int64)
        self.order: NDArray[np.int64] = np.empty(0, dtype=np.int64)
        self.used: NDArray[np.bool_] = np.empty(0, dtype=bool)

    def add(self, oid: int, geom: Any) -> None:
        self._pending_ids.append(oid)
        self._pending.append(geom)
        if len(self._pending) >= _WKB_CHUNK:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        wkbs = shapely.to_wkb(np.array(self._pending, dtype=object))
        buf = io.BytesIO()
        for oid, w in zip(self._pending_ids, wkbs, strict=True):
            self.ids.append(oid)
            self.off.append(self.pos)
            self.len.append(len(w))
            buf.write(w)
            self.pos += len(w)
        self.f.write(buf.getvalue())
        self._pending_ids, self._pending = [], []

    def seal(self, path: str, section: str) -> None:
        self._flush()
        self.f.flush()
        ids = np.frombuffer(self.ids, dtype=np.int64)
        self.order = np.argsort(ids, kind="stable")
        self.sorted_ids = ids[self.order]
        dup = np.flatnonzero(np.diff(self.sorted_ids) == 0)
        if len(dup):
            raise VctError(f"{path!r}: object id {int(self.sorted_ids[dup[0]])} appears twice in the "
                           f"{section} section; object ids (标识码) must be unique")
        self.used = np.zeros(len(ids), dtype=bool)

    def take(self, oids: NDArray[np.int64]) -> list[Any]:
        """Geometries for the ids (None where there is none), marking them used."""
        out: list[Any] = [None] * len(oids)
        if not len(self.sorted_ids):
            return out
        pos = np.searchsorted(self.sorted_ids, oids)
        pos[pos >= len(self.sorted_ids)] = 0
        hit = self.sorted_ids[pos] == oids
        fd = self.f.fileno()
        wkbs: list[bytes] = []
        where: list[int] = []
        for j in np.flatnonzero(hit):
            k = int(self.order[pos[j]])
            self.used[pos[j]] = True
            wkbs.append(os.pread(fd, self.len[k], self.off[k]))
            where.append(int(j))
        if wkbs:
            geoms = shapely.from_wkb(np.array(wkbs, dtype=object))
            for at, g in zip(where, geoms, strict=True):
                out[at] = g
        return out

    def unused(self) -> Iterator[tuple[int, Any]]:
        """(id, geometry) of the features no attribute row asked for, in file order."""
        ids = np.frombuffer(self.ids, dtype=np.int64)
        used_file_order = np.zeros(len(ids), dtype=bool)
        used_file_order[self.order] = self.used
        fd = self.f.fileno()
        for k in np.flatnonzero(~used_file_order):
            yield int(ids[k]), shapely.from_wkb(os.pread(fd, self.len[k], self.off[k]))

    def close(self) -> None:
        self.f.close()


# ----------------------------------------------------------------------------------------
# geometry parsing
# ----------------------------------------------------------------------------------------
class _Geo:
    def __init__(self, lines: _Lines, header: VctHeader) -> None:
        self.lines = lines
        self.sep = header.separator
        self.ox, self.oy = header.offset
        self.swap = header.swap_xy

    def xy(self, no: int, text: str) -> tuple[float, float]:
        parts = text.split(self.sep)
        try:
            a, b = float(parts[0]), float(parts[1])
        except (ValueError, IndexError):
            raise self.lines.error(f"expected a coordinate x{self.sep}y, found {text[:60]!r}", no) from None
        if self.swap:
            a, b = b, a
        return a + self.ox, b + self.oy

    def points(self, n: int, what: str) -> NDArray[np.float64]:
        if n <= 0:
            raise self.lines.error(f"{what}: a point count must be positive, found {n}")
        rows = [self.lines.next(what) for _ in range(n)]
        try:
            arr = np.array([r[1].split(self.sep)[:2] for r in rows], dtype=np.float64)
        except ValueError:
            for no, text in rows:
                self.xy(no, text)  # raises with the line number of the bad coordinate
            raise
        if arr.ndim != 2 or arr.shape[1] != 2:
            for no, text in rows:
                self.xy(no, text)
        if self.swap:
            arr = arr[:, ::-1].copy()
        if self.ox or self.oy:
            arr = arr + np.array([self.ox, self.oy])
        return arr

    def count(self, what: str) -> int:
        no, text = self.lines.next(what)
        return _int(self.lines, no, text, what)

    def segments(self, oid: int) -> list[NDArray[np.float64]]:
        """Direct line body (after the feature type): segments, each a polyline."""
        n = self.count(f"the number of segments of line {oid}")
        parts: list[NDArray[np.float64]] = []
        for _ in range(n):
            no, text = self.lines.next(f"a segment type of line {oid}")
            t = _int(self.lines, no, text, f"a segment type of line {oid}")
            if t not in (1, 11):
                raise self.lines.error(
                    f"line {oid}: segment type {t} (arcs, splines) is not supported; only polylines "
                    "(11) are read. Convert curves to polylines in the producing software", no)
            parts.append(self.points(self.count(f"the point count of line {oid}"), f"line {oid}"))
        return parts

    def refs(self, oid: int) -> list[int]:
        """Read a reference list: its count, then ids over one or more lines (0 = ring break)."""
        n = self.count(f"the number of references of object {oid}")
        out: list[int] = []
        nonzero = 0
        while len(out) < n and nonzero < n:
            no, text = self.lines.next(f"the references of object {oid}")
            for tok in text.split(self.sep):
                tok = tok.strip()
                if not tok:
                    continue
                v = _int(self.lines, no, tok, f"a referenced object id of object {oid}")
                out.append(v)
                nonzero += v != 0
        return out

    def end(self, oid: int) -> None:
        no, text = self.lines.next(f"the end of object {oid} ('0')")
        if text != "0":
            raise self.lines.error(f"object {oid} should end here with a line '0'; found {text[:60]!r}", no)


def _same(a: NDArray[np.float64], b: NDArray[np.float64]) -> bool:
    """Whether two points are the same (exactly: both come from the same text)."""
    return bool(a[0] == b[0] and a[1] == b[1])


def _join(parts: Sequence[NDArray[np.float64]]) -> NDArray[np.float64]:
    if len(parts) == 1:
        return parts[0]
    out = [parts[0]]
    for p in parts[1:]:
        out.append(p[1:] if len(p) and _same(out[-1][-1], p[0]) else p)
    return np.concatenate(out)


def _chain_rings(lines: _Lines, oid: int, refs: Sequence[int], store: _CoordStore) -> list[NDArray[np.float64]]:
    """Chain line references into closed rings (negative = reversed, 0 = ring break)."""
    rings: list[NDArray[np.float64]] = []
    cur: list[NDArray[np.float64]] = []
    start: tuple[float, float] = (0.0, 0.0)
    end: tuple[float, float] = (0.0, 0.0)

    def close() -> None:
        if not cur:
            return
        ring = _join(cur)
        if len(ring) < 4 or not _same(ring[0], ring[-1]):
            raise lines.error(f"polygon {oid}: its lines {list(refs)} do not close a ring "
                              f"(the chain ends at {tuple(ring[-1])}, not at its start {tuple(ring[0])})")
        rings.append(ring)
        cur.clear()

    for r in refs:
        if r == 0:
            close()
            continue
        c = store.get(abs(r))
        if c is None:
            raise lines.error(f"polygon {oid} references line {abs(r)}, which is not in the Line section "
                              "before it")
        if r < 0:
            c = c[::-1]
        a = (float(c[0, 0]), float(c[0, 1]))
        b = (float(c[-1, 0]), float(c[-1, 1]))
        if cur and end != a:
            if end == b:  # a line whose sign does not say it runs backwards
                c, a, b = c[::-1], b, a
            elif len(cur) == 1 and start in (a, b):  # the first line was the one backwards
                cur[0] = cur[0][::-1]
                start, end = end, start
                if end != a:
                    c, a, b = c[::-1], b, a
            else:
                raise lines.error(f"polygon {oid}: line {r} does not continue the ring (it runs from "
                                  f"{a} to {b}, the ring is at {end})")
        if not cur:
            start = a
        cur.append(c)
        end = b
        if start == end and sum(len(x) for x in cur) >= 4:
            close()
    close()
    return rings


def _polygon(rings: Sequence[NDArray[np.float64]]) -> Any:
    """Build a (Multi)Polygon from rings; which are holes follows from containment."""
    if len(rings) == 1:
        return shapely.Polygon(rings[0])
    polys = [shapely.Polygon(r) for r in rings]
    order = sorted(range(len(rings)), key=lambda i: -polys[i].area)
    shells: list[int] = []
    holes: dict[int, list[int]] = {}
    placed: list[int] = []
    for i in order:
        pt = polys[i].representative_point() if polys[i].area > 0 else shapely.Point(rings[i][0])
        inside = [j for j in placed if polys[j].contains(pt)]
        placed.append(i)
        if len(inside) % 2 == 0:
            shells.append(i)
            holes[i] = []
        else:
            # innermost container (smallest area among those containing it) is its shell
            holes[min(inside, key=lambda j: polys[j].area)].append(i)
    parts = [shapely.Polygon(rings[s], [rings[h] for h in holes[s]]) for s in shells]
    return parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)


# ----------------------------------------------------------------------------------------
# streaming reader
# ----------------------------------------------------------------------------------------
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
                elif kind == "Line" and (sealed or coords.sorted_ids is not None):
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


def _read_objects(lines: _Lines, geo: _Geo, kind: str, want: set[str], coords: _CoordStore,
                  geoms: _GeomStore) -> None:
    end = kind + "End"
    while True:
        no, text = lines.next(end)
        if text == end:
            return
        oid = _int(lines, no, text, f"an object id (标识码) in the {kind} section")
        _cno, code = lines.next(f"the feature code of object {oid}")
        # the style code (图形表现编码) may be an empty line: read it as a physical line
        lines.physical(f"the style code of object {oid}")
        tno, ttext = lines.next(f"the feature type of object {oid}")
        ftype = _int(lines, tno, ttext, f"the feature type of object {oid}")
        if kind == "Point":
            g = _point_body(lines, geo, oid, ftype)
            if code in want:
                geoms.add(oid, g)
        elif kind == "Line":
            if 1 <= ftype <= 6:
                parts = geo.segments(oid)
            elif ftype == 100:
                refs = geo.refs(oid)
                parts = _line_refs(lines, oid, refs, coords)
            else:
                raise lines.error(f"line {oid}: feature type {ftype}; 1-6 (direct) or 100 (made of "
                                  "other lines) expected", tno)
            joined = _join(parts)
            coords.add(oid, joined)  # polygons may reference a line made of lines too
            if code in want:
                if all(_same(a[-1], b[0]) for a, b in itertools.pairwise(parts)):
                    geoms.add(oid, shapely.LineString(joined))
                else:
                    geoms.add(oid, shapely.MultiLineString(parts))
        else:
            g = _polygon_body(lines, geo, oid, ftype, tno, coords, code in want)
            if code in want:
                geoms.add(oid, g)
        geo.end(oid)


def _line_refs(lines: _Lines, oid: int, refs: Sequence[int], coords: _CoordStore) -> list[NDArray[np.float64]]:
    # A line made of lines references earlier lines; the index is searched unsorted here
    # (rare in survey files), by a linear scan of the ids seen so far.
    ids = np.frombuffer(coords.ids, dtype=np.int64)
    parts: list[NDArray[np.float64]] = []
    for r in refs:
        if r == 0:
            continue
        hit = np.flatnonzero(ids == abs(r))
        if not len(hit):
            raise lines.error(f"line {oid} references line {abs(r)}, which is not defined before it")
        k = int(hit[0])
        coords._flush()
        coords.f.flush()
        raw = os.pread(coords.f.fileno(), coords.cnt[k] * 16, coords.off[k] * 16)
        c = np.frombuffer(raw, dtype="<f8").reshape(-1, 2)
        parts.append(c[::-1] if r < 0 else c)
    return parts


def _point_body(lines: _Lines, geo: _Geo, oid: int, ftype: int) -> Any:
    no, text = lines.next(f"the coordinates of point {oid}")
    if geo.sep not in text:  # a point group: a count, then the points
        n = _int(lines, no, text, f"the point count of point group {oid}")
        xy = geo.points(n, f"point group {oid}")
        return shapely.Point(xy[0]) if n == 1 else shapely.MultiPoint(xy)
    x, y = geo.xy(no, text)
    nxt = lines.peek()
    if nxt is not None and nxt[1] != "0" and geo.sep in nxt[1]:
        lines.next()  # a directed point's second coordinate gives its direction: not kept
    return shapely.Point(x, y)


def _polygon_body(lines: _Lines, geo: _Geo, oid: int, ftype: int, tno: int, coords: _CoordStore,
                  wanted: bool) -> Any:
    lno, ltext = lines.next(f"the label point of polygon {oid}")
    geo.xy(lno, ltext)
    if ftype == 1:
        n = geo.count(f"the number of rings of polygon {oid}")
        rings: list[NDArray[np.float64]] = []
        for _ in range(n):
            rno, rtext = lines.next(f"a ring type of polygon {oid}")
            t = _int(lines, rno, rtext, f"a ring type of polygon {oid}")
            if t not in (1, 11):
                raise lines.error(f"polygon {oid}: ring type {t} (circle, ellipse) is not supported; only "
                                  "rings of straight segments (11) are read", rno)
            ring = geo.points(geo.count(f"the point count of a ring of polygon {oid}"), f"polygon {oid}")
            if not _same(ring[0], ring[-1]):
                ring = np.vstack([ring, ring[:1]])
            rings.append(ring)
        return _polygon(rings) if wanted else None
    if ftype == 100:
        mno, mtext = lines.next(f"the make-up type of polygon {oid}")
        make = _int(lines, mno, mtext, f"the make-up type of polygon {oid} (21 = of lines)")
        if make != 21:
            raise lines.error(f"polygon {oid}: make-up type {make}; only polygons made of lines (21) are "
                              "read (22, of other polygons, is not supported)", mno)
        refs = geo.refs(oid)
        if not wanted:
            return None
        return _polygon(_chain_rings(lines, oid, refs, coords))
    raise lines.error(f"polygon {oid}: feature type {ftype}; 1 (direct coordinates) or 100 (made of lines) "
                      "expected", tno)


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
        lines = _Lines(p, encoding)
        try:
            meta, _ = _read_meta(lines)
        finally:
            lines.close()
        _t, _c, _g, fields = _find_layer(p, meta, layer)
        return _bare(meta, fields, not fields, [], [])
    if len(frames) == 1:
        return frames[0]
    crs = frames[0].crs
    return gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry", crs=crs)


# ----------------------------------------------------------------------------------------
# writer
# ----------------------------------------------------------------------------------------
def _crs_header(crs: CRS) -> dict[str, str]:
    """Header lines describing *crs* (geographic or Gauss-Krüger on a Chinese datum)."""
    code = crs.to_epsg()
    spheroids = {"CGCS2000": "CGCS2000,6378137,298.257222101",
                 "Xian 1980": "Xian 1980,6378140,298.257",
                 "Beijing 1954": "Beijing 1954,6378245,298.3"}
    for datum, (geo, z3, cm3, z6, cm6) in _DATUMS.items():
        if code == geo:
            return {"CoordinateSystemType": "D", "XYUnit": "D", "Spheroid": spheroids[datum],
                    "Projection": "", "Parameters": ""}
        spec: tuple[float, float, float] | None = None  # (CM, false easting, zone width)
        if code is not None and z3 <= code <= z3 + 20:
            zone = code - z3 + 25
            spec = (zone * 3.0, zone * 1e6 + 500000.0, 3.0)
        elif code is not None and cm3 <= code <= cm3 + 20:
            spec = (75.0 + 3 * (code - cm3), 500000.0, 3.0)
        elif code is not None and z6 <= code <= z6 + 10:
            zone = code - z6 + 13
            spec = (zone * 6.0 - 3, zone * 1e6 + 500000.0, 6.0)
        elif code is not None and cm6 <= code <= cm6 + 10:
            spec = (75.0 + 6 * (code - cm6), 500000.0, 6.0)
        if spec is not None:
            cm, fe, width = spec
            return {"CoordinateSystemType": "P", "XYUnit": "M", "Spheroid": spheroids[datum],
                    "Projection": "高斯-克吕格",
                    "Parameters": f"{cm:g},0,,,,1,{fe:.0f},0,{width:g}"}
    raise VctError(
        f"a VCT header describes geographic or Gauss-Krüger coordinates on CGCS2000, Xian 1980 or "
        f"Beijing 1954; {crs.to_string()!r} is neither. Export with --crs EPSG:4490 or a Gauss-Krüger "
        "zone such as EPSG:4547"
    )


def _fmt(v: float) -> str:
    return repr(float(v))


def _text(v: Any, sep: str) -> str:
    if v is None or (isinstance(v, float) and v != v) or v is pd.NA or v is pd.NaT:
        return ""
    if isinstance(v, (bool, np.bool_)):
        return "1" if v else "0"
    if isinstance(v, (float, np.floating)):
        return _fmt(float(v))
    if isinstance(v, (pd.Timestamp,)):
        return v.strftime("%Y%m%d")
    s = str(v)
    # the separator cannot be escaped in VCT: a full-width comma stands in (as the
    # producing tools do), and a line break becomes a space
    return s.replace(sep, "，" if sep == "," else " ").replace("\r", " ").replace("\n", " ")


def write(
    path: str | os.PathLike[str],
    layers: Mapping[str, gpd.GeoDataFrame],
    *,
    crs: Any = None,
    codes: Mapping[str, str] | None = None,
    aliases: Mapping[str, str] | None = None,
    encoding: str = "gb18030",
    scale: int = 10000,
    date: str | None = None,
) -> None:
    """Write GeoDataFrames as one VCT 2.0 file (GB/T 17798-2007, CNSDTF-VCT).

    Each key is a layer (attribute table) name. Its feature code is ``codes[name]``
    (default: the name itself) and its feature type's name ``aliases[name]``.
    Polygons are written as the survey databases do: each ring one line object
    in the Line section, the polygon a list of references (100 / 21, ``0``
    between rings). Columns become fields (integers ``Int``, numbers ``Double``,
    other values ``Char``). A layer without an integer ``BSM`` column unique in
    the file gets one (1, 2, …) as its first field: object ids tie geometry to
    attributes. All layers are written in one CRS (``crs``, or the layers' own,
    which must agree). The file is written beside and renamed into place.
    """
    import datetime as _dt

    p = Path(os.fspath(path))
    if not layers:
        raise ValueError("write() needs at least one layer")
    frames: dict[str, gpd.GeoDataFrame] = {}
    target = CRS.from_user_input(crs) if crs is not None else None
    for name, gdf in layers.items():
        if not re.fullmatch(r"[A-Za-z_\u4e00-\u9fff][\w\u4e00-\u9fff]*", name):
            raise VctError(f"layer name {name!r} cannot be a VCT table name (letters, digits, _)")
        if gdf.crs is None and target is None:
            raise VctError(f"layer {name!r} has no CRS; give crs=")
        g = gdf.to_crs(target) if target is not None and gdf.crs is not None and gdf.crs != target else gdf
        frames[name] = g
    crss = {str(CRS.from_user_input(f.crs).to_epsg() or f.crs) for f in frames.values() if f.crs is not None}
    out_crs = target if target is not None else CRS.from_user_input(next(iter(frames.values())).crs)
    if target is None and len(crss) > 1:
        raise VctError(f"the layers are in different CRSs ({', '.join(sorted(crss))}); give crs=")
    head = _crs_header(out_crs)
    sep = ","
    # object ids: a layer's integer BSM when unique across the file, else 1, 2, … after the rest
    used: set[int] = set()
    ids: dict[str, NDArray[np.int64]] = {}
    pending: list[str] = []
    for name, f in frames.items():
        col = next((c for c in f.columns if c.upper() == "BSM"), None)
        if col is not None and pd.api.types.is_integer_dtype(f[col]) and not f[col].isna().any():
            vals = f[col].to_numpy(dtype=np.int64)
            if len(set(vals.tolist())) == len(vals) and not used & set(vals.tolist()) and (vals > 0).all():
                ids[name] = vals
                used |= set(vals.tolist())
                continue
        pending.append(name)
    nxt = max(used, default=0) + 1
    for name in pending:
        n = len(frames[name])
        ids[name] = np.arange(nxt, nxt + n, dtype=np.int64)
        nxt += n
        f = frames[name].copy()
        col = next((c for c in f.columns if c.upper() == "BSM"), None)
        if col is not None:
            f = f.rename(columns={col: f"{col}_1"})
        f.insert(0, "BSM", ids[name])
        frames[name] = f
    for name, f in frames.items():  # the object id is the first value of each row
        col = next(c for c in f.columns if c.upper() == "BSM")
        frames[name] = f[[col] + [c for c in f.columns if c != col]]
    line_id = nxt  # ring lines numbered after every feature
    bounds = np.array([f.total_bounds for f in frames.values() if len(f)]) if any(len(f) for f in frames.values()) \
        else np.zeros((1, 4))
    xmin, ymin = float(np.nanmin(bounds[:, 0])), float(np.nanmin(bounds[:, 1]))
    xmax, ymax = float(np.nanmax(bounds[:, 2])), float(np.nanmax(bounds[:, 3]))
    tmp = p.with_name(p.name + ".part")
    with open(tmp, "w", encoding=encoding, newline="\r\n") as out:
        w = out.write
        w("HeadBegin\n")
        w("DataMark:CNSDTF-VCT\nVersion:2.0\n")
        w(f"CoordinateSystemType:{head['CoordinateSystemType']}\nDim:2\nXAxisDirection:E\nYAxisDirection:N\n")
        w(f"XYUnit:{head['XYUnit']}\nSpheroid:{head['Spheroid']}\nPrimeMeridian:Greenwich\n")
        w(f"Projection:{head['Projection']}\nParameters:{head['Parameters']}\n")
        w(f"ExtentMin:{_fmt(xmin)},{_fmt(ymin)}\nExtentMax:{_fmt(xmax)},{_fmt(ymax)}\n")
        w(f"MapScale:{scale}\nOffset:0,0\nDate:{date or _dt.date.today().strftime('%Y%m%d')}\nSeparator:{sep}\n")
        w("HeadEnd\n\n")
        kinds: dict[str, str] = {}
        for name, f in frames.items():
            types = set(f.geometry.dropna().geom_type) if len(f) else {"Polygon"}
            if types <= {"Polygon", "MultiPolygon"}:
                kinds[name] = "Polygon"
            elif types <= {"LineString", "MultiLineString"}:
                kinds[name] = "Line"
            elif types <= {"Point", "MultiPoint"}:
                kinds[name] = "Point"
            else:
                raise VctError(f"layer {name!r} mixes geometry types {sorted(types)}; one kind per layer")
        w("FeatureCodeBegin\n")
        for name in frames:
            code = (codes or {}).get(name, name)
            alias = (aliases or {}).get(name, name)
            w(f"{code}{sep}{_text(alias, sep)}{sep}{kinds[name]}{sep}{name}\n")
        w("FeatureCodeEnd\n\n")
        w("TableStructureBegin\n")
        specs: dict[str, list[tuple[str, str]]] = {}
        for name, f in frames.items():
            cols = [c for c in f.columns if c != f.geometry.name]
            spec: list[tuple[str, str]] = []
            for c in cols:
                s = f[c]
                if pd.api.types.is_bool_dtype(s) or pd.api.types.is_integer_dtype(s):
                    spec.append((c, "Int,10" if c.upper() == "BSM" else "Int,19"))
                elif pd.api.types.is_float_dtype(s):
                    spec.append((c, "Double,24,8"))
                elif pd.api.types.is_datetime64_any_dtype(s):
                    spec.append((c, "Date,8"))
                else:
                    width = max([len(_text(v, sep).encode(encoding, errors="replace")) for v in s] + [1])
                    spec.append((c, f"Char,{width}"))
            specs[name] = spec
            w(f"{name}{sep}{len(spec)}\n")
            for c, t in spec:
                w(f"{c}{sep}{t}\n")
            w("0\n")
        w("TableStructureEnd\n\n")
        # geometry: points, lines (feature lines, then polygon ring lines), polygons
        w("PointBegin\n")
        for name, f in frames.items():
            if kinds[name] != "Point":
                continue
            code = (codes or {}).get(name, name)
            for oid, g in zip(ids[name], f.geometry, strict=True):
                if g is None or g.is_empty:
                    continue
                w(f"{oid}\n{code}\n0\n")
                if g.geom_type == "Point":
                    w(f"1\n{_fmt(g.x)},{_fmt(g.y)}\n0\n")
                else:
                    pts = shapely.get_coordinates(g)
                    w(f"3\n{len(pts)}\n" + "".join(f"{_fmt(x)},{_fmt(y)}\n" for x, y in pts) + "0\n")
        w("PointEnd\n\n")
        w("LineBegin\n")
        poly_refs: dict[str, list[list[int]]] = {}
        for name, f in frames.items():
            code = (codes or {}).get(name, name)
            if kinds[name] == "Line":
                for oid, g in zip(ids[name], f.geometry, strict=True):
                    if g is None or g.is_empty:
                        continue
                    parts = [g] if g.geom_type == "LineString" else list(g.geoms)
                    w(f"{oid}\n{code}\n0\n1\n{len(parts)}\n")
                    for part in parts:
                        xy = shapely.get_coordinates(part)
                        w(f"11\n{len(xy)}\n" + "".join(f"{_fmt(x)},{_fmt(y)}\n" for x, y in xy))
                    w("0\n")
            elif kinds[name] == "Polygon":
                refs_all: list[list[int]] = []
                for g in f.geometry:
                    refs: list[int] = []
                    if g is not None and not g.is_empty:
                        polys = [g] if g.geom_type == "Polygon" else list(g.geoms)
                        for poly in polys:
                            for ring in [poly.exterior, *poly.interiors]:
                                xy = shapely.get_coordinates(ring)
                                w(f"{line_id}\n{code}\n0\n1\n1\n11\n{len(xy)}\n"
                                  + "".join(f"{_fmt(x)},{_fmt(y)}\n" for x, y in xy) + "0\n")
                                if refs:
                                    refs.append(0)
                                refs.append(line_id)
                                line_id += 1
                    refs_all.append(refs)
                poly_refs[name] = refs_all
        w("LineEnd\n\n")
        w("PolygonBegin\n")
        for name, f in frames.items():
            if kinds[name] != "Polygon":
                continue
            code = (codes or {}).get(name, name)
            for oid, g, refs in zip(ids[name], f.geometry, poly_refs[name], strict=True):
                if not refs:
                    continue
                lp = g.representative_point()
                body = "".join(f"{','.join(str(r) for r in refs[i:i + 8])}\n" for i in range(0, len(refs), 8))
                w(f"{oid}\n{code}\n0\n100\n{_fmt(lp.x)},{_fmt(lp.y)}\n21\n{len(refs)}\n{body}0\n")
        w("PolygonEnd\n\n")
        w("AttributeBegin\n")
        for name, f in frames.items():
            w(f"{name}\n")
            spec = specs[name]
            cols = [f[c].tolist() for c, _t in spec]
            for row in zip(*cols, strict=True):
                w(sep.join(_text(v, sep) for v in row) + "\n")
            w("TableEnd\n")
        w("AttributeEnd\n")
    os.replace(tmp, p)

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

This module holds the format's model (:class:`VctLayer`, :class:`VctField`,
:class:`VctHeader`, :class:`VctError`), the line reader, and the sections that say
what a file holds (Head, FeatureCode, TableStructure): :func:`read_header` and
:func:`list_layers`. Reading a layer's features is
:mod:`landquota.intake.vct_reader` (``iter_batches``, ``read_layer``), which builds
the geometries with :mod:`landquota.intake.vct_geometry`; writing a file is
:mod:`landquota.intake.vct_writer` (``write``).
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO

from pyproj import CRS

from landquota.errors import ImportDataError

__all__ = ["VctError", "VctField", "VctHeader", "VctLayer", "list_layers", "read_header"]


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


def _meta_of(path: str, encoding: str | None) -> tuple[_Meta, str]:
    """Read a file's header, feature codes and table structures; also the encoding used."""
    lines = _Lines(path, encoding)
    try:
        meta, _ = _read_meta(lines)
    finally:
        lines.close()
    return meta, lines.encoding


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
    meta, enc = _meta_of(p, encoding)
    counts = _count_rows(p, meta, enc) if count else {}
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

"""Write GeoDataFrames as one VCT file (GB/T 17798-2007, ``CNSDTF-VCT`` 2.0): :func:`write`.

The layout is the survey databases' own: polygons as references to ring lines, the
object id (``BSM``) the first value of every attribute row. The format and the
reader are :mod:`landquota.intake.vct`; ``landquota export --format vct`` calls this.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray
from pyproj import CRS

from landquota.intake.vct import _DATUMS, VctError

__all__ = ["write"]


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

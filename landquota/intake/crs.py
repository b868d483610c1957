"""Coordinate reference systems of bureau data: detection, suggestions and refusals.

A source without CRS is refused unless one is given, with the CGCS2000 Gauss–Krüger
code its coordinates point to (:func:`suggest_crs`); swapped axes and coordinates that
cannot lie in China under the CRS are refused; Xian 1980 and Beijing 1954 are
transformed by PROJ with a warning about accuracy. :func:`_plan_crs` decides all of
this for one source, once, before a row is read.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError as _PyprojCRSError

from landquota.errors import CRSError
from landquota.intake.report import ImportReport
from landquota.store.schema import CRS_EPSG, Layer
from landquota.store.workspace import Workspace

__all__ = ["suggest_crs"]


#: CGCS2000 3-degree Gauss–Krüger: zone-prefixed eastings (EPSG:4513 = zone 25 …
#: 4533 = zone 45) and central-meridian codes (EPSG:4534 = 75°E … 4554 = 135°E).
_GK_PREFIXED = {zone: 4513 + zone - 25 for zone in range(25, 46)}
_GK_CM = {cm: 4534 + (cm - 75) // 3 for cm in range(75, 136, 3)}

#: China's extent in degrees (with margin): coordinates outside are not Chinese data.
_CHINA = (73.0, 3.0, 136.0, 54.0)


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


def _plan_crs(
    path: str,
    declared: CRS | None,
    bounds: tuple[float, float, float, float] | None,
    *,
    vct: bool,
    lyr: Layer,
    crs: Any,
    swap_xy: bool,
    report: ImportReport,
    ws: Workspace,
) -> tuple[CRS | None, Transformer | None]:
    """Choose the source's CRS and the transformer to EPSG:4490 (None when it is 4490 already).

    *declared* is the CRS the file states, *bounds* its coordinate ranges; *vct* says
    the file is a VCT, whose header (not a ``.prj``) describes the CRS. Refuses a
    source without CRS (suggesting one) and coordinates that cannot be in the CRS.
    """
    if not lyr.geometry:
        report.source_crs = "none (table without geometry)"
        return None, None
    if bounds is not None and swap_xy:
        bounds = (bounds[1], bounds[0], bounds[3], bounds[2])
    if crs is not None:
        given = _as_crs(crs, "crs")
        if declared is not None and given != declared:
            report.warnings.append(
                f"the file declares {declared.to_string()!r}; used {given.to_string()!r} as given with --crs"
            )
        src_crs = given
    elif declared is None:
        near = _county_bounds(ws)
        codes, hint = suggest_crs(bounds, near=near) if bounds is not None else ([], "")
        sugg = f" Likely: --crs {codes[0]}" + (f" (or {', '.join(codes[1:])})" if len(codes) > 1 else "") if codes else ""
        raise CRSError(
            f"{path!r} has no CRS ("
            + ("its VCT header's Spheroid/Projection/Parameters name none landquota knows"
               if vct else "no .prj or an empty one")
            + "), and landquota never guesses one."
            f"{sugg}{'.' if sugg else ''} {hint[:1].upper() + hint[1:] if hint else ''}".rstrip()
            + ". Give it with --crs EPSG:xxxx (crs='EPSG:xxxx')."
        )
    else:
        src_crs = declared
    code = _epsg(src_crs)
    report.source_crs = f"EPSG:{code}" if code else src_crs.name
    if bounds is not None:
        _check_axes(bounds, src_crs, path, given=crs is not None, near=_county_bounds(ws))
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

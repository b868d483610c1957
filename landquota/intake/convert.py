"""One batch of a source: raw values → a contract frame, checked, its geometry made valid.

:class:`_Plan` is what the import settled before reading (fields, code values,
defaults, encoding, CRS); :func:`_convert` applies it to each batch: typed columns,
code values translated, dates as local calendar days, mojibake refused, the parcels'
areas (R2), geometries as 2D MultiPolygons in EPSG:4490 (repaired with
``make_valid`` where invalid, :func:`_repair`), ids checked unique across batches
(:class:`_IdGuard`). :func:`_decode` runs the GEOS half of the work ahead, on the
read-ahead thread (:func:`landquota.intake.load.read_ahead`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import shapely
from numpy.typing import NDArray
from pyproj import CRS, Transformer

from landquota._parallel import chunked
from landquota._wkb import convex_rings, plain_multipolygons
from landquota.errors import ImportDataError
from landquota.intake.encodings import _looks_mojibake, _may_hold_latin1
from landquota.intake.mapping import FieldRule
from landquota.intake.report import ImportReport
from landquota.store.schema import CRS_EPSG, Column, Layer
from landquota.store.workspace import arrow_text

__all__ = ["LOCAL_TZ"]


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


class _State:
    def __init__(self) -> None:
        self.unknown: dict[str, int] = {}
        self.dlmc_mismatch = 0
        self.dlmc_example = ""


@dataclass
class _Decoded:
    """A batch's geometries decoded ahead, and whether they need any work."""

    #: the decoded geometries; None when the batch stays WKB only (see :func:`_decode`)
    geoms: NDArray[np.object_] | None
    #: every geometry is a present, non-empty 2D MultiPolygon stored as decoded
    clean: bool = False
    #: ...and every one is valid: the workspace need not test them again
    valid: bool = False
    #: the rings decoded for GEOS's verdict when ``geoms`` is None: held only so that
    #: they are freed with the batch on the consumer's thread (freeing 10^6 GEOS
    #: geometries takes 0.8 s), not on the read-ahead thread
    held: Any = None


#: Below this share of convex rings in a batch, the convex test stops running (it only
#: pays when it finds some); it is tried again every CONVEX_PROBE-th batch.
CONVEX_WORTH = 0.1
CONVEX_PROBE = 8
#: At or above this share, a batch for a WKB-only writer is not decoded, only its other
#: rings; below it, decoding it whole costs less than picking the rings out.
UNDECODED_SHARE = 0.5


class _ConvexShare:
    """Whether the convex test is worth running on a stream's next batch.

    On survey data most rings are concave: the test finds nothing and costs about
    0.5 s per 10^6 patches on the read-ahead thread, so after a batch in which it
    found few it runs only on every :data:`CONVEX_PROBE`-th batch. Only speed
    depends on this; every verdict is the convex proof's or GEOS's.
    """

    def __init__(self) -> None:
        self.worth = True
        self.batches = 0

    def wanted(self) -> bool:
        """Say whether to run the test on the next batch."""
        self.batches += 1
        return self.worth or self.batches % CONVEX_PROBE == 0

    def saw(self, share: float) -> None:
        """Record the share of convex rings the test found in a batch."""
        self.worth = share >= CONVEX_WORTH


def _source_wkb(batch: pd.DataFrame) -> tuple[NDArray[np.object_], pa.Array | None]:
    """Return a batch's WKB as bytes objects (what GEOS reads) and, if read through Arrow, its Arrow array.

    GDAL's batches keep the geometry column as Arrow binary (``_ogr_batches``): the
    COPY and the GeoPackage blobs are then built from those buffers, which saves
    turning 10^6 bytes objects back into Arrow (0.4-0.8 s, issue 18).
    """
    arr = _arrow_wkb(batch)
    if arr is not None:
        return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=object), arr
    return np.asarray(batch["_lq_wkb"].to_numpy(), dtype=object), None


def _arrow_wkb(batch: pd.DataFrame) -> pa.Array | None:
    """Return the batch's WKB column as its Arrow array when it is Arrow-backed (no copy), else None."""
    s = batch["_lq_wkb"]
    if not isinstance(s.dtype, pd.ArrowDtype):
        return None
    chunks = s.array.__arrow_array__()
    return chunks.chunk(0) if chunks.num_chunks == 1 else chunks.combine_chunks()


def _decode(batch: pd.DataFrame, plan: _Plan, *, wkb_only: bool = False,
            convex: _ConvexShare | None = None) -> _Decoded | None:
    """Decode a batch's WKB and test it: the GEOS half of the work, run ahead.

    Runs on the read-ahead thread (shapely releases the GIL), while the caller
    converts the previous batch's attributes and the server ingests the one
    before. The tests only count when the geometries will be stored as decoded
    (no reprojection or axis swap); otherwise :func:`_geometries` and the
    workspace test the final geometries themselves. Whether every row is a
    present, non-empty 2D MultiPolygon is first read from the WKB's headers
    (:func:`landquota._wkb.plain_multipolygons`), and a strictly convex
    lone ring is valid by construction (:func:`landquota._wkb.convex_rings`);
    GEOS is asked about the rest, so the answer is GEOS's either way.

    *wkb_only* is for a consumer that writes the source's WKB and never looks at
    the geometries (a PostGIS COPY, :func:`landquota.store.postgis._binary_rows`; a
    GeoPackage's blobs and R-tree, :func:`landquota.store.gpkg.insert_rows`):
    a batch of plain MultiPolygons that are all valid, at least half of them convex,
    is then not decoded at all, only its rings GEOS must judge (``geoms`` is None).
    Decoding 10^6 patches into GEOS objects and freeing them again costs about 2.2 s
    of CPU (issue 18). *convex* decides, from the batches before, whether the convex
    test runs (:class:`_ConvexShare`).
    """
    if not plan.lyr.geometry or "_lq_wkb" not in batch.columns:
        return None
    arrow = _arrow_wkb(batch)
    plain_ok = plan.transformer is None and not plan.swap_xy and len(batch) > 0
    plain = plain_multipolygons(arrow) if arrow is not None and plain_ok else None
    tried = plain is not None and plain.all() and (convex is None or convex.wanted())
    sure = convex_rings(arrow) if tried else None
    share = float(sure.mean()) if sure is not None else 0.0
    if sure is not None and convex is not None:
        convex.saw(share)
    if wkb_only and sure is not None and share >= UNDECODED_SHARE:
        assert arrow is not None
        rest = np.flatnonzero(~sure)
        if not len(rest):
            return _Decoded(None, clean=True, valid=True)
        some = shapely.from_wkb(np.asarray(arrow.take(pa.array(rest)).to_numpy(zero_copy_only=False), dtype=object),
                                on_invalid="ignore")
        if not shapely.is_missing(some).any() and shapely.is_valid(some).all():
            return _Decoded(None, clean=True, valid=True, held=some)
    objects, _arrow = _source_wkb(batch)
    geoms = shapely.from_wkb(objects, on_invalid="ignore")
    if not plain_ok:
        return _Decoded(geoms)
    if plain is not None and plain.all():
        # a WKB the walk vouches for can still fail to decode (an unclosed ring): GEOS said None
        clean = not shapely.is_missing(geoms).any()
    else:
        clean = bool(
            (shapely.get_type_id(geoms) == 6).all()  # -1 for missing
            and not shapely.is_empty(geoms).any()
            and not shapely.has_z(geoms).any()
            and not shapely.has_m(geoms).any()
        )
    if not clean:
        return _Decoded(geoms)
    # GEOS tests the rings the convex test could not vouch for: on real survey patches
    # that is most of them
    if sure is None:
        sure = np.zeros(len(geoms), dtype=bool)
    valid = bool(sure.all()) or bool(shapely.is_valid(geoms[~sure]).all())
    return _Decoded(geoms, clean=True, valid=valid)


def _objects(batch: pd.DataFrame, decoded: _Decoded) -> NDArray[np.object_]:
    """Return the batch's geometries as decoded ahead, or decode them now if the batch stayed WKB only."""
    if decoded.geoms is not None:
        return decoded.geoms
    out: NDArray[np.object_] = shapely.from_wkb(_source_wkb(batch)[0], on_invalid="ignore")
    return out


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
    z_before = report.dropped_z
    clean = decoded is not None and decoded.clean
    if clean:
        assert decoded is not None
        # present 2D MultiPolygons already: nothing to do. A batch left WKB only gets
        # empty geometries: its WKB goes on beside the frame and is what is stored
        # (the caller asked for that: see _decode)
        n = len(batch)
        geoms = decoded.geoms if decoded.geoms is not None else np.full(n, None, dtype=object)
        keep = np.ones(n, dtype=bool)
    else:
        geoms = _geometries(_source_wkb(batch)[0] if decoded is None else None, plan, rows, frame[lyr.id_column], report,
                            decoded=None if decoded is None else decoded.geoms)
        keep = ~shapely.is_missing(geoms) if lyr.geometry_required else np.ones(len(geoms), dtype=bool)
    gdf = gpd.GeoDataFrame(frame, geometry=geoms, crs=f"EPSG:{CRS_EPSG}")
    mapped = {r.column for r in plan.rules.values()}
    if lyr.name == "parcels" and not mapped & {"net_m2", "gross_m2"} and gdf["net_m2"].isna().any():
        from landquota.rules.areas import ellipsoidal_area

        miss = gdf["net_m2"].isna().to_numpy() & keep
        if miss.any():
            objects = _objects(batch, decoded) if clean and decoded is not None else geoms
            gdf.loc[miss, "net_m2"] = ellipsoidal_area(objects[miss], crs=CRS_EPSG)
            state_note = "net_m2 computed as the ellipsoidal area of the geometry (no TBDLMJ/TBMJ field)"
            if state_note not in report.warnings:
                report.warnings.append(state_note)
    if lyr.name == "projects" and "site_fixed" not in frame.columns:
        # a clean batch's geometries are all present and non-empty, decoded or not
        gdf["site_fixed"] = True if clean else ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    unchanged = clean or (
        plan.transformer is None
        and not plan.swap_xy
        and report.dropped_z == z_before
        and keep.all()
        and bool((shapely.get_type_id(geoms) == 6).all())
        # an empty geometry may still become NULL in the workspace's checks: only
        # present, non-empty ones are the WKB's exact equals, as the writers assume
        and not shapely.is_empty(geoms).any()
    )
    if not keep.all():
        gdf = gdf[keep].reset_index(drop=True)
    # when nothing changed, the source's own WKB can go to COPY as it is (_binary_rows),
    # and the validity computed ahead is the validity of what is stored; Arrow's
    # buffers when GDAL read it, so the writers need not rebuild them
    if unchanged:
        wkb = _arrow_wkb(batch)
        if wkb is None:
            wkb = batch["_lq_wkb"].to_numpy()
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
    wkb: NDArray[Any] | None,
    plan: _Plan,
    rows: NDArray[np.int64],
    ids: pd.Series,
    report: ImportReport,
    *,
    decoded: NDArray[np.object_] | None = None,
) -> NDArray[np.object_]:
    """WKB → valid 2D MultiPolygons in EPSG:4490; rejects and repairs are reported.

    *wkb* is read only when the batch was not *decoded* ahead.
    """
    assert decoded is not None or wkb is not None
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
        # a row without geometry is rejected only where the contract needs one: a project
        # whose site is not fixed yet has none and is imported (site_fixed = false)
        for i in np.flatnonzero(bad) if plan.lyr.geometry_required else ():
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
    mapped = {r.column for r in plan.rules.values()}
    if plan.lyr.name == "parcels" and not mapped & {"net_m2", "gross_m2"}:
        # R1, R2: without an area field the net area is the ellipsoidal area of the
        # geometry, measured on the source's before the repair: for a bow-tie about 0
        # (its two lobes cancel). Measure the repaired shape instead.
        from landquota.rules.areas import ellipsoidal_area

        redo = ~valid & ~shapely.is_missing(geoms)
        if redo.any():
            fixed_frame.loc[redo, "net_m2"] = ellipsoidal_area(geoms[redo], crs=CRS_EPSG)
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

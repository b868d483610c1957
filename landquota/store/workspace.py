"""One workspace API over two backends: a GeoPackage file or a PostGIS schema.

``open_workspace("demo.gpkg")`` or ``open_workspace("postgresql://…")``
(:mod:`landquota.store.api`) returns a :class:`Workspace`. Both hold every layer of :mod:`landquota.store.schema` with the same
names, columns and codes, so QGIS, ``ogrinfo``, a notebook or another program can
read either without knowing which it is.

Frames cross this boundary in one canonical form (see :func:`coerce_frame`), so
code above it never sees which backend it talks to.
"""

from __future__ import annotations

import abc
import getpass
import hashlib
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from landquota._parallel import chunked
from landquota.errors import (
    ConcurrencyError,
    CRSError,
    DataError,
    LayerError,
    LedgerError,
    ParameterError,
    WorkspaceError,
)
from landquota.settings import mask_url
from landquota.store.pipeline_check import check_progress, check_stages
from landquota.store.schema import CRS_EPSG, LAYERS, Layer, layer

__all__ = [
    "Frame",
    "Workspace",
    "coerce_frame",
    "prepare_frame",
]

Frame: TypeAlias = gpd.GeoDataFrame | pd.DataFrame
WriteMode = Literal["replace", "append", "update"]
Where = Mapping[str, Any]
BBox = tuple[float, float, float, float]

#: Layers whose rows are history: never replaced wholesale, only appended to.
APPEND_ONLY = frozenset({"quota_ledger", "ledger_chain"})

_PANDAS_DTYPES: dict[str, str] = {
    "text": "str",
    "json": "str",
    "real": "float64",
    "integer": "Int64",
    "boolean": "bool",
    "date": "datetime64[ns]",
    "datetime": "datetime64[ns, UTC]",
}


def _empty_geoms(n: int) -> gpd.GeoSeries:
    return gpd.GeoSeries([None] * n, crs=f"EPSG:{CRS_EPSG}")


def coerce_frame(lyr: Layer, df: pd.DataFrame) -> Frame:
    """Return *df* with exactly the layer's columns in canonical dtypes.

    Both backends' readers end here, so the rest of the package never depends on
    how GDAL or psycopg happened to type a column (dates as ``date`` objects,
    booleans as 0/1, text as object…).
    """
    out: dict[str, Any] = {}
    for col in lyr.columns:
        s = df[col.name] if col.name in df.columns else pd.Series([None] * len(df), index=df.index)
        out[col.name] = _coerce_series(s, col.type, col.nullable)
    frame = pd.DataFrame(out, index=pd.RangeIndex(len(df)))
    if not lyr.geometry:
        return frame
    if "geometry" in df.columns:
        geoms = gpd.GeoSeries(
            np.asarray(df["geometry"].values, dtype=object), crs=f"EPSG:{CRS_EPSG}"
        )
    else:
        geoms = _empty_geoms(len(df))
    return gpd.GeoDataFrame(frame, geometry=geoms.values, crs=f"EPSG:{CRS_EPSG}")


#: the canonical text dtype: what ``.astype("str")`` gives (Arrow-backed with pandas ≥ 3)
_STR = pd.Series(["x"], dtype=object).astype("str").dtype


def _coerce_series(s: pd.Series, typ: str, nullable: bool) -> pd.Series:
    s = s.reset_index(drop=True)
    if typ in ("text", "json"):
        if s.dtype == _STR:
            return s  # already canonical (pandas' Arrow-backed str, NaN for missing)
        if s.dtype == object and pd.api.types.infer_dtype(s, skipna=True) in ("string", "empty"):
            # already str/None/NaN: one conversion to the canonical dtype, not four passes
            return s.astype("str").where(s.notna())
        return s.astype("object").where(s.notna(), None).astype("str").where(s.notna())
    if typ == "real":
        return pd.to_numeric(s, errors="raise").astype("float64")
    if typ == "integer":
        return pd.to_numeric(s, errors="raise").astype("Int64")
    if typ == "boolean":
        if s.isna().any():
            # a missing boolean reads as False: the contract's booleans are flags
            s = s.fillna(False)
        return s.astype("bool")
    if typ == "date":
        return pd.to_datetime(s, errors="raise").astype("datetime64[ns]")
    if typ == "datetime":
        return pd.to_datetime(s, errors="raise", utc=True, format="ISO8601").astype(
            "datetime64[ns, UTC]"
        )
    raise AssertionError(f"unhandled column type {typ!r}")  # pragma: no cover - schema is fixed


def prepare_frame(
    lyr: Layer, frame: pd.DataFrame, *, source: str = "frame", _checked: bool = False, _ids_checked: bool = False
) -> Frame:
    """Check *frame* against the contract and return it in canonical form.

    ``_checked`` is for the importer only: it has already found, on its read-ahead
    thread, that every geometry is a present, non-empty, valid 2D MultiPolygon,
    so those GEOS tests are not paid twice. ``_ids_checked`` is for the importer too:
    its id guard finds duplicates across all batches (and names both rows), so this
    batch's own hash pass over the ids is skipped (0.17 s of 10^6 rows).

    Raises
    ------
    DataError
        Unknown or missing columns, nulls in required columns, codes outside the
        allowed set, values out of range, duplicate ids, invalid geometries; the
        message names the layer, the column, the first offending ids and the fix.
    CRSError
        A spatial frame without CRS or in a CRS other than EPSG:4490.
    """
    cols = set(frame.columns) - {"geometry"}
    if isinstance(frame, gpd.GeoDataFrame) and frame.geometry.name != "geometry":
        cols.discard(frame.geometry.name)
    unknown = sorted(cols - set(lyr.column_names))
    if unknown:
        raise DataError(
            f"{source}: layer {lyr.name!r} has no column(s) {unknown}; its columns are "
            f"{', '.join(lyr.column_names)}. Rename them or use an import mapping file."
        )
    missing = [c.name for c in lyr.columns if not c.nullable and c.name not in frame.columns]
    if missing:
        raise DataError(f"{source}: layer {lyr.name!r} needs column(s) {missing}, which are absent")
    df = pd.DataFrame(frame).copy()
    if lyr.geometry:
        if isinstance(frame, gpd.GeoDataFrame):
            df["geometry"] = _check_geometry(lyr, frame, source, _checked)
        elif lyr.geometry_required:
            raise DataError(f"{source}: layer {lyr.name!r} is spatial; pass a GeoDataFrame")
    try:
        out = coerce_frame(lyr, df)
    except (ValueError, TypeError) as exc:
        raise DataError(
            f"{source}: layer {lyr.name!r}: a column has values of the wrong type: {exc}"
        ) from exc
    ids = out[lyr.id_column]
    for col in lyr.columns:
        s = out[col.name]
        if not col.nullable and s.isna().any():
            bad = ids[s.isna()].head(5).tolist()
            raise DataError(
                f"{source}: layer {lyr.name!r} column {col.name!r} must not be empty; "
                f"empty in rows with {lyr.id_column} {bad}"
            )
        if col.codes is not None:
            bad_mask = s.notna() & ~s.isin(col.codes)
            if bad_mask.any():
                vals = sorted(set(s[bad_mask].astype(str)))[:5]
                raise DataError(
                    f"{source}: layer {lyr.name!r} column {col.name!r} has code(s) {vals} "
                    f"(e.g. {lyr.id_column}={ids[bad_mask].iloc[0]!r}); allowed: {', '.join(col.codes)}"
                )
        if col.type in ("real", "integer") and (col.minimum is not None or col.maximum is not None):
            v = s.astype("float64")
            bad_mask = v.isna() & s.notna()
            if col.minimum is not None:
                bad_mask |= v < col.minimum
            if col.maximum is not None:
                bad_mask |= v > col.maximum
            if s.dtype == "float64":
                bad_mask |= np.isinf(v)
            if bad_mask.any():
                raise DataError(
                    f"{source}: layer {lyr.name!r} column {col.name!r} value "
                    f"{s[bad_mask].iloc[0]!r} ({lyr.id_column}={ids[bad_mask].iloc[0]!r}) is outside "
                    f"[{col.minimum}, {col.maximum}]"
                )
        if col.type in ("text", "json") and _holds_nul(s):
            # GDAL cuts text at a NUL when reading a GeoPackage: two ids would collide
            nul = s.notna() & s.astype(object).map(lambda x: "\x00" in str(x)).astype(bool)
            raise DataError(
                f"{source}: layer {lyr.name!r} column {col.name!r} holds a NUL character "
                f"(row {int(np.flatnonzero(nul.to_numpy())[0])}); remove it from the source"
            )
        if col.type == "real" and col.name == "amount" and (~np.isfinite(s.astype(float))).any():
            raise DataError(f"{source}: layer {lyr.name!r} column 'amount' must be finite numbers")
    dup = ids[ids.duplicated()] if not _ids_checked else ids[:0]
    if len(dup):
        raise DataError(
            f"{source}: layer {lyr.name!r} has duplicate {lyr.id_column} {sorted(set(dup))[:5]}; "
            "ids must be unique in the workspace"
        )
    return out


def arrow_text(s: pd.Series) -> Any:
    """Return the Arrow array behind a text Series, or None if it is not Arrow-backed.

    pandas ≥ 3 keeps text in Arrow buffers; encoders and scanners read those
    directly instead of making a Python string per value. Several chunks (after a
    concat) are joined into one array.
    """
    import pyarrow as pa

    if not (isinstance(s.dtype, pd.StringDtype) and s.dtype.storage == "pyarrow"):
        return None
    arr = pa.array(s.array)
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def binary_array(wkb: Any) -> Any:
    """Return *wkb* as one Arrow binary array: Arrow arrays as they are, bytes objects converted.

    The backends' writers take an import's WKB either way (issue 18: GDAL's batches
    keep theirs in Arrow, VCT and CSV sources give bytes objects).
    """
    import pyarrow as pa

    if isinstance(wkb, pa.ChunkedArray):
        wkb = wkb.combine_chunks()
    if isinstance(wkb, pa.Array):
        return wkb if wkb.type == pa.binary() else wkb.cast(pa.binary())
    return pa.array(wkb, type=pa.binary())


def _holds_nul(s: pd.Series) -> bool:
    """Tell whether any text value holds a NUL: one scan, not a Python call per value."""
    if s.dtype == _STR:
        return bool(s.str.contains("\x00", regex=False, na=False).any())
    return "\x00" in "".join(s[s.notna()].astype(str).tolist())


def _check_geometry(
    lyr: Layer, frame: gpd.GeoDataFrame, source: str, checked: bool = False
) -> np.ndarray:
    if frame.crs is None:
        raise CRSError(
            f"{source}: layer {lyr.name!r} has no CRS; set it with .set_crs(...) if you know it, "
            f"then .to_crs({CRS_EPSG}) (CGCS2000), or use `landquota import --crs EPSG:xxxx`"
        )
    if CRS.from_user_input(frame.crs) != CRS.from_epsg(CRS_EPSG):
        raise CRSError(
            f"{source}: layer {lyr.name!r} is in {frame.crs.to_string()!r}; the workspace stores "
            f"EPSG:{CRS_EPSG} (CGCS2000). Reproject with .to_crs({CRS_EPSG}) or use `landquota import`."
        )
    geoms = np.asarray(frame.geometry.values, dtype=object)
    if checked:
        return geoms
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    if missing.any():
        if lyr.geometry_required:
            ids = frame[lyr.id_column][missing].head(5).tolist() if lyr.id_column in frame else []
            raise DataError(f"{source}: layer {lyr.name!r} has empty or missing geometries ({ids})")
        geoms = geoms.copy()
        geoms[missing] = None
    present = ~missing
    types = shapely.get_type_id(geoms[present])
    if not np.isin(types, (3, 6)).all():  # Polygon, MultiPolygon
        raise DataError(
            f"{source}: layer {lyr.name!r} holds non-polygon geometries; the contract stores "
            "MultiPolygons (use `landquota import`, which keeps the polygonal part)"
        )
    if shapely.has_z(geoms[present]).any():
        geoms[present] = shapely.force_2d(geoms[present])
    bad = present.copy()
    bad[present] = ~chunked(shapely.is_valid, geoms[present])
    if bad.any():
        ids = frame[lyr.id_column][bad].head(5).tolist() if lyr.id_column in frame else []
        raise DataError(
            f"{source}: layer {lyr.name!r} has invalid geometries ({ids}); repair them with "
            "shapely.make_valid or `landquota import`, which repairs and reports"
        )
    polys = present & (shapely.get_type_id(geoms) == 3)
    if polys.any():
        geoms[polys] = shapely.multipolygons(geoms[polys][:, None])
    return geoms


def where_to_sql(lyr: Layer, where: Where | None, quote: str = '"') -> tuple[str, list[Any]]:
    """Turn an attribute filter into SQL text with ``?`` placeholders and parameters.

    Filters are ``{column: value}`` or ``{column: [values]}``; ``None`` means IS NULL.
    Column names are checked against the contract, never interpolated from input,
    so a filter cannot inject SQL.
    """
    if not where:
        return "", []
    clauses: list[str] = []
    params: list[Any] = []
    for name, value in where.items():
        col = lyr.column(name) if name in lyr.column_names else None
        if col is None:
            raise LayerError(
                f"cannot filter layer {lyr.name!r} on {name!r}; its columns are {', '.join(lyr.column_names)}"
            )
        ident = f"{quote}{col.name}{quote}"
        values = list(value) if isinstance(value, (list, tuple, set, frozenset)) else [value]
        if not values:
            clauses.append("1 = 0")
            continue
        nulls = [v for v in values if v is None]
        vals = [_param(col.type, v, name) for v in values if v is not None]
        parts = []
        if vals:
            parts.append(f"{ident} IN ({', '.join('?' for _ in vals)})")
            params.extend(vals)
        if nulls:
            parts.append(f"{ident} IS NULL")
        clauses.append("(" + " OR ".join(parts) + ")")
    return " AND ".join(clauses), params


def _param(typ: str, v: Any, name: str) -> Any:
    if typ in ("real", "integer"):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise ParameterError(f"filter on {name!r} needs a number, got {v!r}")
        if isinstance(v, float) and not math.isfinite(v):
            raise ParameterError(f"filter on {name!r} needs a finite number, got {v!r}")
        if isinstance(v, (int, np.integer)) and not -(2**63) <= int(v) < 2**63:
            raise ParameterError(f"filter on {name!r}: {v!r} is out of the 64-bit integer range")
        return v
    if typ == "boolean":
        if not isinstance(v, (bool, np.bool_)):
            raise ParameterError(f"filter on {name!r} needs True or False, got {v!r}")
        return bool(v)
    if typ in ("date", "datetime"):
        try:
            ts = pd.Timestamp(v)
        except (ValueError, TypeError, OverflowError) as exc:
            raise ParameterError(
                f"filter on {name!r} needs a date (YYYY-MM-DD), got {v!r}"
            ) from exc
        if pd.isna(ts):
            raise ParameterError(f"filter on {name!r} needs a date (YYYY-MM-DD), got {v!r}")
        return ts.date().isoformat() if typ == "date" else ts.isoformat()
    text = str(v)
    if "\x00" in text:
        raise ParameterError(
            f"filter on {name!r}: {v!r} contains a NUL character, which no value holds"
        )
    return text


def check_bbox(bbox: Sequence[float] | None) -> BBox | None:
    """Validate a (minx, miny, maxx, maxy) box in degrees."""
    if bbox is None:
        return None
    try:
        b = tuple(float(x) for x in bbox)
    except (TypeError, ValueError) as exc:
        raise ParameterError(
            f"bbox={bbox!r} must be four numbers (minx, miny, maxx, maxy)"
        ) from exc
    if len(b) != 4 or not all(math.isfinite(x) for x in b) or b[0] > b[2] or b[1] > b[3]:
        raise ParameterError(
            f"bbox={bbox!r} must be four finite numbers (minx, miny, maxx, maxy) with min <= max, "
            "in degrees of EPSG:4490"
        )
    return (b[0], b[1], b[2], b[3])


@dataclass(frozen=True)
class RunTransition:
    """A run status change made in the same transaction as ledger entries."""

    run_id: str
    from_status: str
    to_status: str

    def check(self, found: str | None, where: str) -> None:
        """Raise unless the run exists and is still in ``from_status`` (read under the lock)."""
        if found is None:
            raise LedgerError(f"run {self.run_id!r} does not exist in {where}")
        if found != self.from_status:
            raise ConcurrencyError(
                f"run {self.run_id!r} is {found!r}, not {self.from_status!r}: another process "
                "changed it first; nothing was written"
            )


class Workspace(abc.ABC):
    """A land-quota workspace; use :func:`open_workspace` to get one."""

    kind: str
    target: str

    # --- reading -----------------------------------------------------------
    def read_layer(
        self,
        name: str,
        *,
        bbox: Sequence[float] | None = None,
        where: Where | None = None,
        columns: Sequence[str] | None = None,
    ) -> Frame:
        """Read a layer as a GeoDataFrame (a DataFrame for tables without geometry).

        Parameters
        ----------
        name : str
            A layer of :data:`landquota.store.schema.LAYERS`.
        bbox : (minx, miny, maxx, maxy), optional
            Only features whose bounding box meets this box (degrees, EPSG:4490);
            answered by the backend's spatial index.
        where : mapping, optional
            ``{column: value or [values]}``, all of which must hold; pushed down to
            the backend as parameterised SQL.
        columns : sequence of str, optional
            Only these columns (the id column is always included).
        """
        lyr = layer(name)
        box = check_bbox(bbox)
        if box is not None and not lyr.geometry:
            raise ParameterError(f"bbox given for layer {name!r}, which has no geometry")
        cols = None
        if columns is not None:
            for c in columns:
                lyr.column(c) if c in lyr.column_names else self._no_column(lyr, c)
            cols = [lyr.id_column] + [c for c in columns if c != lyr.id_column]
        df = self._read(lyr, box, where)
        out = coerce_frame(lyr, df)
        if cols is not None:
            keep = cols + (["geometry"] if lyr.geometry else [])
            out = out[keep]
        return out

    def read_bounds(self, name: str) -> pd.DataFrame:
        """Each feature's id and bounding box, without reading its geometry.

        For planning work over a large layer (a tiled export, partitions): the
        GeoPackage answers from its R-tree (float32 boxes, rounded outwards, so
        never smaller than the feature's), PostGIS from the geometries' stored
        boxes. Features without geometry have NaN bounds.

        Returns
        -------
        pandas.DataFrame
            The id column, then ``minx``, ``miny``, ``maxx``, ``maxy`` (degrees,
            EPSG:4490), in the layer's row order.
        """
        lyr = layer(name)
        if not lyr.geometry:
            raise ParameterError(f"layer {name!r} has no geometry, so no bounds")
        return self._read_bounds(lyr)

    @staticmethod
    def _no_column(lyr: Layer, c: str) -> None:
        raise LayerError(
            f"layer {lyr.name!r} has no column {c!r}; columns are {', '.join(lyr.column_names)}"
        )

    def read_all(self) -> dict[str, Frame]:
        """Read every layer, in dependency order."""
        return {name: self.read_layer(name) for name in LAYERS}

    def layer_counts(self) -> dict[str, int]:
        """Count the rows of every layer."""
        return {name: self._count(layer(name)) for name in LAYERS}

    # --- writing -----------------------------------------------------------
    def write_layer(self, name: str, frame: pd.DataFrame, *, mode: WriteMode = "replace") -> int:
        """Write *frame* to layer *name* in one transaction; return the rows written.

        ``mode="replace"`` swaps the layer's content, ``"append"`` adds rows and
        refuses ids already present, ``"update"`` rewrites the rows whose id is in
        *frame* in place and adds the others, leaving every other row as it is (a
        corrected ``projects`` file, whose ids runs and meetings refer to). Either
        the whole frame lands or nothing does.
        """
        return self.write_layers({name: frame}, mode=mode)[name]

    def write_layers(
        self,
        frames: Mapping[str, pd.DataFrame],
        *,
        mode: WriteMode = "replace",
        progress: bool = False,
    ) -> dict[str, int]:
        """Write several layers in one transaction (all land or none)."""
        if mode not in ("replace", "append", "update"):
            raise ParameterError(f"mode={mode!r}; use 'replace', 'append' or 'update'")
        prepared: dict[str, Frame] = {}
        for name in LAYERS:  # dependency order, whatever order the caller used
            if name in frames:
                lyr = layer(name)
                if mode != "append" and name in APPEND_ONLY and self._count(lyr) > 0:
                    raise WorkspaceError(
                        f"layer {name!r} is append-only (R6: the ledger is history); "
                        f"write reversal entries instead of {mode[:-1]}ing it"
                    )
                prepared[name] = prepare_frame(lyr, frames[name], source=f"write to {name}")
        for name in frames:
            layer(name)  # unknown names raise
        if mode == "append":
            self._check_new_ids(prepared)
        self._check_pipeline(prepared, mode)
        self._write(prepared, mode, progress=progress)
        return {k: len(v) for k, v in prepared.items()}

    def _check_pipeline(self, prepared: Mapping[str, Frame], mode: WriteMode) -> None:
        """Check stage dates and monthly returns whoever writes them (import, API, restore).

        Rules across rows (issue 14): a stage ends after it starts and construction
        starts after supply; a cumulative return never falls within a year (R17).
        An append is checked together with the rows already there.
        """
        for name, check in (("project_stages", check_stages), ("project_progress", check_progress)):
            if name not in prepared:
                continue
            rows = prepared[name]
            if mode == "append" and self._count(layer(name)):
                rows = pd.concat([self.read_layer(name), rows], ignore_index=True)
            elif mode == "update" and self._count(layer(name)):
                key = layer(name).id_column
                old = self.read_layer(name)
                rows = pd.concat([old[~old[key].isin(rows[key])], rows], ignore_index=True)
            check(rows)

    def _check_new_ids(self, prepared: Mapping[str, Frame]) -> None:
        for name, df in prepared.items():
            lyr = layer(name)
            ids = df[lyr.id_column].tolist()
            if not ids:
                continue
            present: set[str] = set()
            for i in range(0, len(ids), 10_000):
                got = self._read(lyr, None, {lyr.id_column: ids[i : i + 10_000]}, ids_only=True)
                present |= set(got[lyr.id_column].astype(str))
            if present:
                raise DataError(
                    f"append to {name!r}: {lyr.id_column} {sorted(present)[:5]} already exist"
                    f"{' (and more)' if len(present) > 5 else ''}; use --replace to swap the layer "
                    "or give new ids"
                )

    # --- ledger ------------------------------------------------------------
    def append_ledger(
        self, entries: pd.DataFrame, *, transition: RunTransition | None = None
    ) -> pd.DataFrame:
        """Append ledger entries in one transaction, refusing any negative balance (R6).

        ``entered_at`` and ``entered_by`` are filled here with the time and the
        database (PostGIS) or operating-system (GeoPackage) user. With
        *transition*, the run's status changes in the same transaction, and the
        whole write fails if the run is no longer in ``from_status`` — so two
        processes can never both commit (or revert) the same run.
        """
        df = pd.DataFrame(entries).copy()
        df["entered_at"] = pd.Timestamp.now(tz="UTC").floor("ms")
        df["entered_by"] = self.user()
        # credits first: the database checks each (pool, year) as rows arrive
        df = df.sort_values("amount", ascending=False, kind="stable").reset_index(drop=True)
        prepared = prepare_frame(layer("quota_ledger"), df, source="ledger entries")
        self._append_ledger(prepared, transition)
        return prepared

    # --- metadata ----------------------------------------------------------
    def meta(self) -> dict[str, str]:
        """Return the workspace's metadata (schema version, creation time, source CRSs…)."""
        return self._meta()

    def set_meta(self, key: str, value: str) -> None:
        """Record one metadata value."""
        self._set_meta(key, value)

    @property
    def schema_version(self) -> int:
        """The schema version recorded in the workspace."""
        return int(self.meta().get("schema_version", "0"))

    # --- backend hooks -----------------------------------------------------
    @abc.abstractmethod
    def _read(
        self, lyr: Layer, bbox: BBox | None, where: Where | None, *, ids_only: bool = False
    ) -> pd.DataFrame: ...

    @abc.abstractmethod
    def _count(self, lyr: Layer) -> int: ...

    @abc.abstractmethod
    def _read_bounds(self, lyr: Layer) -> pd.DataFrame: ...

    @abc.abstractmethod
    def _write(self, frames: Mapping[str, Frame], mode: WriteMode, *, progress: bool) -> None: ...

    @abc.abstractmethod
    def _append_ledger(self, entries: Frame, transition: RunTransition | None) -> None: ...

    @abc.abstractmethod
    def _meta(self) -> dict[str, str]: ...

    @abc.abstractmethod
    def _set_meta(self, key: str, value: str) -> None: ...

    # --- schema changes (migrations only) ------------------------------------
    def _add_layers(self, names: Sequence[str]) -> None:
        """Create the contract tables *names*, empty, in one transaction (a migration step)."""
        raise NotImplementedError(f"{type(self).__name__} cannot add layers")  # pragma: no cover

    def _recode(self, name: str, column: str, mapping: Mapping[str, str]) -> None:
        """Replace the values of one text column by *mapping* in one transaction (migrations)."""
        raise NotImplementedError(f"{type(self).__name__} cannot recode")  # pragma: no cover

    @abc.abstractmethod
    def user(self) -> str:
        """Return the login that writes: the database user, or the OS user for a GeoPackage."""

    @abc.abstractmethod
    def set_run_status(self, transition: RunTransition) -> None:
        """Change a run's status, failing if it is not in ``from_status``."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections."""

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.kind} {mask_url(self.target)!r}>"


def os_user() -> str:
    """Return the operating-system login (GeoPackage writes are recorded under it)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container without a passwd entry
        return "unknown"


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no spaces: stable bytes for digests and round trips."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def frame_digest(df: pd.DataFrame) -> str:
    """SHA-256 of a frame's content: rows sorted by their first column, WKB geometry.

    Stable across backends and runs, since both backends hand out the same
    canonical frames.
    """
    h = hashlib.sha256()
    if len(df) == 0:
        h.update(b"empty:" + ",".join(map(str, df.columns)).encode())
        return h.hexdigest()
    key = df.columns[0]
    d = df.sort_values(key, kind="stable").reset_index(drop=True)
    attrs = pd.DataFrame(d.drop(columns="geometry", errors="ignore"))
    buf = io.StringIO()
    attrs.to_csv(buf, index=False, lineterminator="\n", date_format="%Y-%m-%dT%H:%M:%S.%f")
    h.update(buf.getvalue().encode("utf-8"))
    if "geometry" in d.columns:
        g = np.asarray(d.geometry.values, dtype=object)
        for w in shapely.to_wkb(g, byte_order=1, flavor="iso"):
            h.update(b"-" if w is None else w)
    return h.hexdigest()


def is_postgres_url(target: str) -> bool:
    """Tell whether *target* is a ``postgresql://`` (or ``postgres://``, ``postgresql+psycopg://``) URL."""
    return (
        target.split("://", 1)[0].split("+", 1)[0] in ("postgresql", "postgres") and "://" in target
    )

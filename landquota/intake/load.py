"""The load pipeline: prepared batches into a workspace, in ONE transaction per load.

:func:`load_layers` writes one or several layers (a single import, or a whole survey
delivery) inside the backend's one write transaction: all of them, or none, even when
the process is killed. Per backend, :func:`_write_into` streams the batches: one
binary COPY on PostGIS (:func:`_copy_stream`, written by a background thread; a large
replace truncates the table and rebuilds its keys and indexes once, after the load),
one SQLite transaction with a single R-tree fill on a GeoPackage. :func:`read_ahead`
overlaps reading and decoding the next batch with converting and writing this one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd

from landquota._parallel import read_ahead
from landquota.errors import DataError, ImportDataError, ParameterError
from landquota.store.schema import Layer
from landquota.store.workspace import Workspace

__all__ = ["BULK_ROWS", "COPY_ROWS", "Load", "Mode", "load_layers", "read_ahead"]

Mode = Literal["replace", "append", "update"]

#: From this many source rows on, a PostGIS replace truncates the table and rebuilds
#: its non-unique indexes after the load (readers of that layer wait until commit).
BULK_ROWS = 50_000

#: Rows encoded for COPY at a time: a prepared frame larger than this (a CSV table is
#: read whole) goes to the server in parts, so the bytes encoded at once stay bounded
#: (about 50 MB for 50,000 parcels). Batches read from GDAL or VCT files are no larger
#: (landquota.intake.sources.BATCH_ROWS has the same value).
COPY_ROWS = 50_000


@dataclass
class Load:
    """One workspace layer to fill inside :func:`load_layers`' single transaction."""

    lyr: Layer
    #: prepared batches: (contract frame, the source's WKB when it can go to COPY as read)
    frames: Iterator[tuple[pd.DataFrame, Any]]
    #: the ``import.<layer>`` metadata record, made once the batches are consumed
    meta: Callable[[], str]
    source: str
    mode: Mode = "replace"
    expected_rows: int = 0
    #: called when the workspace refused a row: may raise a clearer error (a duplicate id)
    on_refusal: Callable[[], None] = lambda: None
    #: called with the rows a replace removed once every batch is written, before the
    #: commit: raising refuses the whole load (imports never lose data, issue 12)
    check: Callable[[int], None] | None = None


def load_layers(ws: Workspace, loads: Sequence[Load], *, bar: Any = None) -> None:
    """Write several layers in ONE transaction of the workspace: all of them, or none.

    Each :class:`Load` replaces (or appends to) its layer from a stream of batches,
    exactly as a single import does (binary COPY on PostGIS, one SQLite
    transaction on a GeoPackage), and records ``import.<layer>``; validation is
    marked stale once. An error in any batch of any layer, or a killed process,
    leaves every layer as it was. ``landquota import-survey`` loads a whole
    survey delivery through this.

    Raises
    ------
    ImportDataError
        The workspace refused a row (a key, an id already present on append); the
        message names the source. Errors of the batches themselves pass through.
    """
    names = [ld.lyr.name for ld in loads]
    if len(set(names)) != len(names):
        raise ParameterError(f"load_layers: a layer appears twice in {names}; combine its sources first")
    bar = bar if bar is not None else _NoBar()
    current: Load | None = None
    try:
        with _transaction(ws) as con:
            for ld in loads:
                current = ld
                _write_into(ws, con, ld.lyr, ld.frames, mode=ld.mode, bar=bar, meta=ld.meta,
                            expected_rows=ld.expected_rows, check=ld.check)
            _mark_stale(ws, con)
    except ImportDataError:
        raise
    except DataError as exc:  # the workspace refused (append of existing ids, a key…)
        if current is not None:
            current.on_refusal()  # its unique index may have met a duplicate of the source first
        where = current.source if current is not None else "the sources"
        raise ImportDataError(f"{where!r}: {exc}. Nothing was imported.") from exc
    finally:
        if ws.kind == "postgis":  # a rolled-back load's import stages go now, not at the next import
            from landquota.store import pgstage

            pgstage.release(ws)


def _transaction(ws: Workspace) -> Any:
    """Open the backend's one write transaction (SQLite BEGIN IMMEDIATE, or a PostgreSQL one)."""
    # by kind, not isinstance: a GeoPackage load need not import the PostGIS backend
    # (SQLAlchemy and psycopg: 0.17 s of the command's start-up)
    if ws.kind in ("gpkg", "postgis"):
        return ws._tx()  # type: ignore[attr-defined]
    raise TypeError(f"{ws!r} is neither a GeoPackage nor a PostGIS workspace")  # pragma: no cover


class _NoBar:
    def update(self, n: int) -> None:
        """Ignore progress."""


# --------------------------------------------------------------------------------------
# the one transaction
# --------------------------------------------------------------------------------------
def _copy_stream(
    ws: Any, raw: Any, lyr: Layer, frames: Iterator[tuple[pd.DataFrame, Any]], *, mode: Mode, bar: Any,
    table: str | None = None, freeze: bool = False,
) -> None:
    """ONE binary COPY for all batches into *table* (default: the layer) on psycopg connection *raw*.

    psycopg's queued writer sends batch *k* while this thread reads, checks and
    encodes batch *k + 1*, so the client's work and the server's (parsing,
    constraints) overlap on two cores instead of adding up.
    """
    from psycopg.copy import QueuedLibpqWriter

    from landquota.store.postgis import _COPY_SIGNATURE, _COPY_TRAILER, GEOM, _binary_rows

    names = list(lyr.column_names) + ([GEOM] if lyr.geometry else [])
    ident = ", ".join(f'"{n}"' for n in names)
    target = table or f'"{ws.schema}"."{lyr.name}"'
    sql = f"COPY {target} ({ident}) FROM STDIN (FORMAT BINARY{', FREEZE' if freeze else ''})"
    with raw.cursor() as cur, cur.copy(sql, writer=QueuedLibpqWriter(cur)) as cp:
        cp.write(_COPY_SIGNATURE)
        for df, wkb in frames:
            if mode == "append":
                ws._check_new_ids({lyr.name: df})
            for start in range(0, len(df), COPY_ROWS):
                part = df.iloc[start : start + COPY_ROWS]
                src_wkb = wkb[start : start + COPY_ROWS] if wkb is not None else None
                # the memoryview over Arrow's buffer goes as it is: psycopg's writer
                # thread sends it in zero-copy slices and keeps the buffer alive until
                # sent (a bytes() copy here cost ~1 GB of memcpy and page faults)
                cp.write(_binary_rows(lyr, part, wkb=src_wkb))
                bar.update(len(part))
        cp.write(_COPY_TRAILER)


def _still_referenced(name: str) -> DataError:
    """Build the refusal of a replace whose old rows other layers' rows still refer to.

    Both backends keep their foreign keys immediate, so emptying such a layer fails
    before a single new row is written; the ledger's allocations and the pipeline's
    stages, meetings and visits must never point at a project that is gone (R6).
    """
    from landquota.store.schema import LAYERS

    users = sorted(
        {
            other.name
            for other in LAYERS.values()
            for col in other.columns
            if col.references is not None and col.references.split(".")[0] == name
            and other.name != name
        }
    )
    return DataError(
        f"layer {name!r} cannot be replaced: rows of other layers "
        f"({', '.join(users) or 'a foreign key'}) refer to its rows; correct rows in place and add new ones with --update (rows the "
        f"file does not name stay), add new rows only with --append, or import into a new workspace"
    )


def _write_into(
    ws: Workspace,
    con: Any,
    lyr: Layer,
    frames: Iterator[tuple[pd.DataFrame, Any]],
    *,
    mode: Mode,
    bar: Any,
    meta: Any,
    expected_rows: int = 0,
    check: Callable[[int], None] | None = None,
) -> None:
    """Stream prepared batches into *lyr* inside the open transaction *con* (see :func:`load_layers`).

    Replaces (or appends to) the layer batch by batch, so memory stays bounded,
    and records the import in the metadata (``import.<layer>``) in the same
    transaction. A failure or a killed process leaves the workspace exactly as
    it was, because the caller's one transaction rolls back. *check* gets the
    number of rows a replace removed once every batch is written; raising
    refuses the load.
    """
    key = f"import.{lyr.name}"
    if mode == "update":
        _update_into(ws, con, lyr, frames, bar=bar)
        if check is not None:
            check(0)
        _record(ws, con, key, meta())
        return
    if ws.kind == "postgis":
        import sqlalchemy as sa

        from landquota.store.postgis import PostgisWorkspace

        if not isinstance(ws, PostgisWorkspace):  # pragma: no cover - kind says so
            raise TypeError(f"{ws!r} is not a PostGIS workspace")
        table = f'"{ws.schema}"."{lyr.name}"'
        rebuild: list[str] = []
        removed = 0
        if mode == "replace" and expected_rows >= BULK_ROWS:
            # issue 18: COPY into a committed stage, keys and indexes built in parallel
            # sessions, swapped in by this transaction (landquota.store.pgstage); None
            # when the layer is not a plain table pgstage can rebuild exactly
            from landquota.store import pgstage

            stage = pgstage.prepare(ws, con, lyr.name)
            if stage is not None:
                stage.load(ws, lambda raw, target: _copy_stream(ws, raw, lyr, frames, mode=mode, bar=bar,
                                                                table=target, freeze=True), check)
                stage.swap(con)
                _record(ws, con, key, meta())
                return
        if mode == "replace":
            referenced = con.execute(
                sa.text("SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND confrelid = to_regclass(:t)"),
                {"t": table},
            ).scalar()
            # TRUNCATE and dropping keys and indexes need the table's owner: an editor's
            # import (docs/security.md) takes the row-by-row path instead
            owner = con.execute(
                sa.text("SELECT pg_has_role(relowner, 'USAGE') FROM pg_class WHERE oid = to_regclass(:t)"),
                {"t": table},
            ).scalar()
            big = expected_rows >= BULK_ROWS and bool(owner)
            # TRUNCATE (transactional in PostgreSQL) leaves no dead rows behind for
            # COPY to skip; it is not allowed on a table that others reference.
            if big and not referenced:
                # TRUNCATE tells no count: count under the lock it would take anyway
                con.execute(sa.text(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
                removed = int(con.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())
                con.execute(sa.text(f"TRUNCATE {table}"))
            else:
                try:
                    removed = con.execute(ws.table(lyr.name).delete()).rowcount
                except sa.exc.IntegrityError as exc:
                    raise _still_referenced(lyr.name) from exc
            if big and not referenced:
                # The primary key and unique id constraints go too: their B-trees cost the
                # COPY about half its server time (10^6 rows: 3.4 s against 1.5 s bare),
                # and built once afterwards they take a fraction of that. The source's
                # ids were checked for duplicates on the way (_IdGuard), and re-adding
                # the constraint checks them again, in the same transaction.
                for name, ddl in con.execute(
                    sa.text(
                        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                        "WHERE conrelid = to_regclass(:t) AND contype IN ('p', 'u') "
                        "ORDER BY contype, conname"
                    ),
                    {"t": table},
                ).all():
                    con.execute(sa.text(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"'))
                    rebuild.append(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {ddl}')
            if big:
                # Building the GiST and plain B-tree indexes once, sorted, after the
                # load is much cheaper than updating them row by row. DDL is
                # transactional, so a failure or a kill brings the indexes and
                # constraints back with the old rows.
                for name, ddl in con.execute(
                    sa.text(
                        "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i "
                        "JOIN pg_class c ON c.oid = i.indexrelid "
                        "WHERE i.indrelid = to_regclass(:t) AND NOT i.indisunique"
                    ),
                    {"t": table},
                ).all():
                    con.execute(sa.text(f'DROP INDEX "{ws.schema}"."{name}"'))
                    rebuild.append(str(ddl))
        _copy_stream(ws, con.connection.driver_connection, lyr, frames, mode=mode, bar=bar)
        if check is not None:
            check(removed)
        if rebuild:
            # The server's default (64 MB) makes a 10^6-row index sort spill to disk;
            # SET LOCAL ends with this transaction, as pg_restore's advice has it.
            con.execute(sa.text("SET LOCAL maintenance_work_mem = '512MB'"))
        for ddl in rebuild:
            con.execute(sa.text(ddl))
        _record(ws, con, key, meta())
        return
    from landquota.store.gpkg import GEOM, GpkgWorkspace, InsertRows, insert_rows

    if not isinstance(ws, GpkgWorkspace):  # pragma: no cover - only two backends
        raise TypeError(f"{ws!r} is not a GeoPackage workspace")
    removed = 0
    if mode == "replace":
        import sqlite3

        try:
            removed = con.execute(f'DELETE FROM "{lyr.name}"').rowcount
        except sqlite3.IntegrityError as exc:
            raise _still_referenced(lyr.name) from exc
        if lyr.geometry:
            con.execute(f'DELETE FROM "rtree_{lyr.name}_{GEOM}"')
    indexed: list[tuple[Any, Any]] = []
    # issue 18: a large replace builds the plain indexes once at the end (GpkgWorkspace._bulk_start)
    restore = ws._bulk_start(con, lyr) if mode == "replace" and expected_rows >= BULK_ROWS else []
    # Three threads: GDAL's reading and the GEOS tests (the importer's read-ahead), then
    # the contract checks and the SQLite parameters of each batch (here, "landquota-
    # rows"), then SQLite's inserts on this thread, which holds the connection. SQLite
    # releases the GIL while it inserts, so the stages overlap on two cores (issue 18:
    # the inserts alone were the critical path).
    plan = ws._insert_begin(con, lyr)
    next_fid = plan.first_fid

    def rows_of(item: tuple[pd.DataFrame, Any]) -> InsertRows:
        nonlocal next_fid
        df, wkb = item
        rows = insert_rows(lyr, df, next_fid, wkb, block=plan.block)
        next_fid += len(df)
        return rows

    for (df, _wkb), rows in read_ahead(frames, rows_of, name="landquota-rows"):
        if mode == "append":
            ws._check_new_ids({lyr.name: df})
        part = ws._insert_run(con, lyr, plan, rows, bar)
        if part is not None:
            indexed.append(part)
    if check is not None:
        check(removed)
    if lyr.geometry:
        # one spatial index fill for all batches: bulk-loaded when the layer was emptied,
        # its nodes packed while SQLite rebuilds the plain indexes
        ws._fill_rtree(con, lyr, indexed, meanwhile=lambda: ws._bulk_end(con, restore))
    else:
        ws._bulk_end(con, restore)
    _record(ws, con, key, meta())


def _update_into(ws: Any, con: Any, lyr: Layer, frames: Iterator[tuple[pd.DataFrame, Any]], *, bar: Any) -> None:
    """``--update``: each batch's rows whose id is present are rewritten in place, the rest added.

    The backends' own update (``_update_rows``) keeps every row other layers refer to,
    where a replace must delete them first and is refused (a corrected ``projects``
    file once runs and meetings name its projects). Rows the source does not name stay.
    """
    for df, _wkb in frames:
        new = ws._update_rows(con, lyr, df)
        bar.update(len(df) - len(new))
        if ws.kind == "postgis":
            ws._copy(con, lyr, new, bar)
        else:
            ws._insert(con, lyr, new, bar)


def _record(ws: Any, con: Any, key: str, value: str) -> None:
    """Record *key* in the workspace's metadata inside the load's transaction."""
    if ws.kind == "postgis":
        import sqlalchemy as sa

        con.execute(
            sa.text(
                f'INSERT INTO "{ws.schema}".landquota_meta (key, value) VALUES (:k, :v) '
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
            ),
            {"k": key, "v": value},
        )
    else:
        from landquota.store.gpkg import META_UPSERT

        con.execute(META_UPSERT, (key, value))


def _mark_stale(ws: Workspace, con: Any) -> None:
    """Mark validation stale in the load's transaction: ``validate`` must run before allocation."""
    _record(ws, con, "validation.state", "stale")

"""The GeoPackage backend: one ``.gpkg`` file, no server.

Design (see ``docs/workspace.md``):

* The file is a standard GeoPackage 1.2 that GDAL and QGIS open as it is: every
  spatial layer is registered in ``gpkg_contents``/``gpkg_geometry_columns``
  with EPSG:4490 and an R-tree index (``gpkg_rtree_index`` extension); tables
  without geometry are registered as ``attributes``.
* Tables are created by us, not by GDAL, so that they carry the contract's
  CHECK constraints (codes, ranges), UNIQUE ids, foreign keys and the
  append-only triggers of the ledger: the file enforces the contract even when
  another program writes to it.
* Bulk reads go through pyogrio with Arrow (GDAL's reader, the fastest here).
* Writes go through SQLite directly, in ONE transaction per call: GDAL commits
  a layer in batches and recreates it outside any transaction on overwrite, so a
  killed process could leave a half-written layer. SQLite's rollback journal
  makes a killed writer harmless, and ``BEGIN IMMEDIATE`` plus a busy timeout
  makes two writers queue instead of corrupting the file.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import struct
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import pyogrio
import shapely
from pyproj import CRS
from shapely.geometry.base import BaseGeometry

from landquota._wkb import bounds as wkb_bounds
from landquota.errors import ConcurrencyError, DataError, LedgerError, WorkspaceError
from landquota.store.chain import POOL_OF_COLUMN, RUN_TOLERANCE, new_links
from landquota.store.ledger_check import LEDGER_CHECK_COLUMNS, NEG_TOL, check_ledger
from landquota.store.partials import clean_stale, temp_name
from landquota.store.schema import CRS_EPSG, LAYERS, META, SCHEMA_VERSION, Column, Layer
from landquota.store.workspace import (
    BBox,
    Frame,
    RunTransition,
    Where,
    Workspace,
    WriteMode,
    binary_array,
    coerce_frame,
    os_user,
    prepare_frame,
    where_to_sql,
)

GEOM = "geom"
_APPLICATION_ID = 0x47504B47  # "GPKG"
_USER_VERSION = 10200  # GeoPackage 1.2
_BUSY_TIMEOUT_S = 60.0

_SQL_TYPES = {
    "text": "TEXT",
    "json": "TEXT",
    "real": "REAL",
    "integer": "INTEGER",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "datetime": "DATETIME",
}


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(value: Any) -> str:
    """Return an SQL literal for pyogrio's ``where`` (which takes no parameters)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, float, np.integer, np.floating)):
        return repr(float(value)) if isinstance(value, (float, np.floating)) else str(int(value))
    return "'" + str(value).replace("'", "''") + "'"


def _column_ddl(lyr: Layer, col: Column) -> str:
    parts = [_q(col.name), _SQL_TYPES[col.type]]
    if not col.nullable:
        parts.append("NOT NULL")
    if col.unique:
        parts.append("UNIQUE")
    checks = []
    if col.codes is not None:
        checks.append(f"{_q(col.name)} IN ({', '.join(_lit(c) for c in col.codes)})")
    if col.minimum is not None:
        checks.append(f"{_q(col.name)} >= {col.minimum!r}")
    if col.maximum is not None:
        checks.append(f"{_q(col.name)} <= {col.maximum!r}")
    if col.type == "boolean":
        checks.append(f"{_q(col.name)} IN (0, 1)")
    if checks:
        cond = " AND ".join(checks)
        parts.append(f"CHECK ({_q(col.name)} IS NULL OR ({cond}))")
    if col.references:
        t, c = col.references.split(".")
        parts.append(f"REFERENCES {_q(t)}({_q(c)})")
    return " ".join(parts)


def meta_table_ddl(name: str = META.name) -> str:
    """``CREATE TABLE`` of :data:`landquota.store.schema.META`: an INTEGER ``fid`` key (req. 119)."""
    cols = ["fid INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL"]
    cols += [_column_ddl(META, c) for c in META.columns]
    return f"CREATE TABLE {_q(name)} ({', '.join(cols)})"


#: Set one metadata value (the key is unique; its fid stays when the value changes).
META_UPSERT = (
    "INSERT INTO landquota_meta (key, value) VALUES (?, ?) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)


def _rtree_triggers(t: str) -> list[str]:
    """Return the R-tree maintenance triggers of the GeoPackage 1.2 spec (annex F.3)."""
    r, g, i = f"rtree_{t}_{GEOM}", GEOM, "fid"
    vals = f"NEW.{i}, ST_MinX(NEW.{g}), ST_MaxX(NEW.{g}), ST_MinY(NEW.{g}), ST_MaxY(NEW.{g})"
    return [
        f'CREATE TRIGGER "{r}_insert" AFTER INSERT ON "{t}" WHEN (new.{g} NOT NULL AND NOT '
        f'ST_IsEmpty(NEW.{g})) BEGIN INSERT OR REPLACE INTO "{r}" VALUES ({vals}); END',
        f'CREATE TRIGGER "{r}_update1" AFTER UPDATE OF {g} ON "{t}" WHEN OLD.{i} = NEW.{i} AND '
        f'(NEW.{g} NOTNULL AND NOT ST_IsEmpty(NEW.{g})) BEGIN INSERT OR REPLACE INTO "{r}" '
        f"VALUES ({vals}); END",
        f'CREATE TRIGGER "{r}_update2" AFTER UPDATE OF {g} ON "{t}" WHEN OLD.{i} = NEW.{i} AND '
        f'(NEW.{g} ISNULL OR ST_IsEmpty(NEW.{g})) BEGIN DELETE FROM "{r}" WHERE id = OLD.{i}; END',
        f'CREATE TRIGGER "{r}_update3" AFTER UPDATE ON "{t}" WHEN OLD.{i} != NEW.{i} AND '
        f'(NEW.{g} NOTNULL AND NOT ST_IsEmpty(NEW.{g})) BEGIN DELETE FROM "{r}" WHERE id = '
        f'OLD.{i}; INSERT OR REPLACE INTO "{r}" VALUES ({vals}); END',
        f'CREATE TRIGGER "{r}_update4" AFTER UPDATE ON "{t}" WHEN OLD.{i} != NEW.{i} AND '
        f'(NEW.{g} ISNULL OR ST_IsEmpty(NEW.{g})) BEGIN DELETE FROM "{r}" WHERE id IN '
        f"(OLD.{i}, NEW.{i}); END",
        f'CREATE TRIGGER "{r}_delete" AFTER DELETE ON "{t}" WHEN old.{g} NOT NULL BEGIN '
        f'DELETE FROM "{r}" WHERE id = OLD.{i}; END',
    ]


_LEDGER_TRIGGERS = [
    # The ledger is history (data contract; R6): corrections are reversal entries.
    "CREATE TRIGGER quota_ledger_no_update BEFORE UPDATE ON quota_ledger BEGIN "
    "SELECT RAISE(ABORT, 'quota_ledger is append-only: write a reversal entry instead of "
    "changing one'); END",
    "CREATE TRIGGER quota_ledger_no_delete BEFORE DELETE ON quota_ledger BEGIN "
    "SELECT RAISE(ABORT, 'quota_ledger is append-only: write a reversal entry instead of "
    "deleting one'); END",
]

# R6 in the file itself, on RUNNING balances by effective date: SQLite serialises
# writers, so a check after each row is enough. A debit dated before the credit it
# needs leaves the balance negative on the days between them and is refused, not
# only an overdraft of the all-time total (one day's entries are summed first, as
# in landquota.rules.ledger.check_nonnegative).
_R6_TRIGGER = (
    "CREATE TRIGGER quota_ledger_r6 AFTER INSERT ON quota_ledger WHEN (SELECT min(running) "
    "FROM (SELECT effective_date AS d, sum(total(amount)) OVER (ORDER BY effective_date) AS "
    "running FROM quota_ledger WHERE pool = NEW.pool AND year = NEW.year GROUP BY "
    f"effective_date) WHERE d >= NEW.effective_date) < -{NEG_TOL!r} BEGIN "
    "SELECT RAISE(ABORT, 'R6: this entry would make a quota balance negative on some date "
    "(running balance by effective date)'); END"
)


def _debits_mismatch(run: str) -> str:
    """Return SQL that is true when the run's debits per pool differ from its allocations."""
    parts = [
        f"SELECT '{pool}' AS pool, total({col}) AS need FROM allocations WHERE run_id = {run}"
        for col, pool in POOL_OF_COLUMN.items()
    ]
    return (
        f"EXISTS (SELECT 1 FROM ({' UNION ALL '.join(parts)}) e WHERE abs(e.need + (SELECT "
        f"total(amount) FROM quota_ledger l WHERE l.run_id = {run} AND l.kind = 'allocation' "
        f"AND l.pool = e.pool)) > {RUN_TOLERANCE!r})"
    )


_RUN_FIXED = [c.name for c in LAYERS["allocation_runs"].columns if not c.name.startswith("status")]

#: The chain, the run life cycle and the write stamps (schema version 2).
_CHAIN_TRIGGERS = [
    "CREATE TRIGGER ledger_chain_no_update BEFORE UPDATE ON ledger_chain BEGIN "
    "SELECT RAISE(ABORT, 'ledger_chain is append-only: the chain is history'); END",
    "CREATE TRIGGER ledger_chain_no_delete BEFORE DELETE ON ledger_chain BEGIN "
    "SELECT RAISE(ABORT, 'ledger_chain is append-only: the chain is history'); END",
    # The run life cycle (draft -> committed -> reverted) in the file: a status changes
    # only with its ledger entries already written in the same transaction, and
    # nothing else of a run ever changes.
    "CREATE TRIGGER allocation_runs_lifecycle BEFORE UPDATE ON allocation_runs BEGIN "
    "SELECT RAISE(ABORT, 'run life cycle: a run changes only draft -> committed -> reverted, "
    "and only its status (landquota commit / revert)') WHERE "
    + " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in _RUN_FIXED)
    + " OR NOT (NEW.status = OLD.status OR (OLD.status = 'draft' AND NEW.status = 'committed') "
    "OR (OLD.status = 'committed' AND NEW.status = 'reverted')); "
    "SELECT RAISE(ABORT, 'run life cycle: a run is committed only together with exactly its "
    "debits (landquota commit)') WHERE OLD.status = 'draft' AND NEW.status = 'committed' AND ("
    + _debits_mismatch("NEW.run_id")
    + " OR EXISTS (SELECT 1 FROM quota_ledger r WHERE r.run_id = NEW.run_id AND r.kind = "
    "'reversal')); "
    "SELECT RAISE(ABORT, 'run life cycle: a run is reverted only together with the reversal "
    "of each of its debits (landquota revert)') WHERE OLD.status = 'committed' AND NEW.status "
    "= 'reverted' AND EXISTS (SELECT 1 FROM quota_ledger d WHERE d.run_id = NEW.run_id AND "
    "d.kind = 'allocation' AND NOT EXISTS (SELECT 1 FROM quota_ledger r WHERE r.kind = "
    "'reversal' AND r.reverses = d.entry_id)); END",
    "CREATE TRIGGER allocation_runs_no_delete BEFORE DELETE ON allocation_runs WHEN "
    "OLD.status <> 'draft' BEGIN SELECT RAISE(ABORT, 'run life cycle: a committed or reverted "
    "run is history and is never deleted'); END",
    "CREATE TRIGGER allocations_no_update BEFORE UPDATE ON allocations WHEN (SELECT status "
    "FROM allocation_runs WHERE run_id = OLD.run_id) <> 'draft' BEGIN SELECT RAISE(ABORT, "
    "'the allocations of a committed or reverted run never change'); END",
    "CREATE TRIGGER allocations_no_delete BEFORE DELETE ON allocations WHEN (SELECT status "
    "FROM allocation_runs WHERE run_id = OLD.run_id) <> 'draft' BEGIN SELECT RAISE(ABORT, "
    "'the allocations of a committed or reverted run never change'); END",
    # What a file can stamp about a write made by any client: the time it happened.
    # (SQLite has no users; `landquota verify` names it for rows outside the chain.)
    "CREATE TABLE landquota_writes (fid INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, entry_id "
    "TEXT NOT NULL, written_at TEXT NOT NULL)",
    "INSERT INTO gpkg_contents (table_name, data_type, identifier, description) VALUES "
    "('landquota_writes', 'attributes', 'landquota_writes', 'when each ledger entry was "
    "written (stamped by a trigger)')",
    "CREATE TRIGGER quota_ledger_write_stamp AFTER INSERT ON quota_ledger BEGIN INSERT INTO "
    "landquota_writes (entry_id, written_at) VALUES (NEW.entry_id, "
    "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')); END",
]


def _envelope(blob: bytes | None, idx: int) -> float | None:
    """ST_MinX & co. for a GPKG blob, for the spec's R-tree triggers.

    GDAL registers these functions itself; plain SQLite does not, so a write through
    another SQLite client would otherwise fail on the triggers.
    """
    if blob is None:
        return None
    g = _from_blob(blob)
    if g is None or g.is_empty:
        return None
    return float(g.bounds[(0, 2, 1, 3)[idx]])


def _is_empty(blob: bytes | None) -> int | None:
    if blob is None:
        return None
    flags = blob[3]
    return 1 if flags & 0b10000 else 0


def _from_blob(blob: bytes) -> BaseGeometry | None:
    flags = blob[3]
    env = (flags >> 1) & 0b111
    n = {0: 0, 1: 4, 2: 6, 3: 6, 4: 8}[env]
    return shapely.from_wkb(blob[8 + 8 * n :])


#: from this many rows on, an empty R-tree is bulk-loaded instead of filled row by row
BULK_RTREE_ROWS = 1_000
#: Page cache (KiB) of a large import's transaction: the UNIQUE id index of 10^6 rows stays
#: in memory instead of spilling (SQLite's default is 2,000 KiB). Memory, not durability.
BULK_CACHE_KIB = 131_072

# SQLite's rtree module stores 32-bit floats rounded outwards (rtree.c, RNDTOWARDS and
# RNDAWAY): a minimum never above the true value, a maximum never below it.
_RND_TOWARDS = 1.0 - 1.0 / 8388608.0
_RND_AWAY = 1.0 + 1.0 / 8388608.0


def _f32_down(d: np.ndarray) -> np.ndarray:
    f = d.astype(np.float32)
    over = f.astype(np.float64) > d
    f[over] = (d[over] * np.where(d[over] < 0, _RND_AWAY, _RND_TOWARDS)).astype(np.float32)
    return f


def _f32_up(d: np.ndarray) -> np.ndarray:
    f = d.astype(np.float32)
    under = f.astype(np.float64) < d
    f[under] = (d[under] * np.where(d[under] < 0, _RND_TOWARDS, _RND_AWAY)).astype(np.float32)
    return f


def _str_order(boxes: np.ndarray, m: int) -> np.ndarray:
    """Sort-Tile-Recursive order of boxes (minx, maxx, miny, maxy): tiles of m in x, then y."""
    n = len(boxes)
    cx = (boxes[:, 0] + boxes[:, 1]) / 2
    cy = (boxes[:, 2] + boxes[:, 3]) / 2
    slices = max(1, int(np.ceil(np.sqrt(np.ceil(n / m)))))
    per_slice = slices * m
    by_x = np.argsort(cx, kind="stable")
    slice_of = np.empty(n, dtype=np.int64)
    slice_of[by_x] = np.arange(n) // per_slice
    return np.lexsort((cy, slice_of))


def bulk_load_rtree(con: sqlite3.Connection, rtree: str, ids: np.ndarray, bounds: np.ndarray) -> None:
    """Write an EMPTY 2D SQLite R-tree as packed nodes, as GDAL ≥ 3.7 does for GeoPackages.

    :func:`pack_rtree` computes the nodes (no database work: it may run on another
    thread, see :meth:`GpkgWorkspace._fill_rtree`), :func:`write_rtree` stores them.
    """
    write_rtree(con, rtree, pack_rtree(rtree_node_size(con, rtree), ids, bounds))


def rtree_node_size(con: sqlite3.Connection, rtree: str) -> int:
    """Return the byte size of *rtree*'s nodes (its root node's blob)."""
    (size,) = con.execute(f'SELECT length(data) FROM "{rtree}_node" WHERE nodeno = 1').fetchone()
    return int(size)


@dataclass
class PackedRtree:
    """An R-tree's rows, made by :func:`pack_rtree` for :func:`write_rtree`."""

    nodes: list[tuple[int, bytes]]
    parents: list[tuple[int, int]]
    #: (row id, leaf node) in row id order
    rowids: np.ndarray
    leaves: np.ndarray


def pack_rtree(size: int, ids: np.ndarray, bounds: np.ndarray) -> PackedRtree:
    """Pack an R-tree of *ids* and their *bounds* into SQLite's node blobs (see :func:`bulk_load_rtree`).

    The node format is SQLite's (rtree.c): a blob of the table's node size per
    node, starting with the tree depth (root only) and the cell count as
    big-endian 16-bit integers, then cells of a big-endian 64-bit id (the row id
    in leaves, the child node number above) and the box as big-endian float32
    (minx, maxx, miny, maxy) rounded outwards. Node 1 is the root; the
    ``_rowid`` and ``_parent`` shadow tables map rows and nodes to their parents.
    Leaves are packed in Sort-Tile-Recursive order, so the tree's boxes overlap
    little. ``SELECT rtreecheck(...)`` accepts the result (tested).

    *bounds* are shapely's (minx, miny, maxx, maxy) per id.
    """
    cell = 8 + 4 * 4
    m = (size - 4) // cell
    ids = np.asarray(ids, dtype=np.int64)
    boxes = np.column_stack(
        [_f32_down(bounds[:, 0]), _f32_up(bounds[:, 2]), _f32_down(bounds[:, 1]), _f32_up(bounds[:, 3])]
    )
    cell_dtype = np.dtype([("id", ">i8"), ("box", ">f4", (4,))])
    levels: list[tuple[np.ndarray, np.ndarray]] = []  # per level: cells (in node order), node sizes
    entry_ids, entry_boxes = ids, boxes
    while True:
        order = _str_order(entry_boxes.astype(np.float64), m)
        entry_ids, entry_boxes = entry_ids[order], entry_boxes[order]
        n_nodes = max(1, int(np.ceil(len(entry_ids) / m)))
        counts = np.full(n_nodes, m)
        counts[-1] = len(entry_ids) - m * (n_nodes - 1)
        cells = np.empty(len(entry_ids), dtype=cell_dtype)
        cells["id"] = entry_ids
        cells["box"] = entry_boxes
        levels.append((cells, counts))
        if n_nodes == 1:
            break
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        node_boxes = np.column_stack(
            [
                np.minimum.reduceat(entry_boxes[:, 0], starts),
                np.maximum.reduceat(entry_boxes[:, 1], starts),
                np.minimum.reduceat(entry_boxes[:, 2], starts),
                np.maximum.reduceat(entry_boxes[:, 3], starts),
            ]
        )
        entry_ids = np.arange(n_nodes, dtype=np.int64)  # provisional: numbered below
        entry_boxes = node_boxes
    # Number the nodes: root 1, then level by level downwards. A level's cells hold the
    # provisional index of the child node in the level below; map them to node numbers.
    depth = len(levels) - 1
    numbers: list[np.ndarray] = [np.empty(0, dtype=np.int64)] * len(levels)
    nxt = 1
    for lv in range(depth, -1, -1):
        k = len(levels[lv][1])
        numbers[lv] = np.arange(nxt, nxt + k, dtype=np.int64)
        nxt += k
    node_rows: list[tuple[int, bytes]] = []
    parent_rows: list[tuple[int, int]] = []
    rowids = leaves = np.empty(0, dtype=np.int64)
    for lv in range(depth, -1, -1):
        cells, counts = levels[lv]
        if lv > 0:
            child_numbers = numbers[lv - 1]
            cells = cells.copy()
            cells["id"] = child_numbers[cells["id"].astype(np.int64)]
        raw = cells.tobytes()
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        node_of_cell = np.repeat(numbers[lv], counts)
        if lv > 0:
            parent_rows += zip(cells["id"].astype(np.int64).tolist(), node_of_cell.tolist(), strict=True)
        else:
            # in row id order: SQLite appends to the _rowid table's B-tree instead of
            # inserting at random places (10^6 rows: about half the time)
            ids = cells["id"].astype(np.int64)
            by_id = np.argsort(ids, kind="stable")
            rowids, leaves = ids[by_id], node_of_cell[by_id]
        for no, start, cnt in zip(numbers[lv].tolist(), starts.tolist(), counts.tolist(), strict=True):
            head = (depth if no == 1 else 0).to_bytes(2, "big") + int(cnt).to_bytes(2, "big")
            body = raw[start * cell : (start + cnt) * cell]
            node_rows.append((no, head + body + bytes(size - 4 - len(body))))
    return PackedRtree(node_rows, parent_rows, rowids, leaves)


def _has_json(con: sqlite3.Connection) -> bool:
    # SQLite has JSON built in since 3.38 unless compiled without it
    try:
        con.execute("SELECT count(*) FROM json_each('[1]')").fetchone()
    except sqlite3.OperationalError:
        return False
    return True


def write_rtree(con: sqlite3.Connection, rtree: str, packed: PackedRtree) -> None:
    """Store a packed R-tree in the EMPTY R-tree *rtree* (inside the caller's transaction)."""
    con.execute(f'DELETE FROM "{rtree}_node"')
    con.execute(f'DELETE FROM "{rtree}_parent"')
    con.execute(f'DELETE FROM "{rtree}_rowid"')
    con.executemany(f'INSERT INTO "{rtree}_node" (nodeno, data) VALUES (?, ?)', packed.nodes)
    con.executemany(f'INSERT INTO "{rtree}_parent" (nodeno, parentnode) VALUES (?, ?)', packed.parents)
    ids, leaves = packed.rowids, packed.leaves
    if len(ids) and int(ids[-1]) - int(ids[0]) == len(ids) - 1 and _has_json(con):
        # consecutive row ids (a bulk load's): one statement reads the leaves as a JSON
        # array, row id = first + position, where executemany binds 10^6 pairs one by
        # one (0.23 s against 0.66 s, issue 18); integers, so nothing is rounded
        con.execute(
            f'INSERT INTO "{rtree}_rowid" (rowid, nodeno) SELECT key + ?, value FROM json_each(?)',
            (int(ids[0]), "[" + ",".join(map(str, leaves.tolist())) + "]"),
        )
    else:
        con.executemany(f'INSERT INTO "{rtree}_rowid" (rowid, nodeno) VALUES (?, ?)',
                        zip(ids.tolist(), leaves.tolist(), strict=True))


#: GeoPackage blob header with an xy envelope, little-endian (spec 2.1.3): magic, version,
#: flags (envelope 1 = xy, byte order 1), srs id, then minx, maxx, miny, maxy
_GP_HEADER = np.dtype([("magic", "S2"), ("version", "u1"), ("flags", "u1"), ("srs", "<i4"), ("env", "<f8", (4,))])
_ISO_MULTIPOLYGON = b"\x01\x06\x00\x00\x00"  # little-endian ISO WKB, 2D MultiPolygon


def to_blobs(geoms: np.ndarray, wkb: Any = None, bounds: np.ndarray | None = None) -> list[bytes | None]:
    """Encode geometries as GeoPackage blobs (header with xy envelope + ISO WKB).

    *wkb*, the source's own WKB of the same geometries (an import's batch stored as
    read; bytes objects or an Arrow binary array), is used when every one is a little-endian ISO 2D MultiPolygon: the headers
    are then built as one array and joined to the WKB by Arrow, with no Python work per
    row (issue 18: the per-row encoding was 5.8 s of a 10^6-row import). The bytes are
    the same as encoding the geometries (tested). *bounds* may pass ``shapely.bounds``.
    """
    n = len(geoms)
    if n and wkb is not None and len(wkb) == n:
        import pyarrow as pa
        import pyarrow.compute as pc

        given = binary_array(wkb)
        head = pa.scalar(_ISO_MULTIPOLYGON, pa.binary())
        if given.null_count == 0 and pc.all(pc.equal(pc.binary_slice(given, 0, 5), head)).as_py():
            b = shapely.bounds(geoms) if bounds is None else bounds
            hdr = np.zeros(n, dtype=_GP_HEADER)
            hdr["magic"], hdr["flags"], hdr["srs"] = b"GP", 0b11, CRS_EPSG
            hdr["env"] = b[:, [0, 2, 1, 3]]
            if not np.isnan(hdr["env"]).any():  # NaN: an empty geometry, which needs the other header
                heads = pa.FixedSizeBinaryArray.from_buffers(
                    pa.binary(_GP_HEADER.itemsize), n, [None, pa.py_buffer(hdr.tobytes())]
                ).cast(pa.binary())
                joined = pc.binary_join_element_wise(heads, given, pa.scalar(b"", pa.binary()))
                return cast(list[bytes | None], joined.to_numpy(zero_copy_only=False).tolist())
    out: list[bytes | None] = [None] * len(geoms)
    if n and wkb is not None and len(wkb) == n and shapely.is_missing(geoms).all():
        # the WKB stands for geometries that were never decoded (an importer's valid
        # batch): decode it, never write it as missing
        geoms = shapely.from_wkb(np.asarray(binary_array(wkb).to_numpy(zero_copy_only=False), dtype=object))
    present = ~shapely.is_missing(geoms)
    if not present.any():
        return out
    g = geoms[present]
    wkb = shapely.to_wkb(g, byte_order=1, flavor="iso", output_dimension=2)
    bounds = shapely.bounds(g)
    empty = shapely.is_empty(g)
    pack = struct.Struct("<2sBBi4d").pack
    idx = np.flatnonzero(present)
    for k, (i, w, b, e) in enumerate(zip(idx, wkb, bounds, empty, strict=True)):
        if e:
            out[i] = struct.pack("<2sBBi", b"GP", 0, 0b10001, CRS_EPSG) + w
        else:
            out[i] = pack(b"GP", 0, 0b11, CRS_EPSG, b[0], b[2], b[1], b[3]) + w
        del k
    return out


@dataclass
class InsertPlan:
    """How a layer's rows are inserted: made by :meth:`GpkgWorkspace._insert_begin`.

    Rows go in *block* at a time, in one multi-row ``INSERT … VALUES (…), (…)``
    statement: the GIL is given up and taken back once per statement rather than
    once per row (``executemany`` releases it around each SQLite step), which
    matters when another thread is building the next batch (issue 18), and SQLite
    runs one statement per block instead of per row. The last rows of a batch use
    the one-row statement.
    """

    one: str
    many: str
    block: int
    first_fid: int


@dataclass
class InsertRows:
    """A frame's rows as SQLite parameters, ready for :meth:`GpkgWorkspace._insert_run`.

    Built by :func:`insert_rows`, which needs no connection: a bulk import builds
    the next batch's on a thread of its own while SQLite inserts this one
    (``landquota.intake.load``, issue 18).
    """

    #: the parameters of whole blocks (block × columns values each), then of single rows
    blocks: list[list[Any]]
    single: list[list[Any]]
    n: int
    #: fids and (minx, miny, maxx, maxy) of the rows with a non-empty geometry (spatial layers)
    fids: np.ndarray | None
    bounds: np.ndarray | None


#: rows whose Python values :meth:`GpkgWorkspace._insert` makes at once
INSERT_ROWS = 50_000
#: rows per multi-row INSERT statement (fewer when the columns would pass SQLite's
#: limit on bound parameters; 999 in builds before 3.32)
INSERT_BLOCK = 100


def insert_rows(lyr: Layer, df: Frame, fid0: int, wkb: Any = None, *, block: int = 1) -> InsertRows:
    """Turn a canonical frame into :class:`InsertRows` with fids from *fid0* (see :func:`to_blobs` for *wkb*)."""
    cols = list(lyr.column_names)
    n = len(df)
    geoms = np.asarray(df.geometry.values, dtype=object) if lyr.geometry else np.empty(0, dtype=object)
    # the source's WKB, when given, is the geometries' own; an importer may not have
    # decoded them at all (landquota.intake.convert._decode): then the envelopes are
    # read from the WKB, otherwise from the geometries (no second decoding)
    if wkb is not None and lyr.geometry and len(wkb) == n:
        wkb = binary_array(wkb)
    undecoded = wkb is not None and len(wkb) == n and n > 0 and bool(shapely.is_missing(geoms).all())
    bounds = wkb_bounds(wkb) if undecoded else shapely.bounds(geoms)
    values = np.empty((n, 1 + len(cols) + (1 if lyr.geometry else 0)), dtype=object)
    values[:, 0] = np.arange(fid0, fid0 + n).tolist()
    for j, c in enumerate(cols, start=1):
        values[:, j] = _py_values(lyr.column(c), df[c])
    if lyr.geometry:
        values[:, -1] = to_blobs(geoms, wkb, bounds)
    whole = n // block * block if block > 1 else 0
    # a block's parameters are its rows' values one after the other: a reshape, in C
    blocks = values[:whole].reshape(-1, block * values.shape[1]).tolist() if whole else []
    single = values[whole:].tolist()
    if not lyr.geometry:
        return InsertRows(blocks, single, n, None, None)
    # missing and empty geometries have NaN bounds (and only they: NaN coordinates are
    # invalid, refused before any write): no GEOS pass over the batch to find them
    ok = ~np.isnan(bounds[:, 0])
    return InsertRows(blocks, single, n, np.arange(fid0, fid0 + n)[ok], bounds[ok])


def _py_values(col: Column, s: pd.Series) -> list[Any]:
    """Return a column as the Python values SQLite stores the GeoPackage way.

    ``tolist`` makes the Python values in one pass (no object array copied first):
    a bulk import builds these on a thread beside SQLite's inserts, whose GIL
    hand-offs this keeps short.
    """
    na = s.isna().to_numpy()
    vals: np.ndarray
    if col.type in ("text", "json"):
        vals = s.to_numpy(dtype=object)
    elif col.type == "real":
        vals = s.to_numpy(dtype="float64", na_value=np.nan)
    elif col.type == "integer":
        vals = s.astype("float64").to_numpy()
        vals = np.array([None if v != v else int(v) for v in vals.tolist()], dtype=object)
    elif col.type == "boolean":
        vals = s.astype("int64").to_numpy()
    elif col.type == "date":
        vals = s.dt.strftime("%Y-%m-%d").to_numpy(dtype=object)
    else:  # datetime, UTC, millisecond precision as GDAL writes it
        vals = (
            s.dt.strftime("%Y-%m-%dT%H:%M:%S.%f").str.slice(0, 23).add("Z").to_numpy(dtype=object)
        )
    if na.any():
        vals = vals.astype(object)  # a copy: the Series' own buffer is not written
        vals[na] = None
    out: list[Any] = vals.tolist()
    return out


def _rollback(con: sqlite3.Connection) -> None:
    # After SQLITE_FULL or an I/O error SQLite may already have rolled back
    # ("cannot rollback - no transaction is active"): then there is nothing to do.
    if con.in_transaction:
        with contextlib.suppress(sqlite3.Error):  # the hot journal rolls back on the next open
            con.execute("ROLLBACK")


def _write_error(target: str, exc: sqlite3.Error) -> WorkspaceError | None:
    """One line for a write the file system refused (read-only, full), or None for other errors."""
    name = str(getattr(exc, "sqlite_errorname", "") or "")
    text = str(exc)
    if name.startswith("SQLITE_READONLY") or "readonly" in text:
        cause, fix = "the file or its folder is read-only", "ask for write access, or work on a copy"
    elif name == "SQLITE_FULL" or "is full" in text:
        cause, fix = "the disk is full", "free some space and run it again"
    elif name.startswith("SQLITE_IOERR") or "disk I/O error" in text:
        cause = "the disk refused the write (a full disk, a file-size limit or a failing disk)"
        fix = "free some space or check the disk, then run it again"
    elif name.startswith("SQLITE_CANTOPEN") or "unable to open" in text:
        cause = "SQLite cannot create its files there (is the folder writable?)"
        fix = "ask for write access to the folder, or work on a copy"
    else:
        return None
    return WorkspaceError(f"cannot write {target!r}: {cause} (SQLite: {text}); nothing was changed — {fix}")


class GpkgWorkspace(Workspace):
    """A workspace in one GeoPackage file."""

    kind = "gpkg"

    def __init__(self, path: Path, *, create: bool = False) -> None:
        self.path = Path(path)
        self.target = str(self.path)
        #: R-tree triggers dropped by a bulk insert, put back by _fill_rtree (same transaction)
        self._dropped_triggers: dict[str, dict[str, str]] = {}
        self._cache_size: int | None = None  # the page cache to restore after a large import
        # the temporary files of a killed init/export/restore in this folder (issue 12)
        clean_stale(self.path.parent if str(self.path.parent) else Path("."))
        if not self.path.exists():
            if not create:
                raise WorkspaceError(
                    f"workspace {str(self.path)!r} does not exist; create it with "
                    f"`landquota init --db {self.path}` or build the demo with `landquota demo`"
                )
            self._create()
        self._con = self._connect()
        self._check_is_workspace()

    # --- connection ----------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(str(self.path), timeout=_BUSY_TIMEOUT_S, isolation_level=None)
        con.execute("PRAGMA foreign_keys = ON")
        for fname, fn in (
            ("ST_MinX", lambda b: _envelope(b, 0)),
            ("ST_MaxX", lambda b: _envelope(b, 1)),
            ("ST_MinY", lambda b: _envelope(b, 2)),
            ("ST_MaxY", lambda b: _envelope(b, 3)),
            ("ST_IsEmpty", _is_empty),
        ):
            con.create_function(fname, 1, fn, deterministic=True)
        return con

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; waits for other writers (busy timeout), never overlaps them."""
        con = self._con
        try:
            con.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            err = _write_error(self.target, exc)
            if err is not None:
                raise err from exc
            raise ConcurrencyError(
                f"workspace {self.target!r} is being written by another process and stayed "
                f"locked for {_BUSY_TIMEOUT_S:.0f} s; try again when it has finished ({exc})"
            ) from exc
        try:
            try:
                yield con
            except sqlite3.Error as exc:
                _rollback(con)
                err = _write_error(self.target, exc)
                if err is None:
                    raise
                raise err from exc
            except BaseException:
                _rollback(con)
                raise
            try:
                con.execute("COMMIT")
            except sqlite3.Error as exc:  # a full disk can refuse the commit itself
                _rollback(con)
                err = _write_error(self.target, exc)
                if err is None:
                    raise
                raise err from exc
        finally:
            if self._cache_size is not None:  # a large import grew it (_bulk_start)
                con.execute(f"PRAGMA cache_size = {self._cache_size}")
                self._cache_size = None

    def close(self) -> None:
        """Close the SQLite connection."""
        con = getattr(self, "_con", None)
        if con is not None:
            con.close()
            self._con = None  # type: ignore[assignment]

    def user(self) -> str:
        """Return the operating-system login: a GeoPackage has no users of its own."""
        return os_user()

    # --- creation ------------------------------------------------------------
    def _create(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Build under a temporary name and rename: a killed `init` leaves no half file.
        tmp = temp_name(self.path, "tmp")
        tmp.unlink(missing_ok=True)
        try:
            con = sqlite3.connect(str(tmp), isolation_level=None)
            try:
                con.execute(f"PRAGMA application_id = {_APPLICATION_ID}")
                con.execute(f"PRAGMA user_version = {_USER_VERSION}")
                con.execute("BEGIN")
                for stmt in self._ddl():
                    con.execute(stmt)
                con.execute("COMMIT")
            finally:
                con.close()
            os.replace(tmp, self.path)
        except sqlite3.Error as exc:
            err = _write_error(str(self.path), exc)
            if err is None:
                raise
            raise err from exc
        finally:
            for p in (tmp, tmp.with_name(tmp.name + "-journal")):
                p.unlink(missing_ok=True)

    @staticmethod
    def _ddl() -> list[str]:
        from landquota._version import __version__

        wkt4490 = CRS.from_epsg(CRS_EPSG).to_wkt("WKT1_GDAL")
        wkt4326 = CRS.from_epsg(4326).to_wkt("WKT1_GDAL")
        s = [
            "CREATE TABLE gpkg_spatial_ref_sys (srs_name TEXT NOT NULL, srs_id INTEGER PRIMARY KEY, "
            "organization TEXT NOT NULL, organization_coordsys_id INTEGER NOT NULL, "
            "definition TEXT NOT NULL, description TEXT)",
            "INSERT INTO gpkg_spatial_ref_sys VALUES ('Undefined cartesian SRS', -1, 'NONE', -1, "
            "'undefined', 'undefined cartesian coordinate reference system')",
            "INSERT INTO gpkg_spatial_ref_sys VALUES ('Undefined geographic SRS', 0, 'NONE', 0, "
            "'undefined', 'undefined geographic coordinate reference system')",
            f"INSERT INTO gpkg_spatial_ref_sys VALUES ('WGS 84 geodetic', 4326, 'EPSG', 4326, "
            f"{_lit(wkt4326)}, 'longitude/latitude coordinates in decimal degrees on the WGS 84 "
            "spheroid')",
            f"INSERT INTO gpkg_spatial_ref_sys VALUES ('China Geodetic Coordinate System 2000', "
            f"{CRS_EPSG}, 'EPSG', {CRS_EPSG}, {_lit(wkt4490)}, 'CGCS2000 geographic')",
            "CREATE TABLE gpkg_contents (table_name TEXT NOT NULL PRIMARY KEY, data_type TEXT NOT "
            "NULL, identifier TEXT UNIQUE, description TEXT DEFAULT '', last_change DATETIME NOT "
            "NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')), min_x DOUBLE, min_y DOUBLE, "
            "max_x DOUBLE, max_y DOUBLE, srs_id INTEGER, CONSTRAINT fk_gc_r_srs_id FOREIGN KEY "
            "(srs_id) REFERENCES gpkg_spatial_ref_sys(srs_id))",
            "CREATE TABLE gpkg_geometry_columns (table_name TEXT NOT NULL, column_name TEXT NOT "
            "NULL, geometry_type_name TEXT NOT NULL, srs_id INTEGER NOT NULL, z TINYINT NOT NULL, "
            "m TINYINT NOT NULL, CONSTRAINT pk_geom_cols PRIMARY KEY (table_name, column_name), "
            "CONSTRAINT uk_gc_table_name UNIQUE (table_name), CONSTRAINT fk_gc_tn FOREIGN KEY "
            "(table_name) REFERENCES gpkg_contents(table_name), CONSTRAINT fk_gc_srs FOREIGN KEY "
            "(srs_id) REFERENCES gpkg_spatial_ref_sys (srs_id))",
            "CREATE TABLE gpkg_extensions (table_name TEXT, column_name TEXT, extension_name TEXT "
            "NOT NULL, definition TEXT NOT NULL, scope TEXT NOT NULL, CONSTRAINT ge_tce UNIQUE "
            "(table_name, column_name, extension_name))",
            meta_table_ddl(),
            "INSERT INTO gpkg_contents (table_name, data_type, identifier, description) VALUES "
            f"({_lit(META.name)}, 'attributes', {_lit(META.name)}, {_lit(META.doc)})",
        ]
        for lyr in LAYERS.values():
            s += GpkgWorkspace._layer_ddl(lyr)
        s += [*_LEDGER_TRIGGERS, _R6_TRIGGER, *_CHAIN_TRIGGERS]
        meta = "INSERT INTO landquota_meta (key, value) VALUES"
        s.append(f"{meta} ('schema_version', '{SCHEMA_VERSION}')")
        s.append(f"{meta} ('created_by_version', {_lit(__version__)})")
        s.append(f"{meta} ('created_at', strftime('%Y-%m-%dT%H:%M:%fZ','now'))")
        return s

    @staticmethod
    def _layer_ddl(lyr: Layer) -> list[str]:
        """Return the statements creating one contract table (by ``init`` and migrations)."""
        s: list[str] = []
        cols = ["fid INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL"]
        if lyr.geometry:
            cols.append(f"{GEOM} MULTIPOLYGON" + (" NOT NULL" if lyr.geometry_required else ""))
        cols += [_column_ddl(lyr, c) for c in lyr.columns]
        s.append(f"CREATE TABLE {_q(lyr.name)} ({', '.join(cols)})")
        for c in lyr.indexes:
            s.append(f"CREATE INDEX {_q(f'idx_{lyr.name}_{c}')} ON {_q(lyr.name)}({_q(c)})")
        desc = _lit(lyr.doc)
        if lyr.geometry:
            s.append(
                "INSERT INTO gpkg_contents (table_name, data_type, identifier, description, "
                f"srs_id) VALUES ({_lit(lyr.name)}, 'features', {_lit(lyr.name)}, {desc}, {CRS_EPSG})"
            )
            s.append(
                f"INSERT INTO gpkg_geometry_columns VALUES ({_lit(lyr.name)}, '{GEOM}', "
                f"'MULTIPOLYGON', {CRS_EPSG}, 0, 0)"
            )
            s.append(
                f'CREATE VIRTUAL TABLE "rtree_{lyr.name}_{GEOM}" USING rtree(id, minx, maxx, miny, maxy)'
            )
            s.append(
                f"INSERT INTO gpkg_extensions VALUES ({_lit(lyr.name)}, '{GEOM}', 'gpkg_rtree_index', "
                "'http://www.geopackage.org/spec120/#extension_rtree', 'write-only')"
            )
            s += _rtree_triggers(lyr.name)
        else:
            s.append(
                "INSERT INTO gpkg_contents (table_name, data_type, identifier, description) "
                f"VALUES ({_lit(lyr.name)}, 'attributes', {_lit(lyr.name)}, {desc})"
            )
        return s

    def _add_layers(self, names: Sequence[str]) -> None:
        with self._tx() as con:
            for name in names:
                for stmt in self._layer_ddl(LAYERS[name]):
                    con.execute(stmt)

    def _recode(self, name: str, column: str, mapping: Mapping[str, str]) -> None:
        lyr = LAYERS[name]
        lyr.column(column)  # a contract column: never SQL from input
        with self._tx() as con:
            con.executemany(
                f"UPDATE {_q(name)} SET {_q(column)} = ? WHERE {_q(column)} = ?",
                [(new, old) for old, new in mapping.items()],
            )

    def _check_is_workspace(self) -> None:
        try:
            (app_id,) = self._con.execute("PRAGMA application_id").fetchone()
            have = {
                r[0] for r in self._con.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
        except sqlite3.OperationalError as exc:
            self.close()
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise WorkspaceError(
                    f"{self.target!r} is not a GeoPackage (SQLite said: {exc})"
                ) from exc
            raise ConcurrencyError(
                f"workspace {self.target!r} is being written by another process and stayed "
                f"locked for {_BUSY_TIMEOUT_S:.0f} s; try again when it has finished ({exc})"
            ) from exc
        except sqlite3.DatabaseError as exc:
            self.close()
            raise WorkspaceError(
                f"{self.target!r} is not a GeoPackage (SQLite said: {exc})"
            ) from exc
        if app_id != _APPLICATION_ID or "gpkg_contents" not in have:
            self.close()
            raise WorkspaceError(f"{self.target!r} is not a GeoPackage")
        if "landquota_meta" not in have:
            self.close()
            raise WorkspaceError(
                f"{self.target!r} is a GeoPackage but not a landquota workspace; create one with "
                "`landquota init --db NEW.gpkg` and `landquota import` its layers"
            )

    # --- metadata --------------------------------------------------------------
    def _meta(self) -> dict[str, str]:
        return dict(self._con.execute("SELECT key, value FROM landquota_meta").fetchall())

    def _set_meta(self, key: str, value: str) -> None:
        with self._tx() as con:
            con.execute(META_UPSERT, (key, value))

    # --- reading ---------------------------------------------------------------
    def _count(self, lyr: Layer) -> int:
        return int(self._con.execute(f"SELECT count(*) FROM {_q(lyr.name)}").fetchone()[0])

    def _read(
        self, lyr: Layer, bbox: BBox | None, where: Where | None, *, ids_only: bool = False
    ) -> pd.DataFrame:
        sql, params = where_to_sql(lyr, where)
        if not lyr.geometry or ids_only:
            cols = [lyr.id_column] if ids_only else list(lyr.column_names)
            q = f"SELECT {', '.join(_q(c) for c in cols)} FROM {_q(lyr.name)}"
            if sql:
                q += f" WHERE {sql}"
            return pd.read_sql_query(q, self._con, params=params)
        # pyogrio's `where` takes no parameters: values are literals escaped by _lit,
        # after where_to_sql has checked the column names against the contract.
        # split first, then join: a "?" inside a value must never be taken for a placeholder
        pieces = sql.split("?")
        literal = pieces[0] + "".join(
            _lit(v) + rest for v, rest in zip(params, pieces[1:], strict=True)
        )
        df = pyogrio.read_dataframe(
            self.target,
            layer=lyr.name,
            bbox=bbox,
            where=literal or None,
            use_arrow=True,
            fid_as_index=False,
        )
        if df.geometry.name != "geometry":
            df = df.rename_geometry("geometry")
        return cast("pd.DataFrame", df)  # a GeoDataFrame; pyogrio is untyped

    def _read_bounds(self, lyr: Layer) -> pd.DataFrame:
        # the R-tree holds every box already: no geometry is read or decoded
        q = (
            f"SELECT p.{_q(lyr.id_column)}, r.minx, r.miny, r.maxx, r.maxy FROM {_q(lyr.name)} p "
            f'LEFT JOIN "rtree_{lyr.name}_{GEOM}" r ON r.id = p.fid ORDER BY p.fid'
        )
        return pd.read_sql_query(q, self._con, dtype={c: "float64" for c in ("minx", "miny", "maxx", "maxy")})

    # --- writing ---------------------------------------------------------------
    def _write(self, frames: Mapping[str, Frame], mode: WriteMode, *, progress: bool) -> None:
        from landquota._progress import progress_bar

        with self._tx() as con:
            ledger_start = _max_fid(con, "quota_ledger") if "quota_ledger" in frames else None
            if mode == "replace":
                # children before parents, so that foreign keys hold at every step
                for name in reversed(list(frames)):
                    try:
                        con.execute(f"DELETE FROM {_q(name)}")
                    except sqlite3.IntegrityError as exc:
                        raise DataError(
                            f"replace of {name!r} refused: rows of another layer refer to it "
                            f"({exc}); write the referring layers (e.g. linkage_plots with "
                            "linkage_areas) in the same write_layers call"
                        ) from exc
                    if LAYERS[name].geometry:
                        con.execute(f'DELETE FROM "rtree_{name}_{GEOM}"')
            for name, df in frames.items():
                lyr = LAYERS[name]
                if mode == "update":
                    df = self._update_rows(con, lyr, df)  # what is left are new ids
                with progress_bar(len(df), f"write {name}", enabled=progress) as bar:
                    self._insert(con, lyr, df, bar)
            if ledger_start is not None:
                # ledger rows written as a layer (the demo's opening balances) are chained too
                self._chain(con, after_fid=ledger_start, run_id=None)

    def _update_rows(self, con: sqlite3.Connection, lyr: Layer, df: Frame) -> Frame:
        """Rewrite in place the rows of *df* whose id is already there; return the others.

        Mode ``update``: an UPDATE keeps each row (and its fid), so the rows of other
        layers that refer to it stay valid, which a delete and insert could not do under
        immediate foreign keys. The spec's R-tree triggers follow the geometries.
        """
        key = lyr.id_column
        ids = [str(v) for v in df[key]]
        present: set[str] = set()
        for i in range(0, len(ids), 900):  # SQLite's bound-parameter limit
            chunk = ids[i : i + 900]
            present |= {
                str(r[0])
                for r in con.execute(
                    f"SELECT {_q(key)} FROM {_q(lyr.name)} WHERE {_q(key)} IN "
                    f"({', '.join('?' for _ in chunk)})",
                    chunk,
                )
            }
        hit = df[key].astype(str).isin(present).to_numpy()
        old = df[hit]
        if len(old):
            cols = [c for c in lyr.column_names if c != key]
            sets = cols + ([GEOM] if lyr.geometry else [])
            sql = (
                f"UPDATE {_q(lyr.name)} SET {', '.join(f'{_q(c)} = ?' for c in sets)} "
                f"WHERE {_q(key)} = ?"
            )
            columns = [_py_values(lyr.column(c), old[c]) for c in cols]
            if lyr.geometry:
                geoms = np.asarray(old.geometry.values, dtype=object)
                columns.append(to_blobs(geoms, None, shapely.bounds(geoms)))
            columns.append(_py_values(lyr.column(key), old[key]))
            try:
                con.executemany(sql, zip(*columns, strict=True))
            except sqlite3.IntegrityError as exc:
                raise DataError(f"update of {lyr.name!r} refused by the workspace: {exc}") from exc
            if lyr.geometry:
                rt = f"rtree_{lyr.name}_{GEOM}"
                con.execute(
                    "UPDATE gpkg_contents SET (min_x, min_y, max_x, max_y) = (SELECT min(minx), "
                    f'min(miny), max(maxx), max(maxy) FROM "{rt}"), '
                    "last_change=strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE table_name=?",
                    (lyr.name,),
                )
        return df[~hit]

    def _insert(
        self, con: sqlite3.Connection, lyr: Layer, df: Frame, bar: Any, *, rtree: bool = True, wkb: Any = None
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Insert *df*'s rows into *lyr* inside the caller's transaction.

        With ``rtree=False`` (a caller streaming several batches) the spatial index
        is left to one :meth:`_fill_rtree` call at the end, with the fids and
        bounds this returns for each batch; its triggers stay dropped until then.
        *wkb*: the geometries' own WKB, when the caller has it (see :func:`to_blobs`).
        """
        plan = self._insert_begin(con, lyr)
        parts: list[tuple[np.ndarray, np.ndarray]] = []
        for start in range(0, len(df), INSERT_ROWS):  # Python values for INSERT_ROWS rows at a time
            rows = insert_rows(lyr, df.iloc[start : start + INSERT_ROWS], plan.first_fid + start,
                               None if wkb is None else wkb[start : start + INSERT_ROWS], block=plan.block)
            part = self._insert_run(con, lyr, plan, rows, bar)
            if part is not None:
                parts.append(part)
        if not lyr.geometry:
            return None
        fids = np.concatenate([p[0] for p in parts]) if parts else np.empty(0, dtype=np.int64)
        bounds = np.concatenate([p[1] for p in parts]) if parts else np.empty((0, 4))
        if rtree:
            self._fill_rtree(con, lyr, [(fids, bounds)])
        return fids, bounds

    def _insert_begin(self, con: sqlite3.Connection, lyr: Layer) -> InsertPlan:
        """Get *lyr* ready for inserts: return the INSERT statements and the first free fid.

        Rows get explicit fids, so that the R-tree rows written later name exactly
        these rows (AUTOINCREMENT would continue from sqlite_sequence after a
        replace's DELETE). The R-tree triggers are dropped until :meth:`_fill_rtree`.
        """
        cols = list(lyr.column_names)
        names = ["fid", *cols] + ([GEOM] if lyr.geometry else [])
        head = f"INSERT INTO {_q(lyr.name)} ({', '.join(_q(c) for c in names)}) VALUES "
        row = f"({', '.join('?' for _ in names)})"
        block = max(1, min(INSERT_BLOCK, con.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // len(names)))
        if lyr.geometry:
            # The spec's R-tree triggers call back into Python once per row; dropping
            # them for the bulk insert and filling the R-tree afterwards is ~10x faster.
            # DDL is transactional in SQLite, so they come back on rollback too.
            trig = con.execute(
                "SELECT name, sql FROM sqlite_master WHERE type='trigger' AND tbl_name=? AND name LIKE 'rtree_%'",
                (lyr.name,),
            ).fetchall()
            for tname, tsql in trig:
                self._dropped_triggers.setdefault(lyr.name, {})[tname] = tsql
                con.execute(f"DROP TRIGGER {_q(tname)}")
        (max_fid,) = con.execute(
            f"SELECT max(coalesce((SELECT max(fid) FROM {_q(lyr.name)}), 0), "
            "coalesce((SELECT seq FROM sqlite_sequence WHERE name = ?), 0))",
            (lyr.name,),
        ).fetchone()
        return InsertPlan(head + row, head + ", ".join([row] * block), block, int(max_fid) + 1)

    def _insert_run(
        self, con: sqlite3.Connection, lyr: Layer, plan: InsertPlan, rows: InsertRows, bar: Any
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Execute *plan*'s INSERTs for *rows*; return their fids and bounds (spatial layers)."""
        try:
            for start in range(0, len(rows.blocks), 100):  # progress every 100 blocks
                chunk = rows.blocks[start : start + 100]
                con.executemany(plan.many, chunk)
                bar.update(len(chunk) * plan.block)
            con.executemany(plan.one, rows.single)
            bar.update(len(rows.single))
        except sqlite3.IntegrityError as exc:
            raise DataError(f"write to {lyr.name!r} refused by the workspace: {exc}") from exc
        if not lyr.geometry:
            con.execute(
                "UPDATE gpkg_contents SET last_change=strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE table_name=?",
                (lyr.name,),
            )
            return None
        assert rows.fids is not None and rows.bounds is not None
        return rows.fids, rows.bounds

    def _bulk_start(self, con: sqlite3.Connection, lyr: Layer) -> list[str]:
        """Prepare an emptied layer for a large load; return what :meth:`_bulk_end` restores.

        The layer's plain indexes (``idx_<layer>_<column>``, not the UNIQUE ones that
        enforce the contract) are dropped and built once after the load: SQLite sorts
        once instead of updating a B-tree per row in random key order. The page cache
        grows to BULK_CACHE_KIB for the transaction, so the UNIQUE index stays in memory; it is a
        per-connection setting, not a durability one (the rollback journal is
        untouched). DDL is transactional in SQLite: a rollback or a killed process
        brings the indexes back with the old rows (issue 18).
        """
        if self._cache_size is None:  # restored when the transaction ends (_tx)
            self._cache_size = int(con.execute("PRAGMA cache_size").fetchone()[0])
        con.execute(f"PRAGMA cache_size = -{BULK_CACHE_KIB}")
        stmts: list[str] = []
        for name, sql in con.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL "
            "AND name LIKE 'idx\\_%' ESCAPE '\\'",
            (lyr.name,),
        ).fetchall():
            con.execute(f"DROP INDEX {_q(name)}")
            stmts.insert(0, sql)
        return stmts

    @staticmethod
    def _bulk_end(con: sqlite3.Connection, stmts: Sequence[str]) -> None:
        """Rebuild the indexes :meth:`_bulk_start` dropped."""
        for sql in stmts:
            con.execute(sql)

    def _fill_rtree(
        self, con: sqlite3.Connection, lyr: Layer, parts: Sequence[tuple[np.ndarray, np.ndarray]],
        *, meanwhile: Callable[[], None] | None = None,
    ) -> None:
        """Index the rows just inserted, put the R-tree triggers back, update the extent.

        An empty R-tree (a new or replaced layer) is bulk-loaded as packed nodes
        (:func:`bulk_load_rtree`): 10⁶ rows in about a second, where inserting them
        one by one takes SQLite 13–14 s. Otherwise rows are inserted as usual.
        *meanwhile* is database work of the same transaction (an import's index
        rebuild) run on this thread while the nodes are packed on another: numpy's
        sorts and SQLite's index build both release the GIL, so on two cores they
        overlap (issue 18).
        """
        rt = f"rtree_{lyr.name}_{GEOM}"
        fids = np.concatenate([p[0] for p in parts]) if parts else np.empty(0, dtype=np.int64)
        bounds = np.concatenate([p[1] for p in parts]) if parts else np.empty((0, 4))
        empty = con.execute(f'SELECT NOT EXISTS (SELECT 1 FROM "{rt}")').fetchone()[0]
        if empty and len(fids) >= BULK_RTREE_ROWS:
            from concurrent.futures import ThreadPoolExecutor

            size = rtree_node_size(con, rt)
            with ThreadPoolExecutor(1, thread_name_prefix="landquota-rtree") as pool:
                packing = pool.submit(pack_rtree, size, fids, bounds)
                if meanwhile is not None:
                    meanwhile()
                packed = packing.result()
            write_rtree(con, rt, packed)
        else:
            if meanwhile is not None:
                meanwhile()
            if len(fids):
                con.executemany(
                    f'INSERT INTO "{rt}" VALUES (?, ?, ?, ?, ?)',
                    zip(fids.tolist(), bounds[:, 0].tolist(), bounds[:, 2].tolist(),
                        bounds[:, 1].tolist(), bounds[:, 3].tolist(), strict=True),
                )
        for tsql in self._dropped_triggers.pop(lyr.name, {}).values():
            con.execute(tsql)
        if empty:
            # the extent of exactly these rows, in double precision (the R-tree keeps float32)
            ext = (
                (float(bounds[:, 0].min()), float(bounds[:, 1].min()), float(bounds[:, 2].max()),
                 float(bounds[:, 3].max()))
                if len(bounds) else (None, None, None, None)
            )
        else:
            ext = con.execute(f'SELECT min(minx), min(miny), max(maxx), max(maxy) FROM "{rt}"').fetchone()
        con.execute(
            "UPDATE gpkg_contents SET min_x=?, min_y=?, max_x=?, max_y=?, "
            "last_change=strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE table_name=?",
            (*ext, lyr.name),
        )

    # --- ledger ------------------------------------------------------------------
    def _append_ledger(self, entries: Frame, transition: RunTransition | None) -> None:
        lyr = LAYERS["quota_ledger"]
        with self._tx() as con:
            # BEGIN IMMEDIATE holds the file's write lock: what we read now stays true
            if transition is not None:
                self._check_transition(con, transition)
            check_ledger(
                pd.read_sql_query(
                    f"SELECT {', '.join(LEDGER_CHECK_COLUMNS)} FROM quota_ledger", con
                ),
                entries,
            )
            start = _max_fid(con, "quota_ledger")
            try:
                self._insert(con, lyr, entries, _NoBar())
            except DataError as exc:
                raise LedgerError(str(exc)) from exc
            # after the entries: the file's life-cycle trigger wants them present
            if transition is not None:
                self._set_status(con, transition)
            self._chain(con, after_fid=start, run_id=transition.run_id if transition else None)

    def _check_transition(self, con: sqlite3.Connection, t: RunTransition) -> None:
        row = con.execute(
            "SELECT status FROM allocation_runs WHERE run_id = ?", (t.run_id,)
        ).fetchone()
        t.check(None if row is None else row[0], repr(self.target))

    def _set_status(self, con: sqlite3.Connection, t: RunTransition) -> None:
        try:
            con.execute(
                "UPDATE allocation_runs SET status=?, "
                "status_changed_at=strftime('%Y-%m-%dT%H:%M:%fZ','now'), status_changed_by=? "
                "WHERE run_id=?",
                (t.to_status, self.user(), t.run_id),
            )
        except sqlite3.IntegrityError as exc:
            raise LedgerError(f"run {t.run_id!r}: the workspace refused the change: {exc}") from exc

    def _chain(
        self,
        con: sqlite3.Connection,
        *,
        after_fid: int | None,
        run_id: str | None,
        extra: Sequence[tuple[str, str, str]] = (),
    ) -> None:
        """Append the chain links of the entries after *after_fid* and of *run_id*'s status.

        The rows are read back as stored, so the links hash exactly what a later
        ``verify`` reads.
        """
        from landquota.store.chain import chain_items

        def read(name: str, where: str, params: tuple[Any, ...]) -> pd.DataFrame:
            lyr = LAYERS[name]
            cols = ", ".join(_q(c) for c in lyr.column_names)
            q = f"SELECT {cols} FROM {_q(name)} WHERE {where} ORDER BY fid"
            return coerce_frame(lyr, pd.read_sql_query(q, con, params=params))

        entries = read("quota_ledger", "fid > ?", (after_fid,)) if after_fid is not None else None
        run = allocs = None
        if run_id is not None:
            run = read("allocation_runs", "run_id = ?", (run_id,))
            allocs = read("allocations", "run_id = ?", (run_id,))
        items = [*chain_items(entries, run, allocs), *extra]
        if not items:
            return
        last = con.execute("SELECT seq, hash FROM ledger_chain ORDER BY seq DESC LIMIT 1").fetchone()
        links = new_links(0 if last is None else int(last[0]), None if last is None else last[1], items)
        chain = LAYERS["ledger_chain"]
        self._insert(con, chain, prepare_frame(chain, links, source="ledger chain"), _NoBar())

    def _install_chain(self) -> None:
        """Install schema version 2: the chain table, new triggers, the chain over existing rows.

        One transaction: the existing entries are chained in the order they were
        written, then every committed or reverted run in its current state.
        """
        with self._tx() as con:
            have = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
            if "ledger_chain" not in have:
                for stmt in GpkgWorkspace._layer_ddl(LAYERS["ledger_chain"]):
                    con.execute(stmt)
            con.execute("DROP TRIGGER IF EXISTS quota_ledger_r6")
            con.execute(_R6_TRIGGER)
            for stmt in _CHAIN_TRIGGERS:
                name = stmt.split()[2]
                if name not in have:
                    con.execute(stmt)
            if con.execute("SELECT count(*) FROM ledger_chain").fetchone()[0]:
                return  # chained by an earlier, interrupted upgrade that got this far
            self._chain(con, after_fid=0, run_id=None)
            for (rid,) in con.execute(
                "SELECT run_id FROM allocation_runs WHERE status <> 'draft' ORDER BY fid"
            ).fetchall():
                self._chain(con, after_fid=None, run_id=rid)

    def set_run_status(self, transition: RunTransition) -> None:
        """Change a run's status atomically (fails if it is not in ``from_status``)."""
        with self._tx() as con:
            self._check_transition(con, transition)
            self._set_status(con, transition)
            self._chain(con, after_fid=None, run_id=transition.run_id)


class _NoBar:
    def update(self, n: int = 1) -> None:
        """No progress for small writes."""


def _max_fid(con: sqlite3.Connection, table: str) -> int:
    (n,) = con.execute(f"SELECT coalesce(max(fid), 0) FROM {_q(table)}").fetchone()
    return int(n)

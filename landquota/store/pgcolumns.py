"""Read a PostGIS query's rows column-wise in binary, parsed by numpy (no Python per row).

Binary ``COPY`` sends every field of every row behind its own length, so finding
where row *i* starts means walking rows 0…i-1 — a Python loop per row and per
field. Instead the server aggregates the rows into a few columns of one row per
chunk of at most :data:`CHUNK_ROWS` rows:

* text and WKB: the values' bytes concatenated (``string_agg(…, ''::bytea)``)
  plus an ``int4[]`` of their byte lengths, ``-1`` for NULL;
* numbers, booleans, dates and times: one array each (NULLs coalesced to 0),
  plus one ``int4[]`` of NULL bits for all of them.

An ``int4[]``/``float8[]`` without NULL elements is, after its 20-byte header,
a fixed-width run of (length, value) pairs, so numpy reads it with one
structured view; the lengths' cumulative sum gives the Arrow offsets of the
text and WKB buffers, which Arrow then takes without copying per value. All the
aggregates of one group consume the same input rows in the same order (they are
advanced together for each row), so the columns line up. Text travels as UTF-8
bytes (``convert_to`` unless server and client already use UTF-8). Chunks keep every
aggregated value far below PostgreSQL's 1 GB limit for one field.

10⁶-patch county, 82,000 patches under 1,000 sites: 1.2–1.3 s as psycopg row
tuples, 0.41–0.43 s here on a quiet machine in one session (``benchmarks/README.md``,
bench_demand); ``read_parcels_under_sites`` splits the sites over one session per core.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import numpy as np
import sqlalchemy as sa

from landquota.errors import WorkspaceError

__all__ = ["CHUNK_ROWS", "read_columns"]

#: rows per aggregated chunk: 65,536 patches of ~250 bytes of WKB are ~16 MB
CHUNK_ROWS: Final = 65_536
_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_PG_EPOCH_DAYS: Final = 10_957  # 2000-01-01 − 1970-01-01
_VAR = ("text", "json", "wkb")
_FIXED: dict[str, tuple[str, str]] = {
    # type: (SQL expression template for the non-NULL value, big-endian numpy dtype)
    "real": ("coalesce({c}, 0)::float8", ">f8"),
    "integer": ("coalesce({c}, 0)::int8", ">i8"),
    "boolean": ("coalesce({c}, false)", "u1"),
    "date": ("coalesce({c} - DATE '2000-01-01', 0)::int4", ">i4"),
    # microseconds since 2000-01-01 UTC, exact (no float epoch)
    "datetime": (
        "coalesce(((extract(epoch FROM {c}) - 946684800) * 1000000)::int8, 0)",
        ">i8",
    ),
}


def read_columns(
    con: sa.Connection, select: sa.Select[Any], types: Sequence[tuple[str, str]]
) -> Any:
    """Run *select* and return its rows as an Arrow table.

    *types* names each output column of *select* in order with its landquota
    type (``text``, ``json``, ``real``, ``integer``, ``boolean``, ``date``,
    ``datetime``) or ``wkb`` for a ``bytea`` column (returned as Arrow binary).
    Row order is the query's (an ORDER BY in *select* is not kept across chunks:
    callers sort or deduplicate themselves).
    """
    import psycopg
    import pyarrow as pa

    if len(types) > 31:  # pragma: no cover - one int4 of NULL bits
        raise ValueError("read_columns reads at most 31 columns")
    raw_con = con.connection.driver_connection
    if raw_con is None:  # pragma: no cover - only with a closed connection
        raise WorkspaceError("lost the database connection")
    # Text is sent in the client's encoding but octet_length counts the server's:
    # when both are UTF-8 the bytes are the lengths' (the usual case, and cheaper
    # than convert_to by a quarter of the query); otherwise send UTF-8 bytea.
    utf8 = (
        raw_con.info.parameter_status("server_encoding") == b"UTF8"
        and raw_con.info.parameter_status("client_encoding") == b"UTF8"
    )
    aggs: list[Any] = []
    null_bits: list[str] = []
    for i, (name, typ) in enumerate(types):
        col = f'q."{name}"'
        if typ in _VAR:
            if typ == "wkb":
                raw, sep = col, "''::bytea"
            elif utf8:
                raw, sep = col, "''"
            else:
                raw, sep = f"convert_to({col}, 'UTF8')", "''::bytea"
            aggs.append(f"array_agg(coalesce(octet_length({raw}), -1))")
            aggs.append(f"string_agg({raw}, {sep})")
        elif typ in _FIXED:
            aggs.append(f"array_agg({_FIXED[typ][0].format(c=col)})")
            null_bits.append(f"(CASE WHEN {col} IS NULL THEN {1 << i} ELSE 0 END)")
        else:
            raise ValueError(f"read_columns: unknown type {typ!r} of column {name!r}")
    if null_bits:
        aggs.append(f"array_agg({' | '.join(null_bits)})")
    aggs.append("count(*)")
    compiled = select.compile(dialect=con.dialect)
    # COPY takes no bound parameters: psycopg quotes them into the statement
    inner = psycopg.ClientCursor(raw_con).mogrify(str(compiled), compiled.params)
    # chunks of CHUNK_ROWS rows (window functions are not allowed in GROUP BY itself)
    sql = (
        f"SELECT {', '.join(aggs)} FROM (SELECT s.*, (row_number() OVER ()) / {CHUNK_ROWS} "
        f"AS lq_chunk FROM ({inner}) AS s) AS q GROUP BY lq_chunk"
    )
    buf = bytearray()
    with raw_con.cursor() as cur:
        # The planner overestimates a GiST join by 50× (4.7 M rows for 87,000), which
        # puts the query over jit_above_cost: compiling it took longer than running
        # it (2.3 s against 1.1 s for the 82,000 patches under 1,000 sites).
        cur.execute("SET LOCAL jit = off")
    with raw_con.cursor() as cur, cur.copy(f"COPY ({sql}) TO STDOUT (FORMAT binary)") as cp:
        for chunk in cp:
            buf += chunk
    columns: dict[str, list[Any]] = {name: [] for name, _ in types}
    for fields in _tuples(memoryview(buf)):
        _decode_chunk(fields, types, bool(null_bits), columns)
    out: dict[str, Any] = {}
    for name, typ in types:
        parts = columns[name]
        if parts:
            out[name] = pa.chunked_array(parts).combine_chunks()
        else:
            out[name] = pa.array([], type=_arrow_type(typ))
    return pa.table(out)


def _arrow_type(typ: str) -> Any:
    import pyarrow as pa

    return {
        "text": pa.large_string(),
        "json": pa.large_string(),
        "wkb": pa.large_binary(),
        "real": pa.float64(),
        "integer": pa.int64(),
        "boolean": pa.bool_(),
        "date": pa.date32(),
        "datetime": pa.timestamp("us"),
    }[typ]


def _tuples(data: memoryview) -> list[list[memoryview | None]]:
    """Split a binary COPY stream into its tuples' fields (one tuple per chunk: few)."""
    if bytes(data[:11]) != _SIGNATURE:
        raise WorkspaceError("unexpected binary COPY header from the server")
    ext = int.from_bytes(data[15:19], "big")
    pos = 19 + ext
    rows: list[list[memoryview | None]] = []
    while True:
        n = int.from_bytes(data[pos : pos + 2], "big", signed=True)
        pos += 2
        if n == -1:
            return rows
        fields: list[memoryview | None] = []
        for _ in range(n):
            ln = int.from_bytes(data[pos : pos + 4], "big", signed=True)
            pos += 4
            if ln < 0:
                fields.append(None)
            else:
                fields.append(data[pos : pos + ln])
                pos += ln
        rows.append(fields)


def _fixed_array(field: memoryview | None, dtype: str, count: int) -> np.ndarray:
    """Values of a 1-D array without NULL elements: a run of (int4 length, value) pairs."""
    if field is None or count == 0:
        return np.zeros(0, dtype=dtype)
    # header: ndim, has-null flag, element type, then (size, lower bound) per dimension
    ndim, has_null = int.from_bytes(field[0:4], "big"), int.from_bytes(field[4:8], "big")
    size = int.from_bytes(field[12:16], "big")
    if ndim != 1 or has_null or size != count:  # pragma: no cover - guarded by coalesce
        raise WorkspaceError("unexpected array layout in the server's binary answer")
    rec = np.frombuffer(field, dtype=[("len", ">i4"), ("v", dtype)], count=count, offset=20)
    return rec["v"]


def _decode_chunk(
    fields: list[memoryview | None],
    types: Sequence[tuple[str, str]],
    has_null_bits: bool,
    columns: dict[str, list[Any]],
) -> None:
    import pyarrow as pa

    count = int.from_bytes(fields[-1] or b"", "big")
    nulls = (
        _fixed_array(fields[-2], ">i4", count).astype(np.int32)
        if has_null_bits
        else np.zeros(count, dtype=np.int32)
    )
    k = 0
    for i, (name, typ) in enumerate(types):
        if typ in _VAR:
            lens = _fixed_array(fields[k], ">i4", count).astype(np.int64)
            blob = fields[k + 1]
            k += 2
            valid = lens >= 0
            offsets = np.zeros(count + 1, dtype=np.int64)
            np.cumsum(np.where(valid, lens, 0), out=offsets[1:])
            if blob is None:
                blob = memoryview(b"")
            if len(blob) != offsets[-1]:  # pragma: no cover - lengths and bytes disagree
                raise WorkspaceError("the server's column lengths do not match its bytes")
            arr = pa.Array.from_buffers(
                pa.large_binary() if typ == "wkb" else pa.large_string(),
                count,
                [_validity(valid), pa.py_buffer(offsets), pa.py_buffer(bytes(blob))],
            )
        else:
            dtype = _FIXED[typ][1]
            values = _fixed_array(fields[k], dtype, count)
            k += 1
            valid = (nulls & (1 << i)) == 0
            mask = None if valid.all() else ~valid
            native = values.astype(values.dtype.newbyteorder("="))
            if typ == "boolean":
                arr = pa.array(native.astype(bool), mask=mask, type=pa.bool_())
            elif typ == "date":
                arr = pa.array(
                    (native.astype(np.int64) + _PG_EPOCH_DAYS).astype(np.int32), mask=mask
                ).cast(pa.date32())
            elif typ == "datetime":
                us = native.astype(np.int64) + _PG_EPOCH_DAYS * 86_400 * 1_000_000
                arr = pa.array(us, mask=mask).cast(pa.timestamp("us"))
            else:
                arr = pa.array(native, mask=mask, type=_arrow_type(typ))
        columns[name].append(arr)


def _validity(valid: np.ndarray) -> Any:
    import pyarrow as pa

    if valid.all():
        return None
    return pa.py_buffer(np.packbits(valid, bitorder="little"))

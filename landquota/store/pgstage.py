"""Bulk replace of a PostGIS layer through a staged table, indexes built in parallel sessions.

Issue 18, item 2. A large ``--replace`` import (``landquota.intake.load``) used to
truncate the layer, COPY into it and rebuild its primary key, unique id, GiST and
B-tree indexes one after the other, all in the import's one transaction. Index builds
on a table that only one uncommitted transaction can see cannot be shared out to other
sessions, so here the rows go to a *stage* instead:

1. ``prepare`` (in the import's transaction, *con*): the layer is checked to be a plain
   table this module can rebuild exactly (no triggers, foreign keys, policies, rules,
   dependent views, publications, column grants, storage options or tablespace of its
   own: otherwise ``None`` and the caller keeps the in-transaction path), locked in
   EXCLUSIVE mode (writers wait, readers do not) and its rows counted.
2. ``load``: in a second session, ``CREATE TABLE _lq_stage_… (LIKE layer INCLUDING …)``
   and the COPY, committed together: a process killed before that commit leaves
   nothing. The keys and indexes are then built on the committed stage in
   ``INDEX_SESSIONS`` sessions at once, the GiST (the longest, and never parallel in
   PostgreSQL 15) first.
3. ``swap`` (back in the import's transaction): the layer is dropped, the stage renamed
   to it, the unique indexes attached as its primary key and unique constraints
   (``ADD CONSTRAINT … USING INDEX``), indexes and the identity sequence renamed, and
   owner, grants and comments set as they were; then keys, indexes, constraints and
   grants are compared with the old table's and any difference rolls the swap back.
   Nothing of it is visible until the import commits.

A kill at any point leaves the layer as it was: before step 2's commit nothing exists;
after it, a stage table exists but the layer is untouched until the import's own
transaction commits. Stage names carry the import session's backend pid and start time
(``_lq_stage_<pid>_<start>_<n>``): the next large import drops every stage whose session
is gone (``drop_stale_stages``), and a failed import drops its own (``release``).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from psycopg import sql
from sqlalchemy.engine import Connection

#: Sessions that build the stage's keys and indexes at once. Two: the GiST build takes
#: about as long as the three B-trees together on 10^6 rows, so two sessions give the
#: shortest build on a 2-core server; more would only share the same cores.
INDEX_SESSIONS = 2
#: Per build session, as the in-transaction path sets it: 10^6-row sorts stay in memory.
MAINTENANCE_WORK_MEM = "512MB"
PREFIX = "_lq_stage_"
_NAME = re.compile(r"^_lq_stage_(\d+)_([0-9a-f]+)_(\d+)$")

#: stages this process made and has not yet swapped in or dropped: (schema, stage)
_LIVE: set[tuple[str, str]] = set()
_LIVE_LOCK = threading.Lock()
_COUNTER = [0]


def _qi(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _raw(con: Connection, stmt: str) -> None:
    # on the driver's connection (same transaction): a comment's ':' is no bind parameter there
    raw: Any = con.connection.driver_connection
    with raw.cursor() as cur:
        cur.execute(stmt)


def _lit(value: str | None) -> str:
    # COMMENT takes no bound parameters; psycopg quotes the literal
    return sql.Literal(value).as_string(None)


@dataclass
class _Index:
    name: str  # the layer's index name
    body: str  # what follows "ON table" in its definition: "USING gist (geom)"
    unique: bool
    constraint: str | None  # the PRIMARY KEY / UNIQUE constraint it backs
    contype: str | None  # 'p' or 'u'
    comment: str | None
    am: str
    tmp: str = ""


@dataclass
class Stage:
    """A staged replace of one layer; see the module's docstring for the steps."""

    schema: str
    table: str
    stage: str
    owner: str
    comment: str | None
    indexes: list[_Index]
    identity: list[tuple[str, str, int]]  # (column, old sequence name, next value)
    removed: int
    acl: list[tuple[str, str, bool]]
    seq_acl: dict[str, list[tuple[str, str, bool]]]
    signature: tuple[Any, ...] = field(default=())

    @property
    def qualified(self) -> str:
        """Return the layer's schema-qualified, quoted name."""
        return f"{_qi(self.schema)}.{_qi(self.table)}"

    @property
    def qualified_stage(self) -> str:
        """Return the stage's schema-qualified, quoted name."""
        return f"{_qi(self.schema)}.{_qi(self.stage)}"

    # --- 2. load -------------------------------------------------------------------------
    def load(self, ws: Any, copy: Callable[[Any, str], None], check: Callable[[int], None] | None = None) -> None:
        """Create the stage, COPY into it through *copy(raw_connection, table)*, build its indexes.

        *check* gets the number of rows the replace removes once the rows are in,
        before the index builds; raising refuses the load. Any error drops the stage.
        """
        try:
            with ws.engine.connect() as c:
                raw = c.connection.driver_connection
                with raw.cursor() as cur:
                    cur.execute(
                        f"CREATE TABLE {self.qualified_stage} (LIKE {self.qualified} INCLUDING DEFAULTS "
                        "INCLUDING CONSTRAINTS INCLUDING IDENTITY INCLUDING GENERATED INCLUDING STORAGE "
                        "INCLUDING COMPRESSION INCLUDING COMMENTS) "
                        # autovacuum would take the freshly committed 10^6 rows for a VACUUM
                        # and ANALYZE while the indexes build: their locks conflict (a
                        # second's wait each) and its reads share the cores; reset in swap()
                        "WITH (autovacuum_enabled = false, toast.autovacuum_enabled = false)"
                    )
                    for col, _seq, nxt in self.identity:
                        # fids go on from the old table's, as after a TRUNCATE
                        cur.execute(f"ALTER TABLE {self.qualified_stage} ALTER COLUMN {_qi(col)} RESTART WITH {nxt}")
                    note = f"landquota import stage of {self.table}: dropped by the next import"
                    cur.execute(f"COMMENT ON TABLE {self.qualified_stage} IS {_lit(note)}")
                copy(raw, self.qualified_stage)
                raw.commit()  # the stage exists from here on, the layer is untouched
            if check is not None:
                check(self.removed)
            self._build_indexes(ws)
        except BaseException:
            self.discard(ws)
            raise

    def _build_indexes(self, ws: Any) -> None:
        # longest first: the GiST, then B-trees over text, then the rest
        order = sorted(self.indexes, key=lambda ix: (ix.am != "gist", not ix.unique, ix.contype == "p"))
        with ThreadPoolExecutor(max_workers=max(1, min(INDEX_SESSIONS, len(order)))) as pool:
            futures = [pool.submit(self._build, ws, ix) for ix in order]
            errors = [f.exception() for f in futures]
        for err in errors:
            if err is not None:
                raise err

    def _build(self, ws: Any, ix: _Index) -> None:
        with ws.engine.connect() as c:
            raw = c.connection.driver_connection
            with raw.cursor() as cur:
                cur.execute(f"SET LOCAL maintenance_work_mem = '{MAINTENANCE_WORK_MEM}'")
                unique = "UNIQUE " if ix.unique else ""
                cur.execute(f"CREATE {unique}INDEX {_qi(ix.tmp)} ON {self.qualified_stage} {ix.body}")
            raw.commit()

    # --- 3. swap -------------------------------------------------------------------------
    def swap(self, con: Connection) -> None:
        """Put the stage in the layer's place inside the import's transaction *con*."""
        x = con.execute
        s = _qi(self.schema)
        x(sa.text(f"LOCK TABLE {self.qualified} IN ACCESS EXCLUSIVE MODE"))
        x(sa.text(f"DROP TABLE {self.qualified}"))  # no CASCADE: prepare found nothing depending on it
        x(sa.text(f"ALTER TABLE {self.qualified_stage} RENAME TO {_qi(self.table)}"))
        x(sa.text(f"ALTER TABLE {self.qualified} RESET (autovacuum_enabled, toast.autovacuum_enabled)"))
        for ix in self.indexes:
            if ix.constraint is not None:
                kind = "PRIMARY KEY" if ix.contype == "p" else "UNIQUE"
                # USING INDEX renames the index to the constraint's name, as the layer had it
                x(sa.text(f"ALTER TABLE {self.qualified} ADD CONSTRAINT {_qi(ix.constraint)} {kind} "
                          f"USING INDEX {_qi(ix.tmp)}"))
            else:
                x(sa.text(f"ALTER INDEX {s}.{_qi(ix.tmp)} RENAME TO {_qi(ix.name)}"))
            if ix.comment is not None:
                _raw(con, f"COMMENT ON INDEX {s}.{_qi(ix.name)} IS {_lit(ix.comment)}")
        for col, seq, _nxt in self.identity:
            new = x(sa.text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": self.qualified, "c": col}).scalar_one()
            x(sa.text(f"ALTER SEQUENCE {new} RENAME TO {_qi(seq)}"))
        if x(sa.text("SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = to_regclass(:t)"),
             {"t": self.qualified}).scalar_one() != self.owner:
            x(sa.text(f"ALTER TABLE {self.qualified} OWNER TO {_qi(self.owner)}"))  # owned sequences follow
        _set_acl(con, self.qualified, "TABLE", self.owner, self.acl)
        for col, seq, _nxt in self.identity:
            _set_acl(con, f"{s}.{_qi(seq)}", "SEQUENCE", self.owner, self.seq_acl.get(col, []))
        _raw(con, f"COMMENT ON TABLE {self.qualified} IS {_lit(self.comment)}")
        got = _signature(con, self.schema, self.table)
        if got != self.signature:
            raise RuntimeError(
                f"landquota could not rebuild {self.qualified} exactly from its import stage "
                f"(before: {self.signature!r}; after: {got!r}); the import was rolled back"
            )
        # still registered: if the import's transaction rolls back, the stage is back
        # under its name and release() drops it

    def discard(self, ws: Any) -> None:
        """Drop the stage if it exists (an import that failed before committing)."""
        try:
            with ws.engine.connect() as c:
                c.execute(sa.text("SET lock_timeout = '5s'"))
                c.execute(sa.text(f"DROP TABLE IF EXISTS {self.qualified_stage}"))
                c.commit()
        except sa.exc.SQLAlchemyError:
            pass  # the next import's drop_stale_stages takes it
        with _LIVE_LOCK:
            _LIVE.discard((self.schema, self.stage))


# --- 1. prepare ------------------------------------------------------------------------------
def prepare(ws: Any, con: Connection, table: str) -> Stage | None:
    """Plan a staged replace of *table*, or ``None`` when it cannot be rebuilt exactly.

    Locks the layer in EXCLUSIVE mode within *con*'s transaction (other writers wait
    until the import commits; readers do not) and counts its rows.
    """
    schema: str = ws.schema
    q = f"{_qi(schema)}.{_qi(table)}"
    x = con.execute
    row = x(sa.text(
        "SELECT c.oid, pg_get_userbyid(c.relowner), pg_has_role(c.relowner, 'USAGE'), c.relkind, "
        "c.relpersistence, c.reltablespace, "
        "c.reloptions || (SELECT t.reloptions FROM pg_class t WHERE t.oid = c.reltoastrelid), c.relrowsecurity, c.relhassubclass, "
        "obj_description(c.oid, 'pg_class'), "
        # the stage is created by this login and handed to the owner: both need CREATE on the schema
        "pg_has_role(c.relowner, 'MEMBER') AND has_schema_privilege(c.relnamespace, 'CREATE') "
        "AND has_schema_privilege(c.relowner, c.relnamespace, 'CREATE') "
        "FROM pg_class c WHERE c.oid = to_regclass(:t)"), {"t": q}).one_or_none()
    if row is None:
        return None
    oid, owner, may, relkind, persistence, tablespace, options, rls, subclass, comment, create = row
    if (not may or not create or relkind != "r" or persistence != "p" or tablespace != 0 or options or rls
            or subclass):
        return None
    blockers = x(sa.text(
        "SELECT (SELECT count(*) FROM pg_trigger WHERE tgrelid = :o AND NOT tgisinternal)"
        " + (SELECT count(*) FROM pg_constraint WHERE (conrelid = :o OR confrelid = :o) "
        "    AND (contype NOT IN ('p', 'u', 'c') OR condeferrable))"
        " + (SELECT count(*) FROM pg_policy WHERE polrelid = :o)"
        " + (SELECT count(*) FROM pg_rewrite WHERE ev_class = :o)"
        " + (SELECT count(*) FROM pg_depend WHERE refobjid = :o AND classid = 'pg_rewrite'::regclass)"
        " + (SELECT count(*) FROM pg_publication_rel WHERE prrelid = :o)"
        " + (SELECT count(*) FROM pg_inherits WHERE inhrelid = :o OR inhparent = :o)"
        " + (SELECT count(*) FROM pg_statistic_ext WHERE stxrelid = :o)"
        " + (SELECT count(*) FROM pg_attribute WHERE attrelid = :o AND attnum > 0 AND NOT attisdropped"
        "    AND attacl IS NOT NULL)"
        # a serial default's sequence belongs to the old table and would go with it
        " + (SELECT count(*) FROM pg_attrdef d JOIN pg_attribute a ON a.attrelid = d.adrelid "
        "    AND a.attnum = d.adnum WHERE d.adrelid = :o AND a.attidentity = '' "
        "    AND pg_get_expr(d.adbin, d.adrelid) LIKE '%nextval(%')"), {"o": oid}).scalar_one()
    if blockers:
        return None
    quoted = x(sa.text("SELECT quote_ident(:s) || '.' || quote_ident(:t)"), {"s": schema, "t": table}).scalar_one()
    indexes: list[_Index] = []
    for name, iq, unique, valid, defn, conname, contype, icomment, am in x(sa.text(
        "SELECT ic.relname, quote_ident(ic.relname), i.indisunique, i.indisvalid, pg_get_indexdef(i.indexrelid), "
        "con.conname, con.contype, obj_description(i.indexrelid, 'pg_class'), am.amname "
        "FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam "
        "LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid "
        "AND con.contype IN ('p', 'u') WHERE i.indrelid = :o ORDER BY ic.relname"), {"o": oid}).all():
        prefix = f"CREATE {'UNIQUE ' if unique else ''}INDEX {iq} ON {quoted} "
        if not valid or not defn.startswith(prefix) or (unique and conname is None):
            return None  # an index this module would not rebuild word for word
        indexes.append(_Index(name, defn[len(prefix):], unique, conname, contype, icomment, am))
    identity: list[tuple[str, str, int]] = []
    seq_acl: dict[str, list[tuple[str, str, bool]]] = {}
    for (col,) in x(sa.text("SELECT attname FROM pg_attribute WHERE attrelid = :o AND attnum > 0 "
                            "AND NOT attisdropped AND attidentity <> '' ORDER BY attnum"), {"o": oid}).all():
        seq = x(sa.text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": q, "c": col}).scalar_one()
        last, called = x(sa.text(f"SELECT last_value, is_called FROM {seq}")).one()
        name = x(sa.text("SELECT relname FROM pg_class WHERE oid = CAST(:s AS regclass)"), {"s": seq}).scalar_one()
        identity.append((col, name, int(last) + 1 if called else int(last)))
        seq_acl[col] = _acl(con, seq)
    x(sa.text(f"LOCK TABLE {q} IN EXCLUSIVE MODE"))
    removed = int(x(sa.text(f"SELECT count(*) FROM {q}")).scalar_one())
    pid, start = x(sa.text("SELECT pg_backend_pid(), "
                           "to_hex(CAST(extract(epoch FROM backend_start) * 1000000 AS bigint)) "
                           "FROM pg_stat_activity WHERE pid = pg_backend_pid()")).one()
    drop_stale_stages(ws)
    with _LIVE_LOCK:
        _COUNTER[0] += 1
        stage = f"{PREFIX}{pid}_{start}_{_COUNTER[0]}"
        _LIVE.add((schema, stage))
    for k, ix in enumerate(indexes):
        ix.tmp = f"{stage}_i{k}"
    return Stage(schema, table, stage, owner, comment, indexes, identity, removed, _acl(con, q), seq_acl,
                 _signature(con, schema, table))


def _acl(con: Connection, obj: str) -> list[tuple[str, str, bool]]:
    """List the object's privileges as (grantee, privilege, grantable), defaults made explicit."""
    rows = con.execute(sa.text(
        "SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END, a.privilege_type, "
        "a.is_grantable FROM pg_class c, aclexplode(coalesce(c.relacl, acldefault("
        "CASE WHEN c.relkind = 'S' THEN 's'::\"char\" ELSE 'r'::\"char\" END, c.relowner))) a "
        "WHERE c.oid = CAST(:o AS regclass)"), {"o": obj}).all()
    return sorted((str(g), str(p), bool(w)) for g, p, w in rows)


def _set_acl(con: Connection, obj: str, kind: str, owner: str, acl: list[tuple[str, str, bool]]) -> None:
    """Give *obj* exactly the grants *acl* (as :func:`_acl` lists them) besides its owner's."""
    for grantee in sorted({g for g, _p, _w in _acl(con, obj)} - {owner}):
        who = "PUBLIC" if grantee == "PUBLIC" else _qi(grantee)
        con.execute(sa.text(f"REVOKE ALL ON {kind} {obj} FROM {who}"))
    for grantee, priv, grantable in acl:
        if grantee == owner:
            continue
        who = "PUBLIC" if grantee == "PUBLIC" else _qi(grantee)
        con.execute(sa.text(f"GRANT {priv} ON {kind} {obj} TO {who}{' WITH GRANT OPTION' if grantable else ''}"))


def _signature(con: Connection, schema: str, table: str) -> tuple[Any, ...]:
    """Describe what the swap must keep: constraints, indexes, columns, owner, grants, comments."""
    q = f"{_qi(schema)}.{_qi(table)}"
    x = con.execute
    cons = x(sa.text("SELECT conname, contype, pg_get_constraintdef(oid) FROM pg_constraint "
                     "WHERE conrelid = to_regclass(:t) ORDER BY 1"), {"t": q}).all()
    idx = x(sa.text("SELECT pg_get_indexdef(indexrelid), obj_description(indexrelid, 'pg_class') FROM pg_index "
                    "WHERE indrelid = to_regclass(:t) ORDER BY 1"), {"t": q}).all()
    cols = x(sa.text("SELECT attname, format_type(atttypid, atttypmod), attnotnull, attidentity, "
                     "pg_get_expr(d.adbin, d.adrelid), col_description(a.attrelid, a.attnum) "
                     "FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
                     "WHERE a.attrelid = to_regclass(:t) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"),
             {"t": q}).all()
    meta = x(sa.text("SELECT pg_get_userbyid(c.relowner), obj_description(c.oid, 'pg_class'), c.reloptions, "
                     "t.reloptions FROM pg_class c LEFT JOIN pg_class t ON t.oid = c.reltoastrelid "
                     "WHERE c.oid = to_regclass(:t)"), {"t": q}).one()
    seqs = x(sa.text("SELECT a.attname, pg_get_serial_sequence(:t, a.attname) FROM pg_attribute a "
                     "WHERE a.attrelid = to_regclass(:t) AND a.attidentity <> '' ORDER BY 1"), {"t": q}).all()
    return (tuple(map(tuple, cons)), tuple(map(tuple, idx)), tuple(map(tuple, cols)), tuple(meta),
            tuple(_acl(con, q)), tuple((c, s, tuple(_acl(con, s))) for c, s in seqs))


def drop_stale_stages(ws: Any) -> list[str]:
    """Drop the stages of import sessions that are gone (a killed import); return their names.

    A stage whose session still runs belongs to an import in progress and is kept;
    one that cannot be dropped now (a killed import's index build still holding it,
    or another owner's) is left for the next import.
    """
    dropped: list[str] = []
    with ws.engine.connect() as c:
        c.execute(sa.text("SET lock_timeout = '2s'"))
        c.commit()
        alive = {
            (int(pid), str(start))
            for pid, start in c.execute(sa.text(
                "SELECT pid, to_hex(CAST(extract(epoch FROM backend_start) * 1000000 AS bigint)) "
                "FROM pg_stat_activity WHERE backend_start IS NOT NULL")).all()
        }
        names = c.execute(sa.text(
            "SELECT relname FROM pg_class WHERE relnamespace = CAST(:s AS regnamespace) AND relkind = 'r' "
            "AND starts_with(relname, :p)"), {"s": _qi(ws.schema), "p": PREFIX}).scalars().all()
        c.commit()
        for name in names:
            m = _NAME.match(name)
            with _LIVE_LOCK:
                mine = (ws.schema, name) in _LIVE
            if m is None or mine or (int(m.group(1)), m.group(2)) in alive:
                continue
            try:
                c.execute(sa.text(f"DROP TABLE IF EXISTS {_qi(ws.schema)}.{_qi(name)}"))
                c.commit()
                dropped.append(name)
            except sa.exc.SQLAlchemyError:
                c.rollback()
    return dropped


def release(ws: Any) -> None:
    """After a load's transaction ended: drop this process's stages of *ws* still there.

    A stage swapped in by a committed import no longer exists under its name; one of
    a rolled-back import is back under it and goes.
    """
    with _LIVE_LOCK:
        mine = [name for schema, name in _LIVE if schema == ws.schema]
    for name in mine:
        Stage(ws.schema, "", name, "", None, [], [], 0, [], {}).discard(ws)

"""The PostGIS backend: one PostgreSQL schema, through SQLAlchemy 2 + GeoAlchemy2.

* Tables are built from :mod:`landquota.store.schema` as SQLAlchemy ``Table`` objects:
  CHECK constraints for codes and ranges, UNIQUE ids, foreign keys, GiST indexes
  (GeoAlchemy2), geometry typed ``MULTIPOLYGON`` with SRID 4490.
* The ledger is append-only in the database itself: triggers refuse UPDATE,
  DELETE and TRUNCATE, and a statement trigger refuses any insert that leaves
  a (pool, vintage) running balance negative on any date (R6). It takes the
  ledger lock first (an EXCLUSIVE lock on the table ``ledger_lock``, which only
  ledger writers may take), so two sessions committing at once are serialised
  and the second one's check sees the first one's entries (READ COMMITTED gives
  each statement of the trigger a fresh snapshot). Deferred constraint triggers
  keep run status and ledger entries in step (the run life cycle), and every
  function has a fixed ``search_path``.
* Bulk writes stream through binary ``COPY`` (rows built with Arrow, EWKB
  geometries), in batches, inside the one transaction of the write.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import geopandas as gpd
import numpy as np
import pandas as pd
import psycopg
import shapely
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from landquota.errors import (
    ConcurrencyError,
    DataError,
    LedgerError,
    ParameterError,
    WorkspaceError,
)
from landquota.settings import Settings, mask_url
from landquota.store.chain import POOL_OF_COLUMN, RUN_TOLERANCE
from landquota.store.ledger_check import LEDGER_CHECK_COLUMNS, NEG_TOL, check_ledger
from landquota.store.schema import CRS_EPSG, LAYERS, META, SCHEMA_VERSION, Column, Layer
from landquota.store.stamps import stamp_triggers_sql
from landquota.store.workspace import (
    BBox,
    Frame,
    RunTransition,
    Where,
    Workspace,
    WriteMode,
    arrow_text,
    binary_array,
    coerce_frame,
    prepare_frame,
    where_to_sql,
)

GEOM = "geom"
_SA_TYPES: dict[str, Any] = {
    "text": sa.Text,
    "json": sa.Text,  # text, not jsonb: jsonb reorders keys, and run digests need stable bytes
    "real": sa.Double,
    "integer": sa.BigInteger,
    "boolean": sa.Boolean,
    "date": sa.Date,
    "datetime": lambda: sa.DateTime(timezone=True),
}


def split_url(url: str, default_schema: str) -> tuple[str, str]:
    """Return (SQLAlchemy URL with the psycopg driver, schema); ``?schema=`` picks the schema."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = default_schema
    rest = []
    for k, v in query:
        if k == "schema":
            schema = v
        else:
            rest.append((k, v))
    Settings(pg_schema=schema)  # validates the identifier
    scheme = "postgresql+psycopg"
    # not urlunsplit: it drops the "//" of a host-less URL (postgresql:///db, ?service=)
    qs = f"?{urlencode(rest)}" if rest else ""
    return f"{scheme}://{parts.netloc}{parts.path}{qs}", schema


class QueryGeometry(sa.types.UserDefinedType[Any]):
    """``geometry(MULTIPOLYGON, 4490)`` for queries, without GeoAlchemy2.

    Every query wraps the column in ``ST_AsBinary``/``&&`` itself, so opening a
    workspace and reading it needs no GeoAlchemy2 (its import is ~0.1 s of every
    PostGIS run's start-up); the tables are created through
    ``build_metadata(ddl=True)``, with GeoAlchemy2's GiST index DDL.
    """

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        """Return the column's SQL type."""
        return f"geometry(MULTIPOLYGON,{CRS_EPSG})"


def build_metadata(schema: str, *, ddl: bool = False) -> sa.MetaData:
    """SQLAlchemy tables of every contract layer in *schema*.

    With *ddl* the geometry columns are GeoAlchemy2's (``CREATE TABLE`` with the
    GiST index); without, :class:`QueryGeometry` (reads and writes).
    """
    if ddl:
        from geoalchemy2 import Geometry  # imported here: only creating tables needs it

        def geometry() -> Any:
            return Geometry("MULTIPOLYGON", srid=CRS_EPSG, spatial_index=True)
    else:

        def geometry() -> Any:
            return QueryGeometry()

    md = sa.MetaData(schema=schema)
    sa.Table(
        META.name,
        md,
        # fid as in every table (an integer key for QGIS); key unique, the upsert's conflict target
        sa.Column("fid", sa.BigInteger, sa.Identity(), primary_key=True),
        *(
            sa.Column(c.name, _SA_TYPES[c.type](), nullable=c.nullable, unique=c.unique)
            for c in META.columns
        ),
        comment=META.doc,
    )
    for lyr in LAYERS.values():
        cols: list[Any] = [sa.Column("fid", sa.BigInteger, sa.Identity(), primary_key=True)]
        cons: list[Any] = []
        for c in lyr.columns:
            args: list[Any] = [_SA_TYPES[c.type]()]
            if c.references:
                t, col = c.references.split(".")
                args.append(sa.ForeignKey(f"{schema}.{t}.{col}", name=f"fk_{lyr.name}_{c.name}"))
            cols.append(
                sa.Column(
                    c.name, *args, nullable=c.nullable, unique=c.unique, index=c.name in lyr.indexes
                )
            )
            cons += _checks(lyr, c)
        if lyr.geometry:
            cols.append(
                sa.Column(
                    GEOM,
                    geometry(),
                    nullable=not lyr.geometry_required,
                )
            )
        sa.Table(lyr.name, md, *cols, *cons, comment=lyr.doc)
    return md


def _checks(lyr: Layer, c: Column) -> list[sa.CheckConstraint]:
    out = []
    q = f'"{c.name}"'
    if c.codes is not None:
        codes = ", ".join("'" + v.replace("'", "''") + "'" for v in c.codes)
        out.append(sa.CheckConstraint(f"{q} IN ({codes})", name=f"ck_{lyr.name}_{c.name}_code"))
    if c.minimum is not None:
        out.append(sa.CheckConstraint(f"{q} >= {c.minimum!r}", name=f"ck_{lyr.name}_{c.name}_min"))
    if c.maximum is not None:
        out.append(sa.CheckConstraint(f"{q} <= {c.maximum!r}", name=f"ck_{lyr.name}_{c.name}_max"))
    if c.type == "real":
        out.append(
            sa.CheckConstraint(
                f"{q} <> 'NaN'::float8 AND {q} NOT IN ('Infinity', '-Infinity')",
                name=f"ck_{lyr.name}_{c.name}_finite",
            )
        )
    return out


#: Seconds a ledger write waits for the ledger lock before it gives up and names the holder.
LOCK_TIMEOUT_S = 30.0
#: The table whose EXCLUSIVE lock serialises ledger writers. Locking a table in that
#: mode needs UPDATE (or DELETE, TRUNCATE) on it, which only ledger writers
#: (approver, owner) hold: a viewer cannot take the lock and stall commits, as any
#: login could take an advisory lock.
LEDGER_LOCK = "ledger_lock"


def lock_timeout() -> float:
    """Seconds to wait for the ledger lock: ``LANDQUOTA_LOCK_TIMEOUT``, else LOCK_TIMEOUT_S."""
    import os

    text = os.environ.get("LANDQUOTA_LOCK_TIMEOUT")
    if not text:
        return LOCK_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < 86_400:
        raise ParameterError(
            f"LANDQUOTA_LOCK_TIMEOUT={text!r} must be a number of seconds between 0 and 86400"
        )
    return value


def fixed_path(schema: str) -> str:
    """Return the ``SET search_path`` clause of every function landquota creates.

    ``pg_catalog`` first and ``pg_temp`` named last, so that no operator, cast or
    function another role creates in ``public`` (or a temporary schema) can be
    picked up when the function runs, whoever calls it (CVE-2018-1058 pattern).
    """
    return f'SET search_path = pg_catalog, "{schema}", pg_temp'


def _ledger_sql(schema: str) -> list[str]:
    """Return the ledger's database-side rules: append-only, R6, chain, run life cycle.

    Every function has a fixed ``search_path`` (:func:`fixed_path`); comparisons
    are written with ``OPERATOR(pg_catalog.…)`` between values of one type (double
    precision with double precision), so even the function's own body cannot be
    redirected to an operator of another schema. Idempotent (CREATE OR REPLACE,
    triggers dropped first).
    """
    s = f'"{schema}"'
    path = fixed_path(schema)
    lt = "OPERATOR(pg_catalog.<)"
    gt = "OPERATOR(pg_catalog.>)"
    eq = "OPERATOR(pg_catalog.=)"
    tol = f"CAST({RUN_TOLERANCE!r} AS pg_catalog.float8)"
    need = " UNION ALL ".join(
        f"SELECT '{pool}'::pg_catalog.text, (SELECT pg_catalog.coalesce(pg_catalog.sum(a.{col}), 0) "
        f"FROM {s}.allocations a WHERE a.run_id {eq} rid)"
        for col, pool in POOL_OF_COLUMN.items()
    ).replace("pg_catalog.coalesce", "coalesce")
    return [
        f"CREATE TABLE IF NOT EXISTS {s}.{LEDGER_LOCK} (held boolean)",
        f"COMMENT ON TABLE {s}.{LEDGER_LOCK} IS 'landquota: ledger writers LOCK this table IN "
        "EXCLUSIVE MODE (needs UPDATE on it: approver and owner only)'",
        f"""CREATE OR REPLACE FUNCTION {s}.quota_ledger_append_only() RETURNS trigger
        LANGUAGE plpgsql {path} AS $$
        BEGIN
          RAISE EXCEPTION '% is append-only: write a reversal entry instead of %% on an entry',
            TG_TABLE_NAME, lower(TG_OP) USING ERRCODE = 'insufficient_privilege';
        END $$""".replace("%%", "%"),
        f"DROP TRIGGER IF EXISTS quota_ledger_no_change ON {s}.quota_ledger",
        f"""CREATE TRIGGER quota_ledger_no_change BEFORE UPDATE OR DELETE ON {s}.quota_ledger
        FOR EACH ROW EXECUTE FUNCTION {s}.quota_ledger_append_only()""",
        f"DROP TRIGGER IF EXISTS quota_ledger_no_truncate ON {s}.quota_ledger",
        f"""CREATE TRIGGER quota_ledger_no_truncate BEFORE TRUNCATE ON {s}.quota_ledger
        FOR EACH STATEMENT EXECUTE FUNCTION {s}.quota_ledger_append_only()""",
        f"DROP TRIGGER IF EXISTS ledger_chain_no_change ON {s}.ledger_chain",
        f"""CREATE TRIGGER ledger_chain_no_change BEFORE UPDATE OR DELETE ON {s}.ledger_chain
        FOR EACH ROW EXECUTE FUNCTION {s}.quota_ledger_append_only()""",
        f"DROP TRIGGER IF EXISTS ledger_chain_no_truncate ON {s}.ledger_chain",
        f"""CREATE TRIGGER ledger_chain_no_truncate BEFORE TRUNCATE ON {s}.ledger_chain
        FOR EACH STATEMENT EXECUTE FUNCTION {s}.quota_ledger_append_only()""",
        # R6 in the database on RUNNING balances by effective date: serialise ledger
        # writers (the lock table), then follow every bucket the statement touched day
        # by day; a debit dated before its credit is refused, not only an overdraft.
        f"""CREATE OR REPLACE FUNCTION {s}.quota_ledger_r6() RETURNS trigger
        LANGUAGE plpgsql {path} AS $$
        DECLARE bad record;
        BEGIN
          LOCK TABLE {s}.{LEDGER_LOCK} IN EXCLUSIVE MODE;
          SELECT d.pool, d.year, d.effective_date, d.running INTO bad
            FROM (SELECT x.pool, x.year, x.effective_date,
                         pg_catalog.sum(x.day_sum) OVER (PARTITION BY x.pool, x.year
                                                         ORDER BY x.effective_date) AS running
                    FROM (SELECT l.pool, l.year, l.effective_date, pg_catalog.sum(l.amount) AS day_sum
                            FROM {s}.quota_ledger l
                            JOIN (SELECT DISTINCT n.pool, n.year FROM new_rows n) t
                              ON l.pool {eq} t.pool AND l.year {eq} t.year
                           GROUP BY l.pool, l.year, l.effective_date) x) d
           WHERE d.running {lt} CAST(-{NEG_TOL!r} AS pg_catalog.float8)
           ORDER BY d.effective_date
           LIMIT 1;
          IF FOUND THEN
            RAISE EXCEPTION 'R6: pool % (vintage %) would stand at % on %; a balance may never go negative on any date',
              bad.pool, bad.year, pg_catalog.round(CAST(bad.running AS pg_catalog.numeric), 2),
              bad.effective_date USING ERRCODE = 'check_violation';
          END IF;
          RETURN NULL;
        END $$""",
        f"DROP TRIGGER IF EXISTS quota_ledger_r6 ON {s}.quota_ledger",
        f"""CREATE TRIGGER quota_ledger_r6 AFTER INSERT ON {s}.quota_ledger
        REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {s}.quota_ledger_r6()""",
        # The run life cycle: draft -> committed -> reverted, only the status changes.
        f"""CREATE OR REPLACE FUNCTION {s}.landquota_run_lifecycle() RETURNS trigger
        LANGUAGE plpgsql {path} AS $$
        BEGIN
          IF TG_OP = 'DELETE' THEN
            IF OLD.status {eq} 'draft' THEN RETURN OLD; END IF;
            RAISE EXCEPTION 'run life cycle: run % is %, history that is never deleted', OLD.run_id, OLD.status
              USING ERRCODE = 'insufficient_privilege';
          END IF;
          IF (NEW.run_id, NEW.mode, NEW.as_of, NEW.scenario, NEW.params, NEW.input_digest,
              NEW.software_version, NEW.forced) IS DISTINCT FROM
             (OLD.run_id, OLD.mode, OLD.as_of, OLD.scenario, OLD.params, OLD.input_digest,
              OLD.software_version, OLD.forced) THEN
            RAISE EXCEPTION 'run life cycle: only the status of run % may change', OLD.run_id
              USING ERRCODE = 'insufficient_privilege';
          END IF;
          IF NEW.status IS DISTINCT FROM OLD.status AND NOT (
               (OLD.status {eq} 'draft' AND NEW.status {eq} 'committed')
            OR (OLD.status {eq} 'committed' AND NEW.status {eq} 'reverted')) THEN
            RAISE EXCEPTION 'run life cycle: run % cannot go from % to %; a run goes draft -> committed -> reverted only (landquota commit / revert)',
              OLD.run_id, OLD.status, NEW.status USING ERRCODE = 'insufficient_privilege';
          END IF;
          RETURN NEW;
        END $$""",
        f"DROP TRIGGER IF EXISTS allocation_runs_lifecycle ON {s}.allocation_runs",
        f"""CREATE TRIGGER allocation_runs_lifecycle BEFORE UPDATE OR DELETE ON {s}.allocation_runs
        FOR EACH ROW EXECUTE FUNCTION {s}.landquota_run_lifecycle()""",
        f"""CREATE OR REPLACE FUNCTION {s}.landquota_allocations_frozen() RETURNS trigger
        LANGUAGE plpgsql {path} AS $$
        BEGIN
          IF EXISTS (SELECT 1 FROM {s}.allocation_runs r
                      WHERE r.run_id {eq} OLD.run_id AND r.status OPERATOR(pg_catalog.<>) 'draft') THEN
            RAISE EXCEPTION 'the allocations of run % never change once it is committed', OLD.run_id
              USING ERRCODE = 'insufficient_privilege';
          END IF;
          IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
          RETURN NEW;
        END $$""",
        f"DROP TRIGGER IF EXISTS allocations_frozen ON {s}.allocations",
        f"""CREATE TRIGGER allocations_frozen BEFORE UPDATE OR DELETE ON {s}.allocations
        FOR EACH ROW EXECUTE FUNCTION {s}.landquota_allocations_frozen()""",
        # Checked when the transaction commits (deferred): a status change and its
        # ledger entries must arrive together, in either order, or not at all.
        f"""CREATE OR REPLACE FUNCTION {s}.landquota_run_consistency() RETURNS trigger
        LANGUAGE plpgsql {path} AS $$
        DECLARE rid text; st text; bad text;
        BEGIN
          IF TG_OP = 'DELETE' THEN rid := OLD.run_id; ELSE rid := NEW.run_id; END IF;
          IF rid IS NULL THEN RETURN NULL; END IF;
          SELECT r.status INTO st FROM {s}.allocation_runs r WHERE r.run_id {eq} rid;
          IF NOT FOUND THEN RETURN NULL; END IF;
          IF st {eq} 'draft' THEN
            IF EXISTS (SELECT 1 FROM {s}.quota_ledger l WHERE l.run_id {eq} rid) THEN
              RAISE EXCEPTION 'run life cycle: run % is a draft but has ledger entries; debits are written only by committing it (landquota commit)', rid
                USING ERRCODE = 'integrity_constraint_violation';
            END IF;
            RETURN NULL;
          END IF;
          SELECT e.pool INTO bad FROM ({need}) e(pool, need)
           WHERE pg_catalog.abs(e.need OPERATOR(pg_catalog.+) (SELECT coalesce(pg_catalog.sum(l.amount), 0)
                   FROM {s}.quota_ledger l WHERE l.run_id {eq} rid AND l.kind {eq} 'allocation'
                   AND l.pool {eq} e.pool)) {gt} {tol}
           LIMIT 1;
          IF FOUND THEN
            RAISE EXCEPTION 'run life cycle: run % is %, but its debits of pool % are not exactly what its allocations give (landquota commit writes them together)', rid, st, bad
              USING ERRCODE = 'integrity_constraint_violation';
          END IF;
          IF st {eq} 'committed' AND EXISTS (SELECT 1 FROM {s}.quota_ledger l
               WHERE l.run_id {eq} rid AND l.kind {eq} 'reversal') THEN
            RAISE EXCEPTION 'run life cycle: run % has reversals but is still committed (landquota revert changes both)', rid
              USING ERRCODE = 'integrity_constraint_violation';
          END IF;
          IF st {eq} 'reverted' AND EXISTS (SELECT 1 FROM {s}.quota_ledger d
               WHERE d.run_id {eq} rid AND d.kind {eq} 'allocation' AND NOT EXISTS (
                 SELECT 1 FROM {s}.quota_ledger r WHERE r.kind {eq} 'reversal' AND r.reverses {eq} d.entry_id)) THEN
            RAISE EXCEPTION 'run life cycle: run % is reverted only together with the reversal of each of its debits (landquota revert)', rid
              USING ERRCODE = 'integrity_constraint_violation';
          END IF;
          RETURN NULL;
        END $$""",
        f"DROP TRIGGER IF EXISTS allocation_runs_consistency ON {s}.allocation_runs",
        f"""CREATE CONSTRAINT TRIGGER allocation_runs_consistency AFTER INSERT OR UPDATE
        ON {s}.allocation_runs DEFERRABLE INITIALLY DEFERRED
        FOR EACH ROW EXECUTE FUNCTION {s}.landquota_run_consistency()""",
        f"DROP TRIGGER IF EXISTS quota_ledger_consistency ON {s}.quota_ledger",
        f"""CREATE CONSTRAINT TRIGGER quota_ledger_consistency AFTER INSERT
        ON {s}.quota_ledger DEFERRABLE INITIALLY DEFERRED
        FOR EACH ROW WHEN (NEW.run_id IS NOT NULL) EXECUTE FUNCTION {s}.landquota_run_consistency()""",
        # entries removed behind the append-only trigger's back (the owner can disable it)
        f"DROP TRIGGER IF EXISTS quota_ledger_consistency_delete ON {s}.quota_ledger",
        f"""CREATE CONSTRAINT TRIGGER quota_ledger_consistency_delete AFTER DELETE
        ON {s}.quota_ledger DEFERRABLE INITIALLY DEFERRED
        FOR EACH ROW WHEN (OLD.run_id IS NOT NULL) EXECUTE FUNCTION {s}.landquota_run_consistency()""",
    ]


class PostgisWorkspace(Workspace):
    """A workspace in one schema of a PostGIS database."""

    kind = "postgis"

    def __init__(self, url: str, *, create: bool = False, settings: Settings) -> None:
        self.target = url
        sa_url, self.schema = split_url(url, settings.pg_schema)
        try:
            self.engine: Engine = sa.create_engine(sa_url, pool_pre_ping=True, hide_parameters=True)
            # before the first connection, so that it stays in the pool for the open's checks
            sa.event.listen(self.engine, "connect", _own_search_path(self.schema))
            with self.engine.connect() as con:
                con.execute(sa.text("SELECT 1"))
        except sa.exc.OperationalError as exc:
            raise WorkspaceError(
                f"cannot connect to {mask_url(url)!r}: {mask_url(str(exc.orig)).strip()}. Check that "
                "the server runs, the database exists and the user may log in."
            ) from None
        except (sa.exc.ArgumentError, ValueError) as exc:
            raise ParameterError(
                f"--db {mask_url(url)!r} is not a valid PostgreSQL URL: {exc}"
            ) from None
        self.md = build_metadata(self.schema)
        exists = self._schema_exists()
        if not exists:
            if not create:
                self.engine.dispose()
                raise WorkspaceError(
                    f"{mask_url(url)!r} has no landquota workspace in schema {self.schema!r}; create "
                    f"it with `landquota init --db '{mask_url(url)}'`"
                )
            try:
                self._create()
            except BaseException:  # a refused schema (public, another program's): no pool left open
                self.engine.dispose()
                raise

    # --- plumbing ----------------------------------------------------------------
    def _schema_exists(self) -> bool:
        with self.engine.connect() as con:
            q = "SELECT to_regclass(:t) IS NOT NULL"
            try:
                return bool(con.execute(sa.text(q), {"t": f'"{self.schema}".landquota_meta'}).scalar())
            except sa.exc.ProgrammingError as exc:
                if not isinstance(exc.orig, psycopg.errors.InsufficientPrivilege):
                    raise
                con.rollback()
                who = con.execute(sa.text("SELECT session_user")).scalar()
        self.engine.dispose()  # after the connection went back to the pool
        raise WorkspaceError(
            f"login {who!r} may not use schema {self.schema!r} of {mask_url(self.target)!r}; "
            f"the workspace owner gives it a role with `landquota db grant --assign {who}=viewer` "
            "(or editor, approver)"
        )

    def table(self, name: str) -> sa.Table:
        """Return the SQLAlchemy table of a layer."""
        return self.md.tables[f"{self.schema}.{name}"]

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as con:
                yield con
        except sa.exc.IntegrityError as exc:
            raise DataError(f"the workspace refused the write: {_pg_message(exc)}") from None
        except sa.exc.InternalError as exc:
            raise LedgerError(f"the workspace refused the write: {_pg_message(exc)}") from None
        except sa.exc.ProgrammingError as exc:
            raise WorkspaceError(f"the workspace refused the write: {_pg_message(exc)}") from None
        except psycopg.errors.IntegrityError as exc:  # raised by COPY on the raw connection
            raise DataError(f"the workspace refused the write: {_pg_message(exc)}") from None
        except (psycopg.errors.RaiseException, psycopg.errors.InsufficientPrivilege) as exc:
            raise LedgerError(f"the workspace refused the write: {_pg_message(exc)}") from None
        except psycopg.errors.DataError as exc:
            raise DataError(f"the workspace refused the write: {_pg_message(exc)}") from None

    def close(self) -> None:
        """Dispose of the connection pool."""
        self.engine.dispose()

    def user(self) -> str:
        """Return the database login (``session_user``), recorded on every write."""
        with self.engine.connect() as con:
            return str(con.execute(sa.text("SELECT session_user")).scalar())

    def _create(self) -> None:
        from landquota._version import __version__
        from landquota.store.schema_guard import check_can_create

        with self._tx() as con:
            # never in public, never among another program's objects (issue 12)
            check_can_create(con, self.schema, self._own_tables())
            # in `public` as before: the connection's own search_path starts at pg_catalog,
            # where an extension must not go
            con.execute(sa.text("CREATE EXTENSION IF NOT EXISTS postgis SCHEMA public"))
            con.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"'))
            con.execute(sa.text(f"SET LOCAL search_path = {_search_path(con, self.schema)}"))
            build_metadata(self.schema, ddl=True).create_all(con)
            for stmt in _ledger_sql(self.schema):
                con.execute(sa.text(stmt))
            for stmt in stamp_triggers_sql(self.schema):
                con.execute(sa.text(stmt))
            meta = self.table("landquota_meta")
            con.execute(
                meta.insert(),
                [
                    {"key": "schema_version", "value": str(SCHEMA_VERSION)},
                    {"key": "created_by_version", "value": __version__},
                    {"key": "created_at", "value": pd.Timestamp.now(tz="UTC").isoformat()},
                ],
            )

    def _add_layers(self, names: Sequence[str]) -> None:
        ddl = build_metadata(self.schema, ddl=True)  # GeoAlchemy2's GiST index DDL
        with self._tx() as con:
            for name in names:
                ddl.tables[f"{self.schema}.{name}"].create(con)
            # the roles made by `landquota db grant` see the new tables once it is run again
            # (it is idempotent); new tables get no grants of their own here.

    def _recode(self, name: str, column: str, mapping: Mapping[str, str]) -> None:
        t = self.table(name)
        col = t.c[LAYERS[name].column(column).name]
        with self._tx() as con:
            for old, new in mapping.items():
                con.execute(sa.update(t).where(col == old).values({col.name: new}))

    def _own_tables(self) -> list[str]:
        """Every table landquota makes in the schema: the schema definition's and the lock's."""
        return [*(t.name for t in self.md.tables.values()), LEDGER_LOCK]

    def drop(self) -> None:
        """Drop the workspace schema (administrators; ``init --force``, ``restore --force``).

        Refused, with nothing dropped, for ``public`` and for a schema that holds
        anything not landquota's (:mod:`landquota.store.schema_guard`): no
        ``CASCADE`` ever reaches another workspace or an extension.
        """
        from landquota.store.schema_guard import drop_workspace

        with self._tx() as con:
            drop_workspace(con, self.schema, self._own_tables())
            # QGIS keeps styles outside the schema (public.layer_styles): take ours too
            if con.execute(sa.text("SELECT to_regclass('public.layer_styles')")).scalar():
                con.execute(
                    sa.text(
                        "DELETE FROM public.layer_styles WHERE f_table_catalog = "
                        "current_database() AND f_table_schema = :s"
                    ),
                    {"s": self.schema},
                )

    # --- metadata ----------------------------------------------------------------
    def _meta(self) -> dict[str, str]:
        t = self.table("landquota_meta")
        with self.engine.connect() as con:
            return {k: v for k, v in con.execute(sa.select(t.c.key, t.c.value))}

    def _set_meta(self, key: str, value: str) -> None:
        from sqlalchemy.dialects.postgresql import insert

        t = self.table("landquota_meta")
        stmt = insert(t).values(key=key, value=value)
        with self._tx() as con:
            con.execute(stmt.on_conflict_do_update(index_elements=[t.c.key], set_={"value": value}))

    # --- reading -------------------------------------------------------------------
    def _count(self, lyr: Layer) -> int:
        t = self.table(lyr.name)
        with self.engine.connect() as con:
            return int(con.execute(sa.select(sa.func.count()).select_from(t)).scalar() or 0)

    def _read(
        self, lyr: Layer, bbox: BBox | None, where: Where | None, *, ids_only: bool = False
    ) -> pd.DataFrame:
        """Read rows as ``COPY (SELECT …) TO STDOUT`` CSV, parsed by Arrow's C++ reader.

        Fetching 10⁶ parcels as Python row tuples took 14.5 s; COPY, Arrow's parser
        and a vectorised hex decode of the WKB take about a third of that, close
        to what pyogrio reads from a GeoPackage. Filter values are still never
        spliced by hand: psycopg quotes them (``ClientCursor.mogrify``) into the
        statement that COPY wraps, because COPY takes no bound parameters.
        """
        import pyarrow as pa

        t = self.table(lyr.name)
        names = [lyr.id_column] if ids_only else list(lyr.column_names)
        cols: list[Any] = []
        types: dict[str, Any] = {}
        for c in names:
            typ = lyr.column(c).type
            if typ == "datetime":
                # naive ISO UTC, whatever the session's TimeZone and DateStyle
                cols.append(
                    sa.func.to_char(sa.func.timezone("UTC", t.c[c]), 'YYYY-MM-DD"T"HH24:MI:SS.US').label(c)
                )
            else:
                cols.append(t.c[c])
            types[c] = _ARROW_TYPES[typ]
        geom = lyr.geometry and not ids_only
        if geom:
            cols.append(sa.func.encode(sa.func.ST_AsBinary(t.c[GEOM]), "hex").label("wkb"))
            types["wkb"] = pa.large_string()
        stmt = sa.select(*cols).order_by(t.c.fid)
        sql, params = where_to_sql(lyr, where)
        if sql:
            # where_to_sql checked the column names; values travel as parameters
            pnames = iter(f"p{i}" for i in range(len(params)))
            text = "".join(f":{next(pnames)}" if ch == "?" else ch for ch in sql)
            stmt = stmt.where(
                sa.text(text).bindparams(**{f"p{i}": v for i, v in enumerate(params)})
            )
        if bbox is not None:
            env = sa.func.ST_MakeEnvelope(*bbox, CRS_EPSG)
            stmt = stmt.where(t.c[GEOM].op("&&")(env))
        table = self._copy_csv(stmt, types)
        df: pd.DataFrame = table.drop_columns(["wkb"]).to_pandas() if geom else table.to_pandas()
        if geom:
            wkb = _unhex(table.column("wkb")).to_numpy(zero_copy_only=False)
            df = gpd.GeoDataFrame(df, geometry=shapely.from_wkb(wkb), crs=f"EPSG:{CRS_EPSG}")
        return df

    def _read_bounds(self, lyr: Layer) -> pd.DataFrame:
        import pyarrow as pa

        t = self.table(lyr.name)
        g = t.c[GEOM]
        stmt = sa.select(
            t.c[lyr.id_column],
            sa.func.ST_XMin(g).label("minx"),
            sa.func.ST_YMin(g).label("miny"),
            sa.func.ST_XMax(g).label("maxx"),
            sa.func.ST_YMax(g).label("maxy"),
        ).order_by(t.c.fid)
        types = {lyr.id_column: pa.large_string(), **{c: pa.float64() for c in ("minx", "miny", "maxx", "maxy")}}
        out: pd.DataFrame = self._copy_csv(stmt, types).to_pandas()
        return out

    def _copy_csv(self, stmt: Any, types: dict[str, Any]) -> Any:
        """Run *stmt* as ``COPY (…) TO STDOUT (FORMAT csv)``; return an Arrow table typed *types*."""
        import io

        import psycopg
        import pyarrow as pa
        import pyarrow.csv as pcsv

        compiled = stmt.compile(dialect=self.engine.dialect)
        buf = io.BytesIO()
        with self.engine.connect() as con:
            raw = con.connection.driver_connection
            if raw is None:  # pragma: no cover - only with a closed connection
                raise WorkspaceError("lost the database connection")
            select = psycopg.ClientCursor(raw).mogrify(str(compiled), compiled.params)
            with raw.cursor() as cur, cur.copy(f"COPY ({select}) TO STDOUT (FORMAT csv)") as cp:
                for chunk in cp:
                    buf.write(chunk)
        columns = list(types)
        table: Any
        if buf.tell() == 0:
            table = pa.table({c: pa.array([], type=types[c]) for c in columns})
        else:
            buf.seek(0)
            table = pcsv.read_csv(
                buf,
                read_options=pcsv.ReadOptions(column_names=columns, block_size=1 << 24),
                # text may hold newlines (quoted by COPY); NULL is an unquoted empty
                # field, an empty string a quoted one
                parse_options=pcsv.ParseOptions(newlines_in_values=True),
                convert_options=pcsv.ConvertOptions(
                    column_types=types,
                    strings_can_be_null=True,
                    quoted_strings_can_be_null=False,
                    # only COPY's NULL; Arrow's default list would turn the text 'null',
                    # 'NaN' or 'N/A' into NULL too (found by the hostile-input tests)
                    null_values=[""],
                    true_values=["t"],
                    false_values=["f"],
                ),
            )
        return table

    # --- writing ---------------------------------------------------------------------
    def _write(self, frames: Mapping[str, Frame], mode: WriteMode, *, progress: bool) -> None:
        from landquota._progress import progress_bar

        with self._tx() as con:
            ledger_start = None
            if "quota_ledger" in frames:
                self._lock_ledger(con)
                ledger_start = self._max_fid(con, "quota_ledger")
            if mode == "replace":
                for name in reversed(list(frames)):
                    con.execute(self.table(name).delete())
            for name, df in frames.items():
                if mode == "update":
                    df = self._update_rows(con, LAYERS[name], df)  # what is left are new ids
                with progress_bar(len(df), f"write {name}", enabled=progress) as bar:
                    self._copy(con, LAYERS[name], df, bar)
            if ledger_start is not None:
                # ledger rows written as a layer (the demo's opening balances) are chained too
                self._chain(con, after_fid=ledger_start, run_id=None)

    def _update_rows(self, con: Connection, lyr: Layer, df: Frame) -> Frame:
        """Rewrite in place the rows of *df* whose id is already there; return the others.

        Mode ``update``: the rows go by binary COPY into a temporary table dropped at
        commit, then one ``UPDATE … FROM`` rewrites the matching rows. Each row keeps
        its fid, so rows of other layers that refer to it stay valid (the foreign keys
        are immediate: a delete and insert would be refused).
        """
        key = lyr.id_column
        table = f'"{self.schema}"."{lyr.name}"'
        ids = [str(v) for v in df[key]]
        present = {
            str(r[0])
            for r in con.execute(
                sa.text(f'SELECT "{key}" FROM {table} WHERE "{key}" = ANY(:ids)'), {"ids": ids}
            )
        }
        hit = df[key].astype(str).isin(present).to_numpy()
        old = df[hit]
        if len(old):
            names = list(lyr.column_names) + ([GEOM] if lyr.geometry else [])
            cols = ", ".join(f'"{n}"' for n in names)
            con.execute(sa.text("DROP TABLE IF EXISTS pg_temp._lq_update"))
            con.execute(
                sa.text(
                    f"CREATE TEMP TABLE _lq_update ON COMMIT DROP AS "
                    f"SELECT {cols} FROM {table} WITH NO DATA"
                )
            )
            self._copy(con, lyr, old, None, into="pg_temp._lq_update")
            sets = ", ".join(f'"{n}" = u."{n}"' for n in names if n != key)
            con.execute(
                sa.text(f'UPDATE {table} t SET {sets} FROM pg_temp._lq_update u WHERE t."{key}" = u."{key}"')
            )
            con.execute(sa.text("DROP TABLE pg_temp._lq_update"))
        return df[~hit]

    def _copy(
        self, con: Connection, lyr: Layer, df: Frame, bar: Any, *, into: str | None = None
    ) -> None:
        # Binary COPY: no text formatting on our side and no hex/number parsing on
        # the server's (the anchors' floor: 2.2 s per 10^6 parcels, against 6.1 s for
        # text with hex EWKB). Rows are framed by Arrow kernels, see _binary_rows.
        # *into*: another table of the same columns (qualified), e.g. _update_rows' temp table.
        names = list(lyr.column_names) + ([GEOM] if lyr.geometry else [])
        raw = con.connection.driver_connection
        if raw is None:  # pragma: no cover - only with a closed connection
            raise WorkspaceError("lost the database connection")
        ident = ", ".join(f'"{n}"' for n in names)
        batch = 100_000
        target = into or f'"{self.schema}"."{lyr.name}"'
        sql = f"COPY {target} ({ident}) FROM STDIN (FORMAT BINARY)"
        with raw.cursor() as cur, cur.copy(sql) as cp:
            cp.write(_COPY_SIGNATURE)
            for start in range(0, len(df), batch):
                part = df.iloc[start : start + batch]
                cp.write(_binary_rows(lyr, part))
                if bar is not None:
                    bar.update(len(part))
            cp.write(_COPY_TRAILER)

    def _lock_ledger(self, con: Connection) -> None:
        """Take the ledger lock: wait at most LOCK_TIMEOUT_S, then name who holds it.

        ``LOCK TABLE … IN EXCLUSIVE MODE`` needs UPDATE on the lock table, which
        only ledger writers have; the R6 trigger takes the same lock, so a direct
        insert through psql queues behind (or ahead of) us as well.
        """
        timeout = lock_timeout()
        ms = max(1, int(timeout * 1000))
        con.execute(sa.text(f"SET LOCAL lock_timeout = {ms}"))
        try:
            con.execute(sa.text(f'LOCK TABLE "{self.schema}".{LEDGER_LOCK} IN EXCLUSIVE MODE'))
        except sa.exc.OperationalError as exc:
            if getattr(exc.orig, "sqlstate", None) != "55P03":  # lock_not_available
                raise WorkspaceError(f"cannot lock the ledger: {_pg_message(exc)}") from None
            raise ConcurrencyError(
                f"the ledger of {mask_url(self.target)!r} is locked by {self._lock_holders()} and "
                f"stayed locked for {timeout:g} s; nothing was written. Try again when "
                "that transaction has finished (an administrator can end it with "
                "SELECT pg_terminate_backend(pid))"
            ) from None
        except sa.exc.ProgrammingError as exc:  # insufficient_privilege: not a ledger writer
            if getattr(exc.orig, "sqlstate", None) != "42501":
                raise WorkspaceError(f"cannot lock the ledger: {_pg_message(exc)}") from None
            # R6: only approvers write the ledger. One refusal naming the login and the grant
            # that fixes it, not the database's "permission denied for table …"
            who = self.user()
            raise LedgerError(
                f"login {who!r} may not commit or revert runs of {mask_url(self.target)!r}: that "
                f"needs the approver role (审批员); the workspace owner gives it with "
                f"`landquota db grant --assign {who}=approver`; nothing was written"
            ) from None

    def _lock_holders(self) -> str:
        """Who holds a lock on the ledger lock table, from pg_locks + pg_stat_activity."""
        q = sa.text(
            "SELECT a.usename, a.pid, a.application_name, a.state, a.xact_start "
            "FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a "
            "ON a.pid OPERATOR(pg_catalog.=) l.pid "
            "WHERE l.locktype OPERATOR(pg_catalog.=) 'relation' AND l.granted "
            "AND l.relation OPERATOR(pg_catalog.=) CAST(:t AS pg_catalog.regclass) "
            "AND l.mode OPERATOR(pg_catalog.<>) 'AccessShareLock' "
            "AND l.pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid()"
        )
        try:
            with self.engine.connect() as c:
                rows = c.execute(q, {"t": f'"{self.schema}".{LEDGER_LOCK}'}).all()
        except sa.exc.SQLAlchemyError:  # pragma: no cover - the message still says what happened
            return "another session"
        if not rows:
            return "another session (it has just finished)"
        out = []
        for user, pid, app, state, since in rows:
            bits = [f"pid {pid}"]
            if app:
                bits.append(f"application {app!r}")
            if state:
                bits.append(str(state))
            if since is not None:
                bits.append(f"transaction open since {pd.Timestamp(since).tz_convert('UTC'):%Y-%m-%d %H:%M:%S} UTC")
            out.append(f"{user!r} ({', '.join(bits)})")
        return "; ".join(out)

    def _max_fid(self, con: Connection, name: str) -> int:
        t = self.table(name)
        return int(con.execute(sa.select(sa.func.coalesce(sa.func.max(t.c.fid), 0))).scalar() or 0)

    def _append_ledger(self, entries: Frame, transition: RunTransition | None) -> None:
        t = self.table("quota_ledger")
        with self._tx() as con:
            # The lock the R6 trigger takes too: waiting here first means our own balance
            # check below already sees every earlier commit, and can name the pool that
            # would go negative before the database refuses; the chain's last link
            # cannot move under us either.
            self._lock_ledger(con)
            if transition is not None:
                self._check_transition(con, transition)
            res = con.execute(sa.select(*(t.c[c] for c in LEDGER_CHECK_COLUMNS)))
            check_ledger(pd.DataFrame(res.fetchall(), columns=LEDGER_CHECK_COLUMNS), entries)
            start = self._max_fid(con, "quota_ledger")
            self._copy(con, LAYERS["quota_ledger"], entries, _Null())
            if transition is not None:
                self._set_status(con, transition)
            self._chain(con, after_fid=start, run_id=transition.run_id if transition else None)

    def _check_transition(self, con: Connection, tr: RunTransition) -> None:
        runs = self.table("allocation_runs")
        row = con.execute(
            sa.select(runs.c.status).where(runs.c.run_id == tr.run_id).with_for_update()
        ).first()
        tr.check(None if row is None else row[0], "this workspace")

    def _set_status(self, con: Connection, tr: RunTransition) -> None:
        runs = self.table("allocation_runs")
        con.execute(
            runs.update()
            .where(runs.c.run_id == tr.run_id)
            .values(
                status=tr.to_status,
                status_changed_at=sa.func.date_trunc("milliseconds", sa.func.now()),
                status_changed_by=sa.func.session_user(),
            )
        )

    def _chain(
        self,
        con: Connection,
        *,
        after_fid: int | None,
        run_id: str | None,
        extra: Sequence[tuple[str, str, str]] = (),
    ) -> None:
        """Append the links of the entries after *after_fid* and of *run_id*'s status.

        Rows are read back as the database stored (and stamped) them, inside the
        write's transaction, so the links hash exactly what ``verify`` reads later.
        """
        from landquota.store.chain import chain_items, new_links

        def read(name: str, cond: Any) -> pd.DataFrame:
            lyr = LAYERS[name]
            t = self.table(name)
            res = con.execute(
                sa.select(*(t.c[c] for c in lyr.column_names)).where(cond(t)).order_by(t.c.fid)
            )
            return coerce_frame(lyr, pd.DataFrame(res.fetchall(), columns=list(res.keys())))

        entries = None
        if after_fid is not None:
            entries = read("quota_ledger", lambda t: t.c.fid > after_fid)
        run = allocs = None
        if run_id is not None:
            run = read("allocation_runs", lambda t: t.c.run_id == run_id)
            allocs = read("allocations", lambda t: t.c.run_id == run_id)
        items = [*chain_items(entries, run, allocs), *extra]
        if not items:
            return
        c = self.table("ledger_chain")
        last = con.execute(sa.select(c.c.seq, c.c.hash).order_by(c.c.seq.desc()).limit(1)).first()
        links = new_links(0 if last is None else int(last[0]), None if last is None else str(last[1]), items)
        lyr = LAYERS["ledger_chain"]
        self._copy(con, lyr, prepare_frame(lyr, links, source="ledger chain"), _Null())

    def _install_chain(self) -> None:
        """Install schema version 2: chain table, hardened triggers, chain over existing rows."""
        from landquota.store.stamps import stamp_triggers_sql

        with self._tx() as con:
            self.table("ledger_chain").create(con, checkfirst=True)
            for stmt in _ledger_sql(self.schema):
                con.execute(sa.text(stmt))
            for stmt in stamp_triggers_sql(self.schema):
                con.execute(sa.text(stmt))
            self._lock_ledger(con)
            if self._max_fid(con, "ledger_chain"):
                return
            self._chain(con, after_fid=0, run_id=None)
            runs = self.table("allocation_runs")
            rids = con.execute(
                sa.select(runs.c.run_id).where(runs.c.status != "draft").order_by(runs.c.fid)
            ).scalars().all()
            for rid in rids:
                self._chain(con, after_fid=None, run_id=str(rid))

    def set_run_status(self, transition: RunTransition) -> None:
        """Change a run's status atomically (fails if it is not in ``from_status``)."""
        with self._tx() as con:
            self._lock_ledger(con)
            self._check_transition(con, transition)
            self._set_status(con, transition)
            self._chain(con, after_fid=None, run_id=transition.run_id)


_POSTGIS_SCHEMA_SQL = (
    "SELECT n.nspname FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n "
    "ON n.oid OPERATOR(pg_catalog.=) e.extnamespace "
    "WHERE e.extname OPERATOR(pg_catalog.=) 'postgis'"
)


def _path_text(schema: str, postgis_schema: str | None) -> str:
    """``pg_catalog``, the workspace schema, PostGIS's schema, ``pg_temp`` (in that order)."""
    names = ["pg_catalog", schema]
    if postgis_schema is not None and postgis_schema not in names:
        names.append(postgis_schema)
    return ", ".join('"' + n.replace('"', '""') + '"' for n in names) + ", pg_temp"


def _search_path(con: Any, schema: str) -> str:
    row = con.execute(sa.text(_POSTGIS_SCHEMA_SQL)).first()
    return _path_text(schema, None if row is None else str(row[0]))


def _own_search_path(schema: str) -> Any:
    """Return a connect hook: every connection sets its own search_path.

    ``pg_catalog`` comes first, so built-in operators and casts are found before
    anything another role created; ``pg_temp`` is named last; ``public`` is on
    the path only when PostGIS lives there (its functions and types are needed).
    """
    found: list[str] = []  # the path once PostGIS is found: later connections skip the lookup

    def hook(dbapi_con: Any, _record: Any) -> None:
        with dbapi_con.cursor() as cur:
            if found:
                path = found[0]
            else:
                cur.execute(_POSTGIS_SCHEMA_SQL)
                row = cur.fetchone()
                path = _path_text(schema, None if row is None else str(row[0]))
                if row is not None:  # not cached before `init` creates the extension
                    found.append(path)
            cur.execute(f"SET search_path = {path}")
        dbapi_con.commit()  # a SET inside a transaction that rolls back would be undone

    return hook


class _Null:
    def update(self, n: int = 1) -> None:
        """No progress for small writes."""


def _pg_message(exc: BaseException) -> str:
    orig = getattr(exc, "orig", exc)
    diag = getattr(orig, "diag", None)
    msg = getattr(diag, "message_primary", None) or str(orig).splitlines()[0]
    detail = getattr(diag, "message_detail", None)
    return mask_url(msg + (f" ({detail})" if detail else ""))


# --- CSV COPY reads ----------------------------------------------------------------------
def _arrow_types() -> dict[str, Any]:
    import pyarrow as pa

    return {
        "text": pa.large_string(),
        "json": pa.large_string(),
        "real": pa.float64(),
        "integer": pa.int64(),
        "boolean": pa.bool_(),
        "date": pa.date32(),
        "datetime": pa.timestamp("us"),
    }


_ARROW_TYPES = _arrow_types()

def _hex_pairs() -> np.ndarray:
    """Byte value of every two-character hex pair, indexed by the pair read as little-endian uint16."""
    nib = np.zeros(256, dtype=np.uint16)
    for i, ch in enumerate(b"0123456789abcdef"):
        nib[ch] = i
    for i, ch in enumerate(b"ABCDEF"):
        nib[ch] = 10 + i
    pair = np.arange(65536, dtype=np.uint32)
    table: np.ndarray = ((nib[pair & 0xFF] << 4) | nib[pair >> 8]).astype(np.uint8)
    return table


_HEX_PAIRS = _hex_pairs()


def _unhex(column: Any) -> Any:
    """Decode a column of hex text (``encode(…, 'hex')``) into Arrow binary, vectorised.

    GEOS reads hex WKB five times slower than binary, and ``bytes.fromhex`` per row
    is a Python call each: one table lookup over the whole buffer does them all.
    """
    import pyarrow as pa

    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    arr = arr.cast(pa.large_string())
    if arr.offset:
        arr = pa.concat_arrays([arr])  # a fresh array: buffers start at row 0
    n = len(arr)
    validity, offsets, data = arr.buffers()
    off = np.frombuffer(offsets, dtype=np.int64)[: n + 1] if n else np.zeros(1, dtype=np.int64)
    raw = np.frombuffer(data, dtype=np.uint8) if data is not None else np.empty(0, dtype=np.uint8)
    # one gather per output byte: the two hex digits read together as a uint16
    out = _HEX_PAIRS[raw[off[0] : off[-1]].view("<u2")]
    return pa.Array.from_buffers(
        pa.large_binary(), n, [validity, pa.py_buffer((off - off[0]) // 2), pa.py_buffer(out)],
        null_count=arr.null_count,
    )


# --- binary COPY ------------------------------------------------------------------------
_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
_COPY_TRAILER = b"\xff\xff"
_PG_EPOCH_DAYS = 10_957  # 2000-01-01 - 1970-01-01, in days
_PG_EPOCH_US = _PG_EPOCH_DAYS * 86_400 * 1_000_000
_NULL = b"\xff\xff\xff\xff"  # field length -1
#: little-endian EWKB header: type 6 (MultiPolygon) with the SRID flag, then SRID 4490
_EWKB_MULTIPOLYGON_4490 = (
    b"\x01" + (6 | 0x20000000).to_bytes(4, "little") + CRS_EPSG.to_bytes(4, "little")
)


def _fixed_field(values: np.ndarray, na: np.ndarray, fmt: str) -> Any:
    """One fixed-width column as Arrow binary: int32 length + big-endian value, or -1 for NULL."""
    import pyarrow as pa

    width = np.dtype(fmt).itemsize
    rec = np.empty(len(values), dtype=[("len", ">i4"), ("v", fmt)])
    rec["len"] = width
    rec["v"] = values
    full = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(4 + width), len(rec), [None, pa.py_buffer(rec.tobytes())]
    )
    arr = full.cast(pa.binary())
    if na.any():
        arr = pa.compute.if_else(pa.array(na), pa.scalar(_NULL, pa.binary()), arr)
    return arr


def _var_field(payload: Any, na: np.ndarray) -> Any:
    """Return a variable-width Arrow binary column prefixed with its int32 lengths (-1 for NULL)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    payload = pc.fill_null(payload, b"")
    lens = pc.binary_length(payload).to_numpy(zero_copy_only=False).astype(">i4")
    lens[na] = -1
    prefix = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(4), len(lens), [None, pa.py_buffer(lens.tobytes())]
    )
    return pc.binary_join_element_wise(
        prefix.cast(pa.binary()), payload, pa.scalar(b"", pa.binary())
    )


def _binary_rows(lyr: Layer, df: Frame, *, wkb: Any = None) -> Any:
    """Return the rows of *df* in PostgreSQL's binary COPY format (without signature/trailer).

    Every field becomes an Arrow binary array of (length, value) pieces and one
    Arrow kernel joins them row-wise, so no Python loop runs per row. Values are
    canonical frames (``prepare_frame``): text str/NaN, float64, Int64, bool,
    datetime64[ns] (date) and datetime64[ns, UTC] (datetime); geometries go as
    EWKB with SRID 4490, which ``geometry_recv`` accepts. *wkb*, when given, is
    the geometries' own WKB (an importer passing the source's bytes through, as
    bytes objects or an Arrow binary array), every one present and non-empty; it
    is used, without looking at the frame's geometries, if every value is a
    little-endian 2D MultiPolygon, otherwise the geometries are encoded as usual.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(df)
    cols = list(lyr.column_names)
    fields: list[Any] = []
    header = np.full(n, len(cols) + (1 if lyr.geometry else 0), dtype=">i2")
    fields.append(
        pa.FixedSizeBinaryArray.from_buffers(
            pa.binary(2), n, [None, pa.py_buffer(header.tobytes())]
        ).cast(pa.binary())
    )
    for c in cols:
        col = lyr.column(c)
        s = df[c]
        na = s.isna().to_numpy()
        if col.type in ("text", "json"):
            txt = arrow_text(s)  # the Arrow buffers themselves, no Python strings
            if txt is None:
                txt = pa.array(
                    s.astype(object).where(~na, None).to_numpy(dtype=object), type=pa.string()
                )
            fields.append(_var_field(txt.cast(pa.binary()), na))
        elif col.type == "real":
            fields.append(_fixed_field(s.to_numpy(dtype="float64", na_value=0.0), na, ">f8"))
        elif col.type == "integer":
            fields.append(
                _fixed_field(s.astype("float64").fillna(0).to_numpy().astype("int64"), na, ">i8")
            )
        elif col.type == "boolean":
            fields.append(_fixed_field(s.fillna(False).to_numpy(dtype=bool).astype("u1"), na, "u1"))
        elif col.type == "date":
            days = (
                s.to_numpy(dtype="datetime64[ns]").astype("datetime64[D]").astype("int64")
                - _PG_EPOCH_DAYS
            )
            fields.append(_fixed_field(np.where(na, 0, days).astype("int32"), na, ">i4"))
        else:  # datetime, UTC
            us = s.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
            us = us.astype("datetime64[us]").astype("int64") - _PG_EPOCH_US
            fields.append(_fixed_field(np.where(na, 0, us), na, ">i8"))
    if lyr.geometry:
        given = binary_array(wkb) if wkb is not None and len(wkb) == n else None
        head = pa.scalar(b"\x01\x06\x00\x00\x00", pa.binary())
        if (
            given is not None
            and given.null_count == 0
            and pc.all(pc.equal(pc.binary_slice(given, 0, 5), head)).as_py()
        ):
            # the source's WKB goes in as it is, behind its field length and the EWKB
            # header, as three pieces of the one row join below: its bytes are copied
            # once more, not three times (issue 18). The frame's geometries are not
            # looked at: an importer may not have decoded them at all (convert._decode)
            lens = (pc.binary_length(given).to_numpy() + (len(_EWKB_MULTIPOLYGON_4490) - 5)).astype(">i4")
            fields.append(pa.FixedSizeBinaryArray.from_buffers(
                pa.binary(4), n, [None, pa.py_buffer(lens.tobytes())]).cast(pa.binary()))
            fields.append(pa.scalar(_EWKB_MULTIPOLYGON_4490, pa.binary()))
            fields.append(pc.binary_slice(given, 5, 2**31 - 1))
            return _join_rows(fields, n)
        g = np.asarray(df.geometry.values, dtype=object)
        missing = shapely.is_missing(g)
        if given is not None and missing.all():
            # the WKB stands for geometries that were never decoded (an importer's valid
            # batch) but is not the plain kind passed through: decode it, never write NULLs
            g = shapely.from_wkb(np.asarray(given.to_numpy(zero_copy_only=False), dtype=object))
            missing = shapely.is_missing(g)
        present = g[~missing]
        if len(present) and (shapely.get_type_id(present) == 6).all():
            # All 2D MultiPolygons (the contract): ISO WKB with the EWKB header swapped
            # in by an Arrow kernel is much cheaper than set_srid on every geometry.
            iso = pa.array(shapely.to_wkb(g, byte_order=1, output_dimension=2), type=pa.binary())
            wkb_arr = pc.binary_join_element_wise(
                pa.scalar(_EWKB_MULTIPOLYGON_4490, pa.binary()),
                pc.binary_slice(iso, 5, 2**31 - 1),
                pa.scalar(b"", pa.binary()),
            )
        else:
            wkb_arr = pa.array(
                shapely.to_wkb(
                    shapely.set_srid(g, CRS_EPSG), include_srid=True, output_dimension=2
                ),
                type=pa.binary(),
            )
        fields.append(_var_field(wkb_arr, missing))
    return _join_rows(fields, n)


def _join_rows(fields: list[Any], n: int) -> Any:
    """Join the fields' pieces row by row (one Arrow kernel) and return the rows' bytes as a memoryview."""
    import pyarrow as pa
    import pyarrow.compute as pc

    rows = pc.binary_join_element_wise(*fields, pa.scalar(b"", pa.binary()))
    offsets = rows.buffers()[1]
    start, end = (
        np.frombuffer(offsets, dtype=np.int32)[[rows.offset, rows.offset + n]] if n else (0, 0)
    )
    return memoryview(rows.buffers()[2])[int(start) : int(end)] if n else b""

"""Never create or drop a PostGIS workspace where it would harm anything else.

``landquota init --force`` and ``restore --force`` used to run
``DROP SCHEMA <schema> CASCADE``. On ``?schema=public`` that removed the PostGIS
extension and, with it, the geometry column of every other workspace in the
database (issue 12). This module decides what may be dropped:

* the ``public`` schema (PostgreSQL's shared default, where extensions live) and
  the system schemas are never a workspace's schema: creating or dropping one
  there is refused;
* a schema that holds anything that is not landquota's — an extension, another
  table, view, sequence, function, type, operator… — is refused too, naming the
  objects;
* a drop removes landquota's tables and functions by name and then the schema,
  all without ``CASCADE``: if a view of another schema depends on a layer, the
  drop is refused (naming it) rather than taking that view along.

What counts as landquota's: the tables of the schema definition (passed in by
the backend, so tables other modules add are covered), their identity
sequences, indexes, constraints, triggers and row types, the functions their
triggers call, and functions named ``landquota_…`` or ``<one of its tables>_…``
(the naming rule for any function landquota installs).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from landquota.errors import WorkspaceError

__all__ = ["SHARED_SCHEMAS", "check_can_create", "drop_workspace", "foreign_objects"]

#: Schemas that are never a workspace's own: shared by every user of the database.
SHARED_SCHEMAS = frozenset({"public", "information_schema", "topology", "tiger", "tiger_data"})

#: Listed in a refusal; the rest are counted.
_SHOWN = 8

# Every object in the schema that is not landquota's, as "kind name" text. Kept to
# catalog tables PostgreSQL has had since 9.x so it runs on every supported server.
_FOREIGN_SQL = """
WITH ns AS (SELECT oid, nspname FROM pg_namespace WHERE nspname = :s),
own AS (
  SELECT c.oid FROM pg_class c, ns
   WHERE c.relnamespace = ns.oid AND c.relkind IN ('r', 'p') AND c.relname = ANY(:own)
)
SELECT 'extension ' || e.extname FROM pg_extension e, ns WHERE e.extnamespace = ns.oid
UNION ALL
SELECT CASE c.relkind WHEN 'r' THEN 'table ' WHEN 'p' THEN 'table ' WHEN 'v' THEN 'view '
                      WHEN 'm' THEN 'materialized view ' WHEN 'f' THEN 'foreign table '
                      WHEN 'S' THEN 'sequence ' ELSE 'type ' END || format('%I.%I', ns.nspname, c.relname)
  FROM pg_class c, ns
 WHERE c.relnamespace = ns.oid AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S', 'c')
   AND c.oid NOT IN (SELECT oid FROM own)
   AND NOT (c.relkind = 'S' AND EXISTS (
         SELECT 1 FROM pg_depend d
          WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
            AND d.deptype IN ('a', 'i') AND d.refobjid IN (SELECT oid FROM own)))
UNION ALL
SELECT 'function ' || format('%I.%I(%s)', ns.nspname, p.proname, pg_get_function_identity_arguments(p.oid))
  FROM pg_proc p, ns
 WHERE p.pronamespace = ns.oid
   AND NOT (p.proname LIKE 'landquota\\_%' OR p.proname LIKE ANY(:prefixes))
   AND NOT EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgfoid = p.oid AND t.tgrelid IN (SELECT oid FROM own))
UNION ALL
SELECT 'type ' || format('%I.%I', ns.nspname, t.typname) FROM pg_type t, ns
 WHERE t.typnamespace = ns.oid AND t.typrelid = 0 AND t.typcategory <> 'A'
UNION ALL
SELECT 'operator ' || format('%I.%s(%s, %s)', ns.nspname, o.oprname, format_type(o.oprleft, NULL),
                             format_type(o.oprright, NULL))
  FROM pg_operator o, ns WHERE o.oprnamespace = ns.oid
UNION ALL
SELECT 'operator class ' || o.opcname FROM pg_opclass o, ns WHERE o.opcnamespace = ns.oid
UNION ALL
SELECT 'collation ' || o.collname FROM pg_collation o, ns WHERE o.collnamespace = ns.oid
UNION ALL
SELECT 'text search configuration ' || o.cfgname FROM pg_ts_config o, ns WHERE o.cfgnamespace = ns.oid
UNION ALL
SELECT 'conversion ' || o.conname FROM pg_conversion o, ns WHERE o.connamespace = ns.oid
ORDER BY 1
"""


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _like_prefix(name: str) -> str:
    return name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "\\_%"


def foreign_objects(con: sa.Connection, schema: str, own_tables: Sequence[str]) -> list[str]:
    """List the objects in *schema* that are not landquota's (``'extension postgis'``, ``'view s.v'``…)."""
    rows = con.execute(
        sa.text(_FOREIGN_SQL),
        {"s": schema, "own": list(own_tables), "prefixes": [_like_prefix(t) for t in own_tables]},
    ).all()
    return [str(r[0]) for r in rows]


def _shared(schema: str) -> bool:
    return schema in SHARED_SCHEMAS or schema.startswith("pg_")


def _refuse_shared(schema: str, what: str) -> None:
    if _shared(schema):
        raise WorkspaceError(
            f"schema {schema!r} is shared by every user of the database (extensions such as "
            f"PostGIS live there), so landquota never {what} a workspace in it. Give the "
            "workspace a schema of its own: ?schema=landquota (or another new name)"
        )


def _listing(objs: list[str]) -> str:
    more = len(objs) - _SHOWN
    return ", ".join(objs[:_SHOWN]) + (f" and {more} more" if more > 0 else "")


def check_can_create(con: sa.Connection, schema: str, own_tables: Sequence[str]) -> None:
    """Refuse to create a workspace in a shared schema or among another program's objects."""
    _refuse_shared(schema, "creates")
    objs = foreign_objects(con, schema, own_tables)
    if objs:
        raise WorkspaceError(
            f"schema {schema!r} already holds objects that are not landquota's ({_listing(objs)}); "
            "a workspace needs a schema of its own: choose a new name with ?schema=NAME"
        )


def drop_workspace(con: sa.Connection, schema: str, own_tables: Sequence[str]) -> None:
    """Drop landquota's tables and functions in *schema*, then the schema, without CASCADE.

    Raises
    ------
    WorkspaceError
        The schema is shared (``public``…), holds objects that are not
        landquota's, or objects elsewhere depend on the workspace (a view of
        another schema): nothing is dropped.
    """
    import psycopg

    _refuse_shared(schema, "drops")
    objs = foreign_objects(con, schema, own_tables)
    if objs:
        raise WorkspaceError(
            f"schema {schema!r} holds objects that are not landquota's ({_listing(objs)}); dropping "
            "the workspace would destroy them, so nothing was dropped. Move them to another schema "
            "first, or restore/init into a new schema (?schema=NAME)"
        )
    tables = [
        str(r[0])
        for r in con.execute(
            sa.text(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = :s AND c.relkind IN ('r', 'p') AND c.relname = ANY(:own)"
            ),
            {"s": schema, "own": list(own_tables)},
        )
    ]
    functions = [
        str(r[0])
        for r in con.execute(
            sa.text(
                "SELECT format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)) "
                "FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = :s"
            ),
            {"s": schema},
        )
    ]
    try:
        # a savepoint, so a refusal leaves the caller's transaction usable for its message
        with con.begin_nested():
            if tables:  # one statement: the foreign keys between them need no order
                con.execute(sa.text(f"DROP TABLE {', '.join(f'{_q(schema)}.{_q(t)}' for t in tables)}"))
            for fn in functions:  # schema-qualified and quoted by format('%I…')
                con.execute(sa.text(f"DROP FUNCTION {fn}"))
            con.execute(sa.text(f"DROP SCHEMA {_q(schema)}"))
    except sa.exc.InternalError as exc:
        if not isinstance(exc.orig, psycopg.errors.DependentObjectsStillExist):
            raise
        diag = exc.orig.diag
        detail = " ".join(str(x) for x in (diag.message_primary, diag.message_detail) if x)
        raise WorkspaceError(
            f"objects outside schema {schema!r} depend on the workspace ({detail}); nothing was "
            "dropped. Drop or move those objects first"
        ) from None

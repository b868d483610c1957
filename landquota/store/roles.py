"""Database roles of a PostGIS workspace, and who-wrote-what stamps the database enforces.

A land bureau shares one PostGIS among staff with different rights. Three group
roles per workspace carry those rights, and PostgreSQL itself enforces them, so
that no client (landquota, QGIS, psql, a notebook) can go around them:

========== ===================================================================
kind       rights
========== ===================================================================
viewer     USAGE on the schema; SELECT on every table of it (planners).
editor     viewer + INSERT/UPDATE/DELETE on the data layers and
           ``validation_errors``; INSERT on ``allocation_runs`` and
           ``allocations`` (draft runs); the ``import.*`` and
           ``validation.*`` keys of ``landquota_meta``. Not the ledger, not a
           run's status.
approver   viewer + INSERT on the ledger tables (``quota_ledger``,
           ``ledger_chain``) and the ledger lock; UPDATE of ``status``,
           ``status_changed_at`` and ``status_changed_by`` of
           ``allocation_runs`` (commit and revert); and what drafting needs:
           INSERT on ``allocation_runs`` and ``allocations``, writing
           ``validation_errors`` and the ``validation.*`` keys. Not the data
           layers.
========== ===================================================================

The table lists come from the schema definition (:data:`landquota.schema.LAYERS`),
so a layer added there gets the right grants without touching this module:
every layer that is not a ledger, run or findings table is a data layer.
``landquota_meta`` is guarded by row-level security: editor and approver may
insert and update only the keys their commands record.

Roles are cluster-wide in PostgreSQL while a workspace is one schema of one
database, so the role names carry both: ``<database>_<schema>_viewer`` (and
``_editor``, ``_approver``), lower-cased, other characters replaced by ``_``; see
:func:`role_names`. Two databases of one cluster that both use the schema
``landquota`` therefore never share roles.

The stamp triggers (:func:`stamp_triggers_sql`) set ``quota_ledger.entered_by``
and ``allocation_runs.created_by`` / ``status_changed_by`` to ``session_user`` on
every insert (and status change), whatever the writer sent, so that nobody can
record someone else's name. ``session_user`` is the login, even after
``SET ROLE``.

GeoPackage workspaces have no users: protect the file with file-system
permissions (``docs/security.md``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Literal, cast

import sqlalchemy as sa

from landquota.errors import LandquotaError, ParameterError, WorkspaceError
from landquota.store.schema import LAYERS
from landquota.store.stamps import STAMP_TRIGGERS, stamp_triggers_sql
from landquota.store.workspace import APPEND_ONLY, Workspace

if TYPE_CHECKING:
    from landquota.store.postgis import PostgisWorkspace

__all__ = [
    "DATA_LAYERS",
    "FINDINGS_TABLES",
    "LEDGER_TABLES",
    "META_KEYS",
    "ROLE_KINDS",
    "RUN_TABLES",
    "STAMP_TRIGGERS",
    "grant_roles",
    "grants_sql",
    "install_stamp_triggers",
    "installed_stamp_triggers",
    "revoke_role",
    "role_names",
    "stamp_triggers_sql",
]

RoleKind = Literal["viewer", "editor", "approver"]

#: The three kinds of role, from least to most trusted with the ledger.
ROLE_KINDS: tuple[RoleKind, ...] = ("viewer", "editor", "approver")

#: Tables of draft runs: the editor and the approver insert them (allocate).
RUN_TABLES: tuple[str, ...] = ("allocation_runs", "allocations")
#: Findings of ``landquota validate``: replaced by whoever validates (editor, approver).
FINDINGS_TABLES: tuple[str, ...] = ("validation_errors",)
#: The ledger: the append-only tables and the hash chain, which only the approver
#: inserts into (commit, revert). A new table the ledger code writes belongs here.
LEDGER_TABLES: tuple[str, ...] = tuple(
    n for n in LAYERS if n in APPEND_ONLY or n in ("quota_ledger", "ledger_chain")
)
#: Layers an editor may insert into, update and delete from (import, validate):
#: every layer of the schema definition but the ledger and the runs.
DATA_LAYERS: tuple[str, ...] = tuple(n for n in LAYERS if n not in (*LEDGER_TABLES, *RUN_TABLES))
#: ``landquota_meta`` keys each writing role may insert and update (row-level security).
META_KEYS: dict[str, tuple[str, ...]] = {
    "editor": ("import.%", "validation.%"),
    "approver": ("validation.%",),
}

# Columns an approver may change to commit or revert a run (and nothing else of it).
_STATUS_COLUMNS = ("status", "status_changed_at", "status_changed_by")
_MAX_PREFIX = 63 - len("_approver")  # PostgreSQL truncates identifiers at 63 bytes
_LOGIN_RE = re.compile(r"^[^\x00]{1,63}$")


def _q(name: str) -> str:
    """Quote an SQL identifier (names are quoted, never pasted raw)."""
    return '"' + name.replace('"', '""') + '"'


def _postgis(ws: Workspace, what: str) -> PostgisWorkspace:
    if ws.kind != "postgis":
        raise ParameterError(
            f"{what} needs a PostGIS workspace; {ws!r} is a {ws.kind}. A GeoPackage has no "
            "database users: protect the file with file-system permissions instead "
            "(see docs/security.md)"
        )
    return cast("PostgisWorkspace", ws)


def _prefix(database: str, schema: str) -> str:
    base = re.sub(r"[^a-z0-9_]", "_", f"{database}_{schema}".lower())
    if not re.match(r"[a-z_]", base):
        base = "_" + base
    if len(base) > _MAX_PREFIX:
        # keep names unique and deterministic when database + schema are too long
        digest = hashlib.sha1(base.encode()).hexdigest()[:8]
        base = f"{base[: _MAX_PREFIX - 9]}_{digest}"
    return base


def role_names(ws: Workspace) -> dict[RoleKind, str]:
    """Return the group roles of a PostGIS workspace, by kind.

    Returns
    -------
    dict
        ``{"viewer": "<db>_<schema>_viewer", "editor": …, "approver": …}``.

    Examples
    --------
    For the schema ``landquota`` of the database ``bureau`` the roles are
    ``bureau_landquota_viewer``, ``bureau_landquota_editor`` and
    ``bureau_landquota_approver``.
    """
    pws = _postgis(ws, "role_names")
    with pws.engine.connect() as con:
        database = str(con.execute(sa.text("SELECT current_database()")).scalar())
    p = _prefix(database, pws.schema)
    return {kind: f"{p}_{kind}" for kind in ROLE_KINDS}


def grants_sql(schema: str, roles: Mapping[RoleKind, str]) -> list[str]:
    """Return SQL that sets the grants of the three roles on *schema* from scratch.

    Everything is revoked first, so running it again converges on exactly the
    grants documented in this module (and in ``docs/security.md``), whatever was
    granted by hand in between. The roles must exist.
    """
    s = _q(schema)
    v, e, a = (_q(roles[k]) for k in ROLE_KINDS)
    everyone = f"{v}, {e}, {a}"
    t = {name: f"{s}.{_q(name)}" for name in (*LAYERS, "landquota_meta")}
    data = [n for n in DATA_LAYERS if n not in FINDINGS_TABLES]
    meta = t["landquota_meta"]
    stmts = [
        f"REVOKE ALL ON ALL TABLES IN SCHEMA {s} FROM {everyone}",  # column grants too
        f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {s} FROM {everyone}",
        f"REVOKE ALL ON SCHEMA {s} FROM {everyone}",
        # viewer: read everything, write nothing
        f"GRANT USAGE ON SCHEMA {s} TO {everyone}",
        f"GRANT SELECT ON ALL TABLES IN SCHEMA {s} TO {v}",
        f"GRANT {v} TO {e}",
        f"GRANT {v} TO {a}",
        # editor: data layers (import)
        f"GRANT INSERT, UPDATE, DELETE ON {', '.join(t[n] for n in data)} TO {e}",
        # editor and approver: validation findings and draft runs (validate, allocate)
        f"GRANT INSERT, UPDATE, DELETE ON {', '.join(t[n] for n in FINDINGS_TABLES)} TO {e}, {a}",
        f"GRANT INSERT ON {', '.join(t[n] for n in RUN_TABLES)} TO {e}, {a}",
        # approver: ledger entries (R6 still checked by the ledger triggers) and run status
        f"GRANT INSERT ON {', '.join(t[n] for n in LEDGER_TABLES)} TO {a}",
        # the ledger lock: LOCK TABLE … IN EXCLUSIVE MODE needs UPDATE on the table
        f"GRANT UPDATE ON {s}.{_q('ledger_lock')} TO {a}",
        f"GRANT UPDATE ({', '.join(_q(c) for c in _STATUS_COLUMNS)}) "
        f"ON {t['allocation_runs']} TO {a}",
        # landquota_meta: an import records import.<layer> and marks validation stale,
        # validate records validation.*; nobody else may touch the schema version or
        # any other key, so the rows are guarded one by one (the owner is exempt).
        f"ALTER TABLE {meta} ENABLE ROW LEVEL SECURITY",
        f"DROP POLICY IF EXISTS landquota_meta_read ON {meta}",
        f"CREATE POLICY landquota_meta_read ON {meta} FOR SELECT USING (true)",
        f"GRANT INSERT (key, value), UPDATE (value) ON {meta} TO {e}, {a}",
    ]
    for kind, grantee in (("editor", e), ("approver", a)):
        keys = " OR ".join("key LIKE " + "'" + k.replace("'", "''") + "'" for k in META_KEYS[kind])
        stmts += [
            f"DROP POLICY IF EXISTS landquota_meta_{kind} ON {meta}",
            f"CREATE POLICY landquota_meta_{kind} ON {meta} FOR ALL TO {grantee} "
            f"USING ({keys}) WITH CHECK ({keys})",
        ]
    # Identity columns (fid) draw from a sequence; grant it wherever a role inserts.
    inserters: dict[str, list[str]] = {n: [e] for n in data}
    for name in (*FINDINGS_TABLES, *RUN_TABLES, "landquota_meta"):
        inserters[name] = [e, a]
    for name in LEDGER_TABLES:
        inserters[name] = [a]
    for name, who in inserters.items():
        lit = "'" + f"{s}.{_q(name)}".replace("'", "''") + "'"
        stmts.append(
            "DO $$ DECLARE q text := pg_get_serial_sequence("
            f"{lit}, 'fid'); BEGIN IF q IS NOT NULL THEN "
            f"EXECUTE format('GRANT USAGE ON SEQUENCE %s TO {', '.join(who)}', q); END IF; END $$"
        )
    return stmts


def grant_roles(ws: Workspace, *, assign: Mapping[str, str] | None = None) -> dict[RoleKind, str]:
    """Create (idempotently) the viewer, editor and approver roles and set their grants.

    Run it as the workspace owner (or a superuser) with the right to create roles;
    run it again after ``landquota upgrade`` so that new tables are covered.

    Parameters
    ----------
    ws : Workspace
        A PostGIS workspace.
    assign : mapping, optional
        ``{login: kind}`` with kind ``"viewer"``, ``"editor"`` or ``"approver"``:
        make each existing login a member of that role (additive; see
        :func:`revoke_role`).

    Returns
    -------
    dict
        The role names by kind (see :func:`role_names`).

    Raises
    ------
    ParameterError
        Not a PostGIS workspace, an unknown kind, or a login that does not exist.
    WorkspaceError
        The connecting user may not create roles or grant on the schema.
    """
    pws = _postgis(ws, "grant_roles")
    todo = _check_assign(assign or {})
    roles = role_names(pws)
    with _admin_tx(pws, "db grant") as con:
        # Serialise concurrent grant runs: CREATE ROLE has no IF NOT EXISTS.
        con.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('landquota.store.roles'))"))
        for name in roles.values():
            if not _role_exists(con, name):
                con.execute(sa.text(f"CREATE ROLE {_q(name)} NOLOGIN"))
        for stmt in grants_sql(pws.schema, roles):
            con.execute(sa.text(stmt))
        _assign(con, roles, todo)
    return roles


_NEEDS_ADMIN = (
    "`landquota {what}` must run as the workspace owner (the login that created schema {schema!r}"
    "{owner}) or a superuser, with the CREATEROLE attribute; login {who!r} is {lacks}. Connect as "
    "the owner (e.g. --db postgresql://OWNER@host/db?schema={schema}); a superuser can give the "
    "owner CREATEROLE with ALTER ROLE OWNER CREATEROLE"
)


@contextmanager
def _admin_tx(pws: PostgisWorkspace, what: str) -> Iterator[sa.Connection]:
    """Open a transaction as the workspace owner with CREATEROLE; refuse anyone else plainly.

    Checked up front, because PostgreSQL's own refusal names whichever object it met
    first (``permission denied for column "tableoid" of relation "…_fid_seq"``), not
    the cause.
    """
    try:
        with pws._tx() as con:
            row = con.execute(
                sa.text(
                    "SELECT session_user, r.rolsuper, r.rolcreaterole, "
                    "  pg_has_role(n.nspowner, 'USAGE') "
                    "  AND coalesce(bool_and(pg_has_role(c.relowner, 'USAGE')), true), "
                    "  pg_get_userbyid(n.nspowner) "
                    "FROM pg_roles r, pg_namespace n LEFT JOIN pg_class c "
                    "  ON c.relnamespace = n.oid AND c.relkind IN ('r', 'p') "
                    "WHERE r.rolname = current_user AND n.nspname = :s "
                    "GROUP BY session_user, r.rolsuper, r.rolcreaterole, n.nspowner"
                ),
                {"s": pws.schema},
            ).one()
            who, superuser, createrole, owner, owner_name = row
            if not superuser and not (owner and createrole):
                lacks = " and ".join(
                    x for x, ok in (("not the owner", owner), ("without CREATEROLE", createrole)) if not ok
                )
                raise WorkspaceError(
                    _NEEDS_ADMIN.format(what=what, schema=pws.schema, owner=f": {owner_name}",
                                        who=who, lacks=lacks)
                )
            yield con
    except LandquotaError as exc:
        if "permission denied" not in str(exc) or str(exc).startswith("`landquota"):
            raise
        raise WorkspaceError(
            f"{exc}. " + _NEEDS_ADMIN.format(what=what, schema=pws.schema, owner="", who=pws.user(),
                                              lacks="not allowed to do it")
        ) from None


def _check_assign(assign: Mapping[str, str]) -> list[tuple[str, RoleKind]]:
    out: list[tuple[str, RoleKind]] = []
    for login, kind in assign.items():
        if kind not in ROLE_KINDS:
            raise ParameterError(
                f"assign={{{login!r}: {kind!r}}}: the role kind must be one of "
                f"{', '.join(ROLE_KINDS)}"
            )
        if not isinstance(login, str) or not _LOGIN_RE.match(login):
            raise ParameterError(f"login {login!r} is not a PostgreSQL role name (1-63 characters)")
        out.append((login, kind))
    return out


def _role_exists(con: sa.Connection, name: str) -> bool:
    q = sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r")
    return con.execute(q, {"r": name}).first() is not None


def _assign(
    con: sa.Connection, roles: Mapping[RoleKind, str], todo: list[tuple[str, RoleKind]]
) -> None:
    for login, kind in todo:
        if not _role_exists(con, login):
            raise ParameterError(
                f"login {login!r} does not exist in this PostgreSQL cluster; create it first "
                f"(CREATE ROLE {_q(login)} LOGIN PASSWORD '…') and run the grant again"
            )
        con.execute(sa.text(f"GRANT {_q(roles[kind])} TO {_q(login)}"))


def revoke_role(ws: Workspace, login: str, role: str) -> None:
    """Take the role of kind *role* (``viewer``, ``editor``, ``approver``) from *login*.

    Revoking a role the login does not hold is not an error (PostgreSQL only
    warns), so the call is idempotent. Other roles of the login stay.
    """
    pws = _postgis(ws, "revoke_role")
    ((login, kind),) = _check_assign({login: role})
    roles = role_names(pws)
    with _admin_tx(pws, "db grant --revoke") as con:
        if not _role_exists(con, login):
            raise ParameterError(f"login {login!r} does not exist in this PostgreSQL cluster")
        con.execute(sa.text(f"REVOKE {_q(roles[kind])} FROM {_q(login)}"))


def install_stamp_triggers(ws: Workspace) -> tuple[str, ...]:
    """Install the stamp triggers of :func:`stamp_triggers_sql` in one transaction.

    Returns the trigger names installed; a GeoPackage has no database users, so
    there the call does nothing and returns ``()`` (its writes record the
    operating-system login).
    """
    if ws.kind != "postgis":
        return ()
    pws = _postgis(ws, "install_stamp_triggers")
    with pws._tx() as con:
        for stmt in stamp_triggers_sql(pws.schema):
            con.execute(sa.text(stmt))
    return tuple(STAMP_TRIGGERS.values())


def installed_stamp_triggers(con: sa.Connection, schema: str) -> list[tuple[str, str]]:
    """``(table, trigger)`` of the stamp triggers present in *schema*."""
    rows = con.execute(
        sa.text(
            "SELECT c.relname, t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = :s AND t.tgname = ANY(:names)"
        ),
        {"s": schema, "names": list(STAMP_TRIGGERS.values())},
    ).all()
    return [(str(r[0]), str(r[1])) for r in rows]

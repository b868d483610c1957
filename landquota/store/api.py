"""Open or create a workspace: the one entry point that picks the backend.

``open_workspace("demo.gpkg")`` returns a GeoPackage workspace,
``open_workspace("postgresql://…")`` a PostGIS one; both are a
:class:`~landquota.store.workspace.Workspace`, and nothing above the store needs
to know which. A third backend is one more module beside ``gpkg.py`` and
``postgis.py`` and one more branch here (``docs/architecture.md``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from landquota.errors import ParameterError, SchemaVersionError, WorkspaceError
from landquota.settings import Settings, get_settings, mask_url
from landquota.store.schema import SCHEMA_VERSION
from landquota.store.workspace import Workspace, is_postgres_url

__all__ = ["init_workspace", "open_workspace", "opened"]


def _as_target(target: str) -> str:
    """Turn a libpq connection string (``host=… dbname=…``) into its URL; keep anything else."""
    from landquota.store.dburl import conninfo_to_url

    return conninfo_to_url(target) or target


def open_workspace(
    target: str | Path | None = None,
    *,
    create: bool = False,
    upgrade: bool = False,
    settings: Settings | None = None,
) -> Workspace:
    """Open (or with ``create=True`` create) a workspace.

    Parameters
    ----------
    target : str or Path, optional
        A GeoPackage path (``demo.gpkg``) or a ``postgresql://`` URL; a URL may
        carry ``?schema=NAME`` to choose the PostgreSQL schema. Defaults to
        ``settings.db`` (environment variable ``LANDQUOTA_DB``).
    create : bool
        Create the workspace if it does not exist (an existing one of the same
        schema version is opened as it is).
    upgrade : bool
        Upgrade a workspace of an older schema version in place.

    Raises
    ------
    WorkspaceError
        The file or database does not exist (and ``create`` is false) or is not a
        landquota workspace.
    SchemaVersionError
        The workspace was made by another schema version; the message says what
        to run.
    """
    settings = settings or get_settings()
    tgt = _as_target(str(target) if target is not None else settings.db)
    if not tgt:
        raise ParameterError("no workspace given: pass --db (a .gpkg path or a postgresql:// URL)")
    ws: Workspace
    if is_postgres_url(tgt):
        # imported here: a GeoPackage user does not pay for SQLAlchemy and psycopg
        from landquota.store.postgis import PostgisWorkspace

        ws = PostgisWorkspace(tgt, create=create, settings=settings)
    else:
        if "://" in tgt:
            raise ParameterError(
                f"--db {mask_url(tgt)!r} is neither a GeoPackage path nor a postgresql:// URL"
            )
        from landquota.store.gpkg import GpkgWorkspace

        ws = GpkgWorkspace(Path(tgt), create=create)
    try:
        _check_version(ws, upgrade=upgrade)
    except BaseException:
        ws.close()
        raise
    return ws


def _check_version(ws: Workspace, *, upgrade: bool) -> None:
    found = ws.schema_version
    if found == SCHEMA_VERSION:
        return
    # only now: migrations imports SQLAlchemy, ~0.3 s of every GeoPackage run's start-up
    from landquota.store import migrations

    if found > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"workspace {mask_url(ws.target)!r} has schema version {found}, newer than this "
            f"landquota's {SCHEMA_VERSION}; upgrade landquota (pip install -U landquota)"
        )
    if not upgrade:
        raise SchemaVersionError(
            f"workspace {mask_url(ws.target)!r} has schema version {found}; this landquota uses "
            f"{SCHEMA_VERSION}. Back it up, then run: landquota upgrade --db {mask_url(ws.target)}"
        )
    migrations.upgrade(ws, found)


@contextmanager
def opened(target: str | Path | Workspace, **kw: Any) -> Iterator[Workspace]:
    """Use an open workspace as it is, or open (and afterwards close) a path or URL."""
    if isinstance(target, Workspace):
        yield target
        return
    ws = open_workspace(target, **kw)
    try:
        yield ws
    finally:
        ws.close()


def init_workspace(
    target: str | Path | None = None, *, force: bool = False, settings: Settings | None = None
) -> Workspace:
    """Create an empty workspace; with ``force``, drop an existing one first.

    Without ``force`` an existing workspace is refused rather than reused, so
    that ``init`` never silently keeps old data.
    """
    settings = settings or get_settings()
    tgt = _as_target(str(target) if target is not None else settings.db)
    if is_postgres_url(tgt):
        from landquota.store.postgis import PostgisWorkspace

        try:
            old = PostgisWorkspace(tgt, create=False, settings=settings)
        except SchemaVersionError:
            raise
        except WorkspaceError as exc:
            if "has no landquota workspace" not in str(exc):
                raise
        else:
            if not force:
                old.close()
                raise WorkspaceError(
                    f"{mask_url(tgt)!r} already holds a workspace in schema {old.schema!r}; "
                    "pass --force to drop it and start empty"
                )
            try:
                old.drop()  # refused for public and for a schema holding other objects
            finally:
                old.close()
    else:
        path = Path(tgt)
        if path.exists():
            if not force:
                raise WorkspaceError(
                    f"{tgt!r} exists; pass --force to replace it with an empty workspace"
                )
            path.unlink()
    return open_workspace(tgt, create=True, settings=settings)

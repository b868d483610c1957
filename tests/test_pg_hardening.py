"""PostGIS hardening (issue 12, item 5): schemas that are not landquota's are never dropped,
each role can do exactly what docs/security.md says, conninfo strings are PostGIS targets.

Logins made here are named ``safety_…`` and dropped afterwards; each test has its own
workspace schema (``pg_url``), so the group roles, which carry the schema, are its own too.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import geopandas as gpd
import importdata as fx
import pandas as pd
import psycopg
import pytest
import sqlalchemy as sa
from sample import sample_layers

import landquota.intake.load as load
from landquota.cli import main
from landquota.errors import ParameterError, WorkspaceError
from landquota.intake.importer import import_layer
from landquota.outputs.export import export_workspace
from landquota.store.api import init_workspace, open_workspace
from landquota.store.backup import restore_workspace
from landquota.store.dburl import conninfo_to_url
from landquota.store.roles import grant_roles, install_stamp_triggers, role_names
from landquota.store.workspace import Workspace


def _server(url: str) -> str:
    return url.split("?", 1)[0]


def _schema(url: str) -> str:
    return url.split("?schema=", 1)[1]


def _sa(url: str) -> sa.Engine:
    return sa.create_engine(_server(url).replace("postgresql://", "postgresql+psycopg://", 1))


@dataclass
class _Run:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., _Run]:
    """Run the command line in this process (a subprocess costs seconds of start-up each)."""

    def run(*args: str) -> _Run:
        capsys.readouterr()
        rc = main(list(args))
        out, err = capsys.readouterr()
        return _Run(rc, out, err)

    return run


def _geometries(ws: Workspace) -> list[tuple[str, str]]:
    df = ws.read_layer("parcels")
    return sorted(zip(df.parcel_id, df.geometry.to_wkb(hex=True), strict=True))


# --- init --force / restore --force never reach what is not landquota's ------------------------
@pytest.mark.postgis
def test_public_is_refused_and_the_other_workspace_keeps_its_geometries(pg_url: str, tmp_path: Path, cli: Callable[..., _Run]) -> None:
    with open_workspace(pg_url, create=True) as ws:
        ws.write_layers({"parcels": sample_layers()["parcels"]})
        before = _geometries(ws)
        backup = export_workspace(ws, tmp_path / "b.gpkg")
    public = f"{_server(pg_url)}?schema=public"
    for args in (["init", "--db", public], ["init", "--force", "--db", public],
                 ["restore", "--from", str(backup), "--force", "--db", public]):
        r = cli(*args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert "schema 'public' is shared" in r.stderr and "Traceback" not in r.stderr, r.stderr
    with pytest.raises(WorkspaceError, match="never creates a workspace in it"):
        init_workspace(public, force=True)
    with pytest.raises(WorkspaceError, match="shared"):
        restore_workspace(backup, public, force=True)
    with open_workspace(pg_url) as ws:
        assert _geometries(ws) == before  # the geometry column and the rows are all there
    eng = _sa(pg_url)
    with eng.connect() as con:
        assert con.execute(sa.text("SELECT extname FROM pg_extension WHERE extname = 'postgis'")).scalar()
    eng.dispose()


#: Objects another program may keep in a schema, how a refusal names them, and how to find them.
OTHERS = [
    ("CREATE TABLE {s}.roads (road_id int)", "table {s}.roads", "to_regclass"),
    ("CREATE VIEW {s}.big_parcels AS SELECT parcel_id FROM {s}.parcels", "view {s}.big_parcels", "to_regclass"),
    ("CREATE FUNCTION {s}.helper() RETURNS int LANGUAGE sql AS 'SELECT 1'", "function {s}.helper()",
     "to_regprocedure"),
    ("CREATE SEQUENCE {s}.counter", "sequence {s}.counter", "to_regclass"),
    ("CREATE DOMAIN {s}.area AS double precision", "type {s}.area", "to_regtype"),
]


@pytest.mark.postgis
def test_force_refuses_a_schema_holding_other_objects(pg_url: str, tmp_path: Path, cli: Callable[..., _Run]) -> None:
    s = _schema(pg_url)
    with open_workspace(pg_url, create=True) as ws:
        ws.write_layers({"parcels": sample_layers()["parcels"]})
        before = _geometries(ws)
        backup = export_workspace(ws, tmp_path / "b.gpkg")
    eng = _sa(pg_url)
    for i, (ddl, named, _) in enumerate(OTHERS):
        with eng.begin() as con:
            con.execute(sa.text(ddl.format(s=s)))
        if i == 0:  # the command line says it in one line, exit status 2
            r = cli("init", "--force", "--db", pg_url)
            assert r.returncode == 2 and "nothing was dropped" in r.stderr, r.stderr
            assert len(r.stderr.strip().splitlines()) == 1 and named.format(s=s) in r.stderr, r.stderr
    with pytest.raises(WorkspaceError, match="not landquota's") as info:
        init_workspace(pg_url, force=True)
    for _, named, _ in OTHERS:
        assert named.format(s=s) in str(info.value), (named, str(info.value))
    with pytest.raises(WorkspaceError, match="not landquota's"):
        restore_workspace(backup, pg_url, force=True)
    with open_workspace(pg_url) as ws:
        assert _geometries(ws) == before
    with eng.connect() as con:  # every other object is still there
        for _, named, finder in OTHERS:
            name = named.format(s=s).split(" ", 1)[1]
            assert con.execute(sa.text(f"SELECT {finder}(:n) IS NOT NULL"), {"n": name}).scalar(), name
    eng.dispose()


@pytest.mark.postgis
def test_force_refuses_when_a_view_elsewhere_depends_on_a_layer(pg_url: str) -> None:
    other = f"safety_{uuid.uuid4().hex[:8]}"
    s = _schema(pg_url)
    with open_workspace(pg_url, create=True) as ws:
        ws.write_layers({"parcels": sample_layers()["parcels"]})
    eng = _sa(pg_url)
    with eng.begin() as con:
        con.execute(sa.text(f"CREATE SCHEMA {other}"))
        con.execute(sa.text(f"CREATE VIEW {other}.v AS SELECT parcel_id FROM {s}.parcels"))
    try:
        with pytest.raises(WorkspaceError, match=f"view {other}.v depends on table (\\w+\\.)?parcels"):
            init_workspace(pg_url, force=True)
        with eng.connect() as con:
            assert con.execute(sa.text(f"SELECT count(*) FROM {other}.v")).scalar() == 3
    finally:
        with eng.begin() as con:
            con.execute(sa.text(f"DROP SCHEMA {other} CASCADE"))
        eng.dispose()


@pytest.mark.postgis
def test_creating_among_other_objects_is_refused(pg_server: str) -> None:
    s = f"safety_{uuid.uuid4().hex[:8]}"
    url = f"{pg_server}?schema={s}"
    eng = _sa(url)
    with eng.begin() as con:
        con.execute(sa.text(f"CREATE SCHEMA {s}"))
        con.execute(sa.text(f"CREATE TABLE {s}.roads (i int)"))
    try:
        with pytest.raises(WorkspaceError, match=f"already holds objects that are not landquota's \\(table {s}.roads\\)"):
            open_workspace(url, create=True)
    finally:
        with eng.begin() as con:
            con.execute(sa.text(f"DROP SCHEMA {s} CASCADE"))
        eng.dispose()


@pytest.mark.postgis
def test_force_on_a_workspace_of_its_own_still_works(pg_url: str) -> None:
    """Triggers, roles' grants and row-level security policies all go with the workspace."""
    with open_workspace(pg_url, create=True) as ws:
        install_stamp_triggers(ws)
        ws.write_layers(sample_layers())
        roles = grant_roles(ws)
    try:
        with init_workspace(pg_url, force=True) as ws:
            assert sum(ws.layer_counts().values()) == 0
    finally:
        eng = _sa(pg_url)
        with eng.begin() as con:
            for r in roles.values():
                con.execute(sa.text(f'DROP OWNED BY "{r}"'))
                con.execute(sa.text(f'DROP ROLE "{r}"'))
        eng.dispose()


# --- each role can do exactly what docs/security.md says ---------------------------------------
def _as_login(url: str, login: str) -> str:
    p = urlsplit(url)
    return urlunsplit((p.scheme, f"{login}@{p.hostname}:{p.port}", p.path, p.query, ""))


@pytest.fixture
def bureau(pg_url: str) -> Iterator[tuple[Workspace, Callable[[str], str]]]:
    """A workspace whose run can fund K01 (site = parcel P1), its roles, and a login maker."""
    ws = open_workspace(pg_url, create=True)
    install_stamp_triggers(ws)
    f = {k: v for k, v in sample_layers().items() if k not in ("allocations", "allocation_runs", "validation_errors")}
    f["projects"] = f["projects"].copy()
    f["projects"].loc[0, "geometry"] = f["parcels"].geometry.iloc[0]
    led = f["quota_ledger"]
    more = led.iloc[[1, 1]].assign(entry_id=["E3", "E4"], pool=["comp_paddy", "comp_grain"],
                                   amount=[100_000.0, 1e7])
    f["quota_ledger"] = pd.concat([led, more], ignore_index=True)
    ws.write_layers(f)
    grant_roles(ws)
    made: list[str] = []

    def login(kind: str) -> str:
        name = f"safety_{uuid.uuid4().hex[:8]}_{kind}"
        with ws.engine.begin() as con:  # type: ignore[attr-defined]
            con.execute(sa.text(f'CREATE ROLE "{name}" LOGIN'))
        made.append(name)
        grant_roles(ws, assign={name: kind})
        return _as_login(pg_url, name)

    yield ws, login
    roles = role_names(ws)
    with ws.engine.begin() as con:  # type: ignore[attr-defined]
        for r in [*made, *roles.values()]:
            con.execute(sa.text(f'DROP OWNED BY "{r}"'))
            con.execute(sa.text(f'DROP ROLE IF EXISTS "{r}"'))
    ws.close()


def _runs(ws: Workspace) -> dict[str, str]:
    return ws.read_layer("allocation_runs").set_index("run_id")["status"].to_dict()


@pytest.mark.postgis
@pytest.mark.slow
def test_each_role_does_what_the_security_doc_says(bureau: tuple[Workspace, Callable[[str], str]],
                                                   tmp_path: Path, cli: Callable[..., _Run]) -> None:
    admin, login = bureau
    editor, approver, viewer = login("editor"), login("approver"), login("viewer")
    src = fx.write(fx.survey().assign(BSM=["P1", "P2", "P3", "P4"]), tmp_path / "dltb.gpkg")
    # editor: import, validate, draft
    r = cli("import", str(src), "--db", editor, "--layer", "parcels", "--no-progress", "--crs", "EPSG:4547")
    assert r.returncode == 0, r.stderr
    r = cli("import", str(src), "--db", viewer, "--layer", "parcels", "--no-progress")
    assert r.returncode == 2 and "permission denied" in r.stderr, r.stderr
    admin.write_layers({"parcels": sample_layers()["parcels"]})  # back to the parcels K01 lies on
    r = cli("validate", "--db", editor)
    assert r.returncode in (0, 1), r.stderr  # 1 = blocking findings, reported, not an error
    assert admin.meta()["validation.state"] == "current"
    r = cli("allocate", "--db", editor, "--as-of", "2014-05-01", "--force")
    assert r.returncode == 0, r.stderr
    (run,) = _runs(admin)
    # the editor cannot commit
    r = cli("commit", run, "--db", editor)
    assert r.returncode == 2 and "needs the approver role" in r.stderr, r.stderr
    assert _runs(admin) == {run: "draft"} and len(admin.read_layer("quota_ledger")) == 4
    # approver: drafts too (re-validating a stale workspace), commits and reverts
    admin.set_meta("validation.state", "stale")
    r = cli("allocate", "--db", approver, "--as-of", "2014-05-02", "--force")
    assert r.returncode == 0, r.stderr
    assert admin.meta()["validation.state"] == "current"
    assert len(_runs(admin)) == 2
    r = cli("commit", run, "--db", approver)
    assert r.returncode == 0, r.stderr
    assert _runs(admin)[run] == "committed"
    debits = admin.read_layer("quota_ledger", where={"run_id": run})
    assert len(debits) > 0 and (debits.amount < 0).all()
    r = cli("revert", run, "--db", approver)
    assert r.returncode == 0, r.stderr
    assert _runs(admin)[run] == "reverted"
    # the approver does not import; the viewer reads and writes nothing
    r = cli("import", str(src), "--db", approver, "--layer", "parcels", "--no-progress", "--crs", "EPSG:4547")
    assert r.returncode == 2 and "permission denied" in r.stderr, r.stderr
    r = cli("ledger", "--db", viewer)
    assert r.returncode == 0, r.stderr
    r = cli("validate", "--db", viewer)
    assert r.returncode == 2 and "permission denied" in r.stderr, r.stderr


@pytest.mark.postgis
def test_meta_keys_are_guarded_row_by_row(bureau: tuple[Workspace, Callable[[str], str]]) -> None:
    admin, login = bureau
    s = admin.schema  # type: ignore[attr-defined]
    version = admin.meta()["schema_version"]
    for kind in ("editor", "approver"):
        url = login(kind)
        with psycopg.connect(url.split("?", 1)[0], autocommit=True) as con:
            # a key the role's commands do not write: invisible to UPDATE, refused on INSERT
            con.execute(f"UPDATE \"{s}\".landquota_meta SET value = '99' WHERE key = 'schema_version'")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                con.execute(f"INSERT INTO \"{s}\".landquota_meta (key, value) VALUES ('as_of', 'x')")
            con.execute(f"INSERT INTO \"{s}\".landquota_meta (key, value) VALUES ('validation.state', 'stale') "
                        "ON CONFLICT (key) DO UPDATE SET value = excluded.value")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                con.execute(f"DELETE FROM \"{s}\".landquota_meta")
        assert admin.meta()["schema_version"] == version
        assert admin.meta()["validation.state"] == "stale"


@pytest.mark.postgis
def test_editor_bulk_replace_takes_the_row_path(bureau: tuple[Workspace, Callable[[str], str]],
                                                tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """TRUNCATE and dropping keys need the owner: an editor's large import still lands."""
    _admin, login = bureau
    monkeypatch.setattr(load, "BULK_ROWS", 2)
    src = fx.write(fx.survey().assign(BSM=["P1", "P2", "P3", "P4"]), tmp_path / "dltb.gpkg")
    with open_workspace(login("editor")) as ws:
        rep = import_layer(src, ws, layer="parcels")
        assert (rep.rows_before, rep.rows_imported) == (3, 4)
        assert sorted(ws.read_layer("parcels").parcel_id) == ["P1", "P2", "P3", "P4"]


@pytest.mark.postgis
def test_db_grant_refusal_names_the_owner_and_createrole(bureau: tuple[Workspace, Callable[[str], str]], cli: Callable[..., _Run]) -> None:
    _admin, login = bureau
    editor = login("editor")
    r = cli("db", "grant", "--db", editor)
    assert r.returncode == 2, r.stderr
    for w in ("workspace owner", "CREATEROLE", "not the owner"):
        assert w in r.stderr, r.stderr
    r = cli("db", "grant", "--db", editor, "--revoke", "postgres=viewer")
    assert r.returncode == 2 and "CREATEROLE" in r.stderr, r.stderr


@pytest.mark.postgis
def test_a_login_without_a_role_gets_a_plain_message(pg_url: str) -> None:
    with open_workspace(pg_url, create=True):
        pass
    name = f"safety_{uuid.uuid4().hex[:8]}"
    eng = _sa(pg_url)
    with eng.begin() as con:
        con.execute(sa.text(f'CREATE ROLE "{name}" LOGIN'))
    try:
        with pytest.raises(WorkspaceError, match=f"login '{name}' may not use schema .*db grant --assign {name}=viewer"):
            open_workspace(_as_login(pg_url, name))
    finally:
        with eng.begin() as con:
            con.execute(sa.text(f'DROP ROLE "{name}"'))
        eng.dispose()


# --- libpq connection strings --------------------------------------------------------------------
def test_conninfo_strings_become_urls() -> None:
    url = conninfo_to_url("host=db.bureau port=5433 dbname=land user=ann password='s 3cret' schema=ws2014")
    assert url == "postgresql://@/?host=db.bureau&port=5433&dbname=land&user=ann&password=s+3cret&schema=ws2014"
    assert conninfo_to_url("demo.gpkg") is None
    assert conninfo_to_url("postgresql://ann@db/land") is None
    assert conninfo_to_url("a=b.gpkg") is None  # a file name with "=" in it
    with pytest.raises(ParameterError) as info:
        conninfo_to_url("host=db bogus=1 password=s3cret")
    assert "s3cret" not in str(info.value) and "bogus" in str(info.value)


@pytest.mark.postgis
def test_conninfo_opens_postgis_and_the_password_is_masked(pg_url: str, tmp_path: Path, cli: Callable[..., _Run]) -> None:
    with open_workspace(pg_url, create=True) as ws:
        ws.write_layers({"parcels": sample_layers()["parcels"]})
    p = urlsplit(pg_url)
    secret = f"pw{uuid.uuid4().hex[:6]}"
    conninfo = (f"host={p.hostname} port={p.port} dbname={p.path.lstrip('/')} user={p.username} "
                f"password={secret} schema={_schema(pg_url)}")
    with open_workspace(conninfo) as ws:  # trust authentication: the password is not checked
        assert ws.kind == "postgis" and ws.layer_counts()["parcels"] == 3
        assert secret not in repr(ws)
        out = export_workspace(ws, tmp_path / "b.gpkg")
    with open_workspace(out) as b:
        assert secret not in b.meta()["exported_from"] and "password=***" in b.meta()["exported_from"]
    r = cli("info", "--db", conninfo)
    assert r.returncode == 0 and "parcels" in r.stdout and secret not in r.stdout + r.stderr, r.stderr
    bad = conninfo.replace(f"user={p.username}", "user=safety_nobody")
    r = cli("info", "--db", bad)
    assert r.returncode == 2 and "cannot connect" in r.stderr and secret not in r.stderr, r.stderr
    assert "password=***" in r.stderr
    # a GeoPackage path is still a path
    with open_workspace(tmp_path / "w=1.gpkg", create=True) as g:
        assert isinstance(g.read_layer("parcels"), gpd.GeoDataFrame) and g.kind == "gpkg"


@pytest.mark.postgis
def test_an_editors_commit_is_one_refusal_naming_the_approver_role(
        bureau: tuple[Workspace, Callable[[str], str]], pg_url: str, cli: Callable[..., _Run]) -> None:
    """Was the database's raw 'permission denied for table allocation_runs' (R6: only approvers commit)."""
    admin, _login = bureau
    name = f"fixes_{uuid.uuid4().hex[:8]}_editor"
    with admin.engine.begin() as con:  # type: ignore[attr-defined]
        con.execute(sa.text(f'CREATE ROLE "{name}" LOGIN'))
    try:
        grant_roles(admin, assign={name: "editor"})
        editor = _as_login(pg_url, name)
        assert cli("validate", "--db", pg_url).returncode in (0, 1)
        r = cli("allocate", "--db", editor, "--as-of", "2014-05-01", "--force")
        assert r.returncode == 0, r.stderr
        (run,) = _runs(admin)
        r = cli("commit", run, "--db", editor)
        assert r.returncode == 2, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("landquota commit: 错误 error: "), r.stderr
        assert f"login '{name}' may not commit" in lines[0] and "approver role" in lines[0], r.stderr
        assert f"landquota db grant --assign {name}=approver" in lines[0], r.stderr
        assert "permission denied for table" not in lines[0], r.stderr
        r = cli("allocate", "--db", editor, "--as-of", "2014-05-01", "--force", "--commit")
        assert r.returncode == 2 and f"--assign {name}=approver" in r.stderr, r.stderr
        assert _runs(admin)[run] == "draft" and len(admin.read_layer("quota_ledger")) == 4  # nothing written
    finally:
        with admin.engine.begin() as con:  # type: ignore[attr-defined]
            con.execute(sa.text(f'DROP OWNED BY "{name}"'))
            con.execute(sa.text(f'DROP ROLE IF EXISTS "{name}"'))

"""Roles on PostGIS: the database itself refuses what a viewer, editor or approver may not do.

Each test gets a workspace schema of its own (so role names, which carry the schema,
are unique per test) and logins with unique names; both are dropped afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

import pandas as pd
import psycopg
import pytest
import sqlalchemy as sa

from landquota.errors import LandquotaError, ParameterError
from landquota.store.api import open_workspace
from landquota.store.roles import (
    DATA_LAYERS,
    ROLE_KINDS,
    grant_roles,
    install_stamp_triggers,
    revoke_role,
    role_names,
)
from landquota.store.schema import LAYERS
from landquota.store.workspace import RunTransition, Workspace
from tests.sample import sample_layers

pytestmark = pytest.mark.postgis

ALL_TABLES = (*LAYERS, "landquota_meta")


def _schema(url: str) -> str:
    return url.split("?schema=", 1)[1]


def _as_login(url: str, login: str, password: str) -> str:
    """The workspace URL with another user and password in it."""
    p = urlsplit(url)
    return urlunsplit((p.scheme, f"{login}:{password}@{p.hostname}:{p.port}", p.path, p.query, ""))


def _conninfo(url: str) -> str:
    """A libpq URI without our ``?schema=`` parameter."""
    return url.split("?", 1)[0]


@pytest.fixture
def admin(pg_url: str) -> Iterator[Workspace]:
    """A sample workspace with stamp triggers and the three roles, owned by ``postgres``."""
    ws = open_workspace(pg_url, create=True)
    install_stamp_triggers(ws)
    ws.write_layers(sample_layers())
    grant_roles(ws)
    yield ws
    roles = role_names(ws)
    with ws.engine.begin() as con:  # type: ignore[attr-defined]
        for r in roles.values():
            con.execute(sa.text(f'DROP OWNED BY "{r}"'))
            con.execute(sa.text(f'DROP ROLE IF EXISTS "{r}"'))
    ws.close()


@pytest.fixture
def login(admin: Workspace, pg_url: str) -> Iterator[Callable[[str], tuple[str, str]]]:
    """Make a login holding one role kind; return (login name, its workspace URL)."""
    made: list[str] = []

    def make(kind: str) -> tuple[str, str]:
        name = f"lq_{uuid.uuid4().hex[:10]}_{kind}"
        pw = f"pw-{uuid.uuid4().hex[:8]}"
        with admin.engine.begin() as con:  # type: ignore[attr-defined]
            con.execute(sa.text(f"CREATE ROLE \"{name}\" LOGIN PASSWORD '{pw}'"))
        made.append(name)
        grant_roles(admin, assign={name: kind})
        return name, _as_login(pg_url, name, pw)

    yield make
    with admin.engine.begin() as con:  # type: ignore[attr-defined]
        for name in made:
            con.execute(sa.text(f'DROP OWNED BY "{name}"'))
            con.execute(sa.text(f'DROP ROLE IF EXISTS "{name}"'))


def _write_statements(schema: str, table: str) -> list[str]:
    t = f'"{schema}"."{table}"'
    key = "key" if table == "landquota_meta" else LAYERS[table].id_column
    return [
        f"INSERT INTO {t} DEFAULT VALUES",
        f'UPDATE {t} SET "{key}" = "{key}"',
        f"DELETE FROM {t}",
        f"TRUNCATE {t}",
    ]


def _refused(url: str, *sql: str) -> str | None:
    """Run each statement as the URL's user; the SQLSTATEs of refusals (None if all ran)."""
    states: list[str | None] = []
    with psycopg.connect(_conninfo(url), autocommit=True) as con:
        for stmt in sql:
            try:
                con.execute(stmt)
                states.append(None)
            except psycopg.Error as exc:
                states.append(exc.sqlstate)
    return states[0] if len(states) == 1 else ",".join(str(s) for s in states)


def _new_run(run_id: str, *, created_by: str = "mallory", status: str = "draft") -> pd.DataFrame:
    run = sample_layers()["allocation_runs"].copy()
    run["run_id"] = [run_id]
    run["created_by"] = [created_by]
    run["status"] = [status]
    return run


def _debit(entry_id: str, run_id: str, amount: float = -10_000.0) -> pd.DataFrame:
    # E1 credits 500,000 m2 of new_construction quota of vintage 2014 (tests/sample.py)
    return pd.DataFrame(
        {
            "entry_id": [entry_id],
            "pool": ["new_construction"],
            "kind": ["allocation"],
            "amount": [amount],
            "year": [2014],
            "effective_date": pd.to_datetime(["2014-05-01"]),
            "source": [run_id],
            "project_id": ["K01"],
            "run_id": [run_id],
        }
    )


def test_roles_are_named_after_database_and_schema_and_grant_is_idempotent(
    admin: Workspace, pg_url: str
) -> None:
    schema = _schema(pg_url)
    expected = {k: f"landquota_test_{schema}_{k}" for k in ROLE_KINDS}
    assert role_names(admin) == expected
    assert grant_roles(admin) == expected  # a second run changes nothing and does not fail
    with admin.engine.connect() as con:  # type: ignore[attr-defined]
        rows = con.execute(
            sa.text("SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname = ANY(:r)"),
            {"r": list(expected.values())},
        ).all()
    assert sorted(rows) == sorted((r, False) for r in expected.values())  # group roles: NOLOGIN


def test_viewer_reads_everything_and_cannot_write_any_layer_or_table(
    login: Callable[[str], tuple[str, str]], pg_url: str
) -> None:
    name, url = login("viewer")
    schema = _schema(pg_url)
    with open_workspace(url) as ws:
        assert ws.user() == name
        assert ws.layer_counts()["parcels"] == 3  # reading works
        for table in LAYERS:
            ws.read_layer(table)
        # every kind of write on every table is refused by the database (42501)
        stmts = [sql for table in ALL_TABLES for sql in _write_statements(schema, table)]
        states = _refused(url, *stmts)
        assert states == ",".join(["42501"] * len(stmts)), list(
            zip(stmts, str(states).split(","), strict=True)
        )
        # and the API reports it rather than crashing
        with pytest.raises(LandquotaError, match="permission denied"):
            ws.write_layer("parcels", sample_layers()["parcels"])
        # the ledger lock is refused first: one message naming the role that may write
        with pytest.raises(LandquotaError, match=r"may not commit or revert.*approver"):
            ws.append_ledger(_debit("EV1", "R1").assign(run_id=None))
    assert _refused(url, f'CREATE TABLE "{schema}".x (i int)') == "42501"


def test_editor_writes_data_and_drafts_but_cannot_commit_or_revert(
    login: Callable[[str], tuple[str, str]], admin: Workspace, pg_url: str
) -> None:
    name, url = login("editor")
    schema = _schema(pg_url)
    with open_workspace(url) as ws:
        # import and validation: every data layer can be replaced (projects are kept:
        # run R1's allocation refers to K01, so they are updated in place below)
        frames = {k: v for k, v in sample_layers().items() if k in DATA_LAYERS and k != "projects"}
        frames["parcels"] = frames["parcels"].assign(net_m2=[8_000.0, 5_000.0, 20_000.0])
        ws.write_layers(frames)
        assert ws.read_layer("parcels")["net_m2"].tolist() == [8_000.0, 5_000.0, 20_000.0]
        # a draft run and its allocations; the name it sends is replaced by the login
        ws.write_layer("allocation_runs", _new_run("R2"), mode="append")
        alloc = sample_layers()["allocations"].assign(allocation_id=["R2:K01"], run_id=["R2"])
        ws.write_layer("allocations", alloc, mode="append")
        runs = ws.read_layer("allocation_runs", where={"run_id": "R2"})
        assert runs["created_by"].tolist() == [name]
        # committing needs ledger entries and a status change: both refused (the ledger
        # lock first, with one message naming the approver role)
        with pytest.raises(LandquotaError, match=r"may not commit or revert.*approver"):
            ws.append_ledger(
                _debit("E3", "R1"), transition=RunTransition("R1", "draft", "committed")
            )
        with pytest.raises(LandquotaError, match=r"may not commit or revert.*approver"):
            ws.append_ledger(_debit("E3", "R1"))
        with pytest.raises(LandquotaError, match=r"may not commit or revert.*approver"):
            ws.set_run_status(RunTransition("R1", "draft", "committed"))
    assert _refused(url, f'UPDATE "{schema}".projects SET score = score + 1') is None
    t = f'"{schema}".allocation_runs'
    assert _refused(url, f"UPDATE {t} SET status = 'committed' WHERE run_id = 'R1'") == "42501"
    assert _refused(url, f"UPDATE {t} SET created_by = 'x'") == "42501"
    assert _refused(url, f'DELETE FROM "{schema}".quota_ledger') == "42501"
    # an editor cannot smuggle in a run that is already committed
    with open_workspace(url) as ws, pytest.raises(LandquotaError, match="permission denied"):
        ws.write_layer("allocation_runs", _new_run("R3", status="committed"), mode="append")
    # nothing of the refused writes landed
    assert admin.read_layer("quota_ledger")["entry_id"].tolist() == ["E1", "E2"]
    runs = admin.read_layer("allocation_runs").set_index("run_id")["status"].to_dict()
    assert runs == {"R1": "draft", "R2": "draft"}


def test_approver_commits_and_reverts_and_is_recorded(
    login: Callable[[str], tuple[str, str]], admin: Workspace
) -> None:
    name, url = login("approver")
    with open_workspace(url) as ws:
        ws.append_ledger(_debit("E3", "R1"), transition=RunTransition("R1", "draft", "committed"))
        run = ws.read_layer("allocation_runs", where={"run_id": "R1"}).iloc[0]
        assert (run["status"], run["status_changed_by"]) == ("committed", name)
        assert run["created_by"] == "postgres"  # the creator (who wrote the sample) is kept
        rev = _debit("E4", "R1", amount=10_000.0).assign(kind="reversal", reverses="E3")
        ws.append_ledger(rev, transition=RunTransition("R1", "committed", "reverted"))
        # approvers commit; they do not import
        with pytest.raises(LandquotaError, match="permission denied"):
            ws.write_layer("parcels", sample_layers()["parcels"])
    led = admin.read_layer("quota_ledger").set_index("entry_id")
    assert led.loc[["E3", "E4"], "entered_by"].tolist() == [name, name]
    # 500,000 credited - 10,000 debited + 10,000 reversed: back to 500,000
    assert led.loc[led["pool"] == "new_construction", "amount"].sum() == 500_000.0
    assert admin.read_layer("allocation_runs")["status"].tolist() == ["reverted"]


def test_entered_by_is_the_real_login_whatever_the_writer_sends(
    login: Callable[[str], tuple[str, str]], admin: Workspace, pg_url: str
) -> None:
    name, url = login("approver")
    schema = _schema(pg_url)
    forged = _debit("E5", "R1").assign(
        run_id=None, entered_by="postgres", entered_at=pd.Timestamp("2000-01-01", tz="UTC")
    )
    with open_workspace(url) as ws:
        ws.write_layer("quota_ledger", forged, mode="append")  # the plain write path
    with psycopg.connect(_conninfo(url), autocommit=True) as con:
        con.execute(
            f'INSERT INTO "{schema}".quota_ledger (entry_id, pool, kind, amount, year, '
            "effective_date, source, entered_at, entered_by) VALUES ('E6', 'comp_area', "
            "'adjustment', 1, 2014, '2014-01-01', 'doc', '1999-01-01', 'someone_else')"
        )
        # a status change is stamped with the login too, whatever the UPDATE sets (it
        # comes with the run's debit: the database refuses a commit without it)
        with con.transaction():
            con.execute(
                f'INSERT INTO "{schema}".quota_ledger (entry_id, pool, kind, amount, year, '
                "effective_date, source, run_id, entered_at, entered_by) VALUES ('E7', "
                "'new_construction', 'allocation', -10000, 2014, '2014-05-01', 'R1', 'R1', "
                "'1999-01-01', 'someone_else')"
            )
            con.execute(
                f"UPDATE \"{schema}\".allocation_runs SET status = 'committed', "
                "status_changed_by = 'someone_else', status_changed_at = '1999-01-01' "
                "WHERE run_id = 'R1'"
            )
    led = admin.read_layer("quota_ledger").set_index("entry_id")
    assert led.loc[["E5", "E6"], "entered_by"].tolist() == [name, name]
    now = pd.Timestamp.now(tz="UTC")
    assert (led.loc[["E5", "E6"], "entered_at"] > now - pd.Timedelta(minutes=5)).all()
    run = admin.read_layer("allocation_runs").iloc[0]
    assert run["status_changed_by"] == name and run["status_changed_at"] > now - pd.Timedelta(
        minutes=5
    )


def test_revoke_role_takes_the_rights_away(
    login: Callable[[str], tuple[str, str]], admin: Workspace, pg_url: str
) -> None:
    name, url = login("editor")
    schema = _schema(pg_url)
    ok = f"UPDATE \"{schema}\".towns SET name = name WHERE town_id = 'T01'"
    assert _refused(url, ok) is None
    revoke_role(admin, name, "editor")
    revoke_role(admin, name, "editor")  # idempotent
    assert _refused(url, ok) == "42501"
    assert _refused(url, f'SELECT 1 FROM "{schema}".towns') == "42501"  # no role left at all


@pytest.mark.parametrize(
    ("assign", "match"),
    [
        ({"nobody_" + uuid.uuid4().hex[:8]: "viewer"}, "does not exist"),
        ({"postgres": "admin"}, "must be one of viewer, editor, approver"),
        ({"": "viewer"}, "not a PostgreSQL role name"),
    ],
)
def test_assign_refuses_unknown_logins_and_kinds(
    admin: Workspace, assign: dict[str, str], match: str
) -> None:
    with pytest.raises(ParameterError, match=match):
        grant_roles(admin, assign=assign)


def test_login_names_are_quoted_not_pasted(admin: Workspace) -> None:
    # a hostile login name is looked up as a name, never run as SQL
    with pytest.raises(ParameterError, match="does not exist"):
        grant_roles(admin, assign={'x"; DROP SCHEMA public CASCADE; --': "viewer"})


@pytest.mark.parametrize("fn", [grant_roles, role_names])
def test_geopackage_has_no_roles(tmp_path: object, fn: Callable[[Workspace], object]) -> None:
    with open_workspace(f"{tmp_path}/w.gpkg", create=True) as ws:
        assert install_stamp_triggers(ws) == ()
        with pytest.raises(ParameterError, match="file-system permissions"):
            fn(ws)

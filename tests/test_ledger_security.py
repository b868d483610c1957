"""PostGIS hardening of the ledger (issue 12 item 5): search_path attack, the ledger lock.

Every role made here starts with ``ledger_``. The search-path attack runs in a
database of its own, because the hostile operator it plants in ``public`` would
otherwise reach every other test using the shared server.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pandas as pd
import psycopg
import pytest
import sqlalchemy as sa

from landquota import errors
from landquota.outputs.export import export_workspace
from landquota.store import postgis as _postgis
from landquota.store.api import open_workspace
from landquota.store.backup import restore_workspace
from landquota.store.roles import grant_roles, role_names
from landquota.store.verify import verify_workspace
from landquota.store.workspace import RunTransition
from tests.sample import sample_layers

pytestmark = pytest.mark.postgis


def _as(url: str, login: str, pw: str, *, app: str | None = None) -> str:
    p = urlsplit(url)
    q = p.query + (f"&application_name={app}" if app else "")
    return urlunsplit((p.scheme, f"{login}:{pw}@{p.hostname}:{p.port}", p.path, q, ""))


def _conninfo(url: str) -> str:
    return url.split("?", 1)[0]


def _debit(entry_id: str, amount: float = -10_000.0, run_id: str | None = "R1") -> pd.DataFrame:
    # tests/sample.py: E1 credits 500,000 m² of new_construction 2014; run R1 needs 10,000
    return pd.DataFrame(
        {
            "entry_id": [entry_id],
            "pool": ["new_construction"],
            "kind": ["allocation"],
            "amount": [amount],
            "year": [2014],
            "effective_date": pd.to_datetime(["2014-05-01"]),
            "source": ["R1"],
            "project_id": ["K01"],
            "run_id": [run_id],
        }
    )


@pytest.fixture
def logins(pg_url: str) -> Iterator[tuple[str, dict[str, tuple[str, str]]]]:
    """A sample workspace owned by postgres, and one login per role kind (name, URL)."""
    ws = open_workspace(pg_url, create=True)
    ws.write_layers(sample_layers())
    made: dict[str, tuple[str, str]] = {}
    tag = uuid.uuid4().hex[:8]
    with ws.engine.begin() as con:  # type: ignore[attr-defined]
        for kind in ("viewer", "approver", "approver2"):
            name, pw = f"ledger_{tag}_{kind}", f"pw-{uuid.uuid4().hex[:8]}"
            con.execute(sa.text(f"CREATE ROLE \"{name}\" LOGIN PASSWORD '{pw}'"))
            made[kind] = (name, _as(pg_url, name, pw))
    grant_roles(
        ws,
        assign={
            made["viewer"][0]: "viewer",
            made["approver"][0]: "approver",
            made["approver2"][0]: "approver",
        },
    )
    roles = role_names(ws)
    ws.close()
    yield pg_url, made
    eng = sa.create_engine(_conninfo(pg_url).replace("postgresql://", "postgresql+psycopg://"))
    with eng.begin() as con:
        for name in [n for n, _ in made.values()] + list(roles.values()):
            con.execute(sa.text(f'DROP OWNED BY "{name}"'))
            con.execute(sa.text(f'DROP ROLE IF EXISTS "{name}"'))
    eng.dispose()


def test_a_viewer_holding_the_old_advisory_lock_does_not_stall_a_commit(logins, monkeypatch) -> None:
    pg_url, made = logins
    schema = pg_url.split("schema=")[1]
    monkeypatch.setattr(_postgis, "LOCK_TIMEOUT_S", 5.0)
    viewer = psycopg.connect(_conninfo(made["viewer"][1]))
    try:
        # the advisory lock landquota used to take: any login could hold it forever
        viewer.execute("SELECT pg_advisory_lock(hashtext(%s))", (f"landquota.rules.ledger.{schema}",))
        viewer.execute(f'SELECT * FROM "{schema}".ledger_lock')  # and keep reading in a transaction
        with pytest.raises(psycopg.errors.InsufficientPrivilege), viewer.transaction():
            viewer.execute(f'LOCK TABLE "{schema}".ledger_lock IN EXCLUSIVE MODE')
        t0 = time.monotonic()
        with open_workspace(made["approver"][1]) as ws:
            ws.append_ledger(_debit("E3"), transition=RunTransition("R1", "draft", "committed"))
            assert ws.read_layer("allocation_runs")["status"].tolist() == ["committed"]
        assert time.monotonic() - t0 < 5.0
    finally:
        viewer.close()


def test_a_held_ledger_lock_times_out_naming_the_holder(logins, monkeypatch) -> None:
    pg_url, made = logins
    schema = pg_url.split("schema=")[1]
    holder_name, holder_url = made["approver2"]
    monkeypatch.setattr(_postgis, "LOCK_TIMEOUT_S", 1.0)
    holder = psycopg.connect(_conninfo(holder_url) + "?application_name=ledger_holder")
    try:
        holder.execute(f'LOCK TABLE "{schema}".ledger_lock IN EXCLUSIVE MODE')  # and keep it
        pid = holder.info.backend_pid
        with open_workspace(made["approver"][1]) as ws:
            t0 = time.monotonic()
            with pytest.raises(errors.ConcurrencyError) as exc:
                ws.append_ledger(_debit("E3"), transition=RunTransition("R1", "draft", "committed"))
            assert time.monotonic() - t0 < 10
            msg = str(exc.value)
            assert holder_name in msg and f"pid {pid}" in msg and "ledger_holder" in msg
            assert "nothing was written" in msg
            assert ws.read_layer("allocation_runs")["status"].tolist() == ["draft"]
        holder.rollback()  # released: the same commit now goes through
        with open_workspace(made["approver"][1]) as ws:
            ws.append_ledger(_debit("E3"), transition=RunTransition("R1", "draft", "committed"))
            assert verify_workspace(ws).ok
    finally:
        holder.close()


def test_an_approvers_direct_status_update_of_a_committed_run_is_refused(logins) -> None:
    pg_url, made = logins
    schema = pg_url.split("schema=")[1]
    with open_workspace(made["approver"][1]) as ws:
        ws.append_ledger(_debit("E3"), transition=RunTransition("R1", "draft", "committed"))
    with psycopg.connect(_conninfo(made["approver"][1]), autocommit=True) as con:
        for to in ("reverted", "draft"):
            with pytest.raises(psycopg.Error, match="life cycle"):
                con.execute(
                    f"UPDATE \"{schema}\".allocation_runs SET status = '{to}' WHERE run_id = 'R1'"
                )
    with open_workspace(pg_url) as ws:
        assert ws.read_layer("allocation_runs")["status"].tolist() == ["committed"]


def test_concurrent_commits_queue_on_the_lock_table(logins) -> None:
    """Two approvers committing at once: one waits for the other (R6 under any interleaving)."""
    pg_url, made = logins
    results: list[BaseException | None] = []

    def commit(url: str) -> None:
        try:
            with open_workspace(url) as ws:
                ws.append_ledger(_debit("E3"), transition=RunTransition("R1", "draft", "committed"))
            results.append(None)
        except BaseException as exc:  # collected for the assertion below
            results.append(exc)

    threads = [threading.Thread(target=commit, args=(made[k][1],)) for k in ("approver", "approver2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(type(r).__name__ for r in results) == ["ConcurrencyError", "NoneType"]
    with open_workspace(pg_url) as ws:
        assert verify_workspace(ws).ok


# --- the search_path attack, in a database of its own -------------------------------------------------
@pytest.fixture
def attack_db(pg_server: str) -> Iterator[str]:
    """A new database with PostGIS, CREATE on ``public`` granted to PUBLIC (the ≤ 14 default)."""
    name = f"ledger_{uuid.uuid4().hex[:10]}"
    base = _conninfo(pg_server)
    admin = sa.create_engine(base.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = base.rsplit("/", 1)[0] + f"/{name}"
    eng = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with eng.begin() as c:
        c.execute(sa.text("CREATE EXTENSION postgis"))
        c.execute(sa.text("GRANT CREATE ON SCHEMA public TO PUBLIC"))
    eng.dispose()
    try:
        yield url
    finally:
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            for r in c.execute(
                sa.text("SELECT rolname FROM pg_roles WHERE rolname LIKE :p"), {"p": f"{name}%"}
            ).scalars():
                c.execute(sa.text(f'DROP ROLE IF EXISTS "{r}"'))
        admin.dispose()


def test_an_operator_planted_in_public_changes_nothing(attack_db: str, tmp_path) -> None:
    url = f"{attack_db}?schema=ws"
    with open_workspace(url, create=True) as ws:
        ws.write_layers(sample_layers())
        ws.append_ledger(_debit("E3"), transition=RunTransition("R1", "draft", "committed"))
        roles = role_names(ws)
        tag = attack_db.rsplit("/", 1)[1]
        viewer, approver = f"{tag}_mallory", f"{tag}_zhao"
        with ws.engine.begin() as c:  # type: ignore[attr-defined]
            c.execute(sa.text(f"CREATE ROLE \"{viewer}\" LOGIN PASSWORD 'pw-v'"))
            c.execute(sa.text(f"CREATE ROLE \"{approver}\" LOGIN PASSWORD 'pw-a'"))
        grant_roles(ws, assign={viewer: "viewer", approver: "approver"})
        # every connection of landquota sets its own search_path, pg_catalog first
        with ws.engine.connect() as c:  # type: ignore[attr-defined]
            schemas = c.execute(sa.text("SELECT current_schemas(true)")).scalar()
            assert list(schemas)[:3] == ["pg_catalog", "ws", "public"]
    # the viewer plants `<(double precision, numeric)` in public: always false (so any
    # R6 test "balance < -1e-6" passes), and it tries to make its author an approver
    # with the rights of whoever runs it
    attack = f"""
        CREATE TABLE public.ledger_calls (who text);
        GRANT INSERT ON public.ledger_calls TO PUBLIC;
        CREATE FUNCTION public.ledger_lt(double precision, numeric) RETURNS boolean
        LANGUAGE plpgsql AS $$
        BEGIN
          INSERT INTO public.ledger_calls VALUES (current_user);
          BEGIN
            EXECUTE 'GRANT "{roles['approver']}" TO "{viewer}"';
          EXCEPTION WHEN OTHERS THEN NULL;
          END;
          RETURN false;
        END $$;
        CREATE OPERATOR public.< (LEFTARG = double precision, RIGHTARG = numeric,
                                  FUNCTION = public.ledger_lt);
    """
    with psycopg.connect(_as(attack_db, viewer, "pw-v").split("?")[0], autocommit=True) as con:
        con.execute(attack)
    owner = psycopg.connect(attack_db, autocommit=True)
    try:
        # the attack is real: a session with the default search_path picks the operator
        assert owner.execute("SELECT 1::float8 < 1::numeric").fetchone() == (False,)
        assert owner.execute("SELECT count(*) FROM public.ledger_calls").fetchone() == (1,)
        owner.execute(f'REVOKE "{roles["approver"]}" FROM "{viewer}"')
        owner.execute("DELETE FROM public.ledger_calls")
        # R6's verdict does not change: an approver's −1e12 debit is refused
        zhao = _as(attack_db, approver, "pw-a").split("?")[0]
        with psycopg.connect(zhao, autocommit=True) as a, pytest.raises(psycopg.Error, match="R6"):
            a.execute(
                "INSERT INTO ws.quota_ledger (entry_id, pool, kind, amount, year, "
                "effective_date, source, entered_at, entered_by) VALUES ('E9', "
                "'new_construction', 'adjustment', -1e12, 2014, '2014-06-01', 'doc', now(), 'x')"
            )
        # the owner's restore runs every trigger as the owner: nobody escalates
        backup = export_workspace(url, tmp_path / "b.gpkg")
        with restore_workspace(backup, f"{attack_db}?schema=ws2") as ws2:
            assert verify_workspace(ws2).ok
            ws2.append_ledger(_debit("E4", run_id=None).assign(kind="adjustment"))
            with pytest.raises(errors.LandquotaError, match="R6"):
                ws2.append_ledger(_debit("E5", amount=-1e12, run_id=None).assign(kind="adjustment"))
        member = owner.execute(
            "SELECT pg_has_role(%s, %s, 'MEMBER')", (viewer, roles["approver"])
        ).fetchone()
        assert member == (False,)
        assert owner.execute("SELECT count(*) FROM public.ledger_calls").fetchone() == (0,)
    finally:
        owner.close()

"""The hash-chained ledger, `landquota verify`, and the database-enforced run life cycle (R6).

Tampering is done the way an outsider would: with the real ``sqlite3`` module on
the GeoPackage, with plain SQL through psycopg (what psql sends) on PostGIS.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from datetime import date

import pandas as pd
import pytest
import sqlalchemy as sa

from landquota import errors
from landquota.allocation.runs import commit_run, plan_allocation, read_run, revert_run
from landquota.cli import main
from landquota.rules.ledger import statement
from landquota.store.api import open_workspace
from landquota.store.chain import (
    GENESIS,
    canonical_entry,
    chain_head,
    decimal_text,
    link_hash,
    new_links,
)
from landquota.store.schema import SCHEMA_VERSION
from landquota.store.verify import verify_workspace
from tests.runworld import world

MAY1 = date(2014, 5, 1)


@pytest.fixture
def wws(ws):
    ws.write_layers(world())
    return ws


def _sql(ws, *stmts: str) -> None:
    """Run statements the way sqlite3 / psql would: not through landquota."""
    if ws.kind == "gpkg":
        con = sqlite3.connect(ws.target)
        try:
            for s in stmts:
                con.execute(s)
            con.commit()
        finally:
            con.close()
        return
    import psycopg

    url, schema = ws.target.split("?schema=")
    con = psycopg.connect(url)
    try:
        con.execute(f'SET search_path = "{schema}", public')
        for s in stmts:
            con.execute(s)
        con.commit()
    finally:
        con.close()


def _committed(ws):
    run = plan_allocation(ws, mode="greedy", as_of=MAY1)
    commit_run(ws, run.run_id)
    return run


# --- the canonical form, by hand ---------------------------------------------------------------
def test_decimal_text_is_shortest_round_trip_without_exponent() -> None:
    assert decimal_text(-1000.0) == "-1000"
    assert decimal_text(0.1) == "0.1"
    assert decimal_text(-0.0) == "0"
    assert decimal_text(1e-7) == "0.0000001"
    assert decimal_text(1e22) == "10000000000000000000000"
    assert decimal_text(12345.678) == "12345.678"
    with pytest.raises(errors.DataError):
        decimal_text(float("nan"))


def test_canonical_entry_and_hash_by_hand() -> None:
    row = {
        "entry_id": "O1",
        "pool": "new_construction",
        "kind": "opening",
        "amount": 15000.0,
        "year": 2014,
        "effective_date": pd.Timestamp("2014-01-01"),
        "source": "阳国土〔2014〕1号",
        "project_id": None,
        "run_id": float("nan"),
        "reverses": None,
        "entered_at": pd.Timestamp("2014-01-01T08:00:00.1234Z"),
        "entered_by": "zhao",
        "note": None,
    }
    text = canonical_entry(row)
    assert text == (
        '["quota_ledger/1","O1","new_construction","opening","15000",2014,"2014-01-01",'
        '"阳国土〔2014〕1号",null,null,null,"2014-01-01T08:00:00.123Z","zhao",null]'
    )
    expected = hashlib.sha256(bytes(32) + text.encode("utf-8")).hexdigest()
    assert link_hash(GENESIS, text) == expected
    links = new_links(0, None, [("entry", "O1", text), ("entry", "O2", "x")])
    assert links["seq"].tolist() == [1, 2] and links["link_id"].tolist() == ["0000000001", "0000000002"]
    assert links["prev_hash"].iloc[1] == links["hash"].iloc[0] == expected


# --- chained writes and verify ------------------------------------------------------------------
def test_commit_and_revert_are_chained_and_verify(wws) -> None:
    before = chain_head(wws)
    assert before.startswith("4:")  # the four opening entries of the world
    run = _committed(wws)
    after_commit = chain_head(wws)
    n_debits = len(wws.read_layer("quota_ledger", where={"run_id": run.run_id}))
    assert after_commit.startswith(f"{4 + n_debits + 1}:")
    rep = verify_workspace(wws, head=before)
    assert rep.ok, rep.summary()
    revert_run(wws, run.run_id)
    rep = verify_workspace(wws, head=after_commit)
    assert rep.ok, rep.summary()
    chain = wws.read_layer("ledger_chain")
    assert chain["kind"].value_counts().to_dict() == {"entry": 4 + 2 * n_debits, "run": 2}
    statuses = [json.loads(p)[11] for p in chain.loc[chain["kind"] == "run", "payload"]]
    assert statuses == ["committed", "reverted"]
    # a head that was never filed from this chain
    bad = verify_workspace(wws, head="3:0123456789abcdef")
    assert not bad.ok and bad.first is not None and bad.first.ref == "head"


def test_cli_ledger_prints_head_and_verify_checks_it(wws, capsys) -> None:
    assert main(["ledger", "--db", wws.target]) == 0
    out = capsys.readouterr().out
    head = out.split("chain head ")[1].split()[0]
    _committed(wws)
    assert main(["verify", "--db", wws.target, "--head", head]) == 0
    assert "verified" in capsys.readouterr().out
    assert main(["verify", "--db", wws.target, "--head", "2:ffffffffffffffff"]) == 1
    assert "NOT found" in capsys.readouterr().out
    assert main(["verify", "--db", wws.target, "--head", "zz"]) == 2


def test_row_inserted_outside_landquota_is_reported_unchained(wws) -> None:
    _sql(
        wws,
        "INSERT INTO quota_ledger (entry_id, pool, kind, amount, year, effective_date, source, "
        "entered_at, entered_by) VALUES ('X1', 'new_construction', 'adjustment', 50000, 2014, "
        "'2014-02-01', 'QGIS', '2014-02-01T00:00:00.000Z', 'someone')",
    )
    rep = verify_workspace(wws)
    assert not rep.ok
    f = rep.first
    assert f is not None and f.ref == "entry X1" and "not in the chain" in f.problem
    if wws.kind == "postgis":
        # the database stamped the real login, whatever the row claimed
        assert "'postgres'" in f.problem
    else:
        assert "the file stamped the write at 20" in f.problem


def test_amount_edited_with_trigger_dropped_is_named(wws) -> None:
    run = _committed(wws)
    eid = f"{run.run_id}:0001"
    if wws.kind == "gpkg":
        _sql(
            wws,
            "DROP TRIGGER quota_ledger_no_update",
            f"UPDATE quota_ledger SET amount = amount * 100 WHERE entry_id = '{eid}'",
        )
    else:
        _sql(
            wws,
            "ALTER TABLE quota_ledger DISABLE TRIGGER quota_ledger_no_change",
            f"UPDATE quota_ledger SET amount = amount * 100 WHERE entry_id = '{eid}'",
        )
    rep = verify_workspace(wws)
    first = rep.first
    assert first is not None and first.ref == f"entry {eid}"
    assert "amount is " in first.problem and "but was chained as" in first.problem


def test_deleted_debits_of_a_committed_run_are_named(wws) -> None:
    run = _committed(wws)
    if wws.kind == "gpkg":
        _sql(
            wws,
            "DROP TRIGGER quota_ledger_no_delete",
            f"DELETE FROM quota_ledger WHERE run_id = '{run.run_id}'",
        )
    else:
        with pytest.raises(Exception, match="life cycle"):
            # even the owner, with the append-only trigger off, cannot leave a committed
            # run without its debits: the deferred life-cycle check refuses the commit
            _sql(
                wws,
                "ALTER TABLE quota_ledger DISABLE TRIGGER quota_ledger_no_change",
                f"DELETE FROM quota_ledger WHERE run_id = '{run.run_id}'",
            )
        _sql(
            wws,
            "ALTER TABLE quota_ledger DISABLE TRIGGER quota_ledger_no_change",
            "ALTER TABLE quota_ledger DISABLE TRIGGER quota_ledger_consistency_delete",
            "ALTER TABLE allocation_runs DISABLE TRIGGER allocation_runs_consistency",
            f"DELETE FROM quota_ledger WHERE run_id = '{run.run_id}'",
        )
    rep = verify_workspace(wws)
    refs = {f.ref for f in rep.findings}
    assert f"entry {run.run_id}:0001" in refs and f"run {run.run_id}" in refs
    assert "deleted from the ledger" in rep.first.problem if rep.first else False
    assert any("its debits of pool new_construction total 0" in f.problem for f in rep.findings)


# --- R6 and the run life cycle in the database ------------------------------------------------------
def test_debit_back_dated_before_its_credit_is_refused_by_the_database(wws) -> None:
    # 15,000 m² opened on 2014-01-01; a credit of 30,000 on 2014-06-01 and a debit of
    # 40,000 back-dated to 2014-03-01: the total stays positive, the balance in March does not
    _sql(
        wws,
        "INSERT INTO quota_ledger (entry_id, pool, kind, amount, year, effective_date, source, "
        "entered_at, entered_by) VALUES ('C9', 'new_construction', 'plan_issue', 30000, 2014, "
        "'2014-06-01', 'doc', '2014-06-01T00:00:00.000Z', 'x')",
    )
    with pytest.raises(Exception, match="R6"):
        _sql(
            wws,
            "INSERT INTO quota_ledger (entry_id, pool, kind, amount, year, effective_date, "
            "source, entered_at, entered_by) VALUES ('D9', 'new_construction', 'adjustment', "
            "-40000, 2014, '2014-03-01', 'doc', '2014-03-01T00:00:00.000Z', 'x')",
        )
    # dated after the credit it needs, the same debit is accepted
    _sql(
        wws,
        "INSERT INTO quota_ledger (entry_id, pool, kind, amount, year, effective_date, source, "
        "entered_at, entered_by) VALUES ('D9', 'new_construction', 'adjustment', -40000, 2014, "
        "'2014-06-02', 'doc', '2014-06-02T00:00:00.000Z', 'x')",
    )


@pytest.mark.parametrize("to", ["reverted", "draft"])
def test_direct_status_update_of_a_committed_run_is_refused(wws, to: str) -> None:
    run = _committed(wws)
    with pytest.raises(Exception, match="life cycle"):
        _sql(wws, f"UPDATE allocation_runs SET status = '{to}' WHERE run_id = '{run.run_id}'")
    assert read_run(wws, run.run_id).status == "committed"
    assert verify_workspace(wws).ok


def test_draft_cannot_be_committed_without_its_debits(wws) -> None:
    run = plan_allocation(wws, mode="greedy", as_of=MAY1)
    with pytest.raises(Exception, match="life cycle"):
        _sql(wws, f"UPDATE allocation_runs SET status = 'committed' WHERE run_id = '{run.run_id}'")
    assert read_run(wws, run.run_id).status == "draft"


def test_reversals_are_dated_on_the_revert_day_and_closed_periods_stay(wws) -> None:
    run = _committed(wws)
    closed = statement(wws.read_layer("quota_ledger"), start=date(2014, 1, 1), end=date(2014, 6, 30))
    revert_run(wws, run.run_id)
    ledger = wws.read_layer("quota_ledger")
    rev = ledger[ledger["kind"] == "reversal"]
    assert len(rev) and (rev["effective_date"] == pd.Timestamp(date.today())).all()
    again = statement(ledger, start=date(2014, 1, 1), end=date(2014, 6, 30))
    pd.testing.assert_frame_equal(closed, again)


# --- upgrade of a version-3 workspace ------------------------------------------------------------
def test_upgrade_chains_existing_entries_and_runs(ws_target: str) -> None:
    with open_workspace(ws_target, create=True) as ws:
        ws.write_layers(world())
        run = _committed(ws)
    # make it a version-3 workspace again: no chain table, the old R6 trigger
    if ws_target.endswith(".gpkg"):
        con = sqlite3.connect(ws_target)
        con.executescript(
            "DROP TABLE ledger_chain; DELETE FROM gpkg_contents WHERE table_name='ledger_chain';"
            "DROP TRIGGER quota_ledger_r6; UPDATE landquota_meta SET value='3' "
            "WHERE key='schema_version';"
        )
        con.close()
    else:
        url, schema = ws_target.split("?schema=")
        eng = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
        with eng.begin() as c:
            c.execute(sa.text(f'DROP TABLE "{schema}".ledger_chain'))
            c.execute(sa.text(f"UPDATE \"{schema}\".landquota_meta SET value='3' WHERE key='schema_version'"))
        eng.dispose()
    with pytest.raises(errors.SchemaVersionError, match="landquota upgrade"):
        open_workspace(ws_target)
    with open_workspace(ws_target, upgrade=True) as ws:
        assert ws.schema_version == SCHEMA_VERSION
        rep = verify_workspace(ws)
        assert rep.ok, rep.summary()
        n = len(ws.read_layer("quota_ledger"))
        assert rep.links == n + 1  # every entry, and the committed run
        revert_run(ws, run.run_id)
        assert verify_workspace(ws).ok


# --- backups that prove themselves ----------------------------------------------------------------
_TAMPERINGS = {
    # drop the append-only trigger and multiply one amount by 100
    "amount_x100": (
        [
            "DROP TRIGGER quota_ledger_no_update",
            "UPDATE quota_ledger SET amount = amount * 100 WHERE entry_id = '{run}:0001'",
        ],
        "entry {run}:0001",
    ),
    # delete a committed run's debits (which would free its quota again)
    "debits_deleted": (
        [
            "DROP TRIGGER quota_ledger_no_delete",
            "DELETE FROM quota_ledger WHERE run_id = '{run}'",
        ],
        "entry {run}:00",  # the first of them in the chain
    ),
    # add a positive entry, as QGIS or any SQLite client can
    "positive_entry": (
        [
            "INSERT INTO quota_ledger (entry_id, pool, kind, amount, year, effective_date, "
            "source, entered_at, entered_by) VALUES ('X1', 'new_construction', 'adjustment', "
            "50000, 2014, '2014-02-01', 'QGIS', '2014-02-01T00:00:00.000Z', 'someone')",
        ],
        "entry X1",
    ),
}


@pytest.fixture
def backup(tmp_path):
    from landquota.outputs.export import export_workspace

    src = tmp_path / "src.gpkg"
    with open_workspace(src, create=True) as ws:
        ws.write_layers(world())
        run = _committed(ws)
        head = chain_head(ws)
    return export_workspace(src, tmp_path / "backup.gpkg"), run.run_id, head


def test_untampered_backup_restores_and_verifies(backup, ws_target: str, capsys) -> None:
    from landquota.store.backup import restore_workspace

    path, _run, head = backup
    with restore_workspace(path, ws_target) as ws:
        rep = verify_workspace(ws, head=head)
        assert rep.ok, rep.summary()
        assert rep.head == head  # the same chain on either backend
    assert main(["verify", "--db", str(path), "--head", head]) == 0
    capsys.readouterr()


@pytest.mark.parametrize("how", sorted(_TAMPERINGS))
def test_tampered_backup_is_refused_and_verify_names_the_entry(
    backup, ws_target: str, how: str, capsys
) -> None:
    from landquota.store.backup import restore_workspace

    path, run, _head = backup
    stmts, named = _TAMPERINGS[how]
    con = sqlite3.connect(path)  # the real sqlite3 module, as an attacker would
    for s in stmts:
        con.execute(s.format(run=run))
    con.commit()
    con.close()
    named = named.format(run=run)
    with pytest.raises(errors.BackupVerificationError, match="does not verify") as exc:
        restore_workspace(path, ws_target)
    assert named in str(exc.value) and "quota_ledger" in str(exc.value)
    assert main(["restore", "--from", str(path), "--db", ws_target]) == 2
    assert "does not verify" in capsys.readouterr().err
    with open_workspace(path) as b:
        rep = verify_workspace(b)
    assert rep.first is not None and rep.first.ref.startswith(named), rep.summary()
    assert main(["verify", "--db", str(path)]) == 1
    assert named in capsys.readouterr().out
    # nothing was restored
    if ws_target.endswith(".gpkg"):
        from pathlib import Path

        assert not Path(ws_target).exists()


def test_override_restores_and_is_recorded_in_the_chain(backup, ws_target: str) -> None:
    from landquota.store.backup import restore_workspace

    path, _run, _head = backup
    stmts, _named = _TAMPERINGS["positive_entry"]
    con = sqlite3.connect(path)
    con.execute(stmts[0])
    con.commit()
    con.close()
    with restore_workspace(path, ws_target, accept_unverified="audit copy, case 2014-17") as ws:
        chain = ws.read_layer("ledger_chain")
        last = chain.sort_values("seq").iloc[-1]
        assert last["kind"] == "override" and last["ref_id"] == "backup.gpkg"
        payload = json.loads(last["payload"])
        assert payload[0] == "restore_override/1" and payload[4] == "audit copy, case 2014-17"
        assert any("entry X1" in p for p in payload[5])
        rep = verify_workspace(ws)
        # the restored ledger still says what is wrong; the override link itself is sound
        assert [f.ref for f in rep.findings] == ["entry X1"]


def test_report_prints_and_files_the_chain_head(wws, tmp_path, capsys) -> None:
    _committed(wws)
    head = chain_head(wws)
    out = tmp_path / "report"
    assert main(["report", "--db", wws.target, "--out", str(out), "--format", "csv", "--as-of", "2014-05-31"]) == 0
    assert f"chain head {head}" in capsys.readouterr().out
    summary = next(p for p in out.iterdir() if "summary" in p.name)
    assert head in summary.read_text(encoding="utf-8-sig")


def test_monthly_bulletin_prints_the_chain_head(wws, tmp_path, capsys) -> None:
    _committed(wws)
    stage = {"stage_id": ["K1:pre_review"], "project_id": ["K1"], "stage": ["pre_review"]}
    wws.write_layer("project_stages", pd.DataFrame({**stage, "started": [pd.Timestamp("2014-01-10")]}))
    head = chain_head(wws)
    xlsx = tmp_path / "b.xlsx"
    assert main(["bulletin", "--db", wws.target, "--month", "2014-04", "--out", str(xlsx)]) == 0
    assert f"chain head {head}" in capsys.readouterr().out
    summary = pd.read_excel(xlsx, sheet_name=0)
    assert head in summary.astype(str).to_numpy().ravel().tolist()


# --- validate and allocate --commit on a ledger that does not verify (LQ-021) ------------------
_UNCHAINED = (
    "INSERT INTO quota_ledger (entry_id, pool, kind, amount, year, effective_date, source, "
    "entered_at, entered_by) VALUES ('X1', 'new_construction', 'adjustment', 50000, 2014, "
    "'2014-02-01', 'QGIS', '2014-02-01T00:00:00.000Z', 'someone')"
)


def test_validate_blocks_and_commit_refuses_a_ledger_that_does_not_verify(wws, capsys) -> None:
    from landquota.intake.validate import validate_workspace

    draft = plan_allocation(wws, mode="greedy", as_of=MAY1)  # planned while the ledger verifies
    rep = validate_workspace(wws, write=False)
    assert "LQ-021" not in rep.by_rule
    _sql(wws, _UNCHAINED)
    first = verify_workspace(wws).first
    assert first is not None and first.ref == "entry X1"
    rep = validate_workspace(wws)
    assert rep.by_rule.get("LQ-021") == 1 and rep.blocking >= 1
    row = rep.errors[rep.errors["rule"] == "LQ-021"].iloc[0]
    assert (row["severity"], row["layer"], row["feature_id"]) == ("blocking", "quota_ledger", "X1")
    assert f"first: {first}" in row["message"] and "landquota verify" in row["message"]
    stored = wws.read_layer("validation_errors", where={"rule": "LQ-021"})
    assert stored["error_id"].tolist() == ["LQ-021:quota_ledger:X1"]

    n_ledger = len(wws.read_layer("quota_ledger"))
    n_runs = len(wws.read_layer("allocation_runs"))
    with pytest.raises(errors.LedgerError, match=r"does not verify .*first: entry X1.*landquota verify"):
        commit_run(wws, draft.run_id)
    assert read_run(wws, draft.run_id).status == "draft"
    capsys.readouterr()
    target = wws.target
    code = main(["allocate", "--db", target, "--as-of", "2014-05-01", "--commit"])
    err = capsys.readouterr().err
    assert code == 2
    assert "entry X1" in err and "`landquota verify`" in err
    # refused before planning: no new run, no ledger entry
    assert len(wws.read_layer("allocation_runs")) == n_runs
    assert len(wws.read_layer("quota_ledger")) == n_ledger


def test_info_says_whether_the_ledger_verifies(wws, capsys) -> None:
    # the balances `info` prints come from the ledger: it says at once when that is forged
    assert main(["info", "--db", wws.target]) == 0
    head = chain_head(wws)
    assert f"账本校验 ledger: verified, chain head {head}" in capsys.readouterr().out
    _sql(wws, _UNCHAINED)
    assert main(["info", "--db", wws.target]) == 0
    out = capsys.readouterr().out
    assert "账本校验 ledger: NOT VERIFIED (1 problem(s); first: entry X1" in out
    assert "run `landquota verify`" in out


def test_revert_refuses_a_ledger_that_does_not_verify(wws) -> None:
    # an edited debit would otherwise be negated as stored and the edit chained for good
    run = _committed(wws)
    _sql(wws, _UNCHAINED)
    n_ledger = len(wws.read_layer("quota_ledger"))
    with pytest.raises(errors.LedgerError, match=r"first: entry X1.*then revert again"):
        revert_run(wws, run.run_id)
    assert read_run(wws, run.run_id).status == "committed"
    assert len(wws.read_layer("quota_ledger")) == n_ledger


def test_draft_allocate_on_a_ledger_that_does_not_verify_warns(wws, capsys) -> None:
    _sql(wws, _UNCHAINED)
    args = ["allocate", "--db", wws.target, "--as-of", "2014-05-01", "--mode", "greedy"]
    assert main(args) == 2  # LQ-021 blocks planning too
    assert "LQ-021" in capsys.readouterr().err
    assert main([*args, "--force"]) == 0  # forced: planned, but said out loud
    err = capsys.readouterr().err
    assert "警告 warning: the ledger does not verify" in err and "first: entry X1" in err
    assert "cannot be committed" in err

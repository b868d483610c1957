"""Allocation runs on a workspace: records, commits, reverts, races and crashes (R6, R18)."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from landquota import errors
from landquota.allocation.runs import commit_run, plan_allocation, read_run, revert_run
from landquota.rules.ledger import balances
from landquota.store.api import open_workspace
from tests.runworld import world

ROOT = Path(__file__).resolve().parents[1]
MAY1 = date(2014, 5, 1)


@pytest.fixture
def wws(ws):
    ws.write_layers(world())
    return ws


def _balance(ws, pool: str) -> float:
    b = balances(ws.read_layer("quota_ledger"))
    return float(b.set_index("pool").loc[pool, "balance"])


def test_hand_checked_run(wws) -> None:
    run = plan_allocation(wws, mode="greedy", as_of=MAY1)
    t = run.table().set_index("project_id")
    # K1: 10,000 m² of 0101 (net share 0.9) + 10,000 m² of 0702 → see tests/runworld.py
    k1 = t.loc["K1"]
    assert k1["outcome"] == "funded"
    assert k1["need_new_quota_m2"] == pytest.approx(10_000, rel=1e-4)
    assert k1["need_comp_area_m2"] == pytest.approx(9_000, rel=1e-4)
    assert k1["need_comp_paddy_m2"] == pytest.approx(9_000, rel=1e-4)
    assert k1["need_comp_grain_kg"] == pytest.approx(9_000, rel=1e-4)
    assert k1["approval_level"] == "province"
    assert t.loc["K3", "outcome"] == "stock_matched" and t.loc["K3", "stock_id"] == "S1"
    assert t.loc["K2", "outcome"] == "unfunded"
    assert "insufficient_new_quota" in t.loc["K2", "reasons"]
    rec = run.record
    assert run.status == "draft" and rec["created_by"] == wws.user()
    assert rec["software_version"] and len(rec["input_digest"]) == 64
    assert '"mode":"greedy"' in rec["params"]


def test_commit_debits_then_revert_restores(wws) -> None:
    run = plan_allocation(wws, mode="optimal", as_of=MAY1)
    # the solver's status is kept with the run and shown (issue 16)
    assert '"solver":{"proven_optimal":true,"status":"optimal"}' in run.record["params"]
    assert "求解状态 solver: optimal" in run.summary()
    assert read_run(wws, run.run_id).solver() == ("optimal", True)
    before = _balance(wws, "new_construction")
    entries = commit_run(wws, run.run_id)
    assert set(entries["kind"]) == {"allocation"} and (entries["run_id"] == run.run_id).all()
    used = run.allocations["new_quota_m2"].sum()
    assert _balance(wws, "new_construction") == pytest.approx(before - used)
    assert read_run(wws, run.run_id).status == "committed"
    with pytest.raises(errors.AllocationError, match="only a draft can be committed"):
        commit_run(wws, run.run_id)
    revert_run(wws, run.run_id)
    assert _balance(wws, "new_construction") == pytest.approx(before)
    assert read_run(wws, run.run_id).status == "reverted"
    assert len(wws.read_layer("quota_ledger", where={"kind": "reversal"})) == len(entries)


def test_same_inputs_same_run_and_identical_files(wws, tmp_path: Path) -> None:
    a = plan_allocation(wws, mode="greedy", as_of=MAY1)
    b = plan_allocation(wws, mode="greedy", as_of=MAY1)
    assert b.run_id == a.run_id and not b.is_new
    assert wws.layer_counts()["allocation_runs"] == 1
    for suffix in (".csv", ".xlsx"):
        p1, p2 = a.write(tmp_path / f"a{suffix}"), b.write(tmp_path / f"b{suffix}")
        assert p1.read_bytes() == p2.read_bytes()
    other = plan_allocation(wws, mode="optimal", as_of=MAY1)
    assert other.run_id != a.run_id


def test_commit_refused_when_balance_went_down_meanwhile(wws) -> None:
    # two drafts planned on the same 15,000 m²; each takes 10,000: only one can be committed (R6)
    r1 = plan_allocation(wws, mode="greedy", as_of=MAY1)
    r2 = plan_allocation(wws, mode="greedy", as_of=date(2014, 5, 2))
    commit_run(wws, r1.run_id)
    with pytest.raises(errors.LedgerError, match="R6"):
        commit_run(wws, r2.run_id)
    assert read_run(wws, r2.run_id).status == "draft"
    assert _balance(wws, "new_construction") == pytest.approx(5_000, rel=1e-4)


def test_stock_taken_by_a_committed_run_is_not_offered_again(wws) -> None:
    r1 = plan_allocation(wws, mode="greedy", as_of=MAY1)
    commit_run(wws, r1.run_id)
    r2 = plan_allocation(wws, mode="greedy", as_of=date(2014, 5, 2))
    k3 = r2.table().set_index("project_id").loc["K3"]
    assert k3["outcome"] == "unfunded" and "no_matching_stock" in k3["reasons"]


def test_blocking_validation_errors_refuse_unless_forced(ws) -> None:
    # two zones of one plan version overlapping: LQ-012, a blocking finding
    w = world()
    z = w["plan_zones"]
    w["plan_zones"] = pd.concat(
        [z, z.assign(zone_id="Z2", zone_type="conditional")], ignore_index=True
    )
    ws.write_layers(w)
    with pytest.raises(errors.ValidationBlockedError, match="--force"):
        plan_allocation(ws, as_of=MAY1)
    run = plan_allocation(ws, as_of=MAY1, force=True)
    assert bool(run.record["forced"]) is True
    assert '"force":true' in run.record["params"]


def _cli(db: str, *argv: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "landquota", *argv, "--db", db],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


@contextlib.contextmanager
def _ledger_writers_held(ws_target: str) -> Iterator[None]:
    """Hold the lock ledger writers take, so that processes can read and plan but not commit."""
    if ws_target.endswith(".gpkg"):
        con = sqlite3.connect(ws_target, isolation_level=None)
        con.execute("BEGIN IMMEDIATE")  # readers go on; writers wait (busy timeout)
        try:
            yield
        finally:
            con.execute("ROLLBACK")
            con.close()
        return
    with open_workspace(ws_target) as w, w.engine.connect() as c:
        c.execute(sa.text(f'LOCK TABLE "{w.schema}".ledger_lock IN EXCLUSIVE MODE'))
        try:
            yield
        finally:
            c.rollback()


def test_two_concurrent_allocate_commits_only_one_lands(ws_target: str) -> None:
    """Two `allocate --commit` processes whose runs cannot both fit: exactly one commits (R6)."""
    with open_workspace(ws_target, create=True) as w:
        w.write_layers(world())
        # plan both drafts first, so both processes hold a run planned on the full balance
        plan_allocation(w, as_of=MAY1)
        plan_allocation(w, as_of=date(2014, 5, 2))
    with _ledger_writers_held(ws_target):
        # both processes plan (and find their drafts) before either may commit: a real race
        procs = [
            _cli(
                ws_target,
                "allocate",
                "--as-of",
                d,
                "--commit",
                # the first may wait for the second to plan, however slow the machine
                env={"PYTHONUNBUFFERED": "1", "LANDQUOTA_LOCK_TIMEOUT": "600"},
            )
            for d in ("2014-05-01", "2014-05-02")
        ]
        for p in procs:
            assert p.stdout is not None
            assert "reusing it" in p.stdout.readline()
    results = [(*p.communicate(timeout=300), p.returncode) for p in procs]
    results = [(code, out, err) for out, err, code in results]
    codes = sorted(r[0] for r in results)
    assert codes == [0, 2], results
    loser = next(r for r in results if r[0] == 2)
    assert "R6" in loser[2] and "Traceback" not in loser[2]
    with open_workspace(ws_target) as w:
        runs = w.read_layer("allocation_runs").set_index("run_id")["status"]
        assert sorted(runs) == ["committed", "draft"]
        assert _balance(w, "new_construction") == pytest.approx(5_000, rel=1e-4)


def test_two_processes_racing_the_ledger_never_overdraw(ws_target: str) -> None:
    """R6 under a race: each process debits 10,000 of 15,000; the ledger ends at 5,000."""
    with open_workspace(ws_target, create=True) as w:
        w.write_layers({"quota_ledger": world()["quota_ledger"]})
    code = (
        "import sys, pandas as pd\n"
        "from landquota.store.api import open_workspace\n"
        "from landquota.errors import LedgerError\n"
        "w = open_workspace(sys.argv[1])\n"
        "e = pd.DataFrame([{'entry_id': sys.argv[2], 'pool': 'new_construction', 'kind': 'adjustment',"
        " 'amount': -10000.0, 'year': 2014, 'effective_date': '2014-05-01', 'source': 'race'}])\n"
        "try:\n    w.append_ledger(e)\nexcept LedgerError as exc:\n    print(exc); sys.exit(3)\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, ws_target, eid],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for eid in ("X1", "X2")
    ]
    for p in procs:
        p.communicate(timeout=300)
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 3]
    with open_workspace(ws_target) as w:
        assert _balance(w, "new_construction") == pytest.approx(5_000)


def test_killed_commit_leaves_balances_and_draft(ws_target: str) -> None:
    """SIGKILL in the middle of a commit: balances unchanged, the run still a draft."""
    with open_workspace(ws_target, create=True) as w:
        w.write_layers(world())
        run = plan_allocation(w, as_of=MAY1)
        before = balances(w.read_layer("quota_ledger"))
    # the child commits, but stops inside the write transaction (after the debits are
    # inserted, before COMMIT) until we kill it
    code = (
        "import sys, time\n"
        "from landquota.store.api import open_workspace\n"
        "from landquota.allocation import runs\n"
        "from landquota.store import gpkg as _gpkg, postgis as _postgis\n"
        "w = open_workspace(sys.argv[1])\n"
        "def hang(*a, **k):\n    print('inside', flush=True); time.sleep(600)\n"
        "orig_g, orig_p = _gpkg.GpkgWorkspace._insert, _postgis.PostgisWorkspace._copy\n"
        "def g(self, *a, **k):\n    orig_g(self, *a, **k); hang()\n"
        "def p(self, *a, **k):\n    orig_p(self, *a, **k); hang()\n"
        "_gpkg.GpkgWorkspace._insert, _postgis.PostgisWorkspace._copy = g, p\n"
        "runs.commit_run(w, sys.argv[2])\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code, ws_target, run.run_id],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    line = child.stdout.readline()
    assert line.strip() == "inside", line
    os.kill(child.pid, signal.SIGKILL)
    child.communicate(timeout=60)
    time.sleep(0.2)
    with open_workspace(ws_target) as w:
        pd.testing.assert_frame_equal(balances(w.read_layer("quota_ledger")), before)
        assert read_run(w, run.run_id).status == "draft"
        assert len(w.read_layer("quota_ledger")) == 4
        # and the run can still be committed afterwards
        commit_run(w, run.run_id)
        assert read_run(w, run.run_id).status == "committed"


def test_a_run_that_wrote_no_entries_can_be_reverted(ws) -> None:
    # no quota at all: K1 and K2 unfunded, K3 matched to stock S1 — the commit writes nothing
    ws.write_layers(world(new_quota=0.0))
    run = plan_allocation(ws, as_of=MAY1)
    assert len(commit_run(ws, run.run_id)) == 0
    revert_run(ws, run.run_id)
    assert read_run(ws, run.run_id).status == "reverted"
    # and S1 is free again for the next run
    again = plan_allocation(ws, as_of=date(2014, 5, 2))
    assert again.table().set_index("project_id").loc["K3", "stock_id"] == "S1"


def test_exports_keep_full_precision(tmp_path: Path) -> None:
    # Issue 16: `allocate --out x.csv` wrote fractions with 2 decimals (0.666678888 showed
    # as 0.67) while the layer kept the exact value. A, phaseable, needs 30,000.01 m²; the
    # pool is 20,000.37 m²: fraction floor(2,000,037e9 / 3,000,001) / 1e9 = 0.666678777,
    # given floor(3,000,001 × 0.666678777) hundredths = 20,000.36 m².
    import openpyxl

    from landquota.allocation.model import Pools, ProjectNeed, allocate
    from landquota.allocation.runs import Run

    res = allocate(
        [ProjectNeed("A", "county", 1, phaseable=True, new_quota_m2=30_000.01)],
        Pools(new_construction=20_000.37),
        mode="optimal",
    )
    frame = res.to_frame()
    frame.insert(0, "run_id", "R1")
    frame.insert(0, "allocation_id", "R1:A")
    projects = pd.DataFrame(
        {"project_id": ["A"], "name": ["甲"], "level": ["county"], "score": [1.0]}
    )
    run = Run(record={"run_id": "R1", "status": "draft"}, allocations=frame, projects=projects)
    a = res["A"]
    assert (a.fraction, a.new_quota_m2) == (0.666678777, 20_000.36)
    back = pd.read_csv(run.write(tmp_path / "a.csv"), encoding="utf-8-sig")
    assert back.loc[0, "fraction"] == a.fraction  # the float itself, not 0.67
    assert back.loc[0, "new_quota_m2"] == a.new_quota_m2
    assert back.loc[0, "need_new_quota_m2"] == 30_000.01
    book = openpyxl.load_workbook(run.write(tmp_path / "a.xlsx"))
    sheet = book["allocations"]
    header = [c.value for c in sheet[1]]
    frac = sheet.cell(row=2, column=header.index("fraction") + 1)
    quota = sheet.cell(row=2, column=header.index("new_quota_m2") + 1)
    assert frac.value == a.fraction and frac.number_format == "0.000000000"  # shown, not rounded
    assert quota.value == a.new_quota_m2 and quota.number_format == "#,##0.00"

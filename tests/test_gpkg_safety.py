"""Crash safety: a writer SIGKILLed mid-write, and two writers at once, never corrupt a workspace.

The writers are real subprocesses (``_CHILD`` below). To act "in the middle" of a write
deterministically, a GeoPackage child pauses inside its write transaction (an SQLite
progress handler that waits for a "go" file) once the chosen point is reached: its
transaction has begun, or it has already overwritten part of the database file (a small
page cache makes SQLite spill pages before commit). On PostGIS the child holds the ledger
lock and waits inside its commit transaction on a row the test has locked.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyogrio
import pytest
import sqlalchemy as sa

from landquota.store.api import open_workspace
from landquota.store.backup import read_snapshot
from landquota.store.workspace import RunTransition, Workspace
from tests.sample import sample_layers

ROOT = Path(__file__).resolve().parents[1]

_CHILD = r"""
import json, sys, time
import numpy as np, pandas as pd, geopandas as gpd, shapely
import landquota.store.gpkg as gpkg
from landquota.errors import ConcurrencyError
from landquota.store.workspace import RunTransition
from landquota.store.api import open_workspace

import os
target, action, n, tag, pause, go, timeout = sys.argv[1:8]
n, timeout = int(n), float(timeout)
gpkg._BUSY_TIMEOUT_S = timeout  # how long this writer waits for another one
ws = open_workspace(target)
if ws.kind == "gpkg" and pause in ("begun", "spill"):
    size0 = os.path.getsize(target)
    if pause == "spill":
        ws._con.execute("PRAGMA cache_size = -256")  # spill to the file long before commit

    def hold():
        # pause inside our own write transaction once the chosen point is reached
        while ws._con.in_transaction and not os.path.exists(go) and (
            pause == "begun" or os.path.getsize(target) > size0
        ):
            time.sleep(0.01)
        return 0

    ws._con.set_progress_handler(hold, 1000)

def parcels(n, tag):
    i = np.arange(n)
    x, y = 112.3 + (i % 500) * 1e-4, 24.0 + (i // 500) * 1e-4
    g = shapely.multipolygons(shapely.box(x, y, x + 9e-5, y + 9e-5)[:, None])
    return gpd.GeoDataFrame({"parcel_id": [f"{tag}{k}" for k in i], "land_class": "0101",
                             "net_m2": 100.0}, geometry=g, crs="EPSG:4490")

def credits(n, tag, run_id):
    return pd.DataFrame({"entry_id": [f"{tag}{k}" for k in range(n)], "pool": "comp_area",
        "kind": "adjustment", "amount": 1.0, "year": 2014,
        "effective_date": pd.Timestamp("2014-05-01"), "source": "doc", "run_id": run_id})

frame = parcels(n, tag) if action.startswith("parcels") else credits(n, tag, "R1")
print("ready", flush=True)
if pause == "queue":  # start writing only once the other writer is inside its transaction
    while not os.path.exists(target + "-journal"):
        time.sleep(0.01)
t0 = time.time()
try:
    if action == "parcels_replace":
        ws.write_layer("parcels", frame, mode="replace")
    elif action == "parcels_append":
        ws.write_layer("parcels", frame, mode="append")
    else:
        ws.append_ledger(frame, transition=RunTransition("R1", "draft", "committed"))
except ConcurrencyError as exc:
    print(json.dumps({"error": "ConcurrencyError", "message": str(exc)}), flush=True)
    sys.exit(3)
print(json.dumps({"called": t0, "done": time.time()}), flush=True)
"""


@pytest.fixture
def child(tmp_path: Path) -> Callable[..., subprocess.Popen[str]]:
    script = tmp_path / "writer.py"
    script.write_text(_CHILD, encoding="utf-8")
    procs: list[subprocess.Popen[str]] = []

    def start(
        target: str,
        action: str,
        n: int,
        *,
        tag: str = "X",
        pause: str = "none",
        timeout: float = 60.0,
    ) -> subprocess.Popen[str]:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        go = str(tmp_path / "go")
        args = [target, action, str(n), tag, pause, go, str(timeout)]
        p = subprocess.Popen(
            [sys.executable, str(script), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        procs.append(p)
        return p

    yield start  # type: ignore[misc]
    for p in procs:  # never leave a writer behind, whatever happened
        if p.poll() is None:
            p.kill()
        p.wait(timeout=30)
        for f in (p.stdout, p.stderr):
            if f is not None:
                f.close()


def _wait_for(cond: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _ready(p: subprocess.Popen[str]) -> None:
    assert p.stdout is not None
    line = p.stdout.readline()
    assert line.strip() == "ready", (line, p.stderr.read() if p.stderr else "")


def _integrity(path: Path) -> str:
    con = sqlite3.connect(str(path))  # a read-write connection rolls a hot journal back
    try:
        return str(con.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        con.close()


def _same(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame]) -> None:
    for name in a:
        pd.testing.assert_frame_equal(
            pd.DataFrame(a[name].drop(columns="geometry", errors="ignore")),
            pd.DataFrame(b[name].drop(columns="geometry", errors="ignore")),
            obj=name,
        )


def _sample_gpkg(path: Path) -> dict[str, pd.DataFrame]:
    with open_workspace(path, create=True) as ws:
        ws.write_layers(sample_layers())
        return read_snapshot(ws)[0]


@pytest.mark.parametrize("action", ["parcels_replace", "ledger_commit"])
def test_writer_killed_mid_write_leaves_the_file_as_before(
    tmp_path: Path, child: Callable[..., subprocess.Popen[str]], action: str
) -> None:
    path = tmp_path / "ws.gpkg"
    before = _sample_gpkg(path)
    journal = Path(f"{path}-journal")
    size0 = path.stat().st_size
    p = child(str(path), action, 10_000, pause="spill")
    _ready(p)
    # in the middle: the journal is there and the file itself has already grown
    _wait_for(lambda: journal.exists() and path.stat().st_size > size0, "the child to spill pages")
    p.send_signal(signal.SIGKILL)
    assert p.wait(timeout=30) == -signal.SIGKILL
    assert journal.exists()  # a hot journal: the kill really came mid-transaction
    assert _integrity(path) == "ok"
    assert not journal.exists()  # rolled back by the first connection
    with open_workspace(path) as ws:
        after, _ = read_snapshot(ws)
        _same(before, after)
        if action == "ledger_commit":  # R6 balances and the run's status are unchanged
            assert ws.read_layer("allocation_runs")["status"].tolist() == ["draft"]
    # GDAL reads it too, and the R-tree still answers
    got = pyogrio.read_dataframe(path, layer="parcels", bbox=(112.6, 24.5, 112.6005, 24.5005))
    assert got["parcel_id"].tolist() == ["P1"]


def test_two_writers_at_once_queue_and_both_land(
    tmp_path: Path, child: Callable[..., subprocess.Popen[str]]
) -> None:
    path = tmp_path / "ws.gpkg"
    _sample_gpkg(path)
    journal = Path(f"{path}-journal")
    a = child(str(path), "parcels_append", 3_000, tag="A", pause="begun")
    b = child(str(path), "parcels_append", 3_000, tag="B", pause="queue")
    _ready(a)
    _ready(b)
    _wait_for(journal.exists, "the first writer's transaction")
    time.sleep(0.5)  # B is now waiting for A's lock (its busy timeout is 60 s)
    (tmp_path / "go").touch()
    outs = []
    for p in (a, b):
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        outs.append(json.loads(out.strip().splitlines()[-1]))
    # they ran at the same time: each was called before the other had finished; B waited
    assert max(o["called"] for o in outs) < min(o["done"] for o in outs)
    assert outs[0]["done"] < outs[1]["done"]
    assert _integrity(path) == "ok"
    with open_workspace(path) as ws:
        ids = ws.read_layer("parcels")["parcel_id"]
    assert len(ids) == 3 + 3_000 + 3_000  # the sample's 3 and both writers' rows
    # one transaction after the other: each writer's rows are contiguous in the file
    assert "".join(ids.str[0].tolist()[3:]) == "A" * 3_000 + "B" * 3_000


def test_impatient_second_writer_fails_cleanly(
    tmp_path: Path, child: Callable[..., subprocess.Popen[str]]
) -> None:
    path = tmp_path / "ws.gpkg"
    _sample_gpkg(path)
    a = child(str(path), "parcels_append", 2_000, tag="A", pause="begun")
    b = child(str(path), "parcels_append", 100, tag="B", pause="queue", timeout=0.2)
    _ready(a)
    out_b, err_b = b.communicate(timeout=120)
    assert b.returncode == 3, err_b
    assert (
        "is being written by another process"
        in json.loads(out_b.strip().splitlines()[-1])["message"]
    )
    (tmp_path / "go").touch()
    _, err_a = a.communicate(timeout=120)
    assert a.returncode == 0, err_a
    assert _integrity(path) == "ok"
    with open_workspace(path) as ws:
        ids = ws.read_layer("parcels")["parcel_id"]
    assert len(ids) == 3 + 2_000 and not ids.str.startswith("B").any()


@pytest.mark.postgis
def test_commit_killed_on_postgis_leaves_ledger_and_run_as_before(
    pg_url: str, child: Callable[..., subprocess.Popen[str]]
) -> None:
    app = f"lq_kill_{uuid.uuid4().hex[:8]}"
    ws: Workspace = open_workspace(pg_url, create=True)
    try:
        ws.write_layers(sample_layers())
        before = ws.read_layer("quota_ledger")
        eng = ws.engine  # type: ignore[attr-defined]
        schema = pg_url.split("schema=")[1]
        with eng.connect() as lock:
            # hold run R1, so that the child's commit stops inside its transaction
            lock.execute(
                sa.text(
                    f"SELECT 1 FROM \"{schema}\".allocation_runs WHERE run_id = 'R1' FOR UPDATE"
                )
            )
            p = child(f"{pg_url}&application_name={app}", "ledger_commit", 1_000)
            _ready(p)
            waiting = sa.text(
                "SELECT count(*) FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid "
                "WHERE a.application_name = :app AND l.locktype = 'relation' AND l.granted "
                f"AND l.relation = '\"{schema}\".ledger_lock'::regclass "
                "AND a.wait_event_type = 'Lock'"
            )

            def child_inside_commit() -> bool:
                with eng.connect() as c:
                    return bool(c.execute(waiting, {"app": app}).scalar())

            _wait_for(child_inside_commit, "the child to hold the ledger lock and wait on R1")
            p.send_signal(signal.SIGKILL)
            assert p.wait(timeout=30) == -signal.SIGKILL
            lock.rollback()
        gone = sa.text("SELECT count(*) = 0 FROM pg_stat_activity WHERE application_name = :app")

        def backend_gone() -> bool:
            with eng.connect() as c:
                return bool(c.execute(gone, {"app": app}).scalar())

        _wait_for(backend_gone, "the server to end the killed client's session")
        pd.testing.assert_frame_equal(ws.read_layer("quota_ledger"), before)
        assert ws.read_layer("allocation_runs")["status"].tolist() == ["draft"]
        # the ledger lock went with the session: the next commit goes through
        # R1's debit: its allocation gives 10,000 m² of new quota (the run life cycle)
        entry = sample_layers()["quota_ledger"].iloc[[0]].assign(
            entry_id="E9", run_id="R1", kind="allocation", amount=-10_000.0
        )
        ws.append_ledger(
            entry.drop(columns=["entered_at", "entered_by"]),
            transition=RunTransition("R1", "draft", "committed"),
        )
        assert ws.read_layer("allocation_runs")["status"].tolist() == ["committed"]
    finally:
        ws.close()

"""Load benchmark: 20 concurrent readers and 2 allocation committers on one PostGIS workspace.

The demo county (``landquota.demo.build.demo_workspace``, 20,000 survey patches, 78 key
projects) is built into a fresh schema of the PostGIS on loopback. Then, for a bounded
time, all at once:

* **readers** (20 by default), each with its own workspace connection, in a loop:
  ``bbox`` — ``read_layer("parcels", bbox=…)`` of a random 0.02° × 0.02° box in the
  county (the query a map pan or a site check makes); ``demand`` —
  ``landquota.engines.api.demand_from_workspace`` (R1–R4 needs and R13–R15 compliance of
  every fixed site); ``map`` — ``landquota.outputs.maps.map_workspace`` and the HTML rendered,
  what ``landquota map`` does. Readers are split 8 bbox / 8 demand / 4 map.
* **committers** (2 by default), in a loop: ``plan_allocation`` (greedy, a new as-of
  day each time, so every run is new), ``commit_run``, then ``revert_run`` to give the
  quota back. The two race each other for the same quota: a commit refused with
  ``LedgerError`` (R6: the other one took the balance first) or ``ConcurrencyError``
  is an expected, clean refusal, counted apart from failures.

Concurrency model: the machine has 2 cores. Readers run as threads — 10 per process in
2 spawned processes — because most of a bbox read is waiting on the server (psycopg
releases the GIL), while demand overlays and map builds are CPU-bound, so two processes
let them use both cores. Each committer is a spawned process of its own with its own
session, like two approvers on two machines. The server shares the same 2 cores.

Afterwards the ledger is checked: every (pool, vintage) running balance >= 0
(``landquota.rules.ledger.check_nonnegative``, R6); every committed run's debits equal its
allocations pool by pool; every reverted run is fully reversed (one reversal per debit,
sums back to zero); no draft has any entry and no run is half-committed. Any failed
request or broken invariant makes the exit status 1.

Run::

    python benchmarks/bench_load.py                    # 60 s on $LANDQUOTA_TEST_PG
    python benchmarks/bench_load.py --seconds 20 --keep
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import queue
import random
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from multiprocessing import get_context
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULT_PG = "postgresql://postgres@127.0.0.1:55432/landquota_test"
READER_KINDS = ("bbox",) * 4 + ("demand",) * 4 + ("map",) * 2  # repeated per 10 readers

#: allocations column debited from each pool
POOL_COLUMNS = {
    "new_construction": "new_quota_m2",
    "linkage_surplus": "linkage_quota_m2",
    "comp_area": "comp_area_m2",
    "comp_paddy": "comp_paddy_m2",
    "comp_grain": "comp_grain_kg",
}

Record = tuple[str, float, str, str]  # (kind, seconds, "ok" | "refused" | "fail", detail)


# --- workers (run in spawned processes) -----------------------------------------------------------
def _reader(url: str, kind: str, seed: int, go: Any, seconds: float, out: list[Record]) -> None:
    from landquota.engines.api import demand_from_workspace
    from landquota.outputs.maps import map_workspace
    from landquota.store.api import open_workspace

    rng = random.Random(seed)
    ws = open_workspace(url)
    try:
        x0, y0, x1, y1 = ws.read_layer("county").total_bounds
        go.wait()
        deadline = time.time() + seconds
        while time.time() < deadline:
            t = time.perf_counter()
            try:
                if kind == "bbox":
                    x, y = rng.uniform(x0, x1 - 0.02), rng.uniform(y0, y1 - 0.02)
                    ws.read_layer("parcels", bbox=(x, y, x + 0.02, y + 0.02))
                elif kind == "demand":
                    demand_from_workspace(ws)
                else:
                    map_workspace(ws).get_root().render()
                out.append((kind, time.perf_counter() - t, "ok", ""))
            except Exception as exc:  # a failed request is what this benchmark looks for
                out.append((kind, time.perf_counter() - t, "fail", _describe(exc)))
    finally:
        ws.close()


def reader_process(url: str, kinds: list[str], seed: int, q: Any, go: Any, seconds: float) -> None:
    """Run one reader thread per entry of *kinds*; send all records back when done."""
    records: list[list[Record]] = [[] for _ in kinds]
    ready = threading.Barrier(len(kinds) + 1)

    def thread(i: int) -> None:
        class _Go:  # the threads wait for the process-wide start signal after setting up
            @staticmethod
            def wait() -> None:
                ready.wait()
                go.wait()

        try:
            _reader(url, kinds[i], seed * 100 + i, _Go, seconds, records[i])
        except Exception as exc:  # setup failed: report it, do not hang the barrier
            records[i].append((kinds[i], 0.0, "fail", "setup: " + _describe(exc)))
            ready.abort()

    threads = [threading.Thread(target=thread, args=(i,)) for i in range(len(kinds))]
    for th in threads:
        th.start()
    with contextlib.suppress(threading.BrokenBarrierError):  # a setup failure is reported
        ready.wait()
    q.put(("ready", f"readers{seed}"))
    for th in threads:
        th.join()
    q.put(("done", f"readers{seed}", [r for rs in records for r in rs]))


def committer_process(url: str, c: int, q: Any, go: Any, seconds: float) -> None:
    """Plan, commit and revert runs in a loop; send the records back when done."""
    from landquota.allocation.runs import commit_run, plan_allocation, revert_run
    from landquota.errors import ConcurrencyError, LedgerError
    from landquota.store.api import open_workspace

    out: list[Record] = []
    name = f"committer{c}"
    try:
        ws = open_workspace(url)
    except Exception as exc:
        q.put(("ready", name))
        q.put(("done", name, [("plan", 0.0, "fail", "setup: " + _describe(exc))]))
        return
    q.put(("ready", name))
    go.wait()
    deadline = time.time() + seconds
    k = 0
    while time.time() < deadline:
        # a new as-of day per run (committer 0 even days, 1 odd days), within the 2014
        # quota's carry-over window, so that every plan is a new draft
        as_of = date(2014, 5, 1) + timedelta(days=(2 * k + c) % 900)
        k += 1
        t = time.perf_counter()
        try:
            run = plan_allocation(ws, mode="greedy", as_of=as_of)
        except Exception as exc:
            out.append(("plan", time.perf_counter() - t, "fail", _describe(exc)))
            continue
        out.append(("plan", time.perf_counter() - t, "ok", ""))
        if run.status != "draft":
            continue
        for step, fn in (("commit", commit_run), ("revert", revert_run)):
            t = time.perf_counter()
            try:
                fn(ws, run.run_id)
            except (ConcurrencyError, LedgerError) as exc:
                # a commit may lose the race for the balance (R6) or the lock: a clean,
                # expected refusal. A revert has no rival (each committer reverts only its
                # own runs, and credits cannot break R6): only the lock may refuse it.
                expected = step == "commit" or isinstance(exc, ConcurrencyError)
                out.append(
                    (
                        step,
                        time.perf_counter() - t,
                        "refused" if expected else "fail",
                        _describe(exc),
                    )
                )
                break
            except Exception as exc:
                out.append((step, time.perf_counter() - t, "fail", _describe(exc)))
                break
            out.append((step, time.perf_counter() - t, "ok", ""))
    ws.close()
    q.put(("done", name, out))


def _describe(exc: BaseException) -> str:
    where = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    at = f" at {Path(where[0].filename).name}:{where[0].lineno}" if where else ""
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:240]}{at}"


# --- invariants ------------------------------------------------------------------------------------
@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def check_ledger(url: str) -> tuple[list[Check], dict[str, int]]:
    """R6 and the run/ledger consistency rules; returns the checks and run counts by status."""
    import pandas as pd

    from landquota.errors import LandquotaError
    from landquota.rules.ledger import check_nonnegative
    from landquota.store.api import open_workspace

    with open_workspace(url) as ws:
        ledger = ws.read_layer("quota_ledger")
        runs = ws.read_layer("allocation_runs")
        alloc = ws.read_layer("allocations")
    checks: list[Check] = []
    try:
        check_nonnegative(ledger)
        checks.append(Check("R6: every (pool, vintage) running balance >= 0", True, ""))
    except LandquotaError as exc:
        checks.append(Check("R6: every (pool, vintage) running balance >= 0", False, str(exc)))

    bad: dict[str, list[str]] = {"draft": [], "committed": [], "reverted": [], "orphan": []}
    by_run = dict(tuple(ledger[ledger["run_id"].notna()].groupby("run_id")))
    for rec in runs.itertuples():
        e = by_run.get(rec.run_id, ledger.iloc[:0])
        debits, revs = e[e["kind"] == "allocation"], e[e["kind"] == "reversal"]
        a = alloc[alloc["run_id"] == rec.run_id]
        if rec.status == "draft":
            if len(e):
                bad["draft"].append(f"{rec.run_id}: {len(e)} entries")
            continue
        for pool, col in POOL_COLUMNS.items():
            want = -float(a[col].fillna(0).sum())
            got = float(debits.loc[debits["pool"] == pool, "amount"].sum())
            if not math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-6):
                bad[rec.status].append(f"{rec.run_id} {pool}: debits {got} != allocations {want}")
        if rec.status == "committed" and len(revs):
            bad["committed"].append(f"{rec.run_id}: committed but {len(revs)} reversals")
        if rec.status == "reverted":
            reversed_ids = revs["reverses"].tolist()
            if sorted(reversed_ids) != sorted(debits["entry_id"]) or len(set(reversed_ids)) != len(
                reversed_ids
            ):
                bad["reverted"].append(f"{rec.run_id}: reversals do not match debits one to one")
            net = e.groupby("pool")["amount"].sum()
            if (net.abs() > 1e-6).any():
                bad["reverted"].append(f"{rec.run_id}: net {net.to_dict()} after reversal")
    known = set(runs["run_id"])
    orphans = sorted(set(by_run) - known)
    if orphans:
        bad["orphan"].append(f"entries of unknown runs {orphans[:5]}")
    checks += [
        Check("drafts have no ledger entries (no half-committed run)", not bad["draft"], "; ".join(bad["draft"][:3])),
        Check("committed runs: debits = allocations, pool by pool", not bad["committed"], "; ".join(bad["committed"][:3])),
        Check("reverted runs fully reversed (one reversal per debit, net 0)", not bad["reverted"], "; ".join(bad["reverted"][:3])),
        Check("every run entry belongs to a recorded run", not bad["orphan"], "; ".join(bad["orphan"])),
    ]  # fmt: skip
    counts = {str(k): int(v) for k, v in pd.Series(runs["status"]).value_counts().items()}
    return checks, counts


# --- driver --------------------------------------------------------------------------------------
def _pct(xs: list[float], p: float) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(xs), p)) if xs else math.nan


def _ms(v: float) -> str:
    return "—" if math.isnan(v) else f"{v * 1000:,.0f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default=os.environ.get("LANDQUOTA_TEST_PG", DEFAULT_PG))
    p.add_argument("--seconds", type=float, default=60.0, help="load duration (default 60)")
    p.add_argument("--parcels", type=int, default=20_000, help="demo patches (default 20,000)")
    p.add_argument("--readers", type=int, default=20, help="reader threads (default 20)")
    p.add_argument("--reader-procs", type=int, default=2, help="processes for them (default 2)")
    p.add_argument("--committers", type=int, default=2, help="committer processes (default 2)")
    p.add_argument("--keep", action="store_true", help="keep the benchmark schema afterwards")
    ns = p.parse_args(argv)

    import sqlalchemy as sa

    from landquota.demo.build import demo_workspace
    from landquota.settings import mask_url

    schema = f"bench_load_{uuid.uuid4().hex[:8]}"
    base = ns.url.split("?", 1)[0]
    url = f"{base}?schema={schema}"
    print(f"workspace {mask_url(url)}; building the demo county ({ns.parcels:,} patches)…")
    t = time.perf_counter()
    with demo_workspace(url, n_parcels=ns.parcels) as ws:
        counts = ws.layer_counts()
    print(
        f"  built in {time.perf_counter() - t:.1f} s: {counts['parcels']:,} patches, "
        f"{counts['projects']} projects, {counts['quota_ledger']} ledger entries"
    )
    try:
        return _run(ns, url)
    finally:
        if not ns.keep:
            eng = sa.create_engine(base.replace("postgresql://", "postgresql+psycopg://", 1))
            with eng.begin() as c:
                c.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            eng.dispose()


def _run(ns: argparse.Namespace, url: str) -> int:
    ctx = get_context("spawn")
    q = ctx.Queue()
    go = ctx.Event()
    kinds = [READER_KINDS[i % len(READER_KINDS)] for i in range(ns.readers)]
    groups = [kinds[i :: ns.reader_procs] for i in range(ns.reader_procs)]
    procs = [
        ctx.Process(target=reader_process, args=(url, g, i, q, go, ns.seconds))
        for i, g in enumerate(groups)
        if g
    ] + [
        ctx.Process(target=committer_process, args=(url, c, q, go, ns.seconds))
        for c in range(ns.committers)
    ]
    for pr in procs:
        pr.start()
    for _ in procs:
        q.get(timeout=600)  # "ready": workspaces open, imports done
    print(
        f"load: {ns.readers} readers ({', '.join(f'{kinds.count(k)} {k}' for k in dict.fromkeys(kinds))}) "
        f"in {len(groups)} processes, {ns.committers} committer processes, {ns.seconds:g} s …"
    )
    t0 = time.perf_counter()
    go.set()
    records: list[Record] = []
    done = 0
    while done < len(procs):
        try:
            msg = q.get(timeout=ns.seconds + 900)
        except queue.Empty:
            print("a worker did not finish in time", file=sys.stderr)
            break
        if msg[0] == "done":
            records += msg[2]
            done += 1
    elapsed = time.perf_counter() - t0
    for pr in procs:
        pr.join(timeout=60)

    print(f"\nelapsed {elapsed:.1f} s (the last operations started before the deadline)")
    print(
        f"{'kind':<8}{'ok':>7}{'refused':>9}{'failed':>8}{'ops/s':>9}"
        f"{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}"
    )
    failed = 0
    for kind in ("bbox", "demand", "map", "plan", "commit", "revert"):
        rs = [r for r in records if r[0] == kind]
        ok = [r[1] for r in rs if r[2] == "ok"]
        ref = sum(r[2] == "refused" for r in rs)
        bad = sum(r[2] == "fail" for r in rs)
        failed += bad
        print(
            f"{kind:<8}{len(ok):>7}{ref:>9}{bad:>8}{len(ok) / elapsed:>9.2f}"
            f"{_ms(_pct(ok, 50)):>9}{_ms(_pct(ok, 90)):>9}{_ms(_pct(ok, 99)):>9}"
            f"{_ms(max(ok) if ok else math.nan):>9}"
        )
    for kind in ("commit", "revert"):
        why = sorted({r[3][:200] for r in records if r[0] == kind and r[2] == "refused"})
        for w in why[:3]:
            print(f"refused {kind}: {w}")
    for r in [r for r in records if r[2] == "fail"][:10]:
        print(f"FAILED {r[0]}: {r[3]}")

    checks, statuses = check_ledger(url)
    print(f"\nruns by status: {statuses}")
    for c in checks:
        print(f"  [{'ok' if c.ok else 'FAIL'}] {c.name}{': ' + c.detail if c.detail else ''}")
    healthy = failed == 0 and all(c.ok for c in checks) and done == len(procs)
    print(
        "\nresult:", "no request failed; ledger invariants hold" if healthy else "PROBLEMS (above)"
    )
    return 0 if healthy else 1


if __name__ == "__main__":
    raise SystemExit(main())

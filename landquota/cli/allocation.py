"""The ``landquota`` commands for allocate, commit and revert runs (分配方案); registered with :func:`landquota.cli.main.command`."""

from __future__ import annotations

import argparse
import sys

from landquota.cli.main import (
    _date,
    _db,
    _out,
    _seconds,
    _target,
    _today,
    args,
    command,
)


def _allocate_args(p: argparse.ArgumentParser) -> None:
    _db(p)
    p.add_argument(
        "--mode",
        choices=("greedy", "optimal"),
        default="greedy",
        help="greedy (R18 walk) or optimal (exact MILP)",
    )
    p.add_argument(
        "--as-of",
        default=None,
        help="ledger and stock as of this date, YYYY-MM-DD (default: today)",
    )
    p.add_argument(
        "--scenario",
        default=None,
        help="plan-adjustment scenario file (GeoPackage or GeoJSON, see docs/adjustment.md)",
    )
    p.add_argument(
        "--commit", action="store_true", help="commit the run: write its debits to the ledger"
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="allocate despite blocking validation errors (recorded in the run)",
    )
    p.add_argument(
        "--time-limit",
        type=_seconds,
        default=None,
        help="optimal mode: seconds for all solver stages together (then not proven optimal)",
    )
    p.add_argument("--out", default=None, help="write the allocations as FILE.csv or FILE.xlsx")


@command("allocate", "allocate stock land and quota to key projects 指标与存量土地分配")
@args(_allocate_args)
def _allocate(ns: argparse.Namespace) -> int:
    from landquota.allocation.runs import commit_run, plan_allocation, read_run
    from landquota.store.api import open_workspace

    as_of = _date(ns.as_of, "--as-of") or _today()
    with open_workspace(_target(ns)) as ws:
        if ns.commit:
            from landquota.allocation.runs import require_verified_ledger

            # refuse before anything is written: a draft planned on a ledger that does not
            # verify could never be committed
            require_verified_ledger(ws)
        else:
            from landquota.store.verify import verify_workspace

            # a draft may still be planned (to see what the forged balances would give), but
            # never silently: its balances come from a ledger nobody can vouch for
            rep = verify_workspace(ws)
            if not rep.ok:
                print(
                    f"警告 warning: the ledger does not verify ({len(rep.findings)} problem(s); "
                    f"first: {rep.first}); this draft's balances may be wrong and it cannot be "
                    "committed until `landquota verify` passes",
                    file=sys.stderr,
                )
        scenario = None
        if ns.scenario:
            from landquota.rules.adjustment import read_scenario

            scenario = read_scenario(ns.scenario)
        run = plan_allocation(
            ws,
            mode=ns.mode,
            as_of=as_of,
            scenario=scenario,
            force=ns.force,
            time_limit=ns.time_limit,
            progress=True,
        )
        if not run.is_new:
            print(
                f"相同输入的方案已存在 the same inputs give run {run.run_id} ({run.status}); reusing it"
            )
        if ns.out:
            print(f"已写出 written: {run.write(_out(ns.out))}")
        if ns.commit:
            if run.status != "draft":
                print(f"方案 run {run.run_id} is {run.status}; nothing to commit")
            else:
                entries = commit_run(ws, run.run_id)
                print(f"已提交 committed: {len(entries)} 条台账记录 ledger entries written")
                run = read_run(ws, run.run_id)
        print(run.summary())
    return 0


def _run_args(p: argparse.ArgumentParser) -> None:
    _db(p)
    p.add_argument("run_id", help="the run id (see `landquota info` or the allocation_runs table)")


@command("commit", "commit a draft run to the ledger 提交分配方案")
@args(_run_args)
def _commit(ns: argparse.Namespace) -> int:
    from landquota.allocation.runs import commit_run
    from landquota.store.api import open_workspace

    with open_workspace(_target(ns)) as ws:
        entries = commit_run(ws, ns.run_id)
    print(f"已提交 committed {ns.run_id}: {len(entries)} 条台账记录 ledger entries written")
    return 0


@command("revert", "revert a committed run with reversing entries 撤销分配方案")
@args(_run_args)
def _revert(ns: argparse.Namespace) -> int:
    from landquota.allocation.runs import revert_run
    from landquota.store.api import open_workspace

    with open_workspace(_target(ns)) as ws:
        entries = revert_run(ws, ns.run_id)
    print(f"已撤销 reverted {ns.run_id}: {len(entries)} 条冲销记录 reversal entries written")
    return 0

"""The ``landquota`` commands for the quota ledger and its verification (指标台账); registered with :func:`landquota.cli.main.command`."""

from __future__ import annotations

import argparse

from landquota.cli.main import (
    _LEDGER_COLUMNS,
    _bounded_int,
    _date,
    _db,
    _maybe_csv,
    _target,
    _today,
    args,
    command,
)
from landquota.outputs.console import render_table


def _ledger_args(p: argparse.ArgumentParser) -> None:
    _db(p)
    p.add_argument("--as-of", default=None, help="balances as of this date (default: all entries)")
    p.add_argument("--by-year", action="store_true", help="one row per pool and quota vintage")
    p.add_argument(
        "--statement", nargs=2, metavar=("START", "END"), help="statement per pool for the period"
    )
    p.add_argument(
        "--expire",
        action="store_true",
        help="write expiry entries for plan quota past its carry-over window",
    )
    p.add_argument(
        "--carry-years",
        # bounded here: a huge window overflowed date arithmetic (OverflowError, a traceback)
        type=_bounded_int("--carry-years", 0, 100, "2"),
        default=2,
        help="carry-over window of plan quota in years (default 2)",
    )
    p.add_argument("--out", default=None, help="also write the table as CSV")


@command("ledger", "quota ledger balances and statements 指标台账")
@args(_ledger_args)
def _ledger(ns: argparse.Namespace) -> int:
    from landquota.rules.ledger import balances, carryover_expiries, statement
    from landquota.store.api import open_workspace
    from landquota.store.chain import chain_head

    as_of = _date(ns.as_of, "--as-of")
    with open_workspace(_target(ns)) as ws:
        if ns.expire:
            when = as_of or _today()
            new = carryover_expiries(
                ws.read_layer("quota_ledger"), as_of=when, carry_years=ns.carry_years
            )
            if len(new):
                ws.append_ledger(new)
            print(f"过期指标 expired plan quota: {len(new)} 条 entries as of {when.isoformat()}")
        entries = ws.read_layer("quota_ledger")
        head = chain_head(ws)
    if ns.statement:
        table = statement(
            entries,
            start=_date(ns.statement[0], "--statement START"),
            end=_date(ns.statement[1], "--statement END"),
        )
        title = f"台账对账单 Statement {ns.statement[0]} … {ns.statement[1]}"
    else:
        table = balances(entries, as_of=as_of, by_year=ns.by_year)
        title = f"指标余额 Balances{', as of ' + as_of.isoformat() if as_of else ''}"
    print(render_table(table, _LEDGER_COLUMNS, title=title))
    _maybe_csv(table, ns.out)
    print(f"链头 chain head {head}  (file it; `landquota verify --head {head}` proves a later ledger extends it)")
    return 0


def _verify_args(p: argparse.ArgumentParser) -> None:
    _db(p)
    p.add_argument(
        "--head",
        default=None,
        metavar="DIGEST",
        help="a chain head filed earlier (SEQ:HEX, as `ledger` prints it): the ledger must extend it",
    )


@command("verify", "check the ledger's hash chain, R6 and the run life cycle 台账校验")
@args(_verify_args)
def _verify(ns: argparse.Namespace) -> int:
    from landquota.store.api import open_workspace
    from landquota.store.chain import parse_head
    from landquota.store.verify import verify_workspace

    if ns.head is not None:
        parse_head(ns.head)
    with open_workspace(_target(ns)) as ws:
        rep = verify_workspace(ws, head=ns.head)
    print(rep.summary())
    # 1 = the workspace does not verify (scripts test for it); 2 stays "error"
    return 0 if rep.ok else 1

"""The ``landquota`` commands for idle land, approved-unsupplied land and linkage swaps (存量土地, 增减挂钩); registered with :func:`landquota.cli.main.command`."""

from __future__ import annotations

import argparse

from landquota.cli.main import (
    _date,
    _db,
    _maybe_csv,
    _target,
    _today,
    args,
    command,
)
from landquota.errors import ParameterError
from landquota.labels import ACCEPTANCE_LABELS, label_map
from landquota.outputs.console import Col, render_table


def _idle_args(p: argparse.ArgumentParser) -> None:
    _db(p)
    p.add_argument("--as-of", default=None, help="review date YYYY-MM-DD (default: today)")
    p.add_argument("--out", default=None, help="write the parcel-by-parcel review as CSV")
    p.add_argument(
        "--return-lapsed",
        nargs="+",
        metavar="STOCK_ID",
        default=None,
        help="R9: return these lapsed parcels' area as new-construction quota 失效批准退回指标 "
        "(needs --decision; the land is then no longer offered as stock)",
    )
    p.add_argument("--decision", default=None, help="document deciding the return, e.g. 阳国土〔2016〕12号")
    p.add_argument("--dry-run", action="store_true", help="with --return-lapsed: show the entries, write nothing")


@command("idle", "idle and approved-unsupplied land review 闲置土地与批而未供盘点")
@args(_idle_args)
def _idle(ns: argparse.Namespace) -> int:
    from landquota.rules.stock import review_stock
    from landquota.store.api import open_workspace

    as_of = _date(ns.as_of, "--as-of") or _today()
    if ns.return_lapsed is None and (ns.decision is not None or ns.dry_run):
        raise ParameterError("--decision and --dry-run go with --return-lapsed STOCK_ID …")
    with open_workspace(_target(ns)) as ws:
        if ns.return_lapsed is not None:
            from landquota.rules.stock import return_lapsed

            if not ns.decision:
                raise ParameterError(
                    "--return-lapsed needs --decision DOC: R9 returns lapsed land as quota only "
                    "'where the plan allows', which is the bureau's documented decision"
                )
            entries = return_lapsed(ws, ns.return_lapsed, as_of=as_of, decision=ns.decision,
                                    write=not ns.dry_run)
            verb = "将退回 would return" if ns.dry_run else "已退回 returned"
            total = float(entries["amount"].sum()) if len(entries) else 0.0
            print(f"{verb} (R9): {len(entries)} 宗 parcels, {total / 10_000:,.4f} ha → new_construction")
            for e in entries.itertuples(index=False):
                print(f"  {e.entry_id}  {e.amount:,.1f} m²  {e.note}")
            skipped = len(set(ns.return_lapsed)) - len(entries)
            if skipped:
                print(f"  {skipped} already returned earlier: nothing written for them")
        review = review_stock(ws, as_of=as_of)
    print(review)
    _maybe_csv(review.idle.drop(columns="geometry", errors="ignore"), ns.out)
    return 0


def _linkage_args(p: argparse.ArgumentParser) -> None:
    _db(p)
    p.add_argument("--as-of", default=None, help="review date YYYY-MM-DD (default: today)")
    p.add_argument(
        "--no-credit", action="store_true", help="review only; do not credit accepted surplus (R5)"
    )
    p.add_argument("--out", default=None, help="write the review as CSV")


@command("linkage", "linkage swaps: R7 balance, R8 turnover, surplus credit 增减挂钩")
@args(_linkage_args)
def _linkage(ns: argparse.Namespace) -> int:
    from landquota.rules.linkage import credit_linkage_surplus
    from landquota.store.api import open_workspace

    as_of = _date(ns.as_of, "--as-of") or _today()
    with open_workspace(_target(ns)) as ws:
        review, credits = credit_linkage_surplus(ws, as_of=as_of, write=not ns.no_credit)
    print(
        render_table(
            review,
            _LINKAGE_COLUMNS,
            title=f"增减挂钩项目区 Linkage areas, as of {as_of.isoformat()}",
        )
    )
    verb = "将入账 would credit" if ns.no_credit else "已入账 credited"
    print(
        f"{verb}: {len(credits)} 条 entries, {credits['amount'].sum() / 10_000 if len(credits) else 0:,.2f} ha"
    )
    _maybe_csv(review, ns.out)
    return 0


_ACCEPT = label_map(ACCEPTANCE_LABELS)
# The columns a clerk reads on screen; --out writes every column of the review as CSV.
_LINKAGE_COLUMNS = (
    Col("linkage_id", "项目区", "Area"),
    Col("name", "名称", "Name"),
    Col("town", "乡镇", "Town"),
    Col("acceptance", "验收 (R5)", "Acceptance", labels=_ACCEPT),
    Col("acceptance_date", "验收日期", "Accepted", "date"),
    Col("turnover_quota_m2", "周转指标", "Turnover quota", "m2"),
    Col("demolition_m2", "拆旧", "Demolition", "m2"),
    Col("construction_m2", "建新", "Construction", "m2"),
    Col("r7_ok", "耕地不减少 (R7)", "Cultivated kept", "bool"),
    Col("turnover_due_date", "归还期限 (R8)", "Turnover due", "date"),
    Col("overdue", "逾期", "Overdue", "bool"),
    Col("surplus_m2", "节余指标", "Surplus", "m2"),
    Col("creditable", "可入账", "Creditable", "bool"),
)

"""The ``landquota`` command: a thin layer over the public API.

Every command takes ``--db`` (a ``.gpkg`` path or a ``postgresql://`` URL, or the
``LANDQUOTA_DB`` environment variable) and prints a short Chinese/English summary.
Errors of the package end the command with exit status 2 and a one-line message
(never a traceback, never a password); ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, overload

from landquota._version import __version__
from landquota.errors import LandquotaError, ParameterError
from landquota.labels import ACCEPTANCE_LABELS, POOL_LABELS, label_map
from landquota.outputs.console import Col, render_table
from landquota.settings import mask_url

__all__ = ["main"]

Handler = Callable[[argparse.Namespace], int]
_COMMANDS: dict[str, tuple[Handler, Callable[[argparse.ArgumentParser], None], str]] = {}


def command(name: str, help: str) -> Callable[[Handler], Handler]:
    """Register a sub-command; its arguments come from ``<handler>.args``."""

    def deco(fn: Handler) -> Handler:
        _COMMANDS[name] = (fn, getattr(fn, "args", lambda p: None), help)
        return fn

    return deco


def args(setup: Callable[[argparse.ArgumentParser], None]) -> Callable[[Handler], Handler]:
    """Attach the argument set-up of a sub-command."""

    def deco(fn: Handler) -> Handler:
        fn.args = setup  # type: ignore[attr-defined]
        return fn

    return deco


def _db(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--db",
        default=None,
        help="workspace: a .gpkg path or a postgresql:// URL (default: $LANDQUOTA_DB or "
        "gis_data/yangshan_demo.gpkg)",
    )


def _target(ns: argparse.Namespace) -> str:
    from landquota.store.dburl import resolve_db

    return resolve_db(ns.db)


# --- init ----------------------------------------------------------------------------------
def _init_args(p: argparse.ArgumentParser) -> None:
    _db(p)
    p.add_argument("--force", action="store_true", help="drop an existing workspace first")


@command("init", "create an empty workspace 新建工作空间")
@args(_init_args)
def _init(ns: argparse.Namespace) -> int:
    from landquota.store.api import init_workspace

    with init_workspace(_target(ns), force=ns.force) as ws:
        print(
            f"已创建工作空间 created workspace {mask_url(ws.target)} ({ws.kind}, schema v{ws.schema_version})"
        )
    return 0


# --- info ------------------------------------------------------------------------------------
def _info_args(p: argparse.ArgumentParser) -> None:
    _db(p)
    p.add_argument("--as-of", default=None, help="pool balances as of this date (YYYY-MM-DD)")


@command("info", "layers and pool balances 工作空间概况")
@args(_info_args)
def _info(ns: argparse.Namespace) -> int:
    from landquota.outputs.summary import workspace_summary
    from landquota.store.api import open_workspace

    with open_workspace(_target(ns)) as ws:
        print(workspace_summary(ws, as_of=_date(ns.as_of, "--as-of")))
    return 0


# --- upgrade -----------------------------------------------------------------------------------
@command("upgrade", "upgrade a workspace to this version's schema 升级工作空间")
@args(_db)
def _upgrade(ns: argparse.Namespace) -> int:
    from landquota.store.api import open_workspace

    with open_workspace(_target(ns), upgrade=True) as ws:
        print(f"工作空间已是 schema v{ws.schema_version}: {mask_url(ws.target)}")
    return 0


# --- demo ----------------------------------------------------------------------------------------
def _demo_args(p: argparse.ArgumentParser) -> None:
    _db(p)
    p.add_argument("--seed", type=int, default=2014, help="generator seed (default 2014)")
    p.add_argument(
        "--parcels",
        type=int,
        default=50_000,
        help="number of survey patches (default 50,000; up to 1,000,000)",
    )
    p.add_argument("--force", action="store_true", help="rebuild even if the workspace exists")


@command("demo", "build the synthetic Yangshan demo workspace 生成阳山示例数据")
@args(_demo_args)
def _demo(ns: argparse.Namespace) -> int:
    from landquota.demo.build import demo_workspace
    from landquota.outputs.summary import workspace_summary

    reused = not ns.force and _workspace_exists(_target(ns))
    with demo_workspace(
        _target(ns), seed=ns.seed, n_parcels=ns.parcels, force=ns.force, progress=True
    ) as ws:
        if reused:
            print(
                f"已有工作空间，未重建 reused the existing workspace {mask_url(ws.target)} "
                "(nothing rebuilt; landquota demo --force rebuilds it)"
            )
        print("示例县：阳山县（边界真实，界内一切数据均为虚构）")
        print("Demo county: Yangshan; the boundary is real, everything inside it is synthetic.")
        print(workspace_summary(ws))
    return 0


def _workspace_exists(target: str | None) -> bool:
    """Whether a landquota workspace is already at *target* (demo then reuses it)."""
    from landquota.errors import WorkspaceError
    from landquota.store.api import open_workspace

    try:
        with open_workspace(target):
            return True
    except WorkspaceError:
        return False


# --- import ----------------------------------------------------------------------------------------
_SYSTEM_LAYERS = ("quota_ledger", "allocation_runs", "allocations", "validation_errors", "ledger_chain")


def _import_args(p: argparse.ArgumentParser) -> None:
    from landquota.store.schema import LAYERS

    p.add_argument("src", help="Shapefile, GeoPackage, GeoJSON, FileGDB (.gdb) or CSV")
    _db(p)
    p.add_argument(
        "--layer",
        required=True,
        choices=[n for n in LAYERS if n not in _SYSTEM_LAYERS],
        help="workspace layer to write",
    )
    p.add_argument("--src-layer", "--source-layer", dest="src_layer", default=None,
                   help="layer of the source when it holds several (a VCT: DLTB, 地类图斑 or its feature code)")
    p.add_argument(
        "--mapping", default=None, help="field mapping file (.toml/.yaml), see docs/import.md"
    )
    p.add_argument(
        "--encoding", default=None, help="text encoding (default: detect UTF-8, then GB18030)"
    )
    p.add_argument(
        "--crs", default=None, help="source CRS, e.g. EPSG:4547 (required when the source has none)"
    )
    p.add_argument("--swap-xy", action="store_true", help="swap x and y (a northing stored as x)")
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--replace",
        dest="mode",
        action="store_const",
        const="replace",
        help="replace the layer's content (default)",
    )
    g.add_argument(
        "--append",
        dest="mode",
        action="store_const",
        const="append",
        help="add rows; refuse ids already present",
    )
    p.set_defaults(mode="replace")
    p.add_argument(
        "--allow-shrink",
        action="store_true",
        help="let a replace leave the layer with fewer rows than it holds (refused otherwise)",
    )
    p.add_argument(
        "--rejects", default=None, metavar="FILE.csv", help="write every rejected row (row, id, reason) here"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


@command("import", "import a layer from a file 导入图层")
@args(_import_args)
def _import(ns: argparse.Namespace) -> int:
    from landquota.intake.importer import import_layer
    from landquota.store.api import open_workspace

    with open_workspace(_target(ns)) as ws:
        rep = import_layer(
            ns.src,
            ws,
            layer=ns.layer,
            src_layer=ns.src_layer,
            mapping=ns.mapping,
            encoding=ns.encoding,
            crs=ns.crs,
            swap_xy=ns.swap_xy,
            mode=ns.mode,
            progress=not ns.no_progress,
            allow_shrink=ns.allow_shrink,
            rejects=ns.rejects,
        )
    print(rep.summary())
    return 0


# --- import-survey --------------------------------------------------------------------------------------
def _import_survey_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "package",
        nargs="+",
        help="the delivery: a FileGDB (.gdb), GeoPackage, VCT file or folder of shapefiles "
        "(several are loaded together, in one transaction)",
    )
    _db(p)
    p.add_argument(
        "--plan-version",
        default=None,
        help="plan_version of the control lines and plan zones (e.g. 2021-2035); needed when "
        "their layers carry no 规划版本 field",
    )
    p.add_argument("--county-name", default=None, help="county name, e.g. 阳山县 (XZQ names the townships only)")
    p.add_argument("--encoding", default=None, help="text encoding of every layer (default: detect)")
    p.add_argument("--crs", default=None, help="CRS of every layer that has none, e.g. EPSG:4547")
    p.add_argument("--allow-shrink", action="store_true",
                   help="let a layer end with fewer rows than it holds (refused otherwise)")


@command("import-survey", "import a whole survey delivery in one transaction 导入调查成果")
@args(_import_survey_args)
def _import_survey(ns: argparse.Namespace) -> int:
    from landquota.intake.survey import import_survey
    from landquota.store.api import open_workspace

    with open_workspace(_target(ns)) as ws:
        rep = import_survey(
            ns.package,
            ws,
            plan_version=ns.plan_version,
            county_name=ns.county_name,
            encoding=ns.encoding,
            crs=ns.crs,
            allow_shrink=ns.allow_shrink,
        )
    print(rep.summary())
    return 0


# --- import-supply --------------------------------------------------------------------------------------
def _import_supply_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", help="supply records of the land-market monitoring system (.xlsx or .csv)")
    _db(p)
    p.add_argument(
        "--geometry",
        required=True,
        help="polygon layer of the supplied land (supply boundaries, any format import reads), or "
        "'parcels' for the workspace's survey patches",
    )
    p.add_argument("--key", default=None, help="spreadsheet column joining to the geometry (default 电子监管号)")
    p.add_argument("--geometry-key", default=None, help="the geometry's field holding --key (default: same name)")
    p.add_argument("--geometry-layer", default=None, help="layer of a multi-layer geometry source")
    p.add_argument("--sheet", default=None, help="workbook sheet (default: the first)")
    p.add_argument("--encoding", default=None, help="text encoding of a CSV or shapefile (default: detect)")
    p.add_argument("--crs", default=None, help="CRS of a geometry source that has none, e.g. EPSG:4547")


@command("import-supply", "import supply records (土地市场动态监测与监管系统) into stock_land 导入供地记录")
@args(_import_supply_args)
def _import_supply(ns: argparse.Namespace) -> int:
    from landquota.intake.supply import import_supply
    from landquota.store.api import open_workspace

    with open_workspace(_target(ns)) as ws:
        rep = import_supply(
            ns.src,
            ws,
            geometry=ns.geometry,
            key=ns.key,
            geometry_key=ns.geometry_key,
            geometry_layer=ns.geometry_layer,
            sheet=ns.sheet,
            encoding=ns.encoding,
            crs=ns.crs,
        )
    print(rep.summary())
    return 0


# --- validate ------------------------------------------------------------------------------------------
def _validate_args(p: argparse.ArgumentParser) -> None:
    _db(p)
    p.add_argument(
        "--csv", default=None, help="also write the findings to this CSV (UTF-8 with BOM)"
    )
    p.add_argument(
        "--no-write", action="store_true", help="do not replace the validation_errors layer"
    )


@command("validate", "check data quality (LQ-001…LQ-015) 数据质量检查")
@args(_validate_args)
def _validate(ns: argparse.Namespace) -> int:
    from landquota.intake.validate import validate_workspace
    from landquota.store.api import open_workspace

    with open_workspace(_target(ns)) as ws:
        rep = validate_workspace(ws, write=not ns.no_write, csv=_out(ns.csv), progress=True)
    print(rep.summary())
    # 1 = blocking findings, so scripts can test for them; 2 stays "error"
    return 1 if rep.blocking else 0


# --- demand ------------------------------------------------------------------------------------------
def _demand_args(p: argparse.ArgumentParser) -> None:
    _db(p)
    p.add_argument("--out", default=None, help="write the table (.csv or .xlsx)")
    p.add_argument(
        "--pieces", default=None, help="write the site ∩ patch layer (.gpkg/.geojson) for the map"
    )
    p.add_argument(
        "--engine",
        choices=("local", "dask"),
        default="local",
        help="local (default) or a Dask cluster",
    )
    p.add_argument(
        "--scheduler", default=None, help="tcp://HOST:PORT of a dask scheduler (--engine dask)"
    )
    p.add_argument(
        "--partitions",
        default=None,
        help="directory of the parcels' GeoParquet partitions, readable by every worker (--engine dask)",
    )
    p.add_argument(
        "--tolerance", type=_area_m2, default=1.0, help="sliver tolerance in m² (default 1)"
    )
    p.add_argument(
        "--plan-version",
        default=None,
        help="plan version of the zones and control lines (default: all)",
    )
    p.add_argument(
        "--no-coverage-check",
        action="store_true",
        help="count site area on no patch in no category instead of failing",
    )


@command("demand", "quota and compensation needs of fixed sites 项目用地需求与合规")
@args(_demand_args)
def _demand(ns: argparse.Namespace) -> int:
    from landquota.engines.api import demand_from_workspace
    from landquota.store.api import open_workspace

    with open_workspace(_target(ns)) as ws:
        res = demand_from_workspace(
            ws,
            engine=ns.engine,
            scheduler=ns.scheduler,
            partitions=ns.partitions,
            tolerance_m2=ns.tolerance,
            plan_version=ns.plan_version,
            check_coverage=not ns.no_coverage_check,
            progress=True,
        )
    t = res.table
    if ns.out:
        out = Path(_out(ns.out))
        if out.suffix.lower() == ".xlsx":
            from landquota._xlsx import frames_to_xlsx

            out.write_bytes(frames_to_xlsx({"demand": t}))
        elif out.suffix.lower() == ".csv":
            _maybe_csv(t, ns.out)
        else:
            raise ParameterError(f"--out {ns.out!r}: use a .csv or .xlsx file name")
    if ns.pieces:
        res.pieces.to_file(ns.pieces, engine="pyogrio")
    print(
        f"项目 sites: {len(t)}; 新增指标 new quota {t['new_quota_m2'].sum() / 1e4:,.2f} ha; "
        f"补充耕地 comp area {t['comp_area_m2'].sum() / 1e4:,.2f} ha, 水田 paddy "
        f"{t['comp_paddy_m2'].sum() / 1e4:,.2f} ha, 粮食 grain {t['comp_grain_kg'].sum():,.0f} kg"
    )
    print(
        "合规 compliance: "
        + ", ".join(f"{k} {v}" for k, v in t["compliance"].value_counts().items())
    )
    return 0


# --- allocate / commit / revert ----------------------------------------------------------------
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


# --- ledger ----------------------------------------------------------------------------------------
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


# --- verify ---------------------------------------------------------------------------------------------
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


# --- idle -----------------------------------------------------------------------------------------------
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


# --- linkage ------------------------------------------------------------------------------------------
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
_POOL_NAMES = {k: f"{v[0]}\n{k}" for k, v in POOL_LABELS.items()}
_LEDGER_COLUMNS = (
    Col("pool", "指标池", "Pool", labels=_POOL_NAMES),
    Col("year", "年度", "Vintage", "int"),
    Col("opening", "期初", "Opening", unit="unit"),
    Col("credits", "本期增加", "Credits", unit="unit"),
    Col("debits", "本期减少", "Debits", unit="unit"),
    Col("closing", "期末", "Closing", unit="unit"),
    Col("balance", "余额", "Balance", unit="unit"),
)


# --- map ---------------------------------------------------------------------------------------
#: Outputs go to a folder of their own, never the repository root.
OUT_DIR = "out"
_MAP_OUT = f"{OUT_DIR}/map.html"


@overload
def _out(path: str) -> str: ...
@overload
def _out(path: None) -> None: ...
def _out(path: str | None) -> str | None:
    """Make the outputs folder ``out/`` when a path is in it; any other folder must exist.

    The quickstart writes every output to ``out/`` (the default of ``map``), so that nothing
    lands in the repository root; a folder the user names is not created behind their back.
    """
    if path is not None and Path(path).parent == Path(OUT_DIR):
        Path(OUT_DIR).mkdir(exist_ok=True)
    return path


def _map_args(p: argparse.ArgumentParser) -> None:
    _db(p)
    p.add_argument(
        "--run",
        dest="run_id",
        default=None,
        help="run whose outcomes colour the sites (default: the latest committed, else the latest draft)",
    )
    p.add_argument(
        "--as-of", default=None, help="date of the idle-land figures (default: the run's date)"
    )
    p.add_argument(
        "--out", default=_MAP_OUT, help=f"the HTML file to write (default {_MAP_OUT})"
    )
    p.add_argument(
        "--tiles",
        default=None,
        help="URL template of the bureau's own tile server, e.g. http://tiles.local/{z}/{x}/{y}.png (default: no basemap, nothing fetched)",
    )
    p.add_argument(
        "--attribution", default=None, help="attribution text of --tiles (required with it)"
    )


@command("map", "write the offline HTML map 生成离线地图")
@args(_map_args)
def _map(ns: argparse.Namespace) -> int:
    from landquota.outputs.maps import map_workspace, save_map
    from landquota.store.api import open_workspace

    with open_workspace(_target(ns)) as ws:
        m = map_workspace(
            ws,
            run_id=ns.run_id,
            as_of=_date(ns.as_of, "--as-of"),
            tiles=ns.tiles,
            attribution=ns.attribution,
            progress=True,
        )
    path = save_map(m, _out(ns.out))
    size = Path(path).stat().st_size / 1e6
    print(f"已写出地图 map written: {path} ({size:,.1f} MB; 离线可用 works offline)")
    return 0


# --- report ---------------------------------------------------------------------------------------------
def _report_args(p: argparse.ArgumentParser) -> None:
    _db(p)
    p.add_argument(
        "--run",
        dest="run_id",
        default=None,
        help="allocation run to show (default: the latest committed run, else the latest draft)",
    )
    p.add_argument("--out", required=True, help="report.xlsx, or a folder for --format csv")
    p.add_argument(
        "--format",
        dest="fmt",
        choices=("xlsx", "csv"),
        default=None,
        help="xlsx or csv (default: from --out)",
    )
    p.add_argument(
        "--as-of",
        default=None,
        help="report date YYYY-MM-DD: ledger closing date, review date, bulletin month (default: the workspace's recorded as_of, else today)",
    )
    p.add_argument(
        "--period-start",
        default=None,
        help="first day of the ledger statement (default: 1 January of the --as-of year)",
    )
    p.add_argument(
        "--png", action="store_true", help="also render the two charts as PNG beside the workbook"
    )


@command("report", "write the report (XLSX or CSV) and the key-project bulletin 报表与重点项目通报")
@args(_report_args)
def _report(ns: argparse.Namespace) -> int:
    from landquota.outputs.reports import REPORT_LAYERS, write_report
    from landquota.rules.bulletin import investment_bulletin
    from landquota.rules.staff import with_staff_names
    from landquota.store.api import open_workspace
    from landquota.store.chain import head_digest

    with open_workspace(_target(ns)) as ws:
        # `is None`, not `or`: an empty --as-of is a wrong date, as in every other command
        recorded = ws.meta().get("as_of") if ns.as_of is None else ns.as_of
        as_of = _date(recorded, "--as-of") or _today()
        layers = {name: ws.read_layer(name) for name in REPORT_LAYERS if name != "parcels"}
        # the bulletin shows the service staff's names, not their staff ids (issue 14)
        layers["projects"] = with_staff_names(layers["projects"], ws.read_layer("staff"))
        head = head_digest(layers["ledger_chain"])
        plots = layers["linkage_plots"]
        layers["parcels"] = (
            ws.read_layer("parcels", bbox=tuple(plots.total_bounds))
            if len(plots)
            else ws.read_layer("parcels", where={"parcel_id": []})
        )
    path = write_report(
        layers,
        out=_out(ns.out),
        as_of=as_of,
        run_id=ns.run_id,
        fmt=ns.fmt,
        period_start=_date(ns.period_start, "--period-start"),
        png=True if ns.png else None,
    )
    print(f"已写出报表 report written: {path} (截至 as of {as_of.isoformat()})")
    print(f"链头 chain head {head}")
    print(investment_bulletin(layers["projects"], as_of=as_of))
    return 0


def _today() -> Any:
    from datetime import date

    return date.today()


def _fmt_table(df: Any) -> str:
    import pandas as pd

    d = pd.DataFrame(df).drop(columns="geometry", errors="ignore")
    with pd.option_context(
        "display.max_rows", 200, "display.max_columns", 30, "display.width", 200
    ):
        return d.to_string(index=False, float_format=lambda v: f"{v:,.2f}")


def _maybe_csv(df: Any, out: str | None) -> None:
    if not out:
        return
    import pandas as pd

    path = Path(out)
    if path.suffix.lower() != ".csv":
        raise ParameterError(f"--out {out!r}: use a .csv file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (
        pd.DataFrame(df)
        .drop(columns="geometry", errors="ignore")
        .to_csv(index=False, lineterminator="\n")
    )
    path.write_text("\ufeff" + data, encoding="utf-8")
    print(f"已写出 written: {path}")


# --- db grant ----------------------------------------------------------------------------------
def _login_roles(values: Sequence[str] | None, flag: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for v in values or []:
        login, sep, kind = v.rpartition("=")
        if not sep or not login or not kind:
            raise ParameterError(
                f"{flag} {v!r} must be LOGIN=ROLE with ROLE one of viewer, "
                f"editor, approver (e.g. {flag} wang=viewer)"
            )
        out.append((login, kind))
    return out


def _db_cmd_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    g = sub.add_parser(
        "grant",
        help="create the viewer/editor/approver roles and assign them 创建角色并授权",
        description="Create (idempotently) the roles <database>_<schema>_viewer, _editor and "
        "_approver of a PostGIS workspace, set their grants, and assign them to existing logins. "
        "Run as the workspace owner with CREATEROLE. See docs/security.md.",
    )
    _db(g)
    g.add_argument(
        "--assign",
        action="append",
        metavar="LOGIN=ROLE",
        help="make an existing login a viewer, editor or approver (repeatable)",
    )
    g.add_argument(
        "--revoke",
        action="append",
        metavar="LOGIN=ROLE",
        help="take a role from a login (repeatable)",
    )


@command("db", "database administration: roles and grants 数据库角色与授权")
@args(_db_cmd_args)
def _db_cmd(ns: argparse.Namespace) -> int:
    from landquota.store.api import open_workspace
    from landquota.store.roles import grant_roles, revoke_role

    assign = _login_roles(ns.assign, "--assign")
    revoke = _login_roles(ns.revoke, "--revoke")
    with open_workspace(_target(ns)) as ws:
        roles = grant_roles(ws, assign=dict(assign))
        for login, kind in revoke:
            revoke_role(ws, login, kind)
        print(f"已设置角色 roles set on {mask_url(ws.target)}:")
    for kind, name in roles.items():
        print(f"  {kind:<9} {name}")
    for login, kind in assign:
        print(f"  + {login} → {kind}")
    for login, kind in revoke:
        print(f"  - {login} ✗ {kind}")
    return 0


# --- export / restore ----------------------------------------------------------------------------
def _export_args(p: argparse.ArgumentParser) -> None:
    _db(p)
    p.add_argument(
        "--out",
        required=True,
        metavar="PATH",
        help="the file or folder to write (appears only when complete): BACKUP.gpkg, a shapefile "
        "folder, LAYERS.gpkg, NAME.gdb or NAME.vct",
    )
    p.add_argument("--force", action="store_true", help="replace an existing file of that name")
    p.add_argument(
        "--format",
        choices=["shp", "gpkg", "filegdb", "vct"],
        help="export layers for other systems 导出格式 (without it, and for gpkg without --layer: "
        "the whole-workspace backup)",
    )
    p.add_argument("--layer", action="append", metavar="NAME",
                   help="a layer to export (repeatable); default: every layer holding rows")
    p.add_argument("--crs", metavar="EPSG:CODE",
                   help="write in this CRS, e.g. EPSG:4547 (a Gauss-Krüger zone); default EPSG:4490")
    p.add_argument("--encoding", default="utf-8", choices=["utf-8", "gbk", "gb18030"],
                   help="shapefile text encoding, named in the .cpg (gbk for older desktop GIS)")


@command("export", "back up a workspace, or export layers as shp/gpkg/FileGDB/VCT 备份或导出")
@args(_export_args)
def _export(ns: argparse.Namespace) -> int:
    import json

    from landquota.store.api import open_workspace
    from landquota.store.backup import MANIFEST_KEY, export_workspace, manifest_digest

    if ns.format is not None and not (ns.format == "gpkg" and not ns.layer):
        from landquota.outputs.export import export_layers

        with open_workspace(_target(ns)) as ws:
            res = export_layers(ws, ns.out, fmt=ns.format, layers=ns.layer, crs=ns.crs,
                                encoding=ns.encoding, force=ns.force)
            src = mask_url(ws.target)
        print(f"已导出 exported {src} → {res.out} ({res.format}, {res.crs}"
              + (f", {res.encoding}" if res.encoding else "") + f"): {sum(res.rows.values()):,} rows")
        print("  " + ", ".join(f"{k} {v:,}" for k, v in res.rows.items()))
        for name, cols in res.renamed.items():
            print(f"  {name}: DBF field names shortened ({', '.join(f'{a}→{b}' for a, b in cols.items())}); "
                  "see fieldnames.csv")
        for name, why in res.skipped.items():
            print(f"  未导出 not exported: {name} ({why})")
        for w in res.warnings:
            print(f"  警告 warning: {w}")
        return 0
    if ns.layer or ns.crs or ns.encoding != "utf-8":
        raise ParameterError("--layer, --crs and --encoding need --format (shp, gpkg, filegdb or vct); "
                             "plain export writes the whole-workspace backup")
    with open_workspace(_target(ns)) as ws:
        out = export_workspace(ws, ns.out, force=ns.force)
        src = mask_url(ws.target)
    with open_workspace(out) as b:
        counts = b.layer_counts()
        manifest = b.meta()[MANIFEST_KEY]
    print(f"已备份 exported {src} → {out}: {sum(counts.values()):,} rows")
    print("  " + ", ".join(f"{k} {v:,}" for k, v in counts.items() if v))
    head = json.loads(manifest)["chain_head"]
    print(f"  清单 manifest {manifest_digest(manifest)}; 链头 chain head {head} (file both with the backup)")
    return 0


def _restore_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--from",
        dest="src",
        required=True,
        metavar="BACKUP.gpkg",
        help="a backup made by `landquota export`",
    )
    p.add_argument(
        "--db",
        required=True,
        help="the new workspace: a .gpkg path, a postgresql:// URL or service:NAME[?schema=S]",
    )
    p.add_argument("--force", action="store_true", help="replace a target that already holds data")
    p.add_argument(
        "--accept-unverified",
        default=None,
        metavar="REASON",
        help="restore a backup whose manifest or ledger chain does not verify; the reason is "
        "recorded in the restored ledger chain",
    )


@command("restore", "restore a backup into a new workspace 从备份恢复工作空间")
@args(_restore_args)
def _restore(ns: argparse.Namespace) -> int:
    from landquota.store.backup import restore_workspace

    with restore_workspace(
        ns.src, _target(ns), force=ns.force, accept_unverified=ns.accept_unverified
    ) as ws:
        counts = ws.layer_counts()
        where = f"{mask_url(ws.target)} ({ws.kind})"
        print(f"已恢复 restored {ns.src} → {where}: {sum(counts.values()):,} rows")
    print("角色不在备份中 roles are not in a backup: run `landquota db grant` on a PostGIS target")
    return 0


def _date(value: str | None, name: str) -> Any:
    """Return a typed date, strictly ``YYYY-MM-DD`` (``20140430`` is refused), or None."""
    if value is None:
        return None
    from landquota.outputs.console import parse_date

    return parse_date(value, option=name)  # ParameterError: exit 2 naming the command


def _bounded_int(name: str, lo: int, hi: int, example: str) -> Callable[[str], int]:
    """Make an argparse ``type=`` accepting a whole number in [lo, hi] (errors name *name*)."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a whole number; use e.g. {name} {example}"
            ) from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(
                f"{text!r} is out of range; use a whole number from {lo:,} to {hi:,} "
                f"(e.g. {name} {example})"
            )
        return v

    return parse


def _area_m2(text: str) -> float:
    """Parse an area in m² (argparse ``type=``): a finite number >= 0."""
    import math

    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not (math.isfinite(v) and v >= 0):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an area in m² >= 0; use e.g. --tolerance 1"
        )
    return v


def _seconds(text: str) -> float:
    """Parse ``--time-limit`` (argparse ``type=``): finite seconds > 0."""
    import math

    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of seconds > 0; use e.g. --time-limit 60, or omit it "
            "for no limit"
        )
    return v


class _Parser(argparse.ArgumentParser):
    """argparse with landquota's message shape: ``landquota CMD: 错误 error: …``, exit 2."""

    def error(self, message: str) -> Any:  # NoReturn in argparse; Any keeps mypy content
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: 错误 error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of every command."""
    p = _Parser(
        prog="landquota",
        description="建设用地指标与存量土地管理 — construction-land quota, stock land and key projects",
    )
    p.add_argument("--version", action="version", version=f"landquota {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    commands: dict[str, argparse.ArgumentParser] = {}
    for name, (_fn, setup, help_) in _COMMANDS.items():
        sp = sub.add_parser(name, help=help_, description=help_)
        setup(sp)
        commands[name] = sp
    p.set_defaults(_parsers=commands)  # main reports a usage error through its command
    return p


def _refuse_undecodable(parser: argparse.ArgumentParser, ns: argparse.Namespace) -> None:
    # A byte that is not UTF-8 (typed in a GBK terminal, say) reaches Python as a lone
    # surrogate (PEP 383). SQLite, PostgreSQL and the output files cannot store it, and it
    # failed later with a UnicodeEncodeError traceback; refuse it here, naming the argument.
    for key, value in vars(ns).items():
        if key == "_parsers":
            continue
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, str) and any("\ud800" <= ch <= "\udfff" for ch in v):
                parser.error(
                    f"argument {key.replace('_', '-')}: {v!r} is not valid UTF-8 text; "
                    "set the terminal to UTF-8 (e.g. LANG=zh_CN.UTF-8) and type it again"
                )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser()
    ns, extra = parser.parse_known_args(argv)
    # A usage error names its command (argparse leaves unknown options to the top level).
    own = ns._parsers.get(ns.command, parser)
    if extra:
        own.error(f"unrecognized arguments: {' '.join(extra)}")
    _refuse_undecodable(own, ns)
    fn = _COMMANDS[ns.command][0]
    try:
        return fn(ns)
    except LandquotaError as exc:
        if ns.debug:
            raise
        print(f"landquota {ns.command}: 错误 error: {mask_url(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("landquota: interrupted; nothing half-written was kept", file=sys.stderr)
        return 130
    except OSError as exc:
        if ns.debug:
            raise
        print(f"landquota {ns.command}: 错误 error: {mask_url(str(exc))}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

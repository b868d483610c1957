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
from landquota.labels import POOL_LABELS
from landquota.outputs.console import Col
from landquota.settings import OUT_DIR, mask_url

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
    from landquota.store.verify import verify_workspace

    with open_workspace(_target(ns)) as ws:
        print(workspace_summary(ws, as_of=_date(ns.as_of, "--as-of")))
        # The balances above come from the ledger: say at once whether it can be trusted,
        # rather than leave a forged ledger to be found by whoever runs `verify` (R6, issue 12).
        report = verify_workspace(ws)
    if report.ok:
        print(f"账本校验 ledger: verified, chain head {report.head}")
    else:
        print(
            f"账本校验 ledger: NOT VERIFIED ({len(report.findings)} problem(s); first: "
            f"{report.first}); the balances above may be wrong: run `landquota verify` for "
            "the list and restore a verified backup"
        )
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
        default=None,
        help="number of survey patches (default 50,000 for the county, 1,000,000 for --city)",
    )
    p.add_argument(
        "--city",
        choices=["qingyuan"],
        default=None,
        help="build a prefecture-level city instead (清远市: 8 divisions, ~10^6 patches) into "
        f"its own workspace (default {_CITY_DB})",
    )
    p.add_argument("--force", action="store_true", help="rebuild even if the workspace exists")


_CITY_DB = "gis_data/qingyuan_city.gpkg"


@command("demo", "build the synthetic Yangshan demo workspace 生成阳山示例数据")
@args(_demo_args)
def _demo(ns: argparse.Namespace) -> int:
    from landquota.demo.build import demo_workspace
    from landquota.outputs.summary import workspace_summary

    if ns.city is not None:
        return _demo_city(ns)
    reused = not ns.force and _workspace_exists(_target(ns))
    n_parcels = 50_000 if ns.parcels is None else ns.parcels
    with demo_workspace(
        _target(ns), seed=ns.seed, n_parcels=n_parcels, force=ns.force, progress=True
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


def _demo_city(ns: argparse.Namespace) -> int:
    """``demo --city``: the city's own workspace (never the county's default)."""
    from landquota.demo.city import city_workspace

    target = ns.db if ns.db is not None else _CITY_DB
    reused = not ns.force and _workspace_exists(target)
    n_parcels = 1_000_000 if ns.parcels is None else ns.parcels
    with city_workspace(
        target, city=ns.city, seed=ns.seed, n_parcels=n_parcels, force=ns.force, progress=True
    ) as ws:
        if reused:
            print(
                f"已有工作空间，未重建 reused the existing workspace {mask_url(ws.target)} "
                "(nothing rebuilt; landquota demo --city ... --force rebuilds it)"
            )
        n = ws.layer_counts().get("parcels", 0)
        print("示例市：清远市（市界与阳山县界真实，其余七个县级区划边界及界内一切数据均为虚构）")
        print(
            "Demo city: Qingyuan; the city and Yangshan boundaries are real, the other seven "
            "divisions' boundaries and everything inside are synthetic."
        )
        print(f"{mask_url(ws.target)}: {n:,} 图斑 patches in 8 县级区划 divisions")
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
    g.add_argument(
        "--update",
        dest="mode",
        action="store_const",
        const="update",
        help="rewrite the rows whose id is in the file in place and add the new ones; rows the "
        "file does not name stay (a corrected projects file that runs and meetings refer to)",
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


@command("validate", "check data quality (LQ-001…LQ-021) 数据质量检查")
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
# OUT_DIR (out/): outputs go to a folder of their own, never the repository root; it lives
# in landquota.settings because the importer's rejected-rows CSV goes there too


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


def _today() -> Any:
    from datetime import date

    return date.today()


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


#: Objects allocated between collections of the youngest generation, when run as a program
#: (CPython's default is 700): see :func:`_tune_collector`.
GC_THRESHOLD0 = 20_000


def _tune_collector() -> None:
    """Make the cyclic collector cheap for one command run as a program.

    A command is one short process that builds large frames and geometry arrays: with
    CPython's default thresholds the collector ran hundreds of times during a 10⁶-patch
    ``demand``, each time walking the tens of thousands of objects the imports left
    behind. ``gc.freeze()`` moves those into the permanent generation (never walked),
    as the CPython documentation advises after start-up, and a higher first threshold
    makes the collections fewer; reference counting still frees everything that is not
    in a cycle. Measured on the 10⁶-patch demand on PostGIS, whole process, 4 runs each
    interleaved: 2.15–2.58 s before, 1.79–2.15 s after. Only when run as a program
    (``argv is None``): tests and notebooks keep the defaults.
    """
    import gc

    gc.freeze()
    _, g1, g2 = gc.get_threshold()
    gc.set_threshold(GC_THRESHOLD0, g1, g2)


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
    if argv is None:
        _tune_collector()
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
    except BrokenPipeError:
        # `landquota staff … | head` closed the pipe: not an error of the command. Point
        # stdout at devnull so the interpreter's final flush does not complain either.
        import contextlib
        import os

        with contextlib.suppress(OSError, ValueError):  # a stdout without a descriptor
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a command cut off by `head`
    except OSError as exc:
        if ns.debug:
            raise
        print(f"landquota {ns.command}: 错误 error: {mask_url(str(exc))}", file=sys.stderr)
        return 2
    finally:
        if argv is None:
            # Run as a program, the process ends next: frozen objects are left out of
            # the collections the interpreter runs at exit, which took ~0.1-0.2 s of a
            # 10^6-patch demand's 2 s (its geometries and frames). Not when called from
            # Python (tests, notebooks): there the collector keeps working.
            import gc

            gc.freeze()

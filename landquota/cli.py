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
from typing import Any

from landquota import __version__
from landquota.errors import LandquotaError
from landquota.settings import get_settings, mask_url

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
    return str(ns.db) if ns.db else get_settings().db


# --- init ----------------------------------------------------------------------------------
def _init_args(p: argparse.ArgumentParser) -> None:
    _db(p)
    p.add_argument("--force", action="store_true", help="drop an existing workspace first")


@command("init", "create an empty workspace 新建工作空间")
@args(_init_args)
def _init(ns: argparse.Namespace) -> int:
    from landquota.workspace import init_workspace

    with init_workspace(_target(ns), force=ns.force) as ws:
        print(f"已创建工作空间 created workspace {mask_url(ws.target)} ({ws.kind}, schema v{ws.schema_version})")
    return 0


# --- info ------------------------------------------------------------------------------------
def _info_args(p: argparse.ArgumentParser) -> None:
    _db(p)
    p.add_argument("--as-of", default=None, help="pool balances as of this date (YYYY-MM-DD)")


@command("info", "layers and pool balances 工作空间概况")
@args(_info_args)
def _info(ns: argparse.Namespace) -> int:
    from landquota.summary import workspace_summary
    from landquota.workspace import open_workspace

    with open_workspace(_target(ns)) as ws:
        print(workspace_summary(ws, as_of=_date(ns.as_of, "--as-of")))
    return 0


# --- upgrade -----------------------------------------------------------------------------------
@command("upgrade", "upgrade a workspace to this version's schema 升级工作空间")
@args(_db)
def _upgrade(ns: argparse.Namespace) -> int:
    from landquota.workspace import open_workspace

    with open_workspace(_target(ns), upgrade=True) as ws:
        print(f"工作空间已是 schema v{ws.schema_version}: {mask_url(ws.target)}")
    return 0


# --- demo ----------------------------------------------------------------------------------------
def _demo_args(p: argparse.ArgumentParser) -> None:
    _db(p)
    p.add_argument("--seed", type=int, default=2014, help="generator seed (default 2014)")
    p.add_argument(
        "--parcels", type=int, default=50_000, help="number of survey patches (default 50,000; up to 1,000,000)"
    )
    p.add_argument("--force", action="store_true", help="rebuild even if the workspace exists")


@command("demo", "build the synthetic Yangshan demo workspace 生成阳山示例数据")
@args(_demo_args)
def _demo(ns: argparse.Namespace) -> int:
    from landquota.demo import demo_workspace
    from landquota.summary import workspace_summary

    with demo_workspace(_target(ns), seed=ns.seed, n_parcels=ns.parcels, force=ns.force, progress=True) as ws:
        print("示例县：阳山县（边界真实，界内一切数据均为虚构）")
        print("Demo county: Yangshan; the boundary is real, everything inside it is synthetic.")
        print(workspace_summary(ws))
    return 0


def _date(value: str | None, name: str) -> Any:
    if value is None:
        return None
    from datetime import date

    try:
        return date.fromisoformat(value)
    except ValueError:
        raise SystemExit(f"landquota: error: {name} {value!r} is not a date; use YYYY-MM-DD") from None


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    p = argparse.ArgumentParser(
        prog="landquota",
        description="建设用地指标与存量土地管理 — construction-land quota, stock land and key projects",
    )
    p.add_argument("--version", action="version", version=f"landquota {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_fn, setup, help_) in _COMMANDS.items():
        sp = sub.add_parser(name, help=help_, description=help_)
        setup(sp)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser()
    ns = parser.parse_args(argv)
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

"""The ``landquota`` commands for the offline map and the report (地图, 报表); registered with :func:`landquota.cli.main.command`."""

from __future__ import annotations

import argparse
from pathlib import Path

from landquota.cli.main import (
    _date,
    _db,
    _out,
    _target,
    _today,
    args,
    command,
)
from landquota.settings import OUT_DIR

_MAP_OUT = f"{OUT_DIR}/map.html"


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
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--tiled",
        dest="tiled",
        action="store_const",
        const=True,
        help="city scale: every patch clickable from zoom 14, loaded by tile "
        "(default: automatic above 250,000 patches; docs/maps.md)",
    )
    g.add_argument(
        "--no-tiled",
        dest="tiled",
        action="store_const",
        const=False,
        help="county mode: patches dissolved by class (not clickable) whatever their number",
    )
    p.set_defaults(tiled=None)


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
            tiled=ns.tiled,
        )
    path = save_map(m, _out(ns.out))
    size = Path(path).stat().st_size / 1e6
    print(f"已写出地图 map written: {path} ({size:,.1f} MB; 离线可用 works offline)")
    return 0


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

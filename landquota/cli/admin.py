"""The ``landquota`` commands for database roles, backup, export and restore (数据库管理, 备份); registered with :func:`landquota.cli.main.command`."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from landquota.cli.main import (
    _db,
    _target,
    args,
    command,
    main,
)
from landquota.errors import ParameterError
from landquota.settings import mask_url


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

    from landquota.outputs.export import export_layers, export_workspace
    from landquota.store.api import open_workspace
    from landquota.store.backup import MANIFEST_KEY, manifest_digest

    if ns.format is not None and not (ns.format == "gpkg" and not ns.layer):
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

    if ns.accept_unverified is not None and not ns.accept_unverified.strip():
        # an empty REASON used to be taken as no override, and the refusal then asked for one
        raise ParameterError(
            "--accept-unverified needs a reason, e.g. --accept-unverified '县局决定 2014-05-01: "
            "only copy left'; it is recorded in the restored ledger chain"
        )
    with restore_workspace(
        ns.src, _target(ns), force=ns.force, accept_unverified=ns.accept_unverified
    ) as ws:
        counts = ws.layer_counts()
        where = f"{mask_url(ws.target)} ({ws.kind})"
        print(f"已恢复 restored {ns.src} → {where}: {sum(counts.values()):,} rows")
    print("角色不在备份中 roles are not in a backup: run `landquota db grant` on a PostGIS target")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

"""Backup and restore: a whole workspace to one GeoPackage and back, on either backend.

``write_backup(ws, "backup.gpkg")`` writes every layer and table of the
contract — data layers, the quota ledger, allocation runs and allocations,
validation results — and ``landquota_meta`` to one new GeoPackage, which is
itself a landquota workspace (open it, inspect it in QGIS, or restore it).
``restore_workspace("backup.gpkg", target)`` writes it into a new workspace on
either backend. The round trip is lossless: same ids, attributes, geometries,
ledger entries with their ``entered_at``/``entered_by``, runs with their stamps.

The public :func:`landquota.export_workspace` (``landquota export``) is
:func:`write_backup` followed by the QGIS styles and project
(:func:`landquota.outputs.export.export_workspace`): those are outputs, a layer above the
store, so the store writes the data and the outputs layer styles the file.

Consistency and crash safety:

* The export reads every table in ONE read transaction (REPEATABLE READ on
  PostGIS; one SQLite read transaction on a GeoPackage), so a commit running at
  the same time is either wholly in the backup or wholly absent (R6 holds in
  the backup because it held in that snapshot).
* The backup file is built under a temporary name in the destination folder
  and renamed into place (``os.replace``) only when complete: a killed export
  leaves no half backup, and never damages an older backup of the same name
  until the new one is whole.
* A restore writes all rows in one transaction, in foreign-key order. A
  GeoPackage target is also built under a temporary name and renamed. On
  PostGIS the ledger's stamp triggers (:mod:`landquota.store.roles`) are disabled
  inside that transaction only — ``ALTER TABLE … DISABLE TRIGGER`` is
  transactional and needs the table owner — so the entries keep the names and
  times they were written with.

The ledger is never restored through :meth:`Workspace.append_ledger`, which
stamps entries with the restoring user and the current time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd
import shapely
import sqlalchemy as sa

from landquota.errors import BackupVerificationError, ParameterError, WorkspaceError
from landquota.settings import Settings, get_settings, mask_url
from landquota.store.api import open_workspace
from landquota.store.partials import clean_stale, temp_name
from landquota.store.schema import LAYERS, SCHEMA_VERSION
from landquota.store.workspace import Frame, Workspace, coerce_frame, is_postgres_url, prepare_frame

if TYPE_CHECKING:
    from landquota.store.gpkg import GpkgWorkspace
    from landquota.store.postgis import PostgisWorkspace

__all__ = [
    "backup_manifest",
    "check_backup",
    "read_snapshot",
    "restore_workspace",
    "write_backup",
    "write_order",
]

#: Metadata keys that describe one workspace instance, not its content.
_OWN_META = frozenset({"schema_version"})


def write_order() -> list[str]:
    """Layers in an order where every referenced layer comes before its referrers.

    Derived from the ``references`` of :mod:`landquota.store.schema` (the ledger
    refers to runs, allocations to runs, projects and stock), keeping the
    contract's order otherwise.
    """
    deps = {
        name: {c.references.split(".")[0] for c in lyr.columns if c.references} - {name}
        for name, lyr in LAYERS.items()
    }
    out: list[str] = []
    pending = list(LAYERS)
    while pending:
        for name in pending:
            if deps[name] <= set(out):
                out.append(name)
                pending.remove(name)
                break
        else:  # pragma: no cover - the contract has no cycles; a test checks it
            raise WorkspaceError(f"foreign keys of layers {pending} form a cycle")
    return out


#: ``landquota_meta`` key holding a backup's manifest (JSON).
MANIFEST_KEY = "backup_manifest"
MANIFEST_FORMAT = "landquota-backup-manifest/1"


def backup_manifest(frames: dict[str, Frame]) -> dict[str, Any]:
    """Per layer its row count and the SHA-256 of a canonical dump; plus the chain head.

    The dump is :func:`landquota.store.workspace.frame_digest`: rows sorted by the layer's id,
    attributes as CSV (floats at full precision, timestamps ISO), then each
    geometry's ISO WKB. Computed from the backup as written (read back), so a
    restore recomputes exactly the same values from an untouched file.
    """
    from landquota.store.chain import head_digest
    from landquota.store.workspace import frame_digest

    return {
        "format": MANIFEST_FORMAT,
        "layers": {
            name: {"rows": len(df), "sha256": frame_digest(df)} for name, df in frames.items()
        },
        "chain_head": head_digest(frames["ledger_chain"]),
    }


def manifest_digest(text: str) -> str:
    """SHA-256 of a manifest's JSON text: a short line to file beside the backup."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def check_backup(frames: dict[str, Frame], meta: dict[str, str]) -> list[str]:
    """Every reason a backup does not verify: its manifest, then its ledger chain."""
    from landquota.store.chain import verify_frames

    problems: list[str] = []
    text = meta.get(MANIFEST_KEY)
    if text is None:
        problems.append(
            "the backup has no manifest (it was not written by `landquota export` of this "
            "version, or the manifest was removed)"
        )
    else:
        try:
            stated = json.loads(text)
            layers = dict(stated["layers"])
        except (ValueError, KeyError, TypeError):
            problems.append("the backup's manifest is not readable JSON")
            stated, layers = {}, {}
        now = backup_manifest(frames)
        for name, got in now["layers"].items():
            want = layers.get(name)
            if want is None:
                problems.append(f"layer {name}: not in the manifest")
            elif int(want.get("rows", -1)) != got["rows"]:
                problems.append(
                    f"layer {name}: {got['rows']} rows, the manifest says {want.get('rows')}"
                )
            elif want.get("sha256") != got["sha256"]:
                problems.append(
                    f"layer {name}: its content differs from the manifest (SHA-256 "
                    f"{got['sha256'][:16]}…, manifest {str(want.get('sha256'))[:16]}…)"
                )
        if stated and stated.get("chain_head") != now["chain_head"]:
            problems.append(
                f"chain head {now['chain_head']}, the manifest says {stated.get('chain_head')}"
            )
    rep = verify_frames(frames)
    problems += [str(f) for f in sorted(rep.findings, key=lambda f: f.order)]
    return problems


class _NoBar:
    def update(self, n: int = 1) -> None:
        """Show no progress."""


# --- reading one consistent snapshot ---------------------------------------------------------
def read_snapshot(
    ws: Workspace, names: Sequence[str] | None = None
) -> tuple[dict[str, Frame], dict[str, str]]:
    """Read every layer (or only *names*) and the metadata in one read transaction.

    Returns
    -------
    (frames, meta)
        Canonical frames by layer name (as :meth:`Workspace.read_layer` gives them,
        rows in the order they were written) and ``landquota_meta`` as a dict.
    """
    wanted = list(LAYERS) if names is None else [n for n in LAYERS if n in set(names)]
    if ws.kind == "postgis":
        return _pg_snapshot(cast("PostgisWorkspace", ws), wanted)
    return _gpkg_snapshot(cast("GpkgWorkspace", ws), wanted)


def _pg_snapshot(ws: PostgisWorkspace, names: list[str]) -> tuple[dict[str, Frame], dict[str, str]]:
    frames: dict[str, Frame] = {}
    with ws.engine.connect().execution_options(isolation_level="REPEATABLE READ") as con:
        con.execute(sa.text("SET TRANSACTION READ ONLY"))
        meta_t = ws.table("landquota_meta")
        meta = {str(k): str(v) for k, v in con.execute(sa.select(meta_t.c.key, meta_t.c.value))}
        for name in names:
            lyr = LAYERS[name]
            t = ws.table(name)
            cols: list[Any] = [t.c[c] for c in lyr.column_names]
            if lyr.geometry:
                cols.append(sa.func.ST_AsBinary(t.c["geom"]).label("wkb"))
            res = con.execute(sa.select(*cols).order_by(t.c.fid))
            df = pd.DataFrame(res.fetchall(), columns=list(res.keys()))
            if lyr.geometry:
                wkb = [bytes(w) if w is not None else None for w in df.pop("wkb")]
                df["geometry"] = shapely.from_wkb(np.array(wkb, dtype=object))
            frames[name] = coerce_frame(lyr, df)
        con.rollback()
    return frames, meta


def _gpkg_geoms(blobs: list[bytes | None]) -> np.ndarray:
    """Decode GeoPackage geometry blobs (header, optional envelope, WKB) in bulk."""
    env_bytes = {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}
    wkb: list[bytes | None] = []
    for b in blobs:
        if b is None:
            wkb.append(None)
            continue
        flags = b[3]
        if flags & 0b10000:  # empty geometry flag
            wkb.append(None)
            continue
        wkb.append(bytes(b[8 + env_bytes[(flags >> 1) & 0b111] :]))
    return np.asarray(shapely.from_wkb(np.array(wkb, dtype=object)), dtype=object)


def _gpkg_snapshot(ws: GpkgWorkspace, names: list[str]) -> tuple[dict[str, Frame], dict[str, str]]:
    from landquota.store.gpkg import GEOM

    # A connection of our own, in one read transaction: its SHARED lock keeps
    # writers from committing until we have read every table (they wait).
    con = sqlite3.connect(str(ws.path), timeout=60.0, isolation_level=None)
    frames: dict[str, Frame] = {}
    try:
        con.execute("BEGIN")
        meta = {str(k): str(v) for k, v in con.execute("SELECT key, value FROM landquota_meta")}
        for name in names:
            lyr = LAYERS[name]
            names = [*lyr.column_names, *([GEOM] if lyr.geometry else [])]
            q = f"SELECT {', '.join(_qi(c) for c in names)} FROM {_qi(name)} ORDER BY fid"
            rows = con.execute(q).fetchall()
            df = pd.DataFrame(rows, columns=names)
            if lyr.geometry:
                df["geometry"] = _gpkg_geoms(df.pop(GEOM).tolist())
            frames[name] = coerce_frame(lyr, df)
        con.execute("COMMIT")
    finally:
        con.close()
    return frames, meta


def _qi(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# --- writing everything in one transaction ----------------------------------------------------
def _write_all(
    ws: Workspace,
    frames: dict[str, Frame],
    meta: dict[str, str],
    override: tuple[str, str] | None = None,
) -> None:
    """Write *frames* (already canonical) and *meta* into an empty workspace, one transaction.

    *override* ``(backup, payload)`` appends a ``restore_override`` link to the
    restored chain in the same transaction: the restore of a backup that did not
    verify stays on record.
    """
    extra = [] if override is None else [("override", override[0], override[1])]
    order = [n for n in write_order() if n in frames]
    if ws.kind == "postgis":
        pws = cast("PostgisWorkspace", ws)
        from landquota.store.roles import installed_stamp_triggers

        with pws._tx() as con:
            s = _qi(pws.schema)
            stamps = installed_stamp_triggers(con, pws.schema)
            # The owner restores history as it was: the stamps are off for this
            # transaction only (DDL is transactional; others wait on the table lock).
            for table, trig in stamps:
                con.execute(sa.text(f"ALTER TABLE {s}.{_qi(table)} DISABLE TRIGGER {_qi(trig)}"))
            for name in order:
                pws._copy(con, LAYERS[name], frames[name], _NoBar())
            # the run life-cycle checks are deferred to the commit; run them now, as the
            # tables cannot be altered (stamps back on) with trigger events pending
            con.execute(sa.text("SET CONSTRAINTS ALL IMMEDIATE"))
            for table, trig in stamps:
                con.execute(sa.text(f"ALTER TABLE {s}.{_qi(table)} ENABLE TRIGGER {_qi(trig)}"))
            if extra:
                pws._lock_ledger(con)
                pws._chain(con, after_fid=None, run_id=None, extra=extra)
            _pg_meta(con, pws.schema, meta)
        return
    from landquota.store.gpkg import META_UPSERT

    gws = cast("GpkgWorkspace", ws)
    with gws._tx() as scon:
        for name in order:
            gws._insert(scon, LAYERS[name], frames[name], _NoBar())
        if extra:
            gws._chain(scon, after_fid=None, run_id=None, extra=extra)
        scon.executemany(META_UPSERT, sorted(meta.items()))


def _pg_meta(con: sa.Connection, schema: str, meta: dict[str, str]) -> None:
    stmt = sa.text(
        f"INSERT INTO {_qi(schema)}.landquota_meta (key, value) VALUES (:k, :v) "
        "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
    )
    for k, v in sorted(meta.items()):
        con.execute(stmt, {"k": k, "v": v})


@contextlib.contextmanager
def _temp_beside(path: Path) -> Iterator[Path]:
    """Yield a temporary path in *path*'s folder, removed unless renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(path.parent)  # those of a killed export or restore (issue 12)
    tmp = temp_name(path, "partial")
    tmp.unlink(missing_ok=True)
    try:
        yield tmp
    finally:
        for p in (tmp, tmp.with_name(tmp.name + "-journal")):
            p.unlink(missing_ok=True)


def _replace_durably(tmp: Path, path: Path) -> None:
    os.replace(tmp, path)
    # the rename itself must reach the disk, or a power cut could bring the old name back
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_gpkg_out(out: Path, what: str) -> None:
    if out.suffix.lower() != ".gpkg":
        raise ParameterError(f"{what} {str(out)!r} must end in .gpkg (a GeoPackage file)")


def _quick_check(path: Path) -> None:
    con = sqlite3.connect(str(path))
    try:
        (res,) = con.execute("PRAGMA quick_check").fetchone()
    finally:
        con.close()
    if res != "ok":  # pragma: no cover - would be a SQLite bug
        raise WorkspaceError(f"the new file {str(path)!r} failed SQLite's quick_check: {res}")


def write_backup(ws: Workspace | str | Path, out: str | Path, *, force: bool = False) -> Path:
    """Write the whole workspace to one new GeoPackage with its manifest; return its path.

    The data only: :func:`landquota.outputs.export.export_workspace` (the public
    ``landquota.export_workspace``) calls this and then stores the QGIS styles and project
    in the file. Parameters and errors are those of ``landquota.export_workspace``: *ws*
    on either backend, *out* ending in ``.gpkg`` (it appears only when complete), *force*
    to replace an existing file atomically; :class:`~landquota.errors.ParameterError` when
    *out* has another suffix, exists (without *force*) or is the workspace itself.
    """
    out = Path(out)
    _check_gpkg_out(out, "out")
    if out.exists() and not force:
        raise ParameterError(
            f"out {str(out)!r} exists; choose a new name or pass force=True (--force)"
        )
    from landquota._version import __version__
    from landquota.store.api import opened

    with opened(ws) as src:
        if src.kind == "gpkg" and out.resolve() == Path(src.target).resolve():
            raise ParameterError(f"out {str(out)!r} is the workspace itself; choose another file")
        frames, meta = read_snapshot(src)
        meta = {
            **meta,
            "exported_at": pd.Timestamp.now(tz="UTC").isoformat(timespec="milliseconds"),
            "exported_from": mask_url(src.target),
            "exported_by_version": __version__,
        }
        with _temp_beside(out) as tmp:
            with open_workspace(tmp, create=True) as dst:
                _write_all(dst, frames, {k: v for k, v in meta.items() if k not in _OWN_META})
                # the manifest of the file as written, read back: a restore recomputes it
                written, _ = read_snapshot(dst)
                text = json.dumps(backup_manifest(written), sort_keys=True, separators=(",", ":"))
                dst.set_meta(MANIFEST_KEY, text)
            _quick_check(tmp)
            _replace_durably(tmp, out)
    return out


def restore_workspace(
    src: str | Path,
    target: str | Path,
    *,
    force: bool = False,
    accept_unverified: str | None = None,
    settings: Settings | None = None,
) -> Workspace:
    """Write a backup made by :func:`write_backup` (``landquota.export_workspace``) into a new workspace.

    The backup must verify first: its manifest (row count and SHA-256 of every
    layer, the chain head) and its ledger chain (chain, R6, runs against their
    entries; :func:`landquota.store.chain.verify_frames`). A backup that does not
    is refused with every reason, unless *accept_unverified* gives the reason to
    restore it anyway, which is then recorded in the restored ledger chain (a
    ``restore_override`` link: when, who, the backup, the reason, the problems).

    Parameters
    ----------
    src : str or Path
        The backup GeoPackage (any landquota GeoPackage workspace will do).
    target : str or Path
        A new ``.gpkg`` path or a ``postgresql://`` URL (``?schema=`` picks the
        schema). An existing but empty workspace is filled.
    force : bool
        Replace a target that holds data. A GeoPackage is replaced atomically;
        a PostGIS schema is dropped first (the restore itself is then one
        transaction, so a failure leaves an empty workspace, never a partial one).
    accept_unverified : str, optional
        Restore a backup that does not verify; the text is the reason, recorded
        in the chain. The database still refuses what breaks R6 or the run life
        cycle.

    Returns
    -------
    Workspace
        The restored workspace, open (close it, or use it in a ``with`` block).

    Raises
    ------
    ParameterError
        The target holds data and ``force`` is false, or is the backup itself.
    DataError
        A row of the backup breaks the contract (the message names layer and id).
    """
    settings = settings or get_settings()
    src_path = Path(src)
    if not src_path.exists():
        # open_workspace would advise `landquota init` on it: wrong for a backup to restore
        raise ParameterError(
            f"backup {str(src)!r} does not exist; make one with "
            f"`landquota export --out {src_path.name}` on the workspace to copy"
        )
    with open_workspace(src_path, settings=settings) as backup:
        if backup.kind != "gpkg":  # pragma: no cover - open_workspace of a Path
            raise ParameterError(f"src {str(src)!r} must be a GeoPackage backup")
        frames, meta = read_snapshot(backup)
        user = backup.user()
    problems = check_backup(frames, meta)
    override = None
    if problems:
        if not accept_unverified:
            more = f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
            raise BackupVerificationError(
                f"backup {str(src_path)!r} does not verify, so it is not restored: "
                f"{'; '.join(problems[:5])}{more}. Restore an earlier backup, or pass "
                "--accept-unverified REASON to restore it anyway (the override is recorded "
                "in the restored ledger chain)"
            )
        from landquota.store.chain import canonical_override

        payload = canonical_override(
            at=pd.Timestamp.now(tz="UTC"),
            by=user,
            backup=str(src_path),
            reason=accept_unverified,
            problems=problems,
        )
        override = (src_path.name, payload)
    frames = {
        name: prepare_frame(LAYERS[name], frame, source=f"backup {str(src_path)!r}")
        for name, frame in frames.items()
    }
    meta = {k: v for k, v in meta.items() if k not in _OWN_META and k != MANIFEST_KEY}
    meta["restored_at"] = pd.Timestamp.now(tz="UTC").isoformat(timespec="milliseconds")
    meta["restored_from"] = str(src_path)
    from landquota.store.dburl import conninfo_to_url

    tgt = conninfo_to_url(str(target)) or str(target)  # a libpq connection string too
    if is_postgres_url(tgt):
        return _restore_postgis(
            tgt, frames, meta, force=force, settings=settings, override=override
        )
    out = Path(tgt)
    _check_gpkg_out(out, "target")
    if out.exists():
        if out.resolve() == src_path.resolve():
            raise ParameterError(f"target {tgt!r} is the backup itself; choose another file")
        if not force:
            with open_workspace(out, settings=settings) as old:
                _refuse_non_empty(old, tgt)
    with _temp_beside(out) as tmp:
        with open_workspace(tmp, create=True, settings=settings) as dst:
            _write_all(dst, frames, meta, override)
        _quick_check(tmp)
        _replace_durably(tmp, out)
    return open_workspace(out, settings=settings)


def _refuse_non_empty(ws: Workspace, tgt: str) -> None:
    counts = {k: v for k, v in ws.layer_counts().items() if v}
    if counts:
        raise ParameterError(
            f"target {mask_url(tgt)!r} already holds data ({counts}); restore into a new "
            "workspace, or pass force=True (--force) to replace it"
        )


def _restore_postgis(
    tgt: str,
    frames: dict[str, Frame],
    meta: dict[str, str],
    *,
    force: bool,
    settings: Settings,
    override: tuple[str, str] | None = None,
) -> Workspace:
    from landquota.store.roles import install_stamp_triggers

    ws = open_workspace(tgt, create=True, settings=settings)
    try:
        if any(ws.layer_counts().values()):
            if not force:
                _refuse_non_empty(ws, tgt)
            cast("PostgisWorkspace", ws).drop()
            ws.close()
            ws = open_workspace(tgt, create=True, settings=settings)
        if int(ws.meta().get("schema_version", "0")) != SCHEMA_VERSION:  # pragma: no cover
            raise WorkspaceError(f"{mask_url(tgt)!r} is not at schema version {SCHEMA_VERSION}")
        install_stamp_triggers(ws)  # a restored workspace is as protected as a new one
        _write_all(ws, frames, meta, override)
    except BaseException:
        ws.close()
        raise
    return ws

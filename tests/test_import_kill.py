"""A SIGKILL during the bulk load paths of issue 18 leaves the workspace unchanged.

PostGIS (``landquota.store.pgstage``): killed while the rows stream into the stage,
while the stage's keys and indexes are built in parallel sessions, and in the middle
of the swap (old layer dropped and stage renamed, uncommitted). GeoPackage: killed
while the rows go in. Each time the workspace keeps its rows, keys, indexes, grants
and metadata, and the next import succeeds and leaves no stage behind.

A small source (3,000 parcels) and hooks patched into the child process keep each
case to a few seconds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import importdata as fx
import pytest

from landquota.intake.importer import import_layer

ROOT = Path(__file__).resolve().parents[1]

KILL_SCRIPT = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {tests!r})
    import landquota.store.postgis as pg
    import landquota.store.pgstage as st
    import landquota.intake.importer as imp
    import landquota.intake.load as load
    import landquota.intake.sources as sources
    from landquota.store.api import open_workspace
    sources.BATCH_ROWS = 500
    load.BULK_ROWS = 1_000  # the bulk path (the stage on PostGIS)
    where = {where!r}

    def stop():
        open({marker!r}, "w").write("ready")
        time.sleep(60)

    if where == "copy":
        real_rows, calls = pg._binary_rows, []
        def rows(lyr, df, **kw):
            calls.append(1)
            if len(calls) == 3:  # two batches are in the COPY stream, uncommitted
                time.sleep(0.3)
                stop()
            return real_rows(lyr, df, **kw)
        pg._binary_rows = rows
    elif where == "build":
        real_build = st.Stage._build
        def build(self, ws, ix):
            if ix.am == "gist":  # the stage is committed, the B-trees build beside it
                stop()
            return real_build(self, ws, ix)
        st.Stage._build = build
    elif where == "swap":
        real_acl = st._set_acl
        def set_acl(con, obj, *a):
            stop()  # old layer dropped and the stage renamed to it, not committed
        st._set_acl = set_acl
    elif where == "gpkg":
        import landquota.store.gpkg as gp
        real_insert, calls = gp.GpkgWorkspace._insert_run, []
        def insert(self, *a, **kw):  # two batches inserted, the third about to be
            calls.append(1)
            if len(calls) == 3:
                stop()
            return real_insert(self, *a, **kw)
        gp.GpkgWorkspace._insert_run = insert
    ws = open_workspace({url!r})
    imp.import_layer({src!r}, ws, layer="parcels", mode="replace")
    """
)


def _fingerprint(ws: Any) -> dict[str, Any]:
    """Rows (with fids), metadata, and on PostGIS keys, indexes, grants, comment and tables."""
    df = ws.read_layer("parcels")
    rows = sorted(zip(df.parcel_id, df.land_class, df.net_m2, df.geometry.to_wkb(hex=True), strict=True))
    out: dict[str, Any] = {"rows": rows, "meta": {k: v for k, v in ws.meta().items() if k.startswith("import.")}}
    if ws.kind == "postgis":
        import sqlalchemy as sa

        from landquota.store.pgstage import _signature

        with ws.engine.connect() as c:
            out["signature"] = _signature(c, ws.schema, "parcels")
            out["fids"] = c.execute(sa.text(f'SELECT min(fid), max(fid) FROM "{ws.schema}".parcels')).one()
    else:
        import sqlite3

        with sqlite3.connect(ws.path) as c:
            out["rtree"] = c.execute('SELECT count(*) FROM "rtree_parcels_geom"').fetchone()
            out["integrity"] = c.execute("PRAGMA integrity_check").fetchall()
    return out


def _tables(ws: Any) -> list[str]:
    import sqlalchemy as sa

    with ws.engine.connect() as c:
        return sorted(c.execute(sa.text("SELECT tablename FROM pg_tables WHERE schemaname = :s"),
                                {"s": ws.schema}).scalars())


def _kill_at(where: str, target: str, src: Path, tmp_path: Path) -> None:
    marker = tmp_path / f"ready-{where}"
    script = KILL_SCRIPT.format(tests=str(ROOT / "tests"), marker=str(marker), url=target, src=str(src),
                                where=where)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT)
    deadline = time.monotonic() + 90
    while not marker.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the import never reached {where!r} (rc={proc.returncode})")
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def _wait_for_stage_sessions(ws: Any) -> None:
    """Wait until the killed import's server sessions are gone (they notice the closed socket)."""
    import sqlalchemy as sa

    deadline = time.monotonic() + 20
    with ws.engine.connect() as c:
        while time.monotonic() < deadline:
            busy = c.execute(sa.text("SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
                                     "AND query LIKE '%_lq_stage_%' AND state <> 'idle'")).scalar()
            c.rollback()
            if not busy:
                return
            time.sleep(0.1)


@pytest.mark.postgis
@pytest.mark.parametrize("where", ["copy", "build", "swap"])
def test_sigkill_in_the_staged_load_leaves_postgis_unchanged(pg_url: str, tmp_path: Path, where: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlalchemy as sa

    import landquota.intake.load as load
    import landquota.intake.sources as sources
    from landquota.store.api import open_workspace

    ws = open_workspace(pg_url, create=True)
    try:
        import_layer(fx.central_meridian(tmp_path), ws, layer="parcels")
        with ws.engine.begin() as c:  # a grant and a comment the swap must carry over
            c.execute(sa.text(f'GRANT SELECT ON "{ws.schema}".parcels TO PUBLIC'))
            c.execute(sa.text(f"""COMMENT ON TABLE "{ws.schema}".parcels IS 'survey patches: 2019'"""))
        before, tables = _fingerprint(ws), _tables(ws)
        src = fx.big_gpkg(tmp_path, 3_000)
        _kill_at(where, pg_url, src, tmp_path)
        assert _fingerprint(ws) == before
        left = [t for t in _tables(ws) if t not in tables]
        # killed before the stage's commit: nothing; after it: the stage, which the next import drops
        assert len(left) == (0 if where == "copy" else 1) and all(t.startswith("_lq_stage_") for t in left)

        _wait_for_stage_sessions(ws)
        monkeypatch.setattr(load, "BULK_ROWS", 1_000)
        monkeypatch.setattr(sources, "BATCH_ROWS", 500)
        rep = import_layer(src, ws, layer="parcels", allow_shrink=True)
        assert rep.rows_imported == 3_000
        after = _fingerprint(ws)
        assert len(after["rows"]) == 3_000 and after["signature"] == before["signature"]
        assert after["fids"][0] > before["fids"][1]  # fids go on from the old table's
        assert _tables(ws) == tables  # the stale stage went, and no new one stayed
    finally:
        ws.close()


def test_sigkill_in_the_gpkg_bulk_load_leaves_the_file_unchanged(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import landquota.intake.load as load
    import landquota.intake.sources as sources
    from landquota.store.api import open_workspace

    target = tmp_path / "ws.gpkg"
    ws = open_workspace(target, create=True)
    try:
        import_layer(fx.central_meridian(tmp_path), ws, layer="parcels")
        before = _fingerprint(ws)
        src = fx.big_gpkg(tmp_path, 3_000)
        _kill_at("gpkg", str(target), src, tmp_path)
        assert _fingerprint(ws) == before
        monkeypatch.setattr(load, "BULK_ROWS", 1_000)
        monkeypatch.setattr(sources, "BATCH_ROWS", 500)
        assert import_layer(src, ws, layer="parcels", allow_shrink=True).rows_imported == 3_000
        assert len(_fingerprint(ws)["rows"]) == 3_000
    finally:
        ws.close()


@pytest.mark.postgis
def test_staged_replace_falls_back_for_a_table_it_cannot_rebuild(pg_url: str, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A trigger added by the bureau: the stage would lose it, so the load stays in one table."""
    import sqlalchemy as sa

    import landquota.intake.load as load
    import landquota.intake.sources as sources
    import landquota.store.pgstage as st
    from landquota.store.api import open_workspace

    monkeypatch.setattr(load, "BULK_ROWS", 1_000)
    monkeypatch.setattr(sources, "BATCH_ROWS", 500)
    ws = open_workspace(pg_url, create=True)
    try:
        import_layer(fx.central_meridian(tmp_path), ws, layer="parcels")
        s = ws.schema
        with ws.engine.begin() as c:
            c.execute(sa.text(f'CREATE FUNCTION "{s}".touch() RETURNS trigger LANGUAGE plpgsql '
                              "AS $$ BEGIN RETURN NEW; END $$"))
            c.execute(sa.text(f'CREATE TRIGGER bureau_touch BEFORE INSERT ON "{s}".parcels '
                              f'FOR EACH ROW EXECUTE FUNCTION "{s}".touch()'))
        with ws.engine.begin() as c:
            assert st.prepare(ws, c, "parcels") is None
        before = _fingerprint(ws)
        assert import_layer(fx.big_gpkg(tmp_path, 3_000), ws, layer="parcels",
                            allow_shrink=True).rows_imported == 3_000
        assert _fingerprint(ws)["signature"] == before["signature"]
        with ws.engine.connect() as c:
            assert c.execute(sa.text("SELECT count(*) FROM pg_trigger WHERE tgname = 'bureau_touch'")).scalar() == 1
    finally:
        ws.close()


def test_gpkg_blobs_from_the_source_wkb_equal_the_encoded_ones() -> None:
    """to_blobs' Arrow path (header array joined to the source WKB) writes the same bytes."""
    import numpy as np
    import shapely

    from landquota.store.gpkg import to_blobs

    polys = shapely.multipolygons([[shapely.box(112.4 + i * 1e-3, 24.2, 112.4005 + i * 1e-3, 24.2007)]
                                   for i in range(50)] + [[shapely.Polygon([(0, 0), (3, 0), (0, 2)])]])
    geoms = np.asarray(polys, dtype=object)
    iso = shapely.to_wkb(geoms, byte_order=1, flavor="iso", output_dimension=2)
    assert to_blobs(geoms, iso) == to_blobs(geoms)
    # big-endian WKB, or a missing or empty geometry, goes the per-row way (same bytes again)
    assert to_blobs(geoms, shapely.to_wkb(geoms, byte_order=0)) == to_blobs(geoms)
    with_none = np.append(geoms, None)
    assert to_blobs(with_none, np.append(iso, None))[-1] is None
    empty = np.append(geoms, shapely.from_wkt("MULTIPOLYGON EMPTY"))
    got = to_blobs(empty, shapely.to_wkb(empty, byte_order=1, flavor="iso", output_dimension=2))
    assert got == to_blobs(empty) and got[-1] is not None and got[-1][3] == 0b10001

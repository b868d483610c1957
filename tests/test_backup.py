"""Backup and restore: whole workspaces through one GeoPackage, lossless on both backends."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import shapely

from landquota.errors import ParameterError
from landquota.outputs.export import export_workspace
from landquota.store import backup
from landquota.store.api import open_workspace
from landquota.store.backup import read_snapshot, restore_workspace, write_order
from landquota.store.roles import install_stamp_triggers
from landquota.store.schema import LAYERS
from landquota.store.workspace import RunTransition, Workspace
from tests.sample import sample_layers

# Metadata that describes one copy rather than the content.
BOOKKEEPING = {
    "exported_at",
    "exported_from",
    "exported_by_version",
    "restored_at",
    "restored_from",
    "backup_manifest",  # what the backup holds: row counts, SHA-256 per layer, chain head
}


def _assert_same_workspace(a: Workspace, b: Workspace) -> None:
    """Every layer with the same rows in the same order, ids, attributes, geometries (1e-9°)."""
    fa, ma = read_snapshot(a)
    fb, mb = read_snapshot(b)
    for name in LAYERS:
        x, y = fa[name], fb[name]
        pd.testing.assert_frame_equal(
            pd.DataFrame(x.drop(columns="geometry", errors="ignore")),
            pd.DataFrame(y.drop(columns="geometry", errors="ignore")),
            obj=name,
        )
        if "geometry" in x:
            gx, gy = x.geometry.values, y.geometry.values
            same = shapely.equals_exact(gx, gy, tolerance=1e-9) | (
                shapely.is_missing(gx) & shapely.is_missing(gy)
            )
            assert same.all(), name
    strip = lambda m: {k: v for k, v in m.items() if k not in BOOKKEEPING}  # noqa: E731
    assert strip(ma) == strip(mb)


def _fill(ws: Workspace) -> None:
    """The sample, plus run R1 committed and then reverted through the ledger path.

    The stamp triggers are installed as workspace creation installs them (on PostGIS
    they also keep timestamps to the millisecond, the precision a GeoPackage stores).
    """
    install_stamp_triggers(ws)
    ws.write_layers(sample_layers())
    debit = pd.DataFrame(
        {
            "entry_id": ["E3"],
            "pool": ["new_construction"],
            "kind": ["allocation"],
            "amount": [-10_000.0],
            "year": [2014],
            "effective_date": pd.to_datetime(["2014-05-01"]),
            "source": ["R1"],
            "project_id": ["K01"],
            "run_id": ["R1"],
        }
    )
    ws.append_ledger(debit, transition=RunTransition("R1", "draft", "committed"))
    rev = debit.assign(entry_id="E4", kind="reversal", amount=10_000.0, reverses="E3")
    ws.append_ledger(rev, transition=RunTransition("R1", "committed", "reverted"))
    ws.set_meta("source_crs.parcels", "EPSG:4547")


def test_write_order_puts_every_referenced_layer_first() -> None:
    order = write_order()
    assert sorted(order) == sorted(LAYERS)
    for name, lyr in LAYERS.items():
        for col in lyr.columns:
            if col.references and not col.references.startswith(name + "."):
                assert order.index(col.references.split(".")[0]) < order.index(name), (
                    name,
                    col.name,
                )
    # the ledger refers to runs: runs must be written first
    assert order.index("allocation_runs") < order.index("quota_ledger")


def test_export_and_restore_round_trip_on_each_backend(ws: Workspace, tmp_path: Path) -> None:
    _fill(ws)
    out = export_workspace(ws, tmp_path / "backup.gpkg")
    assert out == tmp_path / "backup.gpkg"
    assert (
        sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    )  # no temp left
    with open_workspace(out) as b:
        assert b.layer_counts() == ws.layer_counts()
        assert b.meta()["exported_from"] == repr(ws).split("'")[1]
        _assert_same_workspace(ws, b)
        led = b.read_layer("quota_ledger").set_index("entry_id")
        assert led.index.tolist() == ["E1", "E2", "E3", "E4"]
        if ws.kind == "gpkg":  # kept as written, not stamped with the backup's time or user
            assert led.loc["E1", "entered_by"] == "tester"
            assert led.loc["E1", "entered_at"] == pd.Timestamp("2014-01-01T08:00:00.123Z")
        assert b.read_layer("allocation_runs")["status"].tolist() == ["reverted"]
    restored_path = tmp_path / "restored.gpkg"
    with restore_workspace(out, restored_path) as r:
        _assert_same_workspace(ws, r)
        assert r.meta()["restored_from"] == str(out)


def test_the_backup_opens_in_qgis_styled_and_its_data_is_the_stores(
    ws: Workspace, tmp_path: Path
) -> None:
    # landquota.export_workspace = store.backup.write_backup (data, manifest) + the QGIS
    # styles and project, written by the outputs layer (the store imports no output).
    import io
    import sqlite3
    import zipfile

    import landquota
    from landquota.outputs.styles import LAYER_TITLES

    assert landquota.export_workspace is export_workspace
    _fill(ws)
    styled = export_workspace(ws, tmp_path / "styled.gpkg")
    plain = backup.write_backup(ws, tmp_path / "plain.gpkg")
    con = sqlite3.connect(styled)
    per_layer = dict(con.execute("SELECT f_table_name, count(*) FROM layer_styles GROUP BY 1"))
    ((content,),) = con.execute("SELECT content FROM qgis_projects").fetchall()
    con.close()
    assert per_layer == {t: 1 for t in LAYER_TITLES}
    with zipfile.ZipFile(io.BytesIO(bytes.fromhex(content))) as z:  # QGIS stores hex text
        (name,) = z.namelist()
        xml = z.read(name).decode("utf-8")
    assert "./styled.gpkg|layername=parcels" in xml  # the project names the backup itself
    con = sqlite3.connect(plain)
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    con.close()
    assert not {"layer_styles", "qgis_projects"} & tables
    with open_workspace(styled) as s, open_workspace(plain) as b:
        _assert_same_workspace(s, b)
        assert s.meta()["backup_manifest"] == b.meta()["backup_manifest"]


@pytest.mark.postgis
def test_gpkg_to_postgis_to_gpkg_is_lossless(tmp_path: Path, pg_url: str) -> None:
    src = tmp_path / "src.gpkg"
    with open_workspace(src, create=True) as ws:
        _fill(ws)
    first = export_workspace(src, tmp_path / "first.gpkg")
    with restore_workspace(first, pg_url) as pg:
        assert pg.kind == "postgis"
        from landquota.store.roles import installed_stamp_triggers

        with pg.engine.connect() as con:  # type: ignore[attr-defined]
            # the restored workspace carries the stamp triggers, enabled again
            assert len(installed_stamp_triggers(con, pg_url.split("=")[-1])) == 2
        second = export_workspace(pg, tmp_path / "second.gpkg")
    with open_workspace(src) as a, open_workspace(second) as b:
        _assert_same_workspace(a, b)
        assert b.meta()["exported_from"].startswith("postgresql://")
    # the schema now holds data: a second restore needs force, and then replaces it
    with pytest.raises(ParameterError, match="already holds data"):
        restore_workspace(first, pg_url)
    with restore_workspace(first, pg_url, force=True) as r, open_workspace(src) as a:
        _assert_same_workspace(a, r)


@pytest.mark.postgis
def test_demo_workspace_round_trips_through_postgis(tmp_path: Path, pg_url: str) -> None:
    demo = pytest.importorskip("landquota.demo.build", reason="landquota.demo.build does not exist yet")
    src = tmp_path / "demo.gpkg"
    with open_workspace(src, create=True) as ws:
        ws.write_layers(demo.build_demo(seed=2014, n_parcels=2_000))  # the smallest demo
        counts = ws.layer_counts()
    assert counts["parcels"] > 0 and counts["projects"] > 0
    # the key-project pipeline tables (issue 14) make the round trip too
    for name in ("staff", "meetings", "project_stages", "project_progress", "visits"):
        assert counts[name] > 0, name
    first = export_workspace(src, tmp_path / "first.gpkg")
    with restore_workspace(first, pg_url) as pg:
        assert pg.layer_counts() == counts
        second = export_workspace(pg, tmp_path / "second.gpkg")
    with open_workspace(src) as a, open_workspace(second) as b:
        _assert_same_workspace(a, b)


def test_restore_refuses_a_target_with_data_unless_forced(tmp_path: Path) -> None:
    ws = open_workspace(tmp_path / "w.gpkg", create=True)
    _fill(ws)
    out = export_workspace(ws, tmp_path / "b.gpkg")
    target = tmp_path / "t.gpkg"
    with open_workspace(target, create=True) as t:
        t.write_layer("towns", sample_layers()["towns"])
    with pytest.raises(ParameterError, match="already holds data"):
        restore_workspace(out, target)
    with open_workspace(target) as t:  # untouched
        assert t.layer_counts()["towns"] == 1 and t.layer_counts()["parcels"] == 0
    with restore_workspace(out, target, force=True) as r, ws:
        _assert_same_workspace(ws, r)


@pytest.mark.parametrize(
    ("name", "match"),
    [("backup.zip", "must end in .gpkg"), ("exists.gpkg", "exists; choose a new name")],
)
def test_export_refuses_bad_or_existing_names(tmp_path: Path, name: str, match: str) -> None:
    (tmp_path / "exists.gpkg").write_bytes(b"old backup")
    with (
        open_workspace(tmp_path / "w.gpkg", create=True) as ws,
        pytest.raises(ParameterError, match=match),
    ):
        export_workspace(ws, tmp_path / name)
    assert (tmp_path / "exists.gpkg").read_bytes() == b"old backup"


def test_failed_export_leaves_the_old_backup_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_workspace(tmp_path / "w.gpkg", create=True) as ws:
        _fill(ws)
        old = export_workspace(ws, tmp_path / "b.gpkg")
        before = old.read_bytes()

        def boom(*a: object, **k: object) -> None:
            raise OSError("disk full (simulated)")

        monkeypatch.setattr(backup, "_write_all", boom)
        with pytest.raises(OSError, match="disk full"):
            export_workspace(ws, old, force=True)
    assert old.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.gpkg", "w.gpkg"]


def test_restore_refuses_to_overwrite_its_own_backup(tmp_path: Path) -> None:
    with open_workspace(tmp_path / "w.gpkg", create=True) as ws:
        _fill(ws)
        out = export_workspace(ws, tmp_path / "b.gpkg")
    with pytest.raises(ParameterError, match="is the backup itself"):
        restore_workspace(out, out, force=True)


def test_restore_of_a_missing_backup_says_how_to_make_one(tmp_path: Path) -> None:
    # not "create it with landquota init --db backup.gpkg" (that would make an empty one)
    missing = r"backup '.*backup.gpkg' does not exist; make one with `landquota export"
    with (
        pytest.raises(ParameterError, match=missing),
        restore_workspace(tmp_path / "backup.gpkg", tmp_path / "target.gpkg"),
    ):
        pass
    assert not (tmp_path / "target.gpkg").exists()


@pytest.mark.parametrize("reason", ["", "   "])
def test_restore_override_needs_a_real_reason(
    tmp_path: Path, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from landquota.cli import main

    args = ["restore", "--from", str(tmp_path / "b.gpkg"), "--db", str(tmp_path / "t.gpkg")]
    assert main([*args, "--accept-unverified", reason]) == 2
    assert "landquota restore: 错误 error: --accept-unverified needs a reason" in capsys.readouterr().err
    assert not (tmp_path / "t.gpkg").exists()

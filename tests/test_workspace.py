"""The workspace on both backends: contract tables, typed round trips, filters, atomic writes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest
import shapely
import sqlalchemy as sa

from landquota import errors
from landquota.store.api import open_workspace
from landquota.store.schema import LAYERS, SCHEMA_VERSION
from landquota.store.workspace import prepare_frame
from tests.sample import box, sample_layers


def _assert_same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Same ids, attributes and (within 1e-9 degrees) geometries."""
    assert list(a.columns) == list(b.columns)
    pd.testing.assert_frame_equal(
        pd.DataFrame(a.drop(columns="geometry", errors="ignore")),
        pd.DataFrame(b.drop(columns="geometry", errors="ignore")),
    )
    if "geometry" in a:
        ga, gb = a.geometry.values, b.geometry.values
        both_missing = shapely.is_missing(ga) & shapely.is_missing(gb)
        eq = shapely.equals_exact(ga, gb, tolerance=1e-9) | both_missing
        assert eq.all()


def test_new_workspace_has_every_layer_empty(ws) -> None:
    assert ws.schema_version == SCHEMA_VERSION
    assert ws.layer_counts() == {name: 0 for name in LAYERS}


def test_round_trip_every_layer_and_type(ws) -> None:
    frames = sample_layers()
    ws.write_layers(frames)
    stamped = {"quota_ledger": ("entered_at", "entered_by"), "allocation_runs": ("created_at", "created_by")}
    for name, frame in frames.items():
        got = ws.read_layer(name)
        want = prepare_frame(LAYERS[name], frame)
        if ws.kind == "postgis" and name in stamped:
            # the database stamps who wrote a ledger entry or run, whatever the writer claims
            at, by = stamped[name]
            assert set(got[by]) == {ws.user()}
            assert (got[at] > pd.Timestamp("2020-01-01", tz="UTC")).all()
            got, want = got.drop(columns=[at, by]), want.drop(columns=[at, by])
        _assert_same(got, want)
    # the types readers hand out are the canonical ones, whatever the backend
    p = ws.read_layer("projects")
    assert p["site_fixed"].dtype == bool and p["start_date"].dtype == "datetime64[ns]"
    assert p.geometry.iloc[1] is None  # a site that is not fixed has no geometry
    led = ws.read_layer("quota_ledger")
    assert (
        str(led["entered_at"].dtype) == "datetime64[ns, UTC]" and str(led["year"].dtype) == "Int64"
    )


def test_bbox_and_attribute_filters_are_pushed_down(ws) -> None:
    ws.write_layers(sample_layers())
    # P1 at x 112.600–112.601, P2 at 112.601–112.602, P3 at 112.602–112.603
    got = ws.read_layer("parcels", bbox=(112.6001, 24.5001, 112.6005, 24.5005))
    assert got["parcel_id"].tolist() == ["P1"]
    got = ws.read_layer("parcels", where={"land_class": ["0702", "0301"]})
    assert sorted(got["parcel_id"]) == ["P2", "P3"]
    assert ws.read_layer("parcels", where={"town": None})["parcel_id"].tolist() == ["P3"]
    assert ws.read_layer("parcels", where={"net_m2": 9_000.0})["parcel_id"].tolist() == ["P1"]
    assert ws.read_layer("parcels", columns=["land_class"]).columns.tolist() == [
        "parcel_id",
        "land_class",
        "geometry",
    ]
    assert ws.read_layer("quota_ledger", where={"pool": "comp_area"})["entry_id"].tolist() == ["E2"]


@pytest.mark.parametrize(
    "where",
    [
        {"land_class": "0101' OR '1'='1"},
        {"land_class": '0101"; DROP TABLE parcels; --'},
        {"town": "'); DELETE FROM parcels; --"},
    ],
)
def test_filters_cannot_inject_sql(ws, where) -> None:
    ws.write_layers(sample_layers())
    assert len(ws.read_layer("parcels", where=where)) == 0
    assert ws.layer_counts()["parcels"] == 3


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"where": {"no_such": 1}}, "cannot filter layer 'parcels' on 'no_such'"),
        ({"where": {"net_m2": "9000; --"}}, "needs a number"),
        ({"bbox": (1, 2, 0, 3)}, "min <= max"),
        ({"bbox": (1, 2, 3)}, "four finite numbers"),
        ({"columns": ["nope"]}, "has no column 'nope'"),
    ],
)
def test_bad_read_parameters_are_named(ws, kwargs, match) -> None:
    with pytest.raises(errors.LandquotaError, match=match):
        ws.read_layer("parcels", **kwargs)


def test_unknown_layer_lists_the_layers(ws) -> None:
    with pytest.raises(errors.LayerError, match="the workspace layers are: county"):
        ws.read_layer("parcel")


def _parcels(**changes) -> gpd.GeoDataFrame:
    df = sample_layers()["parcels"]
    for k, v in changes.items():
        df[k] = v
    return df


@pytest.mark.parametrize(
    ("frame", "error", "match"),
    [
        (lambda: _parcels(net_m2=[1.0, -5.0, 2.0]), errors.DataError, r"net_m2.*-5.0.*P2"),
        (lambda: _parcels(parcel_id=["P1", "P1", "P3"]), errors.DataError, "duplicate parcel_id"),
        (lambda: _parcels(bogus=1), errors.DataError, r"no column\(s\) \['bogus'\]"),
        (lambda: _parcels().drop(columns="net_m2"), errors.DataError, "needs column"),
        (lambda: _parcels().to_crs(4547), errors.CRSError, "EPSG:4547"),
        (lambda: _parcels().set_crs(None, allow_override=True), errors.CRSError, "has no CRS"),
        (
            lambda: _parcels().set_geometry(
                [shapely.Polygon([(0, 0), (1, 1), (1, 0), (0, 1)])] * 3, crs=4490
            ),
            errors.DataError,
            "invalid geometries",
        ),
        (
            lambda: _parcels().set_geometry([None] * 3, crs=4490),
            errors.DataError,
            "empty or missing",
        ),
    ],
)
def test_bad_frames_are_refused_and_nothing_is_written(ws, frame, error, match) -> None:
    with pytest.raises(error, match=match):
        ws.write_layer("parcels", frame())
    assert ws.layer_counts()["parcels"] == 0


def test_bad_code_names_row_and_allowed_codes(ws) -> None:
    z = sample_layers()["plan_zones"]
    z.loc[1, "zone_type"] = "maybe"
    with pytest.raises(errors.DataError, match=r"\['maybe'\].*zone_id='Z2'.*allowed, conditional"):
        ws.write_layer("plan_zones", z)


def test_polygons_become_multipolygons(ws) -> None:
    z = sample_layers()["plan_zones"]
    z = z.set_geometry([shapely.box(112, 24, 112.1, 24.1)] * 2, crs=4490)
    ws.write_layer("plan_zones", z)
    assert set(ws.read_layer("plan_zones").geom_type) == {"MultiPolygon"}


def test_multi_layer_write_is_atomic(ws) -> None:
    good = sample_layers()
    ws.write_layers({"parcels": good["parcels"]})
    bad = sample_layers()["plan_zones"]
    bad["zone_type"] = "nope"
    with pytest.raises(errors.DataError):
        ws.write_layers({"parcels": _parcels(net_m2=[1.0, 1.0, 1.0]), "plan_zones": bad})
    assert ws.read_layer("parcels")["net_m2"].tolist() == [9_000.0, 5_000.0, 20_000.0]


def test_append_refuses_existing_ids(ws) -> None:
    ws.write_layer("parcels", sample_layers()["parcels"])
    more = _parcels(parcel_id=["P3", "P4", "P5"])
    with pytest.raises(errors.DataError, match=r"\['P3'\] already exist"):
        ws.write_layer("parcels", more, mode="append")
    ws.write_layer("parcels", _parcels(parcel_id=["P4", "P5", "P6"]), mode="append")
    assert ws.layer_counts()["parcels"] == 6
    # the spatial index knows the appended rows too
    assert len(ws.read_layer("parcels", bbox=(112.6, 24.5, 112.6009, 24.5009))) == 2


def test_foreign_keys_hold(ws) -> None:
    plots = sample_layers()["linkage_plots"]
    with pytest.raises(errors.DataError):
        ws.write_layer("linkage_plots", plots)  # no linkage area LA1 yet
    assert ws.layer_counts()["linkage_plots"] == 0


def _entry(eid: str, amount: float, pool: str = "new_construction", year: int = 2014) -> dict:
    return {
        "entry_id": eid,
        "pool": pool,
        "kind": "allocation" if amount < 0 else "plan_issue",
        "amount": amount,
        "year": year,
        "effective_date": "2014-05-01",
        "source": "test",
    }


def test_ledger_refuses_negative_balance_r6(ws) -> None:
    # R6 by hand: 100 credited, 60 debited leaves 40; a further 50 would leave -10.
    ws.append_ledger(pd.DataFrame([_entry("A", 100.0), _entry("B", -60.0)]))
    with pytest.raises(
        errors.LedgerError, match=r"R6: pool 'new_construction' vintage 2014 would stand at -10.00"
    ):
        ws.append_ledger(pd.DataFrame([_entry("C", -50.0)]))
    # another vintage's balance cannot be borrowed
    with pytest.raises(errors.LedgerError, match=r"vintage 2013 would stand at -10\.00"):
        ws.append_ledger(pd.DataFrame([_entry("D", -10.0, year=2013)]))
    led = ws.read_layer("quota_ledger")
    assert led["amount"].sum() == 40.0 and set(led["entry_id"]) == {"A", "B"}
    assert set(led["entered_by"]) == {ws.user()}


def test_ledger_cannot_be_replaced(ws) -> None:
    ws.append_ledger(pd.DataFrame([_entry("A", 100.0)]))
    with pytest.raises(errors.WorkspaceError, match="append-only"):
        ws.write_layer("quota_ledger", ws.read_layer("quota_ledger"))


def test_gpkg_ledger_is_append_only_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "w.gpkg"
    with open_workspace(path, create=True) as w:
        w.append_ledger(pd.DataFrame([_entry("A", 100.0)]))
    con = sqlite3.connect(path)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        con.execute("UPDATE quota_ledger SET amount = 1e9")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        con.execute("DELETE FROM quota_ledger")
    with pytest.raises(sqlite3.DatabaseError, match="R6"):
        con.execute(
            "INSERT INTO quota_ledger (entry_id, pool, kind, amount, year, effective_date, source, "
            "entered_at, entered_by) VALUES ('X', 'new_construction', 'allocation', -101, 2014, "
            "'2014-05-01', 'sql', '2014-05-01T00:00:00.000Z', 'someone')"
        )
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        con.execute(
            "INSERT INTO quota_ledger (entry_id, pool, kind, amount, year, effective_date, source, "
            "entered_at, entered_by) VALUES ('Y', 'free_money', 'opening', 1, 2014, '2014-05-01', "
            "'sql', '2014-05-01T00:00:00.000Z', 'someone')"
        )
    con.close()


@pytest.mark.postgis
def test_postgis_ledger_is_append_only_in_the_database(pg_url: str) -> None:
    with open_workspace(pg_url, create=True) as w:
        w.append_ledger(pd.DataFrame([_entry("A", 100.0)]))
        eng = sa.create_engine(w.engine.url)
        s = w.schema
    for stmt in (
        f'UPDATE "{s}".quota_ledger SET amount = 1e9',
        f'DELETE FROM "{s}".quota_ledger',
        f'TRUNCATE "{s}".quota_ledger',
    ):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), eng.begin() as c:
            c.execute(sa.text(stmt))
    with pytest.raises(sa.exc.DBAPIError, match="R6"), eng.begin() as c:
        c.execute(
            sa.text(
                f'INSERT INTO "{s}".quota_ledger (entry_id, pool, kind, amount, year, effective_date, '
                "source, entered_at, entered_by) VALUES ('X', 'new_construction', 'allocation', -101, "
                "2014, '2014-05-01', 'sql', now(), 'someone')"
            )
        )
    with eng.connect() as c:
        assert c.execute(sa.text(f'SELECT sum(amount) FROM "{s}".quota_ledger')).scalar() == 100.0
        # the contract's codes are CHECK constraints, the layers have GiST indexes
        checks = c.execute(
            sa.text(
                "SELECT count(*) FROM pg_constraint WHERE contype='c' AND connamespace=CAST(:s AS regnamespace)"
            ),
            {"s": s},
        ).scalar()
        gist = c.execute(
            sa.text(
                "SELECT count(*) FROM pg_indexes WHERE schemaname=:s AND indexdef LIKE '%USING gist%'"
            ),
            {"s": s},
        ).scalar()
    eng.dispose()
    assert checks >= 20
    assert gist == sum(1 for lyr in LAYERS.values() if lyr.geometry)


def test_gpkg_opens_in_gdal_with_every_layer_in_4490(tmp_path: Path) -> None:
    path = tmp_path / "w.gpkg"
    with open_workspace(path, create=True) as w:
        w.write_layers(sample_layers())
    listed = dict(pyogrio.list_layers(path))
    for name, lyr in LAYERS.items():
        assert name in listed
        info = pyogrio.read_info(path, layer=name)
        if lyr.geometry:
            assert listed[name] == "MultiPolygon"
            assert info["crs"] == "EPSG:4490"
            assert info["features"] == len(sample_layers()[name])
        else:
            assert listed[name] is None
    con = sqlite3.connect(path)
    rtrees = {
        r[0]
        for r in con.execute(
            "SELECT table_name FROM gpkg_extensions WHERE extension_name='gpkg_rtree_index'"
        )
    }
    assert rtrees == {n for n, lyr in LAYERS.items() if lyr.geometry}
    con.close()


def test_ogrinfo_lists_every_layer(tmp_path: Path) -> None:
    import shutil
    import subprocess

    if shutil.which("ogrinfo") is None:
        pytest.skip("ogrinfo (Debian's gdal-bin) is not installed")
    path = tmp_path / "w.gpkg"
    open_workspace(path, create=True).close()
    out = subprocess.run(
        ["ogrinfo", "-so", "-q", str(path)], capture_output=True, text=True, check=True
    )
    assert out.stderr.strip() == ""
    for name, lyr in LAYERS.items():
        assert f": {name} (" in out.stdout
        if lyr.geometry:
            assert f": {name} (Multi Polygon)" in out.stdout


def test_schema_version_mismatch_says_what_to_run(ws_target: str, monkeypatch) -> None:
    from landquota.store import migrations
    with open_workspace(ws_target, create=True) as w:
        w.set_meta("schema_version", "0")
    with pytest.raises(errors.SchemaVersionError, match="landquota upgrade --db"):
        open_workspace(ws_target)
    with pytest.raises(errors.SchemaVersionError, match="no migration from schema version 0"):
        open_workspace(ws_target, upgrade=True)
    calls = []
    monkeypatch.setitem(migrations.MIGRATIONS, 0, lambda w: calls.append(w.kind))
    with open_workspace(ws_target, upgrade=True) as w:
        assert w.schema_version == SCHEMA_VERSION
    assert len(calls) == 1
    with open_workspace(ws_target) as w:
        w.set_meta("schema_version", "7")
    with pytest.raises(errors.SchemaVersionError, match="newer than this landquota"):
        open_workspace(ws_target)


def test_missing_workspace_says_how_to_create_it(tmp_path: Path) -> None:
    with pytest.raises(errors.WorkspaceError, match="landquota init --db"):
        open_workspace(tmp_path / "none.gpkg")


def test_a_non_workspace_file_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "x.gpkg"
    p.write_text("not a database")
    with pytest.raises(errors.WorkspaceError, match="not a GeoPackage"):
        open_workspace(p)
    q = tmp_path / "plain.gpkg"
    gpd.GeoDataFrame({"a": [1]}, geometry=[box(0, 0)], crs=4490).to_file(q, engine="pyogrio")
    with pytest.raises(errors.WorkspaceError, match="not a landquota workspace"):
        open_workspace(q)

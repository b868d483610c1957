"""The patches under the sites read in binary from PostGIS (``store.pgcolumns``), and
per-site demand identical on both backends and both engines (R1–R4)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import shapely
from gridcounty import county

from landquota.engines.api import demand_from_workspace
from landquota.store.api import open_workspace
from landquota.store.postgis import split_url

AWKWARD = ["a,b", 'say "hi"', "two\nlines", "", "tab\there", "\\N", "阳城镇，（一）", "back\\slash",
           "null", "NaN", "N/A", "NULL", "\x7f\u00e9"]


@pytest.mark.postgis
def test_read_columns_every_type_nulls_empty_text_and_time_zones(pg_url: str) -> None:
    """NULL stays NULL and '' stays '', in every type; datetimes come back in UTC."""
    import sqlalchemy as sa

    from landquota.store import pgcolumns

    n = len(AWKWARD)
    rows = []
    for i, text in enumerate(AWKWARD):
        t = "NULL" if i % 4 == 1 else "'" + text.replace("'", "''") + "'"
        r = "NULL" if i % 3 == 0 else repr(i * 0.1 - 1e-300 * i)
        k = "NULL" if i % 5 == 2 else str(i - 2**62)
        b = "NULL" if i % 6 == 5 else ("true" if i % 2 else "false")
        d = "NULL" if i % 4 == 3 else f"(DATE '1999-12-20' + {i})"
        # +08 at 00:30 is the previous day in UTC; the session's TimeZone must not matter
        ts = "NULL" if i % 4 == 0 else f"TIMESTAMPTZ '2014-01-0{1 + i % 9} 00:30:00.{i:06d}+08'"
        w = "NULL" if i == 7 else f"ST_AsBinary(ST_MakeEnvelope({i}, 0, {i + 1}, 1, 4490))"
        rows.append(f"({i}, {t}, {r}::float8, {k}::int8, {b}::boolean, {d}::date, {ts}, {w})")
    values = ", ".join(rows)
    cols = ["i", "t", "r", "k", "b", "d", "ts", "w"]
    stmt = sa.select(*[sa.column(c) for c in cols]).select_from(
        sa.text(f"(VALUES {values}) AS v({', '.join(cols)})")
    )
    types = [("i", "integer"), ("t", "text"), ("r", "real"), ("k", "integer"), ("b", "boolean"),
             ("d", "date"), ("ts", "datetime"), ("w", "wkb")]
    engine = sa.create_engine(split_url(pg_url, "public")[0])
    try:
        with engine.connect() as con:
            con.exec_driver_sql("SET TimeZone = 'America/New_York'")
            got = pgcolumns.read_columns(con, stmt, types).sort_by("i").to_pylist()
            # an all-NULL chunk and an empty answer
            none = pgcolumns.read_columns(con, stmt.where(sa.column("i") < 0), types)
            nulls = pgcolumns.read_columns(
                con, sa.select(sa.cast(sa.null(), sa.Text).label("t"),
                               sa.cast(sa.null(), sa.Double).label("r")), [("t", "text"), ("r", "real")])
    finally:
        engine.dispose()
    assert len(got) == n and none.num_rows == 0 and none.column_names == [c for c, _ in types]
    assert nulls.to_pylist() == [{"t": None, "r": None}]
    for i, row in enumerate(got):
        assert row["t"] is None if i % 4 == 1 else row["t"] == AWKWARD[i], i
        assert row["r"] is None if i % 3 == 0 else row["r"] == i * 0.1 - 1e-300 * i
        assert row["k"] is None if i % 5 == 2 else row["k"] == i - 2**62
        assert row["b"] is None if i % 6 == 5 else row["b"] == bool(i % 2)
        assert row["d"] is None if i % 4 == 3 else row["d"] == date(1999, 12, 20) + timedelta(days=i)
        want_ts = datetime(2014, 1, 1 + i % 9, 0, 30, 0, i) - timedelta(hours=8)  # naive UTC
        assert row["ts"] is None if i % 4 == 0 else row["ts"] == want_ts, i
        if i == 7:
            assert row["w"] is None
        else:
            assert shapely.equals(shapely.from_wkb(row["w"]), shapely.box(i, 0, i + 1, 1))
    assert got[3]["t"] == ""  # '' is not NULL


@pytest.mark.postgis
def test_chunks_line_up(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows spread over several aggregated chunks keep their columns in step."""
    import sqlalchemy as sa

    from landquota.store import pgcolumns

    monkeypatch.setattr(pgcolumns, "CHUNK_ROWS", 7)
    stmt = sa.select(
        sa.literal_column("g").label("k"),
        sa.literal_column("CASE WHEN g % 5 = 0 THEN NULL ELSE repeat('x', g % 11) END").label("t"),
        sa.literal_column("CASE WHEN g % 3 = 0 THEN NULL ELSE g * 1.5 END").label("r"),
    ).select_from(sa.text("generate_series(1, 100) AS g"))
    engine = sa.create_engine(split_url(pg_url, "public")[0])
    try:
        with engine.connect() as con:
            got = pgcolumns.read_columns(con, stmt, [("k", "integer"), ("t", "text"), ("r", "real")])
    finally:
        engine.dispose()
    df = got.to_pandas().sort_values("k")
    assert df["k"].tolist() == list(range(1, 101))
    for g, t, r in zip(df["k"], df["t"], df["r"], strict=True):
        assert pd.isna(t) if g % 5 == 0 else t == "x" * (g % 11)
        assert pd.isna(r) if g % 3 == 0 else r == g * 1.5


@pytest.fixture(scope="module")
def county_layers() -> dict[str, Any]:
    layers = county(2000, 25, seed=11)
    # awkward, NULL and empty town names travel through both readers
    towns = np.array([*AWKWARD, None], dtype=object)
    layers["parcels"]["town"] = towns[np.arange(len(layers["parcels"])) % len(towns)]
    return layers


@pytest.mark.postgis
def test_per_site_demand_is_identical_on_both_backends(
    county_layers: dict[str, Any], pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from landquota.rules.parcel_reads import read_parcels_under_sites

    results = {}
    read = {}
    for target in (str(tmp_path / "w.gpkg"), pg_url):
        with open_workspace(target, create=True) as ws:
            ws.write_layers(county_layers)
            read[ws.kind] = read_parcels_under_sites(ws)
            results[ws.kind] = demand_from_workspace(ws)
            if ws.kind == "postgis":  # the join split over 1 and 3 sessions: the same rows
                for threads in ("1", "3"):
                    monkeypatch.setenv("LANDQUOTA_THREADS", threads)
                    again = read_parcels_under_sites(ws)
                    assert again is not None
                    assert sorted(again["parcel_id"]) == sorted(read["postgis"]["parcel_id"])
                monkeypatch.delenv("LANDQUOTA_THREADS")
    g, p = (read[k].sort_values("parcel_id").reset_index(drop=True) for k in ("gpkg", "postgis"))
    assert 0 < len(g) < len(county_layers["parcels"])
    pd.testing.assert_frame_equal(pd.DataFrame(g.drop(columns="geometry")),
                                  pd.DataFrame(p.drop(columns="geometry")), check_exact=True)
    assert shapely.equals_exact(g.geometry.values, p.geometry.values, tolerance=0).all()
    a, b = results["gpkg"], results["postgis"]
    assert a.table["new_quota_m2"].gt(0).any()
    pd.testing.assert_frame_equal(a.table, b.table, check_exact=True)
    pd.testing.assert_frame_equal(a.compliance, b.compliance, check_exact=True)
    pd.testing.assert_frame_equal(a.demand.by_class, b.demand.by_class, check_exact=True)


@pytest.mark.slow
@pytest.mark.postgis
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::RuntimeWarning:distributed.*")
@pytest.mark.filterwarnings("ignore::DeprecationWarning:distributed.*")
# the scheduler's HTTP server takes another port when another cluster on the machine
# holds 8787 (a shared machine, a benchmark): harmless
@pytest.mark.filterwarnings("ignore:Port 8787 is already in use:UserWarning")
def test_dask_engine_on_postgis_gives_the_local_figures(
    county_layers: dict[str, Any], pg_url: str, tmp_path: Path
) -> None:
    """PostGIS workspace, Dask engine (partitions by the binary Arrow export) = local engine."""
    pytest.importorskip("dask_geopandas")
    from distributed import LocalCluster

    with open_workspace(pg_url, create=True) as ws:
        ws.write_layers(county_layers)
        local = demand_from_workspace(ws)
        with LocalCluster(
            n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster:
            dask = demand_from_workspace(
                ws, engine="dask", scheduler=cluster.scheduler_address,
                partitions=str(tmp_path / "parts"),
            )
    assert local.table["new_quota_m2"].gt(0).any()
    pd.testing.assert_frame_equal(dask.table, local.table, check_exact=True)
    pd.testing.assert_frame_equal(dask.compliance, local.compliance, check_exact=True)
    pd.testing.assert_frame_equal(dask.demand.by_class, local.demand.by_class, check_exact=True)

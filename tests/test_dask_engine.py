"""``--engine dask``: the overlay on a Dask cluster gives the same tables as the local run."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from gridcounty import county

from landquota.engines.api import DEMAND_OUT_COLUMNS, demand_from_workspace
from landquota.errors import ParameterError
from landquota.settings import mask_url
from landquota.store.api import open_workspace

pytest.importorskip("dask_geopandas")
pytest.importorskip("distributed")

from landquota.engines.dask import _reusable, write_partitions


@pytest.fixture(scope="module")
def county_ws(tmp_path_factory: pytest.TempPathFactory) -> str:
    """~3,000 patches over the Yangshan extent and 20 sites, in a GeoPackage."""
    target = str(tmp_path_factory.mktemp("dask") / "county.gpkg")
    with open_workspace(target, create=True) as ws:
        ws.write_layers(county(3000, 20, seed=7))
    return target


@pytest.mark.slow
# distributed may warn while tearing down its worker processes and sockets
# (ResourceWarning / RuntimeWarning from its own modules); nothing we can act on.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::RuntimeWarning:distributed.*")
@pytest.mark.filterwarnings("ignore::DeprecationWarning:distributed.*")
# the scheduler's HTTP server takes another port when another cluster on the machine
# holds 8787 (a shared machine, a benchmark): harmless
@pytest.mark.filterwarnings("ignore:Port 8787 is already in use:UserWarning")
def test_two_worker_cluster_gives_the_local_table(county_ws: str, tmp_path: Path) -> None:
    from distributed import LocalCluster

    with open_workspace(county_ws) as ws:
        local = demand_from_workspace(ws)
        # Small partitions, so that the 20 sites are spread over several of them
        # and some partitions meet no site at all (they must be skipped).
        parts = tmp_path / "parcels.parquet"
        info = write_partitions(
            ws.read_layer("parcels"), parts, rows_per_partition=250, source=mask_url(ws.target)
        )
        assert len(info["partitions"]) == 13  # 3,010 patches / 250 per file
        with LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster:
            dask = demand_from_workspace(
                ws, engine="dask", scheduler=cluster.scheduler_address, partitions=str(parts)
            )
    assert tuple(dask.table.columns) == DEMAND_OUT_COLUMNS
    assert len(local.table) == 20
    assert local.table["new_quota_m2"].gt(0).any()  # the comparison is not of empty tables
    # Identical, not close: same pieces, one projection, sums in (site, parcel_id) order.
    pd.testing.assert_frame_equal(dask.table, local.table, check_exact=True)
    pd.testing.assert_frame_equal(dask.compliance, local.compliance, check_exact=True)
    pd.testing.assert_frame_equal(dask.demand.by_class, local.demand.by_class, check_exact=True)
    assert dask.pieces["geometry"].equals(local.pieces["geometry"])
    assert 0 < dask.parcels_read < info["rows"]  # only partitions meeting a site were read


def test_partitions_are_reused_only_for_the_same_source(tmp_path: Path) -> None:
    layers = county(200, 1, seed=3)
    info = write_partitions(layers["parcels"], tmp_path, rows_per_partition=64, source="a.gpkg")
    assert info["partitions"] == [64, 64, 64, len(layers["parcels"]) - 192]
    assert _reusable(tmp_path, "a.gpkg", info["rows"]) == info
    assert _reusable(tmp_path, "b.gpkg", info["rows"]) is None  # another workspace
    assert _reusable(tmp_path, "a.gpkg", info["rows"] + 1) is None  # parcels changed
    # Re-writing removes the old files.
    write_partitions(layers["parcels"], tmp_path, rows_per_partition=1000, source="a.gpkg")
    assert len(list(tmp_path.glob("part.*.parquet"))) == 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"engine": "spark"}, "engine='spark'"),
        ({"scheduler": "tcp://127.0.0.1:8786"}, "options of engine='dask'"),
        ({"partitions": "/tmp/x"}, "options of engine='dask'"),
        ({"engine": "dask", "scheduler": "127.0.0.1:8786"}, "tcp://HOST:PORT"),
    ],
)
def test_bad_engine_options(county_ws: str, kwargs: dict[str, str], match: str) -> None:
    with pytest.raises(ParameterError, match=match):
        demand_from_workspace(county_ws, **kwargs)  # type: ignore[arg-type]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::RuntimeWarning:distributed.*")
@pytest.mark.filterwarnings("ignore::DeprecationWarning:distributed.*")
# the scheduler's HTTP server takes another port when another cluster on the machine
# holds 8787 (a shared machine, a benchmark): harmless
@pytest.mark.filterwarnings("ignore:Port 8787 is already in use:UserWarning")
def test_province_pipeline_small(tmp_path: Path) -> None:
    """bench_scale's pipeline at 10⁵ patches: export to partitions, 2 workers, same figures."""
    from distributed import LocalCluster

    target = str(tmp_path / "p.gpkg")
    with open_workspace(target, create=True) as ws:
        ws.write_layers(county(100_000, 60, seed=5))
        local = demand_from_workspace(ws)
        parts = tmp_path / "parts"
        with LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster:
            dask = demand_from_workspace(
                ws, engine="dask", scheduler=cluster.scheduler_address, partitions=str(parts)
            )
    info = json.loads((parts / "_landquota.json").read_text(encoding="utf-8"))
    assert info["rows"] == sum(info["partitions"]) > 100_000 - 1
    assert len(info["partitions"]) == 2  # 100,000 rows per partition, Arrow export
    assert local.table["new_quota_m2"].gt(0).any()
    pd.testing.assert_frame_equal(dask.table, local.table, check_exact=True)
    pd.testing.assert_frame_equal(dask.compliance, local.compliance, check_exact=True)
    pd.testing.assert_frame_equal(dask.demand.by_class, local.demand.by_class, check_exact=True)


@pytest.mark.postgis
def test_arrow_export_writes_the_same_patches_from_both_backends(pg_url: str, tmp_path: Path) -> None:
    """The one-read Arrow export: every patch once, source WKB unchanged, bbox metadata covering."""
    import geopandas as gpd
    import numpy as np
    import pyarrow.parquet as pq
    import shapely

    from landquota.engines.dask import export_partitions

    layers = county(1500, 3, seed=9)
    got = {}
    for target in (str(tmp_path / "w.gpkg"), pg_url):
        with open_workspace(target, create=True) as ws:
            ws.write_layers(layers)
            info = export_partitions(ws, tmp_path / ws.kind, rows_per_partition=400, source="s")
        assert info["partitions"] == [400, 400, 400, info["rows"] - 1200]
        frames = []
        for f in sorted((tmp_path / ws.kind).glob("part.*.parquet")):
            part = gpd.read_parquet(f)
            bbox = json.loads(pq.read_schema(f).metadata[b"geo"])["columns"]["geometry"]["bbox"]
            lo, hi = part.total_bounds[:2], part.total_bounds[2:]
            assert bbox[0] <= lo[0] and bbox[1] <= lo[1] and bbox[2] >= hi[0] and bbox[3] >= hi[1]
            frames.append(part)
        got[ws.kind] = pd.concat(frames, ignore_index=True).sort_values("parcel_id").reset_index(drop=True)
    want = layers["parcels"].sort_values("parcel_id").reset_index(drop=True)
    for kind, frame in got.items():
        assert frame["parcel_id"].tolist() == want["parcel_id"].tolist(), kind
        np.testing.assert_array_equal(frame["net_m2"].to_numpy(), want["net_m2"].to_numpy())
        assert shapely.equals_exact(frame.geometry.values, want.geometry.values, tolerance=0).all(), kind


def test_per_row_boxes_decode_fewer_patches_and_change_no_figure(tmp_path: Path) -> None:
    """Partitions with GeoParquet 1.1 bbox columns (written now) and without (older exports).

    With the boxes a worker decodes only the patches whose box meets a site's;
    the measured pieces, hence every figure, are those of the whole partition.
    """
    import geopandas as gpd
    import pyarrow.parquet as pq
    import shapely

    from landquota.engines.dask import _covering, _read_near_sites, measure_partitions
    from landquota.rules.demand import sum_pieces
    from landquota.rules.landclasses import grain_yields
    from landquota.rules.overlay import fixed_sites, sites_centre

    layers = county(3000, 20, seed=7)
    boxed, plain = tmp_path / "boxed", tmp_path / "plain"
    write_partitions(layers["parcels"], boxed, rows_per_partition=500)
    plain.mkdir()
    for f in sorted(boxed.glob("part.*.parquet")):
        # read without the bbox column, written back without it (an older export)
        gpd.read_parquet(f).to_parquet(plain / f.name, index=False)
    fixed = fixed_sites(layers["projects"])
    centre = sites_centre(fixed.geoms)
    first = sorted(boxed.glob("part.*.parquet"))[0]
    schema = pq.read_schema(first)
    assert _covering(pq.read_schema(plain / first.name)) is None
    covering = _covering(schema)
    assert covering is not None
    near = _read_near_sites(str(first), schema, covering, fixed.geoms, shapely.STRtree(fixed.geoms))
    assert len(near) < pq.read_metadata(first).num_rows  # only the patches near a site decoded

    results = []
    for path in (boxed, plain):
        measured, wanted, _ = measure_partitions(path, fixed, yields=grain_yields(None), centre=centre)
        demand = sum_pieces(fixed, measured, tolerance_m2=1.0, check_coverage=True, centre=centre)
        results.append((demand, wanted))
    (a, wanted_a), (b, wanted_b) = results
    assert wanted_a == wanted_b and len(a.pieces) > 0
    pd.testing.assert_frame_equal(a.table, b.table, check_exact=True)
    pd.testing.assert_frame_equal(a.by_class, b.by_class, check_exact=True)
    assert a.pieces["geometry"].equals(b.pieces["geometry"])

"""Demand of fixed sites: R1 (ellipsoidal), R2 (net share), R3 (new quota), R4 (compensation)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from geoms import BOWTIE, LINE, MULTIPART, SQUARE_3D, WITH_HOLE, Grid, frame, geod_area

from landquota.errors import CRSError, DataError, ParameterError
from landquota.rules.demand import DEMAND_COLUMNS, demand_from_sites

G = Grid()  # metres east/north of (112.5°E, 24°N), on the zone edge
SITE = G.rect(0, 0, 100, 100, xs=[50])  # 100 m × 100 m = 10,000 m²
AREA_TOL = 0.5  # R1: 0.01 % of 5,000 m²


def site_frame(*geoms: Any, **columns: list[Any]) -> gpd.GeoDataFrame:
    rows = [{"project_id": f"P{k + 1}", "geometry": g} for k, g in enumerate(geoms)]
    for name, values in columns.items():
        for row, value in zip(rows, values, strict=True):
            row[name] = value
    return frame(rows)


def parcel(
    pid: str, cls: str, geom: Any, net: float, gross: float = math.nan, **kw: Any
) -> dict[str, Any]:
    return {
        "parcel_id": pid,
        "land_class": cls,
        "gross_m2": gross,
        "net_m2": net,
        "geometry": geom,
        **kw,
    }


def big_patch(cls: str, ratio: float = 1.0, **kw: Any) -> dict[str, Any]:
    """A 500 m × 500 m patch around SITE with TBDLMJ/TBMJ = ratio."""
    return parcel("A", cls, G.rect(-200, -200, 300, 300), net=250_000 * ratio, gross=250_000, **kw)


def hand_case() -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """The issue's example: west half of SITE on paddy (net/gross 0.9), east half on 0702."""
    paddy = parcel("A", "0101", G.rect(-100, -100, 50, 200, xs=[0]), net=40_500, gross=45_000)
    homestead = parcel("B", "0702", G.rect(50, -100, 200, 200, xs=[100]), net=45_000, gross=45_000)
    return site_frame(SITE), frame([paddy, homestead])


def test_hand_check_from_the_issue() -> None:
    sites, parcels = hand_case()
    row = demand_from_sites(sites, parcels).table.iloc[0]
    assert row["site_m2"] == pytest.approx(10_000, abs=AREA_TOL)  # R1
    assert row["new_quota_m2"] == pytest.approx(5_000, abs=AREA_TOL)  # R3: paddy half only
    assert row["agricultural_m2"] == pytest.approx(5_000, abs=AREA_TOL)
    assert row["construction_m2"] == pytest.approx(5_000, abs=AREA_TOL)
    assert row["unused_m2"] == 0.0
    # R2/R4: 5,000 × 0.9 = 4,500 m² cultivated and paddy; grain 4,500 × 0.9 kg = 4,050 kg.
    for column in ("cultivated_m2", "paddy_m2", "comp_area_m2", "comp_paddy_m2"):
        assert row[column] == pytest.approx(4_500, abs=AREA_TOL)
    assert row["comp_grain_kg"] == pytest.approx(4_050, abs=AREA_TOL)


def test_table_columns_and_dtypes() -> None:
    result = demand_from_sites(*hand_case())
    assert tuple(result.table.columns) == DEMAND_COLUMNS
    assert result.table["project_id"].dtype == "str"
    assert all(result.table[c].dtype == np.float64 for c in DEMAND_COLUMNS[1:])


def test_pieces_by_class_and_coverage_are_consistent() -> None:
    result = demand_from_sites(*hand_case())
    pieces = result.pieces
    assert pieces.crs is not None and pieces.crs.to_epsg() == 4490
    assert sorted(pieces["parcel_id"]) == ["A", "B"]
    assert set(pieces.geom_type) == {"MultiPolygon"}
    paddy = pieces[pieces["parcel_id"] == "A"].iloc[0]
    assert paddy["net_ratio"] == pytest.approx(0.9)  # 40,500 / 45,000
    assert paddy["area_m2"] == pytest.approx(geod_area(paddy.geometry), rel=1e-8)  # R1
    by_class = result.by_class.set_index("land_class")
    assert by_class.loc["0101", "net_area_m2"] == pytest.approx(4_500, abs=AREA_TOL)
    assert by_class.loc["0702", "area_m2"] == pytest.approx(5_000, abs=AREA_TOL)
    assert by_class["area_m2"].sum() == pytest.approx(result.table["site_m2"].iloc[0])
    coverage = result.coverage.iloc[0]
    assert coverage["uncovered_m2"] == pytest.approx(0.0, abs=1e-3)
    assert coverage["overlap_m2"] == pytest.approx(0.0, abs=1e-3)


def test_net_share_falls_back_to_patch_area_without_gross() -> None:
    # R2: no TBMJ -> the patch's ellipsoidal area is the gross; net = 0.9 of it.
    patch = G.rect(-200, -200, 300, 300)
    parcels = frame([parcel("A", "0102", patch, net=0.9 * geod_area(patch))]).drop(
        columns="gross_m2"
    )
    row = demand_from_sites(site_frame(SITE), parcels).table.iloc[0]
    assert row["cultivated_m2"] == pytest.approx(9_000, abs=AREA_TOL)  # 10,000 × 0.9
    assert row["paddy_m2"] == 0.0  # 0102 is not paddy
    assert row["new_quota_m2"] == pytest.approx(10_000, abs=AREA_TOL)  # R3: full area


@pytest.mark.parametrize(
    ("cls", "quota", "agricultural", "construction", "unused"),
    [
        ("0101", 10_000, 10_000, 0, 0),  # style.md: a square on 0101 needs 10,000 m²
        ("0301", 10_000, 10_000, 0, 0),
        ("1203", 10_000, 10_000, 0, 0),  # ridge: agricultural
        ("1006", 10_000, 10_000, 0, 0),  # rural road: agricultural
        ("1206", 10_000, 0, 0, 10_000),  # bare soil: unused
        ("0404", 10_000, 0, 0, 10_000),
        ("0702", 0, 0, 10_000, 0),  # existing construction land needs no quota
        ("1201", 0, 0, 10_000, 0),
        ("0603", 0, 0, 10_000, 0),  # salt pan: wetland group but construction
    ],
)
def test_new_quota_by_category(
    cls: str, quota: float, agricultural: float, construction: float, unused: float
) -> None:
    # R3 with a net share of 0.8: quota still uses the full geometric area.
    row = demand_from_sites(site_frame(SITE), frame([big_patch(cls, 0.8)])).table.iloc[0]
    assert row["new_quota_m2"] == pytest.approx(quota, abs=AREA_TOL)
    assert row["agricultural_m2"] == pytest.approx(agricultural, abs=AREA_TOL)
    assert row["construction_m2"] == pytest.approx(construction, abs=AREA_TOL)
    assert row["unused_m2"] == pytest.approx(unused, abs=AREA_TOL)
    cultivated = 8_000 if cls in ("0101", "0102", "0103") else 0
    assert row["comp_area_m2"] == pytest.approx(cultivated, abs=AREA_TOL)


@pytest.mark.parametrize(
    ("cls", "own", "defaults", "grain"),
    [
        ("0101", math.nan, None, 9_000),  # 10,000 × 0.9 default
        ("0102", math.nan, None, 7_500),  # 10,000 × 0.75
        ("0103", math.nan, None, 5_000),  # 10,000 × 0.5
        ("0103", math.nan, {"0103": 0.6}, 6_000),  # configured default
        ("0103", 1.2, {"0103": 0.6}, 12_000),  # the patch's own yield wins
        ("0301", 1.2, None, 0),  # forest: no grain balance (R4 is cultivated only)
    ],
)
def test_grain_capacity(
    cls: str, own: float, defaults: dict[str, float] | None, grain: float
) -> None:
    parcels = frame([big_patch(cls, grain_kg_per_m2=own)])
    row = demand_from_sites(site_frame(SITE), parcels, grain_defaults=defaults).table.iloc[0]
    assert row["comp_grain_kg"] == pytest.approx(grain, abs=1.0)


def test_sites_not_fixed_are_skipped() -> None:
    sites = site_frame(
        SITE,
        None,
        G.rect(0, 0, 10, 10),
        SITE.buffer(0).difference(SITE),
        site_fixed=[True, False, False, False],
    )
    result = demand_from_sites(sites, frame([big_patch("0101")]))
    assert result.table["project_id"].tolist() == ["P1"]
    assert result.not_fixed == ("P2", "P3", "P4")


@pytest.mark.parametrize(
    ("geom", "expected"),
    [
        (MULTIPART, 20_000),  # two 100 m squares
        (WITH_HOLE, 7_500),  # the hole is not the project's land
        (SQUARE_3D, 10_000),  # Z dropped
    ],
)
def test_awkward_sites(geom: Any, expected: float) -> None:
    parcels = frame([parcel("A", "1206", G.rect(-200, -200, 500, 300), net=1.0, gross=1.0)])
    row = demand_from_sites(site_frame(geom), parcels).table.iloc[0]
    assert row["site_m2"] == pytest.approx(expected, abs=AREA_TOL)
    assert row["new_quota_m2"] == pytest.approx(expected, abs=AREA_TOL)


def test_zone_edge_straddling_site() -> None:
    # 200 m × 100 m across 112.5°E; west of the edge 0103, east of it 0702.
    site = G.rect(-100, 0, 100, 100, xs=[0])
    west = parcel("W", "0103", G.rect(-300, -100, 0, 200, xs=[-100]), net=90_000, gross=90_000)
    east = parcel("E", "0702", G.rect(0, -100, 300, 200, xs=[100]), net=90_000, gross=90_000)
    row = demand_from_sites(site_frame(site), frame([west, east])).table.iloc[0]
    assert row["site_m2"] == pytest.approx(20_000, abs=AREA_TOL)
    assert row["new_quota_m2"] == pytest.approx(10_000, abs=AREA_TOL)
    assert row["cultivated_m2"] == pytest.approx(10_000, abs=AREA_TOL)
    assert row["comp_grain_kg"] == pytest.approx(5_000, abs=AREA_TOL)  # 10,000 × 0.5


def test_touching_and_far_patches_give_no_piece() -> None:
    sites, parcels = hand_case()
    # T shares the site's east edge (and overlaps B outside the site: not our business).
    touching = parcel("T", "0101", G.rect(100, 0, 150, 100), net=5_000, gross=5_000)
    far = parcel("F", "0101", G.rect(1_000, 0, 1_100, 100), net=10_000, gross=10_000)
    parcels = pd.concat([parcels, frame([touching, far])], ignore_index=True)
    result = demand_from_sites(sites, parcels)
    assert sorted(result.pieces["parcel_id"]) == ["A", "B"]
    assert result.table["new_quota_m2"].iloc[0] == pytest.approx(5_000, abs=AREA_TOL)


def test_overlapping_patches_inside_site() -> None:
    sites, parcels = hand_case()
    # O lies on A inside the site: 50 m × 50 m = 2,500 m² would be counted twice.
    overlap = parcel("O", "0103", G.rect(0, 0, 50, 50), net=2_500, gross=2_500)
    parcels = pd.concat([parcels, frame([overlap])], ignore_index=True)
    with pytest.raises(DataError, match=r"P1.*(2499|2500)\.\d\d m² .*counted twice"):
        demand_from_sites(sites, parcels)
    result = demand_from_sites(sites, parcels, check_coverage=False)
    assert result.coverage["overlap_m2"].iloc[0] == pytest.approx(2_500, abs=AREA_TOL)


def test_uncovered_site_raises_or_reports() -> None:
    half = parcel("A", "1206", G.rect(-100, -100, 50, 200, xs=[0]), net=45_000, gross=45_000)
    sites, parcels = site_frame(SITE), frame([half])
    with pytest.raises(
        DataError, match=r"P1.*(4999|5000)\.\d\d m² of the site lies on no survey patch"
    ):
        demand_from_sites(sites, parcels)
    result = demand_from_sites(sites, parcels, check_coverage=False)
    assert result.coverage["uncovered_m2"].iloc[0] == pytest.approx(5_000, abs=AREA_TOL)
    assert result.table["new_quota_m2"].iloc[0] == pytest.approx(5_000, abs=AREA_TOL)


def test_no_fixed_sites_gives_empty_frames() -> None:
    result = demand_from_sites(site_frame(None), frame([big_patch("0101")]))
    assert result.table.empty and tuple(result.table.columns) == DEMAND_COLUMNS
    assert result.pieces.empty and result.by_class.empty


def _drop(column: str) -> Callable[[gpd.GeoDataFrame], gpd.GeoDataFrame]:
    return lambda f: f.drop(columns=column)


@pytest.mark.parametrize(
    ("which", "change", "exc", "match"),
    [
        ("sites", _drop("project_id"), DataError, "projects: missing column.*'project_id'"),
        ("parcels", _drop("land_class"), DataError, "parcels: missing column.*'land_class'"),
        ("parcels", _drop("net_m2"), DataError, "parcels: missing column.*'net_m2'"),
        ("parcels", lambda f: f.set_crs(4326, allow_override=True), CRSError, "parcels: CRS"),
        (
            "parcels",
            lambda f: f.set_crs(None, allow_override=True),
            CRSError,
            "parcels: the frame has no CRS",
        ),
        ("sites", lambda f: f.to_crs(4547), CRSError, "projects: CRS is 'EPSG:4547'"),
        (
            "parcels",
            lambda f: f.assign(land_class=["0101", "0709"]),
            DataError,
            "'0709'.*did you mean",
        ),
        ("parcels", lambda f: f.assign(land_class=["0101", None]), DataError, "land class missing"),
        ("parcels", lambda f: f.assign(parcel_id=["A", "A"]), DataError, "not unique: 'A'"),
        (
            "parcels",
            lambda f: f.assign(net_m2=[50_000.0, 45_000.0]),
            DataError,
            "'A'.*exceeds gross_m2",
        ),
        (
            "parcels",
            lambda f: f.assign(net_m2=[math.nan, 45_000.0]),
            DataError,
            "'A'.*net_m2.*missing",
        ),
        (
            "parcels",
            lambda f: f.assign(gross_m2=math.nan, net_m2=[40_500.0, 9e5]),
            DataError,
            "'B'.*exceeds the patch's ellipsoidal area",
        ),
        (
            "parcels",
            lambda f: f.assign(geometry=[BOWTIE, f.geometry.iloc[1]]),
            DataError,
            "invalid geometry in parcel_id 'A'",
        ),
        ("sites", lambda f: f.assign(geometry=[LINE]), DataError, "geometry type"),
        (
            "sites",
            lambda f: f.assign(geometry=[None], site_fixed=[True]),
            DataError,
            "site_fixed=True but no site geometry",
        ),
        ("sites", lambda f: pd.DataFrame(f), DataError, "expected a GeoDataFrame"),
    ],
)
def test_invalid_inputs(
    which: str, change: Callable[[gpd.GeoDataFrame], Any], exc: type[Exception], match: str
) -> None:
    sites, parcels = hand_case()
    if which == "sites":
        sites = change(sites)
    else:
        parcels = change(parcels)
    with pytest.raises(exc, match=match):
        demand_from_sites(sites, parcels)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"tolerance_m2": -1.0}, "tolerance_m2"),
        ({"grain_defaults": {"0999": 1.0}}, "grain_defaults"),
    ],
)
def test_invalid_parameters(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ParameterError, match=match):
        demand_from_sites(*hand_case(), **kwargs)

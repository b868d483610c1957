"""Plan adjustments: R16 checks by hand, scenario files, runs before/after (both backends).

The tiny county, in metres east/north of (112.8°E, 24.5°N), every strip 100 m tall,
built on the ellipsoid (tests/geoms.py), so a 200 m × 100 m strip is 20,000 m²
to far better than R1's 0.01 %:

    x:   0 ──────── 200 ──────── 400 ──────── 600 ──────── 800 ── 900 ── 1000
zone:    allowed (4 ha)          conditional  restricted (4 ha)
parcel:  P1 0301 forest   P2 0702   P3 0301     P4 0301       P5 0101 P6 0103
lines:                                                      basic farmland (2 ha)
site:                    K2 (300–400)  K1 (2 ha)

P5 (paddy) and P6 (dry land) are 1 ha each, TBMJ 10,000, KCMJ 1,000, so TBDLMJ
9,000 m² (R2). The basic farmland line holds 9,000 m² of net paddy: paddy share
9,000 / 20,000 = 45 %. The ledger holds 3 ha of plan quota.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pytest
import shapely
from geoms import Grid, frame

from landquota.allocation.runs import plan_allocation
from landquota.allocation.scenarios import adjusted_run, compare_scenarios
from landquota.errors import AllocationError, CRSError, DataError, ParameterError
from landquota.rules.adjustment import (
    DEFAULT_TOLERANCE_M2,
    PlanAdjustment,
    check_r16,
    read_scenario,
)
from landquota.rules.plan_totals import retirement_polygons

G = Grid(112.8, 24.5)
BREAKS = [0, 100, 150, 200, 300, 400, 500, 600, 700, 800, 900, 1000]
AS_OF = date(2014, 4, 30)
VERSION = "2006-2020"
#: R1 agreement of our areas with the hand figures: 0.01 % of 20,000 m².
TOL = 2.0


def strip(x0: float, x1: float) -> shapely.MultiPolygon:
    """x0–x1 metres east, 0–100 m north, sharing every break point as a vertex."""
    return shapely.MultiPolygon([G.rect(x0, 0, x1, 100, xs=BREAKS)])


def series(*geoms: Any) -> gpd.GeoSeries:
    return gpd.GeoSeries(list(geoms), crs=4490)


def county_layers() -> dict[str, pd.DataFrame]:
    def patch(pid: str, cls: str, x0: float, x1: float, net: float, gross: float) -> dict[str, Any]:
        return {
            "parcel_id": pid,
            "land_class": cls,
            "gross_m2": gross,
            "deduction_m2": gross - net,
            "net_m2": net,
            "geometry": strip(x0, x1),
        }

    parcels = frame(
        [
            patch("P1", "0301", 0, 200, 20_000, 20_000),
            patch("P2", "0702", 200, 400, 20_000, 20_000),
            patch("P3", "0301", 400, 600, 20_000, 20_000),
            patch("P4", "0301", 600, 800, 20_000, 20_000),
            patch("P5", "0101", 800, 900, 9_000, 10_000),
            patch("P6", "0103", 900, 1000, 9_000, 10_000),
        ]
    )
    zones = frame(
        [
            {
                "zone_id": "Z1",
                "zone_type": "allowed",
                "plan_version": VERSION,
                "geometry": strip(0, 400),
            },
            {
                "zone_id": "Z2",
                "zone_type": "conditional",
                "plan_version": VERSION,
                "geometry": strip(400, 600),
            },
            {
                "zone_id": "Z3",
                "zone_type": "restricted",
                "plan_version": VERSION,
                "geometry": strip(600, 1000),
            },
        ]
    )
    lines = frame(
        [
            {
                "line_id": "L1",
                "kind": "basic_farmland",
                "plan_version": VERSION,
                "paddy_m2": 9_000.0,
                "geometry": strip(800, 1000),
            },
        ]
    )

    def project(pid: str, score: float, geom: Any) -> dict[str, Any]:
        return {
            "project_id": pid,
            "name": f"项目{pid}",
            "level": "county",
            "score": score,
            "planned_use": "industrial",
            "annual_plan_yuan": 1e7,
            "completed_yuan": 0.0,
            "status": "preparatory",
            "site_fixed": True,
            "phaseable": False,
            "national_exception": False,
            "geometry": geom,
        }

    projects = frame([project("K1", 90.0, strip(400, 600)), project("K2", 80.0, strip(300, 400))])
    ledger = pd.DataFrame(
        {
            "entry_id": ["E1"],
            "pool": ["new_construction"],
            "kind": ["plan_issue"],
            "amount": [30_000.0],
            "year": [2014],
            "effective_date": pd.to_datetime(["2014-03-20"]),
            "source": ["清国土资〔2014〕1号"],
            "entered_at": pd.to_datetime(["2014-03-20T08:00:00Z"], utc=True),
            "entered_by": ["tester"],
        }
    )
    return {
        "parcels": parcels,
        "plan_zones": zones,
        "control_lines": lines,
        "projects": projects,
        "quota_ledger": ledger,
    }


@pytest.fixture
def county(ws: Any) -> Any:
    ws.write_layers(county_layers())
    return ws


def free_k1(retire_to_x: float, name: str = "free K1") -> PlanAdjustment:
    """Make K1's conditional site (400–600, 2 ha) allowed; retire 0–retire_to_x of forest."""
    return PlanAdjustment(
        name,
        make_allowed=series(strip(400, 600)),
        retire_allowed=series(strip(0, retire_to_x)),
        plan_version=VERSION,
    )


def checks_of(report: Any) -> pd.DataFrame:
    return report.checks.set_index("check")


# --------------------------------------------------------------------------- R16 by hand


def test_retiring_2_ha_to_free_a_2_ha_conditional_site_passes(county: Any) -> None:
    report = free_k1(200).check_r16(county)
    c = checks_of(report)
    assert report.passed, str(report)
    # scale: 40,000 (allowed zone) + 20,000 (made) − 20,000 (retired) = 40,000 m²
    assert c.loc["construction_scale", "before"] == pytest.approx(40_000, abs=TOL)
    assert c.loc["construction_scale", "after"] == pytest.approx(40_000, abs=TOL)
    # cultivated outside the allowed zone: P5 + P6 net = 18,000 m², untouched (forest moves)
    assert c.loc["cultivated_retention", "before"] == pytest.approx(18_000, abs=TOL)
    assert c.loc["cultivated_retention", "after"] == pytest.approx(18_000, abs=TOL)
    assert c.loc["basic_farmland_quantity", "after"] == pytest.approx(20_000, abs=TOL)
    assert c.loc["basic_farmland_quality", "before"] == pytest.approx(0.45, abs=1e-4)
    assert (c["failed_by_m2"] == 0).all()


def test_retiring_only_1_5_ha_fails_by_the_0_5_ha_shortfall(county: Any) -> None:
    report = free_k1(150).check_r16(county)
    assert not report.passed
    failed = report.failures().set_index("check")
    # 40,000 + 20,000 − 15,000 = 45,000: 5,000 m² = 0.5 ha too much allowed zone
    assert list(failed.index) == ["construction_scale"]
    assert failed.loc["construction_scale", "failed_by_m2"] == pytest.approx(5_000, abs=TOL)
    assert failed.loc["construction_scale", "failed_by_ha"] == pytest.approx(0.5, abs=TOL / 1e4)
    text = str(report)
    assert "0.5000 ha" in text and "5,000" in text
    with pytest.raises(AllocationError, match=r"construction_scale.*0\.5000 ha"):
        free_k1(150).require_r16(county)


def test_a_run_refuses_an_adjustment_that_fails(county: Any) -> None:
    with pytest.raises(AllocationError, match="construction_scale"):
        plan_allocation(county, mode="greedy", as_of=AS_OF, scenario=free_k1(150), save=False)


@pytest.mark.parametrize(
    ("made", "retained_lost", "quality_short", "share_after"),
    [
        # paddy P5: BF 20,000 → 10,000; paddy 9,000 → 0; share 45 % → 0 %,
        # short by 45 % × 10,000 − 0 = 4,500 m² of paddy; retention loses P5's 9,000 net
        ((800, 900), 9_000, 4_500, 0.0),
        # dry land P6: BF 20,000 → 10,000 but paddy stays 9,000: share 90 %, quality passes
        ((900, 1000), 9_000, 0, 0.9),
    ],
)
def test_allowed_zone_over_basic_farmland_fails_with_its_area(
    county: Any,
    made: tuple[float, float],
    retained_lost: float,
    quality_short: float,
    share_after: float,
) -> None:
    adj = PlanAdjustment(
        "over basic farmland",
        make_allowed=series(strip(*made)),
        retire_allowed=series(strip(0, 100)),  # 1 ha for 1 ha: the scale holds
    )
    c = checks_of(adj.check_r16(county))
    assert c.loc["construction_scale", "passed"]
    assert not c.loc["basic_farmland_quantity", "passed"]
    assert c.loc["basic_farmland_quantity", "failed_by_m2"] == pytest.approx(10_000, abs=TOL)
    assert c.loc["basic_farmland_quantity", "failed_by_ha"] == pytest.approx(1.0, abs=1e-3)
    assert c.loc["cultivated_retention", "failed_by_m2"] == pytest.approx(retained_lost, abs=TOL)
    assert c.loc["basic_farmland_quality", "failed_by_m2"] == pytest.approx(quality_short, abs=TOL)
    assert c.loc["basic_farmland_quality", "passed"] == (quality_short == 0)
    assert c.loc["basic_farmland_quality", "after"] == pytest.approx(share_after, abs=1e-4)


def test_retiring_allowed_zone_under_a_project_site_fails(county: Any) -> None:
    # K2 sits at 300–400 in the allowed zone: retiring it would strand the site (R15).
    adj = PlanAdjustment(
        "bad retirement",
        make_allowed=series(strip(400, 500)),
        retire_allowed=series(strip(300, 400)),
    )
    c = checks_of(adj.check_r16(county))
    assert c.loc["retired_sites", "failed_by_m2"] == pytest.approx(10_000, abs=TOL)
    assert c.loc["construction_scale", "passed"]


def test_changing_the_prohibited_zone_fails(county: Any) -> None:
    layers = county_layers()
    zones = layers["plan_zones"]
    zones.loc[zones["zone_id"] == "Z3", "zone_type"] = "prohibited"
    adj = PlanAdjustment(
        "lift prohibited",
        zone_changes=gpd.GeoDataFrame(
            {"zone_type": ["restricted"]}, geometry=series(strip(600, 700)), crs=4490
        ),
    )
    c = checks_of(check_r16(adj, layers))  # frames work as well as a workspace
    assert c.loc["protected_zones", "failed_by_m2"] == pytest.approx(10_000, abs=TOL)


def test_a_zone_change_to_allowed_counts_like_make_allowed(county: Any) -> None:
    adj = PlanAdjustment(
        "via zone_changes",
        zone_changes=gpd.GeoDataFrame(
            {"zone_type": ["allowed", "restricted"]},
            geometry=series(strip(400, 600), strip(0, 200)),
            crs=4490,
        ),
    )
    assert adj.check_r16(county).passed
    assert len(adj.allowed_geometry()) == 1


# --------------------------------------------------------------------------- runs


def test_the_conditional_project_is_funded_after_the_adjustment(county: Any) -> None:
    before, after, comparison = adjusted_run(county, free_k1(200), mode="greedy", as_of=AS_OF)
    b = before.allocations.set_index("project_id")
    a = after.allocations.set_index("project_id")
    assert b.loc["K1", "outcome"] == "blocked"
    assert "conditional_zone_needs_adjustment" in b.loc["K1", "reasons"]
    # R3: 2 ha of forest need 2 ha of plan quota; the ledger holds 3 ha
    assert a.loc["K1", "outcome"] == "funded"
    assert a.loc["K1", "new_quota_m2"] == pytest.approx(20_000, abs=TOL)
    changed = comparison.changed.set_index("project_id")
    assert list(changed.index) == ["K1"]
    assert changed.loc["K1", "change"] == "blocked → funded"
    pools = comparison.pools.set_index("pool")
    assert pools.loc["new_quota_m2", "difference"] == pytest.approx(20_000, abs=TOL)
    geo = comparison.to_geodataframe()
    assert geo.crs.to_epsg() == 4490 and list(geo["project_id"]) == ["K1"]
    assert "blocked → funded" in comparison._repr_html_()
    # nothing was written: what-if runs only
    assert len(county.read_layer("allocation_runs")) == 0
    assert after.record["scenario"] == "free K1"


def test_the_cli_allocates_under_a_scenario_file(county: Any, tmp_path: Path) -> None:
    from landquota.cli import main

    path = free_k1(200).to_file(tmp_path / "free_k1.gpkg")
    out = tmp_path / "after.csv"
    target = county.target
    county.close()
    status = main(
        [
            "allocate",
            "--db",
            target,
            "--mode",
            "greedy",
            "--as-of",
            "2014-04-30",
            "--scenario",
            str(path),
            "--out",
            str(out),
        ]
    )
    assert status == 0
    rows = pd.read_csv(out, encoding="utf-8-sig").set_index("project_id")
    assert rows.loc["K1", "outcome"] == "funded"


def test_compare_scenarios_rejects_bad_labels(county: Any) -> None:
    run = plan_allocation(county, mode="greedy", as_of=AS_OF, save=False)
    with pytest.raises(ParameterError, match="labels"):
        compare_scenarios(run, run, labels=("same", "same"))
    assert not compare_scenarios(run, run).projects["changed"].any()


# --------------------------------------------------------------------------- retirement helper


def test_retirement_polygons_hit_the_area(county: Any) -> None:
    # 1.234 ha of free allowed zone: K2 (300–400) is avoided, so it comes from P1/P2 0–300.
    pieces = retirement_polygons(county, 12_340.0)
    adj = PlanAdjustment("helper", retire_allowed=pieces)
    c = checks_of(adj.check_r16(county))
    assert c.loc["construction_scale", "change"] == pytest.approx(-12_340, abs=0.05)
    assert c.loc["retired_sites", "passed"]
    with pytest.raises(ParameterError, match="free"):
        retirement_polygons(county, 40_000.0)  # only 30,000 m² are free of K2


# --------------------------------------------------------------------------- files and digests


@pytest.mark.parametrize("suffix", [".gpkg", ".geojson"])
def test_scenario_file_round_trip_keeps_the_digest(tmp_path: Path, suffix: str) -> None:
    adj = PlanAdjustment(
        "往返 round trip",
        make_allowed=series(strip(400, 600)),
        retire_allowed=series(strip(0, 200)),
        zone_changes=gpd.GeoDataFrame(
            {"zone_type": ["conditional"]}, geometry=series(strip(600, 700)), crs=4490
        ),
        plan_version=VERSION,
    )
    back = read_scenario(adj.to_file(tmp_path / f"s{suffix}"))
    assert back.name == adj.name and back.plan_version == VERSION
    assert back.digest() == adj.digest()
    assert back == adj
    assert list(back.to_frame()["action"]) == ["make_allowed", "retire_allowed", "change_zone"]


def test_digest_ignores_ring_start_but_not_geometry() -> None:
    sq = G.rect(0, 0, 100, 100)
    ring = list(sq.exterior.coords)
    rotated = shapely.Polygon([*ring[1:], ring[1]])
    a = PlanAdjustment("d", make_allowed=series(sq))
    assert a.digest() == PlanAdjustment("d", make_allowed=series(rotated)).digest()
    assert a.digest() != PlanAdjustment("d", make_allowed=series(G.rect(0, 0, 100, 101))).digest()
    assert a.digest() != PlanAdjustment("e", make_allowed=series(sq)).digest()


def test_default_tolerance_is_one_square_metre() -> None:
    assert DEFAULT_TOLERANCE_M2 == 1.0


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"name": ""}, ParameterError, "name"),
        ({"name": "x", "retired_to": "allowed"}, ParameterError, "retired_to"),
        ({"name": "x", "make_allowed": [G.rect(0, 0, 10, 10)]}, ParameterError, "GeoSeries"),
        ({"name": "x", "make_allowed": gpd.GeoSeries([G.rect(0, 0, 10, 10)])}, CRSError, "no CRS"),
        (
            {"name": "x", "make_allowed": gpd.GeoSeries([G.rect(0, 0, 10, 10)], crs=4326)},
            CRSError,
            "EPSG:4326",
        ),
        (
            {"name": "x", "make_allowed": series(shapely.LineString([(0, 0), (1, 1)]))},
            ParameterError,
            "not a polygon",
        ),
        (
            {
                "name": "x",
                "make_allowed": series(
                    shapely.Polygon(
                        [G.point(0, 0), G.point(100, 100), G.point(100, 0), G.point(0, 100)]
                    )
                ),
            },
            ParameterError,
            "invalid",
        ),
        (
            {
                "name": "x",
                "make_allowed": series(strip(0, 200)),
                "retire_allowed": series(strip(100, 300)),
            },
            ParameterError,
            "at once",
        ),
        (
            {
                "name": "x",
                "zone_changes": gpd.GeoDataFrame(
                    {"zone_type": ["industrial"]}, geometry=series(strip(0, 100)), crs=4490
                ),
            },
            ParameterError,
            "industrial",
        ),
    ],
)
def test_invalid_adjustments_are_refused(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        PlanAdjustment(**kwargs)


@pytest.mark.parametrize(
    ("rows", "match"),
    [
        ({"action": ["make_allowed"]}, "scenario"),
        ({"action": ["grow"], "scenario": ["s"]}, "grow"),
        ({"action": ["change_zone"], "scenario": ["s"], "zone_type": [None]}, "no zone_type"),
        ({"action": ["make_allowed", "make_allowed"], "scenario": ["a", "b"]}, "one scenario"),
    ],
)
def test_bad_scenario_frames_are_refused(rows: dict[str, list[Any]], match: str) -> None:
    n = len(rows["action"])
    frame_ = gpd.GeoDataFrame(rows, geometry=series(*[strip(0, 100)] * n), crs=4490)
    with pytest.raises(DataError, match=match):
        PlanAdjustment.from_frame(frame_)


def test_read_scenario_refuses_a_missing_file_and_another_crs(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="no such file"):
        read_scenario(tmp_path / "nope.gpkg")
    f = gpd.GeoDataFrame(
        {"action": ["make_allowed"], "scenario": ["s"]},
        geometry=series(strip(0, 100)).to_crs(4547),
    )
    path = tmp_path / "gk.gpkg"
    f.to_file(path, layer="adjustment")
    with pytest.raises(CRSError, match="EPSG:4547"):
        read_scenario(path)


def test_adjusted_zones_move_the_polygons() -> None:
    zones = county_layers()["plan_zones"]
    out = free_k1(200).adjusted_zones(zones).set_index("zone_id")
    from landquota.rules.areas import ellipsoidal_area

    by_type = {
        t: float(ellipsoidal_area(out[out["zone_type"] == t].geometry).sum())
        for t in ("allowed", "conditional", "restricted")
    }
    # allowed: 4 ha − 2 ha retired + 2 ha made; conditional gone; restricted 4 + 2 ha
    assert by_type == pytest.approx(
        {"allowed": 40_000, "conditional": 0, "restricted": 60_000}, abs=TOL
    )
    assert {"ADJ-1", "ADJ-2"} <= set(out.index)

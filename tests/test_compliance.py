"""Compliance (R13, R15) and approval level (R14) of fixed sites."""

from __future__ import annotations

import math
from typing import Any

import geopandas as gpd
import pandas as pd
import pytest
from geoms import BOWTIE, Grid, frame

from landquota.errors import CRSError, DataError, ParameterError
from landquota.rules.compliance import COMPLIANCE_COLUMNS, compliance_of_sites
from landquota.rules.demand import demand_from_sites

G = Grid()  # metres east/north of (112.5°E, 24°N)
SITE = G.rect(0, 0, 100, 100, xs=[50])  # 10,000 m²
WEST = G.rect(-1_000, -1_000, 50, 1_000, xs=[0])  # covers the site's west half
EAST = G.rect(50, -1_000, 1_000, 1_000, xs=[100])  # covers its east half
ALL = G.rect(-1_000, -1_000, 2_000, 2_000)
AREA_TOL = 0.5  # R1: 0.01 % of 5,000 m²


def sites(*geoms: Any, exception: list[bool] | None = None) -> gpd.GeoDataFrame:
    rows = [{"project_id": f"P{k + 1}", "geometry": g} for k, g in enumerate(geoms)]
    for row, flag in zip(rows, exception or [False] * len(rows), strict=True):
        row["national_exception"] = flag
    return frame(rows)


def zones(*items: tuple[str, Any], version: str = "2020") -> gpd.GeoDataFrame:
    return frame(
        [
            {"zone_id": f"Z{k}", "zone_type": t, "plan_version": version, "geometry": g}
            for k, (t, g) in enumerate(items)
        ]
    )


def lines(*items: tuple[str, Any], version: str = "2020") -> gpd.GeoDataFrame:
    rows = [
        {"line_id": f"L{k}", "kind": kind, "plan_version": version, "geometry": g}
        for k, (kind, g) in enumerate(items)
    ]
    if not rows:  # an empty layer still has its columns and CRS
        return gpd.GeoDataFrame(
            {"line_id": [], "kind": [], "plan_version": []}, geometry=[], crs=4490
        )
    return frame(rows)


def one(result: pd.DataFrame) -> pd.Series:
    assert len(result) == 1
    return result.iloc[0]


def test_allowed_site() -> None:
    row = one(compliance_of_sites(sites(SITE), zones(("allowed", ALL)), lines()))
    assert row["outcome"] == "allowed" and row["reasons"] == ""
    assert row["allowed_m2"] == pytest.approx(10_000, abs=AREA_TOL)
    assert row["approval_level"] == "province"  # 1 ha, no basic farmland (R14)


def test_columns() -> None:
    result = compliance_of_sites(sites(SITE), zones(("allowed", ALL)), lines())
    assert tuple(result.columns) == COMPLIANCE_COLUMNS
    assert result["reasons"].dtype == "str"


@pytest.mark.parametrize(
    ("exception", "outcome", "reasons"),
    [(False, "blocked", "basic_farmland"), (True, "allowed", "")],
)
def test_basic_farmland_r13(exception: bool, outcome: str, reasons: str) -> None:
    row = one(
        compliance_of_sites(
            sites(SITE, exception=[exception]),
            zones(("allowed", ALL)),
            lines(("basic_farmland", WEST)),
        )
    )
    assert row["basic_farmland_m2"] == pytest.approx(5_000, abs=AREA_TOL)
    assert row["outcome"] == outcome and row["reasons"] == reasons
    assert row["approval_level"] == "state_council"  # R13/R14: any basic farmland


@pytest.mark.parametrize(
    ("east", "column", "outcome", "reason"),
    [
        (("line", "eco_redline"), "eco_redline_m2", "blocked", "eco_redline"),
        (("zone", "prohibited"), "prohibited_m2", "blocked", "prohibited_zone"),
        (("zone", "restricted"), "restricted_m2", "needs_adjustment", "restricted_zone"),
        (
            ("zone", "conditional"),
            "conditional_m2",
            "needs_adjustment",
            "conditional_zone_needs_adjustment",
        ),
        (("line", "urban_boundary"), "urban_boundary_m2", "allowed", ""),  # reported only
    ],
)
def test_zone_and_line_rules_r15(
    east: tuple[str, str], column: str, outcome: str, reason: str
) -> None:
    where, kind = east
    if where == "zone":
        plan, ctrl = zones(("allowed", WEST), (kind, EAST)), lines()
    else:
        plan, ctrl = zones(("allowed", ALL)), lines((kind, EAST))
    row = one(compliance_of_sites(sites(SITE), plan, ctrl))
    assert row[column] == pytest.approx(5_000, abs=AREA_TOL)  # the east half
    assert row["outcome"] == outcome and row["reasons"] == reason


def test_precedence_blocked_beats_adjustment_and_lists_all_reasons() -> None:
    # West half prohibited, east half conditional, basic farmland on the east half.
    row = one(
        compliance_of_sites(
            sites(SITE),
            zones(("prohibited", WEST), ("conditional", EAST)),
            lines(("basic_farmland", EAST)),
        )
    )
    assert row["outcome"] == "blocked"
    assert row["reasons"] == "basic_farmland,prohibited_zone,conditional_zone_needs_adjustment"


@pytest.mark.parametrize(
    ("adjusted", "outcome", "conditional", "adjusted_m2"),
    [
        (None, "needs_adjustment", 5_000, 0),
        (G.rect(50, -10, 200, 110), "allowed", 0, 5_000),  # covers the conditional half
        (G.rect(50, -10, 200, 50), "needs_adjustment", 2_500, 2_500),  # covers half of it
    ],
)
def test_adjustment_covers_conditional_zone(
    adjusted: Any, outcome: str, conditional: float, adjusted_m2: float
) -> None:
    extra = None if adjusted is None else gpd.GeoSeries([adjusted], crs=4490)
    row = one(
        compliance_of_sites(
            sites(SITE),
            zones(("allowed", WEST), ("conditional", EAST)),
            lines(),
            adjusted_allowed=extra,
        )
    )
    assert row["outcome"] == outcome
    assert row["conditional_m2"] == pytest.approx(conditional, abs=AREA_TOL)
    assert row["adjusted_m2"] == pytest.approx(adjusted_m2, abs=AREA_TOL)
    # allowed = 5,000 (west) + what the adjustment moved
    assert row["allowed_m2"] == pytest.approx(5_000 + adjusted_m2, abs=AREA_TOL)


def test_adjustment_cannot_lift_prohibited_zone() -> None:
    row = one(
        compliance_of_sites(
            sites(SITE),
            zones(("allowed", WEST), ("prohibited", EAST)),
            lines(),
            adjusted_allowed=gpd.GeoSeries([ALL], crs=4490),
        )
    )
    assert row["outcome"] == "blocked" and row["reasons"] == "prohibited_zone"
    assert row["prohibited_m2"] == pytest.approx(5_000, abs=AREA_TOL)
    assert row["adjusted_m2"] == pytest.approx(0.0, abs=1e-3)


@pytest.mark.parametrize(("tolerance", "outcome"), [(1.0, "allowed"), (0.1, "blocked")])
def test_sliver_tolerance(tolerance: float, outcome: str) -> None:
    strip = G.rect(0, 0, 0.05, 10)  # 0.05 m × 10 m = 0.5 m² of basic farmland
    row = one(
        compliance_of_sites(
            sites(SITE),
            zones(("allowed", ALL)),
            lines(("basic_farmland", strip)),
            tolerance_m2=tolerance,
        )
    )
    assert row["basic_farmland_m2"] == pytest.approx(0.5, abs=0.01)
    assert row["outcome"] == outcome
    assert row["tolerance_m2"] == tolerance
    if outcome == "allowed":
        assert row["ignored_slivers"] == "basic_farmland:0.50"
        assert row["approval_level"] == "province"  # a sliver is not "taking" farmland
    else:
        assert row["ignored_slivers"] == "" and row["reasons"] == "basic_farmland"


def test_site_partly_outside_plan_zones() -> None:
    row = one(compliance_of_sites(sites(SITE), zones(("allowed", WEST)), lines()))
    assert row["unzoned_m2"] == pytest.approx(5_000, abs=AREA_TOL)
    assert row["outcome"] == "needs_adjustment" and row["reasons"] == "outside_plan_zones"


def test_without_plan_zones_only_lines_apply() -> None:
    row = one(compliance_of_sites(sites(SITE), None, lines(("eco_redline", WEST))))
    assert math.isnan(row["allowed_m2"]) and math.isnan(row["unzoned_m2"])
    assert row["outcome"] == "blocked" and row["reasons"] == "eco_redline"


def _demand_case(width: float, height: float, cls: str) -> tuple[gpd.GeoDataFrame, Any]:
    site = sites(G.rect(0, 0, width, height))
    patch = G.rect(-100, -100, width + 100, height + 100)
    parcels = frame(
        [{"parcel_id": "A", "land_class": cls, "gross_m2": 1.0, "net_m2": 1.0, "geometry": patch}]
    )
    return site, demand_from_sites(site, parcels)


@pytest.mark.parametrize(
    ("width", "height", "cls", "level"),
    [
        (600, 600, "0103", "state_council"),  # 36 ha of cultivated land > 35 ha
        (580, 600, "0103", "province"),  # 34.8 ha
        (1_000, 710, "1206", "state_council"),  # 71 ha of other land > 70 ha
        (1_000, 690, "1206", "province"),  # 69 ha
        (1_000, 690, "0702", "province"),  # 69 ha of construction land
    ],
)
def test_approval_level_r14(width: float, height: float, cls: str, level: str) -> None:
    site, demand = _demand_case(width, height, cls)
    row = one(compliance_of_sites(site, zones(("allowed", ALL)), lines(), demand=demand))
    assert row["approval_level"] == level
    area = width * height
    cultivated = area if cls == "0103" else 0.0
    assert row["other_cultivated_m2"] == pytest.approx(cultivated, rel=1e-4)
    assert row["other_land_m2"] == pytest.approx(area - cultivated, rel=1e-4, abs=1.0)


def test_cultivated_inside_basic_farmland_is_not_other_cultivated() -> None:
    # 600 m × 700 m = 42 ha of dry land; basic farmland on x < 150: 150 × 700 = 10.5 ha.
    site, demand = _demand_case(600, 700, "0103")
    row = one(
        compliance_of_sites(
            site.assign(national_exception=True),
            zones(("allowed", ALL)),
            lines(("basic_farmland", G.rect(-500, -500, 150, 1_500))),
            demand=demand,
        )
    )
    assert row["basic_farmland_m2"] == pytest.approx(105_000, rel=1e-4)
    assert row["other_cultivated_m2"] == pytest.approx(315_000, rel=1e-4)  # 42 − 10.5 ha
    assert row["other_land_m2"] == pytest.approx(0.0, abs=5.0)
    assert row["outcome"] == "allowed" and row["approval_level"] == "state_council"


@pytest.mark.parametrize(
    ("width", "height", "level"),
    [
        (100, 100, "province"),  # 1 ha ≤ 35 ha: neither threshold can be passed
        (600, 600, None),  # 36 ha: depends on how much is cultivated
        (1_100, 1_000, "state_council"),  # 110 ha > 35 + 70 ha: one threshold must be passed
    ],
)
def test_approval_level_without_demand(width: float, height: float, level: str | None) -> None:
    row = one(
        compliance_of_sites(sites(G.rect(0, 0, width, height)), zones(("allowed", ALL)), lines())
    )
    if level is None:
        assert pd.isna(row["approval_level"])
    else:
        assert row["approval_level"] == level


def test_plan_version_selection() -> None:
    plan = pd.concat(
        [zones(("allowed", ALL), version="2020"), zones(("prohibited", ALL), version="2024")],
        ignore_index=True,
    ).assign(zone_id=["Z0", "Z1"])
    with pytest.raises(ParameterError, match="'2020', '2024'"):
        compliance_of_sites(sites(SITE), plan, lines())
    assert (
        one(compliance_of_sites(sites(SITE), plan, lines(), plan_version="2020"))["outcome"]
        == "allowed"
    )
    assert (
        one(compliance_of_sites(sites(SITE), plan, lines(), plan_version="2024"))["outcome"]
        == "blocked"
    )
    with pytest.raises(ParameterError, match="'1999' is not in plan_zones"):
        compliance_of_sites(sites(SITE), plan, lines(), plan_version="1999")


@pytest.mark.parametrize(
    ("which", "change", "exc", "match"),
    [
        ("zones", lambda f: f.assign(zone_type="forbidden"), DataError, "'forbidden'"),
        ("zones", lambda f: f.drop(columns="zone_type"), DataError, "plan_zones: missing column"),
        ("lines", lambda f: f.to_crs(4547), CRSError, "control_lines: CRS is 'EPSG:4547'"),
        ("lines", lambda f: f.assign(kind="farmland"), DataError, "'farmland'"),
        ("lines", lambda f: f.assign(geometry=[BOWTIE]), DataError, "invalid geometry in line_id"),
        ("sites", lambda f: f.assign(national_exception=[pd.NA]), DataError, "national_exception"),
        ("sites", lambda f: f.set_crs(None, allow_override=True), CRSError, "projects"),
    ],
)
def test_invalid_inputs(which: str, change: Any, exc: type[Exception], match: str) -> None:
    frames = {
        "sites": sites(SITE),
        "zones": zones(("allowed", ALL)),
        "lines": lines(("eco_redline", G.rect(500, 500, 600, 600))),
    }
    frames[which] = change(frames[which])
    with pytest.raises(exc, match=match):
        compliance_of_sites(frames["sites"], frames["zones"], frames["lines"])


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"tolerance_m2": -1.0}, ParameterError, "tolerance_m2"),
        ({"adjusted_allowed": gpd.GeoSeries([ALL])}, CRSError, "adjusted_allowed"),
        ({"adjusted_allowed": [ALL]}, ParameterError, "GeoSeries"),
    ],
)
def test_invalid_parameters(kwargs: dict[str, Any], exc: type[Exception], match: str) -> None:
    with pytest.raises(exc, match=match):
        compliance_of_sites(sites(SITE), zones(("allowed", ALL)), lines(), **kwargs)


def test_demand_must_cover_the_sites() -> None:
    _, demand = _demand_case(100, 100, "0103")
    other = sites(SITE, G.rect(200, 0, 300, 100))
    with pytest.raises(DataError, match="no row for project_id 'P2'"):
        compliance_of_sites(other, zones(("allowed", ALL)), lines(), demand=demand)

"""Tests of the deterministic demo county (landquota.demo.build)."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely

from landquota.demo.build import (
    DEMO_AS_OF,
    DEMO_LAYERS,
    DEMO_PLAN_VERSION,
    DEMO_TOWN_NAMES,
    LAND_CLASS_SHARES,
    build_demo,
    county_boundary,
)
from landquota.errors import ParameterError
from landquota.rules.landclasses import LAND_CLASSES
from landquota.store.schema import LAYERS

N = 5_000  # small enough for a fast test, large enough for the land-class shares

CANONICAL = {
    "text": "str",
    "json": "str",
    "real": "float64",
    "integer": "Int64",
    "boolean": "bool",
    "date": "datetime64[ns]",
    "datetime": "datetime64[ns, UTC]",
}


@pytest.fixture(scope="module")
def demo() -> dict[str, pd.DataFrame]:
    return build_demo(seed=2014, n_parcels=N)


@pytest.fixture(scope="module")
def default_build() -> tuple[dict[str, pd.DataFrame], float]:
    """The default demo (as `landquota demo` builds it) and its build time."""
    # CPU time, not wall time: the test machines are shared by several jobs.
    t0 = time.process_time()
    layers = build_demo()
    return layers, time.process_time() - t0


def digest(frame: pd.DataFrame) -> str:
    """SHA-256 of a layer: its attribute values, then the WKB of its geometries."""
    h = hashlib.sha256()
    attrs = frame.drop(columns="geometry", errors="ignore")
    h.update(pd.util.hash_pandas_object(attrs, index=True).to_numpy().tobytes())
    h.update("|".join(map(str, attrs.dtypes)).encode())
    if "geometry" in frame.columns:
        for wkb in shapely.to_wkb(frame.geometry.values, hex=False):
            h.update(b"-" if wkb is None else wkb)
    return h.hexdigest()


# --------------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_layers(demo: dict[str, pd.DataFrame]) -> None:
    again = build_demo(seed=2014, n_parcels=N)
    for name in DEMO_LAYERS:
        assert digest(again[name]) == digest(demo[name]), name


def test_other_seed_gives_another_county(demo: dict[str, pd.DataFrame]) -> None:
    other = build_demo(seed=2015, n_parcels=N)
    assert digest(other["county"]) == digest(demo["county"])  # the real boundary
    for name in ("towns", "parcels", "plan_zones", "stock_land", "projects", "linkage_plots"):
        assert digest(other[name]) != digest(demo[name]), name


# --------------------------------------------------------------------------- contract


def test_every_demo_layer_is_returned(demo: dict[str, pd.DataFrame]) -> None:
    expected = [
        n
        for n in LAYERS
        if n not in ("allocation_runs", "allocations", "validation_errors", "ledger_chain")
    ]
    assert list(demo) == expected == list(DEMO_LAYERS)


@pytest.mark.parametrize("name", DEMO_LAYERS)
def test_columns_and_dtypes_follow_the_schema(demo: dict[str, pd.DataFrame], name: str) -> None:
    lyr = LAYERS[name]
    frame = demo[name]
    extra = ["geometry"] if lyr.geometry else []
    assert list(frame.columns) == [*lyr.column_names, *extra]
    for col in lyr.columns:
        assert str(frame[col.name].dtype) == CANONICAL[col.type], (name, col.name)
        if not col.nullable:
            assert frame[col.name].notna().all(), (name, col.name)
        if col.codes is not None:
            assert set(frame[col.name].dropna()) <= set(col.codes), (name, col.name)
        values = frame[col.name].dropna()
        if col.minimum is not None and len(values):
            assert values.min() >= col.minimum, (name, col.name)
        if col.maximum is not None and len(values):
            assert values.max() <= col.maximum, (name, col.name)
    assert frame[lyr.id_column].is_unique
    for col in lyr.columns:
        if col.unique:
            assert frame[col.name].is_unique, (name, col.name)


@pytest.mark.parametrize("name", [n for n in DEMO_LAYERS if LAYERS[n].geometry])
def test_geometries_are_valid_multipolygons_in_cgcs2000(
    demo: dict[str, pd.DataFrame], name: str
) -> None:
    frame = demo[name]
    assert frame.crs.to_epsg() == 4490
    geoms = frame.geometry.values
    if name == "projects":  # an unfixed site has an empty geometry
        fixed = frame["site_fixed"].to_numpy()
        assert shapely.is_empty(geoms[~fixed]).all()
        geoms = geoms[fixed]
    assert (shapely.get_type_id(geoms) == 6).all()
    assert shapely.is_valid(geoms).all()
    assert not shapely.is_empty(geoms).any()
    assert not shapely.has_z(geoms).any()


@pytest.mark.parametrize("name", [n for n in DEMO_LAYERS if LAYERS[n].geometry])
def test_geometries_stay_valid_when_reprojected(demo: dict[str, pd.DataFrame], name: str) -> None:
    # users overlay in a Gauss-Kruger zone: no near-degenerate shapes that break there
    geoms = demo[name].to_crs(4547).geometry.values
    present = ~shapely.is_empty(geoms)
    assert shapely.is_valid(geoms[present]).all()


def test_workspace_accepts_every_layer(demo: dict[str, pd.DataFrame]) -> None:
    workspace = pytest.importorskip("landquota.store.workspace")
    for name in DEMO_LAYERS:
        workspace.prepare_frame(LAYERS[name], demo[name], source="demo")


def test_references_hold(demo: dict[str, pd.DataFrame]) -> None:
    plots, areas = demo["linkage_plots"], demo["linkage_areas"]
    assert set(plots["linkage_id"]) <= set(areas["linkage_id"])
    towns = set(demo["towns"]["name"])
    for name in ("parcels", "stock_land", "linkage_areas", "projects"):
        assert set(demo[name]["town"].dropna()) <= towns, name


# --------------------------------------------------------------------------- geography


def test_county_is_the_real_boundary(demo: dict[str, pd.DataFrame]) -> None:
    county = demo["county"]
    assert county.loc[0, "admin_code"] == "441823"
    assert county.loc[0, "name"] == "阳山县"
    assert shapely.equals_exact(county.geometry.iloc[0], county_boundary(), tolerance=0)
    # published 3,330 km²; the web-map outline gives about 3,324 km² (ellipsoidal)
    from landquota.rules.areas import ellipsoidal_area

    area_km2 = float(ellipsoidal_area(county.geometry).sum()) / 1e6
    assert 3_300 < area_km2 < 3_350


@pytest.mark.parametrize(
    ("name", "tolerance"), [("towns", 1e-6), ("parcels", 1e-4), ("plan_zones", 1e-6)]
)
def test_partitions_cover_the_county(
    demo: dict[str, pd.DataFrame], name: str, tolerance: float
) -> None:
    # Each layer tiles the county: the areas add up to the county's (slivers
    # under 1 m² dropped from patches) and no two features overlap.
    from landquota.rules.areas import ellipsoidal_area

    county = float(ellipsoidal_area(demo["county"].geometry).sum())
    parts = ellipsoidal_area(demo[name].geometry)
    assert abs(parts.sum() - county) / county < tolerance
    union = shapely.union_all(demo[name].geometry.values)
    assert abs(float(ellipsoidal_area([union])[0]) - parts.sum()) / county < tolerance


def test_towns_are_synthetic(demo: dict[str, pd.DataFrame]) -> None:
    real = {
        "阳城镇",
        "七拱镇",
        "太平镇",
        "杜步镇",
        "小江镇",
        "青莲镇",
        "江英镇",
        "岭背镇",
        "黄坌镇",
        "黎埠镇",
        "大崀镇",
        "杨梅镇",
        "秤架瑶族乡",
    }
    towns = demo["towns"]
    assert list(towns["name"]) == list(DEMO_TOWN_NAMES)
    assert len(towns) == 13
    assert not set(towns["name"]) & real


# --------------------------------------------------------------------------- parcels


def test_parcel_count_and_ids(demo: dict[str, pd.DataFrame]) -> None:
    p = demo["parcels"]
    # n seeds, a few more from cutting at town borders and the burned-in linkage plots
    assert N <= len(p) <= 1.15 * N
    assert p["parcel_id"].str.fullmatch(r"P\d{7}").all()
    assert p["parcel_id"].iloc[0] == "P0000001"


def test_parcel_codes_are_known(demo: dict[str, pd.DataFrame]) -> None:
    codes = set(demo["parcels"]["land_class"])
    assert codes <= set(LAND_CLASSES)
    assert codes == set(LAND_CLASS_SHARES)


def test_parcel_areas(demo: dict[str, pd.DataFrame]) -> None:
    from landquota.rules.areas import ellipsoidal_area

    p = demo["parcels"]
    # R1: TBMJ is the ellipsoidal area of the patch
    np.testing.assert_allclose(p["gross_m2"], ellipsoidal_area(p.geometry), rtol=1e-9)
    # R2: TBDLMJ = TBMJ - KCMJ
    np.testing.assert_allclose(p["net_m2"], p["gross_m2"] - p["deduction_m2"], rtol=1e-12)
    cult = p["land_class"].isin(["0101", "0102", "0103"])
    ratio = p.loc[cult, "deduction_m2"] / p.loc[cult, "gross_m2"]
    assert ratio.between(0.049, 0.121).all()  # ridges take 5-12 %
    assert (p.loc[~cult, "deduction_m2"] == 0).all()
    assert p.loc[cult, "grain_kg_per_m2"].gt(0).all()
    assert p.loc[~cult, "grain_kg_per_m2"].isna().all()


@pytest.mark.parametrize(
    ("groups", "low", "high"),
    [
        (("02", "03", "04"), 0.88, 0.915),  # nine parts mountain
        (("11",), 0.045, 0.055),  # half water
        (("01", "05", "06", "07", "08", "09", "10"), 0.045, 0.055),  # half field (and towns)
        (("01",), 0.025, 0.037),
    ],
)
def test_land_class_mix(
    demo: dict[str, pd.DataFrame], groups: tuple[str, ...], low: float, high: float
) -> None:
    p = demo["parcels"]
    share = p.loc[p["land_class"].str[:2].isin(groups), "gross_m2"].sum() / p["gross_m2"].sum()
    assert low <= share <= high


def test_paddy_lies_in_the_valleys_near_towns(demo: dict[str, pd.DataFrame]) -> None:
    # Paddy hugs the rivers and gathers round the towns; forest covers the mountains.
    p = demo["parcels"].to_crs(4547)
    z = demo["plan_zones"].to_crs(4547)
    centroids = p.geometry.centroid.values
    paddy = (p["land_class"] == "0101").to_numpy()
    forest = (p["land_class"] == "0301").to_numpy()
    river = shapely.union_all(p.loc[p["land_class"] == "1101"].geometry.values)
    d = shapely.distance(centroids, river)
    assert d[paddy].mean() < 0.3 * d[forest].mean()
    # within 4 km of a town's allowed zone: at least 1.5 times the paddy share
    # that a random spread over the county would put there
    near = shapely.buffer(
        shapely.union_all(z.loc[z["zone_type"] == "allowed"].geometry.values), 4_000
    )
    county = shapely.union_all(z.geometry.values)
    paddy_geom = shapely.union_all(p.loc[paddy].geometry.values)
    paddy_near = shapely.area(shapely.intersection(paddy_geom, near)) / shapely.area(paddy_geom)
    county_near = shapely.area(shapely.intersection(county, near)) / shapely.area(county)
    assert paddy_near > 1.5 * county_near


# --------------------------------------------------------------------------- plan and lines


def test_zone_types_and_control_kinds(demo: dict[str, pd.DataFrame]) -> None:
    assert set(demo["plan_zones"]["zone_type"]) == {
        "allowed",
        "conditional",
        "restricted",
        "prohibited",
    }
    assert set(demo["control_lines"]["kind"]) == {"basic_farmland", "eco_redline", "urban_boundary"}
    assert (demo["plan_zones"]["plan_version"] == DEMO_PLAN_VERSION).all()
    assert (demo["control_lines"]["plan_version"] == DEMO_PLAN_VERSION).all()


def test_basic_farmland_covers_most_cultivated_land(demo: dict[str, pd.DataFrame]) -> None:
    p, lines = demo["parcels"], demo["control_lines"]
    bf = lines[lines["kind"] == "basic_farmland"]
    cult = shapely.union_all(p[p["land_class"].isin(["0101", "0102", "0103"])].geometry.values)
    covered = shapely.area(shapely.intersection(shapely.union_all(bf.geometry.values), cult))
    assert covered / shapely.area(cult) >= 0.80
    # paddy_m2 is filled for farmland and only there (R16 quality)
    assert bf["paddy_m2"].ge(0).all() and bf["paddy_m2"].sum() > 0
    assert lines.loc[lines["kind"] != "basic_farmland", "paddy_m2"].isna().all()
    # the paddy part cannot exceed the paddy net area of the county (R2)
    assert bf["paddy_m2"].sum() <= p.loc[p["land_class"] == "0101", "net_m2"].sum()


def test_prohibited_zones_lie_in_the_eco_red_line(demo: dict[str, pd.DataFrame]) -> None:
    z, lines = demo["plan_zones"], demo["control_lines"]
    prohibited = shapely.union_all(z.loc[z["zone_type"] == "prohibited"].geometry.values)
    eco = shapely.union_all(lines.loc[lines["kind"] == "eco_redline"].geometry.values)
    assert shapely.area(shapely.difference(prohibited, eco)) < 1e-6 * shapely.area(prohibited)


# --------------------------------------------------------------------------- projects


def test_published_portfolio_figures(demo: dict[str, pd.DataFrame]) -> None:
    pr = demo["projects"]
    assert len(pr) == 78
    # exact sums in whole yuan: 2.935 billion planned, 317 million (10.8 %) completed
    assert int(pr["annual_plan_yuan"].sum()) == 2_935_000_000
    assert int(pr["completed_yuan"].sum()) == 317_000_000
    assert (pr["annual_plan_yuan"] % 1 == 0).all() and (pr["completed_yuan"] % 1 == 0).all()
    assert round(317_000_000 / 2_935_000_000, 3) == 0.108
    assert (pr["completed_yuan"] <= pr["annual_plan_yuan"]).all()
    assert (pr.loc[pr["status"] == "preparatory", "completed_yuan"] == 0).all()
    done = pr["status"] == "completed"
    assert (pr.loc[done, "completed_yuan"] == pr.loc[done, "annual_plan_yuan"]).all()


def test_project_levels_statuses_and_staff(demo: dict[str, pd.DataFrame]) -> None:
    pr = demo["projects"]
    counts = pr["level"].value_counts()
    assert counts["national"] < counts["provincial"] < counts["county"]
    assert counts["city"] < counts["county"]
    assert set(pr["status"]) == {"preparatory", "new_start", "continuing", "completed"}
    # the staff columns hold staff ids since schema v2 (issue 14); the people are in `staff`
    staff = demo["staff"].set_index("staff_id")
    for col in ("county_leader", "town_cadre", "dept_cadre"):
        assert pr[col].notna().all() and pr[col].isin(staff.index).all()
        assert (staff.loc[pr[col], "role"] == col).all()
        assert staff.loc[pr[col], "name"].str.len().between(2, 3).all()
    assert pr["name"].is_unique
    assert pr["start_date"].notna().all()


def test_project_sites_and_flags(demo: dict[str, pd.DataFrame]) -> None:
    pr = demo["projects"]
    fixed = pr["site_fixed"]
    assert 30 <= fixed.sum() <= 70 and (~fixed).sum() >= 10
    assert pr.loc[~fixed, "demand_m2"].gt(0).all()
    assert pr.loc[fixed, "demand_m2"].isna().all()
    ph = pr["phaseable"]
    assert ph.any() and pr.loc[ph, "min_fraction"].between(0.05, 1).all()
    assert pr.loc[~ph, "min_fraction"].isna().all()
    exc = pr[pr["national_exception"]]
    assert 1 <= len(exc) <= 3 and (exc["level"] == "national").all()
    from landquota.rules.areas import ellipsoidal_area

    mu = ellipsoidal_area(pr.loc[fixed].geometry) / (10_000 / 15)
    assert mu.min() >= 5 and mu.max() <= 2_000


def _hits(site: shapely.Geometry, target: shapely.Geometry) -> bool:
    return bool(shapely.area(shapely.intersection(site, target)) > 1e-10)


def test_every_compliance_rule_fires(demo: dict[str, pd.DataFrame]) -> None:
    # R13-R15: some fixed sites touch each protected layer; most sit in the allowed zone.
    pr = demo["projects"][demo["projects"]["site_fixed"]]
    z, lines = demo["plan_zones"], demo["control_lines"]
    layers = {
        k: shapely.union_all(z.loc[z["zone_type"] == k].geometry.values)
        for k in set(z["zone_type"])
    }
    layers |= {
        k: shapely.union_all(lines.loc[lines["kind"] == k].geometry.values)
        for k in set(lines["kind"])
    }
    hits = {k: [_hits(g, geom) for g in pr.geometry.values] for k, geom in layers.items()}
    bf = np.array(hits["basic_farmland"])
    exc = pr["national_exception"].to_numpy()
    assert (bf & exc).any(), "a national project with the R13 exception on basic farmland"
    assert (bf & ~exc).any(), "a project blocked by basic farmland (R13)"
    for k in ("eco_redline", "prohibited", "restricted", "conditional"):
        assert any(hits[k]), k
    clean = ~np.any(
        [
            hits[k]
            for k in ("basic_farmland", "eco_redline", "prohibited", "restricted", "conditional")
        ],
        axis=0,
    )
    assert clean.sum() >= 20  # wholly in the allowed zone


def test_some_unfixed_projects_match_available_stock(demo: dict[str, pd.DataFrame]) -> None:
    from landquota.rules.areas import ellipsoidal_area

    s, pr = demo["stock_land"], demo["projects"]
    lapsed = (
        (s["kind"] == "approved_unsupplied")
        & ~s["land_used"]
        & (s["approval_date"] < pd.Timestamp(DEMO_AS_OF) - pd.DateOffset(years=2))
    )
    reclaimed = s["disposal_method"].isin(["free_reclamation", "paid_reclamation"])
    avail = s[lapsed | reclaimed].assign(area=lambda f: ellipsoidal_area(f.geometry))
    unfixed = pr[~pr["site_fixed"]]
    matches = 0
    for r in unfixed.itertuples():
        ok = avail[(avail["planned_use"] == r.planned_use) & (avail["area"] >= r.demand_m2)]
        matches += len(ok) > 0
    assert matches >= 2
    assert matches < len(unfixed)  # and others find no stock


# --------------------------------------------------------------------------- stock land


def test_unsupplied_cohorts(demo: dict[str, pd.DataFrame]) -> None:
    from landquota.rules.areas import ellipsoidal_area

    s = demo["stock_land"]
    au = s[s["kind"] == "approved_unsupplied"]
    assert set(au["approval_date"].dt.year) == set(range(2009, 2015))
    ha = ellipsoidal_area(au.geometry).sum() / 1e4
    assert 100 <= ha <= 400
    # R9: some lapsed (older than 2 years, nothing done), some old ones kept alive
    old = au["approval_date"] < pd.Timestamp(DEMO_AS_OF) - pd.DateOffset(years=2)
    assert (old & ~au["land_used"]).any() and (old & au["land_used"]).any()
    assert au["supply_date"].isna().all()


def _idle(s: pd.DataFrame) -> pd.Series:
    # R10 by hand, as of 2014-04-30
    t = pd.Timestamp(DEMO_AS_OF)
    year = pd.DateOffset(years=1)
    started = s["actual_start_date"].notna() & (s["actual_start_date"] <= t)
    not_started = ~started & (s["agreed_start_date"] + year <= t)
    low = (s["developed_ratio"] < 1 / 3) | (s["invested_ratio"] < 0.25)
    suspended = started & (s["suspended_since"] + year <= t) & low
    return (s["kind"] == "supplied") & (not_started | suspended)


def test_idle_land(demo: dict[str, pd.DataFrame]) -> None:
    from landquota.rules.areas import ellipsoidal_area

    s = demo["stock_land"]
    idle = _idle(s) | (s["disposal_status"] != "none")
    assert 8 <= idle.sum() <= 25
    ha = ellipsoidal_area(s.loc[idle].geometry).sum() / 1e4
    assert 20 <= ha <= 80
    causes = s.loc[idle, "cause"].value_counts()
    assert abs(causes["government"] - causes["enterprise"]) <= 2  # about half each
    assert (s.loc[~idle, "cause"] == "none").all()
    # both R10 branches, and a long-suspended parcel that is developed enough (not idle)
    sup = s[s["kind"] == "supplied"]
    assert (_idle(sup) & sup["actual_start_date"].isna()).any()
    assert (_idle(sup) & sup["suspended_since"].notna()).any()
    assert (~_idle(sup) & sup["suspended_since"].notna()).any()
    # R11: enterprise land with a price, some idle two years or more
    ent = s[idle & (s["cause"] == "enterprise")]
    assert ent["land_price_yuan"].gt(0).all()
    since = ent["suspended_since"].fillna(ent["agreed_start_date"])
    assert (since + pd.DateOffset(years=2) <= pd.Timestamp(DEMO_AS_OF)).any()


def test_disposal_cases(demo: dict[str, pd.DataFrame]) -> None:
    s = demo["stock_land"]
    methods = set(s["disposal_method"])
    from landquota.store.schema import DISPOSAL_METHODS

    assert methods == set(DISPOSAL_METHODS)
    closing = {"construction_started", "free_reclamation", "paid_reclamation", "swap"}
    # R12: only a closing method closes a case; an extension leaves it open
    assert (s.loc[s["disposal_method"].isin(closing), "disposal_status"] == "closed").all()
    assert (s.loc[s["disposal_method"] == "extension", "disposal_status"] == "open").all()
    assert (s.loc[~s["disposal_method"].isin(closing), "disposal_status"] != "closed").all()
    decided = s["disposal_method"] != "none"
    assert s.loc[decided, "disposal_date"].notna().all()
    assert (s.loc[decided, "disposal_date"] <= pd.Timestamp(DEMO_AS_OF)).all()


# --------------------------------------------------------------------------- linkage


def test_linkage_areas(demo: dict[str, pd.DataFrame]) -> None:
    from landquota.rules.areas import ellipsoidal_area

    a, plots = demo["linkage_areas"], demo["linkage_plots"]
    assert 4 <= len(a) <= 6
    assert set(a["acceptance"]) == {"pending", "passed", "failed"}
    assert a.loc[a["acceptance"] != "pending", "acceptance_date"].notna().all()
    assert a.loc[a["acceptance"] == "pending", "acceptance_date"].isna().all()
    plots = plots.assign(area=ellipsoidal_area(plots.geometry))
    demo_ = plots[plots["role"] == "demolition"]
    cons = plots[plots["role"] == "construction"]
    assert cons[["reclaimed_m2", "reclaimed_cultivated_m2"]].isna().all().all()
    rec = demo_["reclaimed_m2"].notna()
    np.testing.assert_allclose(demo_.loc[rec, "reclaimed_m2"], demo_.loc[rec, "area"])
    assert (demo_.loc[rec, "reclaimed_cultivated_m2"] <= demo_.loc[rec, "reclaimed_m2"]).all()
    reclaimed = demo_.groupby("linkage_id")["reclaimed_m2"].sum()
    built = cons.groupby("linkage_id")["area"].sum()
    summary = (
        a.set_index("linkage_id")
        .assign(reclaimed=reclaimed, built=built)
        .fillna({"reclaimed": 0.0, "built": 0.0})
    )
    # R7: exactly one area builds more than it reclaimed
    assert (summary["built"] > summary["reclaimed"]).sum() == 1
    # R8: one area is past its 3 years with turnover quota not returned
    due = summary["approval_date"] + pd.DateOffset(years=3) < pd.Timestamp(DEMO_AS_OF)
    assert (
        due
        & (summary["reclaimed"] < summary["turnover_quota_m2"])
        & (summary["acceptance"] == "pending")
    ).sum() == 1
    # 20-60 ha per area: all demolition plots (reclaimed or not) and the construction plots
    total_ha = (plots.groupby("linkage_id")["area"].sum()) / 1e4
    assert total_ha.between(15, 60).all()


def test_demolition_plots_are_in_the_survey(demo: dict[str, pd.DataFrame]) -> None:
    # Unreclaimed demolition plots are old homesteads (0702) in the survey;
    # reclaimed ones show as the farmland they became.
    p = demo["parcels"]
    plots = demo["linkage_plots"]
    d = plots[plots["role"] == "demolition"]
    wkb = set(shapely.to_wkb(p.geometry.values))
    codes = dict(zip(shapely.to_wkb(p.geometry.values), p["land_class"], strict=True))
    for g, rec in zip(d.geometry.values, d["reclaimed_m2"].notna(), strict=True):
        key = shapely.to_wkb(g)
        assert key in wkb
        assert codes[key] in (("0101", "0103") if rec else ("0702",))


# --------------------------------------------------------------------------- ledger


def test_opening_ledger(demo: dict[str, pd.DataFrame]) -> None:
    led = demo["quota_ledger"]
    assert set(led["pool"]) == {
        "new_construction",
        "linkage_surplus",
        "comp_area",
        "comp_paddy",
        "comp_grain",
    }
    assert led["entry_id"].str.fullmatch(r"E\d{6}").all()
    assert (led["amount"] > 0).all()
    assert (led["entered_by"] == "landquota-demo").all()
    assert led["entered_at"].nunique() == 1
    # R5: linkage surplus only from the accepted area, sourced by its id
    a = demo["linkage_areas"]
    passed = set(a.loc[a["acceptance"] == "passed", "linkage_id"])
    assert set(led.loc[led["pool"] == "linkage_surplus", "source"]) == passed
    # annual new-construction quota within 40-150 ha, and the county is short of it
    quota_ha = led.loc[led["pool"] == "new_construction", "amount"].sum() / 1e4
    assert 40 <= quota_ha <= 151
    pr = demo["projects"]
    from landquota.rules.areas import ellipsoidal_area

    demand_ha = (
        ellipsoidal_area(pr.loc[pr["site_fixed"]].geometry).sum() + pr["demand_m2"].sum()
    ) / 1e4
    assert quota_ha < 0.6 * demand_ha


def test_linkage_credit_matches_linkage_review(demo: dict[str, pd.DataFrame]) -> None:
    linkage = pytest.importorskip("landquota.rules.linkage")
    new = linkage.linkage_credits(
        linkage.linkage_review(
            demo["linkage_areas"], demo["linkage_plots"], demo["parcels"], as_of=DEMO_AS_OF
        ),
        demo["quota_ledger"],
        as_of=DEMO_AS_OF,
    )
    assert len(new) == 0  # the opening ledger already holds the accepted surplus


# --------------------------------------------------------------------------- validation


def _findings(layers: dict[str, pd.DataFrame]) -> pd.DataFrame:
    from landquota.intake.validate import validate_frames

    return validate_frames(layers, checked_at=pd.Timestamp("2014-04-30T00:00:00Z"))


def _assert_allocatable(found: pd.DataFrame) -> None:
    # `landquota allocate` refuses a workspace with blocking findings; LQ-005 (a
    # part of more than 1 m² outside the county) means the clip went wrong.
    shown = found[["rule", "severity", "layer", "feature_id", "message"]].to_string()
    assert not (found["severity"] == "blocking").any(), shown
    assert not (found["rule"] == "LQ-005").any(), shown


def test_default_demo_passes_validation(
    default_build: tuple[dict[str, pd.DataFrame], float],
) -> None:
    layers, _ = default_build
    found = _findings(layers)
    _assert_allocatable(found)
    # nor any warning: TBMJ is the ellipsoidal area (LQ-011), every linkage area
    # has plots (LQ-015), the county boundary is there (LQ-014)
    assert found.empty, found[["rule", "layer", "feature_id", "message"]].to_string()


@pytest.mark.parametrize("seed", [1, 3, 2015])
def test_other_seeds_pass_validation(seed: int) -> None:
    _assert_allocatable(_findings(build_demo(seed=seed, n_parcels=2_000)))


def test_small_demo_passes_validation(demo: dict[str, pd.DataFrame]) -> None:
    _assert_allocatable(_findings(demo))


def test_clip_keeps_features_inside_the_county() -> None:
    from landquota.demo.base import _clip

    # a 1° × 1° county; one feature inside, one sticking out over its corner
    county = shapely.box(112.0, 24.0, 113.0, 25.0)
    inside = shapely.MultiPolygon([shapely.box(112.1, 24.1, 112.2, 24.2)])
    corner = shapely.MultiPolygon([shapely.box(112.9, 24.9, 113.1, 25.1)])
    out = _clip([inside, corner, None], county)
    assert out[0] is inside  # covered: left untouched
    assert out[2] is None
    assert shapely.covers(county, out[1])
    # the quarter 0.1° × 0.1° inside, less the ~1e-9° inset along two sides
    assert out[1].area == pytest.approx(0.01, rel=1e-6)
    assert out[1].area < 0.01


def test_clip_leaves_no_geodesic_sliver_on_a_long_edge() -> None:
    from landquota.demo.base import _clip
    from landquota.rules.areas import ellipsoidal_area

    # County edge a-b is ~1.1 km long. A feature along it with a vertex 1e-13°
    # (~10 µm) outside its middle sticks out by a triangle a-mid-b of zero width
    # in lon/lat which, its edges read as geodesics, measures a few m² on the
    # ellipsoid (LQ-005 reports anything over 1 m²).
    a, b, c = (112.6, 24.2), (112.61, 24.205), (112.6, 24.21)
    county = shapely.Polygon([a, b, c])
    mid = (112.605 + 0.5e-13, 24.2025 - 1e-13)
    feature = shapely.MultiPolygon([shapely.Polygon([a, mid, b, (112.603, 24.205)])])
    assert not shapely.covers(county, feature)
    sliver = float(ellipsoidal_area([shapely.difference(feature, county)])[0])
    assert sliver > 1.0
    clipped = _clip([feature], county)[0]
    assert shapely.covers(county, clipped)
    assert shapely.is_empty(shapely.difference(clipped, county))


def test_snap_coverage_makes_a_partition() -> None:
    from landquota.demo.base import _snap_coverage

    # a and b meet at x = 10, but b's edge is 4 mm inside a: on the 1 cm grid both
    # are x = 10, so each keeps 10 × 10 = 100 m² and they only touch. c overlaps
    # both for real ([5, 15] × [5, 20]): the earlier ones keep what they hold, c is
    # left with [5, 15] × [10, 20] = 100 m². d's hole (2 × 2) stays a hole: 96 m².
    a = shapely.box(0.0, 0.0, 10.0, 10.0)
    b = shapely.box(9.996, 0.0, 20.0, 10.0)
    c = shapely.box(5.0, 5.0, 15.0, 20.0)
    d = shapely.difference(shapely.box(30.0, 0.0, 40.0, 10.0), shapely.box(34.0, 4.0, 36.0, 6.0))
    out = _snap_coverage([a, b, c, d, None])
    assert out[4] is None
    out = out[:4]
    assert list(shapely.area(out)) == pytest.approx([100.0, 100.0, 100.0, 96.0], abs=1e-9)
    assert (shapely.get_type_id(out) == 6).all()
    assert shapely.equals(out[2], shapely.box(5.0, 10.0, 15.0, 20.0))
    # a partition: the union has the sum of the areas
    assert shapely.area(shapely.union_all(out)) == pytest.approx(396.0, abs=1e-9)


# --------------------------------------------------------------------------- parameters


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"seed": -1}, "seed=-1"),
        ({"seed": 1.5}, "seed=1.5"),
        ({"seed": True}, "seed=True"),
        ({"n_parcels": 10}, "n_parcels=10"),
        ({"n_parcels": 10_000_000}, "n_parcels=10000000"),
        ({"n_parcels": "50000"}, "n_parcels='50000'"),
    ],
)
def test_bad_parameters(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ParameterError, match=match):
        build_demo(**kwargs)  # type: ignore[arg-type]


def test_default_size_builds_quickly(default_build: tuple[dict[str, pd.DataFrame], float]) -> None:
    layers, elapsed = default_build
    assert 45_000 <= len(layers["parcels"]) <= 57_500
    assert elapsed < 20.0


def test_progress_goes_to_stderr(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    # bars are drawn on terminals only (tqdm disable=None); pretend stderr is one
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    build_demo(seed=1, n_parcels=2_000, progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "demo county" in captured.err


def test_demo_workspace_writes_and_keeps(tmp_path: Path) -> None:
    from landquota.demo.build import demo_workspace

    target = tmp_path / "demo.gpkg"
    with demo_workspace(target, seed=3, n_parcels=2_000) as ws:
        counts = ws.layer_counts()
        projects = ws.read_layer("projects")
    assert counts["projects"] == 78 and counts["parcels"] >= 2_000
    assert int(projects["annual_plan_yuan"].sum()) == 2_935_000_000
    # without force an existing workspace is kept as it is (another seed writes nothing)
    with demo_workspace(target, seed=4, n_parcels=2_000) as ws:
        again = ws.read_layer("projects")
    assert list(again["name"]) == list(projects["name"])
    with demo_workspace(target, seed=4, n_parcels=2_000, force=True) as ws:
        rebuilt = ws.read_layer("projects")
    assert list(rebuilt["name"]) != list(projects["name"])

"""Write the example notebooks from the cells below, without outputs (kernel python3).

Run ``python notebooks/make_notebooks.py`` after editing a cell here; the
``.ipynb`` files are generated and stored without outputs, and
``tests/test_notebooks.py`` executes them.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).parent

SETUP = """\
import os
import tempfile
from pathlib import Path

import pandas as pd

from landquota.demo.build import DEMO_AS_OF, demo_workspace
from landquota.store.api import open_workspace

# The demo county as a GeoPackage, built once. 5,000 survey patches keep each notebook
# well under a minute; `landquota demo` builds the full 50,000-patch county.
# LANDQUOTA_NOTEBOOK_DB / LANDQUOTA_NOTEBOOK_OUT choose other places (the tests do).
DB = Path(
    os.environ.get("LANDQUOTA_NOTEBOOK_DB")
    or Path(tempfile.gettempdir()) / "landquota-notebooks" / "yangshan_demo.gpkg"
)
OUT = Path(os.environ.get("LANDQUOTA_NOTEBOOK_OUT") or DB.parent)
DB.parent.mkdir(parents=True, exist_ok=True)
OUT.mkdir(parents=True, exist_ok=True)
if not DB.exists():
    with demo_workspace(DB, n_parcels=5_000):
        pass
ws = open_workspace(DB)
AS_OF = DEMO_AS_OF  # 2014-04-30: four months into the year (R17)
pd.set_option("display.max_columns", 30)
ws"""

MAP_LAYERS = '''\
def layers(*names):
    """Read workspace layers by name, for build_map."""
    return {name: ws.read_layer(name) for name in names}'''


def quickstart() -> list[nbformat.NotebookNode]:
    return [
        new_markdown_cell(
            "# 01 · Quickstart: the demo county\n\n"
            "Open the demo workspace (a synthetic county inside the real outline of Yangshan, "
            "阳山县; **everything inside the boundary is made up**), look at its layers and "
            "its quota ledger, and draw the county map inline."
        ),
        new_code_cell(SETUP),
        new_markdown_cell(
            "## The workspace at a glance\n\nRow counts of every layer and every pool's "
            "balance (m², ha and mu; grain in kg)."
        ),
        new_code_cell(
            "from landquota.outputs.summary import workspace_summary\n\nworkspace_summary(ws, as_of=AS_OF)"
        ),
        new_markdown_cell(
            "## Layers\n\nEvery layer reads as a GeoDataFrame in EPSG:4490 "
            "(`ws.read_layer`). The key projects:"
        ),
        new_code_cell(
            'projects = ws.read_layer("projects")\n'
            'projects[["project_id", "name", "level", "score", "planned_use", "town", '
            '"site_fixed", "annual_plan_yuan", "completed_yuan"]].head(10)'
        ),
        new_code_cell(
            "# R17: 10.8 % of the annual plan completed against 4/12 = 33.3 % of the year\n"
            'done = projects["completed_yuan"].sum() / projects["annual_plan_yuan"].sum()\n'
            'print(f"{len(projects)} key projects, {done:.1%} of the annual plan completed '
            'by {AS_OF}")\n'
            'projects.groupby("level")["annual_plan_yuan"].agg(["count", "sum"])'
        ),
        new_markdown_cell(
            "The survey patches by broad category (三大类), with ellipsoidal areas (R1) and "
            "net cultivated areas (R2):"
        ),
        new_code_cell(
            "from landquota.rules.areas import ellipsoidal_area\n"
            "from landquota.rules.landclasses import category_of\n\n"
            'parcels = ws.read_layer("parcels")\n'
            'parcels["category"] = category_of(parcels["land_class"])\n'
            'parcels["area_ha"] = ellipsoidal_area(parcels.geometry) / 10_000\n'
            'parcels.groupby("category")["area_ha"].sum().round(1)'
        ),
        new_markdown_cell("Plan zones (R15) and control lines (R13):"),
        new_code_cell(
            'zones = ws.read_layer("plan_zones")\n'
            'lines = ws.read_layer("control_lines")\n'
            'zones["area_ha"] = ellipsoidal_area(zones.geometry) / 10_000\n'
            'lines["area_ha"] = ellipsoidal_area(lines.geometry) / 10_000\n'
            'display(zones.groupby("zone_type")["area_ha"].sum().round(1))\n'
            'lines.groupby("kind")["area_ha"].sum().round(1)'
        ),
        new_markdown_cell(
            "## The quota ledger\n\nAppend-only: a balance is the sum of a pool's entries "
            "(R6). The opening entries of the demo:"
        ),
        new_code_cell(
            'ledger = ws.read_layer("quota_ledger")\n'
            'ledger[["entry_id", "pool", "kind", "amount", "year", "effective_date", "source"]]'
        ),
        new_code_cell(
            "from landquota.rules.ledger import available_balances\n\n"
            "# What a run may use on 30 April 2014 (plan quota carried over for two years)\n"
            "available_balances(ledger, as_of=AS_OF)"
        ),
        new_markdown_cell(
            "## The map\n\nLand use, plan zones, control lines, stock land, linkage plots and "
            "key projects. It is offline (no basemap): Leaflet is inlined."
        ),
        new_code_cell(
            "from landquota.outputs.maps import build_map\n\n\n" + MAP_LAYERS + "\n\n\n"
            "county_map = build_map(\n"
            '    layers("county", "towns", "parcels", "plan_zones", "control_lines",\n'
            '           "stock_land", "linkage_areas", "linkage_plots", "projects")\n'
            ")\n"
            "county_map"
        ),
    ]


def plan_adjustment() -> list[nbformat.NotebookNode]:
    return [
        new_markdown_cell(
            "# 02 · A mid-term plan adjustment (规划调整完善)\n\n"
            "Some key projects sit in the **conditional** or **restricted** zone of the "
            "land-use master plan: they cannot be allocated before a plan adjustment (R15). "
            "Here we build an adjustment that turns their sites into allowed zone while "
            "retiring an equal area of allowed zone elsewhere, check it against R16, and "
            "see what it does to the allocation — without committing anything. Then an "
            "adjustment that fails R16, and why."
        ),
        new_code_cell(SETUP),
        new_markdown_cell(
            "## Which projects does the plan block?\n\nCompliance (R13–R15) of every fixed "
            "site. We take the projects that need only a zone change: those whose reasons "
            "are the conditional or restricted zone (or land outside every zone) and that "
            "touch no basic farmland."
        ),
        new_code_cell(
            "import geopandas as gpd\n\n"
            "from landquota.engines.api import demand_from_workspace\n"
            "from landquota.demo.build import DEMO_PLAN_VERSION\n\n"
            "demand = demand_from_workspace(ws)\n"
            "compliance = demand.compliance\n"
            'FREEABLE = {"restricted_zone", "conditional_zone_needs_adjustment", '
            '"outside_plan_zones"}\n'
            'needs = compliance[compliance["outcome"] == "needs_adjustment"]\n'
            'zone_only = needs["reasons"].map(lambda r: set(r.split(",")) <= FREEABLE)\n'
            'freeable = needs[zone_only & (needs["basic_farmland_m2"] <= 1.0)]\n'
            'freeable[["project_id", "site_m2", "conditional_m2", "restricted_m2", '
            '"reasons"]]'
        ),
        new_code_cell(
            'projects = ws.read_layer("projects").set_index("project_id")\n'
            'sites = projects.loc[freeable["project_id"], "geometry"]\n'
            "make_allowed = gpd.GeoSeries(sites.to_numpy(), crs=4490)\n"
            'print(f"{len(make_allowed)} sites, '
            "{freeable['site_m2'].sum() / 10_000:,.2f} ha to make allowed\")"
        ),
        new_markdown_cell(
            "## First attempt: only make them allowed\n\nR16 keeps the total planned "
            "construction scale: the check says by how much the allowed zone grew."
        ),
        new_code_cell(
            "from landquota.allocation.scenarios import adjusted_run\n"
            "from landquota.rules.adjustment import PlanAdjustment\n"
            "from landquota.rules.plan_totals import retirement_polygons\n\n"
            "draft = PlanAdjustment(\n"
            '    "只新增 make allowed only", make_allowed=make_allowed, '
            "plan_version=DEMO_PLAN_VERSION\n"
            ")\n"
            "draft_report = draft.check_r16(ws)\n"
            "draft_report"
        ),
        new_markdown_cell(
            "## Retire an equal area elsewhere\n\n`retirement_polygons` picks allowed zone "
            "that no project site, stock parcel or linkage plot uses, cultivated land first "
            "(retiring it raises the cultivated-land retention), and trims the last piece so "
            "the area matches to 0.01 m²."
        ),
        new_code_cell(
            'gap_m2 = float(draft_report.checks.set_index("check").loc["construction_scale", '
            '"failed_by_m2"])\n'
            "retire = retirement_polygons(ws, gap_m2, avoid=make_allowed, "
            "plan_version=DEMO_PLAN_VERSION)\n"
            "adjustment = PlanAdjustment(\n"
            '    "释放受限项目 free the blocked projects",\n'
            "    make_allowed=make_allowed,\n"
            "    retire_allowed=retire,\n"
            "    plan_version=DEMO_PLAN_VERSION,\n"
            ")\n"
            "report = adjustment.check_r16(ws)\n"
            'assert report.passed, "the adjustment must pass R16"\n'
            "report"
        ),
        new_code_cell(
            'report.checks[["check", "rule", "unit", "before", "after", "change", "passed"]]'
        ),
        new_markdown_cell(
            "## Allocation before and after\n\nBoth runs are what-if runs (`save=False`): "
            "nothing is written to the workspace and the ledger is untouched."
        ),
        new_code_cell(
            'before, after, comparison = adjusted_run(ws, adjustment, mode="greedy", '
            "as_of=AS_OF)\n"
            "comparison"
        ),
        new_code_cell("comparison.pools"),
        new_markdown_cell(
            "Save the scenario and the allocation difference: `landquota allocate --scenario "
            "FILE` runs the same scenario from the command line (`tests/test_notebooks.py` "
            "checks that it gives the same difference)."
        ),
        new_code_cell(
            'scenario_file = adjustment.to_file(OUT / "02_adjustment.gpkg")\n'
            'comparison.table().to_csv(OUT / "02_comparison.csv", index=False)\n'
            'after.table().to_csv(OUT / "02_after.csv", index=False)\n'
            "print(scenario_file)\n"
            'print(f"landquota allocate --db {DB} --mode greedy --as-of {AS_OF} '
            '--scenario {scenario_file} --out after.csv")'
        ),
        new_markdown_cell(
            "## Maps before and after\n\nThe plan zones with the adjustment applied "
            "(`adjusted_zones`), and the projects coloured by their outcome in each run."
        ),
        new_code_cell(
            "from landquota.outputs.maps import build_map\n\n\n" + MAP_LAYERS + "\n\n\n"
            'base = layers("county", "towns", "plan_zones", "control_lines", "projects")\n'
            "before_map = build_map(base, allocations=before.allocations)\n"
            "before_map"
        ),
        new_code_cell(
            'adjusted = {**base, "plan_zones": adjustment.adjusted_zones(base["plan_zones"])}\n'
            "after_map = build_map(adjusted, allocations=after.allocations)\n"
            "after_map"
        ),
        new_code_cell(
            "# The projects whose outcome changed, as a GeoDataFrame (for GIS or other maps)\n"
            "changed = comparison.to_geodataframe()\n"
            'changed[["project_id", "project_name", "outcome_before", "outcome_after", '
            '"new_quota_m2_after", "geometry"]]'
        ),
        new_markdown_cell(
            "## An adjustment that fails R16\n\nThe national expressway crosses permanent "
            "basic farmland under the R13 exception, but it also lies in the restricted zone. "
            "Making its whole site allowed zone — even with an equal area retired — takes "
            "basic farmland out of protection: R16 refuses it and says by how much."
        ),
        new_code_cell(
            'crossing = needs[needs["basic_farmland_m2"] > 1.0]\n'
            'crossing[["project_id", "site_m2", "basic_farmland_m2", "reasons"]]'
        ),
        new_code_cell(
            'extra = gpd.GeoSeries(projects.loc[crossing["project_id"], "geometry"].to_numpy(), '
            "crs=4490)\n"
            "more = pd.concat([make_allowed, extra], ignore_index=True)\n"
            'probe = PlanAdjustment("probe", make_allowed=more, plan_version=DEMO_PLAN_VERSION)\n'
            'gap = float(probe.check_r16(ws).checks.set_index("check").loc["construction_scale", '
            '"failed_by_m2"])\n'
            "bad = PlanAdjustment(\n"
            '    "占用基本农田 over basic farmland",\n'
            "    make_allowed=more,\n"
            "    retire_allowed=retirement_polygons(ws, gap, avoid=more, "
            "plan_version=DEMO_PLAN_VERSION),\n"
            "    plan_version=DEMO_PLAN_VERSION,\n"
            ")\n"
            "bad_report = bad.check_r16(ws)\n"
            "assert not bad_report.passed\n"
            "bad_report"
        ),
        new_code_cell(
            "# Every failure with the area by which it fails\n"
            'bad_report.failures()[["check", "rule", "before", "after", "failed_by_m2", '
            '"failed_by_ha"]]'
        ),
        new_code_cell(
            "# Where it fails: the basic farmland the adjustment would take\n"
            'taken = bad_report.areas[bad_report.areas["what"] == "basic_farmland_taken"]\n'
            'display(taken[["what", "area_m2"]])\n'
            "import folium\n\n"
            "fail_map = build_map(base, allocations=before.allocations)\n"
            "folium.GeoJson(\n"
            '    taken.to_json(), name="基本农田被占 basic farmland taken",\n'
            '    style_function=lambda f: {"color": "red", "weight": 3, "fillOpacity": 0.6},\n'
            ").add_to(fail_map)\n"
            "fail_map"
        ),
        new_code_cell(
            "# A run refuses it: plan_allocation checks R16 first\n"
            "from landquota.errors import AllocationError\n"
            "from landquota.allocation.runs import plan_allocation\n\n"
            "try:\n"
            '    plan_allocation(ws, mode="greedy", as_of=AS_OF, scenario=bad, save=False)\n'
            "except AllocationError as exc:\n"
            '    print("refused:", exc)'
        ),
    ]


def idle_land() -> list[nbformat.NotebookNode]:
    return [
        new_markdown_cell(
            "# 03 · Idle-land review as of 30 April 2014\n\n"
            "Stock land (存量土地) as of a date: idle supplied land (R10) with the idle fees "
            "due and the parcels due for reclamation without compensation (R11, R12), the "
            "approved-but-unsupplied cohorts and lapsed approvals (R9), and the stock that "
            "can be offered to key projects whose site is not fixed (存量优先)."
        ),
        new_code_cell(SETUP),
        new_code_cell(
            "from datetime import date\n\n"
            "from landquota.rules.stock import review_stock\n\n"
            "review = review_stock(ws, as_of=date(2014, 4, 30))\n"
            "review"
        ),
        new_markdown_cell("## Idle fees due (R11: 20 % of the land price after one idle year)"),
        new_code_cell(
            "idle = review.idle\n"
            'fees = idle[idle["fee_due_yuan"].fillna(0) > 0]\n'
            "print(f\"{len(fees)} parcels owe {fees['fee_due_yuan'].sum():,.0f} yuan\")\n"
            'fees[["stock_id", "status", "cause", "idle_rule", "idle_since", "days_idle", '
            '"area_m2", "fee_due_yuan"]]'
        ),
        new_markdown_cell(
            "## Parcels due for reclamation (R11: enterprise-caused, idle two years or more)"
        ),
        new_code_cell(
            'due = idle[idle["reclaim_due"].fillna(False).astype(bool)]\n'
            'due[["stock_id", "status", "cause", "days_idle", "reclaim_deadline", "area_m2", '
            '"disposal_method", "case_state"]]'
        ),
        new_markdown_cell("## Approved but unsupplied (批而未供), by approval-year cohort (R9)"),
        new_code_cell('print(f"five-year supply rate: {review.supply_rate:.1%}")\nreview.cohorts'),
        new_markdown_cell(
            "## Stock offered to projects\n\nReclaimed idle land and lapsed approvals; an "
            "allocation run (a what-if run, nothing saved) matches them to projects whose "
            "site is not fixed, by planned use and area."
        ),
        new_code_cell(
            'review.available[["stock_id", "source_status", "planned_use", "town", "area_m2"]]'
        ),
        new_code_cell(
            "from landquota.allocation.runs import plan_allocation\n\n"
            'run = plan_allocation(ws, mode="greedy", as_of=AS_OF, save=False)\n'
            "table = run.table()\n"
            'table[table["outcome"] == "stock_matched"][["project_id", "project_name", '
            '"level", "stock_id"]]'
        ),
        new_markdown_cell("## The stock on the map, coloured by review status"),
        new_code_cell(
            "from landquota.outputs.maps import build_map\n\n"
            "stock_map = build_map(\n"
            '    {name: ws.read_layer(name) for name in ("county", "towns", "stock_land", '
            '"projects")},\n'
            "    idle=review.idle,\n"
            "    allocations=run.allocations,\n"
            ")\n"
            "stock_map"
        ),
    ]


def monthly_bulletin() -> list[nbformat.NotebookNode]:
    return [
        new_markdown_cell(
            "# 04 · A month's review: the key-project bulletin of April 2014\n\n"
            "一月一通报: the monthly returns (月报) give the bulletin of any month (R17: "
            "completed ÷ annual plan against time progress = month ÷ 12), per level, town, "
            "leader and department; the projects lagging several months running; where each "
            "project's land stands (用地报批阶段) and whether the joint approval meetings "
            "(联审会议) cut approval time by a third; and which county leaders owe a visit "
            "under the half-month rule. The demo's April figures are the published ones: "
            "317,000,000 of 2,935,000,000 yuan. See docs/pipeline.md."
        ),
        new_code_cell(SETUP),
        new_markdown_cell("## The bulletin of April, from the April returns"),
        new_code_cell(
            "from landquota.outputs.monthly import monthly_review\n\n"
            'review = monthly_review(ws, month="2014-04")\n'
            "april = review.bulletin\n"
            "print(april)\n"
            "assert april.completed_yuan == 317_000_000 and april.annual_plan_yuan == 2_935_000_000\n"
            'assert f"{april.completion:.1%}" == "10.8%" and f"{april.time_progress:.1%}" == "33.3%"'
        ),
        new_code_cell("april.levels"),
        new_markdown_cell(
            "## Month by month\n\nThe same arithmetic for March reads the March returns; "
            "the change since last month is April's investment."
        ),
        new_code_cell(
            'march = monthly_review(ws, month="2014-03").bulletin\n'
            'print(f"March: {march.completed_yuan:,.0f} yuan = {march.completion:.1%} '
            'against {march.time_progress:.1%}")\n'
            'print(f"invested in April: {april.completed_yuan - march.completed_yuan:,.0f} yuan")\n'
            'april.history.pivot(index="month", columns="level", values="completion").round(3)'
        ),
        new_markdown_cell(
            "## Who is behind\n\nProjects lagging three months running or more, the towns "
            "ranked by completion, and the departments."
        ),
        new_code_cell(
            'review.lagging[["project_id", "name", "level", "town", "completion", '
            '"lagging_months", "problems", "measures", "county_leader"]].head(10)'
        ),
        new_code_cell("april.towns"),
        new_code_cell("april.departments"),
        new_markdown_cell(
            "## Where the land stands\n\nThe stage funnel on 30 April (computed from the "
            "stage dates, never stored) and the days per stage before and after the first "
            "joint meeting, against the one-third target."
        ),
        new_code_cell("review.funnel"),
        new_code_cell("review.durations"),
        new_code_cell(
            'review.overdue_approvals[["project_id", "name", "stage_zh", "days_in_stage", '
            '"target_days"]].head(10)'
        ),
        new_markdown_cell(
            "## The service staff\n\nHalf a month is 15 days: a leader who last visited on "
            "1 April is overdue from 17 April on."
        ),
        new_code_cell(
            "from datetime import date\n\n"
            "from landquota.rules.staff import staff_review\n\n"
            "lagging = april.projects.set_index(\"project_id\")[\"lagging\"]\n"
            "people = staff_review(\n"
            '    ws.read_layer("projects"), ws.read_layer("staff"), ws.read_layer("visits"),\n'
            "    as_of=date(2014, 4, 30), lagging=lagging,\n"
            ")\n"
            'people[people["role"] == "county_leader"][["name", "n_projects", "n_lagging", '
            '"n_overdue", "overdue"]]'
        ),
        new_markdown_cell(
            "## The bulletin to print and to send\n\nA workbook and an A4 PDF with the "
            "charts (`landquota bulletin --month 2014-04 --out b.xlsx --out b.pdf` does the "
            "same)."
        ),
        new_code_cell(
            "from landquota.outputs.bulletin_pdf import write_bulletin_pdf\n"
            "from landquota.outputs.monthly import write_bulletin_xlsx\n\n"
            'xlsx = write_bulletin_xlsx(review, OUT / "04_bulletin_2014-04.xlsx")\n'
            'pdf = write_bulletin_pdf(review, OUT / "04_bulletin_2014-04.pdf")\n'
            "print(xlsx, xlsx.stat().st_size)\n"
            "print(pdf, pdf.stat().st_size)"
        ),
        new_markdown_cell("## The projects on the map, coloured by approval stage"),
        new_code_cell(
            "from landquota.outputs.maps import build_map\n"
            "from landquota.outputs.stage_map import stage_info\n"
            "from landquota.rules.staff import with_staff_names\n\n"
            'layers = {name: ws.read_layer(name) for name in ("county", "towns", "projects")}\n'
            'layers["projects"] = with_staff_names(layers["projects"], ws.read_layer("staff"))\n'
            'stages = stage_info(ws.read_layer("project_stages"), as_of=AS_OF)\n'
            "build_map(layers, stages=stages)"
        ),
    ]


def write(name: str, cells: list[nbformat.NotebookNode]) -> Path:
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.metadata["language_info"] = {"name": "python"}
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"{Path(name).stem[:2]}-{i:02d}"  # stable ids: regenerating is a no-op
    nbformat.validate(nb)
    path = HERE / name
    nbformat.write(nb, path)
    return path


def main() -> None:
    paths = [
        write("01_quickstart.ipynb", quickstart()),
        write("02_plan_adjustment.ipynb", plan_adjustment()),
        write("03_idle_land_review.ipynb", idle_land()),
        write("04_monthly_bulletin.ipynb", monthly_bulletin()),
    ]
    # The cells are written compactly above; ruff gives them the house format.
    subprocess.run(["ruff", "format", "--quiet", *map(str, paths)], check=True)


if __name__ == "__main__":
    main()

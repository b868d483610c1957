"""Chinese and English display labels of every stored code: the one table per code list.

Codes are stored as short English tokens (``landquota.store.schema``); summaries, reports
and maps show them as ``中文 English``. Every module that shows a code takes its
label from here, so that a report and a map never call the same thing by two names.

Each table maps a code to ``(Chinese, English)``; :data:`POOL_LABELS` adds the
pool's unit as a third item. English labels are lower case except for proper
names ("State Council"); pass ``capitalize=True`` to :func:`label` for a legend
entry. :data:`CODE_LABELS` names the table of each code list.

Examples
--------
>>> label(LEVEL_LABELS, "county")
'县级 county'
>>> label(OUTCOME_LABELS, "partial", lang="en", capitalize=True)
'Partly funded'
>>> reason_label("basic_farmland", lang="zh")
'占用永久基本农田 (R13)'
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, Final, Literal

__all__ = [
    "ACCEPTANCE_LABELS",
    "APPROVAL_LABELS",
    "CAUSE_LABELS",
    "CHAIN_KIND_LABELS",
    "CODE_LABELS",
    "CONTROL_KIND_LABELS",
    "DISPOSAL_METHOD_LABELS",
    "DISPOSAL_STATUS_LABELS",
    "IDLE_RULE_LABELS",
    "LEDGER_KIND_LABELS",
    "LEVEL_LABELS",
    "OUTCOME_LABELS",
    "PLANNED_USE_LABELS",
    "PLOT_ROLE_LABELS",
    "POOL_LABELS",
    "PROJECT_STATUS_LABELS",
    "REASON_LABELS",
    "REASON_RULES",
    "RUN_MODE_LABELS",
    "RUN_STATUS_LABELS",
    "SEVERITY_LABELS",
    "STAFF_DUTY_LABELS",
    "STAFF_ROLE_LABELS",
    "STAGE_LABELS",
    "STOCK_KIND_LABELS",
    "STOCK_STATUS_LABELS",
    "SUPPLY_METHOD_LABELS",
    "ZONE_TYPE_LABELS",
    "Lang",
    "label",
    "label_map",
    "reason_label",
    "reasons_text",
]

Lang = Literal["both", "zh", "en"]

Labels = Mapping[str, tuple[str, str]]


def _table(items: dict[str, tuple[str, str]]) -> Labels:
    return MappingProxyType(items)


#: Project levels (``projects.level``), in R18 priority order.
LEVEL_LABELS: Final[Labels] = _table(
    {
        "national": ("国家级", "national"),
        "provincial": ("省级", "provincial"),
        "city": ("市级", "city"),
        "county": ("县级", "county"),
    }
)

#: Allocation outcomes (``allocations.outcome``).
OUTCOME_LABELS: Final[Labels] = _table(
    {
        "funded": ("已安排", "funded"),
        "partial": ("部分安排", "partly funded"),
        "stock_matched": ("存量匹配", "matched to stock land"),
        "blocked": ("不合规受阻", "blocked"),
        "unfunded": ("未安排", "unfunded"),
    }
)

#: Reason codes of ``allocations.reasons``: the compliance codes (R13, R15; see
#: ``landquota.rules.compliance.REASONS``) and the engine's own (``allocation.REASON_CODES``).
#: The rule each one enforces is in :data:`REASON_RULES`; :func:`reason_label` adds it.
REASON_LABELS: Final[Labels] = _table(
    {
        "basic_farmland": ("占用永久基本农田", "on permanent basic farmland"),
        "eco_redline": ("位于生态保护红线内", "in the ecological red line"),
        "prohibited_zone": ("位于禁止建设区", "in the prohibited zone"),
        "restricted_zone": (
            "位于限制建设区，需先调整规划",
            "in the restricted zone: plan adjustment needed",
        ),
        "conditional_zone_needs_adjustment": (
            "位于有条件建设区，需同步核减等面积允许建设区",
            "in the conditional zone: an equal area of allowed zone must be given up",
        ),
        "outside_plan_zones": ("部分位于规划管制分区之外", "partly outside the plan control zones"),
        "insufficient_new_quota": ("新增建设用地指标不足", "not enough new-construction quota"),
        "insufficient_comp_area": ("补充耕地数量指标不足", "not enough compensation area"),
        "insufficient_comp_paddy": ("补充水田指标不足", "not enough paddy compensation"),
        "insufficient_comp_grain": ("补充粮食产能指标不足", "not enough grain capacity"),
        "site_not_fixed": ("项目选址未定", "site not fixed"),
        "no_matching_stock": (
            "无用途、面积相符的存量土地",
            "no stock parcel of fitting use and area",
        ),
        "below_min_fraction": (
            "可保障比例低于最低分期比例",
            "fundable share below the project's minimum fraction",
        ),
        "outranked": ("指标优先保障了更高优先级项目", "quota went to higher-priority projects"),
        "better_total_score": (
            "指标用于总分更高的项目组合",
            "quota went to a combination of projects with a higher total score",
        ),
    }
)

#: The rule (docs/domain.md) behind each reason code, where there is one.
REASON_RULES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "basic_farmland": "R13",
        "eco_redline": "R15",
        "prohibited_zone": "R15",
        "restricted_zone": "R15",
        "conditional_zone_needs_adjustment": "R15",
        "insufficient_new_quota": "R3",
        "insufficient_comp_area": "R4",
        "insufficient_comp_paddy": "R4",
        "insufficient_comp_grain": "R4",
        "outranked": "R18",
        "better_total_score": "R18",
    }
)

#: Approval levels of land conversion (R14).
APPROVAL_LABELS: Final[Labels] = _table(
    {"province": ("省政府", "province"), "state_council": ("国务院", "State Council")}
)

#: Quota pools (``quota_ledger.pool``): (Chinese, English, unit).
POOL_LABELS: Final[Mapping[str, tuple[str, str, str]]] = MappingProxyType(
    {
        "new_construction": ("新增建设用地计划指标", "new construction-land plan quota", "m2"),
        "linkage_surplus": ("增减挂钩节余指标", "linkage surplus quota", "m2"),
        "comp_area": ("补充耕地数量指标", "farmland compensation: area", "m2"),
        "comp_paddy": ("补充水田规模指标", "farmland compensation: paddy", "m2"),
        "comp_grain": ("补充粮食产能指标", "farmland compensation: grain capacity", "kg"),
    }
)

#: Construction-control zones of the master plan (``plan_zones.zone_type``, R15).
ZONE_TYPE_LABELS: Final[Labels] = _table(
    {
        "allowed": ("允许建设区", "allowed"),
        "conditional": ("有条件建设区", "conditional"),
        "restricted": ("限制建设区", "restricted"),
        "prohibited": ("禁止建设区", "prohibited"),
    }
)

#: Protected control lines (``control_lines.kind``, R13, R15).
CONTROL_KIND_LABELS: Final[Labels] = _table(
    {
        "basic_farmland": ("永久基本农田", "permanent basic farmland"),
        "eco_redline": ("生态保护红线", "ecological red line"),
        "urban_boundary": ("城镇开发边界", "urban development boundary"),
    }
)

#: Stock land kinds (``stock_land.kind``).
STOCK_KIND_LABELS: Final[Labels] = _table(
    {
        "approved_unsupplied": ("批而未供", "approved, unsupplied"),
        "supplied": ("已供地", "supplied"),
    }
)

#: Statuses of the idle-land review (``landquota.rules.stock.STOCK_STATUSES``).
STOCK_STATUS_LABELS: Final[Labels] = _table(
    {
        "idle": ("闲置土地", "idle"),
        "not_idle": ("已供未闲置", "supplied, not idle"),
        "approved_unsupplied": ("批而未供", "approved, unsupplied"),
        "lapsed": ("批准失效", "lapsed approval (R9)"),
        "reclaimed": ("已收回", "reclaimed"),
        "swapped": ("已置换", "swapped"),
        "closed": ("已动工结案", "closed, construction started"),
        "not_yet_supplied": ("尚未供地", "not yet supplied"),
        "not_yet_approved": ("尚未批准", "not yet approved"),
    }
)

#: R10 branches (``landquota.rules.stock.IDLE_RULES``).
IDLE_RULE_LABELS: Final[Labels] = _table(
    {
        "not_started": ("满一年未动工", "not started one year after the agreed date"),
        "suspended_low_development": (
            "开发不足1/3且中止满一年",
            "under 1/3 developed, suspended 1 year",
        ),
        "suspended_low_investment": (
            "投资不足25%且中止满一年",
            "under 25 % invested, suspended 1 year",
        ),
    }
)

#: Causes of idleness (``stock_land.cause``, R11).
CAUSE_LABELS: Final[Labels] = _table(
    {
        "government": ("政府原因", "government"),
        "enterprise": ("企业原因", "enterprise"),
        "none": ("未认定", "undetermined"),
    }
)

#: Disposal methods (``stock_land.disposal_method``, R11, R12).
DISPOSAL_METHOD_LABELS: Final[Labels] = _table(
    {
        "none": ("未处置", "none"),
        "extension": ("延长动工期限", "extension"),
        "change_use": ("调整用途", "change of use"),
        "temporary_use": ("临时使用", "temporary use"),
        "paid_reclamation": ("有偿收回", "paid reclamation"),
        "free_reclamation": ("无偿收回", "free reclamation"),
        "swap": ("置换", "swap"),
        "construction_started": ("已动工", "construction started"),
    }
)

#: Disposal case statuses (``stock_land.disposal_status``, R12).
DISPOSAL_STATUS_LABELS: Final[Labels] = _table(
    {"none": ("无处置案件", "no case"), "open": ("处置中", "open"), "closed": ("已结案", "closed")}
)

#: Acceptance of linkage areas (``linkage_areas.acceptance``, R5).
ACCEPTANCE_LABELS: Final[Labels] = _table(
    {
        "pending": ("待验收", "pending"),
        "passed": ("已验收", "passed"),
        "failed": ("未通过", "failed"),
    }
)

#: Project statuses (``projects.status``).
PROJECT_STATUS_LABELS: Final[Labels] = _table(
    {
        "preparatory": ("前期", "preparatory"),
        "new_start": ("新开工", "new start"),
        "continuing": ("续建", "continuing"),
        "completed": ("竣工", "completed"),
    }
)

#: Roles of linkage plots (``linkage_plots.role``).
#: Approval stages of a key project (``project_stages.stage``), in pipeline order.
STAGE_LABELS: Final[Labels] = _table(
    {
        "pre_review": ("用地预审", "pre-review"),
        "conversion": ("农用地转用及征收报批", "conversion approval"),
        "acquisition": ("征地拆迁", "acquisition"),
        "supply": ("供地", "supply"),
        "construction": ("开工", "construction"),
    }
)

#: How land is supplied (``supply_method``).
SUPPLY_METHOD_LABELS: Final[Labels] = _table(
    {"allocation": ("划拨", "allocation"), "sale": ("出让", "sale")}
)

#: Roles of the three-level service staff (``staff.role``).
STAFF_ROLE_LABELS: Final[Labels] = _table(
    {
        "county_leader": ("县领导", "county leader"),
        "town_cadre": ("镇干部", "town cadre"),
        "dept_cadre": ("部门干部", "department cadre"),
    }
)

#: Duties of the service staff (``staff.duties``).
STAFF_DUTY_LABELS: Final[Labels] = _table(
    {
        "agent": ("代办员", "agent"),
        "informant": ("信息员", "informant"),
        "liaison": ("联络员", "liaison"),
        "supervisor": ("监督员", "supervisor"),
    }
)

#: What a link of the ledger's hash chain records (``ledger_chain.kind``).
CHAIN_KIND_LABELS: Final[Labels] = _table(
    {
        "entry": ("台账记录", "ledger entry"),
        "run": ("分配方案", "allocation run"),
        "override": ("强制恢复", "restore override"),
    }
)

#: Planned uses (``projects.planned_use``, ``stock_land.planned_use``). The column is free
#: text: a use not listed here (or already written in Chinese) is shown as it is stored.
PLANNED_USE_LABELS: Final[Labels] = _table(
    {
        "industrial": ("工业", "industrial"),
        "commercial": ("商业服务业", "commercial"),
        "residential": ("住宅", "residential"),
        "public_service": ("公共管理与公共服务", "public service"),
        "transport": ("交通运输", "transport"),
        "water": ("水利设施", "water works"),
        "energy": ("能源", "energy"),
        "tourism": ("旅游", "tourism"),
        "mining": ("采矿", "mining"),
        "special": ("特殊用地", "special use"),
    }
)

PLOT_ROLE_LABELS: Final[Labels] = _table(
    {"demolition": ("拆旧区", "demolition"), "construction": ("建新区", "new construction")}
)

#: Ledger entry kinds (``quota_ledger.kind``).
LEDGER_KIND_LABELS: Final[Labels] = _table(
    {
        "opening": ("期初结转", "opening balance"),
        "plan_issue": ("下达计划指标", "plan quota issued"),
        "linkage_credit": ("挂钩节余入账", "linkage surplus credited (R5)"),
        "comp_credit": ("补充耕地入账", "farmland compensation credited"),
        "lapse_return": ("失效批准退回", "lapsed approval returned (R9)"),
        "expiry": ("结转指标过期", "carried-over quota expired"),
        "allocation": ("分配使用", "allocation"),
        "reversal": ("冲销", "reversal"),
        "adjustment": ("调整", "adjustment"),
    }
)

#: Allocation modes (``allocation_runs.mode``).
RUN_MODE_LABELS: Final[Labels] = _table(
    {"greedy": ("按序分配", "greedy"), "optimal": ("优化分配", "optimal")}
)

#: Allocation run statuses (``allocation_runs.status``).
RUN_STATUS_LABELS: Final[Labels] = _table(
    {
        "draft": ("草案", "draft"),
        "committed": ("已提交", "committed"),
        "reverted": ("已撤销", "reverted"),
    }
)

#: Severities of validation findings (``validation_findings.severity``).
SEVERITY_LABELS: Final[Labels] = _table(
    {"blocking": ("阻断", "blocking"), "warning": ("警告", "warning")}
)

#: The labels table of each code list, by the code list's name in ``landquota.store.schema``
#: (``STOCK_STATUSES`` and ``IDLE_RULES`` are in ``landquota.rules.stock``, ``REASONS`` are the
#: reason codes of ``allocations.reasons``).
CODE_LABELS: Final[Mapping[str, Mapping[str, tuple[str, ...]]]] = MappingProxyType(
    {
        "ACCEPTANCE": ACCEPTANCE_LABELS,
        "CHAIN_KINDS": CHAIN_KIND_LABELS,
        "ALLOCATION_OUTCOMES": OUTCOME_LABELS,
        "APPROVAL_LEVELS": APPROVAL_LABELS,
        "CAUSES": CAUSE_LABELS,
        "CONTROL_KINDS": CONTROL_KIND_LABELS,
        "DISPOSAL_METHODS": DISPOSAL_METHOD_LABELS,
        "DISPOSAL_STATUSES": DISPOSAL_STATUS_LABELS,
        "IDLE_RULES": IDLE_RULE_LABELS,
        "LEDGER_KINDS": LEDGER_KIND_LABELS,
        "LEVELS": LEVEL_LABELS,
        "PLOT_ROLES": PLOT_ROLE_LABELS,
        "POOLS": POOL_LABELS,
        "PROJECT_STATUSES": PROJECT_STATUS_LABELS,
        "REASONS": REASON_LABELS,
        "RUN_MODES": RUN_MODE_LABELS,
        "RUN_STATUSES": RUN_STATUS_LABELS,
        "STAFF_DUTIES": STAFF_DUTY_LABELS,
        "STAFF_ROLES": STAFF_ROLE_LABELS,
        "STAGES": STAGE_LABELS,
        "STOCK_KINDS": STOCK_KIND_LABELS,
        "STOCK_STATUSES": STOCK_STATUS_LABELS,
        "SUPPLY_METHODS": SUPPLY_METHOD_LABELS,
        "VALIDATION_SEVERITIES": SEVERITY_LABELS,
        "ZONE_TYPES": ZONE_TYPE_LABELS,
    }
)


def label(
    table: Mapping[str, tuple[str, ...]],
    code: object,
    *,
    lang: Lang = "both",
    capitalize: bool = False,
) -> str:
    """Return the display label of *code* from *table*.

    Parameters
    ----------
    table : mapping of str to tuple
        One of this module's tables: code -> ``(Chinese, English, ...)``.
    code : object
        The stored code; compared as text.
    lang : {'both', 'zh', 'en'}, default 'both'
        ``'both'`` gives ``'中文 English'``.
    capitalize : bool, default False
        Upper-case the first letter of the English label (legend entries, titles).

    Returns
    -------
    str
        The label, or the code itself (as text) when *table* does not know it, so
        that an unexpected code is still shown rather than hidden.

    Examples
    --------
    >>> label(ZONE_TYPE_LABELS, "allowed", capitalize=True)
    '允许建设区 Allowed'
    >>> label(ZONE_TYPE_LABELS, "elsewhere")
    'elsewhere'
    """
    key = str(code)
    names = table.get(key)
    if names is None:
        return key
    zh, en = names[0], names[1]
    if capitalize:
        en = en[:1].upper() + en[1:]
    if lang == "zh":
        return zh
    if lang == "en":
        return en
    return f"{zh} {en}"


def label_map(
    table: Mapping[str, tuple[str, ...]], *, lang: Lang = "both", capitalize: bool = False
) -> dict[str, str]:
    """Return ``{code: label(table, code, ...)}`` for every code of *table*, in its order.

    Examples
    --------
    >>> label_map(ACCEPTANCE_LABELS)["passed"]
    '已验收 passed'
    """
    return {code: label(table, code, lang=lang, capitalize=capitalize) for code in table}


def reason_label(code: object, *, lang: Lang = "both") -> str:
    """Return the label of a reason code with its rule, e.g. ``'… (R13)'``.

    Unknown codes are returned as they are (see :func:`label`).

    Examples
    --------
    >>> reason_label("outranked")
    '指标优先保障了更高优先级项目 quota went to higher-priority projects (R18)'
    >>> reason_label("site_not_fixed", lang="en")
    'site not fixed'
    """
    text = label(REASON_LABELS, code, lang=lang)
    rule = REASON_RULES.get(str(code))
    return f"{text} ({rule})" if rule else text


def reasons_text(codes: Iterable[Any], *, lang: Lang = "zh", sep: str = "；") -> str:
    """Count reason codes and show each in Chinese (with its rule) and its count.

    Parameters
    ----------
    codes : iterable
        Reason codes, or comma-separated strings of them (as ``allocations.reasons``).
    lang : {'zh', 'en', 'both'}, default 'zh'
    sep : str, default '；'

    Returns
    -------
    str
        Most frequent first; ``'—'`` when there is none.
    """
    counts: Counter[str] = Counter()
    for value in codes:
        if value is None or (isinstance(value, float) and value != value) or str(value) in (
            "<NA>",
            "NaT",
        ):
            continue
        counts.update(c.strip() for c in str(value).split(",") if c.strip())
    if not counts:
        return "—"
    return sep.join(
        f"{reason_label(code, lang=lang)} ×{n}"
        for code, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    )

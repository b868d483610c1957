"""landquota: construction-land quota, stock land and key projects for a county land bureau.

The public API, flat: open a workspace, read its layers, compute demand and
compliance, review stock land and linkage swaps, allocate, and draw maps and
reports. Everything here is also what the ``landquota`` command calls.
"""

# before the imports: modules record it in runs and workspaces
__version__ = "0.1.0"

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names, for type checkers and IDEs; at run time they load on first use
    from landquota.adjustment import (
        PlanAdjustment,
        R16Report,
        ScenarioComparison,
        adjusted_run,
        check_r16,
        compare_scenarios,
        read_scenario,
        retirement_polygons,
    )
    from landquota.allocation import (
        REASON_CODES,
        AllocationResult,
        Pools,
        ProjectAllocation,
        ProjectNeed,
        StockOffer,
        allocate,
    )
    from landquota.areas import ellipsoidal_area, m2_to_ha, m2_to_mu
    from landquota.backup import export_workspace, restore_workspace
    from landquota.bulletin import Bulletin, investment_bulletin, time_progress
    from landquota.compliance import compliance_of_sites
    from landquota.demand import DemandResult, demand_from_sites, demand_from_workspace
    from landquota.demo import build_demo, demo_workspace
    from landquota.errors import LandquotaError
    from landquota.importer import ImportReport, import_layer
    from landquota.landclasses import LAND_CLASSES, category_of, land_class
    from landquota.ledger import (
        available_balances,
        balances,
        carryover_expiries,
        debit_entries,
        reversal_entries,
        statement,
    )
    from landquota.linkage import credit_linkage_surplus, linkage_credits, linkage_review
    from landquota.maps import build_map, map_workspace, save_map
    from landquota.reports import write_report
    from landquota.roles import grant_roles
    from landquota.runs import Run, commit_run, plan_allocation, read_run, revert_run
    from landquota.schema import LAYERS, SCHEMA_VERSION
    from landquota.settings import Settings, get_settings
    from landquota.stock import (
        available_stock,
        idle_review,
        return_lapsed,
        review_stock,
        unsupplied_cohorts,
    )
    from landquota.summary import workspace_summary
    from landquota.validate import ValidationReport, require_valid, validate_workspace
    from landquota.workspace import Workspace, init_workspace, open_workspace

#: where each public name lives. ``import landquota`` loads none of them, so a
#: command that imports a parcel layer does not pay for folium and the map code
#: (1.8 s of imports otherwise, longer than a small import itself).
_LAZY: dict[str, str] = {
    "PlanAdjustment": "landquota.adjustment",
    "R16Report": "landquota.adjustment",
    "ScenarioComparison": "landquota.adjustment",
    "adjusted_run": "landquota.adjustment",
    "check_r16": "landquota.adjustment",
    "compare_scenarios": "landquota.adjustment",
    "read_scenario": "landquota.adjustment",
    "retirement_polygons": "landquota.adjustment",
    "AllocationResult": "landquota.allocation",
    "Pools": "landquota.allocation",
    "ProjectAllocation": "landquota.allocation",
    "ProjectNeed": "landquota.allocation",
    "REASON_CODES": "landquota.allocation",
    "StockOffer": "landquota.allocation",
    "allocate": "landquota.allocation",
    "ellipsoidal_area": "landquota.areas",
    "m2_to_ha": "landquota.areas",
    "m2_to_mu": "landquota.areas",
    "export_workspace": "landquota.backup",
    "restore_workspace": "landquota.backup",
    "Bulletin": "landquota.bulletin",
    "investment_bulletin": "landquota.bulletin",
    "time_progress": "landquota.bulletin",
    "compliance_of_sites": "landquota.compliance",
    "DemandResult": "landquota.demand",
    "demand_from_sites": "landquota.demand",
    "demand_from_workspace": "landquota.demand",
    "build_demo": "landquota.demo",
    "demo_workspace": "landquota.demo",
    "LandquotaError": "landquota.errors",
    "ImportReport": "landquota.importer",
    "import_layer": "landquota.importer",
    "LAND_CLASSES": "landquota.landclasses",
    "category_of": "landquota.landclasses",
    "land_class": "landquota.landclasses",
    "available_balances": "landquota.ledger",
    "balances": "landquota.ledger",
    "carryover_expiries": "landquota.ledger",
    "debit_entries": "landquota.ledger",
    "reversal_entries": "landquota.ledger",
    "statement": "landquota.ledger",
    "credit_linkage_surplus": "landquota.linkage",
    "linkage_credits": "landquota.linkage",
    "linkage_review": "landquota.linkage",
    "build_map": "landquota.maps",
    "map_workspace": "landquota.maps",
    "save_map": "landquota.maps",
    "write_report": "landquota.reports",
    "grant_roles": "landquota.roles",
    "Run": "landquota.runs",
    "commit_run": "landquota.runs",
    "plan_allocation": "landquota.runs",
    "read_run": "landquota.runs",
    "revert_run": "landquota.runs",
    "LAYERS": "landquota.schema",
    "SCHEMA_VERSION": "landquota.schema",
    "Settings": "landquota.settings",
    "get_settings": "landquota.settings",
    "available_stock": "landquota.stock",
    "idle_review": "landquota.stock",
    "return_lapsed": "landquota.stock",
    "review_stock": "landquota.stock",
    "unsupplied_cohorts": "landquota.stock",
    "workspace_summary": "landquota.summary",
    "ValidationReport": "landquota.validate",
    "require_valid": "landquota.validate",
    "validate_workspace": "landquota.validate",
    "Workspace": "landquota.workspace",
    "init_workspace": "landquota.workspace",
    "open_workspace": "landquota.workspace",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'landquota' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "LAND_CLASSES",
    "LAYERS",
    "REASON_CODES",
    "SCHEMA_VERSION",
    "AllocationResult",
    "Bulletin",
    "DemandResult",
    "ImportReport",
    "LandquotaError",
    "PlanAdjustment",
    "Pools",
    "ProjectAllocation",
    "ProjectNeed",
    "R16Report",
    "Run",
    "ScenarioComparison",
    "Settings",
    "StockOffer",
    "ValidationReport",
    "Workspace",
    "__version__",
    "adjusted_run",
    "allocate",
    "available_balances",
    "available_stock",
    "balances",
    "build_demo",
    "build_map",
    "carryover_expiries",
    "category_of",
    "check_r16",
    "commit_run",
    "compare_scenarios",
    "compliance_of_sites",
    "credit_linkage_surplus",
    "debit_entries",
    "demand_from_sites",
    "demand_from_workspace",
    "demo_workspace",
    "ellipsoidal_area",
    "export_workspace",
    "get_settings",
    "grant_roles",
    "idle_review",
    "import_layer",
    "init_workspace",
    "investment_bulletin",
    "land_class",
    "linkage_credits",
    "linkage_review",
    "m2_to_ha",
    "m2_to_mu",
    "map_workspace",
    "open_workspace",
    "plan_allocation",
    "read_run",
    "read_scenario",
    "require_valid",
    "restore_workspace",
    "retirement_polygons",
    "return_lapsed",
    "reversal_entries",
    "revert_run",
    "review_stock",
    "save_map",
    "statement",
    "time_progress",
    "unsupplied_cohorts",
    "validate_workspace",
    "workspace_summary",
    "write_report",
]

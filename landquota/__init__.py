"""landquota: construction-land quota, stock land and key projects for a county land bureau.

The public API, flat: open a workspace, read its layers, compute demand and
compliance, review stock land and linkage swaps, allocate, and draw maps and
reports. Everything here is also what the ``landquota`` command calls.
"""

from typing import TYPE_CHECKING, Any

from landquota._version import __version__  # recorded in runs and workspaces

if TYPE_CHECKING:  # the names, for type checkers and IDEs; at run time they load on first use
    from landquota.allocation.model import (
        REASON_CODES,
        AllocationResult,
        Pools,
        ProjectAllocation,
        ProjectNeed,
        StockOffer,
        allocate,
    )
    from landquota.allocation.runs import Run, commit_run, plan_allocation, read_run, revert_run
    from landquota.allocation.scenarios import ScenarioComparison, adjusted_run, compare_scenarios
    from landquota.demo.build import build_demo, demo_workspace
    from landquota.engines.api import demand_from_workspace
    from landquota.errors import LandquotaError
    from landquota.intake.importer import import_layer
    from landquota.intake.report import ImportReport
    from landquota.intake.validate import ValidationReport, require_valid, validate_workspace
    from landquota.outputs.export import export_workspace
    from landquota.outputs.maps import build_map, map_workspace, save_map
    from landquota.outputs.reports import write_report
    from landquota.outputs.summary import workspace_summary
    from landquota.rules.adjustment import PlanAdjustment, check_r16, read_scenario
    from landquota.rules.areas import ellipsoidal_area, m2_to_ha, m2_to_mu
    from landquota.rules.bulletin import Bulletin, investment_bulletin, time_progress
    from landquota.rules.compliance import compliance_of_sites
    from landquota.rules.demand import DemandResult, demand_from_sites
    from landquota.rules.landclasses import LAND_CLASSES, category_of, land_class
    from landquota.rules.ledger import (
        available_balances,
        balances,
        carryover_expiries,
        debit_entries,
        reversal_entries,
        statement,
    )
    from landquota.rules.linkage import credit_linkage_surplus, linkage_credits, linkage_review
    from landquota.rules.plan_totals import R16Report, retirement_polygons
    from landquota.rules.stock import (
        available_stock,
        idle_review,
        return_lapsed,
        review_stock,
        unsupplied_cohorts,
    )
    from landquota.settings import Settings, get_settings
    from landquota.store.api import init_workspace, open_workspace
    from landquota.store.backup import restore_workspace
    from landquota.store.roles import grant_roles
    from landquota.store.schema import LAYERS, SCHEMA_VERSION
    from landquota.store.workspace import Workspace

#: where each public name lives. ``import landquota`` loads none of them, so a
#: command that imports a parcel layer does not pay for folium and the map code
#: (1.8 s of imports otherwise, longer than a small import itself).
_LAZY: dict[str, str] = {
    "PlanAdjustment": "landquota.rules.adjustment",
    "R16Report": "landquota.rules.plan_totals",
    "ScenarioComparison": "landquota.allocation.scenarios",
    "adjusted_run": "landquota.allocation.scenarios",
    "check_r16": "landquota.rules.adjustment",
    "compare_scenarios": "landquota.allocation.scenarios",
    "read_scenario": "landquota.rules.adjustment",
    "retirement_polygons": "landquota.rules.plan_totals",
    "AllocationResult": "landquota.allocation.model",
    "Pools": "landquota.allocation.model",
    "ProjectAllocation": "landquota.allocation.model",
    "ProjectNeed": "landquota.allocation.model",
    "REASON_CODES": "landquota.allocation.model",
    "StockOffer": "landquota.allocation.model",
    "allocate": "landquota.allocation.model",
    "ellipsoidal_area": "landquota.rules.areas",
    "m2_to_ha": "landquota.rules.areas",
    "m2_to_mu": "landquota.rules.areas",
    "export_workspace": "landquota.outputs.export",
    "restore_workspace": "landquota.store.backup",
    "Bulletin": "landquota.rules.bulletin",
    "investment_bulletin": "landquota.rules.bulletin",
    "time_progress": "landquota.rules.bulletin",
    "compliance_of_sites": "landquota.rules.compliance",
    "DemandResult": "landquota.rules.demand",
    "demand_from_sites": "landquota.rules.demand",
    "demand_from_workspace": "landquota.engines.api",
    "build_demo": "landquota.demo.build",
    "demo_workspace": "landquota.demo.build",
    "LandquotaError": "landquota.errors",
    "ImportReport": "landquota.intake.report",
    "import_layer": "landquota.intake.importer",
    "LAND_CLASSES": "landquota.rules.landclasses",
    "category_of": "landquota.rules.landclasses",
    "land_class": "landquota.rules.landclasses",
    "available_balances": "landquota.rules.ledger",
    "balances": "landquota.rules.ledger",
    "carryover_expiries": "landquota.rules.ledger",
    "debit_entries": "landquota.rules.ledger",
    "reversal_entries": "landquota.rules.ledger",
    "statement": "landquota.rules.ledger",
    "credit_linkage_surplus": "landquota.rules.linkage",
    "linkage_credits": "landquota.rules.linkage",
    "linkage_review": "landquota.rules.linkage",
    "build_map": "landquota.outputs.maps",
    "map_workspace": "landquota.outputs.maps",
    "save_map": "landquota.outputs.maps",
    "write_report": "landquota.outputs.reports",
    "grant_roles": "landquota.store.roles",
    "Run": "landquota.allocation.runs",
    "commit_run": "landquota.allocation.runs",
    "plan_allocation": "landquota.allocation.runs",
    "read_run": "landquota.allocation.runs",
    "revert_run": "landquota.allocation.runs",
    "LAYERS": "landquota.store.schema",
    "SCHEMA_VERSION": "landquota.store.schema",
    "Settings": "landquota.settings",
    "get_settings": "landquota.settings",
    "available_stock": "landquota.rules.stock",
    "idle_review": "landquota.rules.stock",
    "return_lapsed": "landquota.rules.stock",
    "review_stock": "landquota.rules.stock",
    "unsupplied_cohorts": "landquota.rules.stock",
    "workspace_summary": "landquota.outputs.summary",
    "ValidationReport": "landquota.intake.validate",
    "require_valid": "landquota.intake.validate",
    "validate_workspace": "landquota.intake.validate",
    "Workspace": "landquota.store.workspace",
    "init_workspace": "landquota.store.api",
    "open_workspace": "landquota.store.api",
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

"""The local engine: demand and compliance of the fixed sites in this process.

Reads the patches under the sites (one spatial-index join in the database, or
bbox queries around groups of sites), then runs
:func:`~landquota.rules.demand.demand_from_sites` (R1–R4) and
:func:`~landquota.rules.compliance.compliance_of_sites` (R13–R15). Called by
:func:`landquota.engines.api.demand_from_workspace` with ``engine='local'``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import geopandas as gpd
import pandas as pd

from landquota.rules.compliance import compliance_of_sites
from landquota.rules.demand import DemandResult, demand_from_sites
from landquota.rules.overlay import Centre, fixed_sites
from landquota.rules.parcel_reads import read_parcels_near, read_parcels_under_sites

__all__ = ["demand_and_compliance_local", "parcel_read_started"]


@contextmanager
def parcel_read_started(ws: Any, start: bool) -> Iterator[Future[gpd.GeoDataFrame | None] | None]:
    """Start reading the patches under the sites on a thread of its own (if *start*).

    The spatial-index join needs nothing from the client, so it runs while the
    caller reads the sites and the plan layers: on PostGIS the server works on
    the join meanwhile, on a GeoPackage SQLite does. Yields the future (None
    without *start*) for :func:`demand_and_compliance_local`; on leaving, waits
    for the read to end, so the workspace is never closed under it.
    """
    if not start:
        yield None
        return
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="landquota-read")
    try:
        yield pool.submit(read_parcels_under_sites, ws)
    finally:
        pool.shutdown(wait=True)


def demand_and_compliance_local(
    ws: Any,
    sites: gpd.GeoDataFrame,
    zones: gpd.GeoDataFrame | None,
    lines: gpd.GeoDataFrame,
    *,
    grain_defaults: Mapping[str, float] | None,
    tolerance_m2: float,
    check_coverage: bool,
    plan_version: str | None = None,
    adjusted_allowed: gpd.GeoSeries | None = None,
    progress: bool = False,
    parcel_read: Future[gpd.GeoDataFrame | None] | None = None,
) -> tuple[DemandResult, pd.DataFrame, int]:
    """Demand and compliance of *sites* in this process (``engine='local'``).

    *parcel_read*, from :func:`parcel_read_started`, is the join already under
    way; without it the join runs here. Returns the demand, the compliance
    frame and the number of patches read.
    """
    fixed = fixed_sites(sites)
    if parcel_read is not None:
        joined = parcel_read.result() if len(fixed.ids) else None
    else:
        joined = read_parcels_under_sites(ws) if len(fixed.ids) else None
    parcels = read_parcels_near(ws, fixed.geoms) if joined is None else joined
    n_read = len(parcels)
    result = demand_from_sites(
        sites,
        parcels,
        grain_defaults=grain_defaults,
        tolerance_m2=tolerance_m2,
        check_coverage=check_coverage,
        progress=progress,
    )
    compliance = _compliance(
        sites, zones, lines, result, tolerance_m2, adjusted_allowed, plan_version, None
    )
    return result, compliance, n_read


def _compliance(
    sites: gpd.GeoDataFrame,
    zones: gpd.GeoDataFrame | None,
    lines: gpd.GeoDataFrame,
    demand: DemandResult,
    tolerance_m2: float,
    adjusted_allowed: gpd.GeoSeries | None,
    plan_version: str | None,
    centre: Centre | None,
) -> pd.DataFrame:
    return compliance_of_sites(
        sites,
        zones,
        lines,
        demand=demand,
        tolerance_m2=tolerance_m2,
        adjusted_allowed=adjusted_allowed,
        plan_version=plan_version,
        centre=centre,
    )

"""Demand and compliance of a workspace's fixed sites, on the engine the caller picks.

The one interface of :mod:`landquota.engines`: :func:`demand_from_workspace`
reads the sites and the plan layers near them, then hands them to an engine,
a function ``(ws, sites, zones, lines, *, tolerance_m2, check_coverage,
plan_version, adjusted_allowed, progress, …) -> (DemandResult, compliance,
patches read)``:

- ``local`` (:func:`landquota.engines.local.demand_and_compliance_local`): in
  this process;
- ``dask`` (:func:`landquota.engines.dask.demand_and_compliance_dask`): per
  spatial partition on a Dask cluster, with identical results.

Both build on the land rules (:mod:`landquota.rules.demand`,
:mod:`landquota.rules.compliance`), which never import an engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import geopandas as gpd
import numpy as np
import pandas as pd
from numpy.typing import NDArray

from landquota.engines.local import demand_and_compliance_local, parcel_read_started
from landquota.errors import ParameterError
from landquota.rules.demand import DEMAND_COLUMNS, DemandResult
from landquota.rules.landclasses import grain_yields
from landquota.rules.overlay import fixed_sites
from landquota.rules.parcel_reads import read_boxes
from landquota.store.api import opened

__all__ = [
    "DEMAND_OUT_COLUMNS",
    "ENGINES",
    "WorkspaceDemand",
    "demand_from_workspace",
    "demand_out_table",
]

#: Columns of ``landquota demand --out`` (data contract): demand, then compliance.
DEMAND_OUT_COLUMNS: Final[tuple[str, ...]] = (
    *DEMAND_COLUMNS,
    "compliance",
    "approval_level",
    "reasons",
)

#: Engines of :func:`demand_from_workspace`.
ENGINES: Final = ("local", "dask")


@dataclass(frozen=True)
class WorkspaceDemand:
    """Demand and compliance of the fixed sites of a workspace.

    Attributes
    ----------
    table : pandas.DataFrame
        The ``demand --out`` table, columns :data:`DEMAND_OUT_COLUMNS`: one row
        per fixed site, in the order of the ``projects`` layer.
    pieces : geopandas.GeoDataFrame
        Site ∩ patch pieces (see :class:`DemandResult`), for the map layer.
    compliance : pandas.DataFrame
        The full compliance frame (:data:`landquota.rules.compliance.COMPLIANCE_COLUMNS`).
    demand : DemandResult
        Everything :func:`demand_from_sites` returns (``by_class``, ``coverage``…).
    engine : str
        ``'local'`` or ``'dask'``.
    parcels_read : int
        Patches read from the workspace (local engine) or in the partitions
        that met a site (Dask engine).
    """

    table: pd.DataFrame
    pieces: gpd.GeoDataFrame
    compliance: pd.DataFrame
    demand: DemandResult
    engine: str
    parcels_read: int


def demand_from_workspace(
    ws: Any,
    *,
    engine: str = "local",
    scheduler: Any = None,
    tolerance_m2: float = 1.0,
    plan_version: str | None = None,
    check_coverage: bool = True,
    progress: bool = False,
    scenario_allowed: gpd.GeoSeries | None = None,
    grain_defaults: Mapping[str, float] | None = None,
    partitions: str | None = None,
) -> WorkspaceDemand:
    """Demand (R1–R4) and compliance (R13–R15) of every fixed site of a workspace.

    Reads the ``projects`` layer, the patches near the fixed sites (one bbox
    query per group of neighbouring sites, see :func:`~landquota.rules.parcel_reads.read_boxes`), and the
    plan layers within the sites' extent; then runs :func:`~landquota.rules.demand.demand_from_sites`
    and :func:`landquota.rules.compliance.compliance_of_sites`.

    Parameters
    ----------
    ws : Workspace, str or Path
        An open workspace, or a ``.gpkg`` path / ``postgresql://`` URL to open.
    engine : {'local', 'dask'}, default 'local'
        ``'dask'`` runs the parcel overlay per spatial partition of the parcels
        (Hilbert-sorted GeoParquet) and compliance per group of sites on a
        Dask cluster; the results are identical (``docs/scaling.md``).
    scheduler : str or distributed.Client, optional
        Dask engine only: ``'tcp://HOST:PORT'`` of a running scheduler, or a
        Client. Default: a LocalCluster on this machine for the run.
    tolerance_m2 : float, default 1.0
        Sliver tolerance of coverage checks and compliance (reported).
    plan_version : str, optional
        Plan version of ``plan_zones`` / ``control_lines`` (pushed down).
    check_coverage : bool, default True
        See :func:`demand_from_sites`.
    progress : bool, default False
        Progress bars on stderr.
    scenario_allowed : geopandas.GeoSeries, optional
        Area a plan adjustment turns into allowed zone (``adjusted_allowed`` of
        :func:`~landquota.rules.compliance.compliance_of_sites`, R16).
    grain_defaults : mapping, optional
        Default grain yields by class (see :func:`demand_from_sites`).
    partitions : str, optional
        Dask engine only: directory of the parcels' GeoParquet partitions. An
        existing dataset written by ``landquota.engines.dask.write_partitions``
        for this workspace is reused; otherwise it is written there (it must be
        on storage every worker can read). Default: a temporary directory,
        which only works when the workers share this machine's disk.

    Returns
    -------
    WorkspaceDemand
        ``table`` (the ``demand --out`` columns), ``pieces``, ``compliance``,
        ``demand``.

    Raises
    ------
    ParameterError
        Unknown *engine*, a *scheduler* or *partitions* with the local engine,
        bad tolerance or plan version.
    DataError, CRSError
        As :func:`demand_from_sites` and ``compliance_of_sites``.
    """
    if engine not in ENGINES:
        raise ParameterError(f"engine={engine!r}; choose one of {', '.join(map(repr, ENGINES))}")
    if engine == "local" and (scheduler is not None or partitions is not None):
        raise ParameterError(
            "scheduler and partitions are options of engine='dask'; pass engine='dask' "
            "(CLI: --engine dask) or drop them"
        )
    if not (tolerance_m2 >= 0):
        raise ParameterError(f"tolerance_m2={tolerance_m2!r}; give an area ≥ 0 in m²")
    yields = grain_yields(grain_defaults)
    # local engine: the patches' join starts at once and runs in the database while
    # the sites and plan layers are read here; the workspace closes only after it ends
    with opened(ws) as w, parcel_read_started(w, engine == "local") as parcel_read:
        sites = w.read_layer("projects")
        fixed = fixed_sites(sites)
        zones, lines = _plan_layers(w, fixed.geoms, plan_version)
        if engine == "dask":
            # imported here: dask is an optional dependency (landquota[dask])
            from landquota.engines.dask import demand_and_compliance_dask

            result, compliance, n_read = demand_and_compliance_dask(
                w,
                sites,
                zones,
                lines,
                yields=yields,
                tolerance_m2=tolerance_m2,
                check_coverage=check_coverage,
                scheduler=scheduler,
                partitions=partitions,
                plan_version=plan_version,
                adjusted_allowed=scenario_allowed,
                progress=progress,
            )
        else:
            result, compliance, n_read = demand_and_compliance_local(
                w,
                sites,
                zones,
                lines,
                grain_defaults=grain_defaults,
                tolerance_m2=tolerance_m2,
                check_coverage=check_coverage,
                plan_version=plan_version,
                adjusted_allowed=scenario_allowed,
                progress=progress,
                parcel_read=parcel_read,
            )
    return WorkspaceDemand(
        table=demand_out_table(result, compliance),
        pieces=result.pieces,
        compliance=compliance,
        demand=result,
        engine=engine,
        parcels_read=n_read,
    )


def _plan_layers(
    ws: Any, site_geoms: NDArray[np.object_], plan_version: str | None
) -> tuple[gpd.GeoDataFrame | None, gpd.GeoDataFrame]:
    """Plan zones (None when the workspace has none) and control lines near the sites."""
    where: dict[str, Any] | None = None if plan_version is None else {"plan_version": plan_version}
    boxes = read_boxes(site_geoms, max_boxes=1)
    bbox = boxes[0] if boxes else None
    if bbox is None:
        where = {"plan_version": []}  # no fixed site: empty frames of the right shape
    lines = ws.read_layer("control_lines", bbox=bbox, where=where)
    zones = ws.read_layer("plan_zones", bbox=bbox, where=where)
    if len(zones) == 0 and ws.layer_counts()["plan_zones"] == 0:
        # A territorial plan with the three control lines only: no zone rules.
        return None, lines
    return zones, lines


def demand_out_table(demand: DemandResult, compliance: pd.DataFrame) -> pd.DataFrame:
    """Return the ``demand --out`` table: the demand table with the compliance verdict."""
    verdict = compliance.set_index("project_id")
    ids = demand.table["project_id"]
    table = demand.table.copy()
    table["compliance"] = verdict.loc[ids, "outcome"].to_numpy()
    table["approval_level"] = verdict.loc[ids, "approval_level"].to_numpy()
    table["reasons"] = verdict.loc[ids, "reasons"].to_numpy()
    for column in ("compliance", "approval_level", "reasons"):
        table[column] = table[column].astype("str")
    return table[list(DEMAND_OUT_COLUMNS)].reset_index(drop=True)

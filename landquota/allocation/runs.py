"""Allocation runs on a workspace: plan (draft), commit, revert — every run a record.

:func:`plan_allocation` reads the workspace as of a date, works out every key
project's need and compliance, offers the available stock and the pools' balances
to the matching engine (:mod:`landquota.allocation.model`), and stores the result as a
*draft* run: one ``allocation_runs`` row (parameters, input digest, user, time,
software version) and one ``allocations`` row per project, in one transaction.

The run id is derived from the digest of the inputs and the parameters, so the
same inputs give the same run (and byte-identical output files); planning it again
returns the stored run instead of a second copy.

:func:`commit_run` writes the run's debits to the ledger and marks it committed in
ONE transaction, under the ledger lock, refusing if any balance would go negative
by then (R6) or if another process committed it first. :func:`revert_run` writes
the reversing entries and marks it reverted, the same way.
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol, cast

import geopandas as gpd
import numpy as np
import pandas as pd

from landquota._version import __version__
from landquota.allocation.model import AllocationResult, Pools, ProjectNeed, StockOffer, allocate
from landquota.errors import AllocationError, LedgerError, ParameterError
from landquota.labels import OUTCOME_LABELS, REASON_LABELS, reason_label
from landquota.rules.ledger import available_balances, debit_entries, reversal_entries
from landquota.rules.stock import available_stock, committed_stock_ids, returned_stock_ids
from landquota.store.schema import LAYERS, RUN_MODES
from landquota.store.workspace import RunTransition, Workspace, canonical_json, frame_digest

__all__ = [
    "OUTCOME_NAMES",
    "REASON_NAMES",
    "Run",
    "Scenario",
    "commit_run",
    "frame_digest",
    "plan_allocation",
    "read_run",
    "require_verified_ledger",
    "revert_run",
]

#: Chinese and English names of the outcomes (an alias of
#: :data:`landquota.labels.OUTCOME_LABELS`, the one table).
OUTCOME_NAMES: Mapping[str, tuple[str, str]] = OUTCOME_LABELS

#: Chinese names of the reason codes, with the rule each enforces (from
#: :mod:`landquota.labels`).
REASON_NAMES: Mapping[str, str] = MappingProxyType(
    {code: reason_label(code, lang="zh") for code in REASON_LABELS}
)


class Scenario(Protocol):
    """A plan-adjustment scenario (see :mod:`landquota.rules.adjustment`)."""

    @property
    def name(self) -> str:
        """The scenario's name, recorded in the run."""

    def digest(self) -> str:
        """Return a stable digest of the adjustment (part of the run's input digest)."""

    def allowed_geometry(self) -> gpd.GeoSeries | None:
        """Areas made allowed construction zone by the adjustment (R15)."""

    def require_r16(self, ws: Workspace) -> None:
        """Raise if the adjustment breaks R16's totals."""


@dataclass
class Run:
    """An allocation run: its record and its allocations."""

    record: dict[str, Any]
    allocations: pd.DataFrame
    projects: pd.DataFrame = field(repr=False)
    result: AllocationResult | None = field(default=None, repr=False)
    is_new: bool = True

    @property
    def run_id(self) -> str:
        """The run's id."""
        return str(self.record["run_id"])

    @property
    def status(self) -> str:
        """draft, committed or reverted."""
        return str(self.record["status"])

    def table(self) -> pd.DataFrame:
        """Return the ``allocations`` rows with the project's name, level and score for reading.

        The contract's columns come first, in their order; the readable ones after.
        """
        cols = list(LAYERS["allocations"].column_names)
        names = self.projects.set_index("project_id")[["name", "level", "score"]]
        out = self.allocations[cols].join(names, on="project_id")
        out["reasons_zh"] = (
            out["reasons"]
            .fillna("")
            .map(lambda r: "；".join(REASON_NAMES.get(c, c) for c in r.split(",") if c))
        )
        return out.rename(columns={"name": "project_name"})

    def solver(self) -> tuple[str, bool] | None:
        """Return the solver's status and whether it proved the optimum (None: not recorded)."""
        if self.result is not None:
            return self.result.status, self.result.proven_optimal
        import json

        try:
            info = json.loads(str(self.record.get("params") or "{}")).get("solver")
        except ValueError:
            return None
        if not isinstance(info, dict):
            return None
        return str(info.get("status")), bool(info.get("proven_optimal"))

    def counts(self) -> dict[str, int]:
        """Projects per outcome."""
        vc = self.allocations["outcome"].value_counts()
        return {k: int(vc.get(k, 0)) for k in OUTCOME_NAMES}

    def summary(self) -> str:
        """Return a short Chinese/English summary of the run."""
        a = self.allocations
        lines = [
            f"分配方案 run {self.run_id} ({self.record['mode']}, as of {pd.Timestamp(self.record['as_of']).date()}, "
            f"{self.status}{', forced' if self.record.get('forced') else ''})",
        ]
        solver = self.solver()
        if solver is not None and self.record.get("mode") == "optimal":
            status, proven = solver
            lines.append(
                f"  求解状态 solver: {status}"
                + ("" if proven else " — 未证明最优 not proven optimal (docs/allocation.md)")
            )
        for k, n in self.counts().items():
            zh, en = OUTCOME_NAMES[k]
            lines.append(f"  {zh} {en}: {n}")
        used_new = float(a["new_quota_m2"].fillna(0).sum())
        used_link = float(a["linkage_quota_m2"].fillna(0).sum())
        lines.append(
            f"  使用新增指标 plan quota used: {used_new / 10_000:,.2f} ha; "
            f"挂钩节余 linkage surplus used: {used_link / 10_000:,.2f} ha; "
            f"补充耕地 compensation (area/paddy): {a['comp_area_m2'].fillna(0).sum() / 10_000:,.2f} / "
            f"{a['comp_paddy_m2'].fillna(0).sum() / 10_000:,.2f} ha"
        )
        if a["reasons"].notna().any():
            from landquota.labels import reasons_text

            # in Chinese with the rule and the count, most frequent first (issue 15)
            lines.append("  原因 reasons: " + reasons_text(a["reasons"]))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        head = html.escape(self.summary().splitlines()[0])
        return f"<b>{head}</b>" + self.table().to_html(
            index=False, na_rep="", float_format=lambda v: f"{v:,.2f}"
        )

    def write(self, out: str | Path) -> Path:
        """Write the run's table as CSV or XLSX (by suffix); identical inputs give identical bytes.

        Every value keeps its full precision (issue 16): a fraction is written as the
        float it is (a multiple of 1e-9, e.g. 0.666678888, not 0.67), amounts as the
        hundredths of m² (kg) they are, so the CSV reads back to the stored layer. The
        XLSX shows fractions to 9 decimals and amounts to 0.01 by number format only;
        the cells hold the exact values.
        """
        path = Path(out)
        table = self.table()
        if path.suffix.lower() == ".csv":
            # no float_format: pandas writes each float's shortest exact repr
            data = table.to_csv(index=False, lineterminator="\n")
            _atomic_write(path, ("\ufeff" + data).encode("utf-8"))
        elif path.suffix.lower() == ".xlsx":
            from landquota._xlsx import frames_to_xlsx

            formats = {
                c: ("0.000000000" if c == "fraction" else "#,##0.00")
                for c in table.columns
                if c == "fraction" or c.endswith(("_m2", "_kg"))
            }
            _atomic_write(
                path, frames_to_xlsx({"allocations": table}, formats={"allocations": formats})
            )
        else:
            raise ParameterError(f"--out {str(out)!r}: use a .csv or .xlsx file name")
        return path


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def _needs(
    ws: Workspace, adjusted: gpd.GeoSeries | None, *, progress: bool
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Demand (R1–R4) and compliance (R13–R15) of the fixed sites, and digests of what was read."""
    from landquota.engines.api import demand_from_workspace

    d = demand_from_workspace(ws, scenario_allowed=adjusted, progress=progress)
    digests = {
        # the survey patches under the sites, as they were cut: class, net share, geometry
        "parcels_under_sites": frame_digest(d.pieces),
        "plan_zones": frame_digest(ws.read_layer("plan_zones")),
        "control_lines": frame_digest(ws.read_layer("control_lines")),
    }
    return d.table, digests


def plan_allocation(
    ws: Workspace,
    *,
    mode: str = "greedy",
    as_of: date,
    scenario: Scenario | None = None,
    force: bool = False,
    carry_years: int = 2,
    time_limit: float | None = None,
    save: bool = True,
    progress: bool = False,
) -> Run:
    """Allocate stock land and quota to the key projects as of a date; store a draft run.

    Parameters
    ----------
    ws : Workspace
        The workspace to read (and, with ``save``, to record the draft in).
    mode : {"greedy", "optimal"}
        ``greedy`` walks the projects in priority order (R18); ``optimal`` solves the
        lexicographic maximisation exactly (HiGHS).
    as_of : date
        Ledger balances, stock availability and idle status as of this date.
    scenario : Scenario, optional
        A plan adjustment (R15, R16) to allocate under; refused if it breaks R16.
    force : bool
        Run even though blocking validation errors exist; the run records it.
    carry_years : int
        Carry-over window of plan quota (see :func:`landquota.rules.ledger.available_balances`).
    save : bool
        Store the draft in the workspace (``False`` for what-if runs in notebooks).

    Raises
    ------
    ValidationBlockedError
        The workspace has blocking validation errors and ``force`` is false.
    """
    if mode not in RUN_MODES:
        raise ParameterError(f"mode={mode!r}; use one of {', '.join(RUN_MODES)}")
    if not isinstance(as_of, date):
        raise ParameterError(f"as_of={as_of!r} must be a date (YYYY-MM-DD)")
    from landquota.intake.validate import require_valid

    # refuses (ValidationBlockedError) unless forced; re-validates if layers changed since
    n_blocking = require_valid(ws, force=force)
    adjusted = None
    if scenario is not None:
        scenario.require_r16(ws)
        adjusted = scenario.allowed_geometry()

    projects = ws.read_layer("projects")
    ledger = ws.read_layer("quota_ledger")
    ledger_asof = ledger[ledger["effective_date"] <= pd.Timestamp(as_of)]
    stock = ws.read_layer("stock_land")
    # stock given to projects by committed runs, or returned as quota (R9): not offered
    taken = committed_stock_ids(ws) | returned_stock_ids(ledger)
    table, digests = _needs(ws, adjusted, progress=progress)

    pools = Pools(**available_balances(ledger, as_of=as_of, carry_years=carry_years))
    offers = available_stock(stock, as_of=as_of, taken=taken)
    needs = _project_needs(projects, table)
    result = allocate(
        needs,
        pools,
        [
            StockOffer(r.stock_id, float(r.area_m2), _opt(r.planned_use), _opt(r.town))
            for r in offers.itertuples()
        ],
        mode=mode,
        time_limit=time_limit,
    )
    params = {
        "mode": mode,
        "as_of": as_of.isoformat(),
        "scenario": None if scenario is None else scenario.name,
        "carry_years": carry_years,
        "time_limit": time_limit,
        "force": bool(force),
    }
    inputs = {
        **digests,
        "projects": frame_digest(projects),
        "stock_land": frame_digest(stock),
        "quota_ledger_as_of": frame_digest(ledger_asof.drop(columns=["entered_at", "entered_by"])),
        "stock_taken": hashlib.sha256(",".join(sorted(taken)).encode()).hexdigest(),
        "scenario": None if scenario is None else scenario.digest(),
    }
    digest = hashlib.sha256(
        canonical_json({"inputs": inputs, "params": params}).encode()
    ).hexdigest()
    run_id = f"R{as_of:%Y%m%d}-{mode[0]}-{digest[:10]}"

    existing = ws.read_layer("allocation_runs", where={"run_id": run_id})
    if len(existing):
        run = read_run(ws, run_id)
        run.result = result
        run.is_new = False
        return run

    alloc = result.to_frame()
    alloc.insert(0, "run_id", run_id)
    alloc.insert(0, "allocation_id", run_id + ":" + alloc["project_id"].astype(str))
    record = {
        "run_id": run_id,
        "created_at": pd.Timestamp.now(tz="UTC").floor("ms"),
        "created_by": ws.user(),
        "mode": mode,
        "as_of": pd.Timestamp(as_of),
        "scenario": None if scenario is None else scenario.name,
        # what the solver said (issue 16): "optimal", or e.g. "optimal (stage holds
        # relaxed to 1e-07 after HiGHS reported infeasible)", "time_limit"; kept with
        # the run (not part of the digest: the inputs decide the run)
        "params": canonical_json(
            {
                **params,
                "inputs": inputs,
                "solver": {"status": result.status, "proven_optimal": result.proven_optimal},
            }
        ),
        "input_digest": digest,
        "software_version": __version__,
        "forced": bool(force and n_blocking),
        "status": "draft",
        "status_changed_at": pd.NaT,
        "status_changed_by": None,
    }
    runs = pd.DataFrame([record])
    if save:
        ws.write_layers({"allocation_runs": runs, "allocations": alloc}, mode="append")
        alloc = ws.read_layer("allocations", where={"run_id": run_id})
        record = _record(ws.read_layer("allocation_runs", where={"run_id": run_id}))
    return Run(record=record, allocations=_sorted(alloc), projects=projects, result=result)


def _record(runs: pd.DataFrame) -> dict[str, Any]:
    return {str(k): v for k, v in runs.iloc[0].items()}


def _sorted(alloc: pd.DataFrame) -> pd.DataFrame:
    return alloc.sort_values("project_id", kind="stable").reset_index(drop=True)


def _opt(v: Any) -> str | None:
    return None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)


def _project_needs(projects: gpd.GeoDataFrame, table: pd.DataFrame) -> list[ProjectNeed]:
    need = table.set_index("project_id")
    out = []
    for p in projects.itertuples(index=False):
        pid = str(p.project_id)
        fixed = bool(p.site_fixed) and p.geometry is not None and pid in need.index
        blocked: tuple[str, ...] = ()
        level = None
        n: dict[str, float] = {}
        if fixed:
            r = need.loc[pid]
            if r["compliance"] != "allowed":
                # R13/R15: blocked outright, or not allocatable before a plan adjustment
                blocked = tuple(c for c in str(r["reasons"]).split(",") if c) or (
                    "needs_adjustment",
                )
            level = _opt(r["approval_level"])
            n = {
                k: float(cast(float, r.at[k]))
                for k in ("new_quota_m2", "comp_area_m2", "comp_paddy_m2", "comp_grain_kg")
            }
        out.append(
            ProjectNeed(
                project_id=pid,
                level=str(p.level),
                score=float(p.score),
                phaseable=bool(p.phaseable),
                min_fraction=None if pd.isna(p.min_fraction) else float(p.min_fraction),
                site_fixed=fixed,
                demand_m2=None if pd.isna(p.demand_m2) else float(p.demand_m2),
                planned_use=_opt(p.planned_use),
                town=_opt(p.town),
                blocked_reasons=blocked,
                approval_level=level,
                **n,
            )
        )
    return out


def read_run(ws: Workspace, run_id: str) -> Run:
    """Read a stored run and its allocations."""
    rec = ws.read_layer("allocation_runs", where={"run_id": str(run_id)})
    if not len(rec):
        known = ws.read_layer("allocation_runs", columns=["status"])["run_id"].tolist()[-5:]
        raise AllocationError(
            f"no run {run_id!r} in this workspace; recent runs: {known or 'none'} "
            "(`landquota allocate` makes one)"
        )
    alloc = ws.read_layer("allocations", where={"run_id": str(run_id)})
    return Run(
        record=_record(rec),
        allocations=_sorted(alloc),
        projects=ws.read_layer("projects"),
        is_new=False,
    )


def require_verified_ledger(ws: Workspace, *, action: str = "commit") -> None:
    """Refuse to extend a ledger whose hash chain does not verify (issue 12).

    Debits written after a tampered or unchained entry would be chained onto it
    and R6 balances computed from it; the bureau must first find and undo the
    change (``landquota verify`` names every problem; a backup that verifies can
    be restored). Raises :class:`~landquota.errors.LedgerError` naming the first
    bad record as ``verify`` names it.
    """
    from landquota.store.verify import verify_workspace

    rep = verify_workspace(ws)
    if not rep.ok:
        raise LedgerError(
            f"the ledger does not verify ({len(rep.findings)} problem(s); first: {rep.first}); "
            f"nothing written — run `landquota verify` to see every problem, undo the change "
            f"or restore a backup that verifies, then {action} again"
        )


def commit_run(ws: Workspace, run_id: str, *, carry_years: int = 2) -> pd.DataFrame:
    """Write a draft run's debits to the ledger and mark it committed, in one transaction.

    Fails cleanly — nothing written — if the run is not a draft any more (another
    process committed it first), if the ledger's hash chain does not verify
    (:func:`require_verified_ledger`) or if any balance would go negative by now
    (R6). Returns the entries written.
    """
    run = read_run(ws, run_id)
    if run.status != "draft":
        raise AllocationError(f"run {run_id!r} is {run.status}; only a draft can be committed")
    require_verified_ledger(ws)
    ledger = ws.read_layer("quota_ledger")
    as_of = pd.Timestamp(run.record["as_of"]).date()
    entries = debit_entries(
        run.allocations, ledger, run_id=run_id, as_of=as_of, carry_years=carry_years
    )
    return ws.append_ledger(entries, transition=RunTransition(run_id, "draft", "committed"))


def revert_run(ws: Workspace, run_id: str) -> pd.DataFrame:
    """Write the reversing entries of a committed run and mark it reverted (one transaction).

    The reversals are effective on the day of the revert, so that a statement of
    a period that closed before it reads the same afterwards. Refused, nothing
    written, if the ledger's hash chain does not verify (:func:`require_verified_ledger`).
    """
    run = read_run(ws, run_id)
    if run.status != "committed":
        raise AllocationError(
            f"run {run_id!r} is {run.status}; only a committed run can be reverted"
        )
    # Reversals negate the run's debits as stored: on a ledger that does not verify they
    # would chain, and so confirm, an amount someone edited behind landquota's back.
    require_verified_ledger(ws, action="revert")
    ledger = ws.read_layer("quota_ledger")
    own = ledger["run_id"] == run_id
    if own.any():
        # Dated on the day of the revert (or the run's own latest date, if that is later):
        # statements of periods already closed and reported never change afterwards.
        latest = pd.Timestamp(ledger.loc[own, "effective_date"].max()).date()
        entries = reversal_entries(ledger, run_id=run_id, as_of=max(date.today(), latest))
    else:
        # a run that only matched stock (or funded nothing) wrote no debits: reverting it
        # writes no entries, but still frees its stock parcels by changing its status
        entries = ledger.iloc[0:0].drop(columns=["entered_at", "entered_by"])
    return ws.append_ledger(entries, transition=RunTransition(run_id, "committed", "reverted"))

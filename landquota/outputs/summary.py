"""What a workspace holds: layer counts and every pool's balance (``landquota info``)."""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

import pandas as pd

from landquota.labels import POOL_LABELS
from landquota.settings import mask_url
from landquota.store.schema import LAYERS, POOLS
from landquota.store.workspace import Workspace

__all__ = ["POOL_NAMES", "WorkspaceSummary", "pool_balances", "workspace_summary"]

#: Chinese and English names of the pools with their units (an alias of
#: :data:`landquota.labels.POOL_LABELS`, the one table).
POOL_NAMES: Mapping[str, tuple[str, str, str]] = POOL_LABELS

M2_PER_HA = 10_000.0
MU_PER_HA = 15.0  # 1 ha = 15 mu exactly; 1 mu = 10,000/15 m2


def pool_balances(entries: pd.DataFrame, *, as_of: date | None = None) -> pd.DataFrame:
    """Balance of every pool (sum of its entries, R6), with ha and mu for area pools.

    Parameters
    ----------
    entries : DataFrame
        ``quota_ledger`` rows.
    as_of : date, optional
        Only entries effective on or before this date.
    """
    df = entries
    if as_of is not None:
        df = df[df["effective_date"] <= pd.Timestamp(as_of)]
    sums = df.groupby("pool")["amount"].sum() if len(df) else pd.Series(dtype="float64")
    rows = []
    for pool in POOLS:
        amount = float(sums.get(pool, 0.0))
        zh, en, unit = POOL_NAMES[pool]
        area = unit == "m2"
        rows.append(
            {
                "pool": pool,
                "name_zh": zh,
                "name_en": en,
                "unit": unit,
                "balance": amount,
                "balance_ha": amount / M2_PER_HA if area else float("nan"),
                "balance_mu": amount / M2_PER_HA * MU_PER_HA if area else float("nan"),
            }
        )
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class WorkspaceSummary:
    """Layer counts and pool balances of a workspace; renders as text or HTML."""

    target: str
    kind: str
    schema_version: int
    counts: dict[str, int]
    balances: pd.DataFrame

    def __str__(self) -> str:
        lines = [
            f"工作空间 workspace: {mask_url(self.target)} ({self.kind}, schema v{self.schema_version})",
            "图层 layers:",
        ]
        for name, n in self.counts.items():
            lines.append(f"  {name:<18} {n:>10,}")
        lines.append("指标余额 pool balances:")
        for r in self.balances.itertuples():
            if r.unit == "m2":
                lines.append(
                    f"  {r.pool:<17} {r.balance:>16,.1f} m²  {r.balance_ha:>10,.2f} ha  "
                    f"{r.balance_mu:>11,.1f} 亩  {r.name_zh}"
                )
            else:
                lines.append(f"  {r.pool:<17} {r.balance:>16,.1f} kg  {'':>27}  {r.name_zh}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        counts = "".join(
            f"<tr><td>{html.escape(k)}</td><td style='text-align:right'>{v:,}</td></tr>"
            for k, v in self.counts.items()
        )
        bal = self.balances[["pool", "name_zh", "unit", "balance", "balance_ha", "balance_mu"]]
        return (
            f"<b>{html.escape(mask_url(self.target))}</b> ({self.kind}, schema v{self.schema_version})"
            f"<table><tr><th>layer 图层</th><th>rows</th></tr>{counts}</table>"
            + bal.to_html(index=False, float_format=lambda v: f"{v:,.2f}", na_rep="")
        )


def workspace_summary(ws: Workspace, *, as_of: date | None = None) -> WorkspaceSummary:
    """Summarise a workspace: every layer's row count and every pool's balance."""
    return WorkspaceSummary(
        target=ws.target,
        kind=ws.kind,
        schema_version=ws.schema_version,
        counts={name: n for name, n in ws.layer_counts().items() if name in LAYERS},
        balances=pool_balances(ws.read_layer("quota_ledger"), as_of=as_of),
    )

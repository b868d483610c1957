"""R6 at write time: the check both workspace backends run on the ledger inside their lock.

No ledger balance may ever go negative (R6). The pure ledger functions
(:mod:`landquota.rules.ledger`) only propose entries; a backend appends them in
one transaction after :func:`check_ledger` has replayed the stored entries plus
the new ones date by date. The check lives here, in the store, so that the
GeoPackage and PostGIS backends share it without importing each other and
without reaching up into the rules.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from landquota.errors import DataError, LedgerError
from landquota.store.schema import LEDGER_KINDS, POOLS, layer

__all__ = [
    "AREA_POOLS",
    "LEDGER_CHECK_COLUMNS",
    "NEG_TOL",
    "TOLERANCE",
    "check_ledger",
    "check_nonnegative",
    "normalise_entries",
    "unit_of",
]

#: Pools measured in m²; ``comp_grain`` is in kg/year and has no ha/mu figure.
AREA_POOLS = ("new_construction", "linkage_surplus", "comp_area", "comp_paddy")

#: A (pool, year) balance below this is negative (float noise of m² sums is far smaller).
NEG_TOL = 1e-6

#: Balances within this much of zero count as zero (float sums of m² figures).
TOLERANCE = 1e-6

_LEDGER = layer("quota_ledger")
_REQUIRED = ("entry_id", "pool", "kind", "amount", "year", "effective_date", "source")


def unit_of(pool: str) -> str:
    """Return the unit of a pool's amounts: ``m2``, or ``kg`` for ``comp_grain``."""
    return "m2" if pool in AREA_POOLS else "kg"


def normalise_entries(entries: pd.DataFrame, name: str = "entries") -> pd.DataFrame:
    """Check the columns and codes the pure functions rely on; return a working copy."""
    missing = [c for c in _REQUIRED if c not in entries.columns]
    if missing:
        raise DataError(
            f"{name}: ledger frame lacks column(s) {missing}; pass the 'quota_ledger' layer "
            f"(columns {', '.join(_LEDGER.column_names)})"
        )
    df = pd.DataFrame(entries).copy()
    for col, codes in (("pool", POOLS), ("kind", LEDGER_KINDS)):
        bad = df[col].isna() | ~df[col].isin(codes)
        if bad.any():
            i = df.index[bad][0]
            raise DataError(
                f"{name}: entry {df.at[i, 'entry_id']!r} has {col}={df.at[i, col]!r}; "
                f"allowed: {', '.join(codes)}"
            )
    try:
        df["amount"] = pd.to_numeric(df["amount"], errors="raise").astype("float64")
        df["year"] = pd.to_numeric(df["year"], errors="raise").astype("Int64")
        df["effective_date"] = pd.to_datetime(df["effective_date"], errors="raise").astype(
            "datetime64[ns]"
        )
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name}: amount, year or effective_date has a wrong value: {exc}") from exc
    for col in ("amount", "year", "effective_date"):
        if df[col].isna().any():
            i = df.index[df[col].isna()][0]
            raise DataError(
                f"{name}: entry {df.at[i, 'entry_id']!r} has no {col}; every entry needs "
                "amount, year and effective_date"
            )
    if not np.isfinite(df["amount"].to_numpy()).all():
        raise DataError(f"{name}: amount must be finite numbers")
    for col in ("run_id", "reverses", "project_id"):
        if col not in df.columns:
            df[col] = pd.Series(np.nan, index=df.index, dtype="str")
    return df


def check_nonnegative(entries: pd.DataFrame, *, tolerance: float = TOLERANCE) -> None:
    """Raise :class:`LedgerError` if any (pool, year) balance is negative on any date (R6).

    The running balance of every (pool, vintage) pair is followed through the
    entries in ``effective_date`` order (entries of one day are summed first), so
    a debit dated before the credit it needs is caught, not only a negative end
    balance. The caller runs this on the existing entries plus the new ones
    before every write.

    Parameters
    ----------
    entries : pandas.DataFrame
        Ledger entries (existing and proposed).
    tolerance : float, default 1e-6
        Running balances above ``-tolerance`` count as zero (float sums).

    Raises
    ------
    LedgerError
        Naming the pool, the year, the date, the balance and the entries of that
        day.
    DataError
        Malformed entries (unknown pool or kind, missing amount, duplicate ids).
    """
    df = normalise_entries(entries)
    dup = df["entry_id"][df["entry_id"].duplicated()]
    if len(dup):
        raise DataError(
            f"ledger entry id(s) {sorted(set(dup.astype(str)))[:5]} occur twice; "
            "an entry is written once (append-only ledger)"
        )
    if df.empty:
        return
    daily = df.groupby(["pool", "year", "effective_date"], sort=True)["amount"].sum().reset_index()
    daily["running"] = daily.groupby(["pool", "year"], sort=False)["amount"].cumsum()
    neg = daily[daily["running"] < -tolerance]
    if len(neg):
        row = neg.iloc[0]
        day = df[
            (df["pool"] == row["pool"])
            & (df["year"] == row["year"])
            & (df["effective_date"] == row["effective_date"])
        ]
        ids = day["entry_id"].astype(str).tolist()[:5]
        raise LedgerError(
            f"R6: pool {row['pool']!r} vintage {int(row['year'])} would stand at "
            f"{row['running']:,.2f} {unit_of(str(row['pool']))} on "
            f"{row['effective_date'].date().isoformat()} (entries that day: {ids}, "
            f"amount {row['amount']:,.2f}); a balance may never go negative. "
            "Reduce the debit or credit the pool first."
        )


LEDGER_CHECK_COLUMNS = ["entry_id", "pool", "kind", "amount", "year", "effective_date", "source"]


def check_ledger(existing: pd.DataFrame, entries: pd.DataFrame) -> None:
    """Raise LedgerError if *entries* would make any running (pool, vintage) balance negative.

    R6 checked on the ledger as it stands inside the writer's lock, date by date, so
    that a debit dated before a credit is caught as well as an overdraft.
    """
    cols = LEDGER_CHECK_COLUMNS
    both = pd.concat([existing[cols], pd.DataFrame(entries)[cols]], ignore_index=True)
    both["effective_date"] = pd.to_datetime(both["effective_date"])
    check_nonnegative(both)

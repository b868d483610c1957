"""The quota ledger (指标台账), pure part: balances, statements and the entries to write.

A pool's balance is never stored: it is the sum of the pool's entries (see
``docs/ledger-and-stock.md``). Every function here takes the ledger as a frame
(the ``quota_ledger`` layer) and either summarises it or returns the *new*
entries a caller should append; none of them writes. The caller (the workspace)
appends in one transaction and repeats :func:`check_nonnegative` under its lock,
which is what makes R6 hold under concurrency; the functions here make it hold
for any one sequence of operations.

Pools and vintages
------------------
Each entry belongs to a pool (``new_construction``, ``linkage_surplus``,
``comp_area``, ``comp_paddy`` in m²; ``comp_grain`` in kg/year) and a vintage
``year`` (the plan year of plan quota, the credit year of other credits). The
balance of a (pool, year) pair is the sum of its entries' ``amount`` whose
``effective_date`` is on or before the date asked about.

Entry ids are deterministic (run id or source plus a sequence number), so that
calling a function twice on the same ledger gives identical entries.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any, cast

import numpy as np
import pandas as pd

from landquota.errors import DataError, LedgerError, ParameterError
from landquota.rules.areas import m2_to_ha, m2_to_mu
from landquota.store.ledger_check import (
    AREA_POOLS,
    TOLERANCE,
    check_nonnegative,
)
from landquota.store.ledger_check import normalise_entries as _normalise
from landquota.store.ledger_check import unit_of as _unit
from landquota.store.schema import POOLS, layer

__all__ = [
    "AREA_POOLS",
    "available_balances",
    "balances",
    "carryover_expiries",
    "check_nonnegative",
    "debit_entries",
    "empty_entries",
    "reversal_entries",
    "statement",
]

#: Allocation columns (the ``allocations`` layer) and the pool each one debits.
ALLOCATION_POOLS: dict[str, str] = {
    "new_quota_m2": "new_construction",
    "linkage_quota_m2": "linkage_surplus",
    "comp_area_m2": "comp_area",
    "comp_paddy_m2": "comp_paddy",
    "comp_grain_kg": "comp_grain",
}

_LEDGER = layer("quota_ledger")


def _ts(d: date | datetime | pd.Timestamp | str, name: str) -> pd.Timestamp:
    """Return *d* as a naive midnight Timestamp, or raise a ParameterError naming *name*."""
    try:
        ts = pd.Timestamp(d)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"{name}={d!r} is not a date; give e.g. date(2014, 4, 30)") from exc
    if pd.isna(ts):
        raise ParameterError(f"{name}={d!r} is not a date; give e.g. date(2014, 4, 30)")
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.normalize()


def empty_entries() -> pd.DataFrame:
    """Return an empty ledger frame with the ``quota_ledger`` columns and dtypes."""
    return _entries_frame([])


def _entries_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Build new ledger entries with every ``quota_ledger`` column in canonical dtypes."""
    dtypes = {
        "text": "str",
        "json": "str",
        "real": "float64",
        "integer": "Int64",
        "date": "datetime64[ns]",
        "datetime": "datetime64[ns, UTC]",
    }
    cols: dict[str, pd.Series] = {}
    for col in _LEDGER.columns:
        values = [r.get(col.name) for r in rows]
        s = pd.Series(values, dtype="object")
        if col.type == "date":
            cols[col.name] = pd.to_datetime(s).astype("datetime64[ns]")
        elif col.type == "datetime":
            cols[col.name] = pd.to_datetime(s, utc=True).astype("datetime64[ns, UTC]")
        elif col.type in ("text", "json"):
            cols[col.name] = s.astype("str").where(s.notna())
        else:
            cols[col.name] = s.astype(cast(Any, dtypes[col.type]))
    return pd.DataFrame(cols, index=pd.RangeIndex(len(rows)))


def _stamp(
    frame: pd.DataFrame, entered_at: datetime | pd.Timestamp | None, entered_by: str | None
) -> pd.DataFrame:
    # The caller fills these at write time (R6 is checked again there); here
    # they are optional so that the pure functions stay deterministic.
    if entered_at is not None and len(frame):
        frame["entered_at"] = pd.Series(
            pd.to_datetime([entered_at] * len(frame), utc=True), index=frame.index
        ).astype("datetime64[ns, UTC]")
    if entered_by is not None and len(frame):
        frame["entered_by"] = pd.Series([entered_by] * len(frame), index=frame.index, dtype="str")
    return frame


def _with_units(df: pd.DataFrame, value_cols: Iterable[str]) -> pd.DataFrame:
    """Add ``unit`` and ``<col>_ha`` / ``<col>_mu`` columns (NaN for the kg pool)."""
    area = df["pool"].isin(AREA_POOLS)
    df["unit"] = np.where(area, "m2", "kg")
    df["unit"] = df["unit"].astype("str")
    for col in value_cols:
        df[f"{col}_ha"] = m2_to_ha(df[col].where(area))
        df[f"{col}_mu"] = m2_to_mu(df[col].where(area))
    return df


def balances(
    entries: pd.DataFrame, *, as_of: date | None = None, by_year: bool = False
) -> pd.DataFrame:
    """Balance of every pool (and vintage year) as the sum of its entries.

    Parameters
    ----------
    entries : pandas.DataFrame
        The ``quota_ledger`` layer.
    as_of : datetime.date, optional
        Count only entries whose ``effective_date`` is on or before this date;
        ``None`` counts every entry.
    by_year : bool, default False
        One row per (pool, vintage year) that has entries, instead of one row per
        pool.

    Returns
    -------
    pandas.DataFrame
        Columns ``pool`` (and ``year``), ``balance`` (m² for area pools, kg/year
        for ``comp_grain``), ``unit``, ``balance_ha`` and ``balance_mu`` (NaN for
        ``comp_grain``). Without ``by_year`` every pool of the schema has a row, in
        schema order, zero when it has no entries.

    Examples
    --------
    >>> e = pd.DataFrame({"entry_id": ["a"], "pool": ["new_construction"],
    ...     "kind": ["plan_issue"], "amount": [30_000.0], "year": [2014],
    ...     "effective_date": [pd.Timestamp("2014-01-01")], "source": ["粤国土 1号"]})
    >>> row = balances(e).iloc[0]
    >>> row["pool"], float(row["balance"]), float(row["balance_ha"]), float(row["balance_mu"])
    ('new_construction', 30000.0, 3.0, 45.0)
    """
    df = _normalise(entries)
    if as_of is not None:
        df = df[df["effective_date"] <= _ts(as_of, "as_of")]
    keys = ["pool", "year"] if by_year else ["pool"]
    sums = df.groupby(keys, sort=False)["amount"].sum()
    if by_year:
        out = sums.rename("balance").reset_index()
        out["_order"] = out["pool"].map({p: i for i, p in enumerate(POOLS)})
        out = out.sort_values(["_order", "year"]).drop(columns="_order")
        out["year"] = out["year"].astype("Int64")
    else:
        out = pd.DataFrame({"pool": list(POOLS)})
        out["balance"] = out["pool"].map(sums).fillna(0.0).astype("float64")
    out["pool"] = out["pool"].astype("str")
    return _with_units(out.reset_index(drop=True), ["balance"])


def statement(entries: pd.DataFrame, *, start: date, end: date) -> pd.DataFrame:
    """Statement per pool for the period ``start`` … ``end`` (both days included).

    Opening counts entries effective before ``start``; credits and debits are the
    positive and (as positive numbers) negative amounts effective in the period,
    whatever their kind (so a reversal of a debit is a credit); closing =
    opening + credits − debits, which equals the balance as of ``end``.

    Parameters
    ----------
    entries : pandas.DataFrame
        The ``quota_ledger`` layer.
    start, end : datetime.date
        First and last day of the period.

    Returns
    -------
    pandas.DataFrame
        One row per pool (schema order): ``pool``, ``opening``, ``credits``,
        ``debits``, ``closing``, ``unit``, and each figure again in ha and mu
        (``opening_ha`` … ``closing_mu``; NaN for ``comp_grain``).

    Raises
    ------
    ParameterError
        ``end`` is before ``start``.
    """
    t0, t1 = _ts(start, "start"), _ts(end, "end")
    if t1 < t0:
        raise ParameterError(f"end={end!r} is before start={start!r}; swap them")
    df = _normalise(entries)
    eff, amt = df["effective_date"], df["amount"]
    inside = (eff >= t0) & (eff <= t1)
    parts = pd.DataFrame(
        {
            "pool": df["pool"],
            "opening": amt.where(eff < t0, 0.0),
            "credits": amt.where(inside & (amt > 0), 0.0),
            "debits": (-amt).where(inside & (amt < 0), 0.0),
        }
    )
    sums = parts.groupby("pool").sum()
    out = pd.DataFrame({"pool": pd.Series(POOLS, dtype="str")})
    for col in ("opening", "credits", "debits"):
        out[col] = out["pool"].map(sums[col]).fillna(0.0).astype("float64")
    out["closing"] = out["opening"] + out["credits"] - out["debits"]
    return _with_units(out, ["opening", "credits", "debits", "closing"])


def _expiry_date(year: int, carry_years: int) -> pd.Timestamp:
    """First day on which plan quota of vintage *year* may no longer be used.

    Quota of plan year Y may be used in Y and carried over for ``carry_years``
    more calendar years, so it expires on 1 January of Y + carry_years + 1.
    """
    return pd.Timestamp(year=year + carry_years + 1, month=1, day=1)


def _check_carry_years(carry_years: int) -> None:
    if isinstance(carry_years, bool) or not isinstance(carry_years, int) or carry_years < 0:
        raise ParameterError(
            f"carry_years={carry_years!r} must be a whole number of years >= 0 "
            "(the default, 2, lets plan quota of year Y be used until the end of Y + 2)"
        )


def carryover_expiries(
    entries: pd.DataFrame,
    *,
    as_of: date,
    carry_years: int = 2,
    entered_at: datetime | None = None,
    entered_by: str | None = None,
) -> pd.DataFrame:
    """Return the ``expiry`` entries that retire plan quota past its carry-over window.

    Plan quota (pool ``new_construction``) of vintage Y may be used in year Y and
    carried over ``carry_years`` more years; from 1 January of
    Y + ``carry_years`` + 1 whatever is left of the vintage expires. Expiry is
    an explicit entry, never a silent filter, so that statements show it.

    The remainder is the vintage's balance counting every entry effective on or
    before ``as_of`` (earlier expiries included), so the function is idempotent:
    once its entries are written, calling it again returns none. A later credit
    to an expired vintage (the reversal of an old run) is expired again by the
    next call.

    Parameters
    ----------
    entries : pandas.DataFrame
        The ``quota_ledger`` layer.
    as_of : datetime.date
        Vintages whose expiry date is on or before this date are expired.
    carry_years : int, default 2
        Years plan quota may be carried over after its plan year.
    entered_at, entered_by : optional
        Filled in by the caller at write time.

    Returns
    -------
    pandas.DataFrame
        New entries (``quota_ledger`` columns): kind ``expiry``, amount = −remainder,
        ``effective_date`` = the expiry date (or the last entry of the vintage
        when that is later), ``source`` = ``expiry:<year>``, id
        ``expiry:<year>:<n>``.
    """
    _check_carry_years(carry_years)
    t = _ts(as_of, "as_of")
    df = _normalise(entries)
    df = df[(df["pool"] == "new_construction") & (df["effective_date"] <= t)]
    rows: list[dict[str, Any]] = []
    for year, grp in df.groupby("year", sort=True):
        y = int(cast(int, year))
        expires = _expiry_date(y, carry_years)
        remainder = float(grp["amount"].sum())
        if expires > t or remainder <= TOLERANCE:
            continue
        n = int((grp["kind"] == "expiry").sum()) + 1
        rows.append(
            {
                "entry_id": f"expiry:{y}:{n}",
                "pool": "new_construction",
                "kind": "expiry",
                "amount": -remainder,
                "year": y,
                "effective_date": max(expires, grp["effective_date"].max()),
                "source": f"expiry:{y}",
                "note": f"plan quota of {y} not used by the end of {y + carry_years}",
            }
        )
    return _stamp(_entries_frame(rows), entered_at, entered_by)


def reversal_entries(
    entries: pd.DataFrame,
    *,
    run_id: str,
    as_of: date | None = None,
    entered_at: datetime | None = None,
    entered_by: str | None = None,
) -> pd.DataFrame:
    """Return the entries that reverse every not-yet-reversed entry of a run.

    Corrections are new entries, never edits: each entry of ``run_id`` gets an
    opposite entry (kind ``reversal``, same pool and vintage, ``reverses`` = the
    original id). Entries already reversed are skipped, so reverting twice
    writes nothing the second time.

    Parameters
    ----------
    entries : pandas.DataFrame
        The ``quota_ledger`` layer.
    run_id : str
        The run to revert.
    as_of : datetime.date, optional
        Effective date of the reversals; by default each reversal is effective
        on its original entry's date (the run's effect disappears from every
        later balance, and statements of closed periods are unchanged only if
        ``as_of`` is given).
    entered_at, entered_by : optional
        Filled in by the caller at write time.

    Returns
    -------
    pandas.DataFrame
        New entries with ids ``<run_id>:R<nnnn>`` (in the order of the originals'
        ids).

    Raises
    ------
    LedgerError
        The run has no entries at all, or reversing would drive a balance
        negative (R6; possible only when a run's entries were credits).
    """
    if not isinstance(run_id, str) or not run_id:
        raise ParameterError(f"run_id={run_id!r} must be a non-empty run id string")
    df = _normalise(entries)
    own = df[(df["run_id"] == run_id) & (df["kind"] != "reversal")]
    if own.empty:
        raise LedgerError(
            f"run {run_id!r} has no ledger entries to reverse; only a committed run can be "
            "reverted (a draft has written nothing)"
        )
    done = set(df["reverses"].dropna().astype(str))
    todo = own[~own["entry_id"].astype(str).isin(done)].sort_values("entry_id")
    n0 = int(((df["run_id"] == run_id) & (df["kind"] == "reversal")).sum())
    when = None if as_of is None else _ts(as_of, "as_of")
    rows = [
        {
            "entry_id": f"{run_id}:R{n0 + i:04d}",
            "pool": r.pool,
            "kind": "reversal",
            "amount": -float(cast(float, r.amount)),
            "year": int(cast(int, r.year)),
            "effective_date": r.effective_date if when is None else when,
            "source": run_id,
            "project_id": r.project_id,
            "run_id": run_id,
            "reverses": r.entry_id,
            "note": f"reversal of {r.entry_id}",
        }
        for i, r in enumerate(todo.itertuples(index=False), start=1)
    ]
    new = _entries_frame(rows)
    if len(new):
        check_nonnegative(pd.concat([df, new], ignore_index=True))
    return _stamp(new, entered_at, entered_by)


def _available(df: pd.DataFrame, pool: str, t: pd.Timestamp) -> dict[int, float]:
    """Amount of each vintage of *pool* that can be debited on date *t* (R6).

    That is the smallest running balance from *t* onwards: a debit now must not
    make any later-dated balance negative either.
    """
    sub = df[df["pool"] == pool]
    out: dict[int, float] = {}
    for year, grp in sub.groupby("year", sort=True):
        daily = grp.groupby("effective_date")["amount"].sum().sort_index()
        running = daily.cumsum()
        now = float(running[running.index <= t].iloc[-1]) if (running.index <= t).any() else 0.0
        later = running[running.index > t]
        out[int(cast(int, year))] = min([now, *later.tolist()])
    return out


def available_balances(
    entries: pd.DataFrame, *, as_of: date, carry_years: int = 2
) -> dict[str, float]:
    """Return what each pool can give a run as of a date: the balance it may use.

    The same vintages :func:`debit_entries` draws on: entries effective by
    ``as_of``, and for plan quota only the vintages still inside their carry-over
    window, so a run never plans with quota that its commit could not debit.

    Examples
    --------
    >>> e = pd.DataFrame({"entry_id": ["a", "b"], "pool": ["new_construction"] * 2,
    ...     "kind": ["plan_issue"] * 2, "amount": [10_000.0, 20_000.0], "year": [2010, 2014],
    ...     "effective_date": [pd.Timestamp("2010-01-01"), pd.Timestamp("2014-01-01")],
    ...     "source": ["x", "y"]})
    >>> available_balances(e, as_of=date(2014, 4, 30))["new_construction"]
    20000.0
    """
    _check_carry_years(carry_years)
    t = _ts(as_of, "as_of")
    df = _normalise(entries)
    out: dict[str, float] = {}
    for pool in POOLS:
        v = _available(df, pool, t)
        if pool == "new_construction":
            v = {y: a for y, a in v.items() if _expiry_date(y, carry_years) > t}
        out[pool] = float(sum(max(a, 0.0) for a in v.values()))
    return out


def debit_entries(
    allocation_frame: pd.DataFrame,
    entries: pd.DataFrame,
    *,
    run_id: str,
    as_of: date,
    carry_years: int = 2,
    entered_at: datetime | None = None,
    entered_by: str | None = None,
) -> pd.DataFrame:
    """Turn a run's allocations into ledger debits, oldest vintage first (FIFO).

    Each project's ``new_quota_m2``, ``linkage_quota_m2``, ``comp_area_m2``,
    ``comp_paddy_m2`` and ``comp_grain_kg`` debit the pools ``new_construction``,
    ``linkage_surplus``, ``comp_area``, ``comp_paddy`` and ``comp_grain``. A
    debit consumes the pool's vintages oldest plan year first, so carried-over
    plan quota is used before it expires; plan quota already past its carry-over
    window (see :func:`carryover_expiries`) is not used even if its expiry entry
    has not been written yet. Projects are taken in ``project_id`` order so that
    the split over vintages is reproducible.

    Parameters
    ----------
    allocation_frame : pandas.DataFrame
        Rows of the ``allocations`` layer of one run (``project_id`` and the five
        amount columns; missing amounts count as zero).
    entries : pandas.DataFrame
        The ``quota_ledger`` layer as it stands.
    run_id : str
        The run being committed; entry ids are ``<run_id>:<nnnn>``.
    as_of : datetime.date
        Effective date of the debits; only entries effective by then can be used.
    carry_years : int, default 2
        Carry-over window of plan quota.
    entered_at, entered_by : optional
        Filled in by the caller at write time.

    Returns
    -------
    pandas.DataFrame
        New entries (kind ``allocation``, negative amounts), one per project,
        pool and vintage consumed.

    Raises
    ------
    LedgerError
        A pool cannot cover a project's amount without going negative (R6): the
        message names the pool, the vintages and their balances and the amount;
        or the run already has debits in the ledger.
    DataError
        Missing ``project_id``, negative or non-numeric amounts.
    """
    if not isinstance(run_id, str) or not run_id:
        raise ParameterError(f"run_id={run_id!r} must be a non-empty run id string")
    _check_carry_years(carry_years)
    t = _ts(as_of, "as_of")
    df = _normalise(entries)
    if ((df["run_id"] == run_id) & (df["kind"] == "allocation")).any():
        raise LedgerError(
            f"run {run_id!r} already has debits in the ledger; a run is committed once "
            "(revert it first to commit it again)"
        )
    if "project_id" not in allocation_frame.columns:
        raise DataError("allocation_frame needs a 'project_id' column (the allocations layer)")
    alloc = pd.DataFrame(allocation_frame).copy()
    if alloc["project_id"].isna().any():
        raise DataError("allocation_frame has rows without project_id; every row names its project")
    for col in ALLOCATION_POOLS:
        if col not in alloc.columns:
            alloc[col] = 0.0
        try:
            alloc[col] = pd.to_numeric(alloc[col], errors="raise").astype("float64").fillna(0.0)
        except (TypeError, ValueError) as exc:
            raise DataError(f"allocation_frame column {col!r} is not numeric: {exc}") from exc
        bad = (alloc[col] < 0) | ~np.isfinite(alloc[col].to_numpy())
        if bad.any():
            i = alloc.index[bad][0]
            raise DataError(
                f"allocation_frame: project {alloc.at[i, 'project_id']!r} has {col}="
                f"{alloc.at[i, col]!r}; amounts given must be finite and >= 0"
            )
    alloc = alloc.sort_values("project_id", kind="stable")

    expired_before = t.year - carry_years  # vintages < this are past the carry-over window
    avail: dict[str, dict[int, float]] = {}
    for pool in ALLOCATION_POOLS.values():
        v = _available(df, pool, t)
        if pool == "new_construction":
            v = {y: a for y, a in v.items() if _expiry_date(y, carry_years) > t}
        avail[pool] = v

    rows: list[dict[str, Any]] = []
    for rec in alloc.itertuples(index=False):
        pid = str(rec.project_id)
        for col, pool in ALLOCATION_POOLS.items():
            need = float(getattr(rec, col))
            if need <= TOLERANCE:
                continue
            vintages = avail[pool]
            total = sum(max(a, 0.0) for a in vintages.values())
            if need > total + TOLERANCE:
                shown = ", ".join(f"{y}: {a:,.2f}" for y, a in sorted(vintages.items())) or "none"
                extra = (
                    f"; plan quota of {expired_before - 1} and earlier is past its "
                    "carry-over window"
                    if pool == "new_construction"
                    else ""
                )
                raise LedgerError(
                    f"R6: run {run_id!r}, project {pid!r}: {col}={need:,.2f} {_unit(pool)} "
                    f"exceeds the balance of pool {pool!r} as of {t.date().isoformat()}, "
                    f"{total:,.2f} {_unit(pool)} (by vintage year: {shown}){extra}. "
                    "Nothing was written; credit the pool or re-run the allocation."
                )
            for year in sorted(vintages):
                if need <= TOLERANCE:
                    break
                take = min(need, max(vintages[year], 0.0))
                if take <= TOLERANCE:
                    continue
                # last piece takes the exact remainder so the total debited is exact
                if need - take <= TOLERANCE:
                    take = need
                vintages[year] -= take
                need -= take
                rows.append(
                    {
                        "pool": pool,
                        "kind": "allocation",
                        "amount": -take,
                        "year": year,
                        "effective_date": t,
                        "source": run_id,
                        "project_id": pid,
                        "run_id": run_id,
                        "note": f"{col} of {pid}, vintage {year}",
                    }
                )
    for i, r in enumerate(rows, start=1):
        r["entry_id"] = f"{run_id}:{i:04d}"
    new = _entries_frame(rows)
    if len(new):
        check_nonnegative(pd.concat([df, new], ignore_index=True))
    return _stamp(new, entered_at, entered_by)

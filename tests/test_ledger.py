"""The quota ledger (pure part): balances, statements, FIFO debits, expiry, reversal, R6."""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd
import pytest

from landquota.errors import DataError, LedgerError, ParameterError
from landquota.rules.ledger import (
    balances,
    carryover_expiries,
    check_nonnegative,
    debit_entries,
    empty_entries,
    reversal_entries,
    statement,
)
from landquota.store.schema import layer


def led(*rows: tuple[Any, ...]) -> pd.DataFrame:
    """Entries from (entry_id, pool, kind, amount, year, effective_date[, run_id, reverses])."""
    recs = []
    for r in rows:
        eid, pool, kind, amount, year, eff, *rest = r
        recs.append(
            {
                "entry_id": eid,
                "pool": pool,
                "kind": kind,
                "amount": float(amount),
                "year": year,
                "effective_date": pd.Timestamp(eff),
                "source": rest[0] if rest else "粤国土资〔2014〕1号",
                "run_id": rest[0] if rest else None,
                "reverses": rest[1] if len(rest) > 1 else None,
            }
        )
    return pd.DataFrame(recs)


NC = "new_construction"


def plan(*vintages: tuple[int, float]) -> pd.DataFrame:
    """Plan quota of each vintage issued on 1 January of its year."""
    return led(*[(f"p{y}", NC, "plan_issue", a, y, f"{y}-01-01") for y, a in vintages])


def alloc(*rows: tuple[str, float], col: str = "new_quota_m2") -> pd.DataFrame:
    return pd.DataFrame({"project_id": [p for p, _ in rows], col: [a for _, a in rows]})


# --- units -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("m2", "ha", "mu"),
    [
        (10_000.0, 1.0, 15.0),  # 1 ha = 15 mu exactly
        (10_000.0 / 15, 1 / 15, 1.0),  # 1 mu = 666.67 m²
        (0.0, 0.0, 0.0),
        (1_500_000.0, 150.0, 2_250.0),  # a large annual plan: 150 ha
    ],
)
def test_ha_and_mu_columns(m2: float, ha: float, mu: float) -> None:
    b = balances(plan((2014, m2))).set_index("pool").loc[NC]
    s = statement(plan((2014, m2)), start=date(2014, 1, 1), end=date(2014, 12, 31))
    s = s.set_index("pool").loc[NC]
    assert (b["balance_ha"], b["balance_mu"]) == (pytest.approx(ha), pytest.approx(mu))
    assert (s["credits_ha"], s["closing_mu"]) == (pytest.approx(ha), pytest.approx(mu))


def test_balances_per_pool_with_units() -> None:
    e = pd.concat(
        [
            plan((2013, 10_000), (2014, 20_000)),
            led(("g", "comp_grain", "comp_credit", 500, 2014, "2014-02-01")),
        ]
    )
    b = balances(e).set_index("pool")
    assert b.index.tolist() == list(layer("quota_ledger").column("pool").codes or ())
    # 10,000 + 20,000 = 30,000 m² = 3 ha = 45 mu
    assert b.loc[NC, ["balance", "balance_ha", "balance_mu"]].tolist() == [30_000.0, 3.0, 45.0]
    assert b.loc["comp_area", "balance"] == 0.0
    assert b.loc["comp_grain", "unit"] == "kg"
    assert b.loc["comp_grain", "balance"] == 500.0
    assert pd.isna(b.loc["comp_grain", "balance_ha"])  # kg have no hectares
    by_year = balances(e, by_year=True)
    assert by_year[["pool", "year", "balance"]].values.tolist() == [
        [NC, 2013, 10_000.0],
        [NC, 2014, 20_000.0],
        ["comp_grain", 2014, 500.0],
    ]
    # as of 2013-12-31 only the 2013 vintage exists
    assert balances(e, as_of=date(2013, 12, 31)).set_index("pool").loc[NC, "balance"] == 10_000.0


def test_statement_arithmetic() -> None:
    e = pd.concat(
        [
            plan((2013, 100_000), (2014, 60_000)),
            led(
                ("d1", NC, "allocation", -30_000, 2013, "2014-03-01", "run1"),
                ("r1", NC, "reversal", 10_000, 2013, "2014-03-15", "run1", "d1"),
                ("d2", NC, "allocation", -5_000, 2014, "2015-01-05", "run2"),
            ),
        ]
    )
    s = statement(e, start=date(2014, 1, 1), end=date(2014, 12, 31)).set_index("pool")
    row = s.loc[NC]
    # opening = 100,000 (2013 issue); credits = 60,000 + 10,000 (reversal) = 70,000;
    # debits = 30,000; closing = 100,000 + 70,000 - 30,000 = 140,000 (d2 is in 2015)
    assert row[["opening", "credits", "debits", "closing"]].tolist() == [
        100_000.0,
        70_000.0,
        30_000.0,
        140_000.0,
    ]
    assert row["closing"] == row["opening"] + row["credits"] - row["debits"]
    assert (
        row["closing"] == balances(e, as_of=date(2014, 12, 31)).set_index("pool").loc[NC, "balance"]
    )
    # 140,000 m² = 14 ha = 210 mu; 30,000 m² = 3 ha = 45 mu
    assert (row["closing_ha"], row["closing_mu"]) == (14.0, 210.0)
    assert (row["debits_ha"], row["debits_mu"]) == (3.0, 45.0)
    for pool in s.index.drop(NC):
        assert s.loc[pool, ["opening", "credits", "debits", "closing"]].tolist() == [0.0] * 4


def test_statement_rejects_reversed_period() -> None:
    with pytest.raises(ParameterError, match="end="):
        statement(plan((2014, 1)), start=date(2014, 12, 31), end=date(2014, 1, 1))


# --- R6 ----------------------------------------------------------------------------------


def test_r6_running_balance_never_negative() -> None:
    ok = pd.concat(
        [plan((2014, 10_000)), led(("d", NC, "allocation", -10_000, 2014, "2014-01-01"))]
    )
    check_nonnegative(ok)  # credit and debit on the same day: 0, allowed
    # a debit dated before its credit: -10,000 on 2013-12-31 although the end balance is 0
    early = pd.concat(
        [plan((2014, 10_000)), led(("d", NC, "allocation", -10_000, 2014, "2013-12-31"))]
    )
    with pytest.raises(LedgerError, match=r"'new_construction' vintage 2014 .*-10,000\.00"):
        check_nonnegative(early)
    # vintages do not lend to each other: 2014 has 10,000, 2013 is debited 1
    cross = pd.concat([plan((2014, 10_000)), led(("d", NC, "allocation", -1, 2013, "2014-02-01"))])
    with pytest.raises(LedgerError, match="vintage 2013"):
        check_nonnegative(cross)


def test_r6_debit_refused_when_pool_short() -> None:
    e = plan((2013, 10_000), (2014, 20_000))
    # 10,000 + 20,000 = 30,000 available; 30,001 asked
    with pytest.raises(
        LedgerError, match=r"new_construction.*30,000\.00.*2013: 10,000\.00, 2014: 20,000\.00"
    ):
        debit_entries(alloc(("P1", 30_001.0)), e, run_id="run1", as_of=date(2014, 5, 1))
    # each of R4's three dimensions is its own pool: paddy short while the rest is ample
    comp = led(
        ("a", "comp_area", "comp_credit", 50_000, 2014, "2014-01-01"),
        ("b", "comp_paddy", "comp_credit", 1_000, 2014, "2014-01-01"),
    )
    a = pd.DataFrame({"project_id": ["P1"], "comp_area_m2": [5_000.0], "comp_paddy_m2": [4_500.0]})
    with pytest.raises(LedgerError, match=r"comp_paddy_m2=4,500\.00.*'comp_paddy'"):
        debit_entries(a, comp, run_id="run1", as_of=date(2014, 5, 1))


def test_r6_later_dated_debit_is_respected() -> None:
    # 2014 vintage: +10,000 on 1 Jan; another run already debits 8,000 effective 1 June.
    # On 1 May only min(10,000, 10,000 - 8,000) = 2,000 may be taken.
    e = pd.concat([plan((2014, 10_000)), led(("x", NC, "allocation", -8_000, 2014, "2014-06-01"))])
    with pytest.raises(LedgerError, match=r"2,000\.00"):
        debit_entries(alloc(("P1", 2_500.0)), e, run_id="run1", as_of=date(2014, 5, 1))
    got = debit_entries(alloc(("P1", 2_000.0)), e, run_id="run1", as_of=date(2014, 5, 1))
    assert got["amount"].tolist() == [-2_000.0]


# --- FIFO debits -------------------------------------------------------------------------


def test_fifo_oldest_vintage_first() -> None:
    e = plan((2012, 10_000), (2013, 20_000), (2014, 50_000))
    a = alloc(("P2", 10_000.0), ("P1", 25_000.0))
    got = debit_entries(a, e, run_id="run1", as_of=date(2014, 5, 1))
    # projects in id order: P1 takes 10,000 of 2012 and 15,000 of 2013; P2 takes the
    # remaining 5,000 of 2013 and 5,000 of 2014.
    assert got[["entry_id", "project_id", "year", "amount"]].values.tolist() == [
        ["run1:0001", "P1", 2012, -10_000.0],
        ["run1:0002", "P1", 2013, -15_000.0],
        ["run1:0003", "P2", 2013, -5_000.0],
        ["run1:0004", "P2", 2014, -5_000.0],
    ]
    assert set(got["kind"]) == {"allocation"} and set(got["run_id"]) == {"run1"}
    assert (got["effective_date"] == pd.Timestamp("2014-05-01")).all()
    assert list(got.columns) == list(layer("quota_ledger").column_names)
    after = balances(pd.concat([e, got]), by_year=True).set_index("year")["balance"]
    assert after.tolist() == [0.0, 0.0, 45_000.0]
    # re-running gives identical output
    pd.testing.assert_frame_equal(got, debit_entries(a, e, run_id="run1", as_of=date(2014, 5, 1)))


def test_fifo_skips_expired_vintage() -> None:
    # carry 2 years: 2011 quota expired on 2014-01-01 (no expiry entry written yet);
    # 2012 is usable to the end of 2014.
    e = plan((2011, 10_000), (2012, 5_000), (2014, 60_000))
    got = debit_entries(alloc(("P1", 8_000.0)), e, run_id="r", as_of=date(2014, 5, 1))
    assert got[["year", "amount"]].values.tolist() == [[2012, -5_000.0], [2014, -3_000.0]]
    with pytest.raises(LedgerError, match="past its carry-over window"):
        debit_entries(alloc(("P1", 65_001.0)), e, run_id="r", as_of=date(2014, 5, 1))


def test_all_five_pools_debited() -> None:
    e = led(
        *[
            (f"c{i}", pool, "opening", 1_000_000, 2014, "2014-01-01")
            for i, pool in enumerate(layer("quota_ledger").column("pool").codes or ())
        ]
    )
    a = pd.DataFrame(
        {
            "project_id": ["P1"],
            "new_quota_m2": [5_000.0],
            "linkage_quota_m2": [1_000.0],
            "comp_area_m2": [4_500.0],
            "comp_paddy_m2": [4_500.0],
            "comp_grain_kg": [3_000.0],
        }
    )
    got = debit_entries(a, e, run_id="r", as_of=date(2014, 5, 1))
    assert dict(zip(got["pool"], got["amount"], strict=True)) == {
        NC: -5_000.0,
        "linkage_surplus": -1_000.0,
        "comp_area": -4_500.0,
        "comp_paddy": -4_500.0,
        "comp_grain": -3_000.0,
    }


def test_run_cannot_be_debited_twice() -> None:
    e = plan((2014, 50_000))
    first = debit_entries(alloc(("P1", 1.0)), e, run_id="r", as_of=date(2014, 5, 1))
    with pytest.raises(LedgerError, match="already has debits"):
        debit_entries(alloc(("P1", 1.0)), pd.concat([e, first]), run_id="r", as_of=date(2014, 5, 1))


@pytest.mark.parametrize(
    ("frame", "match"),
    [
        (pd.DataFrame({"project_id": ["P1"], "new_quota_m2": [-1.0]}), ">= 0"),
        (pd.DataFrame({"project_id": [None], "new_quota_m2": [1.0]}), "without project_id"),
        (pd.DataFrame({"new_quota_m2": [1.0]}), "'project_id'"),
        (pd.DataFrame({"project_id": ["P1"], "comp_grain_kg": ["lots"]}), "not numeric"),
    ],
)
def test_invalid_allocation_frames(frame: pd.DataFrame, match: str) -> None:
    with pytest.raises(DataError, match=match):
        debit_entries(frame, plan((2014, 1)), run_id="r", as_of=date(2014, 5, 1))


def test_zero_amounts_write_nothing() -> None:
    got = debit_entries(alloc(("P1", 0.0)), plan((2014, 1)), run_id="r", as_of=date(2014, 5, 1))
    assert got.empty


# --- carry-over expiry -------------------------------------------------------------------


def test_carryover_expiry_explicit_and_idempotent() -> None:
    # 2012 vintage: 10,000 issued, 4,000 used -> 6,000 left. With 2 carry-over years it
    # may be used to the end of 2014 and expires on 2015-01-01.
    e = pd.concat(
        [
            plan((2012, 10_000), (2014, 3_000)),
            led(("d", NC, "allocation", -4_000, 2012, "2013-06-01", "run1")),
        ]
    )
    assert carryover_expiries(e, as_of=date(2014, 12, 31)).empty
    x = carryover_expiries(e, as_of=date(2015, 1, 1))
    assert x[["entry_id", "kind", "year", "amount"]].values.tolist() == [
        ["expiry:2012:1", "expiry", 2012, -6_000.0]
    ]
    assert x.iloc[0]["effective_date"] == pd.Timestamp("2015-01-01")
    both = pd.concat([e, x], ignore_index=True)
    check_nonnegative(both)
    assert carryover_expiries(both, as_of=date(2015, 6, 1)).empty  # idempotent
    by_year = balances(both, by_year=True).set_index("year")["balance"]
    assert by_year.to_dict() == {2012: 0.0, 2014: 3_000.0}
    # carry 0 years: 2014 quota expires on 2015-01-01 as well
    assert carryover_expiries(e, as_of=date(2015, 1, 1), carry_years=0)["year"].tolist() == [
        2012,
        2014,
    ]


def test_expiry_of_a_late_recredit() -> None:
    # 2012 expired on 2015-01-01; reverting run1 on 2015-03-01 puts 4,000 back in 2012,
    # which the next call expires again, dated on the reversal.
    e = pd.concat(
        [plan((2012, 10_000)), led(("d", NC, "allocation", -4_000, 2012, "2013-06-01", "run1"))]
    )
    x1 = carryover_expiries(e, as_of=date(2015, 1, 1))
    e = pd.concat([e, x1], ignore_index=True)
    rev = reversal_entries(e, run_id="run1", as_of=date(2015, 3, 1))
    e = pd.concat([e, rev], ignore_index=True)
    x2 = carryover_expiries(e, as_of=date(2015, 3, 1))
    assert x2[["entry_id", "amount"]].values.tolist() == [["expiry:2012:2", -4_000.0]]
    assert x2.iloc[0]["effective_date"] == pd.Timestamp("2015-03-01")


@pytest.mark.parametrize("bad", [-1, 1.5, True, "2"])
def test_carry_years_must_be_whole(bad: Any) -> None:
    with pytest.raises(ParameterError, match="carry_years"):
        carryover_expiries(plan((2014, 1)), as_of=date(2015, 1, 1), carry_years=bad)


# --- reversal ----------------------------------------------------------------------------


def test_reversal_restores_balances_once() -> None:
    e = plan((2013, 10_000), (2014, 20_000))
    d = debit_entries(alloc(("P1", 12_000.0)), e, run_id="run1", as_of=date(2014, 5, 1))
    e1 = pd.concat([e, d], ignore_index=True)
    rev = reversal_entries(e1, run_id="run1")
    assert rev["entry_id"].tolist() == ["run1:R0001", "run1:R0002"]
    assert rev["reverses"].tolist() == d["entry_id"].tolist()
    assert rev["amount"].tolist() == [10_000.0, 2_000.0]  # opposite of -10,000 and -2,000
    assert set(rev["kind"]) == {"reversal"}
    e2 = pd.concat([e1, rev], ignore_index=True)
    pd.testing.assert_frame_equal(balances(e2, by_year=True), balances(e, by_year=True))
    assert reversal_entries(e2, run_id="run1").empty  # never reversed twice
    with pytest.raises(LedgerError, match="'nope'"):
        reversal_entries(e2, run_id="nope")


def test_entered_fields_are_the_callers() -> None:
    e = plan((2014, 10_000))
    d = debit_entries(alloc(("P1", 1.0)), e, run_id="r", as_of=date(2014, 5, 1))
    assert d["entered_at"].isna().all() and d["entered_by"].isna().all()
    stamped = debit_entries(
        alloc(("P1", 1.0)),
        e,
        run_id="r",
        as_of=date(2014, 5, 1),
        entered_at=pd.Timestamp("2014-05-01T08:00Z"),
        entered_by="gtj",
    )
    assert stamped["entered_by"].tolist() == ["gtj"]
    assert str(stamped["entered_at"].dtype) == "datetime64[ns, UTC]"


# --- malformed ledgers -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"pool": "cash"}, "pool='cash'"),
        ({"kind": "gift"}, "kind='gift'"),
        ({"amount": float("nan")}, "no amount"),
        ({"amount": float("inf")}, "finite"),
        ({"effective_date": None}, "no effective_date"),
    ],
)
def test_malformed_entries(change: dict[str, Any], match: str) -> None:
    e = plan((2014, 1)).assign(**change)
    with pytest.raises(DataError, match=match):
        balances(e)


def test_missing_column_and_duplicate_ids() -> None:
    with pytest.raises(DataError, match="effective_date"):
        balances(plan((2014, 1)).drop(columns="effective_date"))
    with pytest.raises(DataError, match="twice"):
        check_nonnegative(pd.concat([plan((2014, 1)), plan((2014, 1))]))


def test_empty_ledger() -> None:
    assert balances(empty_entries())["balance"].tolist() == [0.0] * 5
    assert balances(empty_entries(), by_year=True).empty
    check_nonnegative(empty_entries())

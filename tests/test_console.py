"""Terminal tables and values a clerk can read (landquota.outputs.console)."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from landquota import labels as lbl
from landquota.errors import ParameterError
from landquota.outputs.console import Col, cell, parse_date, reasons_text, render_table

RAW = ("NaN", "NaT", "None", "True", "False", "nan", "<NA>")


@pytest.mark.parametrize(
    ("value", "kind", "shown"),
    [
        (float("nan"), "m2", "—"), (None, "text", "—"), (pd.NaT, "date", "—"),
        (pd.NA, "int", "—"), (np.nan, "float", "—"),
        (True, "bool", "是 yes"), (np.bool_(False), "bool", "否 no"), (False, "text", "否 no"),
        (10_000.0, "m2", "10,000 m²\n1.00 ha · 15.00 亩"),  # 1 ha = 10,000 m² = 15 亩
        (30_000.0, "ha", "3.00 ha · 45.00 亩"),
        (279_500.0, "kg", "279,500 kg"), (317_000_000.0, "yuan", "317,000,000 元"),
        (0.108, "pct", "10.8%"), (pd.Timestamp("2014-04-30 13:00"), "date", "2014-04-30"),
        (date(2014, 4, 30), "text", "2014-04-30"), (12.0, "text", "12"),
    ],
)
def test_cell(value: object, kind: str, shown: str) -> None:
    assert cell(value, kind) == shown  # type: ignore[arg-type]


def test_codes_show_their_chinese_and_english_label() -> None:
    labels = lbl.label_map(lbl.ACCEPTANCE_LABELS)
    assert cell("passed", labels=labels) == "已验收 passed"
    assert cell("something_new", labels=labels) == "something_new"  # shown, not hidden


def test_a_table_has_no_raw_missing_or_boolean_values() -> None:
    df = pd.DataFrame(
        {
            "linkage_id": ["L01", "L02"],
            "acceptance": ["passed", "pending"],
            "acceptance_date": [pd.Timestamp("2013-11-26"), pd.NaT],
            "turnover_quota_m2": [164_700.0, np.nan],
            "balanced": [True, False],
        }
    )
    text = render_table(
        df,
        [
            Col("linkage_id", "项目区", "Area"),
            Col("acceptance", "验收", "Acceptance", labels=lbl.label_map(lbl.ACCEPTANCE_LABELS)),
            Col("acceptance_date", "验收日期", "Accepted", "date"),
            Col("turnover_quota_m2", "周转指标", "Turnover quota", "m2"),
            Col("balanced", "平衡", "Balanced", "bool"),
            Col("not_there", "无", "Absent"),  # absent columns are left out
        ],
        title="增减挂钩 Linkage",
        width=120,
    )
    for word in RAW:
        assert word not in text
    for shown in ("项目区", "Area", "已验收 passed", "164,700 m²", "16.47 ha · 247.05 亩",
                  "2013-11-26", "是 yes", "否 no", "—"):
        assert shown in text
    assert "Absent" not in text


def test_reasons_are_counted_in_chinese() -> None:
    text = reasons_text(["outranked,insufficient_new_quota", "outranked", None, ""])
    assert text == "指标优先保障了更高优先级项目 (R18) ×2；新增建设用地指标不足 (R3) ×1"
    assert "outranked" not in text
    assert reasons_text([]) == "—"


@pytest.mark.parametrize("text", ["20140430", "2014/04/30", "2014-4-30", "30.04.2014", "",
                                  "2014-02-30", "1899-12-31", "2200-01-01", "yesterday"])
def test_dates_are_strict(text: str) -> None:
    with pytest.raises(ParameterError, match="--as-of"):
        parse_date(text, option="--as-of")


def test_iso_date_is_accepted() -> None:
    assert parse_date("2014-04-30", option="--as-of") == date(2014, 4, 30)
    with pytest.raises(ParameterError):
        parse_date(" 2014-04-30", option="--as-of")  # nothing is guessed, not even blanks

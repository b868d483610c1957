"""Legal thresholds: one rule for every comparison against a figure of the law (R7–R11, R14).

A figure of the law is compared with the value *as the survey and the register
record it*, never with an unrounded float:

* **areas** are rounded to 0.01 m² (the unit of the third national land survey's
  tables and of the ledger) before they are compared, so a net cultivated area
  that computes as 350000.00000000006 m² is 35 ha exactly;
* **dates** are whole days: a time of day on either side is dropped, and a
  period of N years ends on the calendar anniversary (29 February + 1 year =
  28 February);
* **ratios** given as inputs (developed share, invested share) are compared as
  given: the law states them as fractions, not as measured areas.

The article's own words decide the comparison: 超过 ("exceeds", "more than") is
strict ``>``; 满 ("a full …") and 达到 ("reaches") are ``>=``; 不足 ("under") is
strict ``<``; 以内/内 ("within") is ``<=``.  :data:`THRESHOLDS` lists every
threshold the package applies, with its article; ``docs/rules.md`` prints it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Final, overload

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = [
    "AREA_UNIT_M2",
    "THRESHOLDS",
    "Threshold",
    "anniversary",
    "area_at_most",
    "area_exceeds",
    "area_units",
    "day",
    "full_years_reached",
    "more_than_years",
    "ratio_under",
]

#: The unit areas are compared in: 0.01 m² (survey tables, ledger).
AREA_UNIT_M2: Final = 0.01

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Threshold:
    """One legal threshold: where the package applies it and what the article says."""

    rule: str
    what: str
    comparison: str
    limit: str
    unit: str
    article: str
    wording: str
    where: str


#: Every threshold the package applies (printed in ``docs/rules.md``).
THRESHOLDS: Final[tuple[Threshold, ...]] = (
    Threshold(
        "R14",
        "other cultivated land of a site → State Council",
        "exceeds (>)",
        "35 ha = 350,000.00 m²",
        "0.01 m²",
        "Land Administration Law (2019) Art. 46 (土地管理法第四十六条)",
        "永久基本农田以外的耕地超过三十五公顷的",
        "rules.compliance.compliance_of_sites",
    ),
    Threshold(
        "R14",
        "other land of a site → State Council",
        "exceeds (>)",
        "70 ha = 700,000.00 m²",
        "0.01 m²",
        "Land Administration Law (2019) Art. 46 (土地管理法第四十六条)",
        "其他土地超过七十公顷的",
        "rules.compliance.compliance_of_sites",
    ),
    Threshold(
        "R7",
        "new construction of a linkage project area against reclaimed area",
        "at most (<=), plus the review's tolerance",
        "the reclaimed area",
        "0.01 m²",
        "Measures for urban–rural construction-land linkage pilots "
        "(城乡建设用地增减挂钩试点管理办法, 国土资发〔2008〕138号)",
        "建新地块总面积必须小于拆旧地块总面积",
        "rules.linkage.linkage_review",
    ),
    Threshold(
        "R8",
        "turnover quota returned: overdue",
        "more than 3 years after approval (>)",
        "approval date + 3 years",
        "whole days",
        "Measures for urban–rural construction-land linkage pilots "
        "(城乡建设用地增减挂钩试点管理办法, 国土资发〔2008〕138号)",
        "挂钩周转指标 … 在规定时间内（三年）用拆旧复垦的耕地面积归还",
        "rules.linkage.linkage_review",
    ),
    Threshold(
        "R9",
        "approval without land use or compensation lapses",
        "more than 2 years after approval (>)",
        "approval date + 2 years",
        "whole days",
        "two-year validity of conversion/expropriation approvals "
        "(批准文件有效期两年; domain note R9)",
        "经依法批准后，两年内未用地或未实施征地补偿安置方案的，有关批准文件自动失效",
        "rules.stock.idle_review (status lapsed)",
    ),
    Threshold(
        "R10",
        "not started: idle",
        "a full year after the agreed start (>=)",
        "agreed start + 1 year",
        "whole days",
        "Measures on the Disposal of Idle Land (闲置土地处置办法, 国土资源部令第53号, 2012) Art. 2",
        "超过…约定、规定的动工开发日期满一年未动工开发的",
        "rules.stock.idle_review (idle_rule not_started)",
    ),
    Threshold(
        "R10",
        "started, developed share low",
        "under (<)",
        "1/3 of the area to develop",
        "ratio as given",
        "Measures on the Disposal of Idle Land (2012) Art. 2",
        "已动工开发但开发建设用地面积占应动工开发建设用地总面积不足三分之一",
        "rules.stock.idle_review (idle_rule suspended_low_development)",
    ),
    Threshold(
        "R10",
        "started, invested share low",
        "under (<)",
        "25 % of the total investment",
        "ratio as given",
        "Measures on the Disposal of Idle Land (2012) Art. 2",
        "或者已投资额占总投资额不足百分之二十五",
        "rules.stock.idle_review (idle_rule suspended_low_investment)",
    ),
    Threshold(
        "R10",
        "started, suspended: idle",
        "a full year of suspension (>=)",
        "suspended since + 1 year",
        "whole days",
        "Measures on the Disposal of Idle Land (2012) Art. 2",
        "中止开发建设满一年的",
        "rules.stock.idle_review",
    ),
    Threshold(
        "R11",
        "enterprise-caused idle land: idle fee of 20 % of the land price",
        "a full year idle (>=)",
        "idle since + 1 year",
        "whole days",
        "Measures on the Disposal of Idle Land (2012) Art. 14",
        "未动工开发满一年的 … 按照土地出让或者划拨价款的百分之二十征缴土地闲置费",
        "rules.stock.idle_review (fee_due_yuan)",
    ),
    Threshold(
        "R11",
        "enterprise-caused idle land: reclaimed without compensation",
        "two full years idle (>=)",
        "idle since + 2 years",
        "whole days",
        "Measures on the Disposal of Idle Land (2012) Art. 14",
        "未动工开发满两年的 … 无偿收回国有建设用地使用权",
        "rules.stock.idle_review (reclaim_deadline, reclaim_due)",
    ),
)


# ----------------------------------------------------------------------- areas


@overload
def area_units(m2: float) -> float: ...
@overload
def area_units(m2: Sequence[float] | FloatArray | pd.Series) -> FloatArray: ...
def area_units(m2: Any) -> Any:
    """Return the area in whole 0.01 m² units, rounded half up (四舍五入); NaN stays NaN.

    The figure is first taken to 1e-6 of a unit, so that a float such as
    350000.00000000006 or 0.29 × 100 = 28.999999999999996 counts as the decimal
    it stands for before the half-up rounding.
    """
    x = np.asarray(m2, dtype=np.float64) * 100.0
    units = np.floor(np.round(x, 6) + 0.5)
    if np.ndim(units) == 0:
        return float(units)
    return units


@overload
def area_exceeds(value_m2: float, limit_m2: float) -> bool: ...
@overload
def area_exceeds(value_m2: FloatArray | pd.Series, limit_m2: float) -> BoolArray: ...
def area_exceeds(value_m2: Any, limit_m2: float) -> Any:
    """超过: whether the area exceeds the limit, both taken to 0.01 m² (NaN: False)."""
    out = np.asarray(area_units(value_m2) > area_units(limit_m2))
    return bool(out) if out.ndim == 0 else out


@overload
def area_at_most(value_m2: float, limit_m2: float) -> bool: ...
@overload
def area_at_most(value_m2: FloatArray | pd.Series, limit_m2: Any) -> BoolArray: ...
def area_at_most(value_m2: Any, limit_m2: Any) -> Any:
    """不超过 / 小于等于: whether the area is at most the limit, both taken to 0.01 m² (NaN: False)."""
    out = np.asarray(area_units(value_m2) <= area_units(limit_m2))
    return bool(out) if out.ndim == 0 else out


# ----------------------------------------------------------------------- dates


def day(when: Any) -> pd.Timestamp:
    """Return *when* as a whole day (midnight, no time zone); NaT stays NaT."""
    ts = pd.Timestamp(when)
    if pd.isna(ts):
        return pd.NaT
    if ts.tzinfo is not None:
        ts = ts.tz_localize(None)
    return ts.normalize()


def anniversary(start: Any, years: int) -> pd.Timestamp:
    """Return the calendar anniversary of *start* as a whole day (2012-02-29 + 1 y = 2013-02-28)."""
    return pd.Timestamp(day(start) + pd.DateOffset(years=years))


def full_years_reached(start: Any, as_of: date | pd.Timestamp, years: int) -> bool:
    """满 N 年: whether N full years have passed by *as_of* (true ON the anniversary)."""
    if pd.isna(start):
        return False
    return bool(day(as_of) >= anniversary(start, years))


def more_than_years(start: Any, as_of: date | pd.Timestamp, years: int) -> bool:
    """超过 N 年: whether *as_of* is more than N years after *start* (from the day AFTER it)."""
    if pd.isna(start):
        return False
    return bool(day(as_of) > anniversary(start, years))


# ----------------------------------------------------------------------- ratios


def ratio_under(value: Any, limit: float) -> bool:
    """不足: whether a ratio given as input is under the limit (unknown: False)."""
    return bool(pd.notna(value) and float(value) < limit)

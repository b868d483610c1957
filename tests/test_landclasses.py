"""Land-class table (GB/T 21010-2017 + third survey) and its categories."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from landquota.errors import DataError, ParameterError
from landquota.rules.landclasses import (
    DEFAULT_GRAIN_KG_PER_M2,
    GROUPS,
    LAND_CLASSES,
    category_of,
    grain_yields,
    is_cultivated,
    is_paddy,
    land_class,
    nearest_codes,
)

# Codes named in the brief and in docs/domain.md: every one must be in the table.
REQUIRED = [
    "0101",
    "0102",
    "0103",
    "0201",
    "0202",
    "0203",
    "0204",
    "0301",
    "0302",
    "0303",
    "0304",
    "0305",
    "0306",
    "0307",
    "0401",
    "0402",
    "0403",
    "0404",
    "05H1",
    "0508",
    "0601",
    "0602",
    "0603",
    "0701",
    "0702",
    "08H1",
    "08H2",
    "0809",
    "0810",
    "09",
    "1001",
    "1002",
    "1003",
    "1004",
    "1005",
    "1006",
    "1007",
    "1008",
    "1009",
    "1101",
    "1102",
    "1103",
    "1104",
    "1104A",
    "1105",
    "1106",
    "1107",
    "1107A",
    "1108",
    "1109",
    "1110",
    "1201",
    "1202",
    "1203",
    "1204",
    "1205",
    "1206",
    "1207",
]

WETLAND = ("0303", "0304", "0306", "0402", "0603", "1105", "1106", "1108")


def domain_category(code: str) -> str:
    """docs/domain.md's category lists, transcribed independently of the table."""
    base = code[:4]
    n = int(base) if base.isdigit() else None
    if code[:2] in ("01", "02", "03") or base in ("0401", "0402", "0403", "1006"):
        return "agricultural"
    if base in ("1103", "1104", "1107", "1202", "1203"):
        return "agricultural"
    if code[:2] in ("05", "06", "07", "08", "09"):
        return "construction"
    if n is not None and (1001 <= n <= 1005 or 1007 <= n <= 1009 or n in (1109, 1201)):
        return "construction"
    if base in ("0404", "1101", "1102", "1105", "1106", "1108", "1110") or (
        n is not None and 1204 <= n <= 1207
    ):
        return "unused"
    raise AssertionError(f"domain.md does not list {code}")


@pytest.mark.parametrize("code", REQUIRED)
def test_required_codes_present_with_names(code: str) -> None:
    lc = land_class(code)
    assert lc.code == code
    assert lc.name_en and lc.name_zh
    assert lc.group in GROUPS


@pytest.mark.parametrize("code", list(LAND_CLASSES))
def test_category_matches_domain_rules(code: str) -> None:
    assert LAND_CLASSES[code].category == domain_category(code)


@pytest.mark.parametrize("code", WETLAND)
def test_wetland_group(code: str) -> None:
    assert land_class(code).group == "00"
    assert land_class(code).gbt_group == code[:2]


@pytest.mark.parametrize(
    ("code", "name_zh", "category"),
    [
        ("0101", "水田", "agricultural"),
        ("0303", "红树林地", "agricultural"),
        ("0603", "盐田", "construction"),
        ("1105", "沿海滩涂", "unused"),
        ("1203", "田坎", "agricultural"),  # ridges are agricultural (R3)
        ("05H1", "商业服务业设施用地", "construction"),
        ("1104A", "养殖坑塘", "agricultural"),
        ("09", "特殊用地", "construction"),
    ],
)
def test_known_rows(code: str, name_zh: str, category: str) -> None:
    assert land_class(code).name_zh == name_zh
    assert land_class(code).category == category


def test_cultivated_is_subset_of_agricultural() -> None:
    cultivated = {c for c, lc in LAND_CLASSES.items() if lc.cultivated}
    assert cultivated == {"0101", "0102", "0103"}
    assert all(LAND_CLASSES[c].category == "agricultural" for c in cultivated)
    assert [c for c, lc in LAND_CLASSES.items() if lc.paddy] == ["0101"]


def test_vectorised_functions_agree_with_table() -> None:
    codes = ["0101", "0702", "0101", " 05h1 ", "1206", "0103"]
    assert category_of(codes).tolist() == [
        "agricultural",
        "construction",
        "agricultural",
        "construction",
        "unused",
        "agricultural",
    ]
    assert is_cultivated(codes).tolist() == [True, False, True, False, False, True]
    assert is_paddy(pd.Series(codes)).tolist() == [True, False, True, False, False, False]
    assert is_cultivated("0102") is True
    assert is_paddy("0102") is False


def test_category_of_empty_input() -> None:
    assert category_of([]).shape == (0,)


@pytest.mark.parametrize(
    ("bad", "named", "suggested"),
    [
        ("101", "'101'", "'0101'"),  # leading zero lost in a spreadsheet
        ("0105", "'0105'", "'0101'"),
        ("05H3", "'05H3'", "'05H1'"),
        ("XYZ", "'XYZ'", "no close match"),
        (101, "101", "'0101'"),  # a number, not text
        (101.0, "101.0", "'0101'"),
    ],
)
def test_unknown_code_raises_with_suggestion(bad: object, named: str, suggested: str) -> None:
    with pytest.raises(DataError) as info:
        category_of(["0101", bad], where="parcels.land_class")
    message = str(info.value)
    assert named in message and suggested in message
    assert "parcels.land_class" in message


@pytest.mark.parametrize("missing", [None, math.nan, pd.NA])
def test_missing_code_raises(missing: object) -> None:
    with pytest.raises(DataError, match=r"missing at position\(s\) \[1\]"):
        category_of(np.array(["0101", missing], dtype=object))


def test_land_class_unknown_suggests() -> None:
    with pytest.raises(DataError, match="did you mean '0101'"):
        land_class("101")
    assert nearest_codes("1104B")[0] == "1104"


def test_grain_defaults_and_overrides() -> None:
    assert dict(DEFAULT_GRAIN_KG_PER_M2) == {"0101": 0.9, "0102": 0.75, "0103": 0.5}
    assert grain_yields({"0103": 0.6}) == {"0101": 0.9, "0102": 0.75, "0103": 0.6}
    with pytest.raises(TypeError):
        DEFAULT_GRAIN_KG_PER_M2["0101"] = 1.0  # type: ignore[index]


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"0201": 0.3}, "only the cultivated classes"),
        ({"0101": -1.0}, "finite yield"),
        ({"0101": math.inf}, "finite yield"),
        ({"0101": "lots"}, "finite yield"),
    ],
)
def test_grain_defaults_invalid(overrides: dict[str, float], match: str) -> None:
    with pytest.raises(ParameterError, match=match):
        grain_yields(overrides)

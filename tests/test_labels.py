"""Tests of landquota.labels: one Chinese/English label for every stored code."""

from __future__ import annotations

import re

import pytest

from landquota import labels
from landquota.allocation import runs
from landquota.allocation.model import REASON_CODES
from landquota.labels import (
    CODE_LABELS,
    LEVEL_LABELS,
    OUTCOME_LABELS,
    POOL_LABELS,
    REASON_LABELS,
    REASON_RULES,
    ZONE_TYPE_LABELS,
    label,
    label_map,
    reason_label,
)
from landquota.outputs import map_popups, report_base, summary
from landquota.rules import bulletin, compliance, stock
from landquota.store import schema

_CJK = re.compile(r"[\u4e00-\u9fff]")


def _schema_code_lists() -> dict[str, tuple[str, ...]]:
    """Every public code tuple of landquota.store.schema (upper-case name, tuple of text)."""
    return {
        name: value
        for name, value in vars(schema).items()
        if name.isupper()
        and isinstance(value, tuple)
        and value
        and all(isinstance(v, str) for v in value)
    }


#: Each code list with labels: the schema's, the idle review's, and every reason code.
CODE_LISTS: dict[str, tuple[str, ...]] = {
    **_schema_code_lists(),
    "STOCK_STATUSES": stock.STOCK_STATUSES,
    "IDLE_RULES": stock.IDLE_RULES,
    "REASONS": (*compliance.REASONS, *REASON_CODES),
}


def test_schema_code_lists_are_found() -> None:
    # The discovery above must see the lists the brief names; if schema renames one,
    # this fails instead of silently checking fewer lists.
    expected = {"LEVELS", "ALLOCATION_OUTCOMES", "POOLS", "ZONE_TYPES", "DISPOSAL_METHODS"}
    assert expected <= set(_schema_code_lists())


@pytest.mark.parametrize("name", sorted(CODE_LISTS))
def test_every_code_has_a_chinese_and_an_english_label(name: str) -> None:
    assert name in CODE_LABELS, f"landquota.labels.CODE_LABELS has no table for {name}"
    table = CODE_LABELS[name]
    for code in CODE_LISTS[name]:
        assert code in table, f"{name}: code {code!r} has no label"
        zh, en = table[code][0], table[code][1]
        assert _CJK.search(zh), f"{name}[{code!r}] Chinese label {zh!r} has no Chinese"
        assert en.strip() and not _CJK.search(en), f"{name}[{code!r}] English label {en!r}"


@pytest.mark.parametrize("name", sorted(CODE_LISTS))
def test_no_label_for_a_code_that_does_not_exist(name: str) -> None:
    # The other direction of drift: a label left behind after a code was renamed.
    assert set(CODE_LABELS[name]) == set(CODE_LISTS[name])


def test_labels_of_one_list_are_distinct() -> None:
    for name, table in CODE_LABELS.items():
        for lang in (0, 1):
            names = [v[lang] for v in table.values()]
            assert len(set(names)) == len(names), f"{name}: two codes share a label"


def test_reason_rules_name_rules_of_known_codes() -> None:
    assert set(REASON_RULES) <= set(REASON_LABELS)
    assert all(re.fullmatch(r"R\d{1,2}", r) for r in REASON_RULES.values())
    # The compliance module cites R13 for basic farmland and R15 for the zones.
    assert REASON_RULES["basic_farmland"] == "R13"
    assert {REASON_RULES[c] for c in ("eco_redline", "prohibited_zone", "restricted_zone")} == {
        "R15"
    }


def test_pool_units() -> None:
    # Grain capacity is counted in kg (R4), every other pool in m².
    assert {p: u for p, (_, _, u) in POOL_LABELS.items()} == {
        "new_construction": "m2",
        "linkage_surplus": "m2",
        "comp_area": "m2",
        "comp_paddy": "m2",
        "comp_grain": "kg",
    }


@pytest.mark.parametrize(
    ("table", "code", "kwargs", "expected"),
    [
        (LEVEL_LABELS, "county", {}, "县级 county"),
        (LEVEL_LABELS, "county", {"lang": "zh"}, "县级"),
        (LEVEL_LABELS, "county", {"lang": "en"}, "county"),
        (OUTCOME_LABELS, "partial", {"capitalize": True}, "部分安排 Partly funded"),
        (OUTCOME_LABELS, "partial", {"lang": "en", "capitalize": True}, "Partly funded"),
        (ZONE_TYPE_LABELS, "no_such_zone", {}, "no_such_zone"),  # unknown: shown as is
        (POOL_LABELS, "comp_grain", {"lang": "zh"}, "补充粮食产能指标"),
    ],
)
def test_label(table: object, code: str, kwargs: dict[str, object], expected: str) -> None:
    assert label(table, code, **kwargs) == expected  # type: ignore[arg-type]


def test_label_map_keeps_the_table_order() -> None:
    assert list(label_map(LEVEL_LABELS)) == list(schema.LEVELS)  # R18 order
    assert label_map(LEVEL_LABELS, lang="zh")["national"] == "国家级"


@pytest.mark.parametrize(
    ("code", "lang", "expected"),
    [
        ("basic_farmland", "zh", "占用永久基本农田 (R13)"),
        ("basic_farmland", "en", "on permanent basic farmland (R13)"),
        ("site_not_fixed", "zh", "项目选址未定"),  # no rule behind it
        ("made_up", "both", "made_up"),
    ],
)
def test_reason_label(code: str, lang: labels.Lang, expected: str) -> None:
    assert reason_label(code, lang=lang) == expected


def test_old_names_are_aliases_of_the_one_table() -> None:
    assert runs.OUTCOME_NAMES is OUTCOME_LABELS
    assert bulletin.LEVEL_NAMES is LEVEL_LABELS
    assert summary.POOL_NAMES is POOL_LABELS
    assert {c: reason_label(c, lang="zh") for c in REASON_LABELS} == runs.REASON_NAMES


@pytest.mark.parametrize(
    ("report_table", "map_table", "codes"),
    [
        (
            report_base._OUTCOME,
            {k: v[0] for k, v in map_popups._OUTCOMES.items()},
            schema.ALLOCATION_OUTCOMES,
        ),
        (
            report_base._STOCK_STATUS,
            {k: v[0] for k, v in map_popups._STOCK_STATUS.items()},
            stock.STOCK_STATUSES,
        ),
        (report_base._LEVEL, map_popups._LEVELS, schema.LEVELS),
        (report_base._APPROVAL, map_popups._APPROVAL, schema.APPROVAL_LEVELS),
        (report_base._CAUSE, map_popups._CAUSE, schema.CAUSES),
        (report_base._ACCEPTANCE, map_popups._ACCEPT, schema.ACCEPTANCE),
    ],
)
def test_reports_and_maps_use_the_same_words(
    report_table: dict[str, str], map_table: dict[str, str], codes: tuple[str, ...]
) -> None:
    # Maps capitalise legend entries; the words are the same.
    for code in codes:
        assert report_table[code].casefold() == map_table[code].casefold(), code


def test_every_planned_use_of_the_demo_has_a_chinese_and_an_english_label() -> None:
    from landquota.demo.build import build_demo
    from landquota.labels import PLANNED_USE_LABELS, label

    layers = build_demo(seed=2014, n_parcels=2_000)
    uses = set(layers["projects"]["planned_use"].dropna()) | set(
        layers["stock_land"]["planned_use"].dropna()
    )
    assert uses and uses <= set(PLANNED_USE_LABELS), uses - set(PLANNED_USE_LABELS)
    assert label(PLANNED_USE_LABELS, "transport") == "交通运输 transport"
    assert label(PLANNED_USE_LABELS, "港口") == "港口"  # free text is shown as stored

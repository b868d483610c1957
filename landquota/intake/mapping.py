"""Field mapping: which source field fills which contract column, and how values translate.

The standards' names (pinyin codes, Chinese names, aliases, DBF-cut forms:
:mod:`landquota.intake.fieldnames`) and the contract's own column names are
recognised without help; a YAML or TOML mapping file (:func:`load_mapping`) handles
other schemas, unit conversions and code values. :func:`_field_rules` settles the
mapping of one source.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from landquota.errors import ImportDataError
from landquota.intake.fieldnames import match_fields, normalize
from landquota.intake.report import ImportReport
from landquota.store.schema import Layer, layer

__all__ = ["SURVEY_FIELDS", "FieldRule", "Mapping_", "load_mapping"]


#: Standard field names of the third land survey (三调) and their contract column,
#: per layer. Matching ignores case. DLMC (class name) is checked, not stored.
SURVEY_FIELDS: Mapping[str, Mapping[str, str]] = {
    "parcels": {
        "BSM": "parcel_id",  # 标识码, unique in the county
        "DLBM": "land_class",  # 地类编码
        "ZLDWMC": "town",  # 坐落单位名称
        "TBMJ": "gross_m2",  # 图斑面积 (ellipsoidal)
        "KCMJ": "deduction_m2",  # 扣除面积 (field ridges)
        "TBDLMJ": "net_m2",  # 图斑地类面积 = TBMJ - KCMJ (R2)
    },
}
# The Chinese names, aliases and DBF-cut forms of these and of every other
# layer's standard fields are in landquota.intake.fieldnames.

#: Chinese names of code values, accepted on import besides the English tokens.
_CODE_ALIASES: Mapping[str, Mapping[str, str]] = {
    "zone_type": {
        "允许建设区": "allowed", "有条件建设区": "conditional", "限制建设区": "restricted", "禁止建设区": "prohibited",
        # 土地利用总体规划数据库标准 (TD/T 1026): 管制区类型代码 and its formal names
        "010": "allowed", "020": "conditional", "030": "restricted", "040": "prohibited",
        "允许建设用地区": "allowed", "有条件建设用地区": "conditional",
    },
    "kind": {
        "永久基本农田": "basic_farmland", "基本农田": "basic_farmland", "生态保护红线": "eco_redline",
        "城镇开发边界": "urban_boundary", "批而未供": "approved_unsupplied", "已供": "supplied", "供地": "supplied",
    },
    "role": {"拆旧区": "demolition", "拆旧": "demolition", "建新区": "construction", "建新": "construction"},
    "level": {"国家级": "national", "省级": "provincial", "市级": "city", "县级": "county"},
    "cause": {"政府原因": "government", "企业原因": "enterprise", "无": "none"},
    "acceptance": {"未验收": "pending", "待验收": "pending", "已验收": "passed", "验收通过": "passed", "验收未通过": "failed"},
    "status": {"前期": "preparatory", "新开工": "new_start", "续建": "continuing", "竣工": "completed"},
}

#: Defaults for required columns that sources rarely carry.
_DEFAULTS: Mapping[str, Mapping[str, Any]] = {
    "stock_land": {"disposal_status": "none", "disposal_method": "none"},
    "projects": {"phaseable": False, "national_exception": False},
}

_UNITS = {"m2": 1.0, "ha": 10_000.0, "mu": 10_000.0 / 15.0}


@dataclass(frozen=True)
class FieldRule:
    """How one source field becomes a contract column."""

    column: str
    unit: float = 1.0


@dataclass
class Mapping_:
    """A parsed mapping file (see :func:`load_mapping`)."""

    fields: dict[str, FieldRule] = field(default_factory=dict)
    values: dict[str, dict[str, str]] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)
    layer: str | None = None


def load_mapping(path: str | Path | Mapping[str, Any], *, layer_name: str | None = None) -> Mapping_:
    """Read a field mapping from a YAML or TOML file (or a dict).

    The file says which source field fills which contract column, how to
    translate code values, and constants for columns the source lacks::

        layer = "plan_zones"                 # optional: checked against --layer
        [fields]
        GZQLXDM = "zone_type"
        MJ = { column = "gross_m2", unit = "mu" }   # units: m2, ha, mu
        [values.zone_type]
        "010" = "allowed"
        [defaults]
        plan_version = "2006-2020"

    Parameters
    ----------
    path : str, Path or mapping
        A ``.yaml``/``.yml``/``.toml`` file, or the same structure as a dict.
    layer_name : str, optional
        The target layer, to check the column names.

    Raises
    ------
    ImportDataError
        Unreadable file, unknown keys, columns or units; the message names the
        file and the entry.
    """
    where = str(path) if not isinstance(path, Mapping) else "mapping"
    if isinstance(path, Mapping):
        data: Any = dict(path)
    else:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise ImportDataError(f"mapping file {where!r} cannot be read: {exc.strerror}") from None
        try:
            if p.suffix.lower() == ".toml":
                data = tomllib.loads(text)
            elif p.suffix.lower() in (".yaml", ".yml"):
                import yaml

                data = yaml.safe_load(text) or {}
            else:
                raise ImportDataError(f"mapping file {where!r} must end in .yaml, .yml or .toml")
        except (tomllib.TOMLDecodeError, ValueError) as exc:
            raise ImportDataError(f"mapping file {where!r} is not valid: {exc}") from None
        except Exception as exc:  # yaml.YAMLError, without importing yaml at module level
            if type(exc).__module__.startswith("yaml"):
                raise ImportDataError(f"mapping file {where!r} is not valid YAML: {exc}") from None
            raise
    if not isinstance(data, dict):
        raise ImportDataError(f"mapping file {where!r} must hold a table with 'fields', 'values', 'defaults'")
    extra = set(data) - {"layer", "fields", "values", "defaults"}
    if extra:
        raise ImportDataError(
            f"mapping file {where!r} has unknown key(s) {sorted(extra)}; allowed: layer, fields, values, defaults"
        )
    lyr = layer(layer_name) if layer_name else None
    target = data.get("layer")
    if target is not None and layer_name is not None and target != layer_name:
        raise ImportDataError(f"mapping file {where!r} is for layer {target!r}, not {layer_name!r}")
    m = Mapping_(layer=target)
    for src, rule in (data.get("fields") or {}).items():
        if isinstance(rule, str):
            col, unit = rule, "m2"
        elif isinstance(rule, dict) and "column" in rule:
            col, unit = rule["column"], str(rule.get("unit", "m2"))
        else:
            raise ImportDataError(
                f"mapping file {where!r}: fields.{src} = {rule!r}; give a column name or "
                "{{ column = \"...\", unit = \"mu\" }}"
            )
        if lyr is not None and col not in lyr.column_names:
            raise ImportDataError(
                f"mapping file {where!r}: fields.{src} names column {col!r}, which layer "
                f"{lyr.name!r} does not have; its columns are {', '.join(lyr.column_names)}"
            )
        if unit not in _UNITS:
            raise ImportDataError(f"mapping file {where!r}: fields.{src} unit {unit!r}; use m2, ha or mu")
        m.fields[str(src)] = FieldRule(str(col), _UNITS[unit])
    for col, table in (data.get("values") or {}).items():
        if not isinstance(table, dict):
            raise ImportDataError(f"mapping file {where!r}: values.{col} must be a table of source → code")
        m.values[str(col)] = {str(k): str(v) for k, v in table.items()}
    m.defaults = dict(data.get("defaults") or {})
    if lyr is not None:
        bad = [c for c in list(m.values) + list(m.defaults) if c not in lyr.column_names]
        if bad:
            raise ImportDataError(
                f"mapping file {where!r}: layer {lyr.name!r} has no column(s) {bad}; "
                f"its columns are {', '.join(lyr.column_names)}"
            )
    return m


def _field_rules(
    lyr: Layer, fields: Sequence[str], m: Mapping_, report: ImportReport
) -> tuple[dict[str, FieldRule], str | None, str | None]:
    """Source field → contract column: the mapping file, then survey names, then same names."""
    upper = {normalize(f): f for f in fields}
    rules: dict[str, FieldRule] = {}
    taken: set[str] = set()
    for src, rule in m.fields.items():
        f = upper.get(normalize(src))
        if f is None:
            raise ImportDataError(
                f"{report.source!r}: the mapping names field {src!r}, which the source lacks; its "
                f"fields are {', '.join(fields)}"
            )
        rules[f] = rule
        taken.add(rule.column)
    # the contract's own names first among the rest: a source written by landquota
    # (or by hand to the contract) means exactly what it says
    for f in fields:
        low = f.lower()
        if f not in rules and low in lyr.column_names and low not in taken:
            rules[f] = FieldRule(low)
            taken.add(low)
    # then the standards' names: pinyin codes, Chinese names, aliases, DBF-cut forms
    std = match_fields(lyr.name, [f for f in fields if f not in rules], taken=taken)
    for f, (col, unit) in std.columns.items():
        rules[f] = FieldRule(col, unit)
        taken.add(col)
    names_field = std.check if lyr.name == "parcels" and "land_class" in taken else None
    coef_field = std.coefficient if lyr.name == "parcels" and "gross_m2" in taken else None
    report.field_map = {f: r.column for f, r in rules.items()}
    report.ignored_fields = [f for f in fields if f not in rules and f not in (names_field, coef_field)
                             and not f.startswith("_lq_")]
    report.standard_not_stored = [f for f in std.known if f in report.ignored_fields]
    if coef_field is not None:
        report.field_map[coef_field] = "deduction_m2 (= gross_m2 × it)"
    return rules, names_field, coef_field

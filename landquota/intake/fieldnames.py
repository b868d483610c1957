"""Standard field names of Chinese land data and the contract columns they fill.

Bureau layers carry the field names of the national standards, either as the
pinyin codes of the third land survey database standard (第三次全国国土调查数据库
标准: ``BSM``, ``DLBM``, ``TBMJ`` …) or as their Chinese names (``标识码``,
``地类编码``, ``图斑面积`` …), which desktop GIS exports write as field names.
A DBF field name holds at most 10 bytes, so a Chinese name longer than five
characters arrives cut: ``坐落单位名称`` is ``坐落单位名`` in a GBK shapefile and
``坐落单`` in a UTF-8 one. This module lists the standard names and usual aliases
per layer and contract column, derives the cut forms, and matches a source's
fields against them (case, width and blanks ignored).

What a standard field means is fixed by the standards; only the contract's
columns are stored. Standard fields that the contract does not keep (``QSXZ``,
``GDLX``, ``KCDLBM`` …) are recognised and reported as "standard field, not
stored", so a user sees they were understood, not overlooked.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

__all__ = [
    "ALIASES",
    "CHECK_FIELDS",
    "COEFFICIENT_FIELDS",
    "FALLBACK_ID",
    "KNOWN_NOT_STORED",
    "FieldMatch",
    "dbf_cut",
    "match_fields",
    "normalize",
]

#: Per layer: contract column -> accepted names (pinyin code first, then the
#: standard's Chinese name, then aliases seen in bureau data). A multiplier other
#: than 1 is given as ``(name, unit)`` (the supply system states prices in 万元).
ALIASES: Mapping[str, Mapping[str, tuple[str | tuple[str, float], ...]]] = {
    "parcels": {
        "parcel_id": ("BSM", "标识码"),
        "land_class": ("DLBM", "地类编码", "地类代码"),
        "town": ("ZLDWMC", "坐落单位名称", "坐落单位", "乡镇名称", "所在乡镇"),
        "gross_m2": ("TBMJ", "图斑面积"),
        # 二调 called the deduction 田坎面积 (TKMJ); 三调 generalised it to 扣除地类面积.
        "deduction_m2": ("KCMJ", "扣除地类面积", "扣除面积", "TKMJ", "田坎面积"),
        "net_m2": ("TBDLMJ", "图斑地类面积"),
        "grain_kg_per_m2": ("单产", "粮食单产"),
    },
    "county": {
        "county_id": ("XZQDM", "行政区代码", "县级行政区代码", "县代码"),
        "name": ("XZQMC", "行政区名称", "县级行政区名称", "县名称", "县名"),
        "admin_code": ("行政区划代码",),
    },
    "towns": {
        "town_id": ("XZQDM", "行政区代码", "乡镇代码", "乡级行政区代码"),
        "name": ("XZQMC", "行政区名称", "乡镇名称", "乡级行政区名称", "乡镇"),
    },
    "plan_zones": {
        "zone_id": ("BSM", "标识码"),
        # 土地利用总体规划数据库标准 (TD/T 1026): 管制区类型代码 010/020/030/040
        "zone_type": ("GZQLXDM", "管制区类型代码", "管制区类型", "GZQLXMC", "管制区类型名称"),
        "plan_version": ("GHBB", "规划版本", "规划期"),
    },
    "control_lines": {
        "line_id": ("BSM", "标识码"),
        "kind": ("KZXLX", "控制线类型"),
        "plan_version": ("GHBB", "规划版本", "规划期"),
    },
    "stock_land": {
        # 土地市场动态监测与监管系统: the supervision number identifies a supply
        "stock_id": ("DZJGH", "电子监管号", "电子监管编号"),
        "town": ("乡镇", "所在乡镇", "乡镇名称"),
        "approval_batch": ("PCMC", "批次名称", "批准文号", "批复文号", "农转用批准文号"),
        "approval_date": ("PZRQ", "批准日期", "批准时间", "批复日期"),
        "supply_date": ("合同签订日期", "签订日期", "供地日期", "供地时间", "划拨决定书签发日期"),
        "agreed_start_date": ("合同约定开工时间", "约定开工时间", "约定开工日期", "合同约定开工日期"),
        "actual_start_date": ("实际开工时间", "实际开工日期"),
        "suspended_since": ("停工时间", "停工日期"),
        # the monitoring system states prices in 万元 (10,000 yuan)
        "land_price_yuan": (("成交价款", 10_000.0), ("成交价格", 10_000.0), ("出让价款", 10_000.0),
                            ("成交价款(万元)", 10_000.0), ("成交价格(万元)", 10_000.0), ("成交价款(元)", 1.0)),
        "planned_use": ("土地用途", "规划用途", "用途"),
        "cause": ("闲置原因", "闲置原因类型"),
        "developed_ratio": ("开发比例",),
        "invested_ratio": ("投资比例",),
    },
    "projects": {
        "project_id": ("XMBH", "项目编号", "项目代码"),
        "name": ("XMMC", "项目名称"),
        "level": ("项目级别", "项目层级"),
        "town": ("所在乡镇", "乡镇", "乡镇名称"),
        "planned_use": ("用地类型", "规划用途"),
        "annual_plan_yuan": (("年度计划投资", 10_000.0),),
        "completed_yuan": (("已完成投资", 10_000.0), ("完成投资", 10_000.0)),
        "start_date": ("开工时间", "开工日期", "计划开工时间"),
        "status": ("项目状态", "建设状态"),
        "demand_m2": ("用地需求面积", "需求面积"),
    },
    "linkage_areas": {
        "linkage_id": ("项目区编号", "项目区代码"),
        "name": ("项目区名称",),
        "approval_date": ("批准日期", "批复日期"),
    },
    "linkage_plots": {
        "plot_id": ("地块编号", "地块代码", "BSM", "标识码"),
        "linkage_id": ("项目区编号", "项目区代码"),
        # 拆旧区 / 建新区 (understood as code values too)
        "role": ("地块类型", "区块类型", "拆旧建新类型"),
        "reclaimed_m2": ("复垦面积", "拆旧复垦面积"),
        "reclaimed_cultivated_m2": ("复垦耕地面积", "新增耕地面积"),
    },
}

#: Used for the id only when the standard id field is absent (TBBH is unique per
#: village only, so duplicates are then likely and refused with a hint).
FALLBACK_ID: Mapping[str, tuple[str, ...]] = {"parcels": ("TBBH", "图斑编号")}

#: Fields read to check another, not stored: the class name (地类名称) of DLBM.
CHECK_FIELDS: Mapping[str, tuple[str, ...]] = {"parcels": ("DLMC", "地类名称")}

#: The deduction coefficient (扣除地类系数; 二调's 田坎系数): KCMJ = TBMJ × KCXS. Read
#: only when the layer has no deduction area field, to derive it (R2).
COEFFICIENT_FIELDS: Mapping[str, tuple[str, ...]] = {"parcels": ("KCXS", "扣除地类系数", "TKXS", "田坎系数")}

#: Standard fields the contract does not keep: recognised, reported as not stored.
KNOWN_NOT_STORED: tuple[str, ...] = (
    "YSDM", "要素代码", "TBYBH", "图斑预编号", "TBBH", "图斑编号", "QSXZ", "权属性质",
    "QSDWDM", "权属单位代码", "QSDWMC", "权属单位名称", "ZLDWDM", "坐落单位代码",
    "KCDLBM", "扣除地类编码", "KCXS", "扣除地类系数", "TKXS", "田坎系数", "GDLX", "耕地类型",
    "GDPDJB", "耕地坡度级别", "XZDWKD", "线状地物宽度", "TBXHDM", "图斑细化代码",
    "TBXHMC", "图斑细化名称", "ZZSXDM", "种植属性代码", "ZZSXMC", "种植属性名称",
    "GDDB", "耕地等别", "FRDBS", "飞入地标识", "CZCSXM", "城镇村属性码", "SJNF", "数据年份",
    "MSSM", "描述说明", "HDMC", "海岛名称", "BZ", "备注", "DCMJ", "调查面积", "JSMJ", "计算面积",
)

#: The DBF's field-name limit in bytes (dBASE III: 10 characters plus a NUL).
DBF_NAME_BYTES = 10


def normalize(name: str) -> str:
    """Compare field names without regard to case, width or blanks.

    NFKC folds full-width letters (``ＢＳＭ``) and digits to ASCII, as Chinese
    input methods type them.

    Examples
    --------
    >>> normalize(" ｄｌｂｍ ")
    'DLBM'
    """
    return "".join(unicodedata.normalize("NFKC", name).split()).upper()


def dbf_cut(name: str, encoding: str) -> str | None:
    """Return *name* as a DBF stores it in *encoding* (10 bytes), or None if it fits.

    A character cut in half at the limit is dropped: GDAL's readers and writers
    do not keep half a character either.

    Examples
    --------
    >>> dbf_cut("坐落单位名称", "gbk")
    '坐落单位名'
    >>> dbf_cut("坐落单位名称", "utf-8")
    '坐落单'
    >>> dbf_cut("地类编码", "gbk") is None
    True
    """
    raw = name.encode(encoding)
    if len(raw) <= DBF_NAME_BYTES:
        return None
    return raw[:DBF_NAME_BYTES].decode(encoding, errors="ignore")


def _names(entries: Iterable[str | tuple[str, float]]) -> list[tuple[str, float]]:
    return [(e, 1.0) if isinstance(e, str) else (e[0], float(e[1])) for e in entries]


@dataclass(frozen=True)
class _Table:
    exact: dict[str, tuple[str, float]]  # normalised name -> (column, unit)
    cut: dict[str, tuple[str, float]]  # normalised cut name -> (column, unit)
    checks: frozenset[str]
    fallback: frozenset[str]


@functools.cache
def _table(layer: str) -> _Table:
    exact: dict[str, tuple[str, float]] = {}
    for column, entries in ALIASES.get(layer, {}).items():
        for name, unit in _names(entries):
            exact[normalize(name)] = (column, unit)
    # Cut forms, kept only where they are unambiguous: in UTF-8 both 坐落单位名称
    # (ZLDWMC) and 坐落单位代码 (ZLDWDM) arrive as 坐落单, which names neither.
    cut: dict[str, tuple[str, float]] = {}
    clash: set[str] = set()
    everything = [
        (name, target)
        for column, entries in ALIASES.get(layer, {}).items()
        for name, target in ((n, (column, u)) for n, u in _names(entries))
    ] + [(n, ("", 1.0)) for n in KNOWN_NOT_STORED + CHECK_FIELDS.get(layer, ())]
    for name, target in everything:
        for enc in ("gb18030", "utf-8"):
            short = dbf_cut(name, enc)
            if not short:
                continue
            key = normalize(short)
            if (key in exact and exact[key] != target) or (key in cut and cut[key] != target):
                clash.add(key)
            else:
                cut[key] = target
    for key in clash:
        cut.pop(key, None)
    return _Table(
        exact=exact,
        cut={k: v for k, v in cut.items() if v[0] and k not in exact},
        checks=frozenset(normalize(n) for n in CHECK_FIELDS.get(layer, ())),
        fallback=frozenset(normalize(n) for n in FALLBACK_ID.get(layer, ())),
    )


@dataclass
class FieldMatch:
    """How a source's fields meet a layer's standard names (see :func:`match_fields`)."""

    #: source field -> (contract column, unit multiplier)
    columns: dict[str, tuple[str, float]] = field(default_factory=dict)
    #: a field read only to check another (DLMC), or None
    check: str | None = None
    #: standard fields recognised but not part of the contract
    known: list[str] = field(default_factory=list)
    #: the deduction coefficient field (KCXS), when there is no deduction area field
    coefficient: str | None = None


def match_fields(layer: str, fields: Sequence[str], *, taken: Iterable[str] = ()) -> FieldMatch:
    """Match *fields* to *layer*'s columns by the standard names and their aliases.

    Exact names (any alias) win over names cut by the DBF limit; the first
    field found for a column wins; columns in *taken* (given by a mapping file)
    are left alone. The id falls back to ``TBBH``/``图斑编号`` only when no
    standard id field is present.

    Examples
    --------
    >>> m = match_fields("parcels", ["标识码", "地类编码", "坐落单位名", "图斑面积", "扣除地类面"])
    >>> {f: c for f, (c, _) in m.columns.items()}["坐落单位名"]
    'town'
    """
    t = _table(layer)
    used = set(taken)
    out = FieldMatch()
    norm = {f: normalize(f) for f in fields}
    second: list[str] = []  # standard fields whose column another field already gives
    for table in (t.exact, t.cut):
        for f in fields:
            hit = table.get(norm[f])
            if hit is None or f in out.columns:
                continue
            if hit[0] in used:
                second.append(f)
                continue
            out.columns[f] = hit
            used.add(hit[0])
    id_col = next(iter(ALIASES.get(layer, {})), None)
    if id_col is not None and id_col not in used:
        fb = next((f for f in fields if norm[f] in t.fallback), None)
        if fb is not None:
            out.columns[fb] = (id_col, 1.0)
    if "land_class" in {c for c, _ in out.columns.values()}:
        out.check = next((f for f in fields if norm[f] in t.checks and f not in out.columns), None)
    coef = {normalize(n) for n in COEFFICIENT_FIELDS.get(layer, ())}
    if coef and "deduction_m2" not in used:
        out.coefficient = next((f for f in fields if norm[f] in coef and f not in out.columns), None)
    known = {normalize(n) for n in KNOWN_NOT_STORED}
    for f in fields:
        if f in out.columns or f in (out.check, out.coefficient):
            continue
        if norm[f] in known or _is_cut_of_known(norm[f]) or f in second:
            out.known.append(f)
    return out


@functools.cache
def _known_cuts() -> frozenset[str]:
    return frozenset(
        normalize(short)
        for n in KNOWN_NOT_STORED
        for enc in ("gb18030", "utf-8")
        if (short := dbf_cut(n, enc))
    )


def _is_cut_of_known(key: str) -> bool:
    return key in _known_cuts()

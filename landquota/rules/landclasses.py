"""Land classes: GB/T 21010-2017 and the third national land survey (三调) codes.

Every land-use survey patch carries a class code (DLBM). This module holds the
complete table of codes of the national standard *Current land use
classification* (GB/T 21010-2017, 土地利用现状分类) together with the working
codes of the third national land survey (第三次全国国土调查工作分类): its
wetland group 00 (湿地), its merged codes (05H1, 0508, 08H1, 08H2, 09, …), its
optional sub-codes (0810A, 1104A, 1107A) and its "adjustable" codes marked
``K`` (可调整地类: land that can be turned back into cultivated land).

Each class belongs to one of the three broad categories (三大类) that drive
quota accounting (domain rules R3 and R4):

- ``agricultural`` (农用地), of which the *cultivated* classes 0101, 0102 and
  0103 (耕地) are a subset;
- ``construction`` (建设用地);
- ``unused`` (未利用地).

The category of a code follows ``docs/domain.md``: agricultural = 01xx, 02xx,
03xx, 0401–0403, 1006, 1103, 1104, 1107, 1202, 1203; construction = 05xx–09xx,
1001–1005, 1007–1009, 1109, 1201; unused = 0404, 1101, 1102, 1105, 1106, 1108,
1110, 1204–1207. Survey sub-codes follow their parent (1104A and 1104K like
1104, 1107A like 1107, 0810A like 0810, 0201K like 0201, …).

Unknown codes are never mapped to a catch-all "other": they raise
:class:`~landquota.errors.DataError` naming the code and the nearest known
codes.

Examples
--------
>>> land_class("0101").name_zh
'水田'
>>> category_of(["0101", "0702", "1206"]).tolist()
['agricultural', 'construction', 'unused']
>>> is_cultivated("0102"), is_paddy("0102")
(True, False)
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final, Literal, overload

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from landquota.errors import DataError, ParameterError

__all__ = [
    "CATEGORIES",
    "DEFAULT_GRAIN_KG_PER_M2",
    "GROUPS",
    "LAND_CLASSES",
    "Category",
    "LandClass",
    "category_of",
    "grain_yields",
    "is_cultivated",
    "is_paddy",
    "land_class",
    "nearest_codes",
    "normalize_code",
]

Category = Literal["agricultural", "construction", "unused"]

#: The three broad categories (三大类); cultivated land is a subset of agricultural.
CATEGORIES: Final[tuple[Category, ...]] = ("agricultural", "construction", "unused")

#: First-level groups: code -> (English name, Chinese name). Group 00 is the
#: third survey's wetland group; the others are GB/T 21010-2017 first-level classes
#: (the survey renames 02 种植园用地, 05 商业服务业用地 and 06 工矿用地).
GROUPS: Final[Mapping[str, tuple[str, str]]] = MappingProxyType(
    {
        "00": ("wetland", "湿地"),
        "01": ("cultivated land", "耕地"),
        "02": ("garden land (plantations)", "园地"),
        "03": ("forest land", "林地"),
        "04": ("grassland", "草地"),
        "05": ("commercial and service land", "商服用地"),
        "06": ("industrial, mining and storage land", "工矿仓储用地"),
        "07": ("residential land", "住宅用地"),
        "08": ("public administration and public service land", "公共管理与公共服务用地"),
        "09": ("special-use land", "特殊用地"),
        "10": ("transport land", "交通运输用地"),
        "11": ("water and water-conservancy facility land", "水域及水利设施用地"),
        "12": ("other land", "其他土地"),
    }
)

Standard = Literal["both", "gbt", "survey"]


@dataclass(frozen=True)
class LandClass:
    """One land-use class code.

    Attributes
    ----------
    code : str
        The code as stored (``'0101'``, ``'05H1'``, ``'09'``).
    name_en, name_zh : str
        English and Chinese names.
    group : str
        First-level group in the third survey's classification (``'00'`` for the
        wetland classes 0303, 0304, 0306, 0402, 0603, 1105, 1106 and 1108).
    category : {'agricultural', 'construction', 'unused'}
        Broad category (三大类) per ``docs/domain.md``.
    cultivated : bool
        Cultivated land (耕地: 0101, 0102, 0103), a subset of agricultural.
    standard : {'both', 'gbt', 'survey'}
        ``'gbt'``: a GB/T 21010-2017 code that the third survey merged into
        another (0501–0507, 0604, 0801–0808, 0901–0906); ``'survey'``: a
        working code of the third survey only; ``'both'``: used by both.
    """

    code: str
    name_en: str
    name_zh: str
    group: str
    category: Category
    cultivated: bool = False
    standard: Standard = "both"

    @property
    def gbt_group(self) -> str:
        """First-level class of GB/T 21010-2017 (the first two characters of the code)."""
        return self.code[:2]

    @property
    def paddy(self) -> bool:
        """Paddy field (水田, 0101): the part that R4's paddy balance counts."""
        return self.code == "0101"


_A: Final = "agricultural"
_C: Final = "construction"
_U: Final = "unused"

# (code, English, Chinese, group, category, standard). Cultivated = group 01.
_TABLE: tuple[tuple[str, str, str, str, Category, Standard], ...] = (
    # 00 wetland (third survey grouping of GB/T codes)
    ("0303", "mangrove forest", "红树林地", "00", _A, "both"),
    ("0304", "forest swamp", "森林沼泽", "00", _A, "both"),
    ("0306", "shrub swamp", "灌丛沼泽", "00", _A, "both"),
    ("0402", "marsh grassland", "沼泽草地", "00", _A, "both"),
    ("0603", "salt pan", "盐田", "00", _C, "both"),
    ("1105", "coastal tidal flat", "沿海滩涂", "00", _U, "both"),
    ("1106", "inland tidal flat", "内陆滩涂", "00", _U, "both"),
    ("1108", "swamp", "沼泽地", "00", _U, "both"),
    # 01 cultivated land
    ("0101", "paddy field", "水田", "01", _A, "both"),
    ("0102", "irrigated land", "水浇地", "01", _A, "both"),
    ("0103", "dry land", "旱地", "01", _A, "both"),
    # 02 garden land (survey: 种植园用地)
    ("0201", "orchard", "果园", "02", _A, "both"),
    ("0201K", "adjustable orchard", "可调整果园", "02", _A, "survey"),
    ("0202", "tea plantation", "茶园", "02", _A, "both"),
    ("0202K", "adjustable tea plantation", "可调整茶园", "02", _A, "survey"),
    ("0203", "rubber plantation", "橡胶园", "02", _A, "both"),
    ("0203K", "adjustable rubber plantation", "可调整橡胶园", "02", _A, "survey"),
    ("0204", "other plantation", "其他园地", "02", _A, "both"),
    ("0204K", "adjustable other plantation", "可调整其他园地", "02", _A, "survey"),
    # 03 forest land
    ("0301", "arbor forest land", "乔木林地", "03", _A, "both"),
    ("0301K", "adjustable arbor forest land", "可调整乔木林地", "03", _A, "survey"),
    ("0302", "bamboo forest land", "竹林地", "03", _A, "both"),
    ("0302K", "adjustable bamboo forest land", "可调整竹林地", "03", _A, "survey"),
    ("0305", "shrub forest land", "灌木林地", "03", _A, "both"),
    ("0307", "other forest land", "其他林地", "03", _A, "both"),
    ("0307K", "adjustable other forest land", "可调整其他林地", "03", _A, "survey"),
    # 04 grassland
    ("0401", "natural pasture", "天然牧草地", "04", _A, "both"),
    ("0403", "artificial pasture", "人工牧草地", "04", _A, "both"),
    ("0403K", "adjustable artificial pasture", "可调整人工牧草地", "04", _A, "survey"),
    ("0404", "other grassland", "其他草地", "04", _U, "both"),
    # 05 commercial and service land
    ("0501", "retail commerce land", "零售商业用地", "05", _C, "gbt"),
    ("0502", "wholesale market land", "批发市场用地", "05", _C, "gbt"),
    ("0503", "catering land", "餐饮用地", "05", _C, "gbt"),
    ("0504", "hotel land", "旅馆用地", "05", _C, "gbt"),
    ("0505", "business and finance land", "商务金融用地", "05", _C, "gbt"),
    ("0506", "entertainment land", "娱乐用地", "05", _C, "gbt"),
    ("0507", "other commercial land", "其他商服用地", "05", _C, "gbt"),
    ("05H1", "commercial service facility land", "商业服务业设施用地", "05", _C, "survey"),
    ("0508", "logistics and warehousing land", "物流仓储用地", "05", _C, "survey"),
    # 06 industrial, mining and storage land (survey: 工矿用地)
    ("0601", "industrial land", "工业用地", "06", _C, "both"),
    ("0602", "mining land", "采矿用地", "06", _C, "both"),
    ("0604", "storage land", "仓储用地", "06", _C, "gbt"),
    # 07 residential land
    ("0701", "urban residential land", "城镇住宅用地", "07", _C, "both"),
    ("0702", "rural homestead", "农村宅基地", "07", _C, "both"),
    # 08 public administration and public service land
    ("0801", "government and organisation land", "机关团体用地", "08", _C, "gbt"),
    ("0802", "press and publishing land", "新闻出版用地", "08", _C, "gbt"),
    ("0803", "education land", "教育用地", "08", _C, "gbt"),
    ("0804", "scientific research land", "科研用地", "08", _C, "gbt"),
    ("0805", "medical and health land", "医疗卫生用地", "08", _C, "gbt"),
    ("0806", "social welfare land", "社会福利用地", "08", _C, "gbt"),
    ("0807", "cultural facility land", "文化设施用地", "08", _C, "gbt"),
    ("0808", "sports land", "体育用地", "08", _C, "gbt"),
    (
        "08H1",
        "government, organisation, press and publishing land",
        "机关团体新闻出版用地",
        "08",
        _C,
        "survey",
    ),
    ("08H2", "science, education, culture and health land", "科教文卫用地", "08", _C, "survey"),
    ("0809", "public utility land", "公用设施用地", "08", _C, "both"),
    ("0810", "parks and green space", "公园与绿地", "08", _C, "both"),
    ("0810A", "public square", "广场用地", "08", _C, "survey"),
    # 09 special-use land
    ("0901", "military facility land", "军事设施用地", "09", _C, "gbt"),
    ("0902", "embassy and consulate land", "使领馆用地", "09", _C, "gbt"),
    ("0903", "prison and reformatory land", "监教场所用地", "09", _C, "gbt"),
    ("0904", "religious land", "宗教用地", "09", _C, "gbt"),
    ("0905", "burial land", "殡葬用地", "09", _C, "gbt"),
    ("0906", "scenic-spot facility land", "风景名胜设施用地", "09", _C, "gbt"),
    ("09", "special-use land", "特殊用地", "09", _C, "survey"),
    # 10 transport land
    ("1001", "railway land", "铁路用地", "10", _C, "both"),
    ("1002", "rail transit land", "轨道交通用地", "10", _C, "both"),
    ("1003", "highway land", "公路用地", "10", _C, "both"),
    ("1004", "urban and village road land", "城镇村道路用地", "10", _C, "both"),
    ("1005", "transport service station land", "交通服务场站用地", "10", _C, "both"),
    ("1006", "rural road", "农村道路", "10", _A, "both"),
    ("1007", "airport land", "机场用地", "10", _C, "both"),
    ("1008", "port and wharf land", "港口码头用地", "10", _C, "both"),
    ("1009", "pipeline transport land", "管道运输用地", "10", _C, "both"),
    # 11 water and water-conservancy facility land
    ("1101", "river surface", "河流水面", "11", _U, "both"),
    ("1102", "lake surface", "湖泊水面", "11", _U, "both"),
    ("1103", "reservoir surface", "水库水面", "11", _A, "both"),
    ("1104", "pond surface", "坑塘水面", "11", _A, "both"),
    ("1104A", "aquaculture pond", "养殖坑塘", "11", _A, "survey"),
    ("1104K", "adjustable aquaculture pond", "可调整养殖坑塘", "11", _A, "survey"),
    ("1107", "ditch", "沟渠", "11", _A, "both"),
    ("1107A", "main canal", "干渠", "11", _A, "survey"),
    ("1109", "hydraulic structure land", "水工建筑用地", "11", _C, "both"),
    ("1110", "glacier and permanent snow", "冰川及永久积雪", "11", _U, "both"),
    # 12 other land
    ("1201", "vacant land", "空闲地", "12", _C, "both"),
    ("1202", "facility agricultural land", "设施农用地", "12", _A, "both"),
    ("1203", "field ridge", "田坎", "12", _A, "both"),
    ("1204", "saline-alkali land", "盐碱地", "12", _U, "both"),
    ("1205", "sandy land", "沙地", "12", _U, "both"),
    ("1206", "bare soil", "裸土地", "12", _U, "both"),
    ("1207", "bare rock and gravel land", "裸岩石砾地", "12", _U, "both"),
)

#: Every known code -> its :class:`LandClass`, in table order (read-only).
LAND_CLASSES: Final[Mapping[str, LandClass]] = MappingProxyType(
    {
        code: LandClass(code, en, zh, grp, cat, cultivated=grp == "01", standard=std)
        for code, en, zh, grp, cat, std in _TABLE
    }
)

#: Default grain yields (kg per m² per year) of the cultivated classes, used for
#: R4's grain-capacity balance when a patch carries no ``grain_kg_per_m2`` of its
#: own. They are configurable defaults, not official figures: 0.9 kg/m² is
#: 600 kg/mu, about two rice crops a year in southern Guangdong-type paddies;
#: irrigated land 0.75 (500 kg/mu) and dry land 0.5 (≈333 kg/mu) scale that by
#: the usual ranking of the cultivated classes. Replace them with the county's
#: farmland-quality grading (耕地质量等别) yields where known
#: (``demand_from_sites(..., grain_defaults={...})``).
DEFAULT_GRAIN_KG_PER_M2: Final[Mapping[str, float]] = MappingProxyType(
    {"0101": 0.9, "0102": 0.75, "0103": 0.5}
)

_HOW_TO_FIX = (
    "codes follow GB/T 21010-2017 and the third land survey (see "
    "landquota.rules.landclasses.LAND_CLASSES); correct the source data, or map local "
    "codes to standard ones before import"
)


def normalize_code(code: object) -> str:
    """Return *code* as stored: text, surrounding blanks removed, letters upper case.

    Numbers are refused rather than zero-padded: a code such as ``101`` usually
    means a spreadsheet dropped the leading zero of ``'0101'``, and guessing is
    left to the person who can check the source.

    Parameters
    ----------
    code : object
        The code as read.

    Returns
    -------
    str

    Raises
    ------
    DataError
        If *code* is missing or not text.

    Examples
    --------
    >>> normalize_code(" 05h1 ")
    '05H1'
    """
    if isinstance(code, str):
        return code.strip().upper()
    if code is None or (isinstance(code, float) and math.isnan(code)) or code is pd.NA:
        raise DataError(
            "a land class code is missing; every patch needs its DLBM code (e.g. '0101')"
        )
    raise DataError(
        f"land class code {code!r} is a {type(code).__name__}, not text; read the DLBM "
        f"column as text so that leading zeros survive{_suggestion(str(code))}"
    )


def _suggestion(code: str) -> str:
    near = nearest_codes(code)
    return f" (did you mean {' or '.join(repr(c) for c in near)}?)" if near else ""


def nearest_codes(code: str, n: int = 3) -> list[str]:
    """Return up to *n* known codes close to the unknown *code*, best first.

    A lost leading zero (``'101'`` → ``'0101'``), a trailing ``.0`` from a
    spreadsheet and a wrong case are tried first, then string similarity.

    Parameters
    ----------
    code : str
        An unknown code.
    n : int, default 3
        Most suggestions returned.

    Returns
    -------
    list of str
    """
    text = code.strip().upper()
    if text.endswith(".0"):
        text = text[:-2]
    found: list[str] = []
    for candidate in (text, text.zfill(4), text.zfill(2)):
        if candidate in LAND_CLASSES and candidate not in found:
            found.append(candidate)
    # Same first-level class first: '0105' is more likely a mistyped 0101–0103
    # than 1105.
    same_group = [c for c in LAND_CLASSES if len(text) >= 2 and c[:2] == text[:2]]
    for pool in (same_group, list(LAND_CLASSES)):
        found += [
            c for c in difflib.get_close_matches(text, pool, n=n, cutoff=0.6) if c not in found
        ]
    return found[:n]


def land_class(code: str) -> LandClass:
    """Return the :class:`LandClass` of *code*.

    Parameters
    ----------
    code : str
        A GB/T 21010-2017 or third-survey code; blanks and letter case are ignored.

    Returns
    -------
    LandClass

    Raises
    ------
    DataError
        If the code is unknown; the message suggests the nearest known codes.

    Examples
    --------
    >>> land_class("1104A").category
    'agricultural'
    """
    key = normalize_code(code)
    try:
        return LAND_CLASSES[key]
    except KeyError:
        raise DataError(
            f"unknown land class code {code!r}{_suggestion(key)}; {_HOW_TO_FIX}"
        ) from None


def _lookup(
    codes: Iterable[Any] | pd.Series, where: str
) -> tuple[NDArray[np.intp], list[LandClass]]:
    """Factorise *codes* and look each distinct code up once (the vectorised core)."""
    series = codes if isinstance(codes, pd.Series) else None
    values = series if series is not None else pd.Series(np.asarray(codes, dtype=object))
    missing = values.isna().to_numpy()
    if missing.any():
        rows = np.flatnonzero(missing)
        raise DataError(
            f"{where}: land class missing at position(s) {rows[:10].tolist()}"
            f"{' …' if rows.size > 10 else ''}; every patch needs its DLBM code (e.g. '0101')"
        )
    index, uniques = pd.factorize(values.astype(object), use_na_sentinel=False)
    classes: list[LandClass] = []
    unknown: list[str] = []
    for raw in uniques:
        try:
            classes.append(LAND_CLASSES[normalize_code(raw)])
        except (KeyError, DataError):
            text = str(raw)
            unknown.append(f"{raw!r}{_suggestion(text) or ' (no close match)'}")
    if unknown:
        shown = ", ".join(unknown[:10]) + (" …" if len(unknown) > 10 else "")
        raise DataError(f"{where}: unknown land class code(s) {shown}; {_HOW_TO_FIX}")
    return np.asarray(index, dtype=np.intp), classes


def category_of(
    codes: Iterable[Any] | pd.Series, *, where: str = "land_class"
) -> NDArray[np.object_]:
    """Return the broad category (三大类) of each code, vectorised.

    Each distinct code is looked up once, so a column of 10⁶ patches costs a
    factorisation and a ``take``.

    Parameters
    ----------
    codes : array-like of str
        Land class codes.
    where : str, default 'land_class'
        Named in error messages (e.g. ``'parcels.land_class'``).

    Returns
    -------
    numpy.ndarray of str (object dtype)
        ``'agricultural'``, ``'construction'`` or ``'unused'`` per code.
        Cultivated land is ``'agricultural'``; see :func:`is_cultivated`.

    Raises
    ------
    DataError
        If a code is missing or unknown (all unknown codes are listed, each with
        its nearest known codes).

    Examples
    --------
    >>> category_of(["0101", "05H1", "0404"]).tolist()
    ['agricultural', 'construction', 'unused']
    """
    index, classes = _lookup(codes, where)
    table = np.array([str(c.category) for c in classes] or [""], dtype=object)
    return np.asarray(table[index], dtype=object)


@overload
def is_cultivated(codes: str, *, where: str = ...) -> bool: ...
@overload
def is_cultivated(codes: Iterable[Any] | pd.Series, *, where: str = ...) -> NDArray[np.bool_]: ...
def is_cultivated(
    codes: str | Iterable[Any] | pd.Series, *, where: str = "land_class"
) -> bool | NDArray[np.bool_]:
    """Return whether each code is cultivated land (耕地: 0101, 0102, 0103).

    Parameters
    ----------
    codes : str or array-like of str
        One code or many.
    where : str, default 'land_class'
        Named in error messages.

    Returns
    -------
    bool or numpy.ndarray of bool

    Raises
    ------
    DataError
        If a code is missing or unknown.
    """
    if isinstance(codes, str):
        return land_class(codes).cultivated
    index, classes = _lookup(codes, where)
    table = np.array([c.cultivated for c in classes] or [False], dtype=bool)
    return np.asarray(table[index], dtype=bool)


@overload
def is_paddy(codes: str, *, where: str = ...) -> bool: ...
@overload
def is_paddy(codes: Iterable[Any] | pd.Series, *, where: str = ...) -> NDArray[np.bool_]: ...
def is_paddy(
    codes: str | Iterable[Any] | pd.Series, *, where: str = "land_class"
) -> bool | NDArray[np.bool_]:
    """Return whether each code is paddy field (水田, 0101), the paddy part of R4.

    Parameters
    ----------
    codes : str or array-like of str
        One code or many.
    where : str, default 'land_class'
        Named in error messages.

    Returns
    -------
    bool or numpy.ndarray of bool

    Raises
    ------
    DataError
        If a code is missing or unknown.
    """
    if isinstance(codes, str):
        return land_class(codes).paddy
    index, classes = _lookup(codes, where)
    table = np.array([c.paddy for c in classes] or [False], dtype=bool)
    return np.asarray(table[index], dtype=bool)


def grain_yields(overrides: Mapping[str, float] | None = None) -> dict[str, float]:
    """Return the default grain yield of each cultivated class, with *overrides* applied.

    Parameters
    ----------
    overrides : mapping of str to float, optional
        Yields in kg per m² per year that replace :data:`DEFAULT_GRAIN_KG_PER_M2`
        for the classes named (only cultivated classes have a yield under R4).

    Returns
    -------
    dict of str to float
        One yield for each of 0101, 0102 and 0103.

    Raises
    ------
    ParameterError
        If a key is not a cultivated class or a value is not a finite number ≥ 0.

    Examples
    --------
    >>> grain_yields({"0101": 1.0})["0101"]
    1.0
    """
    yields = dict(DEFAULT_GRAIN_KG_PER_M2)
    for key, value in (overrides or {}).items():
        code = key.strip().upper() if isinstance(key, str) else key
        if code not in yields:
            raise ParameterError(
                f"grain_defaults has key {key!r}; only the cultivated classes "
                f"{', '.join(map(repr, yields))} carry a grain yield (R4)"
            )
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number) or number < 0:
            raise ParameterError(
                f"grain_defaults[{key!r}] = {value!r}; give a finite yield ≥ 0 in kg per m² "
                "per year (0.9 kg/m² = 600 kg/mu)"
            )
        yields[code] = number
    return yields

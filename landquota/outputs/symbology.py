"""One definition of the display classes and colours of every layer (图例与配色).

The HTML map (:mod:`landquota.outputs.maps`), the QGIS styles stored in the workspace
(:mod:`landquota.outputs.styles`), the QGIS project
(:mod:`landquota.outputs.qgis_project`) and the report charts all take their classes,
colours and Chinese/English labels from here, so that a planner sees the same legend in
the browser, in QGIS and on paper. Labels come from :mod:`landquota.labels` where the
class is a stored code.

Survey patches are drawn by **display class**: the three cultivated classes (耕地) by
code, the rest of agricultural land (农用地) by GB/T 21010-2017 first-level class —
garden (园地, 02), forest (林地, 03), grassland (草地, 04), and the agricultural water
classes that GB/T 21010-2017's three-category table counts as agricultural land:
reservoirs 1103, ponds 1104/1104A/1104K and ditches 1107/1107A — then construction land
(建设用地) and unused land (未利用地), whose natural waters (rivers 1101, lakes 1102, tidal
flats 1105/1106, swamps 1108, glaciers 1110) are shown apart from the rest. The category
of every code is :mod:`landquota.rules.landclasses`' (R3, R4).

Examples
--------
>>> land_display_class("0301"), land_display_class("1104A"), land_display_class("1101")
('forest', 'agri_water', 'water')
>>> LAND_DISPLAY["forest"].colour
'#2e8b3d'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from landquota import labels as lbl
from landquota.rules.landclasses import LAND_CLASSES, LandClass

__all__ = [
    "CHART_COLOURS",
    "CJK_FONT",
    "CONTROL_LINES",
    "COUNTY",
    "LAND_DISPLAY",
    "LINKAGE_ROLES",
    "OUTCOMES",
    "STOCK_COHORT_COLOURS",
    "STOCK_STATUSES",
    "TOWNS",
    "ZONES",
    "DisplayClass",
    "Symbol",
    "land_display_class",
]


@dataclass(frozen=True)
class Symbol:
    """How one class is drawn: fill and outline, with its legend label.

    Attributes
    ----------
    label : str
        Legend text, Chinese then English (``'林地 Forest land (03)'``).
    fill : str or None
        Fill colour ``#rrggbb``; None draws no fill.
    fill_opacity : float
        0–1.
    stroke : str or None
        Outline colour; None draws no outline.
    stroke_width : float
        Outline width in screen pixels (QGIS: 0.26 mm per pixel).
    dash : bool
        Dashed outline.
    """

    label: str
    fill: str | None
    fill_opacity: float = 1.0
    stroke: str | None = None
    stroke_width: float = 1.0
    dash: bool = False


@dataclass(frozen=True)
class DisplayClass:
    """A display class of survey patches: its symbol and the land-class codes it draws."""

    key: str
    label: str
    colour: str
    codes: tuple[str, ...]

    @property
    def symbol(self) -> Symbol:
        """Solid fill, no outline (patches tessellate; outlines would blacken the map)."""
        return Symbol(self.label, self.colour)


def _display_key(c: LandClass) -> str:
    if c.cultivated:
        return c.code
    if c.category == "agricultural":
        by_group = {"02": "garden", "03": "forest", "04": "grassland", "11": "agri_water"}
        return by_group.get(c.code[:2], "agricultural")
    if c.category == "unused" and c.code[:2] == "11":
        return "water"
    return c.category


# key -> (label, colour); drawing order of the legend. The cultivated classes keep the
# survey's yellows; forest is a clear green so that a forest patch is recognisable at a glance.
_DISPLAY: tuple[tuple[str, str, str], ...] = (
    ("0101", "水田 Paddy field (0101)", "#d9b80f"),
    ("0102", "水浇地 Irrigated land (0102)", "#f0dc5a"),
    ("0103", "旱地 Dry land (0103)", "#f8efa6"),
    ("garden", "园地 Garden land (02)", "#d7a1c9"),
    ("forest", "林地 Forest land (03)", "#2e8b3d"),
    ("grassland", "草地 Grassland (0401, 0402, 0403)", "#a9d46f"),
    (
        "agri_water",
        "农用地：水库坑塘沟渠 Agricultural: reservoirs, ponds, ditches (1103, 1104, 1107)",
        "#6fb1e0",
    ),
    ("agricultural", "其他农用地 Other agricultural (1006, 1202, 1203)", "#b9d39a"),
    ("construction", "建设用地 Construction land", "#e07b7b"),
    (
        "water",
        "未利用地：河湖滩涂 Unused: rivers, lakes, tidal flats (1101, 1102, 1105, 1106, 1108, 1110)",
        "#b3d6ee",
    ),
    ("unused", "其他未利用地 Other unused land (0404, 1204–1207)", "#d3c8b4"),
    ("unknown", "未识别地类 Unrecognised code", "#bdbdbd"),
)

#: Display classes of survey patches, in legend order: key -> :class:`DisplayClass`.
LAND_DISPLAY: Final[Mapping[str, DisplayClass]] = MappingProxyType(
    {
        key: DisplayClass(
            key,
            label,
            colour,
            tuple(code for code, c in LAND_CLASSES.items() if _display_key(c) == key),
        )
        for key, label, colour in _DISPLAY
    }
)


def land_display_class(code: object) -> str:
    """Return the display class key of a land-class code (``'unknown'`` if not a known code).

    Parameters
    ----------
    code : object
        A GB/T 21010 / third-survey code such as ``'0101'`` or ``'1104A'``.

    Returns
    -------
    str
        A key of :data:`LAND_DISPLAY`.
    """
    text = str(code).strip().upper() if isinstance(code, str) else None
    c = LAND_CLASSES.get(text) if text is not None else None
    return "unknown" if c is None else _display_key(c)


def _symbols(
    table: Mapping[str, tuple[str, ...]], styles: Mapping[str, dict[str, object]]
) -> Mapping[str, Symbol]:
    return MappingProxyType(
        {
            code: Symbol(lbl.label(table, code, capitalize=True), **style)  # type: ignore[arg-type]
            for code, style in styles.items()
        }
    )


#: Construction-control zones (``plan_zones.zone_type``): light, half-transparent fills so
#: that the patches below stay readable in QGIS as on the HTML map.
ZONES: Final[Mapping[str, Symbol]] = _symbols(
    lbl.ZONE_TYPE_LABELS,
    {
        code: {"fill": c, "fill_opacity": 0.35, "stroke": c, "stroke_width": 1.0}
        for code, c in (
            ("allowed", "#a6d96a"),
            ("conditional", "#fee08b"),
            ("restricted", "#fdae61"),
            ("prohibited", "#d73027"),
        )
    },
)

#: Control lines (``control_lines.kind``); the urban development boundary is an outline.
CONTROL_LINES: Final[Mapping[str, Symbol]] = _symbols(
    lbl.CONTROL_KIND_LABELS,
    {
        "basic_farmland": {
            "fill": "#74c476",
            "fill_opacity": 0.35,
            "stroke": "#238b45",
            "stroke_width": 1.5,
        },
        "eco_redline": {
            "fill": "#fb9a99",
            "fill_opacity": 0.25,
            "stroke": "#e31a1c",
            "stroke_width": 1.5,
        },
        "urban_boundary": {"fill": None, "stroke": "#6a3d9a", "stroke_width": 1.5, "dash": True},
    },
)

_STOCK_COLOURS = {
    "idle": "#d7301f",
    "not_idle": "#969696",
    "approved_unsupplied": "#3182bd",
    "lapsed": "#8c510a",
    "reclaimed": "#31a354",
    "swapped": "#74c476",
    "closed": "#bdbdbd",
    "not_yet_supplied": "#c6dbef",
    "not_yet_approved": "#deebf7",
}

#: Stock land by review status (``landquota.rules.stock.STOCK_STATUSES``) plus ``unreviewed``.
STOCK_STATUSES: Final[Mapping[str, Symbol]] = MappingProxyType(
    {
        **_symbols(
            lbl.STOCK_STATUS_LABELS,
            {
                code: {
                    "fill": c,
                    "fill_opacity": 0.45,
                    "stroke": c,
                    "stroke_width": 1.5,
                    "dash": code == "lapsed",
                }
                for code, c in _STOCK_COLOURS.items()
            },
        ),
        # a supplied parcel drawn without an idle-land review
        "unreviewed": Symbol(
            "已供地（未审查）Supplied, not reviewed", "#bdbdbd", 0.45, "#bdbdbd", 1.5
        ),
    }
)
#: Approved-unsupplied land by approval-year cohort (the map's cohort legend).
STOCK_COHORT_COLOURS: Final = (
    "#08519c",
    "#3182bd",
    "#6baed6",
    "#9ecae1",
    "#2171b5",
    "#4292c6",
    "#c6dbef",
)

#: Key projects by allocation outcome (``allocations.outcome``) plus ``not_allocated``.
OUTCOMES: Final[Mapping[str, Symbol]] = MappingProxyType(
    {
        **_symbols(
            lbl.OUTCOME_LABELS,
            {
                code: {"fill": c, "fill_opacity": 0.6, "stroke": c, "stroke_width": 2.0}
                for code, c in (
                    ("funded", "#1a9850"),
                    ("partial", "#a6d96a"),
                    ("stock_matched", "#2c7bb6"),
                    ("blocked", "#d7191c"),
                    ("unfunded", "#fdae61"),
                )
            },
        ),
        "not_allocated": Symbol("尚未分配 Not yet allocated", "#878787", 0.6, "#878787", 2.0),
    }
)

#: Linkage plots (``linkage_plots.role``).
LINKAGE_ROLES: Final[Mapping[str, Symbol]] = _symbols(
    lbl.PLOT_ROLE_LABELS,
    {
        code: {"fill": c, "fill_opacity": 0.5, "stroke": c, "stroke_width": 1.5}
        for code, c in (("demolition", "#e08214"), ("construction", "#8073ac"))
    },
)

#: Outlines.
TOWNS: Final = Symbol("乡镇界 Town boundary", None, 0.0, "#525252", 1.2, dash=True)
COUNTY: Final = Symbol("县界 County boundary", None, 0.0, "#000000", 2.5)

#: The CJK sans-serif font of every printed or drawn text (reports, QGIS labels, charts);
#: Debian's fonts-noto-cjk. A reader without it sees the system's CJK fallback.
CJK_FONT: Final = "Noto Sans CJK SC"

#: Report charts: pool balances, and completion behind / on the time progress (R17).
CHART_COLOURS: Final[Mapping[str, str]] = MappingProxyType(
    {"pool": "#2c7bb6", "behind": "#d7191c", "on_track": "#1a9641", "time_progress": "#404040"}
)

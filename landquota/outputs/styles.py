"""QGIS styles of the workspace layers: QML and SLD, stored in QGIS's ``layer_styles`` table.

Every spatial layer gets a default style with the classes, colours and Chinese/English
labels of the HTML map (:mod:`landquota.outputs.symbology`), as a QGIS rule-based
renderer (QML) and as an OGC Symbology Encoding 1.1 document (SLD, for GeoServer and
other clients). :func:`write_layer_styles` stores them in the table QGIS itself reads
and writes when a layer is opened (``Layer Properties ▸ Style ▸ Load from database``):

- GeoPackage: ``layer_styles`` in the file, registered in ``gpkg_contents`` as an
  attributes table (the definition QGIS and GDAL create; the GeoPackage stays valid
  under GDAL's validator);
- PostGIS: ``public.layer_styles``, where QGIS looks for it (its queries name the table
  without a schema, so it is found on the default ``search_path``); rows name the
  workspace schema in ``f_table_schema``, so several workspaces share the table.

Each layer's row is the default (``useAsDefault``) style named ``landquota``; writing
again replaces landquota's rows and leaves styles that users saved under other names.

What QGIS cannot compute by itself is shown by what is stored: stock land by its stored
kind (approved-unsupplied or supplied: the idle status depends on a review date, see
``landquota idle``) and key projects by the outcome of the run joined in the stored QGIS
project (``run_outcome``; a project outside the run is "not yet allocated").
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, cast
from xml.sax.saxutils import escape, quoteattr

from landquota import labels as lbl
from landquota.outputs import symbology as sym

if TYPE_CHECKING:
    from landquota.store.gpkg import GpkgWorkspace
    from landquota.store.postgis import PostgisWorkspace
    from landquota.store.workspace import Workspace

__all__ = [
    "LAYER_TITLES",
    "STYLE_NAME",
    "StyleRule",
    "layer_qml",
    "layer_rules",
    "layer_sld",
    "read_layer_styles",
    "write_layer_styles",
]

#: Name of landquota's default style of each layer in ``layer_styles``.
STYLE_NAME: Final = "landquota"

#: Field of the projects layer that the stored QGIS project joins from the shown run.
OUTCOME_FIELD: Final = "run_outcome"

#: Layer titles (Chinese, English) as QGIS shows them; the HTML map's overlay names.
LAYER_TITLES: Final[Mapping[str, str]] = {
    "county": sym.COUNTY.label,
    "towns": "乡镇界 Town boundaries",
    "parcels": "地类图斑 Land-use patches",
    "plan_zones": "建设用地管制分区 Plan control zones",
    "control_lines": "控制线 Control lines",
    "stock_land": "存量土地 Stock land",
    "linkage_plots": "增减挂钩地块 Linkage plots",
    "projects": "重点项目 Key projects",
}

#: The CJK sans-serif font of labels (Debian: fonts-noto-cjk).
LABEL_FONT: Final = sym.CJK_FONT

# QGIS measures outlines in millimetres; the map's widths are CSS pixels (0.26 mm each).
_MM_PER_PX: Final = 0.26


@dataclass(frozen=True)
class StyleRule:
    """One class of a layer: features whose *column* is one of *values* (or all the rest)."""

    symbol: sym.Symbol
    column: str | None = None
    values: tuple[str, ...] = ()
    otherwise: bool = False

    @property
    def expression(self) -> str:
        """The QGIS filter expression (``ELSE`` for the catch-all rule, '' for every feature)."""
        if self.otherwise:
            return "ELSE"
        if self.column is None:
            return ""
        quoted = ", ".join("'" + v.replace("'", "''") + "'" for v in self.values)
        return f'"{self.column}" IN ({quoted})'


def _by(column: str, symbols: Mapping[str, sym.Symbol]) -> list[StyleRule]:
    return [StyleRule(s, column, (code,)) for code, s in symbols.items()]


def layer_rules(layer: str) -> list[StyleRule]:
    """Return the classes of a spatial workspace layer, in legend order.

    Parameters
    ----------
    layer : str
        One of :data:`LAYER_TITLES`.

    Returns
    -------
    list of StyleRule

    Raises
    ------
    KeyError
        If the layer has no style (a table without geometry).
    """
    if layer == "parcels":
        rules = [
            StyleRule(d.symbol, "land_class", d.codes)
            for key, d in sym.LAND_DISPLAY.items()
            if key != "unknown"
        ]
        return [*rules, StyleRule(sym.LAND_DISPLAY["unknown"].symbol, otherwise=True)]
    if layer == "plan_zones":
        return _by("zone_type", sym.ZONES)
    if layer == "control_lines":
        return _by("kind", sym.CONTROL_LINES)
    if layer == "stock_land":
        approved = sym.STOCK_STATUSES["approved_unsupplied"]
        supplied = sym.STOCK_STATUSES["unreviewed"]
        return [
            StyleRule(approved, "kind", ("approved_unsupplied",)),
            StyleRule(
                sym.Symbol(
                    lbl.label(lbl.STOCK_KIND_LABELS, "supplied", capitalize=True)
                    + "（闲置认定见 landquota idle; idle status: see landquota idle）",
                    supplied.fill,
                    supplied.fill_opacity,
                    supplied.stroke,
                    supplied.stroke_width,
                ),
                "kind",
                ("supplied",),
            ),
        ]
    if layer == "linkage_plots":
        return _by("role", sym.LINKAGE_ROLES)
    if layer == "projects":
        outcomes = {k: s for k, s in sym.OUTCOMES.items() if k != "not_allocated"}
        return [
            *_by(OUTCOME_FIELD, outcomes),
            StyleRule(sym.OUTCOMES["not_allocated"], otherwise=True),
        ]
    if layer == "towns":
        return [StyleRule(sym.TOWNS)]
    if layer == "county":
        return [StyleRule(sym.COUNTY)]
    raise KeyError(f"layer {layer!r} has no style; styled layers: {', '.join(LAYER_TITLES)}")


#: Layers labelled by a text column.
_LABELS: Final[Mapping[str, str]] = {"towns": "name"}


def _rgba(colour: str | None, opacity: float = 1.0) -> str:
    if colour is None:
        return "0,0,0,0"
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"{r},{g},{b},{round(255 * opacity)}"


def _symbol_qml(name: int, s: sym.Symbol) -> str:
    props = {
        "color": _rgba(s.fill, s.fill_opacity),
        "style": "solid" if s.fill is not None else "no",
        "outline_color": _rgba(s.stroke),
        "outline_style": "no" if s.stroke is None else ("dash" if s.dash else "solid"),
        "outline_width": f"{s.stroke_width * _MM_PER_PX:.2f}",
        "outline_width_unit": "MM",
        "joinstyle": "bevel",
    }
    body = "".join(f'<prop k="{k}" v={quoteattr(v)}/>' for k, v in props.items())
    return (
        f'<symbol type="fill" name="{name}" alpha="1" clip_to_extent="1" force_rhr="0">'
        f'<layer class="SimpleFill" enabled="1" locked="0" pass="0">{body}</layer></symbol>'
    )


def _key(layer: str, i: int | str) -> str:
    # Stable rule keys: the same workspace gives the same styles, byte for byte.
    return "{" + str(uuid.uuid5(uuid.NAMESPACE_URL, f"landquota:{layer}:{i}")) + "}"


def renderer_qml(layer: str) -> str:
    """Return the ``<renderer-v2>`` element (and labelling) of *layer*, as QML text."""
    rules = layer_rules(layer)
    rule_xml = "".join(
        f"<rule key={quoteattr(_key(layer, i))} label={quoteattr(r.symbol.label)} "
        f'filter={quoteattr(r.expression)} symbol="{i}"/>'
        if r.expression
        else f'<rule key={quoteattr(_key(layer, i))} label={quoteattr(r.symbol.label)} symbol="{i}"/>'
        for i, r in enumerate(rules)
    )
    symbols = "".join(_symbol_qml(i, r.symbol) for i, r in enumerate(rules))
    out = (
        '<renderer-v2 type="RuleRenderer" forceraster="0" symbollevels="0" enableorderby="0" '
        f'referencescale="-1"><rules key={quoteattr(_key(layer, "root"))}>{rule_xml}</rules>'
        f"<symbols>{symbols}</symbols></renderer-v2>"
    )
    field = _LABELS.get(layer)
    if field is not None:
        out += (
            '<labeling type="simple"><settings calloutType="simple">'
            f'<text-style fieldName="{field}" isExpression="0" fontFamily="{LABEL_FONT}" '
            'fontSize="10" fontSizeUnit="Point" textColor="50,50,50,255" textOpacity="1" '
            'fontWeight="50" namedStyle="Regular">'
            '<text-buffer bufferDraw="1" bufferSize="1" bufferSizeUnits="MM" '
            'bufferColor="255,255,255,255" bufferOpacity="1" bufferNoFill="1" '
            'bufferJoinStyle="128"/></text-style>'
            '<placement placement="1" polygonPlacementFlags="2" centroidWhole="0" '
            'centroidInside="1" fitInPolygonOnly="0" priority="5"/>'
            '<rendering drawLabels="1" obstacle="1" obstacleType="1" displayAll="0" '
            'upsidedownLabels="0" labelPerPart="0" mergeLines="0" scaleVisibility="0" '
            'maxNumLabels="2000" limitNumLabels="0" minFeatureSize="0"/>'
            "</settings></labeling>"
        )
    return out


def layer_qml(layer: str) -> str:
    """Return the QGIS style (QML document) of a spatial workspace layer.

    Parameters
    ----------
    layer : str
        One of :data:`LAYER_TITLES`.

    Returns
    -------
    str
        A ``<qgis>`` document with a rule-based renderer (one rule per class of
        :func:`layer_rules`) and, for towns, labels in a CJK sans-serif font.
    """
    labels = "1" if layer in _LABELS else "0"
    return (
        "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
        f'<qgis version="3.22.16" styleCategories="Symbology|Labeling" labelsEnabled="{labels}">'
        f"{renderer_qml(layer)}<layerGeometryType>2</layerGeometryType></qgis>\n"
    )


def _sld_filter(r: StyleRule) -> str:
    if r.otherwise:
        return "<se:ElseFilter/>"
    if r.column is None:
        return ""
    tests = [
        "<ogc:PropertyIsEqualTo><ogc:PropertyName>"
        f"{escape(r.column)}</ogc:PropertyName><ogc:Literal>{escape(v)}</ogc:Literal>"
        "</ogc:PropertyIsEqualTo>"
        for v in r.values
    ]
    inner = tests[0] if len(tests) == 1 else f"<ogc:Or>{''.join(tests)}</ogc:Or>"
    return f"<ogc:Filter>{inner}</ogc:Filter>"


def _sld_symbolizer(s: sym.Symbol) -> str:
    fill = (
        ""
        if s.fill is None
        else (
            f'<se:Fill><se:SvgParameter name="fill">{s.fill}</se:SvgParameter>'
            f'<se:SvgParameter name="fill-opacity">{s.fill_opacity:g}</se:SvgParameter></se:Fill>'
        )
    )
    stroke = ""
    if s.stroke is not None:
        dash = '<se:SvgParameter name="stroke-dasharray">5 3</se:SvgParameter>' if s.dash else ""
        stroke = (
            f'<se:Stroke><se:SvgParameter name="stroke">{s.stroke}</se:SvgParameter>'
            f'<se:SvgParameter name="stroke-width">{s.stroke_width:g}</se:SvgParameter>'
            f"{dash}</se:Stroke>"
        )
    return f"<se:PolygonSymbolizer>{fill}{stroke}</se:PolygonSymbolizer>"


def layer_sld(layer: str) -> str:
    """Return the style of a spatial workspace layer as SLD 1.1 (Symbology Encoding).

    Parameters
    ----------
    layer : str
        One of :data:`LAYER_TITLES`.

    Returns
    -------
    str
        A ``StyledLayerDescriptor`` with one ``se:Rule`` per class (``ogc:Or`` of
        equality tests; ``se:ElseFilter`` for the catch-all class), the same
        colours and labels as the QML.
    """
    rules = "".join(
        f"<se:Rule><se:Name>{escape(r.symbol.label)}</se:Name><se:Description><se:Title>"
        f"{escape(r.symbol.label)}</se:Title></se:Description>{_sld_filter(r)}"
        f"{_sld_symbolizer(r.symbol)}</se:Rule>"
        for r in layer_rules(layer)
    )
    field = _LABELS.get(layer)
    if field is not None:
        rules += (
            "<se:Rule><se:TextSymbolizer><se:Label><ogc:PropertyName>"
            f"{field}</ogc:PropertyName></se:Label><se:Font>"
            f'<se:SvgParameter name="font-family">{LABEL_FONT}</se:SvgParameter>'
            '<se:SvgParameter name="font-size">13</se:SvgParameter></se:Font>'
            '<se:Halo><se:Radius>2</se:Radius><se:Fill><se:SvgParameter name="fill">#ffffff'
            "</se:SvgParameter></se:Fill></se:Halo><se:Fill>"
            '<se:SvgParameter name="fill">#323232</se:SvgParameter></se:Fill>'
            "</se:TextSymbolizer></se:Rule>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<StyledLayerDescriptor xmlns="http://www.opengis.net/sld" '
        'xmlns:ogc="http://www.opengis.net/ogc" xmlns:se="http://www.opengis.net/se" '
        'xmlns:xlink="http://www.w3.org/1999/xlink" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" version="1.1.0" '
        'xsi:schemaLocation="http://www.opengis.net/sld '
        'http://schemas.opengis.net/sld/1.1.0/StyledLayerDescriptor.xsd">'
        f"<NamedLayer><se:Name>{layer}</se:Name><UserStyle><se:Name>{STYLE_NAME}</se:Name>"
        f"<se:FeatureTypeStyle>{rules}</se:FeatureTypeStyle></UserStyle></NamedLayer>"
        "</StyledLayerDescriptor>\n"
    )


# --- the layer_styles table ------------------------------------------------------------

# QGIS's own definition of the GeoPackage table (QGIS 3.22, through GDAL).
_GPKG_DDL: Final = (
    'CREATE TABLE IF NOT EXISTS "layer_styles" ("id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, '
    '"f_table_catalog" TEXT(256), "f_table_schema" TEXT(256), "f_table_name" TEXT(256), '
    '"f_geometry_column" TEXT(256), "styleName" TEXT(30), "styleQML" TEXT, "styleSLD" TEXT, '
    '"useAsDefault" BOOLEAN, "description" TEXT, "owner" TEXT(30), "ui" TEXT(30), '
    "\"update_time\" DATETIME DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')))"
)
# QGIS's own definition of the PostgreSQL table (QgsPostgresUtils::createStylesTable).
_PG_DDL: Final = (
    "CREATE TABLE IF NOT EXISTS public.layer_styles (id SERIAL PRIMARY KEY, "
    "f_table_catalog varchar, f_table_schema varchar, f_table_name varchar, "
    "f_geometry_column varchar, stylename text, styleqml xml, stylesld xml, "
    "useasdefault boolean, description text, owner varchar(63) DEFAULT CURRENT_USER, "
    "ui xml, update_time timestamp DEFAULT CURRENT_TIMESTAMP, type varchar)"
)
_DESCRIPTION: Final = "landquota 默认样式 default style (landquota.outputs.symbology)"


def styled_layers() -> tuple[str, ...]:
    """Return the spatial layers that get a style, in drawing order (bottom first)."""
    return (
        "parcels",
        "plan_zones",
        "control_lines",
        "stock_land",
        "linkage_plots",
        "projects",
        "towns",
        "county",
    )


def write_layer_styles(ws: Workspace) -> int:
    """Store the default style of every spatial layer in the workspace's ``layer_styles``.

    Parameters
    ----------
    ws : Workspace
        A GeoPackage or PostGIS workspace (the table is created when missing).

    Returns
    -------
    int
        Number of layers styled.
    """
    layers = styled_layers()
    geom = "geom"
    if ws.kind == "gpkg":
        gws = cast("GpkgWorkspace", ws)
        with gws._tx() as con:
            con.execute(_GPKG_DDL)
            con.execute(
                "INSERT OR IGNORE INTO gpkg_contents (table_name, data_type, identifier, "
                "description, srs_id) VALUES ('layer_styles', 'attributes', 'layer_styles', "
                "'QGIS layer styles', 0)"
            )
            con.execute("DELETE FROM layer_styles WHERE styleName = ?", (STYLE_NAME,))
            for name in layers:
                # one default per layer: landquota's becomes the default, others stay saved
                con.execute(
                    "UPDATE layer_styles SET useAsDefault = 0 WHERE f_table_name = ?", (name,)
                )
                con.execute(
                    "INSERT INTO layer_styles (f_table_catalog, f_table_schema, f_table_name, "
                    "f_geometry_column, styleName, styleQML, styleSLD, useAsDefault, "
                    "description, owner, ui) VALUES ('', '', ?, ?, ?, ?, ?, 1, ?, '', NULL)",
                    (name, geom, STYLE_NAME, layer_qml(name), layer_sld(name), _DESCRIPTION),
                )
        return len(layers)
    import sqlalchemy as sa

    pws = cast("PostgisWorkspace", ws)
    with pws._tx() as pcon:
        # Several workspaces (and test runs) may create the shared table at once.
        pcon.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('landquota.layer_styles'))"))
        pcon.execute(sa.text(_PG_DDL))
        catalog = str(pcon.execute(sa.text("SELECT current_database()")).scalar())
        where = "f_table_catalog = :c AND f_table_schema = :s"
        pcon.execute(
            sa.text(f"DELETE FROM public.layer_styles WHERE {where} AND stylename = :n"),
            {"c": catalog, "s": pws.schema, "n": STYLE_NAME},
        )
        for name in layers:
            pcon.execute(
                sa.text(
                    f"UPDATE public.layer_styles SET useasdefault = false WHERE {where} "
                    "AND f_table_name = :t"
                ),
                {"c": catalog, "s": pws.schema, "t": name},
            )
            pcon.execute(
                sa.text(
                    "INSERT INTO public.layer_styles (f_table_catalog, f_table_schema, "
                    "f_table_name, f_geometry_column, stylename, styleqml, stylesld, "
                    "useasdefault, description, type) VALUES (:c, :s, :t, :g, :n, "
                    "XMLPARSE(DOCUMENT :q), XMLPARSE(DOCUMENT :d), true, :desc, 'Polygon')"
                ),
                {
                    "c": catalog,
                    "s": pws.schema,
                    "t": name,
                    "g": geom,
                    "n": STYLE_NAME,
                    "q": layer_qml(name),
                    "d": layer_sld(name),
                    "desc": _DESCRIPTION,
                },
            )
    return len(layers)


def read_layer_styles(ws: Workspace) -> dict[str, str]:
    """Return ``{layer: QML}`` of landquota's stored default styles (empty if none)."""
    if ws.kind == "gpkg":
        gws = cast("GpkgWorkspace", ws)
        con = gws._con
        if not con.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'layer_styles'"
        ).fetchone():
            return {}
        rows = con.execute(
            "SELECT f_table_name, styleQML FROM layer_styles WHERE styleName = ?", (STYLE_NAME,)
        ).fetchall()
        return {str(t): str(q) for t, q in rows}
    import sqlalchemy as sa

    pws = cast("PostgisWorkspace", ws)
    with pws.engine.connect() as pcon:
        if not pcon.execute(sa.text("SELECT to_regclass('public.layer_styles')")).scalar():
            return {}
        found = pcon.execute(
            sa.text(
                "SELECT f_table_name, styleqml::text FROM public.layer_styles WHERE "
                "f_table_catalog = current_database() AND f_table_schema = :s "
                "AND stylename = :n"
            ),
            {"s": pws.schema, "n": STYLE_NAME},
        ).all()
    return {str(t): str(q) for t, q in found}

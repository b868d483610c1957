"""Offline assets of the maps: vendored Leaflet, the landquota map runtime, and the checks.

Bureau networks are often cut off from the internet, so a saved map must fetch
nothing: Leaflet's JS and CSS are read from ``landquota/outputs/_vendor`` and inlined, the
images its CSS refers to become ``data:`` URIs, and folium's default CDN links
(jQuery, Bootstrap, awesome-markers, which nothing here uses) are dropped.
"""

from __future__ import annotations

import base64
import re
from functools import cache
from importlib import resources
from typing import Any

from branca.element import Element
from jinja2 import Template

__all__ = [
    "LEAFLET_VERSION",
    "RUNTIME_CSS",
    "RUNTIME_JS",
    "external_references",
    "inline_leaflet",
    "json_for_html",
    "leaflet_css",
    "leaflet_js",
]

LEAFLET_VERSION = "1.9.4"
_LEAFLET_DIR = f"leaflet-{LEAFLET_VERSION}"

# http(s) strings in the vendored Leaflet that are never fetched: the SVG namespace
# and the link in Leaflet's attribution prefix (an <a href>, followed only on a click).
_NEVER_FETCHED = frozenset({"http://www.w3.org/2000/svg", "https://leafletjs.com"})


def _vendor_bytes(*parts: str) -> bytes:
    node = resources.files("landquota.outputs").joinpath("_vendor", _LEAFLET_DIR, *parts)
    return node.read_bytes()


@cache
def leaflet_js() -> str:
    """Return the vendored ``leaflet.js``, without its source-map comment.

    DevTools would try to fetch ``leaflet.js.map``; the comment is dropped so
    that not even that request is made.
    """
    js = _vendor_bytes("leaflet.js").decode("utf-8")
    js = re.sub(r"//# sourceMappingURL=\S+\s*$", "", js)
    if re.search(r"</script", js, re.IGNORECASE):  # would end the inline <script> early
        raise RuntimeError("vendored leaflet.js contains '</script'; it cannot be inlined")
    return js


@cache
def leaflet_css() -> str:
    """Return the vendored ``leaflet.css`` with its images inlined as ``data:`` URIs."""
    css = _vendor_bytes("leaflet.css").decode("utf-8")

    def data_uri(match: re.Match[str]) -> str:
        name = match.group(1)
        payload = base64.b64encode(_vendor_bytes("images", name)).decode("ascii")
        return f"url(data:image/png;base64,{payload})"

    return re.sub(r"url\(images/([\w.-]+\.png)\)", data_uri, css)


def json_for_html(text: str) -> str:
    """Make JSON text safe inside ``<script type="application/json">``.

    Names come from user data: a project called ``</script><script>…`` must not
    end the block. ``<``, ``>`` and ``&`` become JSON escapes (the parsed value is
    unchanged), and so do U+2028/U+2029.
    """
    return (
        text.replace("&", "\\u0026")
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def inline_leaflet(m: Any) -> None:
    """Make the folium map *m* offline: inline Leaflet and drop every CDN link.

    Parameters
    ----------
    m : folium.Map
        The map; changed in place. Its figure header gets the inlined Leaflet
        CSS and JS, and the landquota runtime.
    """
    # Instance attributes shadow folium's class lists of CDN links (Leaflet, jQuery,
    # Bootstrap, awesome-markers, Font Awesome); nothing in these maps needs the others.
    m.default_js = []
    m.default_css = []
    header = m.get_root().header
    header.add_child(_Raw("style", leaflet_css()), name="leaflet_css")
    header.add_child(_Raw("script", leaflet_js()), name="leaflet")
    header.add_child(_Raw("style", RUNTIME_CSS), name="landquota_css")
    header.add_child(_Raw("script", RUNTIME_JS), name="landquota_js")


class _Raw(Element):
    """``<tag>text</tag>`` with *text* passed through as is.

    ``branca.element.Element(text)`` would compile *text* as a Jinja template
    (``{#`` in minified JS would start a comment, CRLF would be normalised);
    here the text is a template *variable*, copied byte for byte.
    """

    _template = Template("<{{ this.tag }}>{{ this.text }}</{{ this.tag }}>")

    def __init__(self, tag: str, text: str) -> None:
        super().__init__()
        self.tag = tag
        self.text = text


_TAG_REFS = (
    re.compile(r"<script\b[^>]*\bsrc\s*=\s*[\"']?([^\"'\s>]+)", re.IGNORECASE),
    re.compile(r"<link\b[^>]*\bhref\s*=\s*[\"']?([^\"'\s>]+)", re.IGNORECASE),
    re.compile(
        r"<(?:img|iframe|source|embed|video|audio|object)\b[^>]*\b(?:src|data)\s*=\s*"
        r"[\"']?([^\"'\s>]+)",
        re.IGNORECASE,
    ),
)
_CSS_REFS = (
    re.compile(r"url\(\s*[\"']?([^\"')\s]+)", re.IGNORECASE),
    re.compile(r"@import\s+(?:url\()?[\"']?([^\"')\s;]+)", re.IGNORECASE),
)
_STYLE_BLOCK = re.compile(r"(<style\b[^>]*>)(.*?)(</style>)", re.IGNORECASE | re.DOTALL)
_STYLE_ATTR = re.compile(r"\bstyle\s*=\s*\"([^\"]*)\"", re.IGNORECASE)
_CSS_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)
_ABSOLUTE = re.compile(r"(?:https?:)?//[^\s\"'<>()\\`]+", re.IGNORECASE)


def external_references(html: str) -> list[str]:
    """List what a browser could fetch from *html*, other than ``data:`` and ``#`` refs.

    Every ``src``/``href`` of scripts, stylesheets and images, every CSS ``url()``
    and ``@import`` (in ``<style>`` blocks and ``style`` attributes), and every other
    absolute ``http(s)://`` or ``//host`` string (a tile URL template inside JS, say)
    except the two known never-fetched ones of Leaflet. CSS comments are skipped.

    Parameters
    ----------
    html : str
        A rendered map.

    Returns
    -------
    list of str
        The references found, in order, without duplicates; empty for an offline map.
    """
    # CSS comments (Leaflet's cite bug-tracker URLs) are never fetched.
    html = _STYLE_BLOCK.sub(lambda m: m.group(1) + _CSS_COMMENT.sub("", m.group(2)) + m.group(3),
                            html)
    found: list[str] = []
    for pattern in _TAG_REFS:
        found.extend(pattern.findall(html))
    css = [m.group(2) for m in _STYLE_BLOCK.finditer(html)] + _STYLE_ATTR.findall(html)
    for pattern in _CSS_REFS:
        for block in css:
            found.extend(pattern.findall(block))
    found = [ref for ref in found if not ref.lower().startswith(("data:", "#", "about:"))]
    for ref in _ABSOLUTE.findall(html):
        if ref.startswith("//") and not re.match(r"//[\w-]+(\.[\w-]+)*\.[a-z]{2,}\b", ref):
            continue  # '//' of a JS comment or regex, not a protocol-relative URL
        if ref.rstrip("/.,;") not in _NEVER_FETCHED:
            found.append(ref)
    return list(dict.fromkeys(found))


RUNTIME_CSS = """
.lq-legend, .lq-search { background: rgba(255,255,255,0.93); padding: 6px 8px;
  font: 12px/1.35 "Noto Sans CJK SC", "Microsoft YaHei", sans-serif; }
.lq-legend { max-height: 60vh; overflow-y: auto; max-width: 290px; }
.lq-legend h4 { margin: 6px 0 2px; font-size: 12px; }
.lq-legend h4:first-child { margin-top: 0; }
.lq-legend .lq-item { display: flex; align-items: center; gap: 6px; margin: 1px 0; }
.lq-legend .lq-swatch { width: 16px; height: 11px; flex: none; box-sizing: border-box; }
.lq-legend .lq-note { color: #555; margin-top: 4px; }
.lq-search input { width: 210px; font-size: 12px; padding: 2px 4px; }
.lq-search .lq-search-msg { color: #b2182b; min-height: 1em; }
.lq-popup table { border-collapse: collapse; font-size: 12px; }
.lq-popup th { text-align: left; padding: 4px 0 1px; border-bottom: 1px solid #ccc; }
.lq-popup td { padding: 1px 6px 1px 0; vertical-align: top; }
.lq-popup td.lq-v { font-variant-numeric: tabular-nums; }
.lq-popup h3 { margin: 0 0 4px; font-size: 14px; }
.lq-town-label { font: bold 12px sans-serif; color: #333; white-space: nowrap;
  text-shadow: 0 0 3px #fff, 0 0 3px #fff; }
.lq-legend .lq-legend-toggle { display: block; width: 100%; margin: 0 0 2px; padding: 2px 0;
  border: 0; background: none; font: bold 12px/1.35 "Noto Sans CJK SC", sans-serif;
  text-align: left; cursor: pointer; }
.lq-legend.lq-collapsed { max-height: none; overflow: visible; }
.lq-legend.lq-collapsed > :not(.lq-legend-toggle) { display: none; }
.lq-legend.lq-collapsed .lq-legend-toggle { margin: 0; }
/* Phones: the panels start closed (open on demand) and the search box stays visible. */
@media (max-width: 640px) {
  .lq-search input { width: 150px; }
  .lq-search .lq-search-msg:empty { min-height: 0; }
  .lq-legend { max-width: 75vw; max-height: 45vh; }
  .leaflet-control-layers-expanded { max-height: 55vh; overflow-y: auto; }
}
"""

# The runtime decodes the compact geometry encoding of landquota.outputs.map_geometry and
# builds every popup, tooltip, legend entry and search option with textContent, so
# that text from user data is never parsed as HTML.
RUNTIME_JS = r"""
(function () {
  "use strict";
  var LQ = window.landquota = window.landquota || {};
  var SCALE = 100000;
  LQ.projects = [];

  function readData(id) {
    return JSON.parse(document.getElementById(id).textContent);
  }

  function el(tag, cls, text, parent) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    if (parent) { parent.appendChild(node); }
    return node;
  }

  // Coordinates are integers in 1e-5 degree, delta-coded in one chain per feature:
  // c = [dx, dy, dx, dy, ...], r = points per ring (or per line), q = rings per polygon.
  function decode(f) {
    var c = f.c, r = f.r, x = 0, y = 0, i = 0, ri = 0, out = [], j, m, n, ring;
    function readRing(n) {
      var pts = new Array(n);
      for (m = 0; m < n; m++) {
        x += c[i++]; y += c[i++];
        pts[m] = new L.LatLng(y / SCALE, x / SCALE);
      }
      return pts;
    }
    if (!f.q) {
      for (ri = 0; ri < r.length; ri++) { out.push(readRing(r[ri])); }
      return out;
    }
    for (var pi = 0; pi < f.q.length; pi++) {
      var rings = [];
      for (j = 0; j < f.q[pi]; j++, ri++) { n = r[ri]; ring = readRing(n); rings.push(ring); }
      out.push(rings);
    }
    return out;
  }
  LQ.decode = decode;

  function popupNode(p) {
    var box = el("div", "lq-popup"), table;
    el("h3", null, p.title, box);
    table = el("table", null, null, box);
    p.rows.forEach(function (row) {
      var tr = el("tr", null, null, table);
      if (row.length === 1) {
        var th = el("th", null, row[0], tr); th.colSpan = 2;
      } else {
        el("td", "lq-k", row[0], tr); el("td", "lq-v", row[1], tr);
      }
    });
    return box;
  }
  LQ.popupNode = popupNode;

  // Chromium's canvas builds a path in time that grows faster than linearly with
  // its number of subpaths (a 20,000-ring path takes seconds, 1,000 of 20 rings
  // take milliseconds), so a multipolygon is drawn as chunks of whole polygons.
  var RINGS_PER_CHUNK = 24;
  function chunks(latlngs) {
    var out = [], cur = [], rings = 0;
    latlngs.forEach(function (poly) {
      if (cur.length && rings + poly.length > RINGS_PER_CHUNK) { out.push(cur); cur = []; rings = 0; }
      cur.push(poly); rings += poly.length;
    });
    if (cur.length) { out.push(cur); }
    return out;
  }

  LQ.addLayer = function (group, dataId, map) {
    var d = readData(dataId), styles = d.styles, renderer = null;
    if (d.pane) {
      // Own pane and canvas: the patches are painted opaque, largest first, and the
      // pane's opacity lets the basemap (if any) show through evenly.
      if (!map.getPane(d.pane)) {
        var pane = map.createPane(d.pane);
        pane.style.zIndex = 350;
        pane.style.opacity = d.paneOpacity;
      }
      renderer = L.canvas({pane: d.pane});
    }
    if (d.lods) { lodLayer(group, d, map, renderer); return; }
    addFeatures(group, d, d.features, renderer);
  };

  // Levels of detail (tiled mode): feature f.z belongs to level d.lods[f.z] = [min, max]
  // zoom; a level's layers are built the first time it is shown, then kept.
  function lodLayer(group, d, map, renderer) {
    var subs = d.lods.map(function () { return null; });
    var byLod = d.lods.map(function () { return []; });
    d.features.forEach(function (f) { byLod[f.z].push(f); });
    function update() {
      var z = map.getZoom();
      d.lods.forEach(function (r, i) {
        var want = z >= r[0] && z <= r[1];
        if (want && !subs[i]) { subs[i] = L.layerGroup(); addFeatures(subs[i], d, byLod[i], renderer); }
        if (!subs[i]) { return; }
        if (want && !group.hasLayer(subs[i])) { group.addLayer(subs[i]); }
        if (!want && group.hasLayer(subs[i])) { group.removeLayer(subs[i]); }
      });
    }
    map.on("zoomend", update);
    update();
  }

  function addFeatures(group, d, features, renderer) {
    var styles = d.styles;
    features.forEach(function (f) {
      var layer = null, st = styles[f.s];
      if (renderer) { st = L.extend({}, st, {pane: d.pane, renderer: renderer}); }
      if (f.c) {
        var latlngs = decode(f);
        var parts = (f.q && f.n === undefined) ? chunks(latlngs) : [latlngs];
        parts.forEach(function (part) {
          layer = f.q ? L.polygon(part, st) : L.polyline(part, st);
          if (f.p) { layer.bindPopup(function () { return popupNode(f.p); }, {maxWidth: 380}); }
          if (f.t) {
            layer.bindTooltip(function () { return el("span", null, f.t); }, {sticky: true});
          }
          group.addLayer(layer);
        });
      }
      if (f.label) {
        var icon = L.divIcon({className: "lq-town-label", html: el("span", null, f.label.text),
                              iconSize: null});
        group.addLayer(L.marker([f.label.lat, f.label.lng], {icon: icon, interactive: false,
                                                             keyboard: false}));
      }
      if (f.n !== undefined) {
        LQ.projects.push({name: String(f.n), id: String(f.id), layer: layer, group: group});
      }
    });
  }

  LQ.addLegend = function (map, dataId) {
    var d = readData(dataId);
    var Legend = L.Control.extend({
      options: {position: "bottomright"},
      onAdd: function () {
        var box = L.DomUtil.create("div", "lq-legend leaflet-bar");
        box.setAttribute("data-testid", "legend");
        // The title is a button: it closes and opens the legend (closed at first on a
        // small screen, see LQ.responsive).
        var toggle = el("button", "lq-legend-toggle", d.title, box);
        toggle.type = "button";
        toggle.setAttribute("aria-expanded", "true");
        L.DomEvent.on(toggle, "click", function (e) {
          L.DomEvent.preventDefault(e);
          var closed = box.classList.toggle("lq-collapsed");
          toggle.setAttribute("aria-expanded", closed ? "false" : "true");
        });
        d.sections.forEach(function (s) {
          el("h4", null, s.title, box);
          s.items.forEach(function (it) {
            var row = el("div", "lq-item", null, box);
            var sw = el("span", "lq-swatch", null, row);
            sw.style.background = it.fill || "transparent";
            sw.style.border = (it.dash ? "2px dashed " : "2px solid ") + (it.stroke || it.fill);
            el("span", null, it.label, row);
          });
        });
        d.notes.forEach(function (n) { el("div", "lq-note", n, box); });
        L.DomEvent.disableClickPropagation(box);
        L.DomEvent.disableScrollPropagation(box);
        return box;
      }
    });
    new Legend().addTo(map);
  };

  LQ.findProject = function (query) {
    var q = String(query).trim().toLowerCase(), hit = null;
    if (!q) { return null; }
    LQ.projects.forEach(function (p) {
      if (!hit && (p.name.toLowerCase() === q || p.id.toLowerCase() === q)) { hit = p; }
    });
    LQ.projects.forEach(function (p) {
      if (!hit && p.name.toLowerCase().indexOf(q) >= 0) { hit = p; }
    });
    return hit;
  };

  LQ.addSearch = function (map, text) {
    var Search = L.Control.extend({
      options: {position: "topleft"},
      onAdd: function () {
        var box = L.DomUtil.create("div", "lq-search leaflet-bar");
        var input = el("input", null, null, box), list = el("datalist", null, null, box);
        var msg = el("div", "lq-search-msg", null, box);
        input.type = "search";
        input.placeholder = text.placeholder;
        input.setAttribute("aria-label", text.placeholder);
        list.id = "lq-project-names";
        input.setAttribute("list", list.id);
        LQ.projects.forEach(function (p) { el("option", null, null, list).value = p.name; });
        function go() {
          var p = LQ.findProject(input.value);
          msg.textContent = "";
          if (!input.value.trim()) { return; }
          if (!p) { msg.textContent = text.notFound; return; }
          if (!p.layer) { msg.textContent = text.noSite; return; }
          if (!map.hasLayer(p.group)) { map.addLayer(p.group); }
          map.fitBounds(p.layer.getBounds(), {maxZoom: 16});
          p.layer.openPopup();
        }
        L.DomEvent.on(input, "keydown", function (e) { if (e.key === "Enter") { go(); } });
        L.DomEvent.on(input, "change", go);
        L.DomEvent.disableClickPropagation(box);
        L.DomEvent.disableScrollPropagation(box);
        return box;
      }
    });
    new Search().addTo(map);
  };

  // Small screens (phones): the layer list and the legend start closed, so the map and
  // the search box are not covered; each opens on demand (the layers icon, the legend
  // title) and closes again the same way.
  LQ.SMALL_SCREEN = "(max-width: 640px)";
  LQ.responsive = function (map) {
    if (!window.matchMedia || !window.matchMedia(LQ.SMALL_SCREEN).matches) { return; }
    var root = map.getContainer();
    var layers = root.querySelector(".leaflet-control-layers");
    if (layers) {
      layers.classList.remove("leaflet-control-layers-expanded");
      var link = layers.querySelector(".leaflet-control-layers-toggle");
      if (link) { link.setAttribute("aria-label", "图层 Layers"); }
      // Leaflet's own icon handler opens the list; a tap on the map closes it again.
      map.on("click", function () {
        layers.classList.remove("leaflet-control-layers-expanded");
      });
    }
    var legend = root.querySelector(".lq-legend");
    if (legend) {
      legend.classList.add("lq-collapsed");
      var t = legend.querySelector(".lq-legend-toggle");
      if (t) { t.setAttribute("aria-expanded", "false"); }
    }
  };

  // --- Patch tiles (tiled mode, landquota.outputs.tiled): from zoom d.minZoom on, the tiles
  // (zoom d.z) under the view, grown by d.pad degrees, are decoded from the page and every
  // patch is drawn on a canvas of its own and is clickable. A block is base64 of zlib data;
  // DecompressionStream inflates it (no network: works from file://, offline).
  function inflate(b64) {
    var bin = atob(b64), bytes = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) { bytes[i] = bin.charCodeAt(i); }
    var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
    return new Response(stream).arrayBuffer().then(function (buf) { return new Uint8Array(buf); });
  }

  // Block layout (docs/maps.md, landquota.outputs.tiled.encode_tiles): varints n_patches,
  // n_polygons, n_rings, n_refs, n_vertices; polygons per patch; rings per polygon; points
  // per ring; class per patch; area per patch; one vertex reference per point (0: the next
  // new vertex, r: r places back in the vertex table); id-prefix index per patch; zigzag
  // id-number differences; zigzag dx, dy of each new vertex (1e-5 degree, from 0, 0).
  function decodeTile(bytes, idTable) {
    var pos = 0;
    function uv() {
      var v = 0, mul = 1, b;
      do { b = bytes[pos++]; v += (b & 127) * mul; mul *= 128; } while (b & 128);
      return v;
    }
    function zz() { var v = uv(); return (v % 2) ? -(v + 1) / 2 : v / 2; }
    function arr(n) { var a = new Array(n); for (var i = 0; i < n; i++) { a[i] = uv(); } return a; }
    var n = uv(), np = uv(), nr = uv(), nref = uv();
    uv();  // n_vertices: implied by the references
    var ppp = arr(n), rpp = arr(np), ppr = arr(nr), cls = arr(n), area = arr(n);
    var refs = arr(nref), pre = arr(n), ids = new Array(n), num = 0, k;
    for (k = 0; k < n; k++) {
      num += zz();
      var t = idTable[pre[k]];
      ids[k] = t[1] ? t[0] + String(num).padStart(t[1], "0") : t[0];
    }
    var x = 0, y = 0, table = [], ri = 0, pi = 0, qi = 0, patches = new Array(n);
    for (k = 0; k < n; k++) {
      var polys = [];
      for (var a = 0; a < ppp[k]; a++, pi++) {
        var rings = [];
        for (var b = 0; b < rpp[pi]; b++, ri++) {
          var m = ppr[ri], ring = new Array(m);
          for (var c = 0; c < m; c++, qi++) {
            var r = refs[qi];
            if (r === 0) {
              x += zz(); y += zz();
              table.push(new L.LatLng(y / SCALE, x / SCALE));
              ring[c] = table[table.length - 1];
            } else {
              ring[c] = table[table.length - r];
            }
          }
          rings.push(ring);
        }
        polys.push(rings);
      }
      patches[k] = polys;
    }
    return {patches: patches, cls: cls, area: area, ids: ids};
  }
  LQ.decodeTile = decodeTile;

  function fmtArea(v) {
    var ha = v / 10000, mu = v * 15 / 10000;
    function f(x, d) { return x.toLocaleString("en-US", {minimumFractionDigits: d,
                                                          maximumFractionDigits: d}); }
    return f(v, 0) + " m² (" + f(ha, 2) + " ha, " + f(mu, 2) + " 亩)";
  }

  LQ.addTiles = function (group, dataId, map) {
    var meta = null, loaded = {}, pending = 0, waiters = [];
    function info() {
      if (!meta) { meta = readData(dataId); }
      return meta;
    }
    function tx(lon, z) { return Math.floor((lon + 180) / 360 * Math.pow(2, z)); }
    function ty(lat, z) {
      var r = lat * Math.PI / 180;
      return Math.floor((1 - Math.log(Math.tan(r) + 1 / Math.cos(r)) / Math.PI) / 2 * Math.pow(2, z));
    }
    function wanted() {
      var out = {};
      if (!map.hasLayer(group) || map.getZoom() < group.lqMinZoom) { return out; }
      var m = info(), b = map.getBounds(), p = m.pad;
      var x0 = tx(b.getWest() - p, m.z), x1 = tx(b.getEast() + p, m.z);
      var y0 = ty(Math.min(b.getNorth() + p, 85), m.z), y1 = ty(Math.max(b.getSouth() - p, -85), m.z);
      for (var x = x0; x <= x1; x++) {
        for (var y = y0; y <= y1; y++) {
          var k = x + "/" + y;
          if (m.tiles[k] !== undefined) { out[k] = true; }
        }
      }
      return out;
    }
    function build(t) {
      var fg = L.featureGroup(), m = meta;
      t.patches.forEach(function (polys, i) {
        if (!polys.length) { return; }
        var c = m.classes[t.cls[i]];
        // The map's own canvas (overlay pane), so that the layers above (outlines, sites)
        // keep their clicks: the patches are sent to the back of its drawing order.
        var layer = L.polygon(polys, {stroke: true, color: "#555", weight: 0.5, opacity: 0.6,
                                      fillColor: c[1], fillOpacity: m.paneOpacity});
        layer.lqPatch = i;
        fg.addLayer(layer);
      });
      fg.on("click", function (e) {
        var i = e.propagatedFrom.lqPatch, c = m.classes[t.cls[i]];
        var p = {title: "图斑 Patch " + t.ids[i],
                 rows: [["图斑编号 Patch id", t.ids[i]], ["地类 Land class", c[0]],
                        ["面积 Area", fmtArea(t.area[i])]]};
        L.popup({maxWidth: 380}).setLatLng(e.latlng).setContent(popupNode(p)).openOn(map);
      });
      return fg;
    }
    function settle() {
      if (pending) { return; }
      var w = waiters; waiters = [];
      w.forEach(function (f) { f(); });
    }
    function update() {
      var want = wanted(), k;
      for (k in loaded) {
        if (!want[k]) {
          if (loaded[k].layer) { group.removeLayer(loaded[k].layer); }
          delete loaded[k];
        }
      }
      Object.keys(want).forEach(function (k) {
        if (loaded[k]) { return; }
        var slot = loaded[k] = {layer: null};
        pending++;
        inflate(meta.tiles[k]).then(function (bytes) {
          if (loaded[k] !== slot) { return; }
          slot.layer = build(decodeTile(bytes, meta.ids));
          group.addLayer(slot.layer);
          slot.layer.eachLayer(function (l) { if (l._renderer) { l.bringToBack(); } });
        }).catch(function (err) {
          console.error("landquota: tile " + k + " could not be decoded: " + err);
        }).then(function () { pending--; settle(); });
      });
      settle();
    }
    group.lqMinZoom = JSON.parse(document.getElementById(dataId).getAttribute("data-min-zoom"));
    map.on("moveend", update);
    group.on("add", update);
    // resolves once every tile the current view needs is decoded and on the map
    LQ.tilesIdle = function () {
      return new Promise(function (resolve) { waiters.push(resolve); settle(); });
    };
    LQ.map = LQ.map || map;
  };

  LQ.fitCounty = function (map, bounds) {
    map.fitBounds(bounds, {animate: false});
  };

  // Ready = the map has its view ('load' fired), every layer script has run, and
  // two animation frames have passed, so the canvas renderer has painted the layers.
  LQ.markReady = function (map) {
    map.whenReady(function () {
      requestAnimationFrame(function () {
        requestAnimationFrame(function () {
          LQ.map = map;
          window.landquotaReady = performance.now();
        });
      });
    });
  };
})();
"""

"""Benchmark: the county map with 200,000 survey patches, landquota.outputs.maps vs naive folium.

Generates seeded Voronoi patches over a ~3,370 km² box near Yangshan
(112.4–113.0°E, 24.0–24.5°N, EPSG:4490) with spatially clustered land classes
(mostly forest, farmland in valleys, some construction and water), then builds
the map two ways:

* ``landquota``: :func:`landquota.outputs.maps.build_map` + :func:`~landquota.outputs.maps.save_map`;
* ``naive``: ``folium.GeoJson`` of the raw layer with a style function by class,
  on a default (SVG) ``folium.Map``; Leaflet is inlined the same way so that both
  load offline.

For each it prints the HTML size, the build time (frames to file on disk) and the
time until the map is interactive in headless Chromium, defined as: from the
start of navigation (``performance.timeOrigin``) until every inline script has run
(so every layer is on the map and Leaflet's ``load`` has fired) and two animation
frames have passed after that (so the renderer has painted them). It also times
one zoom-in (``setZoom(z + 1)`` without animation, until two frames later).

With ``--city`` it benchmarks the city map instead: the demo city
(:func:`landquota.demo.city.build_city`, Qingyuan, ``--n`` patches, default 10⁶)
drawn by ``landquota`` in the tiled mode, and the naive ``folium.GeoJson`` anchor of
the same patches. It also times "street zoom": ``setView`` on a known patch at zoom
17 until its tiles are decoded and painted, then clicks the patch and checks that
the popup shows its id. At 10⁶ the naive page takes many minutes to build and does
not open; ``--anchor-n`` runs it on the first N patches instead (the report then
says so and extrapolates the size linearly).

Usage::

    python benchmarks/bench_map.py [--n 200000] [--seed 6] [--timeout 180]
    python benchmarks/bench_map.py --city [--n 1000000] [--anchor-n 200000]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import folium
import geopandas as gpd
import numpy as np
import shapely

from landquota.outputs._mapjs import external_references, inline_leaflet
from landquota.outputs.map_popups import _PATCH_CLASSES
from landquota.outputs.maps import build_map, land_display_class, save_map

BOX = (112.4, 24.0, 113.0, 24.5)
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]
# Appended to both pages: set after the last inline script ran, two frames later.
PROBE = """<script>
requestAnimationFrame(function () { requestAnimationFrame(function () {
  window.__benchReady = performance.now(); }); });
</script>"""
ZOOM = """() => new Promise(resolve => {
  const name = Object.keys(window).find(k => k.startsWith("map_") && window[k] instanceof L.Map);
  const map = window[name], t0 = performance.now();
  map.setZoom(map.getZoom() + 1, {animate: false});
  requestAnimationFrame(() => requestAnimationFrame(() => resolve(performance.now() - t0)));
})"""


def patches(n: int, seed: int) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """*n* Voronoi patches with clustered classes, and the county (the box)."""
    rng = np.random.default_rng(seed)
    x0, y0, x1, y1 = BOX
    pts = np.column_stack([rng.uniform(x0, x1, n), rng.uniform(y0, y1, n)])
    area = shapely.box(*BOX)
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=area))
    cells = shapely.intersection(cells, area)
    c = shapely.get_coordinates(shapely.centroid(cells))
    # A smooth random field (sum of random waves, ~5–15 km) decides the land class,
    # with 15 % of patches scattered at random: forest on the high ground, farmland
    # and towns in the valleys, as in a "nine parts mountain" county.
    field = np.zeros(len(c))
    for _ in range(12):
        k = rng.uniform(20, 70, 2) * rng.choice([-1, 1], 2)
        field += np.sin(c[:, 0] * k[0] + c[:, 1] * k[1] + rng.uniform(0, 6.3))
    q = np.argsort(np.argsort(field)) / len(field)
    codes = np.select(
        [q < 0.03, q < 0.07, q < 0.14, q < 0.17, q < 0.21, q < 0.25, q < 0.30],
        ["1101", "0702", "0101", "0102", "0103", "0201", "0404"],
        "0301",
    ).astype(object)
    noise = rng.random(len(c)) < 0.15
    codes[noise] = rng.choice(["0101", "0301", "0702", "0201", "1006"], noise.sum())
    parcels = gpd.GeoDataFrame(
        {
            "parcel_id": [f"P{i:06d}" for i in range(len(cells))],
            "land_class": codes,
            "town": "阳城镇",
            "net_m2": 1.0,
        },
        geometry=shapely.multipolygons(cells.reshape(-1, 1)),
        crs="EPSG:4490",
    )
    county = gpd.GeoDataFrame({"county_id": ["441823"], "name": ["阳山县"]},
                              geometry=[shapely.multipolygons([area])], crs="EPSG:4490")
    return parcels, county


def build_landquota(parcels: gpd.GeoDataFrame, county: gpd.GeoDataFrame, out: Path) -> float:
    t = time.perf_counter()
    m = build_map({"county": county, "parcels": parcels})
    save_map(m, out)
    return time.perf_counter() - t


def build_naive(parcels: gpd.GeoDataFrame, out: Path) -> float:
    t = time.perf_counter()
    w, s, e, n = parcels.total_bounds
    m = folium.Map(location=[(s + n) / 2, (w + e) / 2], zoom_start=10, tiles=None)
    inline_leaflet(m)  # the same offline Leaflet, so that the page can load here

    # one lookup per distinct code (land_display_class goes through pandas: ~4 ms a call,
    # which made the anchor's build time mostly this benchmark's own style function)
    colours = {c: _PATCH_CLASSES[land_display_class(c)][1] for c in parcels["land_class"].unique()}

    def style(feature: dict[str, Any]) -> dict[str, Any]:
        colour = colours[feature["properties"]["land_class"]]
        return {"fillColor": colour, "color": colour, "weight": 0.5, "fillOpacity": 0.8}

    folium.GeoJson(parcels, name="parcels", style_function=style).add_to(m)
    m.fit_bounds([[s, w], [n, e]])
    m.save(str(out))
    return time.perf_counter() - t


STREET = """async ([lat, lng]) => {
  const map = landquota.map, t0 = performance.now();
  map.setView([lat, lng], 17, {animate: false});
  await landquota.tilesIdle();
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  const ms = performance.now() - t0;
  const p = map.latLngToContainerPoint([lat, lng]), r = map.getContainer().getBoundingClientRect();
  return [ms, p.x + r.left, p.y + r.top];
}"""


def _load_here(path: Path, timeout_s: float, street: list[float] | None = None) -> dict[str, Any]:
    """Open *path* in Chromium (network blocked); runs in a child process."""
    from playwright.sync_api import sync_playwright

    url = path.as_uri()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        # Every http(s)/ws request is aborted: the pages must load offline. (The file
        # itself is not routed, so that 100 MB are not proxied through Playwright.)
        page.route(re.compile(r"^(https?|wss?)://"), lambda r: r.abort())
        page.goto(url, timeout=timeout_s * 1000, wait_until="commit")
        page.wait_for_function("window.__benchReady !== undefined", timeout=timeout_s * 1000,
                               polling=100)
        out: dict[str, Any] = {"ready_ms": float(page.evaluate("window.__benchReady"))}
        # The probe runs even when the map's own script did not (Chromium silently skips
        # an inline script of ~600 MB): then there is no map, and the page is not interactive.
        has_map = page.evaluate(
            "Object.keys(window).some(k => k.startsWith('map_') && window[k] instanceof L.Map)")
        if not has_map:
            out["no_map"] = True
        elif street is None:
            out["zoom_ms"] = float(page.evaluate(ZOOM))
        else:  # street zoom on a known patch, then click it and read the popup
            ms, x, y = page.evaluate(STREET, street[:2])
            page.mouse.click(x, y)
            page.wait_for_selector(".leaflet-popup-content", timeout=10_000)
            out["zoom_ms"] = float(ms)
            out["popup"] = page.inner_text(".leaflet-popup-content")
        browser.close()
    return out


def load(
    path: Path, timeout_s: float, street: list[float] | None = None
) -> tuple[float | None, float | None]:
    """(ms to interactive, ms for one zoom-in), or Nones after *timeout_s* seconds.

    The browser runs in a child process group with a hard deadline, killed (that
    group only) when the page is not interactive in time.
    """
    page_text = path.read_bytes().decode("utf-8")
    if external_references(page_text):
        raise SystemExit(f"{path} would fetch {external_references(page_text)[:3]}")
    with_probe = path.with_suffix(".probe.html")
    with_probe.write_bytes(page_text.replace("</html>", PROBE + "\n</html>").encode("utf-8"))
    del page_text
    cmd = [sys.executable, __file__, "--load", str(with_probe), "--timeout", str(timeout_s)]
    if street is not None:
        cmd += ["--street", json.dumps(street)]
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, _ = child.communicate(timeout=timeout_s + 30)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)  # the child's own group: it and its Chromium
        child.communicate()
        stdout = ""
    finally:
        with_probe.unlink()
    if child.returncode != 0 or not stdout.strip():
        print(f"  {path.name}: not interactive within {timeout_s:.0f} s", flush=True)
        return None, None
    result = json.loads(stdout.strip().splitlines()[-1])
    if result.get("no_map"):
        print(f"  {path.name}: the page opened after {result['ready_ms'] / 1000:.1f} s but holds "
              "no map (its script never ran): not interactive", flush=True)
        return None, None
    if street is not None:
        if str(street[2]) not in result["popup"]:
            raise SystemExit(f"the popup at zoom 17 shows {result['popup']!r}, not {street[2]}")
        print(f"  clicked patch {street[2]} at zoom 17: popup ok", flush=True)
    return result["ready_ms"], result["zoom_ms"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=None,
                    help="number of patches (default 200,000; with --city 1,000,000)")
    ap.add_argument("--seed", type=int, default=None, help="default 6; with --city 2014")
    ap.add_argument("--timeout", type=float, default=180.0, help="browser timeout per page, s")
    ap.add_argument("--out-dir", type=Path, default=None, help="keep the HTML files here")
    ap.add_argument("--city", action="store_true",
                    help="the demo city (Qingyuan) in the tiled mode; --n defaults to 10^6")
    ap.add_argument("--anchor-n", type=int, default=None,
                    help="with --city: run the naive anchor on the first N patches only")
    ap.add_argument("--load", type=Path, default=None, help=argparse.SUPPRESS)  # child mode
    ap.add_argument("--street", type=json.loads, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.load is not None:
        print(json.dumps(_load_here(args.load, args.timeout, args.street)), flush=True)
        return 0
    if args.city:
        return city(args)
    args.n = 200_000 if args.n is None else args.n
    args.seed = 6 if args.seed is None else args.seed
    out_dir = args.out_dir or Path(tempfile.mkdtemp(prefix="bench_map_"))
    out_dir.mkdir(parents=True, exist_ok=True)

    t = time.perf_counter()
    parcels, county = patches(args.n, args.seed)
    vertices = int(shapely.get_num_coordinates(parcels.geometry.array).sum())
    print(f"generated {len(parcels):,} patches, {vertices:,} vertices, "
          f"in {time.perf_counter() - t:.1f} s", flush=True)

    rows = {}
    for name in ("landquota", "naive"):
        path = out_dir / f"{name}.html"
        print(f"building {name} ...", flush=True)
        secs = (build_landquota(parcels, county, path) if name == "landquota"
                else build_naive(parcels, path))
        print(f"  built in {secs:.1f} s; loading in Chromium ...", flush=True)
        ready, zoom = load(path, args.timeout)
        rows[name] = (path.stat().st_size / 1e6, secs, ready, zoom)
        print(f"  {path.stat().st_size / 1e6:.1f} MB, interactive "
              f"{'timeout' if ready is None else f'{ready / 1000:.2f} s'}", flush=True)

    def fmt(v: float | None, spec: str) -> str:
        return "timeout" if v is None else format(v, spec)

    print()
    print(f"{'approach':<10} {'HTML MB':>9} {'build s':>8} {'interactive s':>14} {'zoom-in s':>10}")
    for name, (mb, secs, ready, zoom) in rows.items():
        print(f"{name:<10} {mb:>9.1f} {secs:>8.1f} "
              f"{fmt(None if ready is None else ready / 1000, '.2f'):>14} "
              f"{fmt(None if zoom is None else zoom / 1000, '.2f'):>10}")
    lq, nv = rows["landquota"], rows["naive"]

    def ratio(a: float | None, b: float | None) -> str:
        return "n/a" if a is None or b is None or b == 0 else f"{a / b:.1f}×"

    print(f"naive / landquota: size {ratio(nv[0], lq[0])}, build {ratio(nv[1], lq[1])}, "
          f"interactive {ratio(nv[2], lq[2])}, zoom-in {ratio(nv[3], lq[3])}")
    ok = lq[0] < 25 and lq[2] is not None and lq[2] < 5000
    print(f"goal (HTML < 25 MB, interactive < 5 s): {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


def _load_average() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def city(args: argparse.Namespace) -> int:
    """The city map (tiled mode) against the naive folium anchor."""
    from shapely.ops import polylabel

    from landquota.demo.city import build_city

    n = 1_000_000 if args.n is None else args.n
    out_dir = args.out_dir or Path(tempfile.mkdtemp(prefix="bench_map_city_"))
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"load average at start: {_load_average()}", flush=True)
    t = time.perf_counter()
    frames = build_city(seed=2014 if args.seed is None else args.seed, n_parcels=n)
    parcels, county = frames["parcels"], frames["county"]
    vertices = int(shapely.get_num_coordinates(parcels.geometry.array).sum())
    print(f"generated the city: {len(parcels):,} patches, {vertices:,} vertices, in "
          f"{time.perf_counter() - t:.1f} s", flush=True)
    # a known patch: the median-area paddy patch, clicked at its pole of inaccessibility
    paddy = parcels[parcels["land_class"] == "0101"].sort_values("net_m2")
    row = paddy.iloc[len(paddy) // 2]
    pt = polylabel(max(row.geometry.geoms, key=lambda g: g.area), tolerance=1e-7)
    street = [pt.y, pt.x, str(row["parcel_id"])]

    rows: dict[str, tuple[float, float, float | None, float | None]] = {}
    path = out_dir / "landquota.html"
    print("building landquota (tiled mode) ...", flush=True)
    t = time.perf_counter()
    save_map(build_map({"county": county, "parcels": parcels}, tiled=True), path)
    secs = time.perf_counter() - t
    print(f"  built in {secs:.1f} s, {path.stat().st_size / 1e6:.1f} MB; loading ...", flush=True)
    ready, zoom = load(path, args.timeout, street)
    rows["landquota"] = (path.stat().st_size / 1e6, secs, ready, zoom)

    sub = parcels if args.anchor_n is None else parcels.iloc[: args.anchor_n]
    path = out_dir / "naive.html"
    print(f"building naive folium.GeoJson of {len(sub):,} patches ...", flush=True)
    secs = build_naive(sub, path)
    print(f"  built in {secs:.1f} s, {path.stat().st_size / 1e6:.1f} MB; loading ...", flush=True)
    nready, _ = load(path, args.timeout)
    rows["naive"] = (path.stat().st_size / 1e6, secs, nready, None)
    print(f"load average at end: {_load_average()}", flush=True)

    def fmt(v: float | None, spec: str) -> str:
        return "timeout" if v is None else format(v, spec)

    print()
    print(f"{'approach':<10} {'patches':>10} {'HTML MB':>9} {'build s':>8} {'interactive s':>14} "
          f"{'zoom 17 + tiles s':>18}")
    for name, (mb, secs, ready_ms, zoom_ms) in rows.items():
        k = len(parcels) if name == "landquota" else len(sub)
        print(f"{name:<10} {k:>10,} {mb:>9.1f} {secs:>8.1f} "
              f"{fmt(None if ready_ms is None else ready_ms / 1000, '.2f'):>14} "
              f"{'—' if name == 'naive' else fmt(None if zoom_ms is None else zoom_ms / 1000, '.2f'):>18}")
    if len(sub) < len(parcels):
        f = len(parcels) / len(sub)
        print(f"naive anchor run on the first {len(sub):,} of {len(parcels):,} patches only "
              f"(--anchor-n); linear extrapolation to {len(parcels):,}: "
              f"{rows['naive'][0] * f:.0f} MB, build {rows['naive'][1] * f:.0f} s; "
              "interactive: see the measured row")
    lq = rows["landquota"]
    ok = lq[0] < 25 and lq[2] is not None and lq[2] < 5000
    print(f"goal (HTML < 25 MB, interactive < 5 s, a patch clicked at zoom 17): "
          f"{'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

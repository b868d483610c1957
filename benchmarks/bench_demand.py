"""Benchmark of the demand and compliance overlay: landquota vs PostGIS SQL vs geopandas.overlay.

1,000 project sites (rotated rectangles of 2–50 ha) over 10⁴, 10⁵ and 10⁶ survey
patches (a jittered grid over the Yangshan extent, EPSG:4490; ``tests/gridcounty.py``,
seeded), with plan stripes and 40 control-line boxes. Each size is loaded into a
GeoPackage and into a PostGIS schema (``write_layers``: COPY, GiST indexes, then
ANALYZE). Then, each in a fresh process (so that peak RSS is its own):

* ``landquota``: ``demand_from_workspace`` on the GeoPackage and on PostGIS
  (reading the sites, the patches near them by bbox pushdown, the plan layers,
  then demand R1–R4 + compliance R13–R15 + the ``demand --out`` table);
* ``overlay``: the same overlay alone, on frames already in memory
  (``demand_from_sites`` + ``compliance_of_sites``);
* ``postgis_sql``: the anchor, plain SQL: ``ST_Intersection`` of sites and patches
  through the GiST index, ``ST_Area(geography)``, ``GROUP BY`` site and class, and the
  same for control lines and plan zones (``ST_Union`` per site and kind);
* ``gpd_overlay``: the baseline, ``geopandas.overlay(how="intersection")`` of the
  sites with the whole patch layer, zones and lines (frames in memory), areas
  with ``ellipsoidal_area``, ``groupby``.

Timings are wall-clock seconds of the work (not the process start). The anchor's
figures are checked against landquota's (new quota within 0.01 %).

Run::

    python benchmarks/bench_demand.py                       # 10^4, 10^5, 10^6
    python benchmarks/bench_demand.py --sizes 10000 --pg postgresql://postgres@127.0.0.1:55432/landquota_test
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

DEFAULT_PG = os.environ.get(
    "LANDQUOTA_TEST_PG", "postgresql://postgres@127.0.0.1:55432/landquota_test"
)

SQL_DEMAND = """
SELECT s.project_id, p.land_class,
       sum(ST_Area(ST_Intersection(s.geom, p.geom)::geography)) AS area_m2,
       sum(ST_Area(ST_Intersection(s.geom, p.geom)::geography)
           * p.net_m2 / COALESCE(NULLIF(p.gross_m2, 0), ST_Area(p.geom::geography))) AS net_m2
  FROM "{s}".projects s
  JOIN "{s}".parcels p ON ST_Intersects(s.geom, p.geom)
 WHERE s.site_fixed
 GROUP BY s.project_id, p.land_class
"""
SQL_LINES = """
SELECT s.project_id, l.kind,
       ST_Area(ST_Union(ST_Intersection(s.geom, l.geom))::geography) AS area_m2
  FROM "{s}".projects s JOIN "{s}".control_lines l ON ST_Intersects(s.geom, l.geom)
 WHERE s.site_fixed GROUP BY s.project_id, l.kind
"""
SQL_ZONES = """
SELECT s.project_id, z.zone_type,
       ST_Area(ST_Union(ST_Intersection(s.geom, z.geom))::geography) AS area_m2
  FROM "{s}".projects s JOIN "{s}".plan_zones z ON ST_Intersects(s.geom, z.geom)
 WHERE s.site_fixed GROUP BY s.project_id, z.zone_type
"""


def _peak_mb() -> float:
    # VmHWM, not ru_maxrss: on Linux a spawned child's ru_maxrss starts at the
    # parent's high-water mark (it survives fork), which hides the child's own.
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _landquota(target: str) -> dict[str, Any]:
    from landquota.engines.api import demand_from_workspace
    from landquota.store.api import open_workspace

    with open_workspace(target) as ws:
        t = time.perf_counter()
        res = demand_from_workspace(ws)
        dt = time.perf_counter() - t
    new_quota = dict(zip(res.table["project_id"], res.table["new_quota_m2"], strict=True))
    return {"seconds": dt, "parcels_read": res.parcels_read, "new_quota": new_quota}


def _overlay_alone(target: str, max_boxes: int) -> dict[str, Any]:
    from landquota.rules.compliance import compliance_of_sites
    from landquota.rules.demand import demand_from_sites
    from landquota.rules.overlay import fixed_sites
    from landquota.rules.parcel_reads import read_parcels_near, read_parcels_under_sites
    from landquota.store.api import open_workspace

    with open_workspace(target) as ws:
        sites = ws.read_layer("projects")
        t = time.perf_counter()
        if max_boxes == 0:  # the spatial-index join (what demand_from_workspace uses)
            parcels = read_parcels_under_sites(ws)
        else:
            parcels = read_parcels_near(ws, fixed_sites(sites).geoms, max_boxes=max_boxes)
        read_s = time.perf_counter() - t
        zones = ws.read_layer("plan_zones")
        lines = ws.read_layer("control_lines")
    t = time.perf_counter()
    demand = demand_from_sites(sites, parcels)
    compliance_of_sites(sites, zones, lines, demand=demand)
    return {"seconds": time.perf_counter() - t, "read_s": read_s, "parcels_read": len(parcels)}


def _postgis_sql(url: str) -> dict[str, Any]:
    import pandas as pd
    import sqlalchemy as sa

    from landquota.rules.landclasses import category_of
    from landquota.store.postgis import split_url

    sa_url, schema = split_url(url, "landquota")
    eng = sa.create_engine(sa_url)
    t = time.perf_counter()
    with eng.connect() as con:
        rows = con.execute(sa.text(SQL_DEMAND.format(s=schema))).all()
        con.execute(sa.text(SQL_LINES.format(s=schema))).all()
        con.execute(sa.text(SQL_ZONES.format(s=schema))).all()
    frame = pd.DataFrame(rows, columns=["project_id", "land_class", "area_m2", "net_m2"])
    frame["category"] = category_of(frame["land_class"].astype("str"))
    quota = frame[frame["category"] != "construction"].groupby("project_id")["area_m2"].sum()
    dt = time.perf_counter() - t
    eng.dispose()
    return {"seconds": dt, "new_quota": quota.to_dict()}


def _gpd_overlay(target: str) -> dict[str, Any]:
    import geopandas as gpd

    from landquota.rules.areas import ellipsoidal_area
    from landquota.rules.landclasses import category_of
    from landquota.store.api import open_workspace

    with open_workspace(target) as ws:
        sites = ws.read_layer("projects")[["project_id", "geometry"]]
        parcels = ws.read_layer("parcels")[
            ["parcel_id", "land_class", "net_m2", "gross_m2", "geometry"]
        ]
        zones = ws.read_layer("plan_zones")[["zone_type", "geometry"]]
        lines = ws.read_layer("control_lines")[["kind", "geometry"]]
    t = time.perf_counter()
    pieces = gpd.overlay(sites, parcels, how="intersection", keep_geom_type=True)
    pieces["area_m2"] = ellipsoidal_area(pieces.geometry)
    pieces["net_area_m2"] = pieces["area_m2"] * pieces["net_m2"] / pieces["gross_m2"]
    by_class = pieces.groupby(["project_id", "land_class"])[["area_m2", "net_area_m2"]].sum()
    for layer, key in ((lines, "kind"), (zones, "zone_type")):
        over = gpd.overlay(sites, layer, how="intersection", keep_geom_type=True)
        over = over.dissolve(by=["project_id", key])
        ellipsoidal_area(over.geometry)
    by_class = by_class.reset_index()
    by_class["category"] = category_of(by_class["land_class"].astype("str"))
    quota = by_class[by_class["category"] != "construction"].groupby("project_id")["area_m2"].sum()
    return {"seconds": time.perf_counter() - t, "new_quota": quota.to_dict()}


def _child(queue: Any, fn_name: str, args: tuple[Any, ...]) -> None:
    try:
        out = globals()[fn_name](*args)
        out["peak_mb"] = _peak_mb()
        queue.put(out)
    except Exception as exc:  # report, do not hang the parent
        queue.put({"error": f"{type(exc).__name__}: {exc}"})


#: Bytecode cache of the children (set by main): they run as an installed package
#: does, whose modules pip compiles on install, even where PYTHONDONTWRITEBYTECODE
#: is set for development; otherwise every run would compile landquota's sources.
_PYCACHE: str | None = None


def run_process(fn_name: str, *args: str) -> dict[str, Any]:
    """Run *fn_name* in a fresh interpreter; add its whole-process wall time (start-up included)."""
    import json
    import subprocess

    env = dict(os.environ)
    if _PYCACHE:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = _PYCACHE
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, "--child", fn_name, *args],
        capture_output=True, text=True, check=False, env=env,
    )
    whole = time.perf_counter() - t
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    out["whole_s"] = whole
    return out


def run_cli(target: str, out_dir: str) -> dict[str, Any]:
    """``landquota demand --db TARGET --out demand.csv`` as a bureau runs it: whole process."""
    import subprocess

    env = dict(os.environ)
    if _PYCACHE:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = _PYCACHE
    out = str(Path(out_dir) / "demand.csv")
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "landquota", "demand", "--db", target, "--out", out],
        capture_output=True, text=True, check=False, env=env, cwd=out_dir,
    )
    whole = time.perf_counter() - t
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
    return {"whole_s": whole}


def _with_cli(target: str, out_dir: str) -> dict[str, Any]:
    """The command's whole process, then the call in process (fresh interpreter each)."""
    cli = run_cli(target, out_dir)
    if "error" in cli:
        return cli
    out = run_process("_landquota", target)
    if "error" not in out:
        out["api_whole_s"] = out.pop("whole_s")
        out["whole_s"] = cli["whole_s"]
    return out


def run_psql(url: str) -> dict[str, Any]:
    """The anchor as a client runs it: ``psql`` with the three statements, whole process."""
    import subprocess

    from landquota.store.postgis import split_url

    schema = split_url(url, "landquota")[1]
    conninfo = url.split("?", 1)[0]
    sql = ";\n".join(q.format(s=schema) for q in (SQL_DEMAND, SQL_LINES, SQL_ZONES)) + ";"
    t = time.perf_counter()
    proc = subprocess.run(
        ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", conninfo, "-c", sql],
        capture_output=True, text=True, check=False,
    )
    whole = time.perf_counter() - t
    if proc.returncode != 0:
        return {"error": proc.stderr.strip()}
    return {"whole_s": whole}


def _stats(values: list[float]) -> str:
    import statistics

    if not values:
        return "-"
    med = statistics.median(values)
    return f"{med:6.2f} ({min(values):.2f}–{max(values):.2f})"


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.1f}/{five:.1f}"


def run_isolated(fn_name: str, *args: Any) -> dict[str, Any]:
    from multiprocessing import get_context

    ctx = get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue, fn_name, args))
    proc.start()
    out: dict[str, Any] = queue.get()
    proc.join()
    return out


def load(
    n_parcels: int, n_sites: int, seed: int, workdir: Path, pg: str | None
) -> tuple[str, str | None, float]:
    import uuid

    from gridcounty import county

    from landquota.store.api import open_workspace

    t = time.perf_counter()
    layers = county(n_parcels, n_sites, seed=seed)
    gen_s = time.perf_counter() - t
    gpkg = str(workdir / f"bench_{n_parcels}.gpkg")
    with open_workspace(gpkg, create=True) as ws:
        ws.write_layers(layers)
    url = None
    if pg:
        url = f"{pg}?schema=bench_{uuid.uuid4().hex[:8]}"
        with open_workspace(url, create=True) as ws:
            ws.write_layers(layers)
            with ws.engine.begin() as con:  # type: ignore[attr-defined]
                import sqlalchemy as sa

                con.execute(sa.text(f'ANALYZE "{ws.schema}".parcels'))  # type: ignore[attr-defined]
                con.execute(sa.text(f'ANALYZE "{ws.schema}".projects'))  # type: ignore[attr-defined]
    return gpkg, url, gen_s


def drop(url: str) -> None:
    from landquota.store.api import open_workspace

    with open_workspace(url) as ws:
        ws.drop()  # type: ignore[attr-defined]


def _agree(a: dict[str, float], b: dict[str, float]) -> float:
    worst = 0.0
    for k, v in a.items():
        w = b.get(k, 0.0)
        if max(abs(v), abs(w)) > 0:
            worst = max(worst, abs(v - w) / max(abs(v), abs(w)))
    return worst


def main() -> None:
    import json

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--sites", type=int, default=1_000)
    ap.add_argument("--seed", type=int, default=2014)
    ap.add_argument("--pg", default=DEFAULT_PG, help="PostGIS server URL ('' to skip)")
    ap.add_argument("--repeat", type=int, default=5, help="interleaved rounds per size")
    ap.add_argument(
        "--no-warmup", dest="warmup", action="store_false",
        help="skip the untimed first round (bytecode cache, page cache)",
    )
    ap.add_argument("--no-baseline", action="store_true", help="skip geopandas.overlay")
    ap.add_argument(
        "--reuse", nargs=2, metavar=("GPKG", "URL"),
        help="measure these two workspaces (same layers) instead of generating --sizes",
    )
    ap.add_argument(
        "--boxes",
        type=int,
        nargs="*",
        default=[0],
        help="read-box counts to compare for the bbox pushdown (overlay runs); 0 = the "
        "spatial-index join of read_parcels_under_sites",
    )
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    ns = ap.parse_args()
    if ns.child:
        out = globals()[ns.child[0]](*ns.child[1:])
        out["peak_mb"] = _peak_mb()
        print(json.dumps(out))
        return

    import tempfile

    global _PYCACHE
    print(f"load average at start (1/5 min): {_load()} on {os.cpu_count()} cores", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench_demand_") as tmp:
        _PYCACHE = str(Path(tmp) / "pycache")
        plan: list[tuple[str, str, str | None, bool]] = []
        if ns.reuse:
            plan.append(("reused", ns.reuse[0], ns.reuse[1], False))
        for n in [] if ns.reuse else ns.sizes:
            gpkg, url, gen_s = load(n, ns.sites, ns.seed, Path(tmp), ns.pg or None)
            plan.append((f"{n:,} parcels, {ns.sites:,} sites (generated in {gen_s:.0f} s)", gpkg, url, True))
            _measure(plan[-1], ns)
            if url:
                drop(url)
        if ns.reuse:
            _measure(plan[0], ns)


def _measure(item: tuple[str, str, str | None, bool], ns: argparse.Namespace) -> None:
    from collections import defaultdict

    title, gpkg, url, _ = item
    print(f"\n== {title} ==", flush=True)
    # Interleaved A, B, A, B…: each round runs every method once, so the machine's
    # load changes hit landquota and its anchor alike.
    # landquota's whole process is the command `landquota demand --db … --out demand.csv`
    # (as `psql -c` is the anchor's); its in-process time and peak come from a second
    # fresh process that times the call alone.
    out_dir = str(Path(_PYCACHE).parent) if _PYCACHE else str(Path(gpkg).resolve().parent)
    order: list[tuple[str, Any]] = [("landquota, GeoPackage", lambda: _with_cli(gpkg, out_dir))]
    if url:
        order += [
            ("anchor: PostGIS SQL (psql)", lambda: run_psql(url)),
            ("landquota, PostGIS", lambda: _with_cli(url, out_dir)),
            ("anchor: PostGIS SQL (Python)", lambda: run_isolated("_postgis_sql", url)),
        ]
    res: dict[str, list[dict[str, Any]]] = defaultdict(list)
    loads: list[float] = []
    if ns.warmup:
        # untimed: writes the children's bytecode cache (as pip install does) and
        # warms the page cache and the server's buffers for every method alike
        for _, fn in order:
            fn()
        print(f"  warm-up round done (not counted), load {_load()}", flush=True)
    short = {
        "landquota, GeoPackage": "landquota gpkg",
        "anchor: PostGIS SQL (psql)": "psql",
        "landquota, PostGIS": "landquota pg",
        "anchor: PostGIS SQL (Python)": "SQL from Python (in process)",
    }
    for r in range(ns.repeat):
        load1 = os.getloadavg()[0]
        loads.append(load1)
        cells = []
        for name, fn in order:
            out = fn()
            if "error" in out:
                print(f"  round {r + 1}: {name} ERROR {out['error']}", flush=True)
                continue
            out["round"] = r
            res[name].append(out)
            cells.append(f"{short[name]} {out.get('whole_s', out.get('seconds', 0.0)):.2f}")
        print(
            f"  round {r + 1}/{ns.repeat}, load {load1:.1f} at start, {_load()} at end: "
            + " | ".join(cells),
            flush=True,
        )
    for b in ns.boxes:
        label = "index join" if b == 0 else f"boxes={b}"
        res[f"overlay alone (read {label})"].append(run_isolated("_overlay_alone", gpkg, b))
    if not ns.no_baseline:
        res["gpd_overlay (baseline)"].append(run_isolated("_gpd_overlay", gpkg))

    print(
        f"\n  {ns.repeat} interleaved rounds, load average (1 min) at the rounds' start "
        f"{min(loads):.1f}–{max(loads):.1f} on {os.cpu_count()} cores. "
        "Seconds, median (min–max); peak MB:\n"
    )
    print("  | method | whole process | in process | peak MB | n |")
    print("  |---|---:|---:|---:|---:|")
    for name, runs in res.items():
        ok = [x for x in runs if "error" not in x]
        whole = _stats([x["whole_s"] for x in ok if "whole_s" in x]).strip()
        inproc = _stats([x["seconds"] for x in ok if "seconds" in x]).strip()
        peak = max((x.get("peak_mb", 0.0) for x in ok), default=0.0)
        extra = ""
        if ok and "read_s" in ok[0]:
            extra = f" (+ read {ok[0]['read_s']:.2f} s of {ok[0]['parcels_read']:,} patches)"
        elif ok and "parcels_read" in ok[0]:
            extra = f" ({ok[0]['parcels_read']:,} patches read)"
        peak_s = f"{peak:.0f}" if peak else "–"
        print(f"  | {name}{extra} | {whole} | {inproc} | {peak_s} | {len(ok)} |")

    def med(name: str, key: str) -> float | None:
        import statistics

        vals = [x[key] for x in res.get(name, []) if key in x]
        return statistics.median(vals) if vals else None

    print("\n  Ratios anchor ÷ landquota (of the medians; range of the per-round ratios):\n")
    print("  | landquota on | anchor | ratio | per round |")
    print("  |---|---|---:|---|")
    for lq in ("landquota, GeoPackage", "landquota, PostGIS"):
        for anchor, key in (
            ("anchor: PostGIS SQL (psql)", "whole_s"),
            ("anchor: PostGIS SQL (Python)", "seconds"),
        ):
            a, m = med(anchor, key), med(lq, key)
            if a and m:
                what = "`psql`, whole process" if key == "whole_s" else "SQL from Python, in process"
                by_round = {x["round"]: x[key] for x in res[lq] if key in x}
                pairs = [x[key] / by_round[x["round"]] for x in res[anchor] if x["round"] in by_round]
                print(
                    f"  | {lq.split(', ')[1]} | {what} | **{a / m:.2f}×** | "
                    f"{min(pairs):.2f}–{max(pairs):.2f} |"
                )
    g = res.get("landquota, GeoPackage", [{}])[0].get("new_quota")
    p = res.get("landquota, PostGIS", [{}])[0].get("new_quota") if url else None
    sql = res.get("anchor: PostGIS SQL (Python)", [{}])[0].get("new_quota") if url else None
    if g and p:
        same = g == p
        print(f"  per-site new quota, GeoPackage vs PostGIS: {'identical' if same else 'DIFFERENT'}")
    if g and sql:
        print(f"  new quota, landquota vs SQL: worst relative difference {_agree(g, sql):.2e}")
    base = res.get("gpd_overlay (baseline)", [{}])[0]
    if g and "new_quota" in base:
        print(f"  new quota, landquota vs gpd.overlay: worst relative difference {_agree(g, base['new_quota']):.2e}")


if __name__ == "__main__":
    main()

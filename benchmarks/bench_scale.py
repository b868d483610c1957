"""Province scale: the demand of 10⁴ sites over 10⁷ patches, one process vs Dask.

Patches are generated straight into Hilbert-ordered GeoParquet partitions (one
tile of the province per file, tiles in Hilbert order of their centres, each a
seeded jittered grid from ``tests/gridcounty.py``), so no step ever holds the
province in memory. 10⁴ sites (2–50 ha) are spread over the province. Then,
each in its own process, interleaved round by round (one process, 1 worker,
2 workers, one process, …):

* ``one process``: every partition meeting a site read, cut and measured in
  this process (``measure_partitions`` without a client: the local engine's
  ``cut_pieces`` and ``measure_pieces`` on each partition in turn), then
  ``sum_pieces`` (R1–R4);
* ``dask, k workers``: the same partitions read, cut and measured on a
  ``LocalCluster`` of k single-threaded worker processes (a few partitions per
  task, each worker reading its files from disk; back come Arrow tables of
  areas and WKB), then the same ``sum_pieces`` on the client.

Reported per run and as medians (min–max) per method: wall seconds of the
demand (cluster start excluded), the client's own seconds (waiting for the
tasks, decoding their tables, summing), peak RSS (VmHWM) of the client and of
each worker, the load average before each run, the per-partition seconds
(read + cut + measure) on whichever process ran them, and whether the per-site
and by-class tables are bit-identical to the one-process run. From the
one-process per-partition seconds and the client's serial part it projects a
4-, 16- and 64-worker run (``docs/scaling.md``). Not part of the test suite
(``tests/test_dask_engine.py::test_province_pipeline_small`` runs the same
pipeline at 10⁵ patches on 2 workers).

Run::

    python benchmarks/bench_scale.py --generate /tmp/province --patches 10000000
    python benchmarks/bench_scale.py --run /tmp/province --workers 1 2 --repeat 3
    python benchmarks/bench_scale.py --export county.gpkg --repeat 3   # partition export, 10⁶
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

#: ten Yangshan-sized counties side by side (about 3.3° × 1.9°, northern Guangdong)
PROVINCE = (110.75, 23.0, 114.0, 24.92)
ROWS_PER_TILE = 100_000


def _peak_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def generate(out: Path, patches: int, sites: int, seed: int) -> None:
    """Write the partitions, the sites and the sidecar, tile by tile."""
    import numpy as np
    import pyarrow.parquet as pq
    from gridcounty import grid_parcels
    from gridcounty import sites as make_sites

    from landquota.engines.dask import hilbert_distance

    root, out = out, out / "parcels"
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("part.*.parquet"):
        old.unlink()
    n_tiles = max(1, round(patches / ROWS_PER_TILE))
    x0, y0, x1, y1 = PROVINCE
    aspect = (x1 - x0) * math.cos(math.radians((y0 + y1) / 2)) / (y1 - y0)
    nx = max(1, round(math.sqrt(n_tiles * aspect)))
    ny = max(1, math.ceil(n_tiles / nx))
    xs, ys = np.linspace(x0, x1, nx + 1), np.linspace(y0, y1, ny + 1)
    tiles = [(xs[i], ys[j], xs[i + 1], ys[j + 1]) for i in range(nx) for j in range(ny)]
    order = np.argsort(hilbert_distance(np.array(tiles)), kind="stable")
    sizes = []
    t = time.perf_counter()
    for k, ti in enumerate(order):
        part = grid_parcels(patches // len(tiles), seed=seed * 100_003 + int(ti), extent=tiles[ti])
        part["parcel_id"] = [f"T{int(ti):04d}-{p}" for p in part["parcel_id"]]
        # with each patch's box (GeoParquet 1.1 covering), as export_partitions writes them
        part.to_parquet(out / f"part.{k:05d}.parquet", index=False, write_covering_bbox=True)
        sizes.append(len(part))
        print(f"\r  tile {k + 1}/{len(tiles)} ({time.perf_counter() - t:.0f} s)", end="", flush=True)
    print()
    info = {"format": 1, "source": "bench_scale", "rows": sum(sizes), "partitions": sizes}
    (out / "_landquota.json").write_text(json.dumps(info, indent=1), encoding="utf-8")
    make_sites(sites, seed=seed, extent=PROVINCE).to_parquet(root / "sites.parquet")
    pq.read_schema(out / "part.00000.parquet")  # readable
    print(f"  {sum(sizes):,} patches in {len(sizes)} partitions, {sites:,} sites")


def run_once(path: str, workers: int) -> dict[str, Any]:
    """One measured run in this (fresh) process; 0 workers = one process."""
    import geopandas as gpd

    from landquota.engines.dask import measure_partitions
    from landquota.rules.demand import sum_pieces
    from landquota.rules.landclasses import grain_yields
    from landquota.rules.overlay import fixed_sites, sites_centre

    sites = gpd.read_parquet(Path(path) / "sites.parquet")
    fixed = fixed_sites(sites)
    centre = sites_centre(fixed.geoms)
    client = cluster = None
    if workers:
        from distributed import Client, LocalCluster

        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        )
        client = Client(cluster)
    timings: dict[str, float] = {}
    try:
        load = os.getloadavg()[0]
        t = time.perf_counter()
        measured, wanted, per_part = measure_partitions(
            Path(path) / "parcels", fixed, yields=grain_yields(None), centre=centre,
            client=client, timings=timings,
        )
        t_sum = time.perf_counter()
        demand = sum_pieces(fixed, measured, tolerance_m2=1.0, check_coverage=True, centre=centre)
        end = time.perf_counter()
        worker_mb = sorted(client.run(_peak_mb).values()) if client is not None else []
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    return {
        "seconds": end - t,
        "overlay_s": t_sum - t,
        "decode_s": timings.get("decode", 0.0),
        "sum_s": end - t_sum,
        "load": load,
        "client_mb": _peak_mb(),
        "worker_mb": worker_mb,
        "partitions": len(wanted),
        "per_partition_s": per_part,
        "pieces": len(measured),
        "digest": _digest(demand.table) + _digest(demand.by_class),
    }


def _lpt(costs: list[float], workers: int) -> float:
    """Makespan of *costs* on *workers* when each takes the next task as it frees up."""
    import heapq

    free = [0.0] * workers
    for c in costs:  # in partition order, as the scheduler hands them out
        heapq.heapreplace(free, free[0] + c)
    return max(free)


def export_once(target: str, path: str, how: str) -> dict[str, Any]:
    """``export_partitions`` of a workspace's parcels; *how* = 'arrow' (default) or 'tiles'."""
    import landquota.engines.dask as engine
    from landquota.store.api import open_workspace

    if how == "tiles":
        engine.IN_MEMORY_ROWS = 0  # type: ignore[misc]  # the tile-by-tile path, for comparison
    with open_workspace(target) as ws:
        t = time.perf_counter()
        info = engine.export_partitions(ws, path, source="bench")
        seconds = time.perf_counter() - t
    return {"seconds": seconds, "rows": info["rows"], "peak_mb": _peak_mb()}


def export_ab(target: str, repeat: int) -> None:
    """The export of *target* by both paths, interleaved, each in a fresh process."""
    import tempfile

    print(f"export_partitions of {target}; load average {os.getloadavg()[0]:.1f}")
    res: dict[str, list[tuple[float, float, float]]] = {"arrow": [], "tiles": []}
    with tempfile.TemporaryDirectory(prefix="bench_scale_export_") as tmp:
        for r in range(repeat):
            for how in ("arrow", "tiles"):
                t = time.perf_counter()
                proc = subprocess.run(
                    [sys.executable, __file__, "--export-child", target, tmp, how],
                    capture_output=True, text=True, check=False,
                )
                whole = time.perf_counter() - t
                if proc.returncode:
                    print(f"  {how}: ERROR {proc.stderr.strip().splitlines()[-1:]}")
                    continue
                out = json.loads(proc.stdout.strip().splitlines()[-1])
                res[how].append((whole, out["seconds"], out["peak_mb"]))
                print(f"  round {r + 1} {how}: {out['rows']:,} rows, in process {out['seconds']:.1f} s, "
                      f"whole {whole:.1f} s, peak {out['peak_mb']:.0f} MB, load {os.getloadavg()[0]:.1f}",
                      flush=True)
    for how, runs in res.items():
        if runs:
            w = [x[0] for x in runs]
            i = [x[1] for x in runs]
            print(f"  {how:6s} whole {statistics.median(w):.1f} s ({min(w):.1f}–{max(w):.1f}), "
                  f"in process {statistics.median(i):.1f} s ({min(i):.1f}–{max(i):.1f}), "
                  f"peak {max(x[2] for x in runs):.0f} MB")


def _digest(frame: Any) -> str:
    import hashlib

    import pandas as pd

    h = hashlib.sha256()
    h.update(pd.util.hash_pandas_object(frame.reset_index(drop=True), index=False).to_numpy().tobytes())
    h.update(frame.to_csv(index=False, float_format="%.17g").encode())
    return h.hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--generate", type=Path, help="directory to write the province into")
    ap.add_argument("--patches", type=int, default=10_000_000)
    ap.add_argument("--sites", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=2014)
    ap.add_argument("--run", type=Path, help="directory of a generated province")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--export", metavar="WORKSPACE", help="time export_partitions of a workspace "
                    "(the one-read Arrow path against the tile-by-tile path, interleaved)")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--export-child", nargs=3, help=argparse.SUPPRESS)
    ns = ap.parse_args()
    if ns.export_child:
        print(json.dumps(export_once(*ns.export_child)))
        return
    if ns.export:
        export_ab(ns.export, ns.repeat)
        return
    if ns.child:
        print(json.dumps(run_once(ns.child[0], int(ns.child[1]))))
        return
    if ns.generate:
        generate(ns.generate, ns.patches, ns.sites, ns.seed)
    if not ns.run:
        return
    info = json.loads((ns.run / "parcels" / "_landquota.json").read_text(encoding="utf-8"))
    la = os.getloadavg()
    print(f"{info['rows']:,} patches in {len(info['partitions'])} partitions; "
          f"load average {la[0]:.1f}/{la[1]:.1f}/{la[2]:.1f} on {os.cpu_count()} cores")
    methods = [0, *ns.workers]
    label = {m: "one process" if m == 0 else f"dask, {m} worker{'s' if m > 1 else ''}" for m in methods}
    res: dict[int, list[dict[str, Any]]] = {m: [] for m in methods}
    for r in range(ns.repeat):
        for m in methods:  # interleaved: one process, 1 worker, 2 workers, one process…
            proc = subprocess.run(
                [sys.executable, __file__, "--child", str(ns.run), str(m)],
                capture_output=True, text=True, check=False,
            )
            if proc.returncode:
                print(f"  round {r + 1}, {label[m]}: ERROR {proc.stderr.strip().splitlines()[-1:]}")
                continue
            x = json.loads(proc.stdout.strip().splitlines()[-1])
            res[m].append(x)
            workers_mb = ", ".join(f"{v:,.0f}" for v in x["worker_mb"]) or "–"
            print(f"  round {r + 1} {label[m]:16s} {x['seconds']:6.1f} s (partitions "
                  f"{x['overlay_s'] - x['decode_s']:.1f}, decode {x['decode_s']:.1f}, sum "
                  f"{x['sum_s']:.1f}); client {x['client_mb']:,.0f} MB, workers {workers_mb} MB; "
                  f"load before {x['load']:.1f}", flush=True)
    loads = [x["load"] for runs in res.values() for x in runs]
    if not loads:
        return
    print(f"\nload average (1 min) before the runs: {min(loads):.1f}–{max(loads):.1f}; "
          f"after: {os.getloadavg()[0]:.1f}")
    print(f"  {'method':16s} {'seconds: median (min–max)':>26s} {'client s':>9s} "
          f"{'client MB':>10s} {'each worker MB':>15s} identical")
    ref = res[0][0]["digest"] if res[0] else None
    for m in methods:
        runs = res[m]
        if not runs:
            continue
        secs = [x["seconds"] for x in runs]
        serial = statistics.median([x["decode_s"] + x["sum_s"] for x in runs])
        wmb = max((max(x["worker_mb"]) for x in runs if x["worker_mb"]), default=0.0)
        same = all(x["digest"] == ref for x in runs)
        spread = f"{statistics.median(secs):.1f} ({min(secs):.1f}–{max(secs):.1f})"
        print(f"  {label[m]:16s} {spread:>26s} {serial:9.1f} "
              f"{max(x['client_mb'] for x in runs):10,.0f} {wmb:15,.0f} {'yes' if same else 'NO'}")
    if not res[0]:
        return
    one = res[0]
    print(f"\n  partitions meeting a site: {one[0]['partitions']}, pieces {one[0]['pieces']:,}")
    for m in methods:
        per = [s for x in res[m] for s in x["per_partition_s"]]
        if per:
            print(f"  per partition (read + cut + measure), {label[m]}: median "
                  f"{statistics.median(per):.2f} s ({min(per):.2f}–{max(per):.2f}), "
                  f"sum over the partitions {sum(per) / len(res[m]):.1f} s per run")
    # Projection: the one-process per-partition seconds (the fastest run's) spread over W
    # workers as the scheduler hands them out, plus the client's serial part measured with
    # Dask (decode the tables, sum). Cluster start, network and shared storage not included.
    best = min(one, key=lambda x: x["seconds"])
    dask_runs = [x for m in methods if m for x in res[m]]
    serial = min((x["decode_s"] + x["sum_s"] for x in dask_runs), default=best["sum_s"])
    print(f"\n  projection (partition costs of the fastest one-process run, {best['seconds']:.1f} s; "
          f"client serial {serial:.1f} s):")
    for w in (1, 2, 4, 16, 64):
        proj = _lpt(best["per_partition_s"], w) + serial
        print(f"    {w:3d} workers: {proj:5.1f} s ({best['seconds'] / proj:.1f}× one process)")


if __name__ == "__main__":
    main()

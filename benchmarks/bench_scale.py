"""Province scale: the parcel overlay of 10⁴ sites over 10⁷ patches, one process vs Dask.

Patches are generated straight into Hilbert-ordered GeoParquet partitions (one
tile of the province per file, tiles in Hilbert order of their centres, each a
seeded jittered grid from ``tests/gridcounty.py``), so no step ever holds the
province in memory. 10⁴ sites (2–50 ha) are spread over the province. Then,
each in its own process, interleaved round by round:

* ``one process``: every partition meeting a site read and cut in this process
  (``overlay_partitions`` without a client: the local engine's code,
  ``cut_pieces``, on each partition in turn), then ``demand_from_pieces`` (R1–R4);
* ``dask, k workers``: the same partitions cut on a ``LocalCluster`` of k
  single-threaded worker processes (``overlay_partitions`` with a client), then the
  same ``demand_from_pieces`` on the client.

Reported: wall seconds of the overlay + demand, peak RSS (VmHWM) of the client
process and of each worker, per-partition seconds of the one-process run, and
whether the per-site tables are bit-identical. Not part of the test suite
(``tests/test_dask_engine.py::test_province_pipeline_small`` runs the same
pipeline at 10⁵ patches on 2 workers).

Run::

    python benchmarks/bench_scale.py --generate /tmp/province --patches 10000000
    python benchmarks/bench_scale.py --run /tmp/province --workers 1 2 --repeat 2
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
        part.to_parquet(out / f"part.{k:05d}.parquet", index=False)
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

    from landquota.engines.dask import _cut_from_frame, overlay_partitions
    from landquota.rules.demand import demand_from_pieces
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
    try:
        t = time.perf_counter()
        frame, wanted, per_part = overlay_partitions(Path(path) / "parcels", fixed, client)
        demand = demand_from_pieces(
            fixed, _cut_from_frame(frame), yields=grain_yields(None), tolerance_m2=1.0,
            check_coverage=True, centre=centre,
        )
        seconds = time.perf_counter() - t
        worker_mb = list(client.run(_peak_mb).values()) if client is not None else []
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    return {
        "seconds": seconds,
        "client_mb": _peak_mb(),
        "worker_mb": worker_mb,
        "partitions": len(wanted),
        "per_partition_s": per_part,
        "pieces": len(frame),
        "digest": _digest(demand.table) + _digest(demand.by_class),
    }


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
    ap.add_argument("--repeat", type=int, default=2)
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
    print(f"{info['rows']:,} patches in {len(info['partitions'])} partitions; "
          f"load average {os.getloadavg()[0]:.1f}/{os.getloadavg()[1]:.1f} on {os.cpu_count()} cores")
    methods = [0, *ns.workers]
    res: dict[int, list[dict[str, Any]]] = {m: [] for m in methods}
    loads = []
    for r in range(ns.repeat):
        for m in methods:  # interleaved: one process, 1 worker, 2 workers, one process…
            loads.append(os.getloadavg()[0])
            proc = subprocess.run(
                [sys.executable, __file__, "--child", str(ns.run), str(m)],
                capture_output=True, text=True, check=False,
            )
            if proc.returncode:
                print(f"  round {r + 1}, {m} workers: ERROR {proc.stderr.strip().splitlines()[-1:]}")
                continue
            res[m].append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(f"  round {r + 1}/{ns.repeat} done, load {os.getloadavg()[0]:.1f}", flush=True)
    print(f"\nload average (1 min) over the runs: {min(loads):.1f}–{max(loads):.1f}")
    print(f"  {'method':16s} {'seconds: median (min–max)':>28s} {'client MB':>10s} {'worker MB':>16s} identical")
    ref = res[0][0]["digest"] if res[0] else None
    for m in methods:
        runs = res[m]
        if not runs:
            continue
        secs = [x["seconds"] for x in runs]
        label = "one process" if m == 0 else f"dask, {m} worker{'s' if m > 1 else ''}"
        wmb = max((max(x["worker_mb"]) for x in runs if x["worker_mb"]), default=0.0)
        same = all(x["digest"] == ref for x in runs)
        print(f"  {label:16s} {statistics.median(secs):10.1f} ({min(secs):.1f}–{max(secs):.1f})"
              f"{'':8s} {max(x['client_mb'] for x in runs):10.0f} {wmb:16.0f} {'yes' if same else 'NO'}")
    if res[0]:
        per = [s for x in res[0] for s in x["per_partition_s"]]
        print(f"\n  partitions meeting a site: {res[0][0]['partitions']}, pieces {res[0][0]['pieces']:,}")
        print(f"  per partition (read + cut, one process): median {statistics.median(per):.2f} s, "
              f"min {min(per):.2f}, max {max(per):.2f}")


if __name__ == "__main__":
    main()

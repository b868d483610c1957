"""Load N generated parcels from a GeoPackage into PostGIS three ways and compare.

1. ``landquota import --db … --layer parcels`` (this product, the command a user runs,
   :func:`landquota.intake.importer.import_layer` behind it): Arrow batches from GDAL,
   checks and repairs, binary COPY into the contract table (constraints, unique
   id, GiST index), one transaction.
2. ``geopandas.read_file`` + ``GeoDataFrame.to_postgis`` (the baseline).
3. GDAL's ``ogr2ogr -f PostgreSQL`` with ``PG_USE_COPY=YES`` (the anchor;
   Debian's gdal-bin), which also builds a GiST index at the end by default.

4. The server floor (``--floor``): the same rows already encoded as binary COPY
   (encoding not timed), then only what the server must do for the product's
   table: COPY into it with its CHECKs (keys and indexes dropped, as the
   product does), then the key, unique, GiST and land-class index builds. No client, however fast, can beat this figure; it
   says how much of each goal is reachable at all on this server.

Each runs in its own subprocess under ``/usr/bin/time -v`` (wall time and peak
resident memory of that process tree's largest process). The parcels are a
seeded jittered grid of convex 5–12-vertex polygons in EPSG:4490 over Yangshan,
with the contract's parcel columns. Run::

    python benchmarks/bench_import.py --floor         # 1,000,000 parcels
    python benchmarks/bench_import.py --n 100000 --skip-geopandas
    python benchmarks/bench_import.py --target gpkg   # into a GeoPackage workspace
    python benchmarks/bench_import.py --concave --floor   # notched parcels: GEOS judges every ring
    python benchmarks/bench_import.py --source vct --target gpkg   # a survey VCT file (GB/T 17798)

``--source vct`` generates the parcels as a 三调-style VCT file instead (see
:func:`generate_vct`: polygons made of shared boundary lines, GB18030 attributes)
and measures only landquota's import of it, which streams it: GDAL, geopandas
and ogr2ogr cannot read VCT, so there is no baseline; the figure that matters is
the peak memory (the goal: under 1.5 GB for 10^6 patches).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
#: CPU seconds (user + system) of each timed run, by method name
CPU: dict[str, list[float]] = {}
PG = os.environ.get("LANDQUOTA_TEST_PG", "postgresql://postgres@127.0.0.1:55432/landquota_test")


def generate(path: Path, n: int, seed: int = 2014, *, concave: bool = False) -> Path:
    """Write *n* valid parcels (convex, 5–12 vertices, ~50 m across) to a GeoPackage.

    *concave*: each parcel gets a notch, a vertex between its first two pulled halfway
    to the middle, so that every ring has a reflex vertex, as most survey patches do:
    then GEOS, not landquota's convex proof, judges every ring's validity.
    """
    import geopandas as gpd
    import pyogrio
    import shapely

    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(n)))
    cell = 0.6 / side  # the grid covers 0.6° × 0.6° of the county
    i = np.arange(n)
    cx = 112.4 + (i % side + 0.5) * cell
    cy = 24.2 + (i // side + 0.5) * cell
    k = rng.integers(5, 13, n)  # vertices per parcel
    idx = np.repeat(i, k)
    # random angles sorted within each parcel make a convex polygon in the cell's circle
    u = rng.uniform(0, 1, idx.size)
    ang = 2 * np.pi * u[np.lexsort((u, idx))]
    r = 0.45 * cell
    x = cx[idx] + r * np.cos(ang)
    y = cy[idx] + r * np.sin(ang)
    if concave:
        first = np.r_[0, np.cumsum(k)[:-1]]
        # towards the mean of the vertices, which a convex polygon contains (the cell's
        # centre it may not, when its vertices fall on one side of the circle)
        gx, gy = np.add.reduceat(x, first) / k, np.add.reduceat(y, first) / k
        mx, my = (x[first] + x[first + 1]) / 2, (y[first] + y[first + 1]) / 2
        x = np.insert(x, first + 1, mx + 0.5 * (gx - mx))
        y = np.insert(y, first + 1, my + 0.5 * (gy - my))
        idx = np.insert(idx, first + 1, i)
    rings = shapely.linearrings(np.column_stack([x, y]), indices=idx)
    polys = shapely.multipolygons(shapely.polygons(rings)[:, None])
    classes = np.array(["0101", "0102", "0103", "0201", "0301", "0404", "0702", "1001", "1101", "1206"])
    gross = np.round(rng.uniform(500, 5_000, n), 2)
    ded = np.where(rng.random(n) < 0.3, np.round(gross * 0.1, 2), 0.0)
    towns = np.array(["阳城镇", "黎埠镇", "七拱镇", "太平镇", "杜步镇", "江英镇", "杨梅镇", "大崀镇"])
    gdf = gpd.GeoDataFrame(
        {
            "parcel_id": np.char.add("P", np.char.zfill(i.astype(str), 7)),
            "land_class": classes[rng.integers(0, len(classes), n)],
            "town": towns[rng.integers(0, len(towns), n)],
            "gross_m2": gross,
            "deduction_m2": ded,
            "net_m2": gross - ded,
            "grain_kg_per_m2": np.where(rng.random(n) < 0.2, 0.9, np.nan),
        },
        geometry=polys,
        crs=4490,
    )
    pyogrio.write_dataframe(gdf, path, layer="parcels", use_arrow=True)
    return path


def generate_vct(path: Path, n: int, seed: int = 2014) -> Path:
    """Write *n* parcels as a VCT file the way survey databases deliver them, streaming.

    A grid of ~70 m cells in EPSG:4547 (CGCS2000 3° Gauss-Krüger CM 114E) over
    Yangshan. Every cell edge is one line object of 4 points (two jittered inner
    points, shared by the two cells it separates), every parcel a polygon of four
    line references (type 100, make-up 21; bottom and right forwards, top and left
    backwards), attributes in the survey's DLTB table, GB18030. Written row by
    row: memory stays small whatever *n*.
    """
    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / side))
    cell = 70.0
    x0, y0 = 340_000.0, 2_680_000.0
    classes = [("0101", "水田"), ("0102", "水浇地"), ("0103", "旱地"), ("0201", "果园"), ("0301", "乔木林地"),
               ("0404", "其他草地"), ("0702", "农村宅基地"), ("1001", "铁路用地"), ("1101", "河流水面"),
               ("1206", "裸土地")]
    towns = ["阳城镇", "黎埠镇", "七拱镇", "太平镇", "杜步镇", "江英镇", "杨梅镇", "大崀镇"]
    nh = side * (rows + 1)  # horizontal edges: column i, boundary row j (0..rows)
    nv = (side + 1) * rows  # vertical edges: boundary column i (0..side), row j

    def hid(i: int, j: int) -> int:
        return 1 + j * side + i

    def vid(i: int, j: int) -> int:
        return 1 + nh + j * (side + 1) + i

    first_poly = 1 + nh + nv

    def edge(xa: float, ya: float, xb: float, yb: float, jit: np.ndarray) -> str:
        # inner points at 1/3 and 2/3 along, pushed sideways by up to 5 m
        dx, dy = (xb - xa) / 3, (yb - ya) / 3
        nx, ny = -dy / np.hypot(dx, dy), dx / np.hypot(dx, dy)
        pts = [(xa, ya), (xa + dx + nx * jit[0], ya + dy + ny * jit[0]),
               (xa + 2 * dx + nx * jit[1], ya + 2 * dy + ny * jit[1]), (xb, yb)]
        return "4\n" + "".join(f"{x:.3f},{y:.3f}\n" for x, y in pts)

    with open(path, "w", encoding="gb18030", newline="\r\n") as f:
        w = f.write
        w("HeadBegin\nDataMark:CNSDTF-VCT\nVersion:2.0\nCoordinateSystemType:P\nDim:2\nXAxisDirection:E\n"
          "YAxisDirection:N\nXYUnit:M\nSpheroid:CGCS2000,6378137,298.257222101\nPrimeMeridian:Greenwich\n"
          "Projection:高斯-克吕格\nParameters:114,0,,,,1,500000,0,3\n"
          f"ExtentMin:{x0},{y0}\nExtentMax:{x0 + side * cell},{y0 + rows * cell}\nMapScale:10000\nOffset:0,0\n"
          "Date:20191231\nSeparator:,\nHeadEnd\n")
        w("FeatureCodeBegin\n2001010000,地类图斑,Polygon,DLTB\n2001010300,地类界线,Line,DLJX\nFeatureCodeEnd\n")
        w("TableStructureBegin\nDLTB,11\nBSM,Int,10\nYSDM,Char,10\nTBBH,Char,8\nDLBM,Char,5\nDLMC,Char,60\n"
          "QSXZ,Char,2\nZLDWMC,Char,60\nTBMJ,Float,15,2\nKCXS,Float,6,4\nKCMJ,Float,15,2\nTBDLMJ,Float,15,2\n0\n"
          "DLJX,1\nBSM,Int,10\n0\nTableStructureEnd\n")
        w("PointBegin\nPointEnd\nLineBegin\n")
        for j in range(rows + 1):
            jit = rng.uniform(-5, 5, (side, 2)) if 0 < j < rows else np.zeros((side, 2))
            w("".join(f"{hid(i, j)}\n2001010300\n0\n1\n1\n11\n"
                      + edge(x0 + i * cell, y0 + j * cell, x0 + (i + 1) * cell, y0 + j * cell, jit[i]) + "0\n"
                      for i in range(side)))
        for j in range(rows):
            jit = rng.uniform(-5, 5, (side + 1, 2))
            jit[0] = jit[side] = 0
            w("".join(f"{vid(i, j)}\n2001010300\n0\n1\n1\n11\n"
                      + edge(x0 + i * cell, y0 + j * cell, x0 + i * cell, y0 + (j + 1) * cell, jit[i]) + "0\n"
                      for i in range(side + 1)))
        w("LineEnd\nPolygonBegin\n")
        for k in range(n):
            i, j = k % side, k // side
            refs = f"{hid(i, j)},{vid(i + 1, j)},{-hid(i, j + 1)},{-vid(i, j)}"
            w(f"{first_poly + k}\n2001010000\n0\n100\n{x0 + (i + 0.5) * cell:.3f},{y0 + (j + 0.5) * cell:.3f}\n"
              f"21\n4\n{refs}\n0\n")
        w("PolygonEnd\nAttributeBegin\nDLTB\n")
        cls = rng.integers(0, len(classes), n)
        town = rng.integers(0, len(towns), n)
        gross = np.round(rng.uniform(4_000, 5_500, n), 2)
        kcxs = np.where(rng.random(n) < 0.3, 0.1, 0.0)
        for k0 in range(0, n, 100_000):
            w("".join(
                f"{first_poly + k},2001010000,{k + 1},{classes[cls[k]][0]},{classes[cls[k]][1]},20,"
                f"{towns[town[k]]},{gross[k]:.2f},{kcxs[k]:.4f},{gross[k] * kcxs[k]:.2f},"
                f"{gross[k] - round(gross[k] * kcxs[k], 2):.2f}\n"
                for k in range(k0, min(n, k0 + 100_000))))
        w("TableEnd\nAttributeEnd\n")
    return path


def vct_main(src: Path, ns: argparse.Namespace) -> None:
    """Import the generated VCT's DLTB layer as parcels; report the peak memory."""
    if ns.target == "gpkg":
        out = ns.dir / "out"
        out.mkdir(exist_ok=True)
        target = str(out / "landquota_vct.gpkg")
        if Path(target).exists():
            Path(target).unlink()
    else:
        target = f"{PG.split('?')[0]}?schema=bench_vct_{uuid.uuid4().hex[:8]}"
    subprocess.run([sys.executable, "-c", f"from landquota.store.api import open_workspace; "
                    f"open_workspace({target!r}, create=True).close()"], check=True, cwd=ROOT)
    try:
        wall, mb = timed(
            "landquota import_layer (VCT)",
            [sys.executable, "-c", "from landquota.store.api import open_workspace; from landquota.intake.importer "
             f"import import_layer; ws = open_workspace({target!r}); r = import_layer({str(src)!r}, ws, "
             "layer='parcels', src_layer='DLTB'); print(r.rows_imported)"],
        )
    finally:
        if ns.target == "postgis":
            import sqlalchemy as sa

            e = sa.create_engine(PG.split("?")[0].replace("postgresql://", "postgresql+psycopg://"))
            with e.begin() as c:
                c.execute(sa.text(f'DROP SCHEMA IF EXISTS "{target.split("schema=")[1]}" CASCADE'))
            e.dispose()
    print(f"\n{ns.n:,} parcels, VCT ({src.stat().st_size / 1e6:.0f} MB) → {ns.target}")
    print(f"{'method':<28} {'wall s':>8} {'peak MB':>9}")
    print(f"{'landquota import_layer':<28} {wall:8.1f} {mb:9.0f}")


FLOOR_SCRIPT = r"""
import sys, time
import psycopg, pyogrio, sqlalchemy as sa
from landquota.intake.importer import import_layer
from landquota.store.schema import layer
from landquota.store.workspace import prepare_frame
from landquota.store.api import open_workspace
from landquota.store.postgis import _COPY_SIGNATURE, _COPY_TRAILER, GEOM, _binary_rows

src, url, base, schema = sys.argv[1:5]
lyr = layer("parcels")
ws = open_workspace(url)
chunks = []
with pyogrio.open_arrow(src, layer="parcels", batch_size=50_000, use_pyarrow=True) as (meta, reader):
    for rb in reader:  # encoded as the product encodes, not timed
        df = prepare_frame(lyr, pyogrio.read_dataframe(src, layer="parcels", skip_features=len(chunks) * 50_000,
                                                       max_features=50_000, use_arrow=True))
        chunks.append(bytes(_binary_rows(lyr, df)))
ws.close()
names = ", ".join(f'"{n}"' for n in [*lyr.column_names, GEOM])
with psycopg.connect(base) as c:
    t = time.perf_counter()
    table = f'"{schema}".parcels'
    keys = c.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass "
        "AND contype IN ('p', 'u') ORDER BY contype, conname", (f"{schema}.parcels",)).fetchall()
    idx = c.execute(
        "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE i.indrelid = %s::regclass AND NOT i.indisunique", (f"{schema}.parcels",)).fetchall()
    c.execute(f"TRUNCATE {table}")
    for name, _ in keys:  # as the product does for a bulk replace
        c.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    for name, _ in idx:
        c.execute(f'DROP INDEX "{schema}"."{name}"')
    with c.cursor() as cur, cur.copy(f'COPY "{schema}".parcels ({names}) FROM STDIN (FORMAT BINARY)') as cp:
        cp.write(_COPY_SIGNATURE)
        for ch in chunks:
            cp.write(ch)
        cp.write(_COPY_TRAILER)
    copy_s = time.perf_counter() - t
    c.execute("SET LOCAL maintenance_work_mem = '512MB'")
    for name, ddl in keys:
        c.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {ddl}')
    for _, ddl in idx:
        c.execute(ddl)
    c.commit()
    print(f"{time.perf_counter() - t:.2f} {copy_s:.2f}")
"""


def server_floor(src: Path, base: str, schema: str) -> tuple[float, float]:
    """Seconds the server alone needs (COPY + index builds), and of them the COPY."""
    url = f"{base}?schema={schema}"
    subprocess.run([sys.executable, "-c", f"from landquota.store.api import open_workspace; "
                    f"open_workspace({url!r}, create=True).close()"], check=True, cwd=ROOT)
    checkpoint()
    out = subprocess.run([sys.executable, "-c", FLOOR_SCRIPT, str(src), url, base, schema],
                         check=True, capture_output=True, text=True, cwd=ROOT).stdout.split()
    total, copy_s = float(out[0]), float(out[1])
    print(f"  server floor: {total:.1f} s ({copy_s:.1f} s COPY, {total - copy_s:.1f} s index builds)", flush=True)
    return total, copy_s


def checkpoint() -> None:
    """Flush the server's dirty buffers and WAL so each method starts from the same state.

    Without it a method can pay for the previous one's checkpoint (10^6 rows write
    about 1 GB of WAL, the default max_wal_size): run-to-run swings of several
    seconds. Needs a superuser (or pg_checkpoint); skipped otherwise.
    """
    import psycopg

    try:
        with psycopg.connect(PG.split("?")[0], autocommit=True) as c:
            c.execute("CHECKPOINT")
    except psycopg.Error as exc:
        print(f"  (no CHECKPOINT: {exc})")


def timed(name: str, cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Run *cmd* under /usr/bin/time -v; print and return (wall seconds, peak RSS in MB)."""
    checkpoint()
    t0 = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[:3]} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    mb = int(m.group(1)) / 1024 if m else float("nan")
    # CPU seconds of the process (user + system): on a shared machine the wall time
    # follows the load, this much less (the server's share is not in it)
    cpu = sum(float(x) for x in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", proc.stderr))
    CPU.setdefault(name, []).append(cpu)
    print(f"  {name}: {wall:.1f} s, {cpu:.1f} s CPU, peak {mb:.0f} MB", flush=True)
    return wall, mb


def _lq_cmd(target: str, src: Path) -> list[str]:
    # the command a user runs (`landquota import`, import_layer behind it), as a program:
    # the whole process, start-up and the CLI's collector settings included, against
    # ogr2ogr's whole process (issue 18, item 5)
    return [sys.executable, "-m", "landquota", "import", "--db", target, "--layer", "parcels",
            "--no-progress", str(src)]


def _create_ws(target: str) -> None:
    subprocess.run([sys.executable, "-c", f"from landquota.store.api import open_workspace; "
                    f"open_workspace({target!r}, create=True).close()"], check=True, cwd=ROOT)


def _drop_schemas(base: str, schemas: list[str]) -> None:
    import sqlalchemy as sa

    e = sa.create_engine(base.replace("postgresql://", "postgresql+psycopg://"))
    with e.begin() as c:
        for s in schemas:
            c.execute(sa.text(f'DROP SCHEMA IF EXISTS "{s}" CASCADE'))
    e.dispose()


def _load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def interleave(methods: dict[str, Any], repeat: int) -> dict[str, list[tuple[float, float]]]:
    """Run every method once per round, the order rotated each round; print the load average.

    *methods* maps a name to a callable returning (wall s, peak MB) for one run (its
    set-up, e.g. a fresh schema, outside the timing).
    """
    names = list(methods)
    out: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
    for r in range(repeat):
        order = names[r % len(names):] + names[: r % len(names)]
        print(f"round {r + 1}/{repeat} (load average {_load()} at the start)", flush=True)
        for name in order:
            out[name].append(methods[name]())
        print(f"  load average {_load()} at the end of round {r + 1}", flush=True)
    return out


def report(title: str, res: dict[str, list[tuple[float, float]]], anchor: str, floor: str | None) -> None:
    """Medians, min–max, peak memory and the paired ratios, ready to paste into benchmarks/README.md."""
    lq = "landquota import"
    med = {n: float(np.median([w for w, _ in v])) for n, v in res.items()}
    print(f"\n{title}; {len(res[lq])} interleaved round(s), load average now {_load()}")
    print("| method | median s | min–max s | process CPU s (median) | peak MB | median ÷ landquota |")
    print("|---|---:|---:|---:|---:|---:|")
    for n, v in res.items():
        walls = [w for w, _ in v]
        mb = float(np.nanmax([m for _, m in v])) if not all(np.isnan(m) for _, m in v) else float("nan")
        mbs = "–" if np.isnan(mb) else f"{mb:,.0f}"
        cpu = CPU.get(n.replace("geopandas to_file (arrow)", "pyogrio Arrow writer"))
        cpus = f"{np.median(cpu):.1f}" if cpu else "–"
        print(f"| {n} | {med[n]:.1f} | {min(walls):.1f}–{max(walls):.1f} | {cpus} | {mbs} | "
              f"{med[n] / med[lq]:.2f} |")
    lqw = [w for w, _ in res[lq]]
    ratio = [a / b for (a, _), b in zip(res[anchor], lqw, strict=True)]
    print(f"\n{anchor} ÷ landquota, per round: {', '.join(f'{x:.2f}' for x in ratio)} "
          f"(median {np.median(ratio):.2f})")
    if floor is not None:
        fr = [b / f for b, (f, _) in zip(lqw, res[floor], strict=True)]
        print(f"landquota ÷ {floor}, per round: {', '.join(f'{x:.2f}' for x in fr)} (median {np.median(fr):.2f})")


def gpkg_main(src: Path, ns: argparse.Namespace) -> None:
    """The same parcels into a GeoPackage (the embedded default), interleaved.

    1. ``landquota import`` into a fresh workspace file (created outside the
       timing): one SQLite transaction, R-tree bulk-loaded;
    2. ``geopandas.read_file`` + ``to_file`` with pyogrio and Arrow (baseline: pyogrio's
       Arrow writer, no transaction around the layer, no checks);
    3. ``ogr2ogr -f GPKG`` (anchor), which builds its R-tree at the end.
    """
    out = ns.dir / "out"
    out.mkdir(exist_ok=True)
    ws_path, gp_path, og_path = out / "landquota.gpkg", out / "geopandas.gpkg", out / "ogr2ogr.gpkg"

    def fresh(p: Path) -> None:
        for f in out.glob(p.name + "*"):
            f.unlink()

    def lq() -> tuple[float, float]:
        fresh(ws_path)
        _create_ws(str(ws_path))
        return timed("landquota import", _lq_cmd(str(ws_path), src))

    def gp() -> tuple[float, float]:
        fresh(gp_path)
        return timed("pyogrio Arrow writer", [
            sys.executable, "-c", "import geopandas as gpd; "
            f"g = gpd.read_file({str(src)!r}, engine='pyogrio', use_arrow=True); "
            f"g.to_file({str(gp_path)!r}, layer='parcels', engine='pyogrio', use_arrow=True)"])

    def og() -> tuple[float, float]:
        fresh(og_path)
        return timed("ogr2ogr -f GPKG", ["ogr2ogr", "-f", "GPKG", str(og_path), str(src), "parcels",
                                         "-nln", "parcels"])

    methods: dict[str, Any] = {"landquota import": lq, "ogr2ogr -f GPKG": og}
    if not ns.skip_geopandas:
        methods["pyogrio Arrow writer"] = gp
    res = interleave(methods, ns.repeat)
    report(f"{ns.n:,} parcels, GeoPackage → GeoPackage", res, "ogr2ogr -f GPKG", None)
    if "pyogrio Arrow writer" in res:
        lqw = [w for w, _ in res["landquota import"]]
        pr = [a / b for (a, _), b in zip(res["pyogrio Arrow writer"], lqw, strict=True)]
        print(f"pyogrio Arrow writer ÷ landquota, per round: {', '.join(f'{x:.2f}' for x in pr)} "
              f"(median {np.median(pr):.2f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/landquota_bench_import"))
    ap.add_argument("--skip-geopandas", action="store_true",
                    help="leave out the geopandas/pyogrio baseline (to_postgis takes ~50 s per run)")
    ap.add_argument("--floor", action="store_true", help="also time the server floor (see 4. above)")
    ap.add_argument("--repeat", type=int, default=3, help="interleaved rounds of every method (default 3)")
    ap.add_argument("--target", choices=["postgis", "gpkg"], default="postgis",
                    help="gpkg: load into a GeoPackage workspace instead (see gpkg_main)")
    ap.add_argument("--source", choices=["gpkg", "vct"], default="gpkg",
                    help="vct: the parcels as a survey VCT file (see generate_vct, vct_main)")
    ap.add_argument("--concave", action="store_true",
                    help="parcels with a notch each, as survey patches are (see generate): GEOS judges every ring")
    ns = ap.parse_args()
    ns.dir.mkdir(parents=True, exist_ok=True)
    if ns.source == "vct":
        src = ns.dir / f"parcels_{ns.n}.vct"
        if not src.exists():
            t = time.perf_counter()
            generate_vct(src, ns.n)
            print(f"generated {ns.n:,} parcels in {time.perf_counter() - t:.1f} s: {src}")
        vct_main(src, ns)
        return
    src = ns.dir / f"parcels_{'concave_' if ns.concave else ''}{ns.n}.gpkg"
    if not src.exists():
        t = time.perf_counter()
        generate(src, ns.n, concave=ns.concave)
        print(f"generated {ns.n:,} parcels in {time.perf_counter() - t:.1f} s: {src}")
    print(f"bench_import: {ns.n:,} parcels → {ns.target}, {ns.repeat} interleaved round(s), "
          f"{os.cpu_count()} CPUs, load average {_load()}", flush=True)
    if ns.target == "gpkg":
        gpkg_main(src, ns)
        return
    base = PG.split("?")[0]
    conn = base.replace("postgresql://", "")
    user_host, db = conn.split("/", 1)
    user, hostport = user_host.split("@")
    host, port = hostport.split(":")
    made: list[str] = []

    def schema(kind: str) -> str:
        made.append(f"bench_{kind}_{uuid.uuid4().hex[:8]}")
        return made[-1]

    def lq() -> tuple[float, float]:
        url = f"{base}?schema={schema('lq')}"
        _create_ws(url)  # outside the timing
        try:
            return timed("landquota import", _lq_cmd(url, src))
        finally:
            _drop_schemas(base, [made.pop()])

    def og() -> tuple[float, float]:
        import sqlalchemy as sa

        s = schema("og")
        eng = sa.create_engine(base.replace("postgresql://", "postgresql+psycopg://"))
        with eng.begin() as c:  # Debian's GDAL 3.6 has no CREATE_SCHEMA option
            c.execute(sa.text(f'CREATE SCHEMA "{s}"'))
        eng.dispose()
        try:
            return timed("ogr2ogr PG_USE_COPY=YES", [
                # schemas=: GDAL lists only this schema's tables, not the whole database's, where
                # other sessions' schemas come and go ("could not open relation with OID …")
                "ogr2ogr", "-f", "PostgreSQL", f"PG:host={host} port={port} user={user} dbname={db} "
                f"active_schema={s} schemas={s}", str(src), "parcels", "-nln", "parcels", "-lco", f"SCHEMA={s}",
                "-gt", "100000"], env={**os.environ, "PG_USE_COPY": "YES"})
        finally:
            _drop_schemas(base, [made.pop()])

    def gp() -> tuple[float, float]:
        s = schema("gp")
        sa_url = base.replace("postgresql://", "postgresql+psycopg://")
        try:
            return timed("geopandas to_postgis", [
                sys.executable, "-c", "import geopandas as gpd, sqlalchemy as sa; "
                f"e = sa.create_engine({sa_url!r}); "
                f"c = e.connect(); c.execute(sa.text('CREATE SCHEMA {s}')); c.commit(); "
                f"g = gpd.read_file({str(src)!r}, engine='pyogrio'); "
                f"g.to_postgis('parcels', e, schema={s!r}, if_exists='replace', chunksize=100000)"])
        finally:
            _drop_schemas(base, [made.pop()])

    def fl() -> tuple[float, float]:
        s = schema("fl")
        try:
            return server_floor(src, base, s)[0], float("nan")
        finally:
            _drop_schemas(base, [made.pop()])

    methods: dict[str, Any] = {"landquota import": lq, "ogr2ogr PG_USE_COPY=YES": og}
    if ns.floor:
        methods["server floor (no client)"] = fl
    if not ns.skip_geopandas:
        methods["geopandas to_postgis"] = gp
    try:
        res = interleave(methods, ns.repeat)
    finally:
        _drop_schemas(base, made)
    report(f"{ns.n:,} parcels, GeoPackage → PostGIS", res, "ogr2ogr PG_USE_COPY=YES",
           "server floor (no client)" if ns.floor else None)
    if "geopandas to_postgis" in res:
        goal = float(np.median([w for w, _ in res["geopandas to_postgis"]])) / 10
        print(f"\n10x to_postgis means {goal:.1f} s")


if __name__ == "__main__":
    main()

"""Benchmark of ``landquota.allocation.model.allocate`` against a naive PuLP baseline.

Synthetic instances of 100, 1,000 and 10,000 projects (stock parcels = 1/5 of the
projects, all five pools, pools covering roughly 40 % of the total need) are
allocated in greedy mode, in optimal mode (HiGHS through ``highspy``, matrices
built from NumPy triplets) and by a naive baseline: the staged MILP written row by
row with PuLP (``pulp.HiGHS``, the same HiGHS engine driven through PuLP's
expression objects; falls back to PuLP's bundled CBC when PuLP has no HiGHS
interface) — quota rows and the chained stock flow in one model, one stage per
level at a 1e-6 gap, then a weighted tie-break, as landquota did before issue 16.
It is the obvious way to write the model, not the same algorithm: landquota now
solves the stock part as one LP, scales the pool rows, proves each level to 1e-9
and breaks ties lexicographically (``docs/allocation.md``).

Run::

    python benchmarks/bench_allocate.py            # 100, 1000, 10000
    python benchmarks/bench_allocate.py --sizes 100 1000 --no-baseline
    python benchmarks/bench_allocate.py --rounds 2   # each size twice, modes interleaved
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import random
import resource
import sys
import time
from datetime import UTC, datetime
from multiprocessing import Queue, get_context
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from landquota.allocation.model import (
    USE_COMPATIBILITY,
    Pools,
    ProjectNeed,
    StockOffer,
    allocate,
)

LEVEL_SHARE = (("national", 0.05), ("provincial", 0.15), ("city", 0.30), ("county", 0.50))
USES = ("industrial", "warehouse", "commercial", "office", "residential", "public")


def make_instance(n: int, seed: int = 0) -> tuple[list[ProjectNeed], Pools, list[StockOffer]]:
    """A county-like synthetic instance of *n* projects and n/5 stock parcels."""
    rng = random.Random(seed)
    towns = [f"town{t:02d}" for t in range(12)]
    levels = [lv for lv, share in LEVEL_SHARE for _ in range(round(share * 1000))]
    projects: list[ProjectNeed] = []
    totals = [0.0, 0.0, 0.0, 0.0]
    for i in range(n):
        fixed = rng.random() < 0.7
        new = round(rng.uniform(2_000, 200_000), 2)
        area = round(new * rng.uniform(0.0, 0.8), 2)
        paddy = round(area * rng.uniform(0.0, 0.6), 2)
        grain = round(area * 0.6, 2)
        if fixed:
            for d, v in enumerate((new, area, paddy, grain)):
                totals[d] += v
        phaseable = rng.random() < 0.3
        projects.append(
            ProjectNeed(
                project_id=f"P{i:06d}",
                level=rng.choice(levels),
                score=round(rng.uniform(1, 100), 2),
                phaseable=phaseable,
                min_fraction=round(rng.uniform(0.2, 0.6), 2) if phaseable else None,
                site_fixed=fixed,
                new_quota_m2=new if fixed else 0.0,
                comp_area_m2=area if fixed else 0.0,
                comp_paddy_m2=paddy if fixed else 0.0,
                comp_grain_kg=grain if fixed else 0.0,
                demand_m2=None if fixed else round(rng.uniform(5_000, 150_000), 2),
                planned_use=rng.choice(USES),
                town=rng.choice(towns),
                blocked_reasons=("eco_redline",) if rng.random() < 0.1 else (),
            )
        )
    pools = Pools(
        new_construction=round(0.25 * totals[0], 2),
        linkage_surplus=round(0.15 * totals[0], 2),
        comp_area=round(0.45 * totals[1], 2),
        comp_paddy=round(0.40 * totals[2], 2),
        comp_grain=round(0.50 * totals[3], 2),
    )
    stock = [
        StockOffer(
            f"S{j:06d}",
            round(rng.uniform(5_000, 300_000), 2),
            rng.choice(USES),
            rng.choice(towns),
        )
        for j in range(max(1, n // 5))
    ]
    return projects, pools, stock


def pulp_baseline(
    projects: list[ProjectNeed], pools: Pools, stock: list[StockOffer]
) -> tuple[list[float], str]:
    """The same staged MILP (quota + chained stock flow) built row by row with PuLP."""
    import pulp

    levels = [lv for lv, _ in LEVEL_SHARE]
    solver_name = "HiGHS (highspy) via PuLP"
    try:
        solver = pulp.HiGHS(msg=False, gapRel=1e-6)  # the same gap as landquota
        if not solver.available():
            raise RuntimeError
    except (AttributeError, RuntimeError):
        solver = pulp.PULP_CBC_CMD(msg=False, gapRel=1e-6)
        solver_name = "CBC (bundled with PuLP)"
    cap = [
        pools.new_construction + pools.linkage_surplus,
        pools.comp_area,
        pools.comp_paddy,
        pools.comp_grain,
    ]
    prob = pulp.LpProblem("allocation", pulp.LpMaximize)
    ranked = sorted(p.project_id for p in projects)
    weight = {pid: (len(ranked) - r) / len(ranked) for r, pid in enumerate(ranked)}
    frac: dict[str, pulp.LpVariable] = {}
    fixed = [p for p in projects if p.site_fixed and not p.blocked_reasons]
    for p in fixed:
        need = (p.new_quota_m2, p.comp_area_m2, p.comp_paddy_m2, p.comp_grain_kg)
        if p.phaseable:
            f = pulp.LpVariable(f"f_{p.project_id}", 0, 1)
            m = p.min_fraction or 0.0
            if m > 0:
                z = pulp.LpVariable(f"z_{p.project_id}", cat="Binary")
                prob += f - m * z >= 0
                prob += f - z <= 0
        else:
            f = pulp.LpVariable(f"f_{p.project_id}", cat="Binary")
        if any(need[d] > cap[d] for d in range(4)) and not p.phaseable:
            f.upBound = 0
        frac[p.project_id] = f
    for d, attr in enumerate(("new_quota_m2", "comp_area_m2", "comp_paddy_m2", "comp_grain_kg")):
        prob += pulp.lpSum(getattr(p, attr) * frac[p.project_id] for p in fixed) <= cap[d]
    # stock: chain of parcels per use, sorted by area
    by_use: dict[str, list[StockOffer]] = {}
    for s in sorted(stock, key=lambda s: (s.area_m2, s.stock_id)):
        by_use.setdefault(s.planned_use or "", []).append(s)
    inflow: dict[tuple[str, int], list[pulp.LpVariable]] = {}
    unfixed = [p for p in projects if not p.site_fixed and not p.blocked_reasons]
    for p in unfixed:
        y = pulp.LpVariable(f"y_{p.project_id}", cat="Binary")
        xs = []
        uses = {p.planned_use, *USE_COMPATIBILITY.get(p.planned_use or "", ())}
        for u in sorted(x for x in uses if x):
            chain = by_use.get(u, [])
            k = next((k for k, s in enumerate(chain) if s.area_m2 >= (p.demand_m2 or 0)), None)
            if k is None:
                continue
            x = pulp.LpVariable(f"x_{p.project_id}_{u}", 0, 1)
            inflow.setdefault((u, k), []).append(x)
            xs.append(x)
        prob += y - pulp.lpSum(xs) == 0
        frac[p.project_id] = y
    for u, chain in by_use.items():
        g_prev = None
        for k in range(len(chain)):
            use_k = pulp.LpVariable(f"u_{u}_{k}", 0, 1)
            g_next = pulp.LpVariable(f"g_{u}_{k}", 0) if k + 1 < len(chain) else None
            expr = pulp.lpSum(inflow.get((u, k), [])) - use_k
            if g_prev is not None:
                expr += g_prev
            if g_next is not None:
                expr -= g_next
            prob += expr == 0
            g_prev = g_next
    by_id = {p.project_id: p for p in projects}
    values: list[float] = []
    for li, lv in enumerate(levels):
        terms = [(by_id[pid].score, v) for pid, v in frac.items() if by_id[pid].level == lv]
        if not terms:
            values.append(0.0)
            continue
        lower = [v for pid, v in frac.items() if levels.index(by_id[pid].level) > li]
        saved = [(v, v.upBound) for v in lower]
        for v in lower:
            v.upBound = 0
        prob.setObjective(pulp.lpSum(s * v for s, v in terms))
        prob.solve(solver)
        for v, ub in saved:
            v.upBound = ub
        best = pulp.value(prob.objective) or 0.0
        values.append(best)
        prob += pulp.lpSum(s * v for s, v in terms) >= best - 1e-7 * max(1.0, abs(best))
    prob.setObjective(pulp.lpSum(weight[pid] * v for pid, v in frac.items()))
    prob.solve(solver)
    values.append(pulp.value(prob.objective) or 0.0)
    return values, solver_name


def _child(kind: str, n: int, seed: int, out: Queue) -> None:  # type: ignore[type-arg]
    """Run one measurement in a fresh process so that its peak RSS is its own."""
    projects, pools, stock = make_instance(n, seed)
    gc.collect()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    if kind == "baseline":
        values, note = pulp_baseline(projects, pools, stock)
    else:
        res = allocate(projects, pools, stock, mode=kind)
        # the R18 tie-break is lexicographic (issue 16): report Σ fractions in its place
        values = [*res.objective.values(), float(sum(res.tie_break))]
        note = res.status
    dt = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out.put((dt, after / 1024, (after - before) / 1024, values, note))


def measure(kind: str, n: int, seed: int) -> tuple[float, float, float, list[float], str]:
    """Wall time (s), peak RSS (MB), growth of the peak during the call (MB), objective, note."""
    ctx = get_context("spawn")
    q = ctx.Queue()
    proc = ctx.Process(target=_child, args=(kind, n, seed, q))
    proc.start()
    result = q.get()
    proc.join()
    return result  # type: ignore[no-any-return]


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}/{five:.2f}/{fifteen:.2f}"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 1_000, 10_000])
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure each size this many times, the modes interleaved (greedy, optimal, "
        "baseline, greedy, optimal, …): the machine's load then falls on both alike",
    )
    args = ap.parse_args(argv)
    print(f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average {_load()} (1/5/15 min)")
    head = f"{'n':>6} {'mode':<18} {'time s':>8} {'ratio':>7} {'RSS MB':>7} {'+MB':>6}"
    print(
        head + "  load 1/5/15  objective (national, provincial, city, county | Σ fractions; "
        "PuLP: weighted tie-break)  note"
    )
    for n in args.sizes:
        kinds = ["greedy", "optimal"] + ([] if args.no_baseline else ["baseline"])
        for _ in range(args.rounds):
            t_opt = math.nan
            for kind in kinds:
                dt, rss, grow, values, note = measure(kind, n, args.seed)
                if kind == "optimal":
                    t_opt = dt
                ratio = f"{dt / t_opt:6.1f}x" if kind == "baseline" else ""
                vec = ", ".join(f"{v:.2f}" for v in values[:4]) + f" | {values[4]:.4f}"
                label = {"optimal": "optimal (highspy)", "baseline": "baseline (PuLP)"}.get(
                    kind, kind
                )
                print(
                    f"{n:>6} {label:<18} {dt:>8.3f} {ratio:>7} {rss:>7.0f} {grow:>6.0f}  "
                    f"{_load()}  {vec}  {note}"
                )
                sys.stdout.flush()
    print(f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average {_load()}")


if __name__ == "__main__":
    main()

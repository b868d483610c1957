"""The land-use survey patches (图斑) and the three control lines of the demo county.

Patches tile the county with the land-class shares of :data:`LAND_CLASS_SHARES`;
the control lines (basic farmland, eco red line, development boundary) are
drawn over them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray

from landquota.demo.base import (
    _MIN_PIECE_M2,
    DEMO_PLAN_VERSION,
    LAND_CLASS_SHARES,
    _dist,
    _frame,
    _polygonal,
    _rng,
    _smooth_field,
    _snap,
    _take,
)
from landquota.demo.county import (
    _County,
)
from landquota.demo.towns import (
    _FARM_CLASSES,
    _TownSite,
)


@dataclass
class _Parcels:
    geoms: NDArray[np.object_]  # metres
    town: NDArray[np.intp]
    fixed: NDArray[np.object_]  # burned-in class or None
    xy: NDArray[np.float64]  # centroids
    area: NDArray[np.float64]  # planar (design) area
    code: NDArray[np.object_]

    @classmethod
    def make(cls, seed: int, county: _County, n: int, burn: list[tuple[Any, str, int]]) -> _Parcels:
        rng = _rng(seed, "parcels")
        b = county.boundary
        minx, miny, maxx, maxy = b.bounds
        # Seeds are denser in valleys and around towns (small fields, villages) and
        # sparse in the mountains (large forest patches), as in a real survey: a
        # mixture of uniform, along-the-valley and around-the-town points.
        seg = shapely.get_coordinates(county.rivers)
        seg_a, seg_b = seg[0::2], seg[1::2]
        seg_w = np.hypot(*(seg_b - seg_a).T)
        seg_w /= seg_w.sum()
        town_w = np.concatenate([[3.0], np.ones(len(county.seeds) - 1)])
        town_w /= town_w.sum()
        chunks: list[NDArray[np.float64]] = []
        have = 0
        while have < n:
            m = max(int((n - have) * 1.6), 20_000)
            kind = rng.choice(3, size=m, p=[0.45, 0.35, 0.2])
            cand = rng.uniform([minx, miny], [maxx, maxy], (m, 2))
            v = kind == 1
            k = rng.choice(len(seg_w), size=int(v.sum()), p=seg_w)
            t = rng.random(int(v.sum()))[:, None]
            cand[v] = (
                seg_a[k] + t * (seg_b[k] - seg_a[k]) + rng.normal(0.0, 1_200.0, (int(v.sum()), 2))
            )
            w = kind == 2
            k = rng.choice(len(town_w), size=int(w.sum()), p=town_w)
            sigma = 2.5 * county.r_allowed[k][:, None]
            cand[w] = county.seeds[k] + rng.normal(0.0, 1.0, (int(w.sum()), 2)) * sigma
            cand = cand[shapely.contains_xy(b, cand[:, 0], cand[:, 1])]
            chunks.append(cand)
            have += len(cand)
        xy = np.concatenate(chunks)[:n]
        del chunks
        env = shapely.box(minx - 5_000, miny - 5_000, maxx + 5_000, maxy + 5_000)
        cells = shapely.get_parts(
            shapely.voronoi_polygons(shapely.multipoints(xy), extend_to=env, ordered=True)
        )
        if len(cells) != n:  # pragma: no cover - duplicate seeds have probability ~0
            raise RuntimeError(f"demo: Voronoi gave {len(cells)} cells for {n} seeds (seed {seed})")
        town = county.town_of(xy)
        fixed = np.full(n, None, dtype=object)

        if burn:
            feats = np.array([g for g, _, _ in burn], dtype=object)
            u = shapely.union_all(feats)
            hit = np.unique(shapely.STRtree(cells).query(feats, predicate="intersects")[1])
            cells[hit] = shapely.difference(cells[hit], u)
            cells = np.concatenate([cells, feats])
            town = np.concatenate([town, np.array([t for _, _, t in burn], dtype=np.intp)])
            fixed = np.concatenate([fixed, np.array([c for _, c, _ in burn], dtype=object)])

        # Patches never cross a town border: whole cells inside their town stay,
        # the others are cut by every town (and the county edge) they touch.
        towns = county.towns.copy()
        shapely.prepare(towns)
        inside = shapely.contains_properly(towns[town], cells)
        rest = np.flatnonzero(~inside)
        pairs = shapely.STRtree(towns).query(cells[rest], predicate="intersects")
        src = rest[pairs[0]]
        pieces = _polygonal(shapely.intersection(cells[src], towns[pairs[1]]))
        ok = ~shapely.is_missing(pieces)
        ok[ok] = shapely.area(pieces[ok]) >= _MIN_PIECE_M2
        keep_in = np.flatnonzero(inside)
        order_src = np.concatenate([keep_in, src[ok]])
        order_town = np.concatenate([town[keep_in], pairs[1][ok]])
        geoms = np.concatenate([_polygonal(cells[keep_in]), pieces[ok]])
        del cells, pieces
        srt = np.lexsort((order_town, order_src))
        geoms = geoms[srt]
        fixed_out = fixed[order_src[srt]]
        town_out = order_town[srt].astype(np.intp)
        xy_c = shapely.get_coordinates(shapely.centroid(geoms))
        return cls(
            geoms, town_out, fixed_out, xy_c, shapely.area(geoms), np.full(len(geoms), None, object)
        )

    def subset(self, keep: NDArray[np.bool_]) -> None:
        """Keep only the patches where *keep* is true (all arrays stay aligned)."""
        for name in ("geoms", "town", "fixed", "xy", "area", "code"):
            setattr(self, name, getattr(self, name)[keep])

    def classify(self, seed: int, county: _County, town_sites: Sequence[_TownSite] = ()) -> None:
        """Lay out land classes to the area shares of :data:`LAND_CLASS_SHARES`.

        Patches lying mostly in the farmed part of a town site are given the
        cultivated class drawn for them (they count toward its share).
        """
        rng = _rng(seed, "classes")
        xy, area = self.xy, self.area
        n = len(xy)
        total = float(area.sum())
        u = rng.random(n)
        _, dt = county.town_dist(xy)
        dr = _dist(xy, county.rivers)
        dd = _dist(xy, county.roads)
        res = county.reservoirs
        dres = np.min(
            np.stack([np.hypot(xy[:, 0] - x, xy[:, 1] - y) / r for x, y, r in res]), axis=0
        )
        dind = np.min(
            np.stack([np.hypot(xy[:, 0] - x, xy[:, 1] - y) for x, y in county.industrial]), axis=0
        )
        bounds = county.boundary.bounds
        f_field = _smooth_field(rng, bounds)(xy)
        f_orch = _smooth_field(rng, bounds)(xy)
        f_high = _smooth_field(rng, bounds)(xy)
        # villages: scattered in the valleys, away from the town centres
        vill = rng.uniform(bounds[:2], bounds[2:], (6_000, 2))
        _, vdt = county.town_dist(vill)
        vd = _dist(vill, county.rivers)
        vill = vill[(vd < 2_500.0) & (vdt > 2.0)][:160]
        dvill = (
            _dist(xy, np.array([shapely.Point(p) for p in vill], dtype=object)) if len(vill) else u
        )
        dseat = np.hypot(xy[:, 0] - county.seeds[0, 0], xy[:, 1] - county.seeds[0, 1])
        elev = dr / 4_000.0 + np.minimum(dt, 20.0) / 20.0 + 0.6 * f_high
        # The plan drew its town zones and red lines round the farmland where it
        # could (R16 keeps basic farmland): farmland is scarcer inside them.
        zoned = shapely.union_all([*county.allowed, *county.conditional, county.urban, county.eco])
        shapely.prepare(zoned)
        farm_penalty = np.where(shapely.contains_xy(zoned, xy[:, 0], xy[:, 1]), 0.5, 0.0)

        scores: dict[str, NDArray[np.float64]] = {
            "1101": dr + 60.0 * u,
            "1103": dres + 0.05 * u,
            "1109": dres + 0.05 * u,
            "05H1": dt + 0.1 * u,
            "0701": dt + 0.15 * u,
            "1004": dt + 0.3 * u,
            "08H2": dt + 0.4 * u,
            "0810": dt + 0.5 * u,
            "0601": dind / 600.0 + 0.1 * u,
            "1003": dd + 80.0 * u,
            "0702": dvill / 400.0 + 0.4 * u,
            "0101": np.minimum(dr / 1_300.0, dt / 3.5) + 0.5 * f_field + 0.25 * u + farm_penalty,
            "0102": np.minimum(dr / 1_300.0, dt / 3.5) + 0.5 * f_field + 0.25 * u + farm_penalty,
            "1107": dr / 2_000.0 + 0.6 * u,
            "1104": dr / 3_000.0 + dseat / 60_000.0 + 0.8 * u,
            "0103": dr / 3_000.0 + 0.5 * f_field + 0.6 * u + farm_penalty,
            "1006": dd / 2_000.0 + 0.8 * u,
            "1202": dr / 2_500.0 + 0.8 * u,
            "1206": 1.0 - elev / 3.0 + 0.8 * u,
            "1207": -elev + 0.3 * u,
            "0201": np.abs(dt - 6.0) / 6.0 + 1.0 - f_orch + 0.3 * u,
            "0202": 1.0 - f_orch + np.abs(elev - 1.2) + 0.3 * u,
            "0204": np.abs(dt - 4.0) / 4.0 + 0.6 * u,
            "0302": np.abs(dr / 3_000.0 - 1.0) + 0.8 * f_orch + 0.4 * u,
            "0404": -elev + 0.4 * u,
            "0305": -elev + 0.9 * u,
            "0307": dr / 5_000.0 + 1.0 * u,
        }
        # Fields inside the town zones where the key projects are sited (R3, R4):
        # every class laid out before the patch's drawn class passes it over, the
        # drawn class takes it first.
        want = self._farmed(seed, town_sites)
        order = list(LAND_CLASS_SHARES)
        for c in _FARM_CLASSES:
            sel = want == c
            if not sel.any():
                continue
            for k in order[: order.index(c)]:
                scores[k] = np.where(sel, np.inf, scores[k])
            scores[c] = np.where(sel, -np.inf, scores[c])
        code = self.code
        free = np.ones(n, dtype=bool)
        for c in np.unique(self.fixed[self.fixed != None]):  # noqa: E711 - elementwise
            sel = self.fixed == c
            code[sel] = c
            free &= ~sel
        for c, share in LAND_CLASS_SHARES.items():
            if c == "0301":
                continue
            target = share * total - float(area[code == c].sum())
            sel = _take(scores[c], area, free, target)
            code[sel] = c
            free &= ~sel
        code[free] = "0301"

    def _farmed(self, seed: int, town_sites: Sequence[_TownSite]) -> NDArray[np.object_]:
        """Return the class drawn for each patch mostly in a town site's farmed part, else None."""
        rng = _rng(seed, "town-fields")
        want = np.full(len(self.xy), None, dtype=object)
        free = self.fixed == None  # noqa: E711 - elementwise; burned-in plots keep their class
        farms = [(s.farm, s.farm_p) for s in town_sites if s.farm is not None]
        if not farms:
            return want
        tree = shapely.STRtree(self.geoms)
        for farm, p in farms:
            # a patch is farmed if half of it, or half of the farmed part, lies in there
            idx = np.sort(tree.query(farm, predicate="intersects"))
            idx = idx[free[idx] & (want[idx] == None)]  # noqa: E711
            inter = shapely.area(shapely.intersection(self.geoms[idx], farm))
            idx = idx[inter >= 0.5 * np.minimum(self.area[idx], shapely.area(farm))]
            want[idx] = np.array(_FARM_CLASSES, dtype=object)[rng.choice(3, size=len(idx), p=p)]
        return want

    def frame(
        self, seed: int, geo: NDArray[np.object_], gross: NDArray[np.float64], county: _County
    ) -> pd.DataFrame:
        rng = _rng(seed, "parcel-attributes")
        n = len(geo)
        code = self.code
        paddy = code == "0101"
        irrigated = code == "0102"
        dry = code == "0103"
        cult = paddy | irrigated | dry
        # KCMJ: field ridges take 5-12 % of a cultivated patch (more on terraced dry land).
        coef = np.where(dry, rng.uniform(0.08, 0.12, n), rng.uniform(0.05, 0.09, n))
        deduction = np.where(cult, np.round(gross * coef, 2), 0.0)
        grain = np.full(n, np.nan)
        grain[paddy] = np.round(rng.normal(0.9, 0.08, int(paddy.sum())).clip(0.6, 1.2), 3)
        grain[irrigated] = np.round(rng.normal(0.75, 0.06, int(irrigated.sum())).clip(0.5, 1.0), 3)
        grain[dry] = np.round(rng.normal(0.5, 0.05, int(dry.sum())).clip(0.3, 0.7), 3)
        names = np.array(county.names, dtype=object)
        ids = pd.Series(np.arange(1, n + 1)).astype("str").str.zfill(7)
        return _frame(
            "parcels",
            {
                "parcel_id": ("P" + ids).to_numpy(dtype=object),
                "land_class": code,
                "town": names[self.town],
                "gross_m2": gross,
                "deduction_m2": deduction,
                "net_m2": gross - deduction,
                "grain_kg_per_m2": grain,
            },
            geo,
        )


@dataclass
class _Lines:
    bf_frac: NDArray[np.float64]  # share of each patch inside basic farmland
    bf_by_town: dict[int, Any]  # metres
    bf_union: Any

    def frame(self, county: _County, parcels: pd.DataFrame) -> pd.DataFrame:
        geoms: list[Any] = []
        kinds: list[str] = []
        paddy: list[float] = []
        net = parcels["net_m2"].to_numpy()
        is_paddy = (parcels["land_class"] == "0101").to_numpy()
        town_names = parcels["town"].to_numpy()
        for t, g in self.bf_by_town.items():
            geoms.append(g)
            kinds.append("basic_farmland")
            sel = is_paddy & (town_names == county.names[t])
            paddy.append(float((net[sel] * self.bf_frac[sel]).sum()))
        for g in shapely.get_parts(county.eco):
            geoms.append(g)
            kinds.append("eco_redline")
            paddy.append(np.nan)
        geoms.append(county.urban)
        kinds.append("urban_boundary")
        paddy.append(np.nan)
        multi = _polygonal(geoms)
        keep = ~shapely.is_missing(multi)
        geo = county.to_geo(_snap(multi[keep]))
        n = len(geo)
        prefix = {"basic_farmland": "BF", "eco_redline": "ER", "urban_boundary": "UB"}
        kinds_k = [k for k, ok in zip(kinds, keep, strict=True) if ok]
        count: dict[str, int] = {}
        ids = []
        for k in kinds_k:
            count[k] = count.get(k, 0) + 1
            ids.append(f"{prefix[k]}{count[k]:02d}")
        return _frame(
            "control_lines",
            {
                "line_id": ids,
                "kind": kinds_k,
                "plan_version": [DEMO_PLAN_VERSION] * n,
                "paddy_m2": np.array(paddy)[keep],
            },
            geo,
        )


def _control_lines(seed: int, county: _County, parcels: _Parcels) -> _Lines:
    """Permanent basic farmland: ~87 % of the cultivated area, outside towns and red lines."""
    rng = _rng(seed, "farmland")
    cult = np.isin(parcels.code, ["0101", "0102", "0103"])
    # newly reclaimed linkage plots are not designated yet
    idx = np.flatnonzero(cult & (parcels.fixed == None))  # noqa: E711 - elementwise
    geoms = parcels.geoms[idx].copy()
    total = float(parcels.area[cult].sum())
    excl = shapely.union_all([*county.allowed, *county.conditional, county.urban, county.eco])
    shapely.prepare(excl)
    # The farmland line follows the patches but stops at the town zones and red lines.
    cut = shapely.intersects(excl, geoms)
    geoms[cut] = _polygonal(shapely.difference(geoms[cut], excl))
    ok = ~shapely.is_missing(geoms)
    area = np.zeros(len(idx))
    area[ok] = shapely.area(geoms[ok])
    sel = _take(rng.random(len(idx)), area, ok & (area > 0), 0.87 * total)
    frac = np.zeros(len(parcels.code))
    frac[idx[sel]] = area[sel] / parcels.area[idx[sel]]
    by_town: dict[int, Any] = {}
    for t in range(len(county.names)):
        g = geoms[sel & (parcels.town[idx] == t)]
        if len(g):
            # The patches form a coverage (shared Voronoi edges), which a coverage
            # union dissolves in a fraction of the time of a general union; where
            # clipping left edges a hair apart it may self-touch, so repair it.
            u = shapely.coverage_union_all(g)
            if not shapely.is_valid(u):
                u = _polygonal([shapely.make_valid(u)])[0]
            by_town[t] = u
    return _Lines(frac, by_town, shapely.union_all(list(by_town.values())))

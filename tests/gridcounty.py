"""A seeded synthetic county for scale tests and ``benchmarks/bench_demand.py``.

Parcels are the cells of a jittered grid over the Yangshan extent (lon
112.37–113.02, lat 23.97–24.93, so across the 112.5°E zone edge): every node of
the grid is moved by up to a quarter cell, neighbouring cells share their
nodes exactly, so the patches tile the extent without gaps or overlaps and are
convex (hence valid). Sites are rotated rectangles of 2–50 ha. Plan zones are
north–south stripes; control lines are boxes of basic farmland and eco red line.
"""

from __future__ import annotations

import itertools
import math

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from landquota.rules.areas import ellipsoidal_area

EXTENT = (112.37, 23.97, 113.02, 24.93)
CRS = "EPSG:4490"
_CLASSES = {  # code: share of patches
    "0101": 0.20,
    "0102": 0.03,
    "0103": 0.07,
    "0201": 0.05,
    "0301": 0.33,
    "0404": 0.03,
    "0601": 0.03,
    "0702": 0.08,
    "1001": 0.03,
    "1006": 0.05,
    "1101": 0.04,
    "1203": 0.06,
}
_ZONES = ("allowed", "conditional", "allowed", "restricted", "allowed", "prohibited", "allowed")
_M_PER_DEG_LAT = 110_800.0


def _m_per_deg_lon(lat: float) -> float:
    return 111_320.0 * math.cos(math.radians(lat))


def grid_parcels(
    n_parcels: int, *, seed: int = 0, extent: tuple[float, float, float, float] = EXTENT
) -> gpd.GeoDataFrame:
    """About *n_parcels* patches tiling *extent* (contract columns of ``parcels``)."""
    rng = np.random.default_rng(seed)
    x0, y0, x1, y1 = extent
    width_m = (x1 - x0) * _m_per_deg_lon((y0 + y1) / 2)
    height_m = (y1 - y0) * _M_PER_DEG_LAT
    nx = max(1, round(math.sqrt(n_parcels * width_m / height_m)))
    ny = max(1, round(n_parcels / nx))
    xs = np.linspace(x0, x1, nx + 1)
    ys = np.linspace(y0, y1, ny + 1)
    gx, gy = np.meshgrid(xs, ys, indexing="ij")  # (nx+1, ny+1)
    jx = rng.uniform(-0.25, 0.25, gx.shape) * (x1 - x0) / nx
    jy = rng.uniform(-0.25, 0.25, gy.shape) * (y1 - y0) / ny
    jx[[0, -1], :] = 0.0  # the outer border stays straight
    jy[:, [0, -1]] = 0.0
    gx, gy = gx + jx, gy + jy
    corners = [(0, 0), (1, 0), (1, 1), (0, 1), (0, 0)]
    coords = np.stack(
        [
            np.stack([gx[a : nx + a, b : ny + b], gy[a : nx + a, b : ny + b]], axis=-1)
            for a, b in corners
        ],
        axis=2,
    ).reshape(nx * ny, 5, 2)
    polys = shapely.polygons(coords)
    geoms = shapely.multipolygons(polys[:, None])
    n = len(geoms)
    codes = rng.choice(list(_CLASSES), size=n, p=np.array(list(_CLASSES.values())))
    gross = ellipsoidal_area(geoms)
    cultivated = np.isin(codes, ["0101", "0102", "0103"])
    ratio = np.where(cultivated, rng.uniform(0.85, 0.98, n), 1.0)
    net = gross * ratio
    own_yield = np.where(cultivated & (rng.random(n) < 0.3), rng.uniform(0.4, 1.0, n), np.nan)
    return gpd.GeoDataFrame(
        {
            "parcel_id": pd.Series([f"P{k:07d}" for k in range(n)], dtype="str"),
            "land_class": pd.Series(codes, dtype="str"),
            "gross_m2": gross,
            "deduction_m2": gross - net,
            "net_m2": net,
            "grain_kg_per_m2": own_yield,
        },
        geometry=geoms,
        crs=CRS,
    )


def sites(
    n_sites: int,
    *,
    seed: int = 0,
    extent: tuple[float, float, float, float] = EXTENT,
    ha: tuple[float, float] = (2.0, 50.0),
) -> gpd.GeoDataFrame:
    """*n_sites* fixed project sites (rotated rectangles of *ha* hectares), ``projects`` columns.

    The first site is centred on 112.5°E, the edge of Gauss–Krüger zones 37/38.
    """
    rng = np.random.default_rng(seed + 1)
    x0, y0, x1, y1 = extent
    margin = 0.02
    cx = rng.uniform(x0 + margin, x1 - margin, n_sites)
    cy = rng.uniform(y0 + margin, y1 - margin, n_sites)
    if n_sites:
        cx[0] = 112.5
    area = rng.uniform(ha[0], ha[1], n_sites) * 10_000.0
    aspect = rng.uniform(1.0, 3.0, n_sites)
    angle = rng.uniform(0.0, math.pi, n_sites)
    w = np.sqrt(area * aspect)
    h = area / w
    unit = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5], [-0.5, -0.5]])
    local = unit[None, :, :] * np.stack([w, h], axis=-1)[:, None, :]
    c, s = np.cos(angle)[:, None], np.sin(angle)[:, None]
    ex = local[..., 0] * c - local[..., 1] * s
    ny_ = local[..., 0] * s + local[..., 1] * c
    lon = cx[:, None] + ex / np.array([_m_per_deg_lon(v) for v in cy])[:, None]
    lat = cy[:, None] + ny_ / _M_PER_DEG_LAT
    geoms = shapely.multipolygons(shapely.polygons(np.stack([lon, lat], axis=-1))[:, None])
    n = n_sites
    return gpd.GeoDataFrame(
        {
            "project_id": pd.Series([f"K{k:05d}" for k in range(n)], dtype="str"),
            "name": pd.Series([f"项目{k}" for k in range(n)], dtype="str"),
            "level": pd.Series(["county"] * n, dtype="str"),
            "score": np.full(n, 50.0),
            "annual_plan_yuan": np.full(n, 1e7),
            "completed_yuan": np.zeros(n),
            "status": pd.Series(["preparatory"] * n, dtype="str"),
            "site_fixed": np.ones(n, dtype=bool),
            "phaseable": np.zeros(n, dtype=bool),
            "national_exception": np.zeros(n, dtype=bool),
        },
        geometry=geoms,
        crs=CRS,
    )


def plan_layers(
    *, seed: int = 0, extent: tuple[float, float, float, float] = EXTENT
) -> dict[str, gpd.GeoDataFrame]:
    """``plan_zones`` (stripes) and ``control_lines`` (boxes) over *extent*."""
    rng = np.random.default_rng(seed + 2)
    x0, y0, x1, y1 = extent
    edges = np.linspace(x0, x1, len(_ZONES) + 1)
    zones = gpd.GeoDataFrame(
        {
            "zone_id": [f"Z{k}" for k in range(len(_ZONES))],
            "zone_type": list(_ZONES),
            "plan_version": ["2006-2020"] * len(_ZONES),
        },
        geometry=[
            shapely.MultiPolygon([shapely.box(a, y0, b, y1)]) for a, b in itertools.pairwise(edges)
        ],
        crs=CRS,
    )
    n_lines = 40
    lx = rng.uniform(x0, x1 - 0.05, n_lines)
    ly = rng.uniform(y0, y1 - 0.05, n_lines)
    size = rng.uniform(0.005, 0.04, n_lines)
    kinds = np.where(np.arange(n_lines) % 4 == 3, "eco_redline", "basic_farmland")
    lines = gpd.GeoDataFrame(
        {
            "line_id": [f"L{k:03d}" for k in range(n_lines)],
            "kind": list(kinds),
            "plan_version": ["2006-2020"] * n_lines,
        },
        geometry=[
            shapely.MultiPolygon([shapely.box(a, b, a + d, b + d)])
            for a, b, d in zip(lx, ly, size, strict=True)
        ],
        crs=CRS,
    )
    return {"plan_zones": zones, "control_lines": lines}


def county(n_parcels: int, n_sites: int, *, seed: int = 0) -> dict[str, gpd.GeoDataFrame]:
    """The four layers demand and compliance read, ready for ``ws.write_layers``."""
    return {
        "parcels": grid_parcels(n_parcels, seed=seed),
        "projects": sites(n_sites, seed=seed),
        **plan_layers(seed=seed),
    }

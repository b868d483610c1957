"""Standard awkward geometries and ellipsoid-built shapes for the tests.

Shapes "on the ellipsoid" are built with geodesic steps on GRS80 (= CGCS2000)
from a south-west corner, so a "100 m × 100 m square" really has 100 m sides
and an area of 10,000 m² (less a few cm² from meridian convergence), which is
what a person checking the tests by hand expects.
"""

from __future__ import annotations

from collections.abc import Sequence

import geopandas as gpd
import numpy as np
import shapely
from pyproj import Geod
from shapely import MultiPolygon, Polygon, box

GEOD = Geod(ellps="GRS80")

#: Yangshan straddles the edge of 3-degree Gauss–Krüger zones 37/38 at 112.5°E.
ZONE_EDGE_LON = 112.5
YANGSHAN_LAT = 24.0


def geod_area(geom: shapely.Geometry) -> float:
    """Reference ellipsoidal area: GeographicLib geodesic polygon area (what PostGIS does).

    Rings are oriented first (shell counter-clockwise, holes clockwise) because
    pyproj sums signed ring areas.
    """
    return abs(GEOD.geometry_area_perimeter(shapely.orient_polygons(geom))[0])


class Grid:
    """Points on the ellipsoid at east/north offsets (metres) from a corner.

    Point (x, y) is reached by going x metres east (azimuth 90°, negative x goes
    west) and then y metres north along the meridian, so neighbouring rectangles
    share their vertices exactly and tile without gaps.
    """

    def __init__(self, lon: float = ZONE_EDGE_LON, lat: float = YANGSHAN_LAT) -> None:
        self.lon, self.lat = lon, lat

    def point(self, x: float, y: float) -> tuple[float, float]:
        lon, lat, _ = GEOD.fwd(self.lon, self.lat, 90.0, x)
        lon, lat, _ = GEOD.fwd(lon, lat, 0.0, y)
        return float(lon), float(lat)

    def rect(
        self, x0: float, y0: float, x1: float, y1: float, *, xs: Sequence[float] = ()
    ) -> Polygon:
        """Rectangle [x0, x1] × [y0, y1] metres; *xs* adds vertices on the bottom and top edges.

        Extra vertices at the x offsets of neighbouring rectangles make a site
        and the patches cut from it share exactly the same boundary points.
        """
        inner = sorted(x for x in xs if x0 < x < x1)
        bottom = [self.point(x, y0) for x in (x0, *inner, x1)]
        top = [self.point(x, y1) for x in (x1, *reversed(inner), x0)]
        return Polygon(bottom + top)


def square_on_ellipsoid(lon: float, lat: float, side_m: float) -> Polygon:
    """A side_m × side_m square whose south-west corner is (lon, lat)."""
    return Grid(lon, lat).rect(0.0, 0.0, side_m, side_m)


# --- the standard awkward geometries -------------------------------------------------
_G = Grid()

EMPTY = Polygon()
EMPTY_MULTI = MultiPolygon()
#: Two 100 m squares 100 m apart: 20,000 m².
MULTIPART = MultiPolygon([_G.rect(0, 0, 100, 100), _G.rect(200, 0, 300, 100)])
#: A 100 m square with a 50 m square hole: 10,000 − 2,500 = 7,500 m².
WITH_HOLE = Polygon(
    _G.rect(0, 0, 100, 100).exterior.coords, [_G.rect(25, 25, 75, 75).exterior.coords]
)
#: Self-intersecting bow-tie (invalid): its signed shoelace area is ~0.
BOWTIE = Polygon([_G.point(0, 0), _G.point(100, 100), _G.point(100, 0), _G.point(0, 100)])
#: The 100 m square with Z = 50 m on every vertex: area as in 2D.
SQUARE_3D = shapely.force_3d(_G.rect(0, 0, 100, 100), 50.0)
#: 200 m × 100 m straddling the zone edge at 112.5°E: 20,000 m².
ZONE_EDGE_STRADDLING = _G.rect(-100, 0, 100, 100)
#: Not polygonal.
LINE = shapely.LineString([_G.point(0, 0), _G.point(100, 0)])
POINT = shapely.Point(_G.point(0, 0))

AWKWARD = {
    "empty": EMPTY,
    "empty_multi": EMPTY_MULTI,
    "multipart": MULTIPART,
    "with_hole": WITH_HOLE,
    "bowtie": BOWTIE,
    "square_3d": SQUARE_3D,
    "zone_edge": ZONE_EDGE_STRADDLING,
}


def frame(rows: Sequence[dict[str, object]], *, crs: int | str | None = 4490) -> gpd.GeoDataFrame:
    """A GeoDataFrame from row dicts whose ``geometry`` key holds the shape."""
    geoms = [r["geometry"] for r in rows]
    data = {k: [r[k] for r in rows] for k in rows[0] if k != "geometry"} if rows else {}
    return gpd.GeoDataFrame(data, geometry=gpd.GeoSeries(np.array(geoms, dtype=object)), crs=crs)


def far_box(lon: float = 113.2, lat: float = 24.5, size_deg: float = 0.001) -> Polygon:
    """A small lon/lat box away from the Grid shapes (for 'no overlap' cases)."""
    return box(lon, lat, lon + size_deg, lat + size_deg)

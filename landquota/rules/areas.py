"""Ellipsoidal areas on CGCS2000 (rule R1) and area units.

Official areas in China are ellipsoidal areas (椭球面积) on the CGCS2000
ellipsoid. PostGIS computes them with ``ST_Area(geom::geography)``, which sums
geodesic polygon areas (GeographicLib). :func:`ellipsoidal_area` gets the same
numbers with vectorised planar code: it projects the geometries to a Lambert
azimuthal equal-area (LAEA) projection on the CGCS2000 ellipsoid, centred on
the data, and takes the planar area there. An equal-area projection preserves
the area of every region exactly; the only difference from the geodesic area
is that a polygon edge becomes a straight line in the projection rather than a
projected geodesic, which for survey patches and project sites (edges of metres
to a few kilometres) is far below R1's 0.01 % (see ``docs/accounting.md`` and
``tests/test_areas.py`` for the measured agreement).

Planar Gauss–Krüger area is not acceptable as the official figure: at the edge
of a 3-degree zone (Yangshan straddles 112.5°E) it is ~0.06 % too large.

Examples
--------
>>> from shapely import box
>>> a = ellipsoidal_area([box(112.5, 24.0, 112.501, 24.001)])
>>> round(float(a[0]))  # about 101.75 m × 110.75 m
11270
>>> m2_to_mu(10_000.0)
15.0
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any, Final, TypeVar, overload

import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray
from pyproj import CRS, Transformer
from pyproj.crs import ProjectedCRS
from pyproj.crs.coordinate_operation import LambertAzimuthalEqualAreaConversion
from pyproj.exceptions import CRSError as _PyprojCRSError

from landquota.errors import CRSError, ParameterError

__all__ = [
    "M2_PER_HA",
    "M2_PER_MU",
    "MU_PER_HA",
    "ellipsoidal_area",
    "equal_area_crs",
    "ha_to_m2",
    "m2_to_ha",
    "m2_to_mu",
    "mu_to_m2",
    "to_equal_area",
]

#: Square metres in a hectare.
M2_PER_HA: Final = 10_000.0
#: Mu (亩) in a hectare: exactly 15.
MU_PER_HA: Final = 15.0
#: Square metres in a mu: 10,000 / 15 ≈ 666.67.
M2_PER_MU: Final = M2_PER_HA / MU_PER_HA

#: CGCS2000 geographic, the CRS of every stored geometry.
_CGCS2000: Final = CRS.from_epsg(4490)

_Num = TypeVar("_Num", float, NDArray[np.float64], "pd.Series[float]")

# Centres are rounded so that transformers are cached per ~1 km cell; the
# projection is exactly equal-area wherever its centre is.
_CENTRE_DECIMALS: Final = 2


def m2_to_ha(area_m2: _Num) -> _Num:
    """Square metres to hectares (1 ha = 10,000 m²).

    Examples
    --------
    >>> m2_to_ha(25_000.0)
    2.5
    """
    return area_m2 / M2_PER_HA


def ha_to_m2(area_ha: _Num) -> _Num:
    """Hectares to square metres (1 ha = 10,000 m²)."""
    return area_ha * M2_PER_HA


def m2_to_mu(area_m2: _Num) -> _Num:
    """Square metres to mu (1 ha = 15 mu exactly, so 1 mu = 10,000/15 m²).

    Multiplying by 15 before dividing keeps whole hectares exact in floating point.

    Examples
    --------
    >>> m2_to_mu(20_000.0)
    30.0
    """
    return area_m2 * MU_PER_HA / M2_PER_HA


def mu_to_m2(area_mu: _Num) -> _Num:
    """Mu to square metres (1 mu = 10,000/15 m²).

    Examples
    --------
    >>> mu_to_m2(15.0)
    10000.0
    """
    return area_mu * M2_PER_HA / MU_PER_HA


@functools.lru_cache(maxsize=64)
def equal_area_crs(lon0: float, lat0: float) -> ProjectedCRS:
    """Return a Lambert azimuthal equal-area CRS on CGCS2000 centred at (*lon0*, *lat0*).

    Parameters
    ----------
    lon0, lat0 : float
        Centre in degrees (CGCS2000 longitude and latitude).

    Returns
    -------
    pyproj.crs.ProjectedCRS
        Metres; areas measured in it are ellipsoidal areas (R1).

    Raises
    ------
    ParameterError
        If the centre is not a longitude/latitude.
    """
    if not (-180.0 <= lon0 <= 180.0 and -90.0 <= lat0 <= 90.0):
        raise ParameterError(f"centre ({lon0!r}, {lat0!r}) is not a longitude/latitude in degrees")
    return ProjectedCRS(
        conversion=LambertAzimuthalEqualAreaConversion(lat0, lon0),
        geodetic_crs=_CGCS2000,
        name=f"CGCS2000 / LAEA {lat0:.2f}N {lon0:.2f}E (landquota)",
    )


@functools.lru_cache(maxsize=64)
def _transformer(source_wkt: str, lon0: float, lat0: float) -> Transformer:
    return Transformer.from_crs(
        CRS.from_wkt(source_wkt), equal_area_crs(lon0, lat0), always_xy=True
    )


def _as_crs(crs: Any, *, name: str) -> CRS:
    try:
        return CRS.from_user_input(crs)
    except _PyprojCRSError as exc:
        raise CRSError(
            f"{name}={crs!r} is not a CRS PROJ knows; give e.g. 4490 or 'EPSG:4547'"
        ) from exc


def _geometry_array(geoms: Any, crs: Any, *, name: str) -> tuple[NDArray[np.object_], CRS]:
    """Return *geoms* as an object array of shapely geometries and their CRS."""
    own = getattr(geoms, "crs", None)
    is_geo = hasattr(geoms, "geometry") or hasattr(geoms, "crs")
    if is_geo:
        if own is None and crs is None:
            raise CRSError(
                f"{name} has no CRS; set it with .set_crs(4490) (CGCS2000) or the source CRS, "
                "or pass crs=…; a missing CRS is never guessed"
            )
        conflict = own is not None and crs is not None
        if conflict and CRS.from_user_input(own) != _as_crs(crs, name="crs"):
            raise CRSError(
                f"{name} has CRS {CRS.from_user_input(own).to_string()!r} but crs={crs!r} was "
                "passed; drop the crs argument or reproject with .to_crs()"
            )
        source = _as_crs(own if own is not None else crs, name="crs")
        values = getattr(geoms, "geometry", geoms)
        arr = np.asarray(getattr(values, "array", values), dtype=object)
    else:
        source = _as_crs(4490 if crs is None else crs, name="crs")
        arr = np.asarray(geoms, dtype=object)
        if arr.ndim == 0:
            arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ParameterError(f"{name} must be one-dimensional; got shape {arr.shape}")
    ok = shapely.is_geometry(arr) | pd.isna(arr)
    if not ok.all():
        bad = arr[~ok][0]
        raise ParameterError(
            f"{name} holds {type(bad).__name__} {bad!r} at position {int(np.flatnonzero(~ok)[0])}; "
            "give shapely geometries (None for a missing one)"
        )
    arr = arr.copy()
    arr[pd.isna(arr)] = None  # NaN from pandas means a missing geometry
    return arr, source


def _geographic_bounds(
    arr: NDArray[np.object_], source: CRS, *, name: str
) -> tuple[float, float, float, float] | None:
    """Longitude/latitude bounds of the non-empty geometries, or None if there are none."""
    present = arr[~(shapely.is_missing(arr) | shapely.is_empty(arr))]
    if present.size == 0:
        return None
    xmin, ymin, xmax, ymax = (float(v) for v in shapely.total_bounds(present))
    if source.is_geographic:
        # Geographic CRSs are used x = longitude, y = latitude (as stored).
        if not (xmin >= -180.0 and xmax <= 180.0 and ymin >= -90.0 and ymax <= 90.0):
            hint = (
                "x and y look swapped (latitude first); swap the axes on import"
                if xmin >= -90.0 and xmax <= 90.0 and ymax <= 180.0
                else "these look like projected metres (a Gauss–Krüger zone such as "
                "EPSG:4547?); pass the source CRS as crs=… or reproject first"
            )
            raise CRSError(
                f"{name}: coordinates span x {xmin:.6g}…{xmax:.6g}, y {ymin:.6g}…{ymax:.6g}, "
                f"outside longitude/latitude of {source.to_string()!r}; {hint}"
            )
        return xmin, ymin, xmax, ymax
    to_geo = Transformer.from_crs(source, _CGCS2000, always_xy=True)
    lon0, lat0, lon1, lat1 = to_geo.transform_bounds(xmin, ymin, xmax, ymax)
    if not all(math.isfinite(v) for v in (lon0, lat0, lon1, lat1)):
        raise CRSError(
            f"{name}: coordinates x {xmin:.6g}…{xmax:.6g}, y {ymin:.6g}…{ymax:.6g} are not valid "
            f"in {source.to_string()!r}; check the CRS (zone number prefix? swapped X/Y?)"
        )
    return lon0, lat0, lon1, lat1


def to_equal_area(
    geoms: Any, *, crs: Any = None, name: str = "geoms"
) -> tuple[NDArray[np.object_], ProjectedCRS | None]:
    """Project *geoms* to an equal-area CRS on CGCS2000 centred on their extent.

    Parameters
    ----------
    geoms : GeoSeries, GeoDataFrame or array-like of shapely geometries
        Geometries; None entries are kept as None.
    crs : CRS-like, optional
        CRS of *geoms*. A GeoSeries/GeoDataFrame uses its own CRS (passing a
        different one is an error); plain geometries default to EPSG:4490.
    name : str, default 'geoms'
        Named in error messages (e.g. the layer).

    Returns
    -------
    geometries : numpy.ndarray of object
        2D geometries in metres of the equal-area CRS.
    crs : pyproj.crs.ProjectedCRS or None
        The equal-area CRS used; None when every geometry is missing or empty.

    Raises
    ------
    CRSError
        If the CRS is missing, contradicts the data's own CRS, or the
        coordinates cannot be in it (projected metres read as degrees, swapped
        latitude/longitude).
    ParameterError
        If *geoms* holds something other than geometries.
    """
    arr, source = _geometry_array(geoms, crs, name=name)
    bounds = _geographic_bounds(arr, source, name=name)
    if bounds is None:
        return shapely.force_2d(arr), None
    lon0 = round((bounds[0] + bounds[2]) / 2.0, _CENTRE_DECIMALS)
    lat0 = round((bounds[1] + bounds[3]) / 2.0, _CENTRE_DECIMALS)
    transformer = _transformer(source.to_wkt(), lon0, lat0)

    def project(coords: NDArray[np.float64]) -> NDArray[np.float64]:
        x, y = transformer.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    # include_z=False drops Z: areas are 2D (the contract stores 2D geometries).
    projected = shapely.transform(arr, project, include_z=False)
    return np.asarray(projected, dtype=object), equal_area_crs(lon0, lat0)


@overload
def ellipsoidal_area(geoms: shapely.Geometry, *, crs: Any = ..., name: str = ...) -> float: ...
@overload
def ellipsoidal_area(
    geoms: Sequence[Any] | NDArray[Any] | Any, *, crs: Any = ..., name: str = ...
) -> NDArray[np.float64]: ...
def ellipsoidal_area(
    geoms: Any, *, crs: Any = None, name: str = "geoms"
) -> float | NDArray[np.float64]:
    """Ellipsoidal area (R1) of each geometry in square metres on CGCS2000.

    Agrees with PostGIS ``ST_Area(geom::geography)`` (spheroid) to far better
    than R1's 0.01 % for parcels and sites; see the module docstring.

    Parameters
    ----------
    geoms : GeoSeries, GeoDataFrame, array-like of shapely geometries, or one geometry
        Polygons or multipolygons (other types have zero area). Z is ignored.
    crs : CRS-like, optional
        CRS of *geoms*. A GeoSeries/GeoDataFrame uses its own CRS and must have
        one; plain geometries are taken to be in EPSG:4490 (CGCS2000 lon/lat,
        the in-memory contract) unless *crs* says otherwise. Projected input
        (e.g. EPSG:4547) is measured on the ellipsoid too, not in its plane.
    name : str, default 'geoms'
        Named in error messages (e.g. ``'parcels'``).

    Returns
    -------
    float or numpy.ndarray of float64
        Areas in m²: 0.0 for empty geometries, NaN for missing ones (None).
        A float when one geometry was given.

    Raises
    ------
    CRSError
        If the CRS is missing (GeoSeries without one), contradicts the data's
        own CRS, or the coordinates cannot be in it (projected metres read as
        degrees, swapped latitude/longitude).
    ParameterError
        If *geoms* holds something other than geometries.

    Notes
    -----
    Invalid geometries (self-intersecting rings) are measured as they are, like
    ``shapely.area`` and PostGIS do; such areas are meaningless, so validate first.

    Examples
    --------
    >>> from shapely import box
    >>> a = ellipsoidal_area([box(113.0, 24.0, 113.01, 24.01), None])
    >>> round(float(a[0]) / 1e4, 2), bool(np.isnan(a[1]))
    (112.69, True)
    """
    if isinstance(geoms, shapely.Geometry):
        return float(ellipsoidal_area(np.array([geoms], dtype=object), crs=crs, name=name)[0])
    projected, _ = to_equal_area(geoms, crs=crs, name=name)
    return np.asarray(shapely.area(projected), dtype=np.float64)

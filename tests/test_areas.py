"""Ellipsoidal areas (R1) and area units."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely
from geoms import (
    AWKWARD,
    BOWTIE,
    MULTIPART,
    SQUARE_3D,
    WITH_HOLE,
    ZONE_EDGE_LON,
    ZONE_EDGE_STRADDLING,
    Grid,
    geod_area,
    square_on_ellipsoid,
)
from shapely import box

from landquota.errors import CRSError, ParameterError
from landquota.rules.areas import (
    M2_PER_MU,
    ellipsoidal_area,
    equal_area_crs,
    ha_to_m2,
    m2_to_ha,
    m2_to_mu,
    mu_to_m2,
    to_equal_area,
)

R1 = 1e-4  # R1: agree with ST_Area(geography) to 0.01 %


@pytest.mark.parametrize(
    ("lon", "lat", "side"),
    [
        (ZONE_EDGE_LON, 24.0, 100.0),  # Yangshan, on the zone edge 112.5°E
        (112.37, 23.97, 100.0),  # south-west corner of the county
        (114.0, 24.0, 1_000.0),  # central meridian of zone 38
        (73.5, 39.5, 100.0),  # far west of China
        (134.7, 53.5, 1_000.0),  # far north-east
        (112.4, 24.4, 20_000.0),  # a county-sized square, corners only
    ],
)
def test_square_matches_geodesic_area(lon: float, lat: float, side: float) -> None:
    square = square_on_ellipsoid(lon, lat, side)
    # R1 against GeographicLib, which is what PostGIS uses: ten times inside 0.01 %
    # even for 20 km edges (straight in the projection, ~1e-6 off the geodesic);
    # sites and patches up to a few km agree to ~1e-9.
    reference = geod_area(square)
    assert ellipsoidal_area(square) == pytest.approx(reference, rel=R1 / 10)
    if side <= 1_000:
        assert ellipsoidal_area(square) == pytest.approx(reference, rel=1e-8)


@pytest.mark.parametrize(("lon", "lat"), [(ZONE_EDGE_LON, 24.0), (112.37, 23.97), (113.0, 24.9)])
def test_hundred_metre_square_by_hand(lon: float, lat: float) -> None:
    # Hand check: 100 m × 100 m = 10,000 m². (A square built by geodesic steps is
    # short by side³·tan(lat)/(2R) ≈ 0.04 m² from meridian convergence.)
    assert ellipsoidal_area(square_on_ellipsoid(lon, lat, 100.0)) == pytest.approx(
        10_000.0, abs=0.1
    )


def test_hundred_metre_square_is_one_hectare_fifteen_mu() -> None:
    area = ellipsoidal_area(square_on_ellipsoid(ZONE_EDGE_LON, 24.0, 100.0))
    # 100 m × 100 m = 10,000 m² = 1 ha = 15 mu.
    assert area == pytest.approx(10_000.0, abs=0.1)
    assert m2_to_ha(area) == pytest.approx(1.0, rel=1e-5)
    assert m2_to_mu(area) == pytest.approx(15.0, rel=1e-5)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("empty", 0.0),
        ("empty_multi", 0.0),
        ("multipart", 20_000.0),  # two 100 m squares
        ("with_hole", 7_500.0),  # 10,000 − 50 × 50
        ("square_3d", 10_000.0),  # Z ignored
        ("zone_edge", 20_000.0),  # 200 m × 100 m across 112.5°E
    ],
)
def test_awkward_geometries(name: str, expected: float) -> None:
    assert ellipsoidal_area(AWKWARD[name]) == pytest.approx(expected, abs=0.5)


def test_awkward_match_geodesic_reference() -> None:
    for geom in (MULTIPART, WITH_HOLE, ZONE_EDGE_STRADDLING, shapely.force_2d(SQUARE_3D)):
        assert ellipsoidal_area(geom) == pytest.approx(geod_area(geom), rel=1e-7)


def test_invalid_bowtie_is_measured_not_repaired() -> None:
    # The two triangles have opposite orientation: the shoelace area cancels to ~0.
    assert ellipsoidal_area(BOWTIE) == pytest.approx(0.0, abs=1.0)


def test_vectorised_with_missing_and_order() -> None:
    g = Grid()
    areas = ellipsoidal_area([g.rect(0, 0, 10, 10), None, g.rect(0, 0, 20, 10)])
    assert areas.dtype == np.float64
    assert areas[0] == pytest.approx(100.0, abs=0.01)  # 10 m × 10 m
    assert np.isnan(areas[1])
    assert areas[2] == pytest.approx(200.0, abs=0.01)  # 20 m × 10 m


def test_empty_input() -> None:
    assert ellipsoidal_area([]).shape == (0,)


def test_geoseries_and_projected_input_measured_on_ellipsoid() -> None:
    square = square_on_ellipsoid(ZONE_EDGE_LON, 24.0, 1_000.0)
    expected = geod_area(square)
    gk = gpd.GeoSeries([square], crs=4490).to_crs(4547)  # CGCS2000 GK zone 38, CM 114°E
    # Planar Gauss–Krüger area at the zone edge is ~0.06 % too large: not R1-compliant.
    planar = float(gk.area.iloc[0])
    assert planar / expected - 1 > 4e-4
    # Measured through the equal-area projection it is the ellipsoidal area again.
    assert ellipsoidal_area(gk)[0] == pytest.approx(expected, rel=1e-6)
    assert ellipsoidal_area(gk.to_frame("geometry"))[0] == pytest.approx(expected, rel=1e-6)
    assert ellipsoidal_area(list(gk), crs="EPSG:4547")[0] == pytest.approx(expected, rel=1e-6)


def test_equal_area_crs_is_laea_on_cgcs2000() -> None:
    crs = equal_area_crs(112.5, 24.0)
    assert crs.geodetic_crs is not None and crs.geodetic_crs.to_epsg() == 4490
    assert "Lambert Azimuthal Equal Area" in crs.coordinate_operation.method_name
    projected, used = to_equal_area([square_on_ellipsoid(112.5, 24.0, 100.0)])
    assert used is not None and used.is_projected
    # Near the centre, coordinates are metres from it: the square spans ~100 m.
    xmin, ymin, xmax, ymax = shapely.bounds(projected[0])
    assert xmax - xmin == pytest.approx(100.0, abs=0.01)
    assert ymax - ymin == pytest.approx(100.0, abs=0.01)


@pytest.mark.parametrize(
    ("geoms", "crs", "exc", "match"),
    [
        # Gauss–Krüger metres passed as if they were EPSG:4490 degrees.
        ([box(38_360_000, 2_650_000, 38_360_100, 2_650_100)], None, CRSError, "projected"),
        # Latitude first: x = 24°, y = 112.5°.
        ([box(24.0, 112.5, 24.001, 112.501)], None, CRSError, "swapped"),
        (gpd.GeoSeries([box(112.5, 24, 112.6, 24.1)]), None, CRSError, "no CRS"),
        (gpd.GeoSeries([box(112.5, 24, 112.6, 24.1)], crs=4490), 4547, CRSError, "but crs="),
        ([box(112.5, 24, 112.6, 24.1)], "EPSG:999999", CRSError, "not a CRS"),
        (["POLYGON EMPTY"], None, ParameterError, "give shapely geometries"),
    ],
)
def test_invalid_inputs(geoms: object, crs: object, exc: type[Exception], match: str) -> None:
    with pytest.raises(exc, match=match):
        ellipsoidal_area(geoms, crs=crs)


@pytest.mark.parametrize(
    ("m2", "ha", "mu"),
    [(10_000.0, 1.0, 15.0), (666_666.0 + 2 / 3, 66.6666666667, 1_000.0), (0.0, 0.0, 0.0)],
)
def test_units(m2: float, ha: float, mu: float) -> None:
    assert m2_to_ha(m2) == pytest.approx(ha)
    assert m2_to_mu(m2) == pytest.approx(mu)
    assert ha_to_m2(ha) == pytest.approx(m2)
    assert mu_to_m2(mu) == pytest.approx(m2)


def test_units_exact_and_vectorised() -> None:
    assert m2_to_mu(150_000.0) == 225.0  # 15 ha = 225 mu exactly
    assert round(M2_PER_MU, 4) == 666.6667  # 10,000 / 15
    np.testing.assert_allclose(m2_to_mu(np.array([10_000.0, 20_000.0])), [15.0, 30.0])

"""The GEOS work split over threads gives the serial result, in order."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from landquota import _parallel


def test_chunked_equals_serial(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_parallel, "MIN_PARALLEL", 10)
    monkeypatch.setenv("LANDQUOTA_THREADS", "3")
    boxes = shapely.box(np.arange(100.0), 0, np.arange(100.0) + 1, 1)
    bowtie = shapely.Polygon([(0, 0), (1, 1), (1, 0), (0, 1)])
    geoms = np.concatenate([boxes, [bowtie], boxes])
    valid = _parallel.chunked(shapely.is_valid, geoms)
    assert valid.tolist() == shapely.is_valid(geoms).tolist()
    assert valid.sum() == 200 and not valid[100]
    wkb = shapely.to_wkb(geoms)
    assert shapely.equals(_parallel.chunked(shapely.from_wkb, wkb), geoms).all()


def test_threads_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANDQUOTA_THREADS", "1")
    assert _parallel.workers() == 1
    monkeypatch.setenv("LANDQUOTA_THREADS", "two")
    with pytest.raises(ValueError, match="LANDQUOTA_THREADS='two'"):
        _parallel.workers()


def test_run_all_keeps_order_and_nested_calls_do_not_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_parallel, "MIN_PARALLEL", 10)
    monkeypatch.setenv("LANDQUOTA_THREADS", "2")
    geoms = shapely.box(np.arange(50.0), 0, np.arange(50.0) + 1, 1)

    def task(k: int) -> np.ndarray:
        # a chunked() call from a pool thread: run there, not queued behind itself
        return _parallel.chunked(shapely.area, geoms * 0 if k < 0 else geoms) + k

    out = _parallel.run_all([lambda k=k: task(k) for k in range(5)])
    assert [float(a[0]) for a in out] == [1.0, 2.0, 3.0, 4.0, 5.0]


def test_measure_and_polygonal_on_threads_equal_one_call(monkeypatch: pytest.MonkeyPatch) -> None:
    from landquota.rules.overlay import measure, polygonal

    x = np.linspace(112.4, 113.0, 60)
    geoms = np.concatenate(
        [
            shapely.box(x, 24.0, x + 0.003, 24.002),
            # an edge-sharing intersection: a LineString, dropped by polygonal
            shapely.intersection(shapely.box(x, 24.0, x + 1e-3, 24.001), shapely.box(x + 1e-3, 24.0, x + 2e-3, 24.001)),
        ]
    )
    monkeypatch.setenv("LANDQUOTA_THREADS", "1")
    one_area = measure(geoms, (112.7, 24.0), name="t")
    one_poly = polygonal(geoms)
    monkeypatch.setattr(_parallel, "MIN_PARALLEL", 7)
    monkeypatch.setenv("LANDQUOTA_THREADS", "3")
    assert measure(geoms, (112.7, 24.0), name="t").tobytes() == one_area.tobytes()
    many = polygonal(geoms)
    assert shapely.equals_exact(many, one_poly, tolerance=0).all()
    assert shapely.is_empty(many[60:]).all() and (one_area[:60] > 0).all()

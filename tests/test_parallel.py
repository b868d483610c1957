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

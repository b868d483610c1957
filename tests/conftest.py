"""Shared fixtures: workspaces on both backends, a real PostGIS when one is reachable.

PostGIS tests use the server at ``LANDQUOTA_TEST_PG`` (``scripts/test`` starts a
throwaway one and sets it). Locally, without a server, they skip with the reason;
in CI (``CI=true``) every skip is turned into a failure, so a missing server or
browser can never pass silently.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

DEFAULT_PG = "postgresql://postgres@127.0.0.1:55432/landquota_test"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_report_header(config: pytest.Config) -> list[str]:
    import geopandas
    import pyogrio
    import pyproj
    import shapely

    lines = [
        f"landquota deps: GEOS {shapely.geos_version_string}, GDAL {pyogrio.__gdal_version_string__}, "
        f"PROJ {pyproj.proj_version_str}, shapely {shapely.__version__}, geopandas {geopandas.__version__}",
        f"PostGIS URL: {os.environ.get('LANDQUOTA_TEST_PG', DEFAULT_PG + ' (default)')}; CI={IN_CI}",
    ]
    try:
        import sqlalchemy as sa

        eng = sa.create_engine(_sa_url(pg_url_or_none() or ""))
        with eng.connect() as c:
            lines.append(
                "PostGIS: "
                + str(c.execute(sa.text("SELECT postgis_full_version()")).scalar())[:120]
            )
        eng.dispose()
    except Exception as exc:  # header only: the fixture reports properly
        lines.append(f"PostGIS: not reachable ({type(exc).__name__})")
    return lines


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()  # type: ignore[attr-defined]
    if IN_CI and rep.skipped and not hasattr(rep, "wasxfail"):
        # CI must exercise PostGIS, the browser and the notebooks: a skip is a failure there.
        rep.outcome = "failed"
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        rep.longrepr = f"skipped in CI, which counts as a failure: {reason}"


def _sa_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


_PG_STATE: dict[str, str | None] = {}


def pg_url_or_none() -> str | None:
    """The test server's URL if it answers, else None (checked once per session)."""
    if "url" in _PG_STATE:
        return _PG_STATE["url"]
    url = os.environ.get("LANDQUOTA_TEST_PG", DEFAULT_PG)
    try:
        import sqlalchemy as sa

        eng = sa.create_engine(_sa_url(url), connect_args={"connect_timeout": 3})
        with eng.connect() as c:
            c.execute(sa.text("SELECT postgis_version()"))
        eng.dispose()
        _PG_STATE["url"] = url
    except Exception as exc:
        _PG_STATE["url"] = None
        _PG_STATE["why"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    return _PG_STATE["url"]


@pytest.fixture(scope="session")
def pg_server() -> str:
    """URL of the PostGIS test database (skips locally when absent)."""
    url = pg_url_or_none()
    if url is None:
        pytest.skip(
            f"no PostGIS at LANDQUOTA_TEST_PG ({_PG_STATE.get('why')}); run scripts/pg-start "
            "or scripts/test"
        )
    return url


def _drop_schema(url: str, schema: str) -> None:
    import sqlalchemy as sa

    eng = sa.create_engine(_sa_url(url))
    with eng.begin() as c:
        c.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        # QGIS's styles of the workspace live in public.layer_styles (issue 15)
        if c.execute(sa.text("SELECT to_regclass('public.layer_styles')")).scalar():
            c.execute(
                sa.text("DELETE FROM public.layer_styles WHERE f_table_schema = :s"),
                {"s": schema},
            )
    eng.dispose()


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A workspace URL in a fresh schema of its own, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield f"{pg_server}?schema={schema}"
    _drop_schema(pg_server, schema)


@pytest.fixture(params=["gpkg", pytest.param("postgis", marks=pytest.mark.postgis)])
def ws_target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new (not yet created) workspace target on each backend."""
    if request.param == "gpkg":
        return str(tmp_path / "ws.gpkg")
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def ws(ws_target: str) -> Iterator[object]:
    """An empty workspace on each backend."""
    from landquota.store.api import open_workspace

    w = open_workspace(ws_target, create=True)
    yield w
    w.close()


@pytest.fixture(scope="session")
def demo_small() -> dict[str, object]:
    """The smallest demo county (2,000 patches), built once per session (~3 s)."""
    from landquota.demo.build import build_demo

    return dict(build_demo(seed=2014, n_parcels=2_000))

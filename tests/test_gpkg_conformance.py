"""GeoPackage conformance: GDAL's validator passes on every GeoPackage landquota writes.

The validator is GDAL's own ``validate_gpkg.py`` (``osgeo_utils.samples``), as Debian's
``python3-gdal`` ships it for the system Python (``/usr/bin/python3``); it checks the
GeoPackage 1.2/1.3 requirements (table definitions, gpkg_contents, R-trees, geometry blobs,
integer primary keys of attribute tables, …). Without it the tests skip (CI turns the skip
into a failure); ``scripts/setup-system`` installs it.
"""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import geopandas as gpd
import pytest
import shapely

from landquota.demo.build import build_demo
from landquota.intake.importer import import_layer
from landquota.outputs.export import export_workspace
from landquota.store.api import open_workspace
from landquota.store.schema import SCHEMA_VERSION
from tests.sample import sample_layers

SYSTEM_PYTHON = "/usr/bin/python3"


def _validator_or_skip() -> None:
    probe = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import osgeo_utils.samples.validate_gpkg"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        pytest.skip(
            "GDAL's validate_gpkg.py is not importable by /usr/bin/python3; install Debian's "
            f"python3-gdal (scripts/setup-system): {probe.stderr.strip()[-200:]}"
        )


def validate(path: Path) -> str:
    """Run GDAL's validator (every check, ``-k`` keeps going); return its report ('' = valid)."""
    _validator_or_skip()
    done = subprocess.run(
        [SYSTEM_PYTHON, "-m", "osgeo_utils.samples.validate_gpkg", "-k", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report = (done.stdout + done.stderr).strip()
    assert done.returncode == 0 or report, "the validator failed without saying why"
    return report if done.returncode != 0 else ""


def test_the_validator_catches_a_text_primary_key(tmp_path: Path) -> None:
    # The very defect GDAL reported on landquota_meta: the check must be able to fail.
    path = tmp_path / "bad.gpkg"
    with open_workspace(path, create=True):
        pass
    con = sqlite3.connect(path)
    con.executescript(
        "CREATE TABLE t_text_key (key TEXT PRIMARY KEY, value TEXT);"
        "INSERT INTO gpkg_contents (table_name, data_type, identifier) "
        "VALUES ('t_text_key', 'attributes', 't_text_key');"
    )
    con.close()
    assert "Req 119" in validate(path)


def test_new_workspace_is_a_valid_geopackage(tmp_path: Path) -> None:
    path = tmp_path / "new.gpkg"
    with open_workspace(path, create=True) as ws:
        assert ws.schema_version == SCHEMA_VERSION
    assert validate(path) == ""


@pytest.mark.slow
def test_demo_workspace_and_its_backup_are_valid_geopackages(tmp_path: Path) -> None:
    src = tmp_path / "demo.gpkg"
    with open_workspace(src, create=True) as ws:
        ws.write_layers(build_demo(seed=2014, n_parcels=2_000))  # the smallest demo
        ws.set_meta("as_of", "2014-04-30")
    assert validate(src) == ""
    backup = export_workspace(src, tmp_path / "backup.gpkg")
    assert validate(backup) == ""


def test_workspace_filled_by_import_is_a_valid_geopackage(tmp_path: Path) -> None:
    frames = sample_layers()
    source = tmp_path / "survey.gpkg"
    parcels = gpd.GeoDataFrame(frames["parcels"], geometry="geometry", crs=4490)
    parcels.to_file(source, layer="DLTB", driver="GPKG")
    path = tmp_path / "imported.gpkg"
    with open_workspace(path, create=True) as ws:
        report = import_layer(source, ws, layer="parcels", src_layer="DLTB")
        assert report.rows_imported == len(parcels)
    assert validate(path) == ""


def _make_v1_meta(path: Path) -> dict[str, str]:
    """Turn *path*'s metadata table back into schema 1's shape (TEXT primary key)."""
    con = sqlite3.connect(path)
    rows = con.execute("SELECT key, value FROM landquota_meta").fetchall()
    con.executescript(
        "DROP TABLE landquota_meta;"
        "CREATE TABLE landquota_meta (key TEXT NOT NULL PRIMARY KEY, value TEXT NOT NULL);"
    )
    con.executemany("INSERT INTO landquota_meta VALUES (?, ?)", rows)
    con.execute("UPDATE landquota_meta SET value = '1' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    return {str(k): str(v) for k, v in rows if k != "schema_version"}


def test_upgrade_gives_an_old_gpkg_metadata_table_an_integer_key(tmp_path: Path) -> None:
    path = tmp_path / "old.gpkg"
    with open_workspace(path, create=True) as ws:
        ws.write_layers({"parcels": sample_layers()["parcels"]})
        ws.set_meta("source_crs:parcels", "EPSG:4547")
    kept = _make_v1_meta(path)
    assert "Req 119" in validate(path)
    with open_workspace(path, upgrade=True) as ws:
        assert ws.schema_version == SCHEMA_VERSION
        meta = ws.meta()
        assert {k: meta[k] for k in kept} == kept
        ws.set_meta("source_crs:parcels", "EPSG:4490")  # the upsert keeps one row per key
        assert ws.meta()["source_crs:parcels"] == "EPSG:4490"
    con = sqlite3.connect(path)
    pk = [r[1] for r in con.execute("PRAGMA table_info(landquota_meta)") if r[5]]
    dup = con.execute("SELECT count(*) - count(DISTINCT key) FROM landquota_meta").fetchone()[0]
    con.close()
    assert pk == ["fid"] and dup == 0
    assert validate(path) == ""
    with open_workspace(path, upgrade=True) as ws:  # idempotent: a second run changes nothing
        assert ws.meta() == {**meta, "source_crs:parcels": "EPSG:4490"}


@pytest.mark.postgis
def test_upgrade_gives_an_old_postgis_metadata_table_an_integer_key(pg_url: str) -> None:
    import sqlalchemy as sa

    with open_workspace(pg_url, create=True) as ws:
        schema = ws.schema  # type: ignore[attr-defined]
        engine = ws.engine  # type: ignore[attr-defined]
        with engine.begin() as con:  # schema 1's shape: key is the primary key, no fid
            t = f'"{schema}".landquota_meta'
            con.execute(sa.text(f"ALTER TABLE {t} DROP COLUMN fid"))
            con.execute(sa.text(f"ALTER TABLE {t} DROP CONSTRAINT landquota_meta_key_key"))
            con.execute(sa.text(f"ALTER TABLE {t} ADD PRIMARY KEY (key)"))
            con.execute(sa.text(f"UPDATE {t} SET value = '1' WHERE key = 'schema_version'"))
        before = {k: v for k, v in ws.meta().items() if k != "schema_version"}
    with open_workspace(pg_url, upgrade=True) as ws:
        assert ws.schema_version == SCHEMA_VERSION
        assert {k: v for k, v in ws.meta().items() if k != "schema_version"} == before
        ws.set_meta("note", "after upgrade")
        with ws.engine.connect() as con:  # type: ignore[attr-defined]
            pk = (
                con.execute(
                    sa.text(
                        "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = "
                        "i.indrelid AND a.attnum = ANY(i.indkey) WHERE i.indrelid = to_regclass(:t) "
                        "AND i.indisprimary"
                    ),
                    {"t": f'"{schema}".landquota_meta'},
                )
                .scalars()
                .all()
            )
        assert pk == ["fid"]
        assert ws.meta()["note"] == "after upgrade"


def test_the_sample_parcels_are_valid_polygons() -> None:
    # guards the import test above: the validator would also flag broken geometry blobs
    parcels = sample_layers()["parcels"]
    assert shapely.is_valid(parcels.geometry.array).all()

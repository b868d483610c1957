"""A QGIS project stored inside the workspace: the layers grouped, ordered and styled.

Opening the workspace in QGIS (Browser ▸ the GeoPackage or the PostgreSQL schema ▸ the
project ``landquota``) shows the county as the HTML map does. The project is written where
QGIS's own project storage keeps projects:

- GeoPackage: the ``qgis_projects`` table (``name``, ``metadata``, ``content`` = the
  ``.qgz`` bytes as hex text), QGIS URI ``geopackage:/path/x.gpkg?projectName=landquota``.
  Layers point at the same file by a relative path (``./x.gpkg|layername=…``), which QGIS
  resolves against the GeoPackage holding the project, so the file can be moved; a copy
  under another name (a backup) gets its own project (:func:`write_qgis_project` is run on
  it).
- PostGIS: ``qgis_projects`` in the workspace schema (``content`` bytea, ``metadata``
  jsonb), QGIS URI ``postgresql://user@host:port?dbname=…&schema=…&project=landquota``.
  Layers name the server, database and login of the workspace URL (or its ``service``),
  never a password: QGIS asks for it, or finds it in ``~/.pgpass`` / the service file.

The project is plain QGIS XML written here (QGIS is not needed to write it); the styles
are those of :mod:`landquota.outputs.styles`, and the key projects are joined to the
allocations of the run the map shows (latest committed, else latest draft, found by a
subquery each time QGIS reads the table), whose ``outcome`` colours them.
"""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final, cast
from xml.sax.saxutils import escape, quoteattr

from pyproj import CRS

from landquota.outputs.styles import LAYER_TITLES, OUTCOME_FIELD, renderer_qml
from landquota.store.schema import CRS_EPSG

if TYPE_CHECKING:
    from landquota.store.gpkg import GpkgWorkspace
    from landquota.store.postgis import PostgisWorkspace
    from landquota.store.workspace import Workspace

__all__ = ["PROJECT_NAME", "project_uri", "qgis_project_xml", "write_qgis_project"]

#: Name of the stored project.
PROJECT_NAME: Final = "landquota"

#: Layer tree, top to bottom: (group title, layers top to bottom, layers shown at start).
GROUPS: Final = (
    ("边界 Boundaries", ("county", "towns"), True),
    ("重点项目 Key projects", ("projects",), True),
    ("存量与挂钩 Stock land and linkage", ("stock_land", "linkage_plots"), True),
    ("规划管控 Plan controls", ("control_lines", "plan_zones"), True),
    ("现状 Land use", ("parcels",), True),
)
#: Layers that start unticked (as on the HTML map: the zones would hide the patches).
HIDDEN: Final = frozenset({"plan_zones"})

_GEOM: Final = "geom"


def _srs() -> str:
    crs = CRS.from_epsg(CRS_EPSG)
    return (
        "<spatialrefsys>"
        f"<wkt>{escape(crs.to_wkt())}</wkt>"
        f"<authid>EPSG:{CRS_EPSG}</authid><description>{escape(crs.name)}</description>"
        "<projectionacronym>longlat</projectionacronym><geographicflag>true</geographicflag>"
        "</spatialrefsys>"
    )


def _pg_source(ws: PostgisWorkspace, table: str, *, spatial: bool, sql: str = "") -> str:
    url = ws.engine.url
    parts = []
    service = url.query.get("service")
    if service:
        parts.append(f"service='{service}'")
    if url.database:
        parts.append(f"dbname='{url.database}'")
    if url.host:
        parts.append(f"host={url.host}")
    if url.port:
        parts.append(f"port={url.port}")
    if url.username:
        parts.append(f"user='{url.username}'")
    parts.append("key='fid'")
    if spatial:
        parts += [f"srid={CRS_EPSG}", "type=MultiPolygon"]
    parts.append("checkPrimaryKeyUnicity='0'")
    parts.append(f'table="{ws.schema}"."{table}"' + (f" ({_GEOM})" if spatial else ""))
    if sql:
        parts.append(f"sql={sql}")
    return " ".join(parts)


def _source(ws: Workspace, table: str, *, spatial: bool, sql: str = "") -> tuple[str, str]:
    """``(datasource, provider)`` of a workspace table as QGIS opens it."""
    if ws.kind == "gpkg":
        path = cast("GpkgWorkspace", ws).path
        subset = f"|subset={sql}" if sql else ""
        return f"./{path.name}|layername={table}{subset}", "ogr"
    return _pg_source(cast("PostgisWorkspace", ws), table, spatial=spatial, sql=sql), "postgres"


def _layer_id(name: str) -> str:
    return f"landquota_{name}"


def _maplayer(ws: Workspace, name: str) -> str:
    source, provider = _source(ws, name, spatial=True)
    joins = ""
    if name == "projects":
        # The run's outcome per project, joined in as run_outcome (styles.OUTCOME_FIELD).
        prefix = OUTCOME_FIELD.removesuffix("outcome")
        joins = (
            '<vectorjoins><join targetFieldName="project_id" joinFieldName="project_id" '
            f'joinLayerId="{_layer_id("allocations")}" memoryCache="1" dynamicForm="0" '
            'editable="0" upsertOnEdit="0" cascadedDelete="0" '
            f'customPrefix="{prefix}" hasCustomPrefix="1"><joinFieldsSubset>'
            '<field name="outcome"/><field name="fraction"/><field name="reasons"/>'
            "</joinFieldsSubset></join></vectorjoins>"
        )
    return (
        '<maplayer type="vector" geometry="Polygon" wkbType="MultiPolygon" '
        'styleCategories="AllStyleCategories" labelsEnabled="'
        f'{"1" if name == "towns" else "0"}" readOnly="0" autoRefreshEnabled="0">'
        f"<id>{_layer_id(name)}</id><datasource>{escape(source)}</datasource>"
        f"<layername>{escape(LAYER_TITLES[name])}</layername><srs>{_srs()}</srs>"
        f'<provider encoding="UTF-8">{provider}</provider>{joins}'
        f"{renderer_qml(name)}</maplayer>"
    )


def _run_filter(ws: Workspace, run_id: str | None) -> str:
    """Return the filter of the allocations shown: one run, or (live) the latest run.

    Without a fixed run the filter is a subquery evaluated by SQLite / PostgreSQL each
    time QGIS reads the table: the latest committed run, else the latest draft, never a
    reverted one (as ``landquota.outputs.reports.select_run`` chooses), so a run committed after
    the project was written colours the projects without rewriting the project.
    """
    if run_id is not None:
        return '"run_id" = \'' + run_id.replace("'", "''") + "'"
    runs = "allocation_runs"
    if ws.kind != "gpkg":
        runs = f'"{cast("PostgisWorkspace", ws).schema}".allocation_runs'
    return (
        f"\"run_id\" = (SELECT run_id FROM {runs} WHERE status <> 'reverted' "
        "ORDER BY (status = 'committed') DESC, created_at DESC, run_id DESC LIMIT 1)"
    )


def _allocations_title(run_id: str | None) -> str:
    shown = f"run {run_id}" if run_id is not None else "最新方案 latest run"
    return f"分配结果 Allocations ({shown})"


def _allocations_layer(ws: Workspace, run_id: str | None) -> str:
    source, provider = _source(ws, "allocations", spatial=False, sql=_run_filter(ws, run_id))
    return (
        '<maplayer type="vector" geometry="No geometry" wkbType="NoGeometry" readOnly="0">'
        f"<id>{_layer_id('allocations')}</id><datasource>{escape(source)}</datasource>"
        f"<layername>{escape(_allocations_title(run_id))}</layername>"
        f'<provider encoding="UTF-8">{provider}</provider></maplayer>'
    )


def _tree_layer(ws: Workspace, name: str, title: str, *, spatial: bool = True) -> str:
    source, provider = _source(ws, name, spatial=spatial)
    checked = "Qt::Unchecked" if name in HIDDEN else "Qt::Checked"
    return (
        f'<layer-tree-layer id="{_layer_id(name)}" name={quoteattr(title)} '
        f'providerKey="{provider}" source={quoteattr(source)} checked="{checked}" '
        'expanded="1" legend_exp=""><customproperties/></layer-tree-layer>'
    )


def qgis_project_xml(ws: Workspace, *, run_id: str | None = None) -> str:
    """Return the project document (``.qgs``) of *ws*.

    Parameters
    ----------
    ws : Workspace
        The workspace the layers point at.
    run_id : str, optional
        The run whose outcomes colour the key projects (joined from ``allocations``);
        default: whichever run is the latest when QGIS reads the table (committed
        first, then drafts; never reverted ones).

    Returns
    -------
    str
    """
    tree = []
    for title, names, _shown in GROUPS:
        layers = "".join(_tree_layer(ws, n, LAYER_TITLES[n]) for n in names)
        tree.append(
            f'<layer-tree-group name={quoteattr(title)} checked="Qt::Checked" expanded="1">'
            f"<customproperties/>{layers}</layer-tree-group>"
        )
    source, provider = _source(ws, "allocations", spatial=False, sql=_run_filter(ws, run_id))
    tree.append(
        '<layer-tree-group name="表格 Tables" checked="Qt::Checked" expanded="0">'
        f'<customproperties/><layer-tree-layer id="{_layer_id("allocations")}" '
        f"name={quoteattr(_allocations_title(run_id))} "
        f"providerKey={quoteattr(provider)} source={quoteattr(source)} "
        'checked="Qt::Checked" expanded="0"><customproperties/></layer-tree-layer>'
        "</layer-tree-group>"
    )
    # the allocations first: the projects' join needs its layer when QGIS resolves it
    maplayers = [_allocations_layer(ws, run_id)]
    maplayers += [_maplayer(ws, n) for _, names, _ in GROUPS for n in names]
    return (
        "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
        f'<qgis projectname="landquota" version="3.22.16">'
        "<title>landquota 建设用地指标 workspace</title>"
        f"<projectCrs>{_srs()}</projectCrs>"
        f"<layer-tree-group><customproperties/>{''.join(tree)}"
        '<custom-order enabled="0"/></layer-tree-group>'
        f"<projectlayers>{''.join(maplayers)}</projectlayers>"
        '<properties><Paths><Absolute type="bool">false</Absolute></Paths></properties>'
        "</qgis>\n"
    )


def _qgz(xml: str) -> bytes:
    """Return the project as QGIS's zipped ``.qgz``: one ``.qgs`` entry, fixed date (same bytes)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        info = zipfile.ZipInfo(f"{PROJECT_NAME}.qgs", date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        z.writestr(info, xml.encode("utf-8"))
    return out.getvalue()


def project_uri(ws: Workspace) -> str:
    """Return the URI QGIS opens the stored project with (no password in it).

    Parameters
    ----------
    ws : Workspace

    Returns
    -------
    str
        ``geopackage:/abs/path.gpkg?projectName=landquota`` or
        ``postgresql://user@host:port?dbname=…&schema=…&project=landquota``.
    """
    if ws.kind == "gpkg":
        path = cast("GpkgWorkspace", ws).path.resolve()
        return f"geopackage:{path}?projectName={PROJECT_NAME}"
    pws = cast("PostgisWorkspace", ws)
    url = pws.engine.url
    user = f"{url.username}@" if url.username else ""
    host = f"{url.host or ''}" + (f":{url.port}" if url.port else "")
    query = [f"dbname={url.database}"] if url.database else []
    if url.query.get("service"):
        query.insert(0, f"service={url.query['service']}")
    query += ["sslmode=disable", f"schema={pws.schema}", f"project={PROJECT_NAME}"]
    return f"postgresql://{user}{host}?{'&'.join(query)}"


def write_qgis_project(ws: Workspace, *, run_id: str | None = None) -> str:
    """Store the QGIS project in the workspace (replacing landquota's earlier one).

    Parameters
    ----------
    ws : Workspace
        A GeoPackage or PostGIS workspace.
    run_id : str, optional
        A fixed run whose outcomes colour the key projects; default: the latest
        committed run, else the latest draft, as QGIS finds them each time it reads
        the workspace (the choice of the map and the report).

    Returns
    -------
    str
        The URI QGIS opens the project with (:func:`project_uri`).
    """
    content = _qgz(qgis_project_xml(ws, run_id=run_id))
    metadata = json.dumps(
        {
            "last_modified_time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
            "last_modified_user": "landquota",
        }
    )
    if ws.kind == "gpkg":
        gws = cast("GpkgWorkspace", ws)
        with gws._tx() as con:
            # QGIS's own definition (QgsGeoPackageProjectStorage); content is hex text.
            con.execute(
                "CREATE TABLE IF NOT EXISTS qgis_projects"
                "(name TEXT PRIMARY KEY, metadata BLOB, content BLOB)"
            )
            con.execute(
                "INSERT INTO qgis_projects (name, metadata, content) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET metadata = excluded.metadata, "
                "content = excluded.content",
                (PROJECT_NAME, metadata, content.hex()),
            )
        return project_uri(ws)
    import sqlalchemy as sa

    pws = cast("PostgisWorkspace", ws)
    with pws._tx() as pcon:
        table = f'"{pws.schema}".qgis_projects'
        # QGIS's own definition (QgsPostgresProjectStorage).
        pcon.execute(
            sa.text(
                f"CREATE TABLE IF NOT EXISTS {table} "
                "(name TEXT PRIMARY KEY, metadata JSONB, content BYTEA)"
            )
        )
        pcon.execute(
            sa.text(
                f"INSERT INTO {table} (name, metadata, content) VALUES (:n, CAST(:m AS jsonb), :c) "
                "ON CONFLICT (name) DO UPDATE SET metadata = excluded.metadata, "
                "content = excluded.content"
            ),
            {"n": PROJECT_NAME, "m": metadata, "c": content},
        )
    return project_uri(ws)

"""One settings object with validation and environment overrides.

``LANDQUOTA_DB`` (workspace: a ``.gpkg`` path or a ``postgresql://`` URL),
``LANDQUOTA_CRS`` (default source CRS assumed by nothing: it is only offered as
the ``--crs`` default when a user sets it explicitly), ``LANDQUOTA_DATA_DIR``
(where the demo and outputs go) and ``LANDQUOTA_SCHEMA`` (the PostGIS schema).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from landquota.errors import ParameterError

#: Outputs go to a folder of their own, never the repository root (issue 15): the default of
#: ``landquota map`` (cli) and of the import's rejected-rows CSV (intake), created when missing.
OUT_DIR = "out"

__all__ = ["Settings", "get_settings", "mask_secrets", "mask_url"]

# userinfo password of any URL scheme: keep "scheme://user:", mask up to the LAST "@" of
# the token, so that an unencoded "@" in a password is masked too
_URL_PASSWORD = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/?#@\s]*:)\S*@")
# password=… in a query string or a libpq conninfo string, quoted or not
_KV_PASSWORD = re.compile(
    r"(?i)(\b(?:password|passwd|pwd|pgpassword|sslpassword)\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&;]+)"
)


def mask_secrets(text: str) -> str:
    """Return *text* with every database password in it replaced by ``***``.

    Handles URL user-info (``postgresql://ann:s3cret@host``, also with an
    unencoded ``@`` in the password), ``?password=…`` query parameters and
    libpq conninfo strings (``host=db password='s 3'``).

    Examples
    --------
    >>> mask_secrets("postgresql://ann:s3cret@db:5432/land")
    'postgresql://ann:***@db:5432/land'
    >>> mask_secrets("postgresql://ann@db/land?sslmode=require&password=s3cret")
    'postgresql://ann@db/land?sslmode=require&password=***'
    >>> mask_secrets("host=db user=ann password='a b'")
    'host=db user=ann password=***'
    """
    text = _URL_PASSWORD.sub(r"\1***@", text)
    return _KV_PASSWORD.sub(r"\1***", text)


_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def mask_url(url: str) -> str:
    """Return *url* with any password replaced by ``***``.

    Examples
    --------
    >>> mask_url("postgresql://ann:s3cret@db:5432/land")
    'postgresql://ann:***@db:5432/land'
    >>> mask_url("demo.gpkg")
    'demo.gpkg'
    """
    return mask_secrets(url)  # also ?password=… and conninfo strings


@dataclass(frozen=True)
class Settings:
    """Package settings.

    Parameters
    ----------
    db : str
        Default workspace: a GeoPackage path or a ``postgresql://`` URL.
    crs : str or None
        Default source CRS for imports without one (``EPSG:4547`` say). ``None``
        means such data are refused, never guessed.
    data_dir : Path
        Folder for the demo workspace and default outputs.
    pg_schema : str
        PostgreSQL schema that holds a PostGIS workspace.
    """

    db: str = field(default_factory=lambda: str(Path("gis_data") / "yangshan_demo.gpkg"))
    crs: str | None = None
    data_dir: Path = Path("gis_data")
    pg_schema: str = "landquota"

    def __post_init__(self) -> None:
        if not _SCHEMA_RE.match(self.pg_schema):
            raise ParameterError(
                f"pg_schema={self.pg_schema!r} is not a plain lower-case SQL identifier; "
                "use letters, digits and underscores, starting with a letter (e.g. 'landquota')"
            )
        if self.crs is not None:
            from pyproj import CRS
            from pyproj.exceptions import CRSError as _PyprojCRSError

            try:
                CRS.from_user_input(self.crs)
            except _PyprojCRSError as exc:
                raise ParameterError(
                    f"crs={self.crs!r} is not a CRS PROJ knows; give e.g. 'EPSG:4547'"
                ) from exc

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """Build settings from ``LANDQUOTA_*`` environment variables."""
        env = os.environ if environ is None else environ
        base = cls()
        data_dir = Path(env.get("LANDQUOTA_DATA_DIR", str(base.data_dir)))
        db = env.get("LANDQUOTA_DB") or str(data_dir / "yangshan_demo.gpkg")
        return cls(
            db=db,
            crs=env.get("LANDQUOTA_CRS") or None,
            data_dir=data_dir,
            pg_schema=env.get("LANDQUOTA_SCHEMA", base.pg_schema),
        )

    def with_(self, **changes: object) -> Settings:
        """Return a copy with *changes* applied (validated again)."""
        names = {f.name for f in fields(self)}
        bad = sorted(set(changes) - names)
        if bad:
            raise ParameterError(f"unknown setting(s) {bad}; settings are {sorted(names)}")
        return replace(self, **changes)  # type: ignore[arg-type]

    def __repr__(self) -> str:  # never print a password
        return (
            f"Settings(db={mask_url(self.db)!r}, crs={self.crs!r}, "
            f"data_dir={str(self.data_dir)!r}, pg_schema={self.pg_schema!r})"
        )


def get_settings() -> Settings:
    """Return the settings in force (environment read at each call)."""
    return Settings.from_env()

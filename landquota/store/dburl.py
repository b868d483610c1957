"""Database URLs without secrets on the command line (masking of any that slip in: settings).

A password typed into ``--db postgresql://ann:s3cret@host/db`` ends up in the
shell history and in ``ps`` output for every user of the machine. Three ways
keep it off the command line, all handled by libpq itself:

* ``LANDQUOTA_DB`` — the workspace URL from the environment (``--db`` omitted);
* a service file — ``--db service:NAME`` (or ``postgresql://@/?service=NAME``)
  reads host, port, database, user and password from section ``[NAME]`` of
  ``pg_service.conf`` (``PGSERVICEFILE``, else ``~/.pg_service.conf``);
* a password file — ``~/.pgpass`` (or ``PGPASSFILE``), mode 0600, supplies the
  password for a URL without one; ``PGPASSWORD`` works too but is visible to
  the same user's processes.

SQLAlchemy's psycopg dialect passes URL query parameters such as ``service``
through to ``psycopg.connect``, so these work end to end.
"""

from __future__ import annotations

import re

from landquota.errors import ParameterError
from landquota.settings import get_settings

__all__ = ["resolve_db"]

_SERVICE_RE = re.compile(r"^service:(?P<name>[A-Za-z0-9_.\-]+)(?:\?(?P<query>[^#\s]*))?$")

def resolve_db(value: str | None) -> str:
    """Return the workspace target for a ``--db`` value.

    Parameters
    ----------
    value : str or None
        ``None`` or ``""``: the ``LANDQUOTA_DB`` environment variable (else the
        default demo GeoPackage). ``service:NAME`` or ``service:NAME?schema=S``:
        the PostgreSQL service ``NAME`` of ``pg_service.conf``, returned as
        ``postgresql://@/?service=NAME`` (plus the query; no host, user or
        database in the URL: libpq takes them from the service). Anything else — a
        ``.gpkg`` path or a ``postgresql://`` URL — is returned unchanged.

    Raises
    ------
    ParameterError
        ``service:`` with an empty or malformed name.

    Examples
    --------
    >>> resolve_db("service:bureau")
    'postgresql://@/?service=bureau'
    >>> resolve_db("service:bureau?schema=ws2014")
    'postgresql://@/?service=bureau&schema=ws2014'
    >>> resolve_db("demo.gpkg")
    'demo.gpkg'
    """
    if not value:
        return get_settings().db
    if value.startswith("service:"):
        m = _SERVICE_RE.match(value)
        if m is None:
            raise ParameterError(
                f"--db {value!r}: a service is given as service:NAME (letters, digits, '_', "
                "'.', '-'), optionally with ?schema=NAME, e.g. service:bureau?schema=landquota; "
                "NAME is a [section] of pg_service.conf (PGSERVICEFILE)"
            )
        query = m.group("query")
        # "//@/" rather than "///": an empty but present user-info keeps the "//" through
        # urllib's urlunsplit (which drops it for an empty host) and means "none" to libpq
        return f"postgresql://@/?service={m.group('name')}" + (f"&{query}" if query else "")
    return value

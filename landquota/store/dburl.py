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

A libpq connection string (``host=db dbname=land user=ann password=…``, with an
optional ``schema=NAME`` of landquota's own) is recognised too
(:func:`conninfo_to_url`): libpq parses it, and it becomes the equivalent URL
(``postgresql://@/?host=db&dbname=land&…``), so it is never mistaken for a
GeoPackage path and its password is masked like any other.
"""

from __future__ import annotations

import re
from urllib.parse import urlencode

from landquota.errors import ParameterError
from landquota.settings import get_settings, mask_secrets

__all__ = ["conninfo_to_url", "resolve_db"]

# "keyword = value" at the start: a libpq conninfo string, not a path or a URL
_CONNINFO_START = re.compile(r"^\s*[A-Za-z_][A-Za-z0-9_]*\s*=")
# landquota's own schema=NAME (not a libpq keyword): taken out before libpq parses the rest
_SCHEMA_KV = re.compile(r"(?:^|\s)schema\s*=\s*(?P<q>'?)(?P<name>[^'\s]*)(?P=q)(?=\s|$)")

_SERVICE_RE = re.compile(r"^service:(?P<name>[A-Za-z0-9_.\-]+)(?:\?(?P<query>[^#\s]*))?$")

def conninfo_to_url(value: str) -> str | None:
    """Return the URL for a libpq connection string, or None if *value* is not one.

    ``schema=NAME`` picks the workspace schema, as ``?schema=`` does in a URL.
    Everything else is parsed by libpq (through psycopg), so quoting and escapes
    follow libpq's rules and an unknown keyword is refused.

    Raises
    ------
    ParameterError
        It starts like a connection string but libpq cannot parse it (the
        message masks any password).

    Examples
    --------
    >>> conninfo_to_url("host=db dbname=land user=ann password=s3cret schema=ws2014")
    'postgresql://@/?host=db&dbname=land&user=ann&password=s3cret&schema=ws2014'
    >>> conninfo_to_url("demo.gpkg") is None
    True
    """
    if "://" in value or not _CONNINFO_START.match(value):
        return None
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    schema = None
    rest = value
    m = _SCHEMA_KV.search(value)
    if m is not None:
        schema = m.group("name")
        rest = value[: m.start()] + " " + value[m.end() :]
    try:
        params = conninfo_to_dict(rest)
    except ProgrammingError as exc:
        if value.lower().endswith(".gpkg"):
            return None  # a file name with "=" in it
        raise ParameterError(
            f"--db \"{mask_secrets(value)}\" looks like a libpq connection string, but libpq cannot "
            f"read it ({mask_secrets(str(exc).strip())}); write it as host=… port=… dbname=… user=… "
            "(schema=NAME picks the schema), or give a postgresql:// URL"
        ) from None
    order = ("host", "hostaddr", "port", "dbname", "user", "password")
    ordered = sorted(params.items(), key=lambda kv: (order.index(kv[0]) if kv[0] in order else len(order), kv[0]))
    query = [(k, str(v)) for k, v in ordered] + ([("schema", schema)] if schema else [])
    # "//@/" as for services: an empty, present user-info keeps "//" through urlunsplit
    return "postgresql://@/?" + urlencode(query)


def resolve_db(value: str | None) -> str:
    """Return the workspace target for a ``--db`` value.

    Parameters
    ----------
    value : str or None
        ``None`` or ``""``: the ``LANDQUOTA_DB`` environment variable (else the
        default demo GeoPackage). ``service:NAME`` or ``service:NAME?schema=S``:
        the PostgreSQL service ``NAME`` of ``pg_service.conf``, returned as
        ``postgresql://@/?service=NAME`` (plus the query; no host, user or
        database in the URL: libpq takes them from the service). A libpq
        connection string (``host=… dbname=…``): its URL (:func:`conninfo_to_url`).
        Anything else — a ``.gpkg`` path or a ``postgresql://`` URL — is returned
        unchanged.

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
    return conninfo_to_url(value) or value

"""Schema migrations: upgrade a workspace made by an older landquota in place.

Each step ``MIGRATIONS[n]`` takes a workspace from version ``n`` to ``n + 1``
on either backend and must be safe to run inside the backend's transaction.
Version 1 is the first released schema, so there are no steps yet; the
mechanism is exercised by the tests with a step of their own, and the first
real change of a table adds its step here (and bumps ``SCHEMA_VERSION``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from landquota.errors import SchemaVersionError
from landquota.schema import SCHEMA_VERSION

if TYPE_CHECKING:
    from landquota.workspace import Workspace

__all__ = ["MIGRATIONS", "upgrade"]

MIGRATIONS: dict[int, Callable[[Workspace], None]] = {}


def upgrade(ws: Workspace, found: int) -> int:
    """Apply every step from version *found* to the current one; return the new version."""
    version = found
    while version < SCHEMA_VERSION:
        step = MIGRATIONS.get(version)
        if step is None:
            raise SchemaVersionError(
                f"no migration from schema version {version} to {version + 1}; this workspace "
                "predates the first release: export its layers with ogr2ogr and re-import them "
                "into a new workspace (landquota init, then landquota import)"
            )
        step(ws)
        version += 1
        ws.set_meta("schema_version", str(version))
    return version

"""``landquota verify``: the ledger's hash chain checked on one consistent snapshot.

:func:`verify_workspace` reads the snapshot (:func:`landquota.store.backup.read_snapshot`,
the same reading a backup does) and hands it to
:func:`landquota.store.chain.verify_frames`. Kept apart from the chain itself,
which both backends use at write time and so must not import the backup.
"""

from __future__ import annotations

from typing import Any

from landquota.store.backup import read_snapshot
from landquota.store.chain import VERIFY_LAYERS, VerifyReport, parse_head, verify_frames

__all__ = ["verify_workspace", "write_stamps"]


def write_stamps(ws: Any) -> dict[str, str]:
    """``{entry_id: time}`` a GeoPackage's own trigger stamped on each ledger insert."""
    if ws.kind != "gpkg":
        return {}
    rows = ws._con.execute(
        "SELECT entry_id, max(written_at) FROM landquota_writes GROUP BY entry_id"
    ).fetchall()
    return {str(k): str(v) for k, v in rows}


def verify_workspace(ws: Any, *, head: str | None = None) -> VerifyReport:
    """:func:`verify_frames` on one consistent snapshot of a workspace (``landquota verify``)."""
    if head is not None:
        parse_head(head)  # a malformed head is a usage error, before any reading
    frames, _meta = read_snapshot(ws, VERIFY_LAYERS)
    return verify_frames(frames, head=head, write_stamps=write_stamps(ws))

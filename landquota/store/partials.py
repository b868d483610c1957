"""Temporary files beside a GeoPackage, and cleaning up those a killed process left.

A new GeoPackage (``init``, ``export``, ``restore``) is built under a temporary
name in the destination folder — ``.NAME.PID.tmp`` or ``.NAME.PID.partial``, plus
SQLite's ``-journal`` while it is written — and renamed into place when whole, so
a reader never sees half a file. A process killed with SIGKILL cannot remove its
temporary file, so whoever next opens or writes a GeoPackage in that folder
removes the ones whose process (the PID in the name) no longer runs
(issue 12). A file of a process that still runs is never touched.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["clean_stale", "temp_name"]

_PATTERN = re.compile(r"^\..+\.(?P<pid>\d+)\.(?:partial|tmp)(?:-journal|-wal|-shm)?$")


def temp_name(path: Path, kind: str = "partial") -> Path:
    """Return the temporary name under which *path* is built by this process."""
    return path.with_name(f".{path.name}.{os.getpid()}.{kind}")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it runs
        return True
    except OSError:
        return True  # cannot tell: keep the file
    return True


def clean_stale(folder: Path) -> list[Path]:
    """Remove the temporary files of dead processes in *folder*; return what was removed.

    Errors (a read-only folder, a file removed meanwhile) are ignored: cleaning is a
    courtesy and must never make an open or a write fail.
    """
    removed: list[Path] = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        m = _PATTERN.match(name)
        if m is None or _alive(int(m.group("pid"))):
            continue
        p = folder / name
        try:
            p.unlink()
        except OSError:
            continue
        removed.append(p)
    return removed

"""Temporary files beside a GeoPackage, and cleaning up those a killed process left.

A new GeoPackage (``init``, ``export``, ``restore``) is built under a temporary
name in the destination folder — ``.NAME.lq-HOST-PID.tmp`` or
``.NAME.lq-HOST-PID.partial``, plus SQLite's ``-journal`` while it is written —
and renamed into place when whole, so a reader never sees half a file. A process
killed with SIGKILL cannot remove its temporary file, so whoever next opens or
writes a GeoPackage in that folder removes the ones whose process (the PID in the
name) no longer runs on this machine (issue 12). A file of a process that still
runs is never touched; on a shared network folder, another machine's file is
removed only once it has not changed for a day (its PID means nothing here).
"""

from __future__ import annotations

import os
import re
import socket
import time
from pathlib import Path

__all__ = ["clean_stale", "temp_name"]

# ".NAME.lq-HOST-PID.partial" (and the ".NAME.PID.partial" of earlier versions)
_PATTERN = re.compile(
    r"^\..+\.(?:lq-(?P<host>[A-Za-z0-9-]*)-)?(?P<pid>\d+)\.(?:partial|tmp)(?:-journal|-wal|-shm)?$"
)
#: Seconds after which another machine's temporary file is taken for abandoned.
FOREIGN_AGE_S = 24 * 3600


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:63]


def temp_name(path: Path, kind: str = "partial") -> Path:
    """Return the temporary name under which *path* is built by this process."""
    return path.with_name(f".{path.name}.lq-{_host()}-{os.getpid()}.{kind}")


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
    here = _host()
    for name in names:
        m = _PATTERN.match(name)
        if m is None:
            continue
        p = folder / name
        host = m.group("host")
        try:
            if host is None or host == here:
                if _alive(int(m.group("pid"))):
                    continue
            elif time.time() - p.stat().st_mtime < FOREIGN_AGE_S:
                continue
            p.unlink()
        except OSError:
            continue
        removed.append(p)
    return removed

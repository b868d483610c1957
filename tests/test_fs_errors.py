"""A read-only or full file system (issue 12, item 6): one line naming the file and the cause,
exit status 2, nothing changed, and the GeoPackage passes ``PRAGMA integrity_check``. No stale
``.partial`` files are left beside a workspace after a killed write.

Read-only: the file (0444) or its folder (0555). Root ignores permissions, so as root the
commands run under ``setpriv`` without CAP_DAC_OVERRIDE, as an ordinary login would.
Full disk: the child's RLIMIT_FSIZE with SIGXFSZ ignored, so writes past the limit fail
with EFBIG as on a full disk — no mounts needed.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import geopandas as gpd
import pytest
import shapely
from sample import sample_layers

from landquota.store.api import open_workspace
from landquota.store.partials import FOREIGN_AGE_S, clean_stale, temp_name

ROOT = Path(__file__).resolve().parents[1]

#: As root, drop the capabilities that let root write read-only files.
_AS_USER = (["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
            if os.geteuid() == 0 and shutil.which("setpriv") else [])

WRITERS = [
    ("import", ["import", "{src}", "--layer", "parcels", "--no-progress"]),
    ("validate", ["validate"]),
    ("allocate --commit", ["allocate", "--as-of", "2014-05-01", "--commit", "--force"]),
]


def _run(args: list[str], *, prefix: list[str] | None = None,
         preexec: Callable[[], None] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*(prefix or []), sys.executable, "-m", "landquota", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=300, preexec_fn=preexec)


def _state(path: Path) -> tuple[str, dict[str, int], bytes]:
    con = sqlite3.connect(path)
    try:
        (check,) = con.execute("PRAGMA integrity_check").fetchone()
    finally:
        con.close()
    with open_workspace(path) as ws:
        counts = ws.layer_counts()
    return check, counts, path.read_bytes()


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A small workspace in its own folder, and a 3,000-patch source that makes it grow."""
    folder = tmp_path / "ws"
    folder.mkdir()
    path = folder / "county.gpkg"
    with open_workspace(path, create=True) as ws:
        ws.write_layers({k: v for k, v in sample_layers().items()
                         if k not in ("allocation_runs", "allocations", "validation_errors")})
    n = 3_000
    src = tmp_path / "many.gpkg"
    gpd.GeoDataFrame(
        {"BSM": [f"B{i}" for i in range(n)], "DLBM": ["0101"] * n},
        geometry=[shapely.box(112.6 + i * 1e-5, 24.5, 112.6 + (i + 1) * 1e-5, 24.50001) for i in range(n)],
        crs=4490,
    ).to_file(src)
    yield path, src
    for p in (folder, path):
        p.chmod(0o755 if p.is_dir() else 0o644)


def _one_line(r: subprocess.CompletedProcess[str], path: Path, cause: str) -> None:
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert f"cannot write {str(path)!r}" in lines[0] and cause in lines[0], lines[0]


@pytest.mark.skipif(os.geteuid() == 0 and not _AS_USER, reason="root without setpriv ignores file modes")
@pytest.mark.parametrize(
    ("what", "name", "args"),
    [("file", *w) for w in WRITERS] + [("folder", *WRITERS[1])],
    ids=[f"file-{w[0]}" for w in WRITERS] + [f"folder-{WRITERS[1][0]}"],
)
def test_read_only_geopackage(workspace: tuple[Path, Path], what: str, name: str, args: list[str]) -> None:
    path, src = workspace
    before = _state(path)
    target = path if what == "file" else path.parent
    target.chmod(0o444 if what == "file" else 0o555)
    r = _run([a.format(src=src) for a in args] + ["--db", str(path)], prefix=_AS_USER)
    target.chmod(0o644 if what == "file" else 0o755)
    _one_line(r, path, "read-only")
    assert _state(path) == before  # integrity_check ok, same rows, same bytes


def _fsize(limit: int) -> Callable[[], None]:
    def pre() -> None:  # in the child: a write past *limit* bytes fails with EFBIG, no signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return pre


@pytest.mark.parametrize(
    ("room", "name", "args"),
    [("none", *WRITERS[1])] + [("no growth", *w) for w in (WRITERS[0], WRITERS[2])],
    ids=[f"none-{WRITERS[1][0]}"] + [f"no growth-{w[0]}" for w in (WRITERS[0], WRITERS[2])],
)
def test_full_disk(workspace: tuple[Path, Path], room: str, name: str, args: list[str]) -> None:
    """No room at all (not even for SQLite's journal), or no room for the file to grow."""
    path, src = workspace
    before = _state(path)
    limit = 0 if room == "none" else path.stat().st_size
    r = _run([a.format(src=src) for a in args] + ["--db", str(path)] + ["--append"] * (name == "import"),
             preexec=_fsize(limit))
    _one_line(r, path, "the disk refused the write")
    assert _state(path) == before
    assert not [p.name for p in path.parent.iterdir() if p != path]  # no journal, no temporary file


@pytest.mark.slow
def test_killed_export_leaves_no_partial_file_for_long(workspace: tuple[Path, Path], tmp_path: Path) -> None:
    """SIGKILL during an export leaves `.NAME.PID.partial`; the next open in that folder removes it."""
    path, src = workspace
    with open_workspace(path) as ws:  # a larger workspace, so the export takes a moment
        from landquota.intake.importer import import_layer

        import_layer(src, ws, layer="parcels", allow_shrink=True)
    out = path.parent / "backup.gpkg"
    proc = subprocess.Popen([sys.executable, "-m", "landquota", "export", "--db", str(path), "--out", str(out)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    partial = out.with_name(temp_name(out).name.replace(f"-{os.getpid()}.", f"-{proc.pid}."))
    deadline = time.monotonic() + 120
    while not partial.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    if not partial.exists():
        proc.kill()
        proc.wait()
        pytest.fail("the export finished before it could be killed: make the workspace larger")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert partial.exists() and not out.exists()  # what SIGKILL leaves
    with open_workspace(path) as ws:  # the next open in the folder cleans up
        assert ws.layer_counts()["parcels"] == 3_000
    assert not [p.name for p in path.parent.iterdir() if ".partial" in p.name]
    assert not out.exists()


def test_only_dead_processes_files_are_removed(tmp_path: Path) -> None:
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        here = temp_name(tmp_path / "a.gpkg").name.rsplit("-", 1)[0]  # ".a.gpkg.lq-HOST"
        names = [f"{here}-{dead.pid}.partial", f"{here}-{dead.pid}.partial-journal",
                 f".b.gpkg.{dead.pid}.tmp",  # the name of earlier versions
                 ".c.gpkg.lq-otherhost-1.partial",  # another machine's, abandoned long ago
                 f"{here}-{alive.pid}.partial", f"{here}-{os.getpid()}.partial",
                 ".d.gpkg.lq-otherhost-2.partial",  # another machine's, being written
                 "a.gpkg", "notes.partial"]
        for n in names:
            (tmp_path / n).write_bytes(b"x")
        old = time.time() - FOREIGN_AGE_S - 60
        os.utime(tmp_path / names[3], (old, old))
        removed = sorted(p.name for p in clean_stale(tmp_path))
        assert removed == sorted(names[:4])
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[4:])
    finally:
        alive.kill()
        alive.wait()

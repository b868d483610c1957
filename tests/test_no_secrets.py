"""No password in any output of a run made with a password URL (issue 8, docs/security.md).

A login role ``lq_pw_<random>`` with the password ``S3cr3t-<random>`` gets a workspace
schema of its own on the test PostGIS (trust authentication on 127.0.0.1 lets it in
whatever the password, which is all this test needs: the password only has to travel
through every code path). The whole life of a workspace then runs through the CLI in
subprocesses — half with ``--db URL`` on the command line, half with ``LANDQUOTA_DB`` —
and every byte that comes out is searched for the password: stdout and stderr of every
command (successes and failures), every file written (XLSX members unzipped, every text
and blob value of the GeoPackage backup read with sqlite3, CSV, HTML, PNG), and the
database's own records (every row of every table of the workspace schema as text, the
run records' ``params`` included).
"""

from __future__ import annotations

import io
import os
import sqlite3
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from landquota.store.api import open_workspace
from tests.runworld import world

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.postgis


def _sa(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


@pytest.fixture
def pw_login(pg_server: str) -> Iterator[tuple[str, str, str]]:
    """(password URL of a new workspace schema, the password, the schema); dropped afterwards."""
    tag = uuid.uuid4().hex[:10]
    login, password, schema = f"lq_pw_{tag}", f"S3cr3t-{tag}", f"nosecret_{tag}"
    eng = sa.create_engine(_sa(pg_server))
    db = sa.engine.make_url(_sa(pg_server)).database
    with eng.begin() as c:
        c.execute(sa.text(f"CREATE ROLE {login} LOGIN PASSWORD '{password}'"))
        c.execute(sa.text(f'GRANT CREATE ON DATABASE "{db}" TO {login}'))
    host = pg_server.split("@", 1)[1].split("?", 1)[0]  # 127.0.0.1:55432/landquota_test
    try:
        yield f"postgresql://{login}:{password}@{host}?schema={schema}", password, schema
    finally:
        with eng.begin() as c:
            for s in (schema, f"{schema}_r"):
                c.execute(sa.text(f'DROP SCHEMA IF EXISTS "{s}" CASCADE'))
            c.execute(sa.text(f"DROP OWNED BY {login} CASCADE"))
            c.execute(sa.text(f"DROP ROLE {login}"))
        eng.dispose()


def _lq(*argv: str, db: str | None = None, env_db: str | None = None) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if k != "LANDQUOTA_DB"}
    if env_db is not None:
        env["LANDQUOTA_DB"] = env_db
    cmd = [sys.executable, "-m", "landquota", *argv] + (["--db", db] if db else [])
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    return p.returncode, p.stdout, p.stderr


def _texts_of_file(path: Path) -> Iterator[tuple[str, bytes]]:
    """Every piece of *path* a reader could see: the raw bytes, XLSX members, GPKG values."""
    data = path.read_bytes()
    yield str(path), data
    if path.suffix == ".xlsx":
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            for name in z.namelist():
                yield f"{path}!{name}", z.read(name)
    if path.suffix == ".gpkg":
        con = sqlite3.connect(path)
        try:
            names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            for t in names:
                for row in con.execute(f'SELECT * FROM "{t}"'):
                    for v in row:
                        if isinstance(v, str):
                            yield f"{path}!{t}", v.encode()
                        elif isinstance(v, bytes):
                            yield f"{path}!{t}", v
        finally:
            con.close()


def _db_texts(url: str, schemas: list[str]) -> Iterator[tuple[str, bytes]]:
    """Every row of every table of the workspace schemas, as JSON text."""
    eng = sa.create_engine(_sa(url))
    try:
        with eng.connect() as c:
            for schema in schemas:
                q = "SELECT table_name FROM information_schema.tables WHERE table_schema = :s"
                for (t,) in c.execute(sa.text(q), {"s": schema}):
                    rows = c.execute(
                        sa.text(f'SELECT row_to_json(x)::text FROM "{schema}"."{t}" x')
                    )
                    for (j,) in rows:
                        yield f"{schema}.{t}", j.encode()
    finally:
        eng.dispose()


def _leaks(secret: str, pieces: Iterator[tuple[str, bytes]]) -> list[str]:
    s = secret.encode()
    return [where for where, data in pieces if s in data]


def test_the_grep_finds_a_password_where_there_is_one(tmp_path: Path) -> None:
    """The search below could fail: it finds a password in a CSV, an XLSX member and a GPKG value."""
    secret = "S3cr3t-control"
    (tmp_path / "a.csv").write_text(f"x,{secret}\n")
    with zipfile.ZipFile(tmp_path / "b.xlsx", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("xl/sharedStrings.xml", f"<t>{secret}</t>")
    con = sqlite3.connect(tmp_path / "c.gpkg")
    con.execute("CREATE TABLE t (v TEXT)")
    con.execute("INSERT INTO t VALUES (?)", (secret.encode("utf-16"),))  # raw bytes miss it…
    con.execute("INSERT INTO t VALUES (?)", (secret,))
    con.commit()
    con.close()
    found = _leaks(secret, (p for f in sorted(tmp_path.iterdir()) for p in _texts_of_file(f)))
    assert any(w.endswith("a.csv") for w in found)
    assert any("b.xlsx!xl/sharedStrings.xml" in w for w in found)  # compressed: raw bytes miss it
    assert any(w.endswith("c.gpkg!t") for w in found)


def test_no_password_in_any_output(
    pw_login: tuple[str, str, str], pg_server: str, tmp_path: Path
) -> None:
    url, secret, schema = pw_login
    out = tmp_path / "out"
    out.mkdir()
    outputs: list[tuple[str, bytes]] = []

    def run(expect: int, *argv: str, cli_db: bool) -> str:
        """Run one command with the URL on the command line or in LANDQUOTA_DB."""
        code, so, se = _lq(*argv, db=url if cli_db else None, env_db=None if cli_db else url)
        outputs.extend([(f"{argv[0]} stdout", so.encode()), (f"{argv[0]} stderr", se.encode())])
        assert code == expect, (argv, code, se[-2000:])
        assert "Traceback" not in se
        return so

    run(0, "init", cli_db=True)
    with open_workspace(url) as w:  # the layers come in through the API
        w.write_layers(world())
    run(0, "info", cli_db=False)
    run(0, "allocate", "--as-of", "2014-05-01", "--out", str(out / "x.csv"), cli_db=False)
    run(0, "allocate", "--as-of", "2014-05-01", "--out", str(out / "x.xlsx"), cli_db=True)
    with open_workspace(url) as w:
        run_id = str(w.read_layer("allocation_runs")["run_id"].iloc[0])
    run(0, "commit", run_id, cli_db=False)
    run(0, "ledger", "--out", str(out / "l.csv"), cli_db=True)
    run(0, "idle", "--as-of", "2014-05-01", "--out", str(out / "i.csv"), cli_db=False)
    run(0, "report", "--as-of", "2014-05-01", "--out", str(out / "r.xlsx"), cli_db=True)
    run(0, "report", "--format", "csv", "--out", str(out / "r_csv"), cli_db=False)
    run(0, "map", "--out", str(out / "m.html"), cli_db=True)
    run(0, "export", "--out", str(out / "b.gpkg"), cli_db=False)
    run(0, "allocate", "--as-of", "2014-05-02", "--mode", "optimal", cli_db=True)
    # failures: a wrong run id, a bad date, a missing schema, a refused revert, a dead server
    run(2, "commit", "no-such-run", cli_db=True)
    run(2, "revert", "no-such-run", cli_db=False)
    run(2, "ledger", "--as-of", "2014-02-30", cli_db=False)  # a usage error: status 2
    run(2, "commit", run_id, cli_db=True)  # already committed
    code, so, se = _lq("info", db=url.replace(f"schema={schema}", "schema=nosuchschema"))
    outputs.extend([("info missing schema", (so + se).encode())])
    assert code == 2 and "nosuchschema" in se
    dead = url.replace("127.0.0.1:55432", "127.0.0.1:1")
    code, so, se = _lq("info", env_db=dead)
    outputs.extend([("info dead server", (so + se).encode())])
    assert code == 2 and "***" in se
    # --debug shows the traceback of a failure: the password must not be in it either
    code, so, se = _lq("--debug", "commit", "no-such-run", db=url)
    outputs.extend([("--debug commit", (so + se).encode())])
    assert code == 1 and "Traceback" in se and "AllocationError" in se
    # restore the backup into a second schema (its record of where it came from is masked)
    code, so, se = _lq(
        "restore", "--from", str(out / "b.gpkg"), db=url.replace(schema, f"{schema}_r")
    )
    outputs.extend([("restore", (so + se).encode())])
    assert code == 0, se

    files = sorted(p for p in out.rglob("*") if p.is_file())
    names = {p.name for p in files}
    assert {"x.csv", "x.xlsx", "l.csv", "i.csv", "r.xlsx", "m.html", "b.gpkg"} <= names
    assert any(p.parent.name == "r_csv" for p in files)
    # the URL was shown, masked, so the search below looks where a password would be
    assert any(b":***@127.0.0.1" in d for _, d in outputs)
    pieces = [*outputs, *(x for f in files for x in _texts_of_file(f))]
    pieces += list(_db_texts(pg_server, [schema, f"{schema}_r"]))
    # the run records really were searched: params and the login are in there
    runs = [d for w, d in pieces if w.endswith(".allocation_runs")]
    assert runs and all(b'"params"' in d for d in runs)
    assert any(f"lq_pw_{secret.split('-')[1]}".encode() in d for d in runs)
    assert _leaks(secret, iter(pieces)) == []

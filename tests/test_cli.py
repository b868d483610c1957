"""The command line: exit codes, messages without tracebacks or passwords."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from landquota.cli import main


def test_init_then_info(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "w.gpkg"
    assert main(["init", "--db", str(db)]) == 0
    assert "created workspace" in capsys.readouterr().out
    assert main(["info", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "parcels" in out and "new_construction" in out and "亩" in out


def test_init_refuses_to_overwrite_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "w.gpkg"
    assert main(["init", "--db", str(db)]) == 0
    assert main(["init", "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert "--force" in err and "Traceback" not in err
    assert main(["init", "--db", str(db), "--force"]) == 0


def test_missing_workspace_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["info", "--db", str(tmp_path / "nope.gpkg")]) == 2
    assert "landquota init" in capsys.readouterr().err


def test_password_never_printed(capsys: pytest.CaptureFixture[str]) -> None:
    # nothing listens on port 1: the connection error must not echo the password
    assert main(["info", "--db", "postgresql://ann:s3cr3t-pw@127.0.0.1:1/x"]) == 2
    err = capsys.readouterr().err
    assert "s3cr3t-pw" not in err and "ann:***@" in err


def test_bad_date_names_the_option(tmp_path: Path) -> None:
    db = tmp_path / "w.gpkg"
    main(["init", "--db", str(db)])
    with pytest.raises(SystemExit, match="--as-of '2014-13-01' is not a date"):
        main(["info", "--db", str(db), "--as-of", "2014-13-01"])


def test_python_dash_m_and_console_script(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "landquota", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("landquota ")

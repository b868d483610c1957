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


def test_bad_date_names_the_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "w.gpkg"
    main(["init", "--db", str(db)])
    capsys.readouterr()
    assert main(["info", "--db", str(db), "--as-of", "2014-13-01"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("landquota info: 错误 error: --as-of '2014-13-01' is not a calendar date")


def test_python_dash_m_and_console_script(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "landquota", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("landquota ")


def test_idle_return_lapsed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """R9 from the command line: a dry run writes nothing; the return needs a decision; once only."""
    from datetime import date

    from landquota.store.api import open_workspace
    from tests import ruleworld as W

    db = tmp_path / "w.gpkg"
    with open_workspace(db, create=True) as ws:
        ws.write_layer("stock_land", W.stock([W.stock_parcel(
            "U1", (0, 0, 100, 100), kind="approved_unsupplied", approval_batch="B1",
            approval_date="2012-04-29", supply_date=None)]))
    base = ["idle", "--db", str(db), "--as-of", "2014-04-30"]
    assert main([*base, "--return-lapsed", "U1"]) == 2
    assert "--decision" in capsys.readouterr().err
    assert main([*base, "--decision", "D1"]) == 2
    assert "--return-lapsed" in capsys.readouterr().err
    assert main([*base, "--return-lapsed", "U1", "--decision", "阳国土〔2014〕9号", "--dry-run"]) == 0
    assert "would return" in capsys.readouterr().out
    assert main([*base, "--return-lapsed", "U1", "--decision", "阳国土〔2014〕9号"]) == 0
    out = capsys.readouterr().out
    assert "returned (R9): 1" in out and "lapse:U1" in out
    assert main([*base, "--return-lapsed", "U1", "--decision", "阳国土〔2014〕9号"]) == 0
    assert "already returned" in capsys.readouterr().out
    with open_workspace(db) as ws:
        led = ws.read_layer("quota_ledger")
        assert led["entry_id"].tolist() == ["lapse:U1"]
        from landquota.rules.ledger import balances

        assert balances(led, as_of=date(2014, 4, 30)).set_index("pool").loc["new_construction", "balance"] > 9_999


def test_collector_tuned_only_when_run_as_a_program() -> None:
    # a command run as a program freezes the start-up objects and collects less often
    # (fewer walks over them during a 10^6-patch demand); called from Python, nothing changes
    import subprocess
    import sys

    code = (
        "import gc, sys\n"
        "from landquota.cli import main\n"
        "from landquota.cli.main import GC_THRESHOLD0\n"
        "before = gc.get_threshold()\n"
        "try:\n"
        "    main(['info', '--db', sys.argv[1]])\n"
        "except SystemExit:\n"
        "    pass\n"
        "assert gc.get_threshold() == before, gc.get_threshold()\n"
        "sys.argv = ['landquota', 'info', '--db', sys.argv[1]]\n"
        "main()\n"
        "assert gc.get_threshold()[0] == GC_THRESHOLD0 and gc.get_freeze_count() > 0\n"
        "print('ok')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, "/nonexistent/none.gpkg"], capture_output=True, text=True
    )
    assert out.stdout.strip() == "ok", out.stderr

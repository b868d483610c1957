"""A CLI a clerk can read: usage errors, strict dates, tables without NaN/NaT/True/False."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from landquota.cli.main import _COMMANDS, main

RAW = re.compile(r"\b(NaN|NaT|nan|None|True|False|<NA>)\b")


@pytest.mark.parametrize("name", sorted(_COMMANDS))
def test_every_usage_error_exits_2_naming_its_command(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main([name, "--no-such-option"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"landquota {name}: 错误 error:" in err, err


def _with_as_of() -> list[str]:
    import argparse

    from landquota.cli.main import build_parser

    parser = build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sorted(
        n
        for n, p in subs.choices.items()
        if any("--as-of" in a.option_strings for a in p._actions)
    )


def test_a_compact_date_is_refused_by_every_command_that_takes_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "w.gpkg")
    assert main(["init", "--db", db]) == 0
    names = _with_as_of()
    assert {"allocate", "idle", "info", "ledger", "linkage", "map", "report"} <= set(names)
    checked = []
    for name in names:
        capsys.readouterr()
        argv = [name, "--db", db, "--as-of", "20140430"]
        if name == "report":
            argv += ["--out", str(tmp_path / "r.xlsx")]
        try:
            code = main(argv)
        except SystemExit as exc:  # a command with required arguments of its own
            code = exc.code
            if "--as-of" not in capsys.readouterr().err:
                continue
        err = capsys.readouterr().err
        assert code == 2, (name, err)
        assert f"landquota {name}: 错误 error: --as-of '20140430'" in err, err
        checked.append(name)
    assert len(checked) >= 7, checked


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    db = str(tmp_path_factory.mktemp("clerk") / "demo.gpkg")
    assert main(["demo", "--db", db, "--parcels", "2000"]) == 0
    return db


@pytest.mark.slow
def test_linkage_ledger_and_allocate_print_no_raw_values(
    demo_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["linkage", "--db", demo_db, "--as-of", "2014-04-30", "--no-credit"]) == 0
    linkage = capsys.readouterr().out
    assert main(["ledger", "--db", demo_db, "--statement", "2014-01-01", "2014-12-31"]) == 0
    ledger = capsys.readouterr().out
    assert main(["allocate", "--db", demo_db, "--as-of", "2014-04-30"]) == 0
    allocate = capsys.readouterr().out
    for text in (linkage, ledger, allocate):
        assert not RAW.search(text), RAW.search(text)
    # Chinese and English headers, areas in m² with ha and 亩
    assert "项目区" in linkage and "Acceptance" in linkage and "已验收" in linkage  # passed
    assert "m²" in linkage and "ha ·" in linkage and "亩" in linkage
    assert "期末" in ledger and "Closing" in ledger and "kg" in ledger  # grain row: kg, no NaN
    # reasons in Chinese with their counts, no raw codes
    (reasons,) = [line for line in allocate.splitlines() if "原因 reasons" in line]
    assert "×" in reasons and "指标优先保障了更高优先级项目" in reasons
    assert not re.search(r"\b(outranked|insufficient_\w+|site_not_fixed)\b", reasons)


@pytest.mark.slow
def test_demo_says_when_it_reused_the_workspace(
    demo_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["demo", "--db", demo_db]) == 0
    assert "未重建 reused the existing workspace" in capsys.readouterr().out


@pytest.mark.slow
def test_the_map_goes_to_out_not_the_current_folder(
    demo_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["map", "--db", demo_db]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert (tmp_path / "out" / "map.html").stat().st_size > 10_000

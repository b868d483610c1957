"""The pipeline's commands (issue 14): bulletin, progress, meeting, stages, staff."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from pipelineworld import late_decisions_world, returns, stage, write_world

from landquota.cli import main
from landquota.store.api import open_workspace


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from landquota.demo.build import demo_workspace

    db = tmp_path_factory.mktemp("demo") / "demo.gpkg"
    with demo_workspace(db, n_parcels=2_000, force=True):
        pass
    return db


@pytest.mark.slow  # renders the three A4 pages (about 5 s)
def test_bulletin_of_april_is_the_published_figure(
    demo_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    xlsx, pdf = tmp_path / "b.xlsx", tmp_path / "b.pdf"
    args = ["bulletin", "--db", str(demo_db), "--month", "2014-04"]
    assert main([*args, "--out", str(xlsx), "--out", str(pdf)]) == 0
    out = capsys.readouterr().out
    assert "317,000,000 / 计划 plan 2,935,000,000 yuan = 10.8 %" in out
    assert "time progress 4/12 = 33.3 %" in out

    from openpyxl import load_workbook

    wb = load_workbook(xlsx, read_only=True)
    summary = {r[0]: r[1] for r in wb["通报 summary"].iter_rows(min_row=2, values_only=True)}
    assert summary["完成率 Completion"] == "10.8 %"
    assert summary["累计完成投资 Completed (yuan)"] == "317,000,000"
    levels = list(wb["分级 levels"].iter_rows(values_only=True))
    head = levels[0]
    done = sum(r[head.index("completed_yuan")] for r in levels[1:])
    plan = sum(r[head.index("annual_plan_yuan")] for r in levels[1:])
    assert (done, plan) == (317_000_000, 2_935_000_000)  # the levels sum to the total
    wb.close()

    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (Debian's poppler-utils) is not installed")
    text = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    )
    assert text.stderr == ""
    assert "阳山县重点项目建设月度通报（2014年4月）" in text.stdout
    assert "10.8 %" in text.stdout and "33.3 %" in text.stdout
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True)
    fields = dict(line.split(":", 1) for line in info.stdout.splitlines() if ":" in line)
    assert fields["Pages"].strip() == "3" and fields["Page size"].strip().endswith("(A4)")


def test_bulletin_of_march_comes_from_the_march_returns(
    demo_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with open_workspace(demo_db) as ws:
        ret = ws.read_layer("project_progress", where={"month": "2014-03"})
    assert main(["bulletin", "--db", str(demo_db), "--month", "2014-03"]) == 0
    out = capsys.readouterr().out
    assert f"完成 completed {ret['completed_yuan'].sum():,.0f} / 计划 plan 2,935,000,000" in out
    assert "3/12 = 25.0 %" in out


@pytest.mark.parametrize("bad", [["--month", "2014-13"], ["--month", "2014-04", "--out", "b.txt"]])
def test_bulletin_refuses_bad_arguments(
    demo_db: Path, bad: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bulletin", "--db", str(demo_db), *bad]) == 2
    assert "error" in capsys.readouterr().err


def test_bulletin_refuses_a_year_without_returns(
    demo_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # R17: a bulletin of 2099 would show every project at 0 yuan and "lagging" as if real
    assert main(["bulletin", "--db", str(demo_db), "--month", "2099-01"]) == 2
    err = capsys.readouterr().err
    assert "--month 2099-01: that month has not begun" in err
    assert main(["bulletin", "--db", str(demo_db), "--month", "2015-03"]) == 2
    err = capsys.readouterr().err
    assert "--month 2015-03" in err and "no monthly return" in err
    assert "2014-01 to 2014-04" in err and "landquota progress" in err
    # a later month of a covered year is a real bulletin: nobody has reported yet
    assert main(["bulletin", "--db", str(demo_db), "--month", "2014-05"]) == 0
    assert "未报 no return this month: 78" in capsys.readouterr().out


def _form(path: Path, rows: list[tuple[str, float]], *, encoding: str = "utf-8-sig") -> Path:
    df = pd.DataFrame(
        {
            "项目编号": [r[0] for r in rows],
            "累计完成投资（万元）": [r[1] for r in rows],
            "存在问题": ["征地拆迁慢", None, None][: len(rows)],
        }
    )
    df.to_csv(path, index=False, encoding=encoding)
    return path


def test_progress_imports_a_return_form_on_both_backends(
    ws_target: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with open_workspace(ws_target, create=True) as ws:
        write_world(ws)
    feb = _form(tmp_path / "feb.csv", [("A", 0.02), ("B", 0.01)], encoding="gb18030")
    assert main(["progress", str(feb), "--db", ws_target, "--month", "2014-02"]) == 0
    mar = _form(tmp_path / "mar.csv", [("A", 0.03), ("B", 0.04), ("C", 0.05)])
    assert main(["progress", str(mar), "--db", ws_target, "--month", "2014-03"]) == 0
    assert "imported 3 returns (2014-03)" in capsys.readouterr().out
    with open_workspace(ws_target) as ws:
        got = ws.read_layer("project_progress").set_index("progress_id")
    assert got.loc["A:2014-02", "completed_yuan"] == 200.0  # 万元 × 10,000
    assert got.loc["A:2014-02", "problems"] == "征地拆迁慢"
    assert got.loc["C:2014-03", "completed_yuan"] == 500.0 and len(got) == 5
    # a corrected form replaces that month's returns; a falling figure is refused whole
    fall = _form(tmp_path / "fall.csv", [("A", 0.01), ("B", 0.05)])
    assert main(["progress", str(fall), "--db", ws_target, "--month", "2014-03"]) == 2
    assert "project 'A' reports 100 yuan for 2014-03, less than the 200 yuan of 2014-02" in (
        capsys.readouterr().err
    )
    unknown = _form(tmp_path / "u.csv", [("Z9", 1.0)])
    assert main(["progress", str(unknown), "--db", ws_target, "--month", "2014-03"]) == 2
    assert "['Z9'] are not in the workspace" in capsys.readouterr().err
    with open_workspace(ws_target) as ws:
        again = ws.read_layer("project_progress").set_index("progress_id")
    assert again["completed_yuan"].to_dict() == got["completed_yuan"].to_dict()  # untouched


def test_meeting_and_stages_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "w.gpkg")
    with open_workspace(db, create=True) as ws:
        write_world(ws)
        ws.write_layer(
            "project_stages",
            pd.DataFrame(
                [stage("A", "pre_review", "2014-02-01"), stage("B", "pre_review", "2014-03-01")]
            ),
        )
    args = [
        "meeting",
        "--db",
        db,
        "--id",
        "LS1",
        "--date",
        "2014-03-18",
        "--departments",
        "县发改局，县国土资源局",
    ]
    assert (
        main([*args, "--decision", "A|用地预审|pre_review|2014-04-30", "--decision", "C|选址"]) == 0
    )
    assert "2 decisions, 1 stage(s) closed" in capsys.readouterr().out
    assert (
        main(
            [
                *args[:-4],
                "--id",
                "LS2",
                "--date",
                "2014-03-20",
                "--departments",
                "x",
                "--decision",
                "A",
            ]
        )
        == 2
    )
    assert "PROJECT|MATTER" in capsys.readouterr().err
    assert (
        main(["stages", "--db", db, "--as-of", "2014-04-30", "--out", str(tmp_path / "s.csv")]) == 0
    )
    out = capsys.readouterr().out
    assert "用地预审 pre-review" in out and "before/after the first joint meeting" in out
    # a clerk's table: Chinese above English headers, no raw codes, no NaN
    assert "联审后中位天数" in out and "Target days" in out and "到达项目" in out
    assert "pre_review" not in out and "nan" not in out.lower()
    s = pd.read_csv(tmp_path / "s.csv", encoding="utf-8-sig").set_index("project_id")
    assert s.loc["A", "days_in_stage"] == 45 and s.loc["B", "days_in_stage"] == 60


@pytest.mark.parametrize(("as_of", "overdue"), [("2014-04-15", 0), ("2014-04-20", 1)])
def test_staff_lists_overdue_visits(
    tmp_path: Path, as_of: str, overdue: int, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "w.gpkg")
    with open_workspace(db, create=True) as ws:
        write_world(ws)
        ws.write_layer(
            "visits",
            pd.DataFrame(
                {
                    "visit_id": ["V1", "V2"],
                    "visit_date": pd.to_datetime(["2014-04-01", "2014-04-12"]),
                    "staff_id": ["L1", "L1"],
                    "project_id": ["A", "B"],
                    "problems": [None, None],
                    "solved": [True, True],
                }
            ),
        )
        # C (leader L2) is a new start never visited: always overdue; A is the case at hand
    out_csv = tmp_path / "staff.csv"
    assert main(["staff", "--db", db, "--as-of", as_of, "--out", str(out_csv)]) == 0
    out = capsys.readouterr().out
    assert "超期未走访" in out and "Visits overdue" in out and "county leader" in out
    assert "county_leader" not in out  # the role's label, not its stored code
    got = pd.read_csv(out_csv, encoding="utf-8-sig").set_index("staff_id")
    assert got.loc["L1", "n_overdue"] == overdue
    assert got.loc["L2", "n_overdue"] == 1


def test_stages_from_a_committed_run_open_conversion_with_its_quota(
    demo_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "copy.gpkg"
    shutil.copyfile(demo_db, db)
    assert (
        main(["allocate", "--db", str(db), "--mode", "greedy", "--as-of", "2014-04-30", "--commit"])
        == 0
    )
    with open_workspace(db) as ws:
        run_id = str(ws.read_layer("allocation_runs")["run_id"].iloc[0])
        alloc = ws.read_layer("allocations", where={"run_id": run_id}).set_index("project_id")
        before = ws.read_layer("project_stages")
    capsys.readouterr()
    assert main(["stages", "--db", str(db), "--from-run", run_id]) == 0
    assert "conversion from run" in capsys.readouterr().out
    with open_workspace(db) as ws:
        after = ws.read_layer("project_stages").set_index("stage_id")
    funded = alloc[alloc["outcome"].isin(["funded", "partial"])]
    old = before.set_index("stage_id")
    fed = [
        pid
        for pid in funded.index
        if f"{pid}:conversion" not in old.index
        or (pd.isna(old.loc[f"{pid}:conversion", "finished"]))
    ]
    assert fed, "the demo run funds some project whose conversion is still to come"
    for pid in fed:  # the run's quota is the approval's input (R5), at the R14 level
        row, a = after.loc[f"{pid}:conversion"], funded.loc[pid]
        assert row["quota_m2"] == pytest.approx(a["new_quota_m2"] + a["linkage_quota_m2"])
        assert row["approval_level"] == a["approval_level"] and row["run_id"] == run_id
    done = [p for p in funded.index if p not in fed]
    for pid in done:  # an approval already decided keeps its own inputs
        assert pd.isna(after.loc[f"{pid}:conversion", "run_id"])
    assert main(["stages", "--db", str(db), "--from-run", "nope"]) == 2


def test_demo_conversion_stages_take_the_level_demand_gives(
    demo_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # R14: the demo's 农用地转用及征收报批 stages carry the approval level `landquota demand`
    # computes from each site's areas, and the body that decides at that level.
    out = tmp_path / "demand.csv"
    assert main(["demand", "--db", str(demo_db), "--out", str(out)]) == 0
    capsys.readouterr()
    demand = pd.read_csv(out, dtype={"project_id": str}).set_index("project_id")
    with open_workspace(demo_db) as ws:
        stages = ws.read_layer("project_stages")
        projects = ws.read_layer("projects").set_index("project_id")
    conv = stages[stages["stage"] == "conversion"].set_index("project_id")
    assert len(conv) > 20
    fixed = conv.index[conv.index.isin(demand.index)]
    assert len(fixed) > 20
    got = conv.loc[fixed, "approval_level"]
    want = demand.loc[fixed, "approval_level"]
    assert got.tolist() == want.tolist()
    # not only the R13 national exceptions go to the State Council: a site taking basic
    # farmland without the exception does too (R14), as demand says
    sc = got[got == "state_council"].index
    assert len(sc) and not projects.loc[sc, "national_exception"].all()
    assert (got == "province").any()
    done = conv.loc[fixed][conv.loc[fixed, "finished"].notna()]
    bodies = {"state_council": "国务院", "province": "广东省人民政府"}
    assert done["decided_by"].tolist() == [bodies[v] for v in done["approval_level"]]
    # a project with no fixed site has no areas, so no level yet
    unfixed = conv.index[~conv.index.isin(demand.index)]
    assert conv.loc[unfixed, "approval_level"].isna().all()


def test_tables_show_dash_and_yes_no_never_nan_or_true() -> None:
    """The stages/staff tables: '—' for a missing value, 是 yes/否 no for a flag (README)."""
    from landquota.cli.pipeline import _stage_tables
    from landquota.outputs.console import render_table

    df = pd.DataFrame(
        {
            "stage": ["pre_review", "conversion"],
            "median_after": [21.5, float("nan")],
            "target_met": [True, False],
            "n_before": [3, 0],
        }
    )
    text = render_table(df, _stage_tables()["durations"])
    for bad in ("NaN", "nan", "NaT", "None", "True", "False"):
        assert bad not in text
    assert "21.50" in text and "是 yes" in text and "否 no" in text and "—" in text
    staff = pd.DataFrame({"staff_id": ["L1", "L2"], "overdue": ["K008", ""]})
    rows = render_table(staff, _stage_tables()["staff"]).splitlines()
    assert [r.split("│")[2].strip() for r in rows if "L" in r and "│" in r] == ["K008", "—"]


@pytest.mark.slow  # renders the bulletin's three A4 pages on each backend (about 8 s)
def test_staff_and_bulletin_list_meeting_decisions_past_their_deadline(
    ws_target: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # hand-checked (pipelineworld.late_decisions_world): on 2014-04-20 decision M1:1 (A's
    # pre-review, due 04-10, still open) is 10 days over and M1:3 (C's conversion, due 04-01,
    # never started) 19; M1:2 was closed late on 04-08 and M1:4 names no stage.
    with open_workspace(ws_target, create=True) as ws:
        late_decisions_world(ws)
        ws.write_layer("project_progress", returns({p: [100.0] * 4 for p in "ABC"}))
    out_csv = tmp_path / "staff.csv"
    args = ["staff", "--db", ws_target, "--as-of", "2014-04-20", "--out", str(out_csv)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "joint-meeting decisions past their deadline: 2" in out
    got = pd.read_csv(out_csv, encoding="utf-8-sig").set_index("staff_id")
    assert got["n_overdue_decisions"].to_dict() == {"D1": 2, "L1": 1, "L2": 1, "T1": 2}
    assert got.loc["L1", "overdue_decisions"] == "M1:1 (A pre_review, 2014-04-10)"
    assert got.loc["L2", "overdue_decisions"] == "M1:3 (C conversion, 2014-04-01)"
    args[4] = "2014-04-10"  # A's deadline day: in time; B closed on 04-08: only M1:3
    assert main(args) == 0
    assert "joint-meeting decisions past their deadline: 1" in capsys.readouterr().out

    xlsx, pdf = tmp_path / "b.xlsx", tmp_path / "b.pdf"
    bulletin = ["bulletin", "--db", ws_target, "--month", "2014-04"]
    assert main([*bulletin, "--out", str(xlsx), "--out", str(pdf)]) == 0
    capsys.readouterr()
    from openpyxl import load_workbook

    wb = load_workbook(xlsx, read_only=True)
    rows = list(wb["超期决定 overdue decisions"].iter_rows(values_only=True))
    head = rows[0]
    # on 04-30: M1:3 29 days over (04-01 → 04-30), M1:1 20 (04-10 → 04-30)
    assert [(r[head.index("decision_id")], r[head.index("days_overdue")]) for r in rows[1:]] == [
        ("M1:3", 29),
        ("M1:1", 20),
    ]
    summary = {r[0]: r[1] for r in wb["通报 summary"].iter_rows(min_row=2, values_only=True)}
    assert summary["联审决定超期未办结 Meeting decisions past deadline"] == "2"
    wb.close()
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (Debian's poppler-utils) is not installed")
    page3 = subprocess.run(
        ["pdftotext", "-f", "3", "-l", "3", "-layout", str(pdf), "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "Meeting decisions past their deadline (2)" in page3
    line = next(x for x in page3.splitlines() if "M1:3" in x)
    assert "2014-04-01" in line and line.split()[-1] == "29"
    assert "M1:1" in page3 and "M1:2" not in page3 and "M1:4" not in page3


def test_readme_pipeline_quickstart_runs_on_the_demo(
    demo_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The README's progress and meeting lines, exactly as written, on a copy of the demo:
    # they once named a return form nobody had and a stage the demo had already closed.
    import shlex

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    lines = [ln.split("  #")[0].strip() for ln in readme.splitlines()]
    form = next(ln for ln in lines if ln.startswith("printf ") and "returns-" in ln)
    cmds = [ln for ln in lines if ln.startswith(("landquota progress ", "landquota meeting "))]
    assert len(cmds) == 2
    db = tmp_path / "demo.gpkg"
    shutil.copy(demo_db, db)
    (tmp_path / "out").mkdir()
    subprocess.run(["bash", "-c", form], cwd=tmp_path, check=True)
    monkeypatch.chdir(tmp_path)
    for cmd in cmds:
        assert main([*shlex.split(cmd)[1:], "--db", str(db)]) == 0, cmd


def test_output_cut_off_by_head_is_not_an_error(
    demo_db: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # `landquota staff … | head` once printed "错误 error: [Errno 32] Broken pipe" and exit 2;
    # a stdout whose reader has gone stands in for the pipe (deterministic, unlike a real head)
    import io
    import sys

    class Gone(io.TextIOBase):
        def write(self, s: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", Gone())
    assert main(["staff", "--as-of", "2014-04-20", "--db", str(demo_db)]) == 141
    assert capsys.readouterr().err == ""

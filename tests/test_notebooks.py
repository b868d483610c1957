"""Execute every notebook on a real python3 kernel; the CLI gives notebook 02's difference.

Each notebook is copied to a temporary folder and executed there (nbclient, kernel
``python3``), so no output is ever written back into the repository. They share
one demo workspace (5,000 patches), built once per session and handed to them
through ``LANDQUOTA_NOTEBOOK_DB``; ``LANDQUOTA_NOTEBOOK_OUT`` says where notebook
02 saves its scenario and allocation difference for the acceptance test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.notebook

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
NAMES = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
#: Allocation CSVs carry 2 decimals (Run.write); the notebook's CSV carries full floats.
CSV_TOL = 0.006


@pytest.fixture(scope="session")
def notebook_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    from landquota.demo.build import demo_workspace

    root = tmp_path_factory.mktemp("notebooks")
    db = root / "yangshan_demo.gpkg"
    with demo_workspace(db, n_parcels=5_000):
        pass
    out = root / "out"
    out.mkdir()
    yield {"db": db, "out": out, "root": root}


def _execute(name: str, env: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    import nbformat
    from nbclient import NotebookClient

    work = env["root"] / "run"
    work.mkdir(exist_ok=True)
    copy = work / name
    shutil.copyfile(NOTEBOOKS / name, copy)
    nb = nbformat.read(copy, as_version=4)
    # The kernel inherits this process's environment.
    monkeypatch.setenv("LANDQUOTA_NOTEBOOK_DB", str(env["db"]))
    monkeypatch.setenv("LANDQUOTA_NOTEBOOK_OUT", str(env["out"]))
    client = NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(work)}}
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    nbformat.write(nb, copy)  # the executed copy stays in tmp, for a person to look at


def test_notebooks_are_stored_without_outputs() -> None:
    import nbformat

    assert NAMES == [
        "01_quickstart.ipynb",
        "02_plan_adjustment.ipynb",
        "03_idle_land_review.ipynb",
        "04_monthly_bulletin.ipynb",
    ]
    for name in NAMES:
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        assert nb.metadata["kernelspec"]["name"] == "python3"
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, name


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_without_error(
    name: str, notebook_env: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    before = (NOTEBOOKS / name).read_bytes()
    _execute(name, notebook_env, monkeypatch)
    assert (NOTEBOOKS / name).read_bytes() == before  # nothing written back


def _cli_allocate(db: Path, out: Path, scenario: Path | None) -> pd.DataFrame:
    cmd = [
        sys.executable, "-m", "landquota", "allocate", "--db", str(db), "--mode", "greedy",
        "--as-of", "2014-04-30", "--out", str(out),
    ]  # fmt: skip
    if scenario is not None:
        cmd += ["--scenario", str(scenario)]
    env = {k: v for k, v in os.environ.items() if k != "LANDQUOTA_DB"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    return pd.read_csv(out, encoding="utf-8-sig")


@pytest.mark.slow
def test_cli_gives_the_allocation_difference_shown_in_notebook_02(
    notebook_env: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = notebook_env["out"]
    if not (out / "02_comparison.csv").exists():
        _execute("02_plan_adjustment.ipynb", notebook_env, monkeypatch)
    scenario = out / "02_adjustment.gpkg"
    shown = pd.read_csv(out / "02_comparison.csv")
    assert len(shown) > 0, "notebook 02 shows no allocation difference"

    cli_before = _cli_allocate(notebook_env["db"], out / "cli_before.csv", None)
    cli_after = _cli_allocate(notebook_env["db"], out / "cli_after.csv", scenario)
    # The difference, computed from the CLI's own files (not through compare_scenarios):
    numeric = ["fraction", "new_quota_m2", "linkage_quota_m2", "comp_area_m2",
               "comp_paddy_m2", "comp_grain_kg"]  # fmt: skip
    text = ["outcome", "stock_id"]

    def num(s: pd.Series) -> pd.Series:
        return pd.to_numeric(s, errors="coerce").fillna(0.0)

    def txt(s: pd.Series) -> pd.Series:
        return s.astype(object).where(s.notna(), "").astype(str)

    both = cli_before.merge(cli_after, on="project_id", suffixes=("_before", "_after"))
    differs = pd.Series(False, index=both.index)
    for c in numeric:
        differs |= (num(both[f"{c}_before"]) - num(both[f"{c}_after"])).abs() > CSV_TOL
    for c in text:
        differs |= txt(both[f"{c}_before"]) != txt(both[f"{c}_after"])
    cli_diff = both[differs].set_index("project_id").sort_index()
    nb_diff = shown.set_index("project_id").sort_index()

    assert list(cli_diff.index) == list(nb_diff.index)
    for side in ("before", "after"):
        for c in numeric:
            gap = (num(cli_diff[f"{c}_{side}"]) - num(nb_diff[f"{c}_{side}"])).abs()
            assert (gap <= CSV_TOL).all(), (c, side)
        for c in text:
            assert list(txt(cli_diff[f"{c}_{side}"])) == list(txt(nb_diff[f"{c}_{side}"])), (
                c,
                side,
            )
    # and the after-run itself row for row
    nb_after = pd.read_csv(out / "02_after.csv").set_index("project_id").sort_index()
    cli_after = cli_after.set_index("project_id").sort_index()
    assert list(nb_after.index) == list(cli_after.index)
    assert list(txt(nb_after["outcome"])) == list(txt(cli_after["outcome"]))
    for c in numeric:
        assert ((num(nb_after[c]) - num(cli_after[c])).abs() <= CSV_TOL).all(), c

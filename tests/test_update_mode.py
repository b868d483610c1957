"""Writing a layer in ``update`` mode: corrected rows rewritten in place, new ids added.

The case: a bureau corrects its ``projects`` file after a run was committed and a joint
meeting recorded; a replace is refused (rows of other layers refer to the projects), an
update must keep those references and every row the file does not name.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest
import shapely

from landquota import errors
from landquota.allocation.runs import commit_run, plan_allocation
from landquota.store.chain import chain_head
from landquota.store.verify import verify_workspace
from tests.runworld import G, mp, world


@pytest.fixture
def committed(ws):
    ws.write_layers(world())
    run = plan_allocation(ws, mode="greedy", as_of=date(2014, 5, 1))
    commit_run(ws, run.run_id)
    return ws


def test_update_rewrites_named_rows_adds_new_and_keeps_the_rest(committed) -> None:
    ws = committed
    before = ws.read_layer("projects").set_index("project_id")
    n_alloc = len(ws.read_layer("allocations"))
    head = chain_head(ws)
    with pytest.raises(errors.DataError):
        ws.write_layer("projects", ws.read_layer("projects"), mode="replace")  # referred to

    fix = ws.read_layer("projects")
    fix = fix[fix["project_id"].isin(["K2"])].copy()
    fix["name"] = "二号物流园（更正）"
    moved = mp(G.rect(300, 0, 350, 100))  # half of patch D
    fix["geometry"] = [moved]
    new = fix.copy()
    new["project_id"] = "K9"
    new["name"] = "九号新项目"
    written = ws.write_layer("projects", pd.concat([fix, new], ignore_index=True), mode="update")
    assert written == 2

    after = ws.read_layer("projects").set_index("project_id")
    assert sorted(after.index) == ["K1", "K2", "K3", "K9"]
    assert after.loc["K2", "name"] == "二号物流园（更正）"
    assert after.loc["K9", "name"] == "九号新项目"
    # rows the file did not name are untouched, to the attribute and the vertex
    for pid in ("K1", "K3"):
        assert after.loc[pid, "name"] == before.loc[pid, "name"]
        assert shapely.equals(after.loc[pid, "geometry"], before.loc[pid, "geometry"]) or (
            after.loc[pid, "geometry"] is None and before.loc[pid, "geometry"] is None
        )
    assert shapely.equals(after.loc["K2", "geometry"], moved)
    # the spatial index follows the moved site: a box over its old east half finds nothing
    east = ws.read_layer("projects", bbox=tuple(G.rect(360, 10, 390, 90).bounds))
    assert "K2" not in set(east["project_id"])
    west = ws.read_layer("projects", bbox=tuple(G.rect(310, 10, 340, 90).bounds))
    assert "K2" in set(west["project_id"])
    # the run's allocations still point at their projects; the ledger is untouched
    assert len(ws.read_layer("allocations")) == n_alloc
    assert chain_head(ws) == head and verify_workspace(ws).ok


def test_update_is_atomic_and_refuses_bad_rows(committed) -> None:
    ws = committed
    before = ws.read_layer("projects")
    bad = before.copy()
    bad.loc[0, "name"] = "改了名"
    bad.loc[1, "level"] = "galactic"  # not a level: the whole write is refused
    with pytest.raises(errors.DataError):
        ws.write_layer("projects", bad, mode="update")
    twice = before.iloc[[0, 0]].copy()
    with pytest.raises(errors.DataError, match="duplicate project_id"):
        ws.write_layer("projects", twice, mode="update")
    after = ws.read_layer("projects")
    assert after["name"].tolist() == before["name"].tolist()


def test_update_of_the_ledger_is_refused(committed) -> None:
    with pytest.raises(errors.WorkspaceError, match="append-only"):
        committed.write_layer("quota_ledger", committed.read_layer("quota_ledger"), mode="update")


def test_cli_import_update_corrects_projects_a_replace_cannot(committed, tmp_path, capsys) -> None:
    import pyogrio

    from landquota.cli import main

    ws = committed
    fixed = ws.read_layer("projects")
    fixed.loc[fixed["project_id"] == "K1", "name"] = "一号工业园（更正）"
    src = tmp_path / "projects_fixed.gpkg"
    pyogrio.write_dataframe(fixed, src, layer="projects")
    args = ["import", "--db", ws.target, "--layer", "projects", str(src)]
    assert main(args) == 2  # a replace must delete projects the run's allocations name
    err = capsys.readouterr().err
    assert "cannot be replaced" in err and "--update" in err
    assert main([*args, "--update"]) == 0
    out = capsys.readouterr().out
    assert "into layer 'projects' (update)" in out
    # K3's site is not fixed: no geometry is no rejection for projects
    assert "拒绝 rejected rows: 0" in out
    got = ws.read_layer("projects").set_index("project_id")
    assert got.loc["K1", "name"] == "一号工业园（更正）" and len(got) == 3
    assert verify_workspace(ws).ok

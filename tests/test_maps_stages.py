"""The map's approval-stage overlay and popups (issue 14)."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path
from typing import Any

import mapdata as d
import pandas as pd
from pipelineworld import stage

from landquota.outputs.maps import build_map, save_map
from landquota.outputs.stage_map import STAGE_COLOURS, stage_info

_BLOCK = re.compile(r'<script type="application/json" id="(lq-data-\w+)">(.*?)</script>', re.DOTALL)


def _payloads(page: str) -> dict[str, dict[str, Any]]:
    out = {}
    for _, text in _BLOCK.findall(page):
        data = json.loads(text)
        if "name" in data:
            out[data["name"]] = data
    return out


def test_projects_are_coloured_by_stage_and_popups_show_the_history(tmp_path: Path) -> None:
    stages = pd.DataFrame(
        [
            stage("K1", "pre_review", "2013-09-01", "2013-10-11", doc_no="阳国土预〔2013〕5号"),
            stage("K1", "conversion", "2013-10-20", "2014-03-18", decision_id="LS1:1"),
            stage("K1", "acquisition", "2014-03-25"),
            stage("K3", "pre_review", "2014-04-01"),
        ]
    )
    info = stage_info(stages, as_of=date(2014, 4, 30))
    assert info.current == {"K1": "acquisition", "K3": "pre_review"}
    assert info.days == {"K1": 36, "K3": 29}
    m = build_map(d.layers(), **d.build_kwargs(), stages=info)
    page = save_map(m, tmp_path / "m.html").read_text(encoding="utf-8")
    layers = _payloads(page)
    by_stage = layers["重点项目报批阶段 Key projects by approval stage"]
    feats = {f["t"]: f for f in by_stage["features"]}
    k1 = feats["阳山大道改造"]
    assert k1["s"] == "acquisition"
    assert by_stage["styles"]["acquisition"]["fillColor"] == STAGE_COLOURS["acquisition"]
    assert by_stage["styles"]["none"]["fillColor"] == STAGE_COLOURS["none"]  # K5: no stage
    rows = k1["p"]["rows"]
    assert ["当前阶段 Current stage", "征地拆迁（36 天 days）"] in rows
    assert ["用地预审", "2013-09-01 → 2013-10-11 (40 天 days) 阳国土预〔2013〕5号"] in rows
    assert [
        "农用地转用及征收报批",
        "2013-10-20 → 2014-03-18 (149 天 days) 联审会议 joint meeting",
    ] in rows
    assert ["县领导 County leader", "K1县长"] in rows  # the service staff
    # the outcome overlay's popup carries the same stage lines
    outcome = layers["重点项目 Key projects"]
    k1_outcome = next(f for f in outcome["features"] if f.get("id") == "K1")
    assert ["当前阶段 Current stage", "征地拆迁（36 天 days）"] in k1_outcome["p"]["rows"]

"""PostGIS reads go through COPY … TO STDOUT (CSV) and Arrow: awkward values come back exactly."""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import shapely

from tests import ruleworld as W


def test_unhex_chunks_nulls_slices_and_case() -> None:
    from landquota.store.postgis import _unhex

    boxes = shapely.box(np.arange(5.0), 0, np.arange(5.0) + 1, 1)
    hexes: list[str | None] = [shapely.to_wkb(g, hex=True) for g in boxes]
    hexes[1] = str(hexes[1]).lower()  # PostgreSQL's encode(…, 'hex') writes lower case
    hexes[3] = None
    got = _unhex(pa.chunked_array([pa.array(hexes[:2]), pa.array(hexes[2:])]))
    assert got.to_pylist() == [None if h is None else bytes.fromhex(h) for h in hexes]
    assert _unhex(pa.array(hexes).slice(2)).to_pylist() == [bytes.fromhex(str(hexes[2])), None,
                                                            bytes.fromhex(str(hexes[4]))]
    assert _unhex(pa.array([], type=pa.string())).to_pylist() == []


AWKWARD = ["a,b", 'say "hi"', "two\nlines", "", "tab\there", "\\N", "阳城镇，（一）", "back\\slash",
           "null", "NaN", "N/A", "NULL"]  # Arrow's CSV reader takes the last four for NULL by default


@pytest.mark.postgis
def test_awkward_text_dates_booleans_and_nulls_round_trip(pg_url: str) -> None:
    from landquota.store.api import open_workspace

    rows: list[dict[str, Any]] = []
    for i, text in enumerate(AWKWARD):
        p = W.project(f"K{i}", (i * 200, 0, i * 200 + 100, 100) if i % 2 else None)
        p.update(name=text or "x", county_leader=text, town_cadre=None if i % 3 == 0 else text,
                 start_date=pd.NaT if i == 2 else pd.Timestamp("2014-03-01") + pd.Timedelta(days=i),
                 phaseable=bool(i % 2), min_fraction=None if i % 2 else 0.25, demand_m2=None)
        rows.append(p)
    projects = W.projects(rows)
    with open_workspace(pg_url, create=True) as ws:
        ws.write_layer("projects", projects)
        got = ws.read_layer("projects").set_index("project_id").loc[projects.project_id]
        for c in ("name", "county_leader", "town_cadre"):
            want = projects[c].tolist()
            assert [None if pd.isna(v) else v for v in got[c]] == [None if pd.isna(v) else v for v in want], c
        assert got["county_leader"].iloc[3] == "" and pd.isna(got["town_cadre"].iloc[0])  # '' is not NULL
        assert got["start_date"].iloc[2] is pd.NaT and got["start_date"].iloc[4] == pd.Timestamp("2014-03-05")
        assert got["phaseable"].tolist() == [bool(i % 2) for i in range(len(AWKWARD))]
        assert got["site_fixed"].tolist() == [bool(i % 2) for i in range(len(AWKWARD))]
        assert shapely.equals(got.geometry.iloc[1], projects.geometry.iloc[1])
        assert got.geometry.iloc[0] is None
        # a filter value with a quote and a newline is quoted by psycopg, never spliced
        one = ws.read_layer("projects", where={"county_leader": ['say "hi"', "two\nlines", "x' OR 'a'='a"]})
        assert sorted(one.project_id) == ["K1", "K2"]
        runs = ws.read_layer("allocation_runs")  # an empty table reads as an empty frame
        assert len(runs) == 0 and "run_id" in runs.columns


@pytest.mark.postgis
def test_datetimes_come_back_in_utc_whatever_the_session_time_zone(pg_url: str) -> None:
    import sqlalchemy as sa

    from landquota.rules.ledger import _entries_frame
    from landquota.store.api import open_workspace

    entry = _entries_frame([{"entry_id": "E1", "pool": "new_construction", "kind": "opening", "amount": 5.0,
                             "year": 2014, "effective_date": pd.Timestamp(date(2014, 1, 1)), "source": "D1",
                             "note": 'a,b\n"c"'}])
    entry["entered_at"] = pd.Timestamp("2014-04-30 15:30:00.123", tz="UTC")
    entry["entered_by"] = "me"
    with open_workspace(pg_url, create=True) as ws:
        ws.append_ledger(entry)

        def new_york(dbapi_con: Any, _record: Any) -> None:
            dbapi_con.execute("SET TimeZone = 'America/New_York'")

        sa.event.listen(ws.engine, "connect", new_york)
        ws.engine.dispose()  # every connection from now on is in New York time
        with ws.engine.connect() as c:
            assert c.execute(sa.text("SHOW TimeZone")).scalar() == "America/New_York"
            epoch = c.execute(sa.text(f'SELECT extract(epoch FROM entered_at) FROM "{ws.schema}".quota_ledger')).scalar()
        led = ws.read_layer("quota_ledger")
        assert led["note"].iloc[0] == 'a,b\n"c"' and led["year"].iloc[0] == 2014
        assert led["effective_date"].iloc[0] == pd.Timestamp("2014-01-01")
        assert str(led["entered_at"].dtype) == "datetime64[ns, UTC]"
        assert led["entered_at"].iloc[0].timestamp() == pytest.approx(float(epoch), abs=1e-6)

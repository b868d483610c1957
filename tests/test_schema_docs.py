"""The docs describe the schema the code builds."""

from pathlib import Path

from landquota.store.schema import LAYERS, schema_markdown

ROOT = Path(__file__).resolve().parents[1]


def test_schema_doc_is_generated_from_the_code() -> None:
    doc = (ROOT / "docs" / "workspace-schema.md").read_text(encoding="utf-8")
    assert doc.strip() == schema_markdown().strip(), (
        "docs/workspace-schema.md is stale: run `python -m landquota.store.schema > docs/workspace-schema.md`"
    )


def test_every_contract_layer_is_in_the_schema() -> None:
    contract = {
        "parcels", "plan_zones", "control_lines", "stock_land", "linkage_areas", "linkage_plots",
        "projects", "quota_ledger", "allocation_runs", "allocations",
    }
    assert contract <= set(LAYERS)
    for lyr in LAYERS.values():
        assert lyr.id_column.endswith("_id") and lyr.columns[0].name == lyr.id_column

"""The public API: flat, sorted, nothing leaking."""

import landquota


def test_all_is_sorted_and_complete() -> None:
    names = [n for n in landquota.__all__ if n != "__version__"]
    assert names == sorted(names, key=lambda n: (not n.isupper(), not n[:1].isupper(), n))
    for name in landquota.__all__:
        assert hasattr(landquota, name), name


def test_no_third_party_names_leak() -> None:
    for leaked in ("np", "pd", "gpd", "shapely", "sa"):
        assert not hasattr(landquota, leaked)


def test_import_is_lazy() -> None:
    """`import landquota` loads no map or database code: scripts pay only for what they use."""
    import subprocess
    import sys

    code = (
        "import sys, landquota; heavy = [m for m in ('folium', 'sqlalchemy', 'geopandas', 'landquota.outputs.maps') "
        "if m in sys.modules]; print(heavy); landquota.open_workspace; assert 'landquota.store.workspace' in sys.modules"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_unknown_name_is_an_attribute_error() -> None:
    import pytest

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        landquota.nope  # noqa: B018

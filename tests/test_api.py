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

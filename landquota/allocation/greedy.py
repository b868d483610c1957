"""Private: greedy mode, the R18 walk (R3–R5, R18).

Projects in R18 order (level, score descending, project id); a fixed site is funded if
its full need fits what is left, a phaseable one takes the largest fraction that fits
when that is at least its ``min_fraction``; a site not fixed takes its preferred free
parcel.  Nothing is ever re-arranged.
"""

from __future__ import annotations

from landquota.allocation.items import _P, _S, _given, _largest_fraction, _r18_key
from landquota.allocation.parcels import _StockIndex


def _greedy(
    ps: list[_P], parcels: list[_S], bal: dict[str, int]
) -> tuple[dict[int, int], dict[int, int], dict[int, tuple[int, ...]]]:
    """R18 walk.  Returns fraction (1e-9 units), parcel and the room at each turn."""
    order = sorted(ps, key=_r18_key)
    frac: dict[int, int] = {}
    parcel: dict[int, int] = {}
    room_at: dict[int, tuple[int, ...]] = {}
    room = [
        bal["new_construction"] + bal["linkage_surplus"],
        bal["comp_area"],
        bal["comp_paddy"],
        bal["comp_grain"],
    ]
    idx = _StockIndex(parcels)
    for p in order:
        if p.blocked:
            continue
        if not p.fixed:
            j = idx.best(p)
            if j is not None:
                idx.remove(j)
                parcel[p.i] = j
            continue
        room_at[p.i] = tuple(room)
        q = _largest_fraction(p.need, room)
        if q < p.min_q:
            q = 0
        frac[p.i] = q
        given = _given(p.need, q)
        for d in range(4):
            room[d] -= given[d]
    return frac, parcel, room_at

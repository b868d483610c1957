"""Private: stock parcels for projects whose site is not fixed (存量优先, R18).

Free parcels indexed by planned use (and town) for the preference walk
(:class:`_StockIndex`: same town, then least leftover area, then lower id), the
holders of the parcels that fit a project (:class:`_Holders`, for its reasons), and
the assignment of parcels to the projects optimal mode selects
(:func:`_assign_parcels`: the preference walk in R18 order, then augmenting paths).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from landquota.allocation.items import _P, _S


class _StockIndex:
    """Free parcels by planned use (and use + town), each list sorted by (area, id)."""

    def __init__(self, parcels: Sequence[_S]) -> None:
        self.parcels = parcels
        self.by_use: dict[str, list[tuple[int, str, int]]] = {}
        self.by_use_town: dict[tuple[str, str], list[tuple[int, str, int]]] = {}
        for s in sorted(parcels, key=lambda s: (s.area, s.sid)):
            if s.use is None:
                continue
            item = (s.area, s.sid, s.j)
            self.by_use.setdefault(s.use, []).append(item)
            if s.town is not None:
                self.by_use_town.setdefault((s.use, s.town), []).append(item)

    @staticmethod
    def _first_fit(
        lists: Iterable[list[tuple[int, str, int]]], demand: int
    ) -> tuple[int, str, int] | None:
        best: tuple[int, str, int] | None = None
        for lst in lists:
            k = bisect.bisect_left(lst, (demand, ""))
            if k < len(lst) and (best is None or lst[k][:2] < best[:2]):
                best = lst[k]
        return best

    def best(self, p: _P) -> int | None:
        """Preferred free parcel: same town, then least leftover, then lower id."""
        uses = sorted(p.uses)
        if p.town is not None:
            hit = self._first_fit(
                (self.by_use_town[(u, p.town)] for u in uses if (u, p.town) in self.by_use_town),
                p.demand,
            )
            if hit is not None:
                return hit[2]
        hit = self._first_fit((self.by_use[u] for u in uses if u in self.by_use), p.demand)
        return None if hit is None else hit[2]

    def remove(self, j: int) -> None:
        """Take parcel *j* out of the free lists."""
        s = self.parcels[j]
        item = (s.area, s.sid, s.j)
        keys: list[list[tuple[int, str, int]]] = []
        if s.use is not None:
            keys.append(self.by_use[s.use])
            if s.town is not None:
                keys.append(self.by_use_town[(s.use, s.town)])
        for lst in keys:
            del lst[bisect.bisect_left(lst, item)]

    def fits_any(self, p: _P) -> bool:
        """Whether any parcel (free or not, from the lists built at start) fits *p*."""
        return (
            self._first_fit((self.by_use[u] for u in p.uses if u in self.by_use), p.demand)
            is not None
        )


class _Holders:
    """Who holds the parcels that fit a project whose site is not fixed.

    Projects ranked before it (R18), after it, or both: one suffix minimum and
    maximum of the holders' ranks per planned use, so each question is a bisection.
    """

    def __init__(self, ps: Sequence[_P], parcels: Sequence[_S], parcel: Mapping[int, int]) -> None:
        rank_of = {j: ps[i].rank for i, j in parcel.items()}
        self.areas: dict[str, list[int]] = {}
        self.lo: dict[str, list[float]] = {}
        self.hi: dict[str, list[float]] = {}
        by_use: dict[str, list[_S]] = {}
        for s in sorted(parcels, key=lambda s: (s.area, s.sid)):
            if s.use is not None:
                by_use.setdefault(s.use, []).append(s)
        for use, lst in by_use.items():
            lo = [math.inf] * (len(lst) + 1)
            hi = [-math.inf] * (len(lst) + 1)
            for k in range(len(lst) - 1, -1, -1):
                r = rank_of.get(lst[k].j)
                lo[k] = min(lo[k + 1], math.inf if r is None else r)
                hi[k] = max(hi[k + 1], -math.inf if r is None else r)
            self.areas[use] = [s.area for s in lst]
            self.lo[use], self.hi[use] = lo, hi

    def around(self, p: _P) -> tuple[bool, bool]:
        """(held by a project ranked before *p*, held by one ranked after it)."""
        before = after = False
        for use in p.uses:
            if use in self.areas:
                k = bisect.bisect_left(self.areas[use], p.demand)
                before = before or self.lo[use][k] < p.rank
                after = after or self.hi[use][k] > p.rank
        return before, after


def _preference(p: _P, s: _S) -> tuple[bool, int, str]:
    return (p.town is None or s.town != p.town, s.area - p.demand, s.sid)


class _Preferences:
    """Each project's fitting parcels in its order of preference (:func:`_preference`).

    Built once per run: per planned use, the parcels sorted by (area, id) as NumPy
    arrays; a project's list is the slices of its uses from the first area that
    fits, ordered by (other town, area, id) — the preference order, since the
    leftover ``area − demand`` orders as the area does.  Listed when first asked
    (the augmenting-path search reaches only some projects).
    """

    def __init__(self, parcels: Sequence[_S]) -> None:
        self.parcels = parcels
        ordered = sorted(parcels, key=lambda s: (s.area, s.sid))
        self.rank = np.empty(len(parcels), dtype=np.int64)
        self.rank[[s.j for s in ordered]] = np.arange(len(parcels), dtype=np.int64)
        towns = sorted({s.town for s in parcels if s.town is not None})
        self.town_code = {t: c for c, t in enumerate(towns)}
        self.town = np.array(
            [-1 if s.town is None else self.town_code[s.town] for s in parcels], dtype=np.int64
        )
        self.js: dict[str, npt.NDArray[np.int64]] = {}
        self.areas: dict[str, npt.NDArray[np.int64]] = {}
        by_use: dict[str, list[_S]] = {}
        for s in ordered:
            if s.use is not None:
                by_use.setdefault(s.use, []).append(s)
        for use, lst in by_use.items():
            self.js[use] = np.array([s.j for s in lst], dtype=np.int64)
            self.areas[use] = np.array([s.area for s in lst], dtype=np.int64)
        self.cache: dict[int, list[int]] = {}

    def of(self, p: _P) -> list[int]:
        """Parcel indexes that fit *p*, most preferred first."""
        if p.i not in self.cache:
            parts = [
                self.js[u][int(np.searchsorted(self.areas[u], p.demand, side="left")) :]
                for u in sorted(p.uses)
                if u in self.js
            ]
            js = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
            if p.town is None:
                other = np.ones(js.size, dtype=bool)
            else:
                other = self.town[js] != self.town_code.get(p.town, -2)
            self.cache[p.i] = js[np.lexsort((self.rank[js], other))].tolist()
        return self.cache[p.i]


def _assign_parcels(chosen: Sequence[_P], parcels: Sequence[_S]) -> dict[int, int]:
    """Give each chosen project a parcel: preference walk, then augmenting paths."""
    idx = _StockIndex(parcels)
    owner: dict[int, int] = {}  # parcel j -> project i
    match: dict[int, int] = {}  # project i -> parcel j
    failed: list[_P] = []
    for p in chosen:
        j = idx.best(p)
        if j is None:
            failed.append(p)
            continue
        idx.remove(j)
        owner[j] = p.i
        match[p.i] = j
    if failed:
        prefs = _Preferences(parcels)
        by_i = {p.i: p for p in chosen}
        for root in failed:
            # BFS over alternating paths from the unmatched project (Berge)
            parent: dict[int, tuple[int, int | None]] = {}  # parcel -> (project, prev parcel)
            queue: list[tuple[int, int | None]] = [(root.i, None)]
            end: int | None = None
            while queue and end is None:
                nxt: list[tuple[int, int | None]] = []
                for pi, via in queue:
                    for j in prefs.of(by_i[pi]):
                        if j in parent:
                            continue
                        parent[j] = (pi, via)
                        if j not in owner:
                            end = j
                            break
                        nxt.append((owner[j], j))
                    if end is not None:
                        break
                queue = nxt
            if end is None:  # cannot happen when the MILP proved the set matchable
                continue
            step: int | None = end
            while step is not None:  # flip the path: each project takes the parcel it reached
                pi, prev = parent[step]
                owner[step] = pi
                match[pi] = step
                step = prev
    return match

"""The tiled map's encoding (landquota.outputs.tiled), decoded by hand in Python."""

from __future__ import annotations

import base64
import zlib

import numpy as np
import shapely

from landquota.outputs.tiled import TILE_ZOOM, encode_tiles, tile_of, varints


def test_varints_by_hand() -> None:
    # LEB128: 7 bits a byte, low group first, high bit = more follows
    assert varints(np.array([0, 1, 127, 128, 300])) == b"\x00\x01\x7f\x80\x01\xac\x02"
    assert varints(np.array([2**35])) == b"\x80\x80\x80\x80\x80\x01"


def test_tile_of_by_hand() -> None:
    # zoom 1: four tiles, (0, 0) north-west
    assert tile_of(np.array([-90.0, 90.0]), np.array([45.0, -45.0]), 1).tolist() == [[0, 0], [1, 1]]


def _decode(blob: str, ids: list[list[object]]) -> list[tuple[str, int, int, list[list[tuple[int, int]]]]]:
    """A Python twin of the browser's decodeTile: (id, class, area, rings) per patch."""
    data = zlib.decompress(base64.b64decode(blob))
    pos = 0

    def uv() -> int:
        nonlocal pos
        v, shift = 0, 0
        while True:
            b = data[pos]
            pos += 1
            v |= (b & 127) << shift
            shift += 7
            if not b & 128:
                return v

    def zz() -> int:
        v = uv()
        return -(v + 1) // 2 if v % 2 else v // 2

    n, npoly, nring, nref, _ = (uv() for _ in range(5))
    ppp = [uv() for _ in range(n)]
    rpp = [uv() for _ in range(npoly)]
    ppr = [uv() for _ in range(nring)]
    cls = [uv() for _ in range(n)]
    area = [uv() for _ in range(n)]
    refs = [uv() for _ in range(nref)]
    pre = [uv() for _ in range(n)]
    num, names = 0, []
    for k in range(n):
        num += zz()
        prefix, width = ids[pre[k]]
        names.append(f"{prefix}{num:0{width}d}" if width else str(prefix))
    x = y = 0
    table: list[tuple[int, int]] = []
    out = []
    ri = pi = qi = 0
    for k in range(n):
        rings = []
        for _ in range(ppp[k]):
            for _ in range(rpp[pi]):
                ring = []
                for _ in range(ppr[ri]):
                    if refs[qi] == 0:
                        x += zz()
                        y += zz()
                        table.append((x, y))
                        ring.append(table[-1])
                    else:
                        ring.append(table[len(table) - refs[qi]])
                    qi += 1
                rings.append(ring)
                ri += 1
            pi += 1
        out.append((names[k], cls[k], area[k], rings))
    return out


def test_a_grid_round_trips_with_shared_vertices_stored_once() -> None:
    # 3 x 2 unit cells of 1e-3 degree near Qingyuan: 12 corners, 24 corner uses
    x0, y0, d = 112.5, 24.3, 1e-3
    cells = [shapely.box(x0 + i * d, y0 + j * d, x0 + (i + 1) * d, y0 + (j + 1) * d)
             for j in range(2) for i in range(3)]
    geoms = np.array([shapely.MultiPolygon([c]) for c in cells], dtype=object)
    ids = np.array([f"QY{k:05d}" for k in range(1, 7)], dtype=object)
    enc = encode_tiles(geoms, np.array([0, 1, 0, 1, 0, 2]), np.arange(6) * 10.4, ids)
    assert enc["z"] == TILE_ZOOM and enc["ids"] == [["QY", 5]]
    assert len(enc["tiles"]) == 1  # all in one zoom-13 tile
    (key, blob), = enc["tiles"].items()
    tx, ty = tile_of(np.array([x0]), np.array([y0]), TILE_ZOOM)[0]
    assert key == f"{tx}/{ty}"
    raw = zlib.decompress(base64.b64decode(blob))
    patches = _decode(blob, enc["ids"])
    assert [p[0] for p in patches] == list(ids)
    assert [p[1] for p in patches] == [0, 1, 0, 1, 0, 2]
    assert [p[2] for p in patches] == [0, 10, 21, 31, 42, 52]  # rounded to m²
    for (_, _, _, rings), cell in zip(patches, cells, strict=True):
        want = np.rint(shapely.get_coordinates(cell)[:-1] * 1e5).astype(int)
        assert len(rings) == 1 and [list(p) for p in rings[0]] == want.tolist()
    # the header says 24 references but only 12 vertices: each corner stored once
    assert raw[3] == 24 and raw[4] == 12
    # every patch reaches nowhere beyond its tile: pad is one quantum
    assert enc["pad"] == 1e-5


def test_ids_without_a_number_and_empty_input() -> None:
    geoms = np.array([shapely.box(112.5, 24.3, 112.501, 24.301)] * 2, dtype=object)
    enc = encode_tiles(geoms, np.array([0, 0]), np.array([1.0, np.nan]),
                       np.array(["东-A", "P9"], dtype=object))
    (blob,) = enc["tiles"].values()
    patches = _decode(blob, enc["ids"])
    assert [p[0] for p in patches] == ["东-A", "P9"]
    assert [p[2] for p in patches] == [1, 0]  # a missing area shows 0
    empty = encode_tiles(np.array([], dtype=object), np.array([], dtype=int),
                         np.array([]), np.array([], dtype=object))
    assert empty["tiles"] == {}

"""Private: the stock part of optimal mode — which projects get a parcel, from one LP (R18).

Projects whose site is not fixed can be served only by one stock parcel each.  The
sets of projects that can be given distinct parcels form a transversal matroid, so
the lexicographic optimum (the levels' totals, then the R18 vector) is the greedy walk
in one order, and any weights strictly decreasing along that order have it as their
unique maximum; the parcels' chained flow is a network matrix, whose LP has integral
vertices.  See :func:`_solve_stock` and ``docs/allocation.md``.
"""

from __future__ import annotations

import highspy
import numpy as np

from landquota.allocation.highs import BoolArray, FloatArray, IntArray, _lp, _new_highs


def _solve_stock(
    score: FloatArray,
    rank: IntArray,
    edge_item: IntArray,
    edge_node: IntArray,
    node_class: IntArray,
) -> BoolArray:
    """Return which projects get a parcel: the stock part's lexicographic optimum, one LP.

    Project ``j`` has ``score[j]`` and R18 position ``rank[j]``; arc ``e`` lets project
    ``edge_item[e]`` enter chain node ``edge_node[e]``; nodes of one planned use are
    consecutive, sorted by area, and ``node_class`` says which chain a node is in.

    Columns: ``y`` per project (matched), ``x`` per entry arc, ``g`` per chain arc,
    ``u`` per parcel (used); rows: ``y_j − Σ x = 0`` per project and the flow
    balance ``in(x) + g_prev − g_next − u_v = 0`` per parcel.  Weights ``s, s−1, …, 1``
    along the greedy order (positive scores in R18 order, then score 0 in R18 order)
    make the matroid's greedy set the unique optimum, and the network matrix makes
    that optimum an integral vertex.  Should HiGHS return a fractional ``y`` anyway
    (it does not on any instance we know), the same weights are solved as a MILP.
    """
    s = int(score.shape[0])
    if s == 0:
        return np.zeros(0, dtype=bool)
    e = int(edge_item.shape[0])
    n_node = int(node_class.shape[0])
    same_next = np.zeros(n_node, dtype=bool)
    if n_node > 1:
        same_next[:-1] = node_class[:-1] == node_class[1:]
    arc_from = np.flatnonzero(same_next)
    n_arc = int(arc_from.size)
    c_y, c_x = 0, s
    c_g = c_x + e
    c_u = c_g + n_arc
    n_col = c_u + n_node
    upper = np.ones(n_col)
    upper[c_g:c_u] = float(s)
    g_cols = c_g + np.arange(n_arc, dtype=np.int64)
    rows = np.concatenate(
        (
            np.arange(s, dtype=np.int64),
            edge_item.astype(np.int64),
            s + edge_node.astype(np.int64),
            s + arc_from + 1,
            s + arc_from,
            s + np.arange(n_node, dtype=np.int64),
        )
    )
    cols = np.concatenate(
        (
            c_y + np.arange(s, dtype=np.int64),
            c_x + np.arange(e, dtype=np.int64),
            c_x + np.arange(e, dtype=np.int64),
            g_cols,
            g_cols,
            c_u + np.arange(n_node, dtype=np.int64),
        )
    )
    vals = np.concatenate(
        (np.ones(s), -np.ones(e), np.ones(e), np.ones(n_arc), -np.ones(n_arc), -np.ones(n_node))
    )
    zero = np.zeros(s + n_node)
    integer = np.zeros(n_col, dtype=bool)
    lp = _lp(n_col, np.zeros(n_col), upper, (rows, cols, vals), zero, zero)
    # the greedy order: positive scores first, each group in R18 rank order
    order = np.lexsort((rank, score <= 0))
    weight = np.empty(s)
    weight[order] = np.arange(s, 0, -1, dtype=np.float64)
    lp.col_cost_ = np.concatenate((weight, np.zeros(n_col - s)))
    for attempt in ("lp", "mip"):
        if attempt == "mip":
            integer[c_y:c_x] = True
            lp.integrality_ = [
                highspy.HighsVarType.kInteger if t else highspy.HighsVarType.kContinuous
                for t in integer
            ]
        h = _new_highs()
        h.setOptionValue("random_seed", 0)
        h.passModel(lp)
        h.run()
        if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            continue
        y = np.asarray(h.getSolution().col_value, dtype=np.float64)[c_y:c_x]
        if np.all(np.abs(y - np.round(y)) <= 1e-6):
            return np.asarray(y > 0.5, dtype=bool)
    raise RuntimeError(  # pragma: no cover - a network LP and its MILP both failed
        "HiGHS could not solve the stock-matching network; report this instance"
    )

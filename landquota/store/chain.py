"""The hash chain of the quota ledger and the run record, and ``landquota verify``.

Every ledger entry and every run status change that landquota writes gets one
link in the table ``ledger_chain``, in the same transaction as the write::

    hash = SHA-256(previous hash ‖ canonical record)

(the previous hash as its 32 raw bytes, 32 zero bytes before the first link;
the record as UTF-8). The canonical record (:func:`canonical_entry`,
:func:`canonical_run`) is one JSON array (RFC 8259, no whitespace, non-ASCII
kept as UTF-8, not escaped) whose first element names the record type and its
version and whose other elements are the fields in a fixed order, written the
same way whichever backend stored them:

* text as it is; NULL as ``null``; booleans ``true``/``false``; integers in
  decimal;
* amounts and other reals as **decimal text**: the shortest decimal that reads
  back as the same double (what Python's ``repr`` and PostgreSQL's ``float8out``
  give), written without exponent, without trailing zeros, ``"0"`` for ±0;
* dates ``YYYY-MM-DD``; timestamps UTC ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (the
  millisecond both backends keep).

So a GeoPackage exported to PostGIS and back keeps the same chain, and anyone
can recompute it with ``sqlite3``/``psql`` and ``sha256sum``.

The chain *head* is the last link: ``<seq>:<first 16 hex digits of its hash>``
(:func:`head_digest`), short enough to file on paper. :func:`verify_frames`
(``landquota verify``) recomputes the chain, compares every entry and every
run with its link, checks R6 on the running balances by effective date and
that every committed run holds exactly its debits and every reverted run its
reversals, and names the first bad record. ``verify --head DIGEST`` proves the
workspace still holds (extends) a head filed earlier.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, cast

import numpy as np
import pandas as pd

from landquota.errors import DataError, LedgerError, ParameterError

__all__ = [
    "ALLOCATION_FIELDS",
    "ENTRY_FIELDS",
    "GENESIS",
    "RUN_FIELDS",
    "Finding",
    "VerifyReport",
    "allocations_digest",
    "canonical_entry",
    "canonical_override",
    "canonical_run",
    "chain_head",
    "chain_items",
    "decimal_text",
    "head_digest",
    "link_hash",
    "new_links",
    "parse_head",
    "verify_frames",
]

#: The "previous hash" of the first link.
GENESIS = "0" * 64

#: Fields of a ledger entry, in chain order (``quota_ledger/1``).
ENTRY_FIELDS: tuple[tuple[str, str], ...] = (
    ("entry_id", "text"),
    ("pool", "text"),
    ("kind", "text"),
    ("amount", "real"),
    ("year", "integer"),
    ("effective_date", "date"),
    ("source", "text"),
    ("project_id", "text"),
    ("run_id", "text"),
    ("reverses", "text"),
    ("entered_at", "datetime"),
    ("entered_by", "text"),
    ("note", "text"),
)

#: Fields of a run, in chain order (``allocation_runs/1``); the digest of its
#: allocations (:func:`allocations_digest`) follows them.
RUN_FIELDS: tuple[tuple[str, str], ...] = (
    ("run_id", "text"),
    ("created_at", "datetime"),
    ("created_by", "text"),
    ("mode", "text"),
    ("as_of", "date"),
    ("scenario", "text"),
    ("params", "text"),
    ("input_digest", "text"),
    ("software_version", "text"),
    ("forced", "boolean"),
    ("status", "text"),
    ("status_changed_at", "datetime"),
    ("status_changed_by", "text"),
)

#: Fields of an allocation row, in digest order (``allocations/1``).
ALLOCATION_FIELDS: tuple[tuple[str, str], ...] = (
    ("allocation_id", "text"),
    ("run_id", "text"),
    ("project_id", "text"),
    ("outcome", "text"),
    ("fraction", "real"),
    ("need_new_quota_m2", "real"),
    ("need_comp_area_m2", "real"),
    ("need_comp_paddy_m2", "real"),
    ("need_comp_grain_kg", "real"),
    ("new_quota_m2", "real"),
    ("linkage_quota_m2", "real"),
    ("comp_area_m2", "real"),
    ("comp_paddy_m2", "real"),
    ("comp_grain_kg", "real"),
    ("stock_id", "text"),
    ("approval_level", "text"),
    ("reasons", "text"),
)

ENTRY_TAG = "quota_ledger/1"
RUN_TAG = "allocation_runs/1"
OVERRIDE_TAG = "restore_override/1"

#: allocation amount column → pool it debits (as ``landquota.rules.ledger.debit_entries``)
POOL_OF_COLUMN = {
    "new_quota_m2": "new_construction",
    "linkage_quota_m2": "linkage_surplus",
    "comp_area_m2": "comp_area",
    "comp_paddy_m2": "comp_paddy",
    "comp_grain_kg": "comp_grain",
}
#: a run's debits match its allocations to within this (m² or kg; float sums)
RUN_TOLERANCE = 1e-3


# --- canonical form ------------------------------------------------------------------------
def decimal_text(x: float) -> str:
    """Write *x* as the shortest decimal that reads back as it, without exponent."""
    v = float(x)
    if not math.isfinite(v):
        raise DataError(f"amount {x!r} is not a finite number; the ledger holds finite amounts")
    if v == 0:
        return "0"
    s = format(Decimal(repr(v)), "f")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s


def _cell(typ: str, v: Any) -> Any:
    if v is None or (not isinstance(v, (str, bytes)) and bool(pd.isna(v))):
        return None
    if typ == "text":
        return str(v)
    if typ == "real":
        return decimal_text(float(v))
    if typ == "integer":
        return int(v)
    if typ == "boolean":
        return bool(v)
    if typ == "date":
        return pd.Timestamp(v).strftime("%Y-%m-%d")
    if typ == "datetime":
        t = pd.Timestamp(v)
        t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
        t = t.floor("ms")
        return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"
    raise AssertionError(typ)  # pragma: no cover - the field lists are fixed


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): v for k, v in r.items()} for r in df.to_dict("records")]


def _dumps(values: Sequence[Any]) -> str:
    return json.dumps(list(values), ensure_ascii=False, separators=(",", ":"))


def _values(row: Mapping[str, Any], fields: Sequence[tuple[str, str]]) -> list[Any]:
    return [_cell(typ, row.get(name)) for name, typ in fields]


def canonical_entry(row: Mapping[str, Any]) -> str:
    """Return the canonical record of one ledger entry (a row of ``quota_ledger``)."""
    return _dumps([ENTRY_TAG, *_values(row, ENTRY_FIELDS)])


def allocations_digest(allocations: pd.DataFrame) -> str:
    """SHA-256 of a run's allocations: one canonical JSON array per row, by allocation id."""
    h = hashlib.sha256()
    if len(allocations):
        rows = allocations.sort_values("allocation_id", kind="stable").pipe(_records)
        for r in rows:
            h.update(_dumps(["allocations/1", *_values(r, ALLOCATION_FIELDS)]).encode("utf-8"))
            h.update(b"\n")
    return h.hexdigest()


def canonical_run(row: Mapping[str, Any], allocations: pd.DataFrame) -> str:
    """Return the canonical record of a run in its current status, with its allocations."""
    return _dumps([RUN_TAG, *_values(row, RUN_FIELDS), allocations_digest(allocations)])


def canonical_override(
    *, at: Any, by: str, backup: str, reason: str, problems: Sequence[str]
) -> str:
    """Return the canonical record of a restore that overrode a failed verification."""
    return _dumps(
        [OVERRIDE_TAG, _cell("datetime", at), by, backup, reason, [str(p) for p in problems]]
    )


def link_hash(prev_hash: str, payload: str) -> str:
    """``SHA-256(previous hash as 32 bytes ‖ payload as UTF-8)``, in hex."""
    return hashlib.sha256(bytes.fromhex(prev_hash) + payload.encode("utf-8")).hexdigest()


def new_links(
    last_seq: int, last_hash: str | None, items: Sequence[tuple[str, str, str]]
) -> pd.DataFrame:
    """``ledger_chain`` rows continuing a chain that ends at (*last_seq*, *last_hash*).

    *items* are ``(kind, ref_id, payload)`` with kind ``entry``, ``run`` or
    ``override``.
    """
    prev = last_hash or GENESIS
    rows = []
    for i, (kind, ref, payload) in enumerate(items, start=last_seq + 1):
        h = link_hash(prev, payload)
        rows.append(
            {
                "link_id": f"{i:010d}",
                "seq": i,
                "kind": kind,
                "ref_id": ref,
                "payload": payload,
                "prev_hash": prev,
                "hash": h,
            }
        )
        prev = h
    cols = ["link_id", "seq", "kind", "ref_id", "payload", "prev_hash", "hash"]
    return pd.DataFrame(rows, columns=cols)


def chain_items(
    entries: pd.DataFrame | None,
    run: pd.DataFrame | None = None,
    allocations: pd.DataFrame | None = None,
) -> list[tuple[str, str, str]]:
    """``(kind, ref_id, payload)`` of new ledger entries (in write order), then of a run."""
    items = []
    if entries is not None:
        items += [("entry", str(r["entry_id"]), canonical_entry(r)) for r in entries.pipe(_records)]
    if run is not None and len(run):
        row = _records(run.iloc[:1])[0]
        a = allocations if allocations is not None else pd.DataFrame(columns=[f for f, _ in ALLOCATION_FIELDS])
        items.append(("run", str(row["run_id"]), canonical_run(row, a)))
    return items


def head_digest(chain: pd.DataFrame) -> str:
    """Return the chain head to file on paper: ``<seq>:<16 hex digits>`` of the last link."""
    if not len(chain):
        return "0:" + GENESIS[:16]
    last = chain.sort_values("seq").iloc[-1]
    return f"{int(last['seq'])}:{str(last['hash'])[:16]}"


def parse_head(text: str) -> tuple[int | None, str]:
    """Read a filed head ``SEQ:HEX`` (or a bare hex prefix of at least 12 digits)."""
    t = text.strip().lower()
    seq: int | None = None
    hexpart = t
    if ":" in t:
        a, hexpart = t.split(":", 1)
        if not a.isdigit():
            raise ParameterError(f"--head {text!r}: expected SEQ:HEX as printed, e.g. 42:3f5a9c1e7b2d4a60")
        seq = int(a)
    if len(hexpart) < 12 or any(c not in "0123456789abcdef" for c in hexpart):
        raise ParameterError(
            f"--head {text!r}: expected SEQ:HEX as printed by `landquota ledger` "
            "(at least 12 hex digits), e.g. 42:3f5a9c1e7b2d4a60"
        )
    return seq, hexpart


# --- verification ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Finding:
    """One problem ``verify`` found: the record, what is wrong, and where in history."""

    ref: str  # "entry X", "run R", "link N", "head"
    problem: str
    order: float = math.inf  # position in history (chain seq or row order), for "first"

    def __str__(self) -> str:
        return f"{self.ref}: {self.problem}"


@dataclass
class VerifyReport:
    """What :func:`verify_frames` found."""

    head: str
    links: int
    entries: int
    runs: int
    findings: list[Finding] = field(default_factory=list)
    head_checked: str | None = None

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        return not self.findings

    @property
    def first(self) -> Finding | None:
        """The earliest problem in history."""
        return min(self.findings, key=lambda f: f.order) if self.findings else None

    def summary(self) -> str:
        """Human-readable report (Chinese/English)."""
        lines = [
            f"链头 chain head {self.head} ({self.links} links; {self.entries} ledger entries, "
            f"{self.runs} runs)"
        ]
        if self.head_checked:
            lines.append(
                f"  filed head {self.head_checked}: "
                + ("extended ✓" if not any(f.ref == "head" for f in self.findings) else "NOT found ✗")
            )
        if self.ok:
            lines.append("校验通过 verified: chain intact, R6 holds, runs match their ledger entries")
            return "\n".join(lines)
        first = self.first
        assert first is not None
        lines.append(f"校验失败 NOT verified: {len(self.findings)} problem(s); first: {first}")
        for f in sorted(self.findings, key=lambda f: f.order):
            lines.append(f"  - {f}")
        return "\n".join(lines)


def _json(payload: str) -> list[Any]:
    try:
        v = json.loads(payload)
    except ValueError:
        return []
    return v if isinstance(v, list) else []


def _diff(chained: list[Any], now: list[Any], fields: Sequence[tuple[str, str]]) -> str:
    out = []
    for i, (name, _typ) in enumerate(fields, start=1):
        a = chained[i] if i < len(chained) else None
        b = now[i] if i < len(now) else None
        if a != b:
            out.append(f"{name} is {b!r} but was chained as {a!r}")
    if len(now) > len(fields) + 1 and (len(chained) <= len(fields) + 1 or chained[-1] != now[-1]):
        out.append("its allocations changed after it was chained")
    return "; ".join(out) or "its record differs from the chained one"


def _who(row: Mapping[str, Any], at: str, by: str, stamp: str | None) -> str:
    when = _cell("datetime", row.get(at))
    who = row.get(by)
    s = f"by {who!r} at {when}" if who is not None else f"at {when}"
    if stamp:
        s += f"; the file stamped the write at {stamp}"
    return s


def verify_frames(
    frames: Mapping[str, pd.DataFrame],
    *,
    head: str | None = None,
    write_stamps: Mapping[str, str] | None = None,
) -> VerifyReport:
    """Check the chain, R6 and the run life cycle on a snapshot of a workspace.

    Parameters
    ----------
    frames : mapping
        Canonical frames of ``quota_ledger``, ``allocation_runs``, ``allocations``
        and ``ledger_chain`` (as :func:`landquota.store.backup.read_snapshot` reads
        them), rows in the order they were written.
    head : str, optional
        A head filed earlier (``SEQ:HEX``): the chain must still hold it.
    write_stamps : mapping, optional
        ``{entry_id: time}`` stamped by the GeoPackage's own trigger when the row
        was written, named for unchained entries.
    """
    entries = frames["quota_ledger"].reset_index(drop=True)
    runs = frames["allocation_runs"].reset_index(drop=True)
    allocs = frames["allocations"]
    chain = frames["ledger_chain"].sort_values("seq", kind="stable").reset_index(drop=True)
    stamps = dict(write_stamps or {})
    rep = VerifyReport(
        head=head_digest(chain), links=len(chain), entries=len(entries), runs=len(runs)
    )
    add = rep.findings.append
    n_links = len(chain)

    # 1. the chain itself
    prev = GENESIS
    for i, link in enumerate(chain.pipe(_records)):
        seq = int(link["seq"])
        where = f"link {seq} ({link['kind']} {link['ref_id']})"
        if seq != i + 1 or str(link["link_id"]) != f"{seq:010d}":
            add(Finding(where, f"is at position {i + 1} of the chain: a link was removed or inserted", seq))
        if str(link["prev_hash"]) != prev:
            add(Finding(where, "does not follow the link before it (prev_hash differs): links were removed, inserted or rewritten", seq))
        elif link_hash(prev, str(link["payload"])) != str(link["hash"]):
            add(Finding(where, "its hash does not match its content: the link was edited", seq))
        prev = str(link["hash"])

    # 2. ledger entries against their links
    entry_links: dict[str, list[dict[str, Any]]] = {}
    run_links: dict[str, list[dict[str, Any]]] = {}
    for link in chain.pipe(_records):
        if link["kind"] == "entry":
            entry_links.setdefault(str(link["ref_id"]), []).append(link)
        elif link["kind"] == "run":
            run_links.setdefault(str(link["ref_id"]), []).append(link)
    present = set()
    for pos, row in enumerate(entries.pipe(_records)):
        eid = str(row["entry_id"])
        present.add(eid)
        mine = entry_links.get(eid, [])
        if not mine:
            add(
                Finding(
                    f"entry {eid}",
                    "is not in the chain: written outside landquota (sqlite3, QGIS, psql) "
                    + _who(row, "entered_at", "entered_by", stamps.get(eid)),
                    n_links + 1 + pos,
                )
            )
            continue
        link = mine[0]
        now = canonical_entry(row)
        if str(link["payload"]) != now:
            add(
                Finding(
                    f"entry {eid}",
                    "was changed after it was written: "
                    + _diff(_json(str(link["payload"])), _json(now), ENTRY_FIELDS),
                    int(link["seq"]),
                )
            )
        if len(mine) > 1:
            add(Finding(f"entry {eid}", f"is chained {len(mine)} times", int(mine[1]["seq"])))
    for eid, links in entry_links.items():
        if eid not in present:
            add(
                Finding(
                    f"entry {eid}",
                    f"is missing: it was chained at link {int(links[0]['seq'])} and has been "
                    "deleted from the ledger",
                    int(links[0]["seq"]),
                )
            )

    # 3. runs against their links, and against their ledger entries
    by_run_alloc = {k: g for k, g in allocs.groupby("run_id", sort=False)} if len(allocs) else {}
    empty_alloc = allocs.iloc[0:0]
    run_ids = set()
    for pos, row in enumerate(runs.pipe(_records)):
        rid = str(row["run_id"])
        run_ids.add(rid)
        mine = run_links.get(rid, [])
        status = str(row["status"])
        a = by_run_alloc.get(rid, empty_alloc)
        order = float(int(mine[-1]["seq"])) if mine else n_links + len(entries) + 1 + pos
        if status == "draft":
            if mine:
                add(Finding(f"run {rid}", "is a draft, but the chain records a status change of it: its status was changed back outside landquota", order))
        elif not mine:
            add(
                Finding(
                    f"run {rid}",
                    f"is {status}, but that status change is not in the chain: changed outside "
                    "landquota " + _who(row, "status_changed_at", "status_changed_by", None),
                    order,
                )
            )
        else:
            statuses = [(_json(str(lk["payload"])) + [None] * 12)[11] for lk in mine]
            for s0, s1 in itertools.pairwise(statuses):
                if (s0, s1) not in (("draft", "committed"), ("committed", "reverted")):
                    add(Finding(f"run {rid}", f"the chain records a change {s0} → {s1}, which is not a run life cycle step", order))
            now = canonical_run(row, a)
            if str(mine[-1]["payload"]) != now:
                add(
                    Finding(
                        f"run {rid}",
                        "was changed after its last status change: "
                        + _diff(_json(str(mine[-1]["payload"])), _json(now), RUN_FIELDS),
                        order,
                    )
                )
        for problem in _run_ledger_problems(rid, status, a, entries):
            add(Finding(f"run {rid}", problem, order))
    for rid, links in run_links.items():
        if rid not in run_ids:
            add(Finding(f"run {rid}", f"is missing: chained at link {int(links[0]['seq'])}, deleted since", int(links[0]["seq"])))

    # 4. R6 on running balances by effective date
    if len(entries):
        from landquota.store.ledger_check import check_nonnegative

        try:
            check_nonnegative(entries)
        except (LedgerError, DataError) as exc:
            add(Finding("R6", str(exc), _r6_order(str(exc), entries, entry_links)))

    # 5. a head filed earlier
    if head is not None:
        rep.head_checked = head
        filed_seq, hexpart = parse_head(head)
        cand = chain if filed_seq is None else chain[chain["seq"] == filed_seq]
        if filed_seq == 0 and hexpart == GENESIS[: len(hexpart)]:
            pass  # the empty chain: every chain extends it
        elif not cand["hash"].astype(str).str.startswith(hexpart).any():
            have = "" if filed_seq is None or not len(cand) else f" (link {filed_seq} is now {str(cand['hash'].iloc[0])[:16]})"
            add(Finding("head", f"the filed head {head} is not in this chain{have}: this workspace does not extend the record filed", 0))
    return rep


def _r6_order(msg: str, entries: pd.DataFrame, links: Mapping[str, list[dict[str, Any]]]) -> float:
    for eid, lk in links.items():
        if f"'{eid}'" in msg:
            return float(int(lk[0]["seq"]))
    return math.inf


def _run_ledger_problems(
    rid: str, status: str, allocs: pd.DataFrame, entries: pd.DataFrame
) -> list[str]:
    """List how the run differs from exactly its debits (and, if reverted, its reversals)."""
    own = entries[entries["run_id"] == rid]
    debits = own[own["kind"] == "allocation"]
    reversals = own[own["kind"] == "reversal"]
    out: list[str] = []
    if status == "draft":
        if len(own):
            out.append(f"is a draft but has {len(own)} ledger entries ({', '.join(own['entry_id'].astype(str).head(3))}…)")
        return out
    for col, pool in POOL_OF_COLUMN.items():
        need = float(allocs[col].fillna(0).sum()) if col in allocs.columns else 0.0
        got = -float(debits.loc[debits["pool"] == pool, "amount"].sum())
        if abs(need - got) > RUN_TOLERANCE:
            out.append(
                f"is {status}, but its debits of pool {pool} total {decimal_text(got)} where its "
                f"allocations give {decimal_text(need)} (debits deleted, added or changed)"
            )
    if status == "committed" and len(reversals):
        out.append(f"is committed but has {len(reversals)} reversal entries (status changed outside landquota?)")
    if status == "reverted":
        rev_of = reversals.groupby("reverses")["amount"].agg(["sum", "count"]) if len(reversals) else None
        for d in debits.itertuples(index=False):
            eid = str(d.entry_id)
            if rev_of is None or eid not in rev_of.index:
                out.append(f"is reverted, but its debit {eid} has no reversal")
            elif int(cast(Any, rev_of.loc[eid, "count"])) != 1 or not np.isclose(
                float(cast(Any, rev_of.loc[eid, "sum"])), -float(cast(Any, d.amount)), rtol=0, atol=RUN_TOLERANCE
            ):
                out.append(f"is reverted, but the reversal of its debit {eid} does not cancel it")
    return out


# --- on a workspace ------------------------------------------------------------------------------
#: The layers verification reads.
VERIFY_LAYERS = ("quota_ledger", "allocation_runs", "allocations", "ledger_chain")


def chain_head(ws: Any) -> str:
    """Return the head of a workspace's chain (``<seq>:<16 hex>``), to print and to file."""
    return head_digest(ws.read_layer("ledger_chain", columns=["seq", "hash"]))

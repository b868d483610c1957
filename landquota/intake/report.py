"""The report of one import: rows, encoding, CRS, repairs and rejects (:class:`ImportReport`).

Every step of an import (:mod:`landquota.intake.importer`) writes what it did here:
the encoding chosen (:mod:`~landquota.intake.sources`), the field map
(:mod:`~landquota.intake.mapping`), the CRS (:mod:`~landquota.intake.crs`), the rows
repaired and rejected (:mod:`~landquota.intake.convert`). ``landquota import`` prints
its :meth:`~ImportReport.summary`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["ImportReport"]


@dataclass
class ImportReport:
    """What an import did: rows, encoding, CRS, repairs and rejects.

    Attributes
    ----------
    source, layer, src_layer, driver : str
        The file, the workspace layer written, the layer read and GDAL's driver.
    mode : {'replace', 'append', 'update'}
        How the layer was written.
    rows_read, rows_imported : int
        Features read from the source and rows written to the workspace.
    rows_before : int
        Rows the layer held before a replace (0 for an append).
    encoding : str
        The text encoding used (``'utf-8'``, ``'gb18030'``, or the override).
    encoding_note : str
        How it was chosen (declared, detected, given).
    source_crs : str
        The CRS of the source (``'EPSG:4547'``), as read or as given.
    transformed : bool
        Whether coordinates were transformed to EPSG:4490.
    swapped_xy : bool
        Whether x and y were swapped on request.
    field_map : dict
        Source field → contract column.
    ignored_fields : list of str
        Source fields not stored.
    standard_not_stored : list of str
        Those of them that are standard survey fields the contract does not keep
        (QSXZ 权属性质, GDLX 耕地类型, KCDLBM 扣除地类编码 …): recognised, not overlooked.
    repaired : list of dict
        One entry per repaired geometry: ``row``, ``id``, ``reason``.
    rejected : list of dict
        One entry per rejected row: ``row``, ``id``, ``reason``.
    dropped_z : bool
        Whether Z or M values were dropped.
    unknown_land_classes : dict
        Unknown land class code → number of rows (parcels only; stored as they
        are, reported, and flagged by ``landquota validate`` as LQ-002).
    warnings : list of str
        Anything else the user should know (datum accuracy, DLMC mismatches…).
    seconds : float
        Wall time.
    """

    source: str
    layer: str
    src_layer: str | None = None
    driver: str = ""
    mode: str = "replace"
    rows_read: int = 0
    rows_imported: int = 0
    rows_before: int = 0
    encoding: str = "utf-8"
    encoding_note: str = ""
    source_crs: str = ""
    transformed: bool = False
    swapped_xy: bool = False
    field_map: dict[str, str] = field(default_factory=dict)
    ignored_fields: list[str] = field(default_factory=list)
    standard_not_stored: list[str] = field(default_factory=list)
    repaired: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    dropped_z: bool = False
    unknown_land_classes: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        """Return a short Chinese/English summary for the command line."""
        lines = [
            f"已导入 imported {self.rows_imported:,} / {self.rows_read:,} 行 rows "
            f"from {self.source!r} into layer {self.layer!r} ({self.mode}"
            + (f", {self.rows_before:,} rows before" if self.mode == "replace" else "")
            + f") in {self.seconds:.1f} s",
            f"编码 encoding: {self.encoding} ({self.encoding_note})",
            f"坐标系 CRS: {self.source_crs}"
            + (" → EPSG:4490" if self.transformed else "")
            + (" (x/y swapped on request)" if self.swapped_xy else ""),
            f"修复 repaired geometries: {len(self.repaired)}; 拒绝 rejected rows: {len(self.rejected)}"
            + ("; Z/M dropped" if self.dropped_z else ""),
        ]
        for r in (self.repaired[:5] + self.rejected[:5]):
            lines.append(f"  row {r['row']} ({r['id']!r}): {r['reason']}")
        if self.unknown_land_classes:
            codes = ", ".join(f"{k!r}×{v}" for k, v in sorted(self.unknown_land_classes.items())[:10])
            lines.append(f"未知地类 unknown land classes (LQ-002): {codes}")
        if self.field_map:
            lines.append("字段 fields: " + ", ".join(f"{k} → {v}" for k, v in self.field_map.items()))
        if self.ignored_fields:
            std = set(self.standard_not_stored)
            lines.append(
                f"未导入字段 fields not stored: {', '.join(f + (' (standard)' if f in std else '') for f in self.ignored_fields)}"
            )
        lines += [f"警告 warning: {w}" for w in self.warnings]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Return the report as plain data (JSON-ready)."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

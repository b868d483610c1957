"""Terminal output a clerk can read: tables with Chinese and English headers, units, no NaN.

The CLI prints tables through :func:`render_table` (``rich`` draws them; nothing is padded
by hand). A cell never shows ``NaN``, ``NaT``, ``None``, ``True`` or ``False``: a missing
value is ``—``, a yes/no is ``是 yes`` / ``否 no``, a stored code is its Chinese and English
label (:mod:`landquota.labels`), an area is m² with hectares and mu (亩) beneath
(1 ha = 10,000 m² = 15 亩), a date is ISO. Reasons are counted and shown in Chinese with
their rule (:func:`reasons_text`). Dates typed by a person are parsed strictly
(:func:`parse_date`: ``YYYY-MM-DD`` only, ``20140430`` refused).

Examples
--------
>>> cell(float("nan"), "m2"), cell(True, "bool"), cell(164_700.0, "ha")
('—', '是 yes', '16.47 ha · 247.05 亩')
>>> reasons_text(["outranked", "outranked", "site_not_fixed"])
'指标优先保障了更高优先级项目 (R18) ×2；项目选址未定 ×1'
"""

from __future__ import annotations

import io
import math
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final, Literal

import pandas as pd

from landquota.errors import ParameterError
from landquota.labels import reasons_text

__all__ = ["Col", "cell", "parse_date", "reasons_text", "render_table"]

Kind = Literal["text", "m2", "ha", "kg", "yuan", "int", "float", "pct", "date", "bool"]

#: Shown for a missing value.
MISSING: Final = "—"
_YES, _NO = "是 yes", "否 no"
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
#: Dates a bureau's business can have (pandas timestamps end in 2262, XLSX stamps in 2107).
DATE_RANGE: Final = (date(1900, 1, 1), date(2100, 12, 31))


@dataclass(frozen=True)
class Col:
    """A column of a printed table: source column, Chinese and English header, kind.

    ``labels`` maps stored codes to their display labels (``landquota.labels.label_map``).
    """

    src: str
    zh: str
    en: str
    kind: Kind = "text"
    labels: Mapping[str, str] | None = None
    #: a column holding each row's unit (``m2`` or ``kg``, as the ledger's ``unit``): the
    #: value is then an area or a grain capacity row by row
    unit: str | None = None

    @property
    def header(self) -> str:
        """Chinese above English (two lines, so that columns stay narrow)."""
        return f"{self.zh}\n{self.en}"


def _missing(v: Any) -> bool:
    # an empty text (a list of nothing, a blank cell of an imported sheet) reads as missing too
    if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, str) and not v.strip()):
        return True
    if isinstance(v, float):
        return math.isnan(v)
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def cell(value: Any, kind: Kind = "text", labels: Mapping[str, str] | None = None) -> str:
    """Return one value as a clerk reads it (never ``NaN``, ``NaT``, ``True``, ``False``).

    Parameters
    ----------
    value : object
        The stored value.
    kind : str, default 'text'
        ``m2`` (area in m², shown with ha and 亩), ``ha``, ``kg``, ``yuan``, ``int``,
        ``float``, ``pct`` (a fraction shown as %), ``date``, ``bool`` or ``text``.
    labels : mapping, optional
        Display labels of stored codes.

    Returns
    -------
    str
    """
    if _missing(value):
        return MISSING
    if kind == "bool" or isinstance(value, bool):
        return _YES if bool(value) else _NO
    if labels is not None:
        return labels.get(str(value), str(value))
    if kind == "m2":
        x = float(value)
        return f"{x:,.0f} m²\n{x / 10_000:,.2f} ha · {x * 15 / 10_000:,.2f} 亩"
    if kind == "ha":
        x = float(value)
        return f"{x / 10_000:,.2f} ha · {x * 15 / 10_000:,.2f} 亩"
    if kind == "kg":
        return f"{float(value):,.0f} kg"
    if kind == "yuan":
        return f"{float(value):,.0f} 元"
    if kind == "int":
        return f"{int(value):,}"
    if kind == "float":
        return f"{float(value):,.2f}"
    if kind == "pct":
        return f"{100 * float(value):.1f}%"
    if kind == "date" or isinstance(value, date | datetime | pd.Timestamp):
        return pd.Timestamp(value).date().isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _width() -> int:
    # A pipe or a log file has no terminal: use a wide page rather than rich's 80 columns.
    return max(shutil.get_terminal_size(fallback=(160, 40)).columns, 100)


def render_table(
    frame: pd.DataFrame,
    columns: Sequence[Col],
    *,
    title: str | None = None,
    width: int | None = None,
) -> str:
    """Return *frame* as a boxed text table with Chinese/English headers.

    Parameters
    ----------
    frame : DataFrame
        The rows; columns of *columns* that it lacks are left out.
    columns : sequence of Col
        What to show, in order.
    title : str, optional
        Printed above the table.
    width : int, optional
        Characters per line; default: the terminal's (at least 100).

    Returns
    -------
    str
        Plain text (no colour codes), ready to print.
    """
    from rich.console import Console
    from rich.table import Table

    shown = [c for c in columns if c.src in frame.columns]
    table = Table(title=title, show_lines=False, title_justify="left")
    for c in shown:
        numeric = c.unit is not None or c.kind in ("m2", "ha", "kg", "yuan", "int", "float", "pct")
        table.add_column(c.header, justify="right" if numeric else "left", overflow="fold")
    records = [{str(k): v for k, v in r.items()} for r in frame.to_dict("records")]
    for values in records:
        table.add_row(*(cell(values[c.src], _kind(c, values), c.labels) for c in shown))
    out = io.StringIO()
    console = Console(
        file=out, width=width or _width(), color_system=None, highlight=False, emoji=False
    )
    console.print(table)
    return out.getvalue().rstrip("\n")


def _kind(c: Col, values: Mapping[str, Any]) -> Kind:
    if c.unit is None:
        return c.kind
    return "kg" if str(values.get(c.unit)) == "kg" else "m2"


def parse_date(value: str, *, option: str = "date") -> date:
    """Parse a date typed by a person: ``YYYY-MM-DD`` only.

    ``20140430``, ``2014/4/30`` and ``2014-4-30`` are refused rather than guessed (an
    ISO date is unambiguous; Python accepts ``20140430`` as ISO, a clerk may have meant
    something else).

    Parameters
    ----------
    value : str
        The text given.
    option : str, default 'date'
        The option's name, for the message (``--as-of``).

    Returns
    -------
    datetime.date

    Raises
    ------
    ParameterError
        Not ``YYYY-MM-DD``, not a calendar date, or outside 1900–2100.

    Examples
    --------
    >>> parse_date("2014-04-30")
    datetime.date(2014, 4, 30)
    """
    text = str(value)
    if not _DATE.fullmatch(text):
        raise ParameterError(
            f"{option} {value!r} is not a date in the form YYYY-MM-DD; write e.g. 2014-04-30"
        )
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise ParameterError(
            f"{option} {value!r} is not a calendar date; write e.g. 2014-04-30"
        ) from None
    first, last = DATE_RANGE
    if not first <= day <= last:
        raise ParameterError(
            f"{option} {value!r} is out of range; use a date from {first} to {last}"
        )
    return day

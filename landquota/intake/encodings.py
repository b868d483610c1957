"""Text encodings of bureau data: strict detection, and mojibake that must never be stored.

DBF-based sources (shapefiles) and CSV tables carry no reliable statement of their
encoding. Their bytes are tested strictly: UTF-8, else GB18030 (a superset of
GBK/CP936) (:func:`detect_encoding`). Text that still looks like Chinese decoded with
the wrong codec is refused by the conversion (:mod:`landquota.intake.convert`), which
uses the tests here. Choosing the encoding of one source, and reopening it with GDAL in
that encoding, is :func:`landquota.intake.sources._choose_encoding`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from landquota.errors import ImportDataError
from landquota.store.workspace import arrow_text

__all__ = ["detect_encoding"]


_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_HIGH_LATIN = re.compile(r"[\u0080-\u00ff]")


def _looks_mojibake(text: str) -> bool:
    """Tell whether *text* is Chinese bytes decoded with the wrong codec.

    U+FFFD means bytes were lost. Latin-1 letters (``'Ë®Ìï'``) that turn into
    Chinese once re-encoded as Latin-1/CP1252 and decoded as UTF-8 or GB18030
    are GBK or UTF-8 text read as Latin-1. A genuine ``'m²'`` does not decode.
    """
    if "\ufffd" in text:
        return True
    if not _HIGH_LATIN.search(text):
        return False
    for wrong in ("latin-1", "cp1252"):
        try:
            raw = text.encode(wrong)
        except UnicodeEncodeError:
            continue
        for right in ("utf-8", "gb18030"):
            try:
                if _CJK.search(raw.decode(right)):
                    return True
            except UnicodeDecodeError:
                continue
    return False


def detect_encoding(values: Sequence[bytes], *, declared: str | None = None) -> tuple[str, str]:
    """Choose the encoding of raw text values: strict UTF-8, else GB18030.

    Parameters
    ----------
    values : sequence of bytes
        The raw bytes of every text value (a DBF's fields, a CSV file).
    declared : str, optional
        What the file claims (a ``.cpg``); only reported.

    Returns
    -------
    encoding : str
        ``'utf-8'`` or ``'gb18030'`` (GB18030 is a superset of GBK/CP936, the
        usual encoding of Chinese shapefiles without ``.cpg``).
    note : str
        How it was chosen, for the report.

    Raises
    ------
    ImportDataError
        When the bytes are neither UTF-8 nor GB18030.

    Examples
    --------
    >>> detect_encoding(["水田".encode("gbk")])
    ('gb18030', 'detected: not UTF-8, valid GB18030 (GBK/CP936)')
    """
    claim = f"; the file declares {declared!r}" if declared else ""
    if all(v.isascii() for v in values):
        return "utf-8", "all text is ASCII" + claim
    for enc in ("utf-8", "gb18030"):
        try:
            for v in values:
                v.decode(enc)
        except UnicodeDecodeError:
            continue
        note = "detected: valid UTF-8" if enc == "utf-8" else "detected: not UTF-8, valid GB18030 (GBK/CP936)"
        return enc, note + claim
    raise ImportDataError(
        "text is neither UTF-8 nor GB18030/GBK; give the encoding with --encoding "
        "(e.g. --encoding big5 for traditional Chinese data)"
    )


#: GDAL's byte-for-byte recoding: every byte becomes the character of the same number.
_TRANSPORT = "ISO-8859-1"

#: Python codec names -> the names GDAL's recoder (iconv) knows.
_GDAL_CODECS = {"utf-8": "UTF-8", "gb18030": "GB18030", "gbk": "CP936", "gb2312": "GB2312",
                "big5": "BIG5", "big5hkscs": "BIG5-HKSCS", "latin-1": "ISO-8859-1",
                "iso8859-1": "ISO-8859-1", "cp1252": "CP1252", "utf-16": "UTF-16"}


def _gdal_codec(enc: str) -> str:
    import codecs

    name = codecs.lookup(enc).name
    return _GDAL_CODECS.get(name, name.upper())


def _may_hold_latin1(s: pd.Series) -> bool:
    """Tell whether a value of *s* may hold a character in U+0080–U+00FF or U+FFFD.

    In UTF-8 those characters, and only they, start with the bytes C2/C3 (or are
    EF BF BD), so one scan of the Arrow text buffer answers for a whole batch
    without a regular expression over every value. True means "look closer".
    """
    arr = arrow_text(s)
    if arr is None:
        return True
    if arr.null_count == len(arr):
        return False
    data = arr.buffers()[2]
    if data is None:
        return False
    b = np.frombuffer(data, dtype=np.uint8)
    if ((b == 0xC2) | (b == 0xC3)).any():
        return True
    ef = np.flatnonzero(b[:-2] == 0xEF)
    return bool(((b[ef + 1] == 0xBF) & (b[ef + 2] == 0xBD)).any())

"""The XLSX report prints: A4 landscape, whole tables per page, charts whole, CJK sans-serif.

The print test converts the report with LibreOffice (headless, Debian's
libreoffice-calc-nogui) and reads every PDF page back with poppler's pdftotext/pdffonts;
without them it skips (CI counts the skip as a failure).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import date
from pathlib import Path
from typing import Any

import openpyxl
import pandas as pd
import pytest

from landquota.outputs.reports import write_report
from landquota.outputs.symbology import CJK_FONT
from tests.sample import sample_layers

APRIL = date(2014, 4, 30)


def test_every_sheet_has_a_print_setup_and_the_cjk_font(tmp_path: Path) -> None:
    path = write_report(sample_layers(), out=tmp_path / "r.xlsx", as_of=APRIL)
    wb = openpyxl.load_workbook(path)
    for ws in wb.worksheets:
        ps = ws.page_setup
        assert ps.orientation == "landscape" and int(ps.paperSize) == 9, ws.title  # 9 = A4
        assert ws.sheet_properties.pageSetUpPr.fitToPage and int(ps.fitToWidth) == 1
        assert "&P" in ws.oddFooter.center.text and "&N" in ws.oddFooter.center.text
        assert ws.oddHeader.center.text == ws.title
        if ws.title != "图表 Charts":
            assert int(ps.fitToHeight) == 0  # as many pages tall as needed, never wider
            assert ws.print_title_rows == "$1:$1", ws.title  # the header row on every page
        else:
            assert int(ps.fitToHeight) == 1  # both charts on one page: never cut
        fonts = {c.font.name for row in ws.iter_rows() for c in row if c.value is not None}
        assert fonts == {CJK_FONT}, (ws.title, fonts)


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.skip(
            f"{name} is not installed; scripts/setup-system installs libreoffice-calc-nogui "
            "and poppler-utils"
        )
    return found


@pytest.fixture(scope="module")
def printed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    soffice, _ = _tool("soffice"), _tool("pdftotext")
    demo = pytest.importorskip("landquota.demo.build")
    layers: dict[str, pd.DataFrame] = demo.build_demo(seed=2014, n_parcels=2_000)
    folder = tmp_path_factory.mktemp("print")
    xlsx = write_report(layers, out=folder / "report.xlsx", as_of=APRIL)
    done = subprocess.run(
        [
            soffice,
            "--headless",
            "--norestore",
            f"-env:UserInstallation=file://{folder}/lo",
            "--convert-to",
            "pdf",
            "--outdir",
            str(folder),
            str(xlsx),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    pdf = folder / "report.pdf"
    assert done.returncode == 0 and pdf.exists(), done.stdout + done.stderr
    return xlsx, pdf


def _pages(pdf: Path) -> list[str]:
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True)
    n = int(re.search(r"Pages:\s+(\d+)", info.stdout).group(1))  # type: ignore[union-attr]
    return [
        subprocess.run(
            ["pdftotext", "-f", str(i), "-l", str(i), str(pdf), "-"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for i in range(1, n + 1)
    ]


def _squash(text: Any) -> str:
    return re.sub(r"\s+", "", str(text))  # wrapped header cells break lines anywhere


@pytest.mark.slow
def test_the_printed_report_has_whole_tables_and_whole_charts(printed: tuple[Path, Path]) -> None:
    xlsx, pdf = printed
    wb = openpyxl.load_workbook(xlsx)
    heads = {
        ws.title: (ws.cell(1, 1).value, ws.cell(1, ws.max_column).value) for ws in wb.worksheets
    }
    pages = _pages(pdf)
    assert len(pages) < 20  # was 84 pages of column strips
    seen: dict[str, int] = {}
    for number, text in enumerate(pages, start=1):
        title = text.strip().splitlines()[0].strip()  # the page header names the sheet
        assert title in heads, (number, title)
        seen[title] = seen.get(title, 0) + 1
        assert f"Page {number} of {len(pages)}" in text
        if title == "图表 Charts":
            continue
        first, last = heads[title]
        # every page of a table shows its header row, first to last column: no strips
        # (a header cell wraps, and pdftotext may give its lines apart: word by word)
        for cell in (first, last):
            for word in str(cell).split():
                assert word in _squash(text), (number, title, cell, word)
    assert set(seen) == set(heads)  # every sheet printed
    assert seen["图表 Charts"] == 1  # both charts on one page, whole
    charts = _squash(next(t for t in pages if t.startswith("图表")))
    assert _squash("指标池期末余额 Pool balances") in charts
    assert _squash("投资完成率与时间进度 Completion against time progress") in charts
    fonts = subprocess.run(
        ["pdffonts", str(pdf)], capture_output=True, text=True, check=True
    ).stdout
    assert "NotoSansCJK" in fonts
    assert not re.search(r"Serif|Times|Roman", fonts.replace("Sans", "")), fonts

"""Progress bars for long work (imports, overlays, big maps), on stderr."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class _NoBar:
    def update(self, n: int = 1) -> None:
        """Do nothing: progress is off."""

    def set_postfix_str(self, s: str) -> None:
        """Do nothing: progress is off."""


@contextmanager
def progress_bar(total: int | None, desc: str, *, enabled: bool) -> Iterator[Any]:
    """Yield a tqdm bar on stderr when *enabled*, else an object that ignores updates."""
    if not enabled:
        yield _NoBar()
        return
    from tqdm import tqdm

    # disable=None: no bar when stderr is not a terminal (CI logs, pipes)
    with tqdm(
        total=total,
        desc=desc,
        unit="row",
        file=sys.stderr,
        leave=False,
        mininterval=0.5,
        disable=None,
    ) as bar:
        yield bar

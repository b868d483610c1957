"""Listen to GDAL's own error reports while a source is read.

GDAL does not fail a read when a file is damaged: a shapefile whose ``.shp`` was
cut short (its ``.shx`` and ``.dbf`` intact) yields every feature with a null
geometry, and GDAL only reports ``ERROR 1: Error in fread() …`` through its error
handler, which by default prints to stderr. pyogrio's Arrow stream does not turn
these reports into exceptions, so an import used to "succeed" with 0 rows and
replace a layer with nothing (issue 12).

:func:`gdal_errors` pushes an error handler with GDAL's public C API
(``CPLPushErrorHandlerEx`` / ``CPLPopErrorHandler``) for the duration of a
``with`` block. GDAL's handler stack is per thread, so every thread that reads
the source (the importer's read-ahead thread included) enters the block itself;
all of them may share one :class:`GdalErrors` collector.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["GdalErrors", "gdal_errors"]

#: GDAL's CPLErr classes (cpl_error.h).
CE_WARNING, CE_FAILURE, CE_FATAL = 2, 3, 4

#: void (*CPLErrorHandler)(CPLErr eErrClass, CPLErrorNum nError, const char *pszMsg)
_HANDLER = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_int, ctypes.c_char_p)

_LIB: list[Any] = []  # the loaded library, once found (a list: set once, read often)

#: Every callback and token handed to GDAL, never freed (a few hundred bytes per read).
_KEEP: list[Any] = []
#: At most this many handlers leaked above ours are popped with it.
_MAX_LEAKED = 4


def _libgdal() -> Any:
    """Return the libgdal that pyogrio itself uses, or None.

    Asking the handle of pyogrio's own extension module finds the symbol in the
    library it was linked against (dlsym searches a handle's dependencies), so a
    second, different libgdal elsewhere on the system can never be picked up.
    """
    if _LIB:
        return _LIB[0]
    lib: Any = None
    try:
        import pyogrio._ogr as ogr_ext

        cand = ctypes.CDLL(str(ogr_ext.__file__))
        cand.CPLPushErrorHandlerEx  # noqa: B018 - raises AttributeError when not reachable
        lib = cand
    except (OSError, AttributeError, ImportError):
        # Windows: GetProcAddress does not search dependencies; use the DLL
        # shipped beside pyogrio (the wheels' "pyogrio.libs"), else the system's.
        import pyogrio

        here = Path(pyogrio.__file__).parent
        for path in [*sorted(here.parent.glob("pyogrio.libs/*gdal*")), *sorted(here.glob("*gdal*.dll"))]:
            try:
                lib = ctypes.CDLL(str(path))
                break
            except OSError:
                continue
        if lib is None and (name := ctypes.util.find_library("gdal")):
            lib = ctypes.CDLL(name)
    if lib is not None:
        lib.CPLPushErrorHandlerEx.argtypes = [_HANDLER, ctypes.c_void_p]
        lib.CPLPushErrorHandlerEx.restype = None
        lib.CPLPopErrorHandler.argtypes = []
        lib.CPLPopErrorHandler.restype = None
        lib.CPLGetErrorHandlerUserData.argtypes = []
        lib.CPLGetErrorHandlerUserData.restype = ctypes.c_void_p
    _LIB.append(lib)
    return lib


@dataclass
class GdalErrors:
    """What GDAL reported during a read: failures (errors) and warnings."""

    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: whether the handler could be installed (False: GDAL's library was not found)
    listening: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, klass: int, msg: str) -> None:
        """Record one report of class *klass* (warning, failure, fatal)."""
        with self._lock:
            target = self.failures if klass >= CE_FAILURE else self.warnings
            # A damaged file repeats the same report per feature: keep the first few.
            if len(target) < 20 and msg not in target:
                target.append(msg)

    def first(self, n: int = 3) -> str:
        """Return the first *n* failures on one line."""
        return "; ".join(self.failures[:n]) + (" …" if len(self.failures) > n else "")


@contextmanager
def gdal_errors(into: GdalErrors | None = None) -> Iterator[GdalErrors]:
    """Collect GDAL's errors and warnings on this thread while the block runs.

    GDAL then no longer prints them to stderr: the caller decides (the importer
    refuses a source GDAL reported any failure for); debug messages are dropped.
    Nesting, and one collector shared by several threads, are both fine.
    """
    errs = into if into is not None else GdalErrors()
    lib = _libgdal()
    if lib is None:  # pragma: no cover - pyogrio always ships or links libgdal
        yield errs
        return

    active = [True]

    def handler(klass: int, _num: int, msg: bytes | None) -> None:
        if active[0] and klass >= CE_WARNING:
            errs.add(klass, (msg or b"").decode("utf-8", "replace").strip())

    cb = _HANDLER(handler)
    # Our handler is known by its user data: the address of a buffer of our own.
    token = ctypes.create_string_buffer(1)
    mark = ctypes.addressof(token)
    # Kept for the life of the process: pyogrio's failed opens (e.g. list_layers on a
    # file that is not data) push a handler of their own and never pop it, so our pop
    # below could remove theirs and leave ours on GDAL's stack. A freed callback there
    # made the next GDAL warning on the thread crash the process (a segfault writing
    # a shapefile after an import refused "not spatial data").
    _KEEP.append((cb, token))
    lib.CPLPushErrorHandlerEx(cb, mark)
    errs.listening = True
    try:
        yield errs
    finally:
        active[0] = False
        # Pop down to and including ours: a handler left above it was leaked by the
        # read that failed, and nothing else will ever pop it.
        for _ in range(_MAX_LEAKED + 1):
            top = lib.CPLGetErrorHandlerUserData()
            lib.CPLPopErrorHandler()
            if top == mark:
                break

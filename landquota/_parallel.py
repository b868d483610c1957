"""Split GEOS work over the machine's cores; run a stream's stages on threads of their own.

Shapely 2's vectorised functions release the GIL, so chunks of one array can
run on threads in parallel; on a 2-core machine decoding and validating 10⁶
parcels takes about half the wall time. Small arrays stay on the calling thread,
where a pool's start-up would cost more than it saves. :func:`read_ahead` runs one
stage of a stream (reading and decoding an import's batches, building a
GeoPackage's rows) on a thread while the caller works on the previous item.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np

#: below this many items a call runs on the calling thread
MIN_PARALLEL = 20_000

T = TypeVar("T")
U = TypeVar("U")

_pool: ThreadPoolExecutor | None = None
_lock = threading.Lock()


def workers() -> int:
    """Threads to use: ``LANDQUOTA_THREADS`` if set, else the CPUs this process may use."""
    env = os.environ.get("LANDQUOTA_THREADS", "").strip()
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            raise ValueError(f"LANDQUOTA_THREADS={env!r}; give a whole number of threads, e.g. 2") from None
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def _executor(n: int) -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None or _pool._max_workers < n:
            _pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="landquota-geos")
        return _pool


def _in_pool() -> bool:
    # A task that itself called chunked() would wait for pool threads that are all
    # busy waiting: nested calls run on the calling (pool) thread instead.
    return threading.current_thread().name.startswith("landquota-geos")


def chunked(fn: Callable[..., Any], arr: np.ndarray, *args: Any, **kwargs: Any) -> np.ndarray:
    """Return ``fn(arr, *args, **kwargs)``, computed over chunks of *arr* on threads.

    *fn* must be elementwise (its result is one value per item of *arr*, in order),
    like ``shapely.from_wkb`` or ``shapely.is_valid``. The result is the same
    whatever the number of threads: each item is computed alone, in one chunk.
    """
    n = workers()
    if n == 1 or len(arr) < MIN_PARALLEL or _in_pool():
        return np.asarray(fn(arr, *args, **kwargs))
    parts = np.array_split(arr, n)
    results = list(_executor(n).map(lambda part: fn(part, *args, **kwargs), parts))
    return np.concatenate(results)


def run_all(tasks: Sequence[Callable[[], T]]) -> list[T]:
    """Run independent *tasks* on the threads, returning their results in order.

    For GEOS work that releases the GIL (STRtree queries, predicates, set
    operations). One task, one thread, or a call from a pool thread: run here.
    """
    n = workers()
    if n == 1 or len(tasks) < 2 or _in_pool():
        return [task() for task in tasks]
    return list(_executor(n).map(lambda task: task(), tasks))


def read_ahead(
    items: Iterator[T], fn: Callable[[T], U], depth: int = 2, *, name: str = "landquota-read-ahead"
) -> Iterator[tuple[T, U]]:
    """Yield ``(item, fn(item))``, with reading and *fn* done on a worker thread (named *name*).

    The worker stays at most *depth* items ahead, so memory stays bounded by a
    few batches. An exception in the worker (a read error, a bad file) is raised
    here, in the consumer, at the item where it happened; if the consumer stops
    early, the worker stops and the source is closed on its own thread.
    """
    q: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(msg: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                q.put(msg, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put(("item", (item, fn(item)))):
                    return
            put(("end", None))
        except BaseException as exc:  # handed to the consumer, which raises it
            put(("error", exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=work, name=name, daemon=True)
    worker.start()
    try:
        while True:
            kind, value = q.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        worker.join()

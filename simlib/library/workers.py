"""Run per-file functions on all cores, robust to crashes and Ctrl-C.

Each process computes on one thread (the models run single-threaded): parallelism comes
from the processes, and threads on top of them only contend. Workers are forked from a
fork server that has imported the analysis modules (`PRELOAD`) but computed nothing yet,
so the workers share those pages, and the coordinating process never loads a model.
They are started once per pool and reused by every `map`, ignore SIGINT so that the
parent alone decides what
happens on Ctrl-C, and hold at most two items each, so memory stays bounded
however many files there are. A worker that dies (a crash inside FFmpeg, say)
costs only the items in flight: those are retried one at a time in a fresh
process and, if they kill it again, reported as `WorkerCrash`.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

M_MMAP_THRESHOLD = -3  # glibc mallopt parameters
M_TRIM_THRESHOLD = -1
LIMITED_HEAP_BYTES = 128 * 1024
ROOMY_HEAP_BYTES = 32 * 1024 * 1024
PRELOAD = [
    "onnxruntime",
    "simlib.audio.features",
    "simlib.identify.model",
    "simlib.similar.model",
    "simlib.library.embedders",
]
"""Imported by the fork server before any worker forks from it. The server is one per
process, so this list is the same for every pool."""
_worker_state: dict[str, Any] = {}
_heap: dict[str, Any] = {}
"""The libc handle, once `limit_heap_growth` has tuned this process's malloc."""


class WorkerCrash(Exception):
    """The worker process died while handling this item."""


def limit_heap_growth() -> None:
    """Serve every allocation over 128 kB from mmap, so freed buffers go back to the system.

    Without it glibc's adaptive threshold lets a long track's feature temporaries
    fragment the heap (measured: +350 MB of peak RSS over a 30-minute file).
    """
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to tune
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, LIMITED_HEAP_BYTES)
        libc.mallopt(M_TRIM_THRESHOLD, LIMITED_HEAP_BYTES)
        _heap["libc"] = libc


@contextlib.contextmanager
def roomy_heap() -> Iterator[None]:
    """While models run, serve allocations up to 32 MB from the heap and keep it, then
    restore `limit_heap_growth` and give the free memory back.

    Network layers allocate and free the same few-MB tensors track after track; as fresh
    mmaps each costs page faults (measured: the similarity ensemble's embedding took 183
    instead of 88 ms for a 2-minute track). Does nothing unless `limit_heap_growth` ran.
    """
    libc = _heap.get("libc")
    if libc is None:
        yield
        return
    libc.mallopt(M_MMAP_THRESHOLD, ROOMY_HEAP_BYTES)
    libc.mallopt(M_TRIM_THRESHOLD, 2 * ROOMY_HEAP_BYTES)
    try:
        yield
    finally:
        libc.mallopt(M_MMAP_THRESHOLD, LIMITED_HEAP_BYTES)
        libc.mallopt(M_TRIM_THRESHOLD, LIMITED_HEAP_BYTES)
        libc.malloc_trim(0)


def _init_worker(setup: Callable[[], Any] | None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    limit_heap_growth()
    _worker_state["context"] = setup() if setup else None


def _call(func: Callable[[Any, T], R], item: T) -> R:
    return func(_worker_state["context"], item)


def _pid(_context: Any, _item: Any) -> int:
    return os.getpid()


class WorkerPool:
    """`map(func, items)` yields (item, func(context, item)); context = setup() per process.

    `func` and `setup` must be picklable (top-level functions or partials).
    With workers <= 1 everything runs in this process, which is faster for
    small jobs. Exceptions raised by `func` propagate: it should return
    expected failures as values.
    """

    def __init__(self, workers: int, setup: Callable[[], Any] | None = None) -> None:
        self.workers = max(1, workers)
        self.setup = setup
        self._executor: ProcessPoolExecutor | None = None
        self._local_context: Any = None

    def __enter__(self) -> WorkerPool:
        limit_heap_growth()
        if self.workers == 1 and self.setup:
            self._local_context = self.setup()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:  # noqa: ANN001
        if self._executor is not None:
            if exc_type is None:
                self._executor.shutdown(wait=True)
            else:
                self._terminate()

    def start(self, timeout_s: float = 120.0) -> None:
        """Start every worker now and wait until each has run `setup` (loaded its models),
        so that the first real item is not delayed by process start-up."""
        if self.workers == 1:
            return
        if self._executor is None:
            self._executor = self._new_executor(self.workers)
        ready: set[int] = set()
        deadline = time.monotonic() + timeout_s
        while len(ready) < self.workers and time.monotonic() < deadline:
            futures = [self._executor.submit(_call, _pid, None) for _ in range(self.workers)]
            ready.update(f.result() for f in futures)

    def run_once(self, func: Callable[[Any, None], R]) -> R:
        """func(context, None) in one worker (or here, with one worker); a crash raises
        WorkerCrash."""
        ((_, result),) = self.map(func, [None])
        if isinstance(result, WorkerCrash):
            raise result
        return result

    def _new_executor(self, size: int) -> ProcessPoolExecutor:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(PRELOAD)  # takes effect when the fork server starts
        return ProcessPoolExecutor(
            max_workers=size,
            mp_context=context,
            initializer=_init_worker,
            initargs=(self.setup,),
        )

    def _terminate(self) -> None:
        """Stop every worker now, including one the pool was starting meanwhile."""
        executor, self._executor = self._executor, None
        seen = dict(getattr(executor, "_processes", None) or {})
        executor.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            seen.update(getattr(executor, "_processes", None) or {})
            alive = [p for p in seen.values() if p.is_alive()]
            if not alive:
                return
            for process in alive:
                process.terminate()
            for process in alive:
                process.join(timeout=1)

    def map(
        self, func: Callable[[Any, T], R], items: Iterable[T]
    ) -> Iterator[tuple[T, R | WorkerCrash]]:
        if self.workers == 1:
            for item in items:
                yield item, func(self._local_context, item)
            return
        queue = list(items)
        queue.reverse()
        suspects: list[T] = []
        while queue:
            if self._executor is None:
                self._executor = self._new_executor(self.workers)
            suspects += yield from self._drain(func, queue, self._executor, 2 * self.workers)
            if suspects:
                self._terminate()
                for item in suspects:
                    yield from self._retry_alone(func, item)
                suspects = []

    def _drain(self, func, queue: list, executor: ProcessPoolExecutor, limit: int):  # noqa: ANN001
        """Run queue items until done or the pool breaks; return the items in flight then."""
        in_flight: dict[Future, Any] = {}
        lost: list = []
        try:
            while queue or in_flight:
                while queue and len(in_flight) < limit:
                    in_flight[executor.submit(_call, func, queue[-1])] = queue[-1]
                    queue.pop()
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    item = in_flight.pop(future)
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        lost.append(item)
                        continue
                    yield item, result
                if lost:
                    break
        except BrokenProcessPool:
            pass
        return lost + list(in_flight.values())

    def _retry_alone(self, func, item):  # noqa: ANN001
        executor = self._new_executor(1)
        try:
            result = executor.submit(_call, func, item).result()
        except BrokenProcessPool:
            result = WorkerCrash("the analysis process crashed on this file")
        finally:
            executor.shutdown(wait=True)
        yield item, result


class LazyPool:
    """A `WorkerPool` that starts its processes (and loads their models) on first use, so
    that a scan with nothing to analyse costs neither."""

    def __init__(self, workers: int, setup: Callable[[], Any] | None = None) -> None:
        self._args = (workers, setup)
        self._pool: WorkerPool | None = None
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> LazyPool:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:  # noqa: ANN001
        self._stack.__exit__(exc_type, exc, tb)

    @property
    def started(self) -> bool:
        return self._pool is not None

    def pool(self) -> WorkerPool:
        if self._pool is None:
            self._pool = self._stack.enter_context(WorkerPool(*self._args))
        return self._pool

    def map(
        self, func: Callable[[Any, T], R], items: Iterable[T]
    ) -> Iterator[tuple[T, R | WorkerCrash]]:
        queue = list(items)
        return self.pool().map(func, queue) if queue else iter(())

    def run_once(self, func: Callable[[Any, None], R]) -> R:
        return self.pool().run_once(func)

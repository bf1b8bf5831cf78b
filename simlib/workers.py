"""Run a per-file function on all cores, robust to crashes and Ctrl-C.

Workers are spawned processes (torch is not fork-safe once used), ignore
SIGINT so that the parent alone decides what happens on Ctrl-C, and at most
two items per worker are in flight, so memory stays bounded however many
files there are. A worker that dies (a crash inside FFmpeg, say) costs only
the items it held: those are retried one at a time in a fresh pool and, if
they kill it again, reported as `WorkerCrash`.
"""

from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

_worker_state: dict[str, Any] = {}


class WorkerCrash(Exception):
    """The worker process died while handling this item."""


def _init_worker(setup: Callable[[], Any] | None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import torch

    torch.set_num_threads(1)
    _worker_state["context"] = setup() if setup else None


def _call(func: Callable[[Any, T], R], item: T) -> R:
    return func(_worker_state["context"], item)


def _terminate(pool: ProcessPoolExecutor) -> None:
    processes = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(timeout=5)


def run(
    func: Callable[[Any, T], R],
    items: Iterable[T],
    workers: int,
    setup: Callable[[], Any] | None = None,
) -> Iterator[tuple[T, R | WorkerCrash]]:
    """Yield (item, func(context, item)) in completion order; context = setup() per worker.

    `func` and `setup` must be picklable (top-level functions or partials).
    With workers == 1 everything runs in this process, which is faster for
    small jobs. Exceptions raised by `func` propagate; it should turn expected
    failures into return values.
    """
    if workers <= 1:
        context = setup() if setup else None
        for item in items:
            yield item, func(context, item)
        return
    pending = list(items)
    pending.reverse()
    suspects: list[T] = []
    while pending or suspects:
        one_at_a_time = bool(suspects)
        queue = suspects if one_at_a_time else pending
        pool = ProcessPoolExecutor(
            max_workers=1 if one_at_a_time else workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(setup,),
        )
        in_flight: dict[Future, T] = {}
        try:
            while queue or in_flight:
                limit = 1 if one_at_a_time else 2 * workers
                while queue and len(in_flight) < limit:
                    in_flight[pool.submit(_call, func, queue[-1])] = queue[-1]
                    queue.pop()
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    item = in_flight.pop(future)
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        if one_at_a_time:
                            yield item, WorkerCrash("the analysis process crashed on this file")
                        else:
                            suspects.append(item)
                        continue
                    yield item, result
        except BrokenProcessPool:
            pass
        except BaseException:
            _terminate(pool)
            raise
        finally:
            suspects.extend(in_flight.values())
            in_flight.clear()
            pool.shutdown(wait=True, cancel_futures=True)

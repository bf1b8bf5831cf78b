"""One writer at a time per catalog: `scan` and `watch` take this lock to write.

Readers (identify, similar, status) never take it: WAL mode and atomic index
swaps keep them correct while a writer works.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_NAME = "writer.lock"


@contextmanager
def writer_lock(home: Path, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the home's writer lock; if another process has it, call `on_wait` and wait."""
    home.mkdir(parents=True, exist_ok=True)
    with open(home / LOCK_NAME, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            if on_wait:
                on_wait(f"waiting for the other simlib writer ({holder}) to finish")
            fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)

"""One writer at a time per catalog: `scan` and `watch` take this lock to write.

Readers (identify, similar, status) never take it: WAL mode and atomic index
swaps keep them correct while a writer works. A running watcher also holds a shared
lock on `watcher.lock` for its whole life and notes what waits in `watcher.json`, so that
`status` can tell that the catalog is kept current (a killed watcher's lock goes with it).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from simlib.files import replace_atomically

LOCK_NAME = "writer.lock"
WATCHER_LOCK = "watcher.lock"
WATCHER_STATE = "watcher.json"


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


@contextmanager
def watcher_presence(home: Path) -> Iterator[Callable[[dict], None]]:
    """Announce a running watcher while the block runs; yields `note(state)`, which
    records what the watcher is doing (a small JSON object) for `watcher_state`."""
    home.mkdir(parents=True, exist_ok=True)
    state_path = home / WATCHER_STATE
    with open(home / WATCHER_LOCK, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_SH)  # shared: several watchers may run

        def note(state: dict) -> None:
            text = json.dumps({"pid": os.getpid(), **state})
            replace_atomically(state_path, lambda temporary: temporary.write_text(text))

        try:
            yield note
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def watcher_state(home: Path) -> dict | None:
    """What a running watcher last noted (`watcher_presence`), or None if none runs."""
    try:
        handle = open(home / WATCHER_LOCK, "rb")  # noqa: SIM115 - closed below
    except OSError:
        return None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                return json.loads((home / WATCHER_STATE).read_text())
            except (OSError, ValueError):
                return {}
        fcntl.flock(handle, fcntl.LOCK_UN)
        return None

"""Atomic replacement of a file: readers see the old file or the new one, never half of one."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def replace_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write(temporary)` to write a temporary file beside `path`, then move it over
    `path` with `os.replace` (atomic within one file system); the temporary is removed if
    `write` fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # the real suffix last: numpy and others append theirs to a name without it
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)

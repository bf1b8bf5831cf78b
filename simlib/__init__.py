"""simlib: identify recorded clips and find similar tracks in your own music library.

The Python API (the CLI and the plugins call nothing else):

    import simlib
    simlib.scan(["~/Music"])                 # analyse new and changed files
    simlib.identify(["clip.wav"])            # which track is this, and where in it?
    simlib.similar(["song.mp3"], n=10)       # tracks that sound like this one
    simlib.status()                          # counts, failures, index freshness
    simlib.roots()                           # the library folders, with track counts
    simlib.remove_root("~/Old")              # forget a folder and its tracks
    simlib.watch(["~/Music"])                # follow changes until stopped
"""

# The task packages share the API functions' names; importing them first means their later
# submodule imports cannot set `simlib.identify` or `simlib.similar` over the functions.
import simlib.identify  # noqa: F401  (the package only; it imports nothing)
import simlib.similar  # noqa: F401
from simlib.api import (
    identify,
    open_catalog,
    remove_root,
    roots,
    scan,
    session,
    similar,
    status,
    train,
    watch,
)

__all__ = [
    "identify",
    "open_catalog",
    "remove_root",
    "roots",
    "scan",
    "session",
    "similar",
    "status",
    "train",
    "watch",
]

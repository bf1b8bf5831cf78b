"""The catalog: one SQLite file per home with every track's tags and analysis, the record
of the index builds, and the lock that lets one writer at a time change it."""

from simlib.catalog.builds import AddedSince, Found, IndexBuild, current_build
from simlib.catalog.lock import watcher_presence, watcher_state, writer_lock
from simlib.catalog.peaks import TrackPeaks
from simlib.catalog.segments import PackedSegments
from simlib.catalog.store import Catalog, FileState, KnownTrack
from simlib.catalog.tags import from_filename, read_tags

__all__ = [
    "AddedSince",
    "Catalog",
    "FileState",
    "Found",
    "IndexBuild",
    "KnownTrack",
    "PackedSegments",
    "TrackPeaks",
    "current_build",
    "from_filename",
    "read_tags",
    "watcher_presence",
    "watcher_state",
    "writer_lock",
]

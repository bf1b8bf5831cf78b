"""Schema migrations of the catalog: MIGRATIONS[i] takes the schema from version i to i + 1
(SQLite's `PRAGMA user_version`)."""

from __future__ import annotations

from collections.abc import Callable

import sqlite_utils


def _migrate_v1(db: sqlite_utils.Database) -> None:
    db["roots"].create(
        {"id": int, "path": str, "follow_symlinks": int, "added_at": str, "last_scan_at": str},
        pk="id",
    )
    db["roots"].create_index(["path"], unique=True)
    db["tracks"].create(
        {
            "id": int,
            "path": str,
            "root_id": int,
            "size": int,
            "mtime_ns": int,
            "content_hash": str,
            "duration_s": float,
            "sample_rate_hz": int,
            "channels": int,
            "codec": str,
            "container": str,
            "title": str,
            "artist": str,
            "album_artist": str,
            "album": str,
            "genre": str,
            "year": int,
            "track_number": int,
            "bpm": float,
            "mood": str,
            "comment": str,
            "status": str,
            "error": str,
            "added_at": str,
            "updated_at": str,
            "analysed_at": str,
        },
        pk="id",
        foreign_keys=[("root_id", "roots", "id")],
    )
    db["tracks"].create_index(["path"], unique=True)
    db["tracks"].create_index(["content_hash"])
    db["tracks"].create_index(["root_id"])
    for name, columns in (
        ("embeddings", {"vector": bytes}),
        ("fingerprints", {"start_s": bytes, "vectors": bytes, "count": int}),
    ):
        db[name].create(
            {"track_id": int, "model": str, "version": str, **columns},
            pk=("track_id", "model"),
            foreign_keys=[("track_id", "tracks", "id")],
        )
    db.execute(
        "CREATE TABLE indexes (name TEXT PRIMARY KEY, path TEXT, model_version TEXT,"
        " dim INTEGER, items INTEGER, tracks INTEGER, generation INTEGER, bytes INTEGER,"
        " built_at TEXT)"
    )
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    db.execute("INSERT INTO meta VALUES ('generation', '0')")


def _migrate_v2(db: sqlite_utils.Database) -> None:
    """Remember when each track's analysis was written, so queries can merge what the
    indexes do not hold yet (tracks analysed after an index's generation)."""
    db["tracks"].add_column("analysis_generation", int)
    db.execute("UPDATE tracks SET analysis_generation = 0")
    db["tracks"].create_index(["analysis_generation"])


def _migrate_v3(db: sqlite_utils.Database) -> None:
    """Fingerprints packed (`simlib.catalog.segments`): int8 vectors, starts as hop slots,
    the hop in a column. Rows written before keep NumPy blobs and no hop, and read as before."""
    db["fingerprints"].add_column("hop_s", float)


def _migrate_v4(db: sqlite_utils.Database) -> None:
    """Each track's spectral peaks for the source check (`simlib.catalog.peaks`): block
    counts and the peaks, under a version like the other analysis outputs."""
    db["peaks"].create(
        {"track_id": int, "model": str, "version": str, "counts": bytes, "peaks": bytes},
        pk=("track_id", "model"),
        foreign_keys=[("track_id", "tracks", "id")],
    )


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    _migrate_v1,
    _migrate_v2,
    _migrate_v3,
    _migrate_v4,
]
"""MIGRATIONS[i] takes the schema from version i to i + 1 (PRAGMA user_version)."""
SCHEMA_VERSION = len(MIGRATIONS)

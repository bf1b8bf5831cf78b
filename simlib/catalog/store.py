"""The SQLite catalog (sqlite-utils): roots, tracks, analysis outputs, index versions.

Every write runs in one transaction (`Database.atomic`), so a process killed at
any moment leaves each track either fully written or not at all. The database
runs in WAL mode, so readers in other processes never wait for the writer.
A `generation` counter goes up with every change to the tracks; an index
records the generation it was built from, and the catalog notes the generation at which
each model's outputs last changed: an index holds the catalog's current outputs when it
was built at or after that (a retag or another model's new version leaves it fresh).
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import sqlite_utils

from simlib.catalog.lock import watcher_state
from simlib.catalog.migrations import MIGRATIONS, SCHEMA_VERSION
from simlib.catalog.peaks import TrackPeaks
from simlib.catalog.segments import PackedSegments
from simlib.config import CATALOG_NAME, SimlibError
from simlib.types import Segments, Tags, Track

TAG_COLUMNS = (
    "title",
    "artist",
    "album_artist",
    "album",
    "genre",
    "year",
    "track_number",
    "bpm",
    "mood",
    "comment",
)


Output = np.ndarray | PackedSegments | TrackPeaks
"""What an analysis stage stores: one vector per track, a track's fingerprint segments, or
its spectral peaks."""
OUTPUT_TABLES = ("embeddings", "fingerprints", "peaks")
"""The tables of analysis outputs, each keyed by (track_id, model) with the model's version."""

CHANGED_META = "outputs_changed:"
"""Meta key prefix: + a model's name -> the generation at which its outputs last changed."""

IDS_PER_QUERY = 500
"""Track ids bound in one `IN (...)` query: under the 999 variables older SQLite allows."""

_SEGMENTS_SQL = (
    "SELECT f.track_id, f.start_s, f.vectors, f.count, f.hop_s FROM fingerprints f"
    " JOIN tracks t ON t.id = f.track_id WHERE f.model = ? AND t.status = 'ok'"
)


def _id_chunks(track_ids: Iterable[int]) -> Iterator[tuple[list[int], str]]:
    """Sorted, distinct `track_ids` in chunks of IDS_PER_QUERY, each with its "?,?,..."."""
    ids = sorted(set(int(i) for i in track_ids))
    for start in range(0, len(ids), IDS_PER_QUERY):
        chunk = ids[start : start + IDS_PER_QUERY]
        yield chunk, ",".join("?" * len(chunk))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _array_blob(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def _blob_array(blob: bytes) -> np.ndarray:
    return np.load(io.BytesIO(blob), allow_pickle=False)


def _row_segments(start_s: bytes, vectors: bytes, count: int, hop_s: float | None) -> Segments:
    """A fingerprints row's segments: packed (`hop_s` set) or, as written before schema 3,
    NumPy blobs of float32 starts and float16 vectors."""
    if hop_s is None:
        return Segments(_blob_array(start_s), _blob_array(vectors).astype(np.float32))
    return PackedSegments.from_blobs(start_s, vectors, count, hop_s).unpack()


@dataclass
class FileState:
    """A file as the file system reports it: the key for 'has it changed?'."""

    path: str
    size: int
    mtime_ns: int


@dataclass
class KnownTrack:
    """What the catalog remembers of a file, for deciding what a scan must redo."""

    id: int
    size: int
    mtime_ns: int
    content_hash: str | None
    status: str
    versions: dict[str, str]


class Catalog:
    """One simlib catalog at `home/catalog.db`."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.path = home / CATALOG_NAME
        try:
            home.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False
            )  # used by one thread at a time, not necessarily the one that opened it
            self.db = sqlite_utils.Database(conn)
            self.db.execute("PRAGMA foreign_keys = ON")
            self.db.execute("PRAGMA synchronous = NORMAL")  # WAL: consistent after a crash
            if self.db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                self.db.enable_wal()
            self._migrate()
        except (OSError, sqlite3.Error) as error:
            raise SimlibError(f"cannot open the catalog at {self.path}: {error}") from error

    def close(self) -> None:
        self.db.close()

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise SimlibError(
                f"{self.path} has schema {version}, newer than this simlib ({SCHEMA_VERSION})"
            )
        for step in range(version, SCHEMA_VERSION):
            with self.db.atomic():
                MIGRATIONS[step](self.db)
                self.db.execute(f"PRAGMA user_version = {step + 1}")

    # -- generation -------------------------------------------------------------

    @property
    def generation(self) -> int:
        row = self.db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return int(row[0])

    def meta(self, key: str) -> str | None:
        """A value kept beside the tracks (e.g. the analysis stages last seen), or None."""
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self.db.atomic():
            self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [key, value])

    def _bump(self) -> int:
        self.db.execute(
            "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'"
        )
        return self.generation

    def _bump_analysis(self, track_id: int) -> None:
        """A new generation in which this track's analysis outputs changed."""
        generation = self._bump()
        self.db.execute(
            "UPDATE tracks SET analysis_generation = ? WHERE id = ?", [generation, track_id]
        )

    def _outputs_changed(self, models: Iterable[str]) -> None:
        """Note that these models' outputs changed in the current generation."""
        generation = str(self.generation)
        for model in set(models):
            self.set_meta(CHANGED_META + model, generation)

    def _output_models(self, track_ids: Iterable[int]) -> set[str]:
        """The models with stored outputs for any of the tracks."""
        return {
            row[0]
            for chunk, marks in _id_chunks(track_ids)
            for table in OUTPUT_TABLES
            for row in self.db.execute(
                f"SELECT DISTINCT model FROM {table} WHERE track_id IN ({marks})", chunk
            )
        }

    def holds_current(self, index: dict) -> bool:
        """Whether an index record (`index_info`) was built from the model's outputs as they
        are now: at the current generation, or at or after their last change (unknown for
        a catalog written before that was noted: then only the current generation)."""
        if index["generation"] == self.generation:
            return True
        changed = self.meta(CHANGED_META + index["name"])
        return changed is not None and index["generation"] >= int(changed)

    def advance_index(self, name: str) -> None:
        """Note that index `name`, which `holds_current`, holds the current generation: the
        tracks analysed since its build are then not searched apart from it."""
        with self.db.atomic():
            self.db.execute(
                "UPDATE indexes SET generation = ? WHERE name = ?", [self.generation, name]
            )

    # -- roots ------------------------------------------------------------------

    def add_root(self, path: Path, follow_symlinks: bool) -> int:
        """Register a library folder (idempotent) and return its id."""
        with self.db.atomic():
            row = self.db.execute("SELECT id FROM roots WHERE path = ?", [str(path)]).fetchone()
            if row:
                self.db.execute(
                    "UPDATE roots SET follow_symlinks = ? WHERE id = ?",
                    [int(follow_symlinks), row[0]],
                )
                return int(row[0])
            return int(
                self.db["roots"]
                .insert(
                    {"path": str(path), "follow_symlinks": int(follow_symlinks), "added_at": _now()}
                )
                .last_pk
            )

    def roots(self) -> list[dict]:
        return list(self.db["roots"].rows_where(order_by="path"))

    def root_summaries(self) -> list[dict]:
        """Every root with its track counts (ok and failed) and whether its folder is there."""
        counts: dict[int, dict[str, int]] = {}
        for root_id, status, count in self.db.execute(
            "SELECT root_id, status, COUNT(*) FROM tracks GROUP BY root_id, status"
        ):
            counts.setdefault(root_id, {})[status] = count
        return [
            {
                "path": row["path"],
                "present": Path(row["path"]).is_dir(),
                "tracks": counts.get(row["id"], {}).get("ok", 0),
                "failed": counts.get(row["id"], {}).get("error", 0),
                "last_scan_at": row["last_scan_at"],
                "id": row["id"],
            }
            for row in self.roots()
        ]

    def delete_root(self, root_id: int) -> int:
        """Forget a root and every track under it; return the number of tracks forgotten."""
        with self.db.atomic():
            rows = self.db.execute("SELECT id FROM tracks WHERE root_id = ?", [root_id])
            removed = self.delete_tracks(row[0] for row in rows.fetchall())
            self.db.execute("DELETE FROM roots WHERE id = ?", [root_id])
        return removed

    def mark_root_scanned(self, root_id: int) -> None:
        with self.db.atomic():
            self.db.execute("UPDATE roots SET last_scan_at = ? WHERE id = ?", [_now(), root_id])

    # -- reading tracks -----------------------------------------------------------

    def known_tracks(
        self, root_id: int, under: Iterable[str] | None = None
    ) -> dict[str, KnownTrack]:
        """Tracks under a root, by path, with the model versions of their analysis.

        With `under` (file or folder paths), only the tracks at or below those paths:
        what the watcher needs for one batch, without reading a whole large library.
        """
        if under is None:
            return self._known_where("root_id = ?", [root_id])
        known: dict[str, KnownTrack] = {}
        paths = list(under)
        for start in range(0, len(paths), 300):
            clauses, params = [], [root_id]
            for path in paths[start : start + 300]:
                clauses.append("path = ? OR (path > ? AND path < ?)")  # the file, or below it
                params += [path, path + os.sep, path + chr(ord(os.sep) + 1)]
            known.update(self._known_where(f"root_id = ? AND ({' OR '.join(clauses)})", params))
        return known

    def _known_where(self, where: str, params: list) -> dict[str, KnownTrack]:
        versions: dict[int, dict[str, str]] = {}
        for table in OUTPUT_TABLES:
            for track_id, model, version in self.db.execute(
                f"SELECT o.track_id, o.model, o.version FROM {table} o"
                f" JOIN tracks t ON t.id = o.track_id WHERE {where}",
                params,
            ):
                versions.setdefault(track_id, {})[model] = version
        return {
            row["path"]: KnownTrack(
                id=row["id"],
                size=row["size"],
                mtime_ns=row["mtime_ns"],
                content_hash=row["content_hash"],
                status=row["status"],
                versions=versions.get(row["id"], {}),
            )
            for row in self.db["tracks"].rows_where(
                where, params, select="id, path, size, mtime_ns, content_hash, status"
            )
        }

    def tracks_with_hash(self, content_hash: str) -> list[dict]:
        """Analysed tracks whose audio packets hash to `content_hash`."""
        return list(
            self.db["tracks"].rows_where(
                "content_hash = ? AND status = 'ok'", [content_hash], order_by="id"
            )
        )

    def track(self, track_id: int) -> Track | None:
        rows = self.tracks([track_id])
        return rows.get(track_id)

    def track_by_path(self, path: str) -> Track | None:
        row = self.db.execute(
            "SELECT id FROM tracks WHERE path = ? AND status = 'ok'", [path]
        ).fetchone()
        return self.track(row[0]) if row else None

    def library(self) -> list[Track]:
        """Every analysed track, by id."""
        return [
            _row_track(row) for row in self.db["tracks"].rows_where("status = 'ok'", order_by="id")
        ]

    def tracks(self, track_ids: Iterable[int]) -> dict[int, Track]:
        """Tracks by id; ids not in the catalog are left out."""
        found: dict[int, Track] = {}
        for chunk, marks in _id_chunks(track_ids):
            for row in self.db["tracks"].rows_where(f"id IN ({marks})", chunk):
                found[row["id"]] = _row_track(row)
        return found

    # -- writing tracks -----------------------------------------------------------

    def _track_values(self, state: FileState, root_id: int, tags: Tags) -> dict:
        values = {"path": state.path, "root_id": root_id, "size": state.size}
        values["mtime_ns"] = state.mtime_ns
        values["updated_at"] = _now()
        for column in TAG_COLUMNS:
            value = getattr(tags, column)
            values[column] = json.dumps(value) if column == "genre" else value
        return values

    def _upsert(self, values: dict) -> int:
        row = self.db.execute("SELECT id FROM tracks WHERE path = ?", [values["path"]]).fetchone()
        if row:
            self.db["tracks"].update(row[0], values)
            return int(row[0])
        return int(self.db["tracks"].insert({**values, "added_at": values["updated_at"]}).last_pk)

    def write_analysis(
        self,
        state: FileState,
        root_id: int,
        tags: Tags,
        audio: dict,
        outputs: dict[str, tuple[str, Output]],
    ) -> int:
        """Store one analysed track and its outputs {model: (version, vector or packed
        segments)}."""
        with self.db.atomic():
            values = self._track_values(state, root_id, tags)
            values.update(audio, status="ok", error=None, analysed_at=values["updated_at"])
            track_id = self._upsert(values)
            self._put_outputs(track_id, outputs)
            self._bump_analysis(track_id)
            self._outputs_changed(outputs)
        return track_id

    def _put_outputs(self, track_id: int, outputs: dict[str, tuple[str, Output]]):
        for model, (version, output) in outputs.items():
            if isinstance(output, TrackPeaks):
                counts, peaks = output.blobs()
                self.db["peaks"].upsert(
                    {"track_id": track_id, "model": model, "version": version}
                    | {"counts": counts, "peaks": peaks},
                    pk=("track_id", "model"),
                )
            elif isinstance(output, PackedSegments):
                start_s, vectors = output.blobs()
                self.db["fingerprints"].upsert(
                    {
                        "track_id": track_id,
                        "model": model,
                        "version": version,
                        "count": len(output),
                        "start_s": start_s,
                        "vectors": vectors,
                        "hop_s": output.hop_s,
                    },
                    pk=("track_id", "model"),
                )
            else:
                self.db["embeddings"].upsert(
                    {
                        "track_id": track_id,
                        "model": model,
                        "version": version,
                        "vector": _array_blob(output),
                    },
                    pk=("track_id", "model"),
                )

    def write_error(self, state: FileState, root_id: int, tags: Tags, reason: str) -> int:
        """Record a file that could not be analysed, with a one-line reason."""
        with self.db.atomic():
            values = self._track_values(state, root_id, tags)
            values.update(status="error", error=reason, content_hash=None)
            track_id = self._upsert(values)
            removed = self._delete_outputs([track_id])
            self._bump()
            self._outputs_changed(removed)
        return track_id

    def update_file(self, track_id: int, state: FileState, root_id: int, tags: Tags) -> None:
        """Same audio, new place or tags: keep the analysis (and the id), update the rest."""
        with self.db.atomic():
            self.db["tracks"].update(track_id, self._track_values(state, root_id, tags))
            self._bump()

    def copy_analysis(self, source_id: int, state: FileState, root_id: int, tags: Tags) -> int:
        """A new file with the same audio as `source_id`: reuse its analysis."""
        source = self.db["tracks"].get(source_id)
        audio = {k: source[k] for k in ("content_hash", "duration_s", "sample_rate_hz")}
        audio.update({k: source[k] for k in ("channels", "codec", "container")})
        with self.db.atomic():
            values = self._track_values(state, root_id, tags)
            values.update(audio, status="ok", error=None, analysed_at=source["analysed_at"])
            track_id = self._upsert(values)
            removed = self._delete_outputs([track_id])
            for table in OUTPUT_TABLES:
                columns = [c for c in self.db[table].columns_dict if c != "track_id"]
                names = ", ".join(columns)
                self.db.execute(
                    f"INSERT INTO {table} (track_id, {names}) SELECT ?, {names}"
                    f" FROM {table} WHERE track_id = ?",
                    [track_id, source_id],
                )
            self._bump_analysis(track_id)
            self._outputs_changed(removed | self._output_models([track_id]))
        return track_id

    def _delete_outputs(self, track_ids: list[int]) -> set[str]:
        """Delete the tracks' outputs; return the models they were of."""
        models = self._output_models(track_ids)
        for chunk, marks in _id_chunks(track_ids):
            for table in OUTPUT_TABLES:
                self.db.execute(f"DELETE FROM {table} WHERE track_id IN ({marks})", chunk)
        return models

    def delete_tracks(self, track_ids: Iterable[int]) -> int:
        ids = list(track_ids)
        if not ids:
            return 0
        with self.db.atomic():
            removed = self._delete_outputs(ids)
            for chunk, marks in _id_chunks(ids):
                self.db.execute(f"DELETE FROM tracks WHERE id IN ({marks})", chunk)
            self._bump()
            self._outputs_changed(removed)
        return len(ids)

    # -- analysis outputs for the indexes -----------------------------------------

    def vectors(self, model: str, since: int = -1) -> tuple[np.ndarray, np.ndarray]:
        """(track ids, (n, dim) matrix) of every ok track's `model` embedding, or of
        those analysed after generation `since`, in path order (`segments`)."""
        ids, rows = [], []
        for track_id, blob in self.db.execute(
            "SELECT e.track_id, e.vector FROM embeddings e JOIN tracks t ON t.id = e.track_id"
            " WHERE e.model = ? AND t.status = 'ok' AND t.analysis_generation > ?"
            " ORDER BY t.path",
            [model, since],
        ):
            ids.append(track_id)
            rows.append(_blob_array(blob))
        if not rows:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
        return np.asarray(ids, dtype=np.int64), np.stack(rows).astype(np.float32)

    def vector(self, track_id: int, model: str, version: str | None = None) -> np.ndarray | None:
        """A track's `model` embedding (of `version`, if given), or None."""
        row = self.db.execute(
            "SELECT vector, version FROM embeddings WHERE track_id = ? AND model = ?",
            [track_id, model],
        ).fetchone()
        if row is None or (version is not None and row[1] != version):
            return None
        return _blob_array(row[0])

    def same_audio(self, track_id: int) -> set[int]:
        """Ids of the tracks whose audio is identical to this one's, itself included."""
        rows = self.db.execute(
            "SELECT t.id FROM tracks t JOIN tracks s ON s.content_hash = t.content_hash"
            " WHERE s.id = ?",
            [track_id],
        )
        return {track_id} | {row[0] for row in rows}

    def recordings(self, track_ids: Iterable[int]) -> dict[int, tuple[int, ...]]:
        """For each of `track_ids` that has copies (ok tracks with the same audio packets),
        the ids of all of them, lowest first; tracks without copies are left out."""
        found: dict[int, tuple[int, ...]] = {}
        for chunk, marks in _id_chunks(track_ids):
            rows = self.db.execute(
                "SELECT t.id, c.id FROM tracks t JOIN tracks c ON c.content_hash = t.content_hash"
                f" WHERE t.id IN ({marks}) AND c.status = 'ok'"
                " AND c.id != t.id ORDER BY c.id",
                chunk,
            )
            for track_id, copy_id in rows:
                found.setdefault(track_id, (track_id,))
                found[track_id] += (copy_id,)
        return {track_id: tuple(sorted(group)) for track_id, group in found.items()}

    def segments(self, model: str, since: int = -1) -> Iterator[tuple[int, Segments]]:
        """(track id, Segments) of every ok track's `model` fingerprints, or of those
        analysed after generation `since`, in path order: ids follow the order in which a
        scan's workers finish, so an index built in id order would differ between two
        scans of one library (its k-means sample, the order of ties)."""
        for track_id, *row in self.db.execute(
            _SEGMENTS_SQL + " AND t.analysis_generation > ? ORDER BY t.path", [model, since]
        ):
            if row[2]:  # a wholly silent track has no segment to index
                yield track_id, _row_segments(*row)

    def track_segments(self, track_id: int, model: str) -> Segments | None:
        """Track `track_id`'s `model` fingerprints, or None when it has none or is not ok."""
        row = self.db.execute(_SEGMENTS_SQL + " AND f.track_id = ?", [model, track_id]).fetchone()
        return None if row is None else _row_segments(*row[1:])

    def track_peaks(self, track_id: int, version: str) -> TrackPeaks | None:
        """Track `track_id`'s stored spectral peaks of `version`, or None."""
        row = self.db.execute(
            "SELECT p.counts, p.peaks FROM peaks p JOIN tracks t ON t.id = p.track_id"
            " WHERE p.track_id = ? AND p.version = ? AND t.status = 'ok'",
            [track_id, version],
        ).fetchone()
        return None if row is None else TrackPeaks.from_blobs(*row)

    # -- indexes ------------------------------------------------------------------

    def record_index(
        self,
        name: str,
        path: Path,
        model_version: str,
        dim: int,
        items: int,
        tracks: int,
        size: int,
        generation: int,
    ) -> None:
        """Note that index `name` at `path` now holds the catalog as of `generation`."""
        with self.db.atomic():
            if self.meta(CHANGED_META + name) is None:
                # a catalog written before changes were noted: its outputs are at most this new
                self.set_meta(CHANGED_META + name, str(self.generation))
            self.db["indexes"].upsert(
                {
                    "name": name,
                    "path": str(path),
                    "model_version": model_version,
                    "dim": dim,
                    "items": items,
                    "tracks": tracks,
                    "generation": generation,
                    "bytes": size,
                    "built_at": _now(),
                },
                pk="name",
            )

    def index_info(self, name: str) -> dict | None:
        rows = list(self.db["indexes"].rows_where("name = ?", [name]))
        return rows[0] if rows else None

    # -- status -------------------------------------------------------------------

    def summary(self) -> dict:
        """Counts, failures with reasons, index freshness, disk use, and what a running
        watcher noted (None if none runs)."""
        counts = dict(self.db.execute("SELECT status, COUNT(*) FROM tracks GROUP BY status"))
        audio_s = self.db.execute(
            "SELECT COALESCE(SUM(duration_s), 0) FROM tracks WHERE status = 'ok'"
        ).fetchone()[0]
        failures = [
            {"path": path, "error": error}
            for path, error in self.db.execute(
                "SELECT path, error FROM tracks WHERE status = 'error' ORDER BY path"
            )
        ]
        generation = self.generation
        indexes = []
        for row in self.db["indexes"].rows_where(order_by="name"):
            row["fresh"] = self.holds_current(row)
            indexes.append(row)
        disk = {
            "catalog_bytes": sum(
                p.stat().st_size for p in self.home.glob(CATALOG_NAME + "*") if p.is_file()
            )
        }
        disk["index_bytes"] = sum(row["bytes"] or 0 for row in indexes)
        roots = [row["path"] for row in self.roots()]
        return {
            "home": str(self.home),
            "roots": roots,
            "missing_roots": [path for path in roots if not Path(path).is_dir()],
            "tracks": counts.get("ok", 0),
            "failed": counts.get("error", 0),
            "audio_hours": round(audio_s / 3600, 3),
            "failures": failures,
            "generation": generation,
            "indexes": indexes,
            "disk": disk,
            "watcher": watcher_state(self.home),
        }


def _row_track(row: dict) -> Track:
    data = {k: row[k] for k in TAG_COLUMNS}
    data["genre"] = json.loads(row["genre"]) if row["genre"] else []
    return Track(
        id=row["id"], path=row["path"], tags=Tags.from_dict(data), duration_s=row["duration_s"]
    )

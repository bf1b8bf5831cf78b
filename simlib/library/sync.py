"""Bring the catalog in line with the library folders, then rebuild the indexes.

A scan walks its roots, then works in phases, each committed track by track:

1. inspect: new or changed files are hashed (audio packets only, no decoding);
2. reuse: a file whose audio is already analysed (a retag, a move, a copy)
   gets that analysis instead of a new one, and keeps its id when moved;
3. analyse: the rest run through the pipeline on all cores;
4. forget: tracks whose files are gone are removed;
5. index: the indexes are rebuilt from the catalog, atomically.

Bad files are recorded with a one-line reason and never stop the scan. An
interrupted scan keeps every finished track; the next one resumes.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from simlib.audio import AUDIO_EXTENSIONS, AudioInfo, reason
from simlib.catalog import Catalog, FileState, KnownTrack, from_filename, read_tags
from simlib.config import SimlibError
from simlib.library.indexes import rebuild_indexes
from simlib.library.pipeline import (
    Analysis,
    AnalysisError,
    Embedder,
    StageSpec,
    analyse,
    file_state,
    inspect_file,
    stage_specs,
)
from simlib.library.workers import LazyPool, WorkerCrash, WorkerPool

IGNORED_SUFFIXES = frozenset({".part", ".crdownload", ".tmp", ".partial", ".download"})
"""Unfinished downloads: ignored until renamed to their final name."""

ScanProgress = Callable[[str, int, int, float], None]
"""progress(phase, done, total, audio_seconds_done); phases: inspect, analyse, index."""

EmbedderFactory = Callable[[], list[Embedder]]
Pool = WorkerPool | LazyPool
STAGES_META = "stages"
"""The catalog's note of the analysis stages last learnt from the workers, with their key."""


@dataclass
class ScanReport:
    """What one scan did, by count, plus the files it could not analyse."""

    roots: list[str] = field(default_factory=list)
    missing_roots: list[str] = field(default_factory=list)
    files: int = 0
    unchanged: int = 0
    analysed: int = 0
    reused: int = 0
    failed: int = 0
    removed: int = 0
    audio_s: float = 0.0
    seconds: float = 0.0
    indexes: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    empty_missing_roots: list[str] = field(default_factory=list)
    """Missing roots that hold no track any more (say, renamed and scanned by a new name)."""

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def is_candidate(name: str) -> bool:
    """Audio by its ending, and not hidden or an unfinished download."""
    if name.startswith("."):
        return False
    suffix = os.path.splitext(name)[1].lower()
    return suffix in AUDIO_EXTENSIONS and suffix not in IGNORED_SUFFIXES


def walk(root: Path, follow_symlinks: bool) -> Iterator[Path]:
    """Audio files below `root`; symlinks are followed only if asked, never in a loop."""
    seen: set[tuple[int, int]] = set()
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            stat = folder.stat()
            if (stat.st_dev, stat.st_ino) in seen:
                continue
            seen.add((stat.st_dev, stat.st_ino))
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue  # unreadable or vanished folder: nothing to list
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                if entry.is_symlink() and not follow_symlinks:
                    continue
                if entry.is_dir():
                    stack.append(Path(entry.path))
                elif is_candidate(entry.name):
                    yield Path(entry.path)
            except OSError:
                yield Path(entry.path)  # e.g. a symlink loop: recorded as an error later


def _inspect(_context: None, path: Path) -> tuple[FileState, AudioInfo | str] | None:
    """Worker: (state, AudioInfo or a one-line reason), or None if the file vanished."""
    try:
        state = file_state(path)
        if state.size == 0:
            return state, "empty file (0 bytes)"
        return state, inspect_file(path)
    except FileNotFoundError:
        return None
    except AnalysisError as error:
        return state, str(error)
    except OSError as error:
        return None if not os.path.lexists(path) else (_error_state(path), reason(error))


def _analyse(
    embedders: list[Embedder], job: tuple[Path, AudioInfo, frozenset[str]]
) -> Analysis | str | None:
    """Worker: the Analysis (without the stages the job keeps), a one-line reason, or None
    if the file vanished."""
    path, info, kept = job
    try:
        return analyse(path, embedders, info, kept)
    except FileNotFoundError:
        return None
    except AnalysisError as error:
        return str(error)
    except OSError as error:
        return reason(error)


def _error_state(path: Path) -> FileState:
    try:
        stat = path.lstat()
        return FileState(str(path), stat.st_size, stat.st_mtime_ns)
    except OSError:
        return FileState(str(path), 0, 0)


Root = tuple[int, Path, bool]
"""(root id, folder, follow symlinks)."""


class Sync:
    """One pass of bringing the catalog in line with files: plan, then `apply`."""

    def __init__(self, catalog: Catalog, stages: list[StageSpec], progress: ScanProgress | None):
        self.catalog = catalog
        self.versions = {stage.name: stage.version for stage in stages}
        self.progress = progress or (lambda *_: None)
        self.report = ScanReport()
        self.root_of: dict[str, int] = {}
        self.known: dict[str, KnownTrack] = {}
        self.handled: dict[str, list[str]] = {
            k: [] for k in ("analysed", "reused", "failed", "removed")
        }
        """The paths behind each count of the report (the watcher's log names them)."""

    def _is_current(self, known: KnownTrack) -> bool:
        return known.status == "ok" and known.versions == self.versions

    def _kept_stages(self, path: Path, info: AudioInfo) -> frozenset[str]:
        """The stages whose stored outputs for this file are current: its audio is the
        one analysed, so a new version of one model redoes that model's stage only."""
        before = self.known.get(str(path))
        if before is None or before.status != "ok" or before.content_hash != info.content_hash:
            return frozenset()
        return frozenset(k for k, v in before.versions.items() if self.versions.get(k) == v)

    def _needs_work(self, path: Path, before: KnownTrack | None) -> bool:
        try:
            stat = path.stat()
        except OSError:
            return True  # e.g. a symlink loop: recorded as an error
        if before is None or (before.size, before.mtime_ns) != (stat.st_size, stat.st_mtime_ns):
            return True
        return not (before.status == "error" or self._is_current(before))

    def _consider(
        self, path: Path, root_id: int, known: dict[str, KnownTrack], todo: list[Path]
    ) -> None:
        """Count a found file and queue it if it is new, changed or not analysed by the
        current models."""
        self.root_of[str(path)] = root_id
        self.report.files += 1
        if self._needs_work(path, known.get(str(path))):
            todo.append(path)
        else:
            self.report.unchanged += 1

    def plan(self, roots: list[Root]) -> tuple[list[Path], dict[str, KnownTrack]]:
        """Walk the roots: files to inspect, and catalogued tracks whose files are gone."""
        todo: list[Path] = []
        missing: dict[str, KnownTrack] = {}
        for root_id, root, follow in roots:
            known = self.catalog.known_tracks(root_id)
            self.known.update(known)
            found: set[str] = set()
            for path in walk(root, follow):
                found.add(str(path))
                self._consider(path, root_id, known, todo)
            missing.update({p: k for p, k in known.items() if p not in found})
        return todo, missing

    def plan_changes(
        self, roots: list[Root], changed: set[Path], removed: set[Path]
    ) -> tuple[list[Path], dict[str, KnownTrack]]:
        """Plan from file-system events: `changed` files or folders, `removed` paths."""
        todo: list[Path] = []
        missing: dict[str, KnownTrack] = {}
        for root_id, root, follow in roots:
            gone_here = [p for p in removed if p.is_relative_to(root)]
            changed_here = [p for p in changed if p.is_relative_to(root)]
            known = self.catalog.known_tracks(root_id, under=map(str, gone_here + changed_here))
            self.known.update(known)
            for gone in gone_here:
                if str(gone) in known:  # a file
                    matches = [str(gone)]
                else:  # a folder: every track below it
                    prefix = str(gone) + os.sep
                    matches = [path for path in known if path.startswith(prefix)]
                for path in matches:
                    if not os.path.lexists(path):
                        missing[path] = known[path]
            for item in changed_here:
                paths = walk(item, follow) if item.is_dir() else [item]
                for path in paths:
                    if is_candidate(path.name) and path.exists():
                        self._consider(path, root_id, known, todo)
        return todo, missing

    def fail(self, state: FileState, reason: str) -> None:
        self.report.failed += 1
        self.handled["failed"].append(state.path)
        self.report.errors[state.path] = reason
        self.catalog.write_error(
            state, self.root_of[state.path], from_filename(Path(state.path)), reason
        )

    def reuse(self, state: FileState, content_hash: str, missing: dict[str, KnownTrack]) -> bool:
        """Give the file an existing analysis of the same audio, if there is a current one."""
        root_id = self.root_of[state.path]
        before = self.known.get(state.path)
        if before and before.content_hash == content_hash and self._is_current(before):
            self.catalog.update_file(before.id, state, root_id, read_tags(Path(state.path)))
            return True
        for row in self.catalog.tracks_with_hash(content_hash):
            if row["path"] not in self.known:  # e.g. the original of a copy, elsewhere
                self.known.update(self.catalog.known_tracks(row["root_id"], under=[row["path"]]))
            source = self.known.get(row["path"])
            if source is None or not self._is_current(source):
                continue
            if not os.path.lexists(row["path"]):
                # moved or renamed, within a root or out of another (a renamed top folder):
                # keep the id and the analysis
                missing.pop(row["path"], None)
                if before:
                    self.catalog.delete_tracks([before.id])
                self.catalog.update_file(row["id"], state, root_id, read_tags(Path(state.path)))
            else:
                self.catalog.copy_analysis(row["id"], state, root_id, read_tags(Path(state.path)))
            return True
        return False

    def apply(self, pool: Pool, todo: list[Path], missing: dict[str, KnownTrack]) -> ScanReport:
        """Inspect, reuse, analyse and forget; every track is committed as it is done."""
        to_analyse, copies = self._inspect_all(pool, todo, missing)
        self._analyse_all(pool, to_analyse, missing)
        leftover = [
            (path, info) for path, state, info in copies if not self._reused(state, info, missing)
        ]
        self._analyse_all(pool, leftover, missing)  # copies of audio that failed: rare
        report = self.report
        report.removed += self.catalog.delete_tracks(k.id for k in missing.values())
        self.handled["removed"] += list(missing)
        return report

    def _reused(self, state: FileState, info: AudioInfo, missing: dict[str, KnownTrack]) -> bool:
        if not self.reuse(state, info.content_hash, missing):
            return False
        self.report.reused += 1
        self.handled["reused"].append(state.path)
        return True

    def _inspect_all(
        self, pool: Pool, todo: list[Path], missing: dict[str, KnownTrack]
    ) -> tuple[list[tuple[Path, AudioInfo]], list[tuple[Path, FileState, AudioInfo]]]:
        """Hash the files: (files to analyse, copies of their audio among the others, which
        reuse the analysis once it is done)."""
        to_analyse: list[tuple[Path, AudioInfo]] = []
        copies: list[tuple[Path, FileState, AudioInfo]] = []
        hashes: set[str] = set()
        for done, (path, result) in enumerate(pool.map(_inspect, todo), 1):
            self.progress("inspect", done, len(todo), 0.0)
            if result is None:
                continue  # vanished since it was seen
            if isinstance(result, WorkerCrash):
                self.fail(_error_state(path), str(result))
                continue
            state, info = result
            if isinstance(info, str):
                self.fail(state, info)
            elif info.content_hash in hashes:
                copies.append((path, state, info))
            elif not self._reused(state, info, missing):
                to_analyse.append((path, info))
                hashes.add(info.content_hash)
        return to_analyse, copies

    def _analyse_all(
        self, pool: Pool, to_analyse: list[tuple[Path, AudioInfo]], missing: dict[str, KnownTrack]
    ) -> None:
        report = self.report
        jobs = [(path, info, self._kept_stages(path, info)) for path, info in to_analyse]
        for done, ((path, _info, _kept), result) in enumerate(pool.map(_analyse, jobs), 1):
            if isinstance(result, Analysis):
                self.catalog.write_analysis(
                    result.state,
                    self.root_of[str(path)],
                    result.tags,
                    result.audio_columns(),
                    result.outputs,
                )
                report.analysed += 1
                report.audio_s += result.duration_s
                self.handled["analysed"].append(str(path))
            elif isinstance(result, (str, WorkerCrash)):
                self.fail(_error_state(path), str(result))
            elif str(path) in self.known:
                missing[str(path)] = self.known[str(path)]
            self.progress("analyse", done, len(to_analyse), report.audio_s)


def resolve_roots(
    catalog: Catalog, dirs: list[Path], follow_symlinks: bool
) -> tuple[list[Root], list[str]]:
    """Register `dirs` (or take every registered root): (present roots, missing folders)."""
    roots: list[Root] = []
    missing: list[str] = []
    if dirs:
        for folder in dirs:
            path = Path(folder).expanduser().absolute()
            if not path.is_dir():
                raise SimlibError(f"not a folder: {folder}")
            path = path.resolve()
            roots.append((catalog.add_root(path, follow_symlinks), path, follow_symlinks))
        return roots, missing
    for row in catalog.roots():
        path = Path(row["path"])
        if path.is_dir():
            roots.append((row["id"], path, bool(row["follow_symlinks"])))
        else:
            missing.append(row["path"])  # unmounted? keep its tracks
    if not roots and not missing:
        raise SimlibError("no library folders yet: run `simlib scan DIR`")
    return roots, missing


def scan(
    catalog: Catalog,
    dirs: list[Path],
    embedder_factory: EmbedderFactory,
    *,
    follow_symlinks: bool = False,
    workers: int = 1,
    progress: ScanProgress | None = None,
    pool: Pool | None = None,
    stages_key: str | None = None,
) -> ScanReport:
    """Scan `dirs` (all registered roots if empty) into `catalog`; see the module doc.

    `pool` lets a long-running caller (the watcher) reuse its worker processes;
    its setup must be `embedder_factory`. Otherwise workers start only once there is a
    file to read; `stages_key` (see `known_stages`) spares loading the models just to
    learn that nothing needs them.
    """
    started = time.monotonic()
    roots, missing_roots = resolve_roots(catalog, dirs, follow_symlinks)
    with contextlib.ExitStack() as stack:
        if pool is None:
            pool = stack.enter_context(LazyPool(workers, setup=embedder_factory))
        stages = known_stages(catalog, pool, stages_key)
        sync = Sync(catalog, stages, progress)
        sync.report.missing_roots = missing_roots
        sync.report.roots = [str(path) for _, path, _ in roots]
        todo, missing = sync.plan(roots)
        report = sync.apply(pool, todo, missing)
    for root_id, _, _ in roots:
        catalog.mark_root_scanned(root_id)
    report.indexes = rebuild_indexes(catalog, stages, lambda d, t: sync.progress("index", d, t, 0))
    counts = {row["path"]: row["tracks"] + row["failed"] for row in catalog.root_summaries()}
    report.empty_missing_roots = [path for path in missing_roots if counts.get(path) == 0]
    report.seconds = time.monotonic() - started
    return report


def known_stages(catalog: Catalog, pool: Pool, key: str | None) -> list[StageSpec]:
    """The analysis stages the pool's workers run: as noted in the catalog under the same
    `key` (what the stages depend on: weights files and code), else asked of a worker."""
    noted = json.loads(catalog.meta(STAGES_META) or "{}")
    if key is not None and noted.get("key") == key:
        return [StageSpec(**spec) for spec in noted["stages"]]
    stages = pool_stages(pool)
    if key is not None:
        specs = [asdict(spec) for spec in stages]
        catalog.set_meta(STAGES_META, json.dumps({"key": key, "stages": specs}))
    return stages


def pool_stages(pool: Pool) -> list[StageSpec]:
    """The analysis stages the pool's workers run, asked of a worker."""
    try:
        return pool.run_once(stage_specs)
    except WorkerCrash as crash:
        raise SimlibError(f"cannot load the analysis models: {crash}") from crash

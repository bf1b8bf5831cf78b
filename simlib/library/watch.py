"""Keep the catalog and the indexes current from file-system events (watchdog).

On start the watcher reconciles its roots with the catalog (an ordinary,
incremental scan: a stat-only pass for unchanged files), then follows events:

- a created or modified file is queued until it is complete: closed after
  writing, or size and mtime unchanged for `settle_s`; hidden files and
  unfinished downloads (.part, .crdownload, .tmp) are ignored until renamed;
- a moved or renamed file or folder keeps its analysis and its id: the new
  path's audio hash matches the old track, handled in one batch with the removal;
- removals wait while files are still settling (a copy-then-delete move), at
  most `settle_s`, and are never applied to a root that is missing (an
  unmounted drive is reported and re-attached when it returns);
- events are coalesced into batches of at most `batch_size` files, so bursts
  use bounded memory.

Each batch is committed track by track. New analyses are searchable at once
(queries search tracks analysed after the index build exactly and drop deleted
ones); the indexes are rebuilt and swapped atomically once `rebuild_after`
changes pile up or the library has been quiet for `quiet_s`.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from watchdog import events
from watchdog.observers import Observer

from simlib.catalog import Catalog, watcher_presence, writer_lock
from simlib.library.indexes import rebuild_indexes
from simlib.library.pipeline import StageSpec
from simlib.library.sync import (
    EmbedderFactory,
    Root,
    ScanProgress,
    Sync,
    is_candidate,
    pool_stages,
    resolve_roots,
    scan,
    walk,
)
from simlib.library.workers import WorkerPool

Log = Callable[[dict], None]


@dataclass
class WatchSettings:
    """Timing and batching of the watcher (seconds, files, catalog changes)."""

    settle_s: float = 1.0
    """A file with no event and the same size and mtime for this long is complete."""
    closed_settle_s: float = 0.2
    """The same, for a file the platform reported closed after writing."""
    batch_size: int = 256
    rebuild_after: int = 500
    """Rebuild the indexes once this many catalog changes are not in them..."""
    quiet_s: float = 10.0
    """...or once the library has been quiet this long with any change pending."""
    tick_s: float = 0.1


@dataclass
class Pending:
    """A file waiting to be complete."""

    last_event: float
    closed: bool = False
    stat: tuple[int, int] | None = None


class _Collector(events.FileSystemEventHandler):
    """Puts watchdog events on a queue for the watcher's thread."""

    def __init__(self, out: queue.Queue) -> None:
        self.out = out

    def on_any_event(self, event: events.FileSystemEvent) -> None:
        self.out.put(event)


@dataclass
class WatchState:
    """What the watcher knows between ticks."""

    pending: dict[Path, Pending] = field(default_factory=dict)
    ready: set[Path] = field(default_factory=set)
    folders: set[Path] = field(default_factory=set)
    removed: dict[Path, float] = field(default_factory=dict)
    last_change: float = 0.0


class Watcher:
    """Follow the roots of one catalog; `run` until `stop` is set."""

    def __init__(
        self,
        catalog: Catalog,
        dirs: list[Path],
        embedder_factory: EmbedderFactory,
        workers: int = 1,
        follow_symlinks: bool = False,
        settings: WatchSettings | None = None,
        log: Log | None = None,
        on_tick: Log | None = None,
        progress: ScanProgress | None = None,
    ) -> None:
        self.catalog = catalog
        self.progress = progress
        """Told how a (re)conciling scan of whole roots advances, as `scan` tells it."""
        self.dirs = dirs
        self.follow = follow_symlinks
        self.factory = embedder_factory
        self.workers = workers
        self.settings = settings or WatchSettings()
        self.log = log or (lambda _event: None)
        self.on_tick = on_tick or (lambda _status: None)
        self.events: queue.Queue = queue.Queue()
        self.state = WatchState()
        self.observer = Observer()
        self.watches: dict[Path, object] = {}
        self.detached: set[Path] = set()
        self.roots: list[Root] = []
        """The roots that are present, with their catalog ids."""
        self.root_paths: list[Path] = []
        """Every root, present or not."""
        self.stages: list[StageSpec] = []
        self.noted: dict = {}
        self.note: Callable[[dict], None] = lambda _state: None
        """Records the watcher's state for `simlib status` (`catalog.watcher_presence`)."""

    # -- events -----------------------------------------------------------------

    def _queue_file(self, path: Path, now: float, closed: bool = False) -> None:
        if not is_candidate(path.name):
            return
        entry = self.state.pending.setdefault(path, Pending(last_event=now))
        entry.last_event = now
        entry.closed = entry.closed or closed

    def handle(self, event: events.FileSystemEvent, now: float) -> None:
        """Turn one watchdog event into pending, ready, removed or folder work."""
        state = self.state
        src = Path(event.src_path)
        if event.event_type in ("opened", "closed_no_write") or (
            event.is_directory and event.event_type == "modified"
        ):
            return
        state.last_change = now
        if event.event_type == "moved":
            dest = Path(event.dest_path)
            state.removed[src] = now
            state.pending.pop(src, None)
            if event.is_directory:
                state.folders.add(dest)
            elif is_candidate(dest.name):
                state.ready.add(dest)  # a rename moves a complete file
            return
        if event.event_type == "deleted":
            state.removed[src] = now
            state.pending.pop(src, None)
            return
        if event.is_directory:
            if event.event_type == "created":  # files written before its watch existed
                for path in walk(src, self.follow):
                    self._queue_file(path, now)
            return
        self._queue_file(src, now, closed=event.event_type == "closed")

    def take_batch(self, now: float) -> tuple[set[Path], set[Path]]:
        """(changed files and folders, removed paths) that are ready now."""
        state, settings = self.state, self.settings
        for path, entry in list(state.pending.items()):
            wait = settings.closed_settle_s if entry.closed else settings.settle_s
            if now - entry.last_event < wait:
                continue
            try:
                stat = path.stat()
            except OSError:
                del state.pending[path]  # gone before it was complete
                continue
            key = (stat.st_size, stat.st_mtime_ns)
            if entry.closed or entry.stat == key:
                state.ready.add(path)
                del state.pending[path]
            else:
                entry.stat, entry.last_event = key, now
        changed: set[Path] = set()
        while state.ready and len(changed) < settings.batch_size:
            changed.add(state.ready.pop())
        while state.folders and len(changed) < settings.batch_size:
            changed.add(state.folders.pop())
        removed: set[Path] = set()
        for path, seen in list(state.removed.items()):
            if not state.pending or now - seen >= settings.settle_s:
                removed.add(path)
                del state.removed[path]
        return changed, removed

    # -- roots --------------------------------------------------------------------

    def _attach(self, root: Path) -> None:
        self.watches[root] = self.observer.schedule(
            _Collector(self.events), str(root), recursive=True
        )
        self.detached.discard(root)

    def check_roots(self, pool: WorkerPool) -> None:
        """Report roots that disappeared; re-attach and reconcile the ones that returned."""
        for root in self.root_paths:
            present = root.is_dir()
            if not present and root not in self.detached:
                self.detached.add(root)
                self.roots = [r for r in self.roots if r[1] != root]
                watch = self.watches.pop(root, None)
                if watch is not None:
                    with contextlib.suppress(KeyError):
                        self.observer.unschedule(watch)
                self.log({"event": "root-missing", "root": str(root)})
            elif present and root in self.detached:
                self._attach(root)
                with writer_lock(self.catalog.home):
                    report = scan(
                        self.catalog,
                        [root],
                        self.factory,
                        pool=pool,
                        follow_symlinks=self.follow,
                        progress=self.progress,
                    )
                    present_roots = [p for p in self.root_paths if p not in self.detached]
                    self.roots, _ = resolve_roots(self.catalog, present_roots, self.follow)
                self.log({"event": "root-returned", "root": str(root), **_counts(report)})

    # -- main loop ----------------------------------------------------------------

    def apply(self, pool: WorkerPool, changed: set[Path], removed: set[Path]) -> None:
        live = [r for r in self.roots if r[1] not in self.detached and r[1].is_dir()]
        removed = {p for p in removed if any(p.is_relative_to(root) for _, root, _ in live)}
        if not changed and not removed:
            return
        sync = Sync(self.catalog, self.stages, None)
        with writer_lock(self.catalog.home):
            todo, missing = sync.plan_changes(live, changed, removed)
            report = sync.apply(pool, todo, missing)
        if report.analysed or report.reused or report.removed or report.failed:
            files = {action: paths for action, paths in sync.handled.items() if paths}
            self.log({"event": "batch", **_counts(report), "files": files, "errors": report.errors})

    def maybe_rebuild(self, now: float) -> None:
        generation = self.catalog.generation
        built = [self.catalog.index_info(s.name) for s in self.stages]
        behind = max(
            (generation - (info["generation"] if info else -1) for info in built), default=0
        )
        quiet = now - self.state.last_change >= self.settings.quiet_s
        if behind <= 0 or (behind < self.settings.rebuild_after and not quiet):
            return
        if self.state.pending or self.state.ready or self.state.folders:
            return  # more is coming: rebuild once it has landed
        with writer_lock(self.catalog.home):
            rebuilt = rebuild_indexes(self.catalog, self.stages)
        if rebuilt:
            self.log({"event": "indexes-rebuilt", "indexes": rebuilt, "generation": generation})

    def run(self, stop: threading.Event) -> None:
        """Reconcile, then follow events until `stop` is set."""
        with (
            watcher_presence(self.catalog.home) as self.note,
            WorkerPool(self.workers, setup=self.factory) as pool,
        ):
            self._note({"phase": "starting"})
            self.stages = pool_stages(pool)
            try:
                self.reconcile(pool)
                self._note({"phase": "loading models"})
                pool.start()  # models loaded in every worker before the first event
                self.log({"event": "watching", "roots": [str(p) for p in self.root_paths]})
                while not stop.is_set():
                    self.tick(pool, time.monotonic())
            finally:
                if self.observer.is_alive():
                    self.observer.stop()
                    self.observer.join(timeout=5)

    def reconcile(self, pool: WorkerPool) -> None:
        """Attach to the roots, then bring the catalog in line with them (a scan)."""
        self._note({"phase": "reconciling"})
        with writer_lock(self.catalog.home, lambda m: self.log({"event": "wait", "message": m})):
            self.roots, missing = resolve_roots(self.catalog, self.dirs, self.follow)
            self.root_paths = [r[1] for r in self.roots] + [Path(p) for p in missing]
            for _, root, _ in self.roots:
                self._attach(root)  # before reconciling, so no change slips between
            self.observer.start()
            for path in missing:
                self.detached.add(Path(path))
                self.log({"event": "root-missing", "root": path})
            if self.roots:
                report = scan(
                    self.catalog,
                    [r[1] for r in self.roots],
                    self.factory,
                    pool=pool,
                    follow_symlinks=self.follow,
                    progress=self.progress,
                )
                self.log({"event": "reconciled", **_counts(report)})

    def _note(self, state: dict) -> None:
        """Record the state for `simlib status` when it changed."""
        if state != self.noted:
            self.noted = state
            self.note(state)

    def tick(self, pool: WorkerPool, now: float) -> None:
        try:
            event = self.events.get(timeout=self.settings.tick_s)
            self.handle(event, now)
            while True:
                self.handle(self.events.get_nowait(), now)
        except queue.Empty:
            pass
        self.check_roots(pool)
        changed, removed = self.take_batch(time.monotonic())
        self.apply(pool, changed, removed)
        self.maybe_rebuild(time.monotonic())
        status = self.status()
        waiting = status["settling"] + status["queued"] + status["removals"]
        self._note({"phase": "watching", "waiting": waiting, "roots": status["roots"]})
        self.on_tick(status)

    def status(self) -> dict:
        """A snapshot for a status line: files waiting, ready, removals pending."""
        return {
            "settling": len(self.state.pending),
            "queued": len(self.state.ready) + len(self.state.folders),
            "removals": len(self.state.removed),
            "missing_roots": sorted(str(r) for r in self.detached),
            "roots": [str(r) for r in self.root_paths],
        }


def _counts(report) -> dict:  # noqa: ANN001 - a ScanReport
    return {k: getattr(report, k) for k in ("analysed", "reused", "removed", "failed", "unchanged")}

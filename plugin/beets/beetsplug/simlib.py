"""simlib for beets: `beet similar QUERY`, `beet identify CLIP`, analysis of imported music.

Enable with `plugins: simlib`; settings under `simlib:` (see DEFAULTS). It uses the
same simlib home as the `simlib` command. Items imported while `auto` is on are
analysed once the import session ends (one incremental `simlib.scan` for the
whole session) and get simlib's track id as the flexible attribute `simlib_id`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from optparse import Values
from pathlib import Path
from typing import TYPE_CHECKING

from beets import ui
from beets.dbcore import types
from beets.dbcore.query import PathQuery
from beets.library import Album, Item, Library
from beets.plugins import BeetsPlugin

if TYPE_CHECKING:
    from simlib.catalog import Catalog

# simlib (and torch) is imported only by the code that uses it: every `beet` command loads
# this plugin, and `beet ls` should not pay for loading simlib.

DEFAULTS = {
    "home": None,  # simlib's data folder; None: $SIMLIB_HOME, else the user data dir
    "auto": True,  # analyse imported items
    "count": 10,  # items listed by `beet similar`
}


def file_path(item: Item) -> str:
    """The item's file as simlib names it: absolute, symlinks resolved."""
    return os.path.realpath(os.fsdecode(item.path))


def scan_roots(
    paths: Iterable[str],
    roots: Iterable[str],
    library_dir: str,
    import_dirs: Iterable[str] = (),
) -> list[str]:
    """Folders to scan so every file in `paths` is covered by one library root for the
    whole import, never one per album: the simlib root holding it, else the beets library
    directory if it holds it, else the folder given to `beet import` that holds it, else
    its own folder. All arguments are absolute paths with symlinks resolved."""
    folders = [os.path.join(folder, "") for folder in [*roots, library_dir, *import_dirs]]
    chosen: set[str] = set()
    for path in paths:
        holders = [os.path.normpath(f) for f in folders if path.startswith(f)]
        chosen.add(holders[0] if holders else os.path.dirname(path))
    return sorted(chosen)


class SimlibPlugin(BeetsPlugin):
    """The `similar` and `identify` commands, and the import listeners."""

    item_types = {"simlib_id": types.INTEGER}

    def __init__(self) -> None:
        super().__init__()
        self.config.add(DEFAULTS)
        self.imported: list[int] = []
        if self.config["auto"].get(bool):
            self.register_listener("item_imported", self.item_imported)
            self.register_listener("album_imported", self.album_imported)
            self.register_listener("import", self.analyse_imported)

    @property
    def home(self) -> Path:
        from simlib.config import resolve_home

        home = self.config["home"].get()
        return resolve_home(self.config["home"].as_filename() if home else None)

    def commands(self) -> list[ui.Subcommand]:
        similar = ui.Subcommand("similar", help="list items that sound like the items of QUERY")
        similar.parser.usage += " QUERY"
        similar.parser.add_option(
            "-n", "--count", type="int", help="items per query item (default: simlib.count)"
        )
        similar.parser.add_format_option(target="item")
        similar.func = self.similar_command
        identify = ui.Subcommand("identify", help="which item is each recorded CLIP?")
        identify.parser.usage += " CLIP..."
        identify.func = self.identify_command
        return [similar, identify]

    # -- commands -----------------------------------------------------------------------

    def similar_command(self, lib: Library, opts: Values, args: list[str]) -> None:
        import simlib
        from simlib.config import SimlibError

        if not args:
            raise ui.UserError("give a QUERY: the items to find similar ones for")
        count = opts.count or self.config["count"].get(int)
        items = list(lib.items(args))
        if not items:
            raise ui.UserError("no items match the query")
        catalog = simlib.open_catalog(self.home)
        try:
            for item in items:
                ui.print_(format(item))
                for score, found in self.similar_items(lib, catalog, item, count):
                    ui.print_(f"  {score:.3f}  {format(found)}")
        except SimlibError as error:
            raise ui.UserError(str(error)) from error
        finally:
            catalog.close()

    def similar_items(
        self, lib: Library, catalog: Catalog, item: Item, count: int
    ) -> list[tuple[float, Item]]:
        """Up to `count` (score, item) of the beets library, most similar first; simlib results
        outside the beets library are passed over (more are asked for to make up for them)."""
        import simlib

        n = count
        while True:
            result = simlib.similar([file_path(item)], home=self.home, n=n)[0]
            if result.error:
                self._log.warning("{}: {}", file_path(item), result.error)
            found = [
                (r.score, match)
                for r in result.results
                if (match := self.item_at(lib, catalog, r.track.path)) is not None
            ]
            if len(found) >= count or len(result.results) < n:
                return found[:count]
            n *= 4

    def item_at(self, lib: Library, catalog: Catalog, path: str) -> Item | None:
        """The beets item of a simlib track: by path, else by `simlib_id`."""
        found = lib.items(PathQuery("path", os.fsencode(path))).get()
        if found is None:
            track = catalog.track_by_path(path)
            found = lib.items(f"simlib_id:{track.id}").get() if track else None
        return found

    def identify_command(self, lib: Library, opts: Values, args: list[str]) -> None:
        import simlib
        from simlib.config import SimlibError

        if not args:
            raise ui.UserError("give the audio CLIP(s) to identify")
        catalog = simlib.open_catalog(self.home)
        try:
            for result in simlib.identify(args, home=self.home):
                match = result.match
                if result.error:
                    ui.print_(f"{result.query}: error: {result.error}")
                elif match is None:
                    ui.print_(f"{result.query}: no match")
                else:
                    path = match.track.path
                    item = self.item_at(lib, catalog, path)
                    what = format(item) if item else f"{path} (not in the beets library)"
                    ui.print_(
                        f"{result.query}: {what}  at {match.offset_s:.1f} s, "
                        f"confidence {match.confidence:.2f}"
                    )
        except SimlibError as error:
            raise ui.UserError(str(error)) from error
        finally:
            catalog.close()

    # -- import -------------------------------------------------------------------------

    def item_imported(self, lib: Library, item: Item) -> None:
        self.imported.append(item.id)

    def album_imported(self, lib: Library, album: Album) -> None:
        self.imported.extend(item.id for item in album.items())

    def analyse_imported(self, lib: Library, paths: list[bytes]) -> None:
        """At the end of an import: scan the new files, store their `simlib_id`."""
        import simlib
        from simlib.config import SimlibError

        items = [item for item in map(lib.get_item, self.imported) if item is not None]
        self.imported = []
        if not items:
            return
        home = self.home
        catalog = simlib.open_catalog(home)
        try:
            roots = [row["path"] for row in catalog.roots()]
            dirs = scan_roots(
                map(file_path, items),
                roots,
                os.path.realpath(os.fsdecode(lib.directory)),
                [os.path.realpath(os.fsdecode(path)) for path in paths],
            )
            self._log.info("analysing {} imported item(s): scanning {}", len(items), dirs)
            report = simlib.scan(dirs, home=home)
            for item in items:
                track = catalog.track_by_path(file_path(item))
                if track is None:
                    reason = report.errors.get(file_path(item), "not analysed")
                    self._log.warning("{}: {}", file_path(item), reason)
                    continue
                item["simlib_id"] = track.id
                item.store()
        except SimlibError as error:
            self._log.error("simlib could not analyse the imported items: {}", error)
        finally:
            catalog.close()

"""Where simlib keeps its data, and the settings every command starts from."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

import platformdirs

HOME_ENV = "SIMLIB_HOME"
CATALOG_NAME = "catalog.db"
CONFIG_NAME = "config.toml"
INDEX_DIR_NAME = "indexes"


class SimlibError(Exception):
    """An error meant for the user: its message is one clear line."""


def resolve_home(home: Path | str | None = None) -> Path:
    """The data folder: `home` if given, else $SIMLIB_HOME, else the user data dir."""
    if home is None:
        home = os.environ.get(HOME_ENV) or platformdirs.user_data_dir("simlib", appauthor=False)
    return Path(home).expanduser().absolute()


def config_section(home: Path, section: str) -> dict:
    """The `[section]` table of `home/config.toml` ({} if the file or table is missing)."""
    path = home / CONFIG_NAME
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8")).get(section, {})
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise SimlibError(f"cannot read {path}: {error}") from error


TYPE_WORDS = {int: "a whole number", float: "a number", bool: "true or false", str: "text"}


def _expected(annotation: str) -> type:
    """The value type a settings field of this (string) annotation takes."""
    return next((t for t in (bool, int, float) if t.__name__ in annotation.split(" | ")), str)


def checked(cls: type, data: dict, where: str) -> dict:
    """`data` (a config.toml table) for dataclass `cls`: unknown names and values of the
    wrong type are one-line errors naming them; whole numbers given as text are taken."""
    kinds = {f.name: _expected(str(f.type)) for f in fields(cls)}
    unknown = sorted(set(data) - set(kinds))
    if unknown:
        raise SimlibError(f"{where}: unknown setting(s) {', '.join(unknown)}")
    values = {}
    for name, value in data.items():
        kind = kinds[name]
        if kind is int and isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        fits = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            fits, value = True, float(value)
        if not fits:
            raise SimlibError(f"{where}: {name} is not {TYPE_WORDS[kind]}: {value!r}")
        values[name] = value
    return values


@dataclass(frozen=True)
class Settings:
    """The `[simlib]` table of `config.toml`. A setting left out (None) takes its default
    from where it is used: the query policy of the model in use, or the machine."""

    workers: int = 0
    """Analysis processes; 0 means one per core."""
    follow_symlinks: bool = False
    similar_count: int = 10
    identify_top: int | None = None
    """Matches `identify` reports per clip (default: the identification policy's)."""
    min_confidence: float | None = None
    """Below this calibrated confidence `identify` answers "no match" (default: the policy's)."""

    @classmethod
    def load(cls, home: Path) -> Settings:
        """The `[simlib]` table of `home/config.toml` over the defaults."""
        data = config_section(home, "simlib")
        return cls(**checked(cls, data, f"{home / CONFIG_NAME} [simlib]"))

    def worker_count(self) -> int:
        return self.workers if self.workers > 0 else (os.cpu_count() or 1)

"""Where simlib keeps its data, and the defaults every command starts from."""

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
SHIPPED_WEIGHTS_DIR = Path(__file__).parent / "models" / "weights"
"""The default model weights, `<model name>.pt`, installed with the package."""

AUDIO_EXTENSIONS = frozenset(
    {
        ".mp3",
        ".m4a",
        ".mp4",
        ".aac",
        ".flac",
        ".ogg",
        ".oga",
        ".opus",
        ".wav",
        ".aif",
        ".aiff",
        ".wma",
        ".wv",
        ".ape",
        ".mpc",
    }
)
"""File endings a scan picks up; anything FFmpeg cannot decode is recorded as an error."""

IGNORED_SUFFIXES = frozenset({".part", ".crdownload", ".tmp", ".partial", ".download"})
"""Unfinished downloads: ignored until renamed to their final name."""

MIN_DURATION_S = 1.0
"""Tracks shorter than this are recorded as errors: too short to analyse."""


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


@dataclass
class Settings:
    """Defaults for every command; `config.toml` in the home folder overrides them."""

    workers: int = 0
    """Analysis processes; 0 means one per core."""
    follow_symlinks: bool = False
    similar_count: int = 10
    identify_top: int = 5
    min_confidence: float = 0.5
    """Below this calibrated confidence `identify` answers "no match"."""

    @classmethod
    def load(cls, home: Path) -> Settings:
        """Defaults overridden by the `[simlib]` table of `home/config.toml`."""
        data = config_section(home, "simlib")
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise SimlibError(f"{home / CONFIG_NAME}: unknown setting(s) {', '.join(unknown)}")
        return cls(**data)

    def worker_count(self) -> int:
        return self.workers if self.workers > 0 else (os.cpu_count() or 1)

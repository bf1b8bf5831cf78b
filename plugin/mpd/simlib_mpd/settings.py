"""`simlib dj` settings: defaults, the `[dj]` table of config.toml, MPD_HOST/MPD_PORT, flags.

Later sources win: defaults < `[dj]` in `$SIMLIB_HOME/config.toml` < MPD_HOST and
MPD_PORT (as every MPD client reads them) < command-line flags. A host may carry a
password as `password@host`; `--password` still wins over it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from simlib.config import CONFIG_NAME, SimlibError, checked, config_section

SECTION = "dj"


@dataclass(frozen=True)
class DjSettings:
    """Every `simlib dj` option; the `[dj]` table uses these names (with `_`)."""

    host: str = "localhost"
    """Host name, IP address, socket path, or @abstract-socket of MPD."""
    port: int = 6600
    password: str | None = None
    music_dir: str | None = None
    """MPD's music_directory when MPD will not tell it (it does over a local socket only)."""
    queue_length: int = 2
    """Keep at least this many songs queued after the current one."""
    history: int = 50
    """Songs played this session that may not be queued again."""
    blend: int = 1
    """Seed recommendations from the last N played songs (1: the current song only)."""
    allow_same_artist: bool = False

    @classmethod
    def load(cls, home: Path, **flags: object) -> DjSettings:
        """Settings for `home`; `flags` that are None are "not given" and leave the value as is."""
        table = config_section(home, SECTION)
        settings = cls(**checked(cls, table, f"{home / CONFIG_NAME} [{SECTION}]"))
        if os.environ.get("MPD_HOST"):
            settings = replace(settings, host=os.environ["MPD_HOST"])
        if os.environ.get("MPD_PORT"):
            try:
                settings = replace(settings, port=int(os.environ["MPD_PORT"]))
            except ValueError:
                raise SimlibError(
                    f"MPD_PORT is not a port number: {os.environ['MPD_PORT']}"
                ) from None
        settings = replace(settings, **{k: v for k, v in flags.items() if v is not None})
        password, host = split_mpd_host(settings.host)
        if password and flags.get("password") is None:
            settings = replace(settings, password=password)
        settings = replace(settings, host=host)
        if settings.queue_length < 1 or settings.history < 0 or settings.blend < 1:
            raise SimlibError("queue_length and blend must be >= 1, history >= 0")
        return settings


def split_mpd_host(value: str) -> tuple[str | None, str]:
    """(password, host) from MPD_HOST's `[password@]host` form; `@name` is an abstract socket."""
    password, at, host = value.partition("@")
    if not at or not password:
        return None, value
    return password, host

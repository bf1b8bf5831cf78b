"""simlib's MPD plugin: `simlib dj`, an auto-DJ that keeps MPD's queue filled with similar tracks.

`radio` holds the rules (pure), `player` the MPD I/O, `settings` the options, `cli` the command.
"""

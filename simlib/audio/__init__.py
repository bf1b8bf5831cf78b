"""Audio in: decoding any file FFmpeg reads to mono float32 (`decode`), and the log-mel
features every model reads (`simlib.audio.features`, imported where models run)."""

from simlib.audio.decode import (
    ANALYSIS_RATE_HZ,
    AUDIO_EXTENSIONS,
    AudioInfo,
    AudioSource,
    DecodeError,
    decode,
    inspect,
    reason,
    stream,
)

__all__ = [
    "ANALYSIS_RATE_HZ",
    "AUDIO_EXTENSIONS",
    "AudioInfo",
    "AudioSource",
    "DecodeError",
    "decode",
    "inspect",
    "reason",
    "stream",
]

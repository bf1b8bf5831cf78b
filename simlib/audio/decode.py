"""Decode audio files with PyAV (FFmpeg) to mono float32 at the analysis rate.

Decoding is streamed in blocks, resampling happens inside FFmpeg, and damaged
packets are skipped one by one, so a corrupt packet in the middle of a file or
a two-hour mix never needs more than one block of samples in memory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np

ANALYSIS_RATE_HZ = 16_000
"""Every analysis in simlib runs on mono audio at this sample rate."""

DEFAULT_BLOCK_S = 30.0
"""Length of the blocks `stream` yields, in seconds."""

RESAMPLE_BATCH = 16_384
"""Decoded samples (per channel) handed to the resampler at once: one call per codec frame
(~1,000 samples) cost more than the decoding."""

MAX_BAD_PACKET_SHARE = 0.5
"""A file whose share of undecodable packets exceeds this is rejected."""

PROBE_BYTES = 32_768
"""How much of a file FFmpeg reads to find its streams: its default, 5 MB, reads seconds of
a WAV file before decoding starts; every format tried finds the same streams with this."""

AUDIO_EXTENSIONS = frozenset(
    {".mp3", ".m4a", ".mp4", ".aac", ".flac", ".ogg", ".oga", ".opus", ".wav", ".aif", ".aiff"}
    | {".wma", ".wv", ".ape", ".mpc"}
)
"""File endings taken for audio; a file FFmpeg cannot decode is reported, not skipped."""

AudioSource = str | Path | BinaryIO


class DecodeError(Exception):
    """The file is not audio FFmpeg can decode; the message is one line."""


@dataclass(frozen=True)
class AudioInfo:
    """What the container says about a file's first audio stream."""

    codec: str
    container: str
    sample_rate_hz: int
    channels: int
    duration_s: float | None
    content_hash: str
    """BLAKE2b of the audio packets only: unchanged by retagging or moving."""


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


OS_REASONS = (
    (FileNotFoundError, "no such file"),
    (IsADirectoryError, "is a folder"),
    (PermissionError, "permission denied"),
)
"""How a failure to open an input is said to the user (no errno numbers)."""
EMPTY = "empty file (0 bytes)"


def reason(error: DecodeError | OSError) -> str:
    """The one-line reason an input could not be read, as simlib reports it."""
    for kind, text in OS_REASONS:
        if isinstance(error, kind):
            return text
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    return _one_line(error)


def _is_empty(source: AudioSource) -> bool:
    """Whether a file or a seekable stream holds no bytes (FFmpeg would call it invalid)."""
    if isinstance(source, str | Path):
        return Path(source).is_file() and Path(source).stat().st_size == 0
    if not source.seekable():
        return False
    here = source.tell()
    end = source.seek(0, 2)
    source.seek(here)
    return end == here


def _open(source: AudioSource) -> av.container.InputContainer:
    if _is_empty(source):
        raise DecodeError(EMPTY)
    try:
        target = source if not isinstance(source, Path) else str(source)
        container = av.open(target, mode="r", options={"probesize": str(PROBE_BYTES)})
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise
    except av.error.FileNotFoundError as error:
        raise FileNotFoundError(str(source)) from error
    except av.error.PermissionError as error:
        raise PermissionError(_one_line(error)) from error
    except av.error.IsADirectoryError as error:
        raise IsADirectoryError(str(source)) from error
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as error:
        raise DecodeError("not an audio file") from error
    if not container.streams.audio:
        container.close()
        raise DecodeError("no audio stream")
    return container


def inspect(source: AudioSource) -> AudioInfo:
    """Read stream facts and hash the audio packets without decoding them."""
    container = _open(source)
    try:
        stream = container.streams.audio[0]
        digest = hashlib.blake2b(digest_size=16)
        packets = 0
        last_end_s = 0.0
        try:
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                digest.update(bytes(packet))
                packets += 1
                if packet.pts is not None and packet.time_base is not None:
                    end = packet.pts + (packet.duration or 0)
                    last_end_s = max(last_end_s, float(end * packet.time_base))
        except av.error.FFmpegError as error:
            if packets == 0:
                raise DecodeError("no audio data") from error
        if packets == 0:
            raise DecodeError("no audio data")
        duration_s = None
        if stream.duration is not None and stream.time_base is not None:
            duration_s = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration_s = container.duration / av.time_base
        elif last_end_s > 0:
            duration_s = last_end_s
        codec = stream.codec_context
        return AudioInfo(
            codec=codec.name,
            container=container.format.name,
            sample_rate_hz=int(codec.sample_rate or 0),
            channels=int(codec.channels or 0),
            duration_s=duration_s,
            content_hash=digest.hexdigest(),
        )
    finally:
        container.close()


def stream(
    source: AudioSource,
    start_s: float = 0.0,
    duration_s: float | None = None,
    block_s: float = DEFAULT_BLOCK_S,
    sample_rate_hz: int = ANALYSIS_RATE_HZ,
) -> Iterator[np.ndarray]:
    """Yield mono float32 blocks of about `block_s` seconds at `sample_rate_hz`.

    Only the window [start_s, start_s + duration_s) is yielded; the container is
    seeked to `start_s` first, so a window deep in a long file is read quickly.
    Undecodable packets are skipped; a file made mostly of them raises
    `DecodeError`.
    """
    container = _open(source)
    try:
        audio = container.streams.audio[0]
        audio.thread_type = "AUTO"
        # Time 0 is the stream's first sample (MP3 encoder delay is already skipped there).
        origin_s = float(audio.start_time * audio.time_base) if audio.start_time else 0.0
        if start_s > 0:
            _seek(container, audio, start_s + origin_s)
        remaining = None if duration_s is None else int(round(duration_s * sample_rate_hz))
        blocks = _Blocks(max(1, int(block_s * sample_rate_hz)), remaining)
        resampler = _Resampler(sample_rate_hz)
        for frame in _frames(container, audio):
            if blocks.to_skip is None:  # the samples before start_s, known at the first frame
                first_s = float(frame.time) - origin_s if frame.time is not None else 0.0
                blocks.to_skip = max(0, int(round((start_s - first_s) * sample_rate_hz)))
            for samples in resampler.add(frame):
                yield from blocks.add(samples)
            if blocks.done:
                break
        for samples in resampler.drain(tail=not blocks.done):
            yield from blocks.add(samples)
        yield from blocks.rest()
    except av.error.FFmpegError as error:
        raise DecodeError("the audio cannot be decoded (a damaged file?)") from error
    finally:
        container.close()


def _seek(container: av.container.InputContainer, audio: av.AudioStream, at_s: float) -> None:
    """Seek to the last key frame at or before `at_s` (stream time), else to the start."""
    try:
        container.seek(int(at_s / audio.time_base), stream=audio, backward=True)
    except av.error.FFmpegError:
        container.seek(0, stream=audio)


def _frames(container: av.container.InputContainer, audio: av.AudioStream) -> Iterator:
    """The decoded frames of `audio`, damaged packets skipped unless most of them are."""
    good = bad = 0
    for packet in container.demux(audio):
        try:
            frames = packet.decode()
        except av.error.FFmpegError as error:
            bad += 1
            if bad > 16 and bad > MAX_BAD_PACKET_SHARE * (good + bad):
                raise DecodeError("damaged audio: most of it cannot be decoded") from error
            continue
        good += bool(packet.size)
        yield from frames
    if good == 0:
        raise DecodeError("no audio could be decoded")


class _Resampler:
    """Decoded frames -> mono float32 sample arrays at `rate_hz`, resampled a batch at a
    time (one FFmpeg call per codec frame costs more than the decoding), with a new FFmpeg
    resampler whenever the frames change kind (e.g. joined streams' rates)."""

    def __init__(self, rate_hz: int) -> None:
        self.rate_hz = rate_hz
        self.resampler = _mono_resampler(rate_hz)
        self.batch = av.AudioFifo()
        self.kind: tuple | None = None

    def add(self, frame: av.AudioFrame) -> Iterator[np.ndarray]:
        frame.pts = None  # let the resampler follow sample counts, not gaps
        if self.kind not in (None, _kind(frame)):
            yield from self.drain(tail=True)  # the old kind's samples and resampler tail
            self.resampler, self.batch = _mono_resampler(self.rate_hz), av.AudioFifo()
        self.kind = _kind(frame)
        self.batch.write(frame)
        if self.batch.samples >= RESAMPLE_BATCH:
            yield from self._resample(self.batch.read())

    def drain(self, tail: bool) -> Iterator[np.ndarray]:
        """The batched samples, and with `tail` what the resampler still holds."""
        if self.batch.samples:
            yield from self._resample(self.batch.read())
        if tail:
            yield from self._resample(None)

    def _resample(self, frame: av.AudioFrame | None) -> Iterator[np.ndarray]:
        for out in self.resampler.resample(frame):
            yield out.to_ndarray().reshape(-1)


class _Blocks:
    """Cuts a run of samples into blocks of `length`, after dropping the first `to_skip`
    and keeping at most `remaining` (None: all)."""

    def __init__(self, length: int, remaining: int | None) -> None:
        self.length = length
        self.remaining = remaining
        self.to_skip: int | None = None
        self.pending: list[np.ndarray] = []
        self.pending_len = 0

    @property
    def done(self) -> bool:
        return self.remaining == 0

    def add(self, samples: np.ndarray) -> Iterator[np.ndarray]:
        if self.to_skip:
            cut = min(self.to_skip, samples.size)
            samples = samples[cut:]
            self.to_skip -= cut
        if self.remaining is not None:
            samples = samples[: self.remaining]
            self.remaining -= samples.size
        if samples.size:
            self.pending.append(samples)
            self.pending_len += samples.size
        while self.pending_len >= self.length:
            joined = np.concatenate(self.pending)
            yield joined[: self.length]
            self.pending = [joined[self.length :]]
            self.pending_len = self.pending[0].size

    def rest(self) -> Iterator[np.ndarray]:
        if self.pending_len:
            yield np.concatenate(self.pending).astype(np.float32, copy=False)


def _mono_resampler(rate_hz: int) -> av.AudioResampler:
    """Converts frames of one kind to mono float32 at `rate_hz`."""
    return av.AudioResampler(format="flt", layout="mono", rate=rate_hz)


def _kind(frame: av.AudioFrame) -> tuple[str, str, int]:
    """Sample format, channel layout and rate: what frames resampled together share."""
    return frame.format.name, frame.layout.name, frame.sample_rate


def decode(
    source: AudioSource,
    start_s: float = 0.0,
    duration_s: float | None = None,
    sample_rate_hz: int = ANALYSIS_RATE_HZ,
) -> np.ndarray:
    """Return the window [start_s, start_s + duration_s) as one mono float32 array."""
    blocks = list(stream(source, start_s, duration_s, sample_rate_hz=sample_rate_hz))
    if not blocks:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(blocks).astype(np.float32, copy=False)

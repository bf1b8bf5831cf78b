"""The per-track analysis pipeline: decode -> features (log-mel, spectral peaks) -> embedders.

`analyse` runs the stages for one file and returns an `Analysis` (or raises
`AnalysisError` with a one-line reason); the scan writes it to the catalog and
the indexes are rebuilt from the catalog. A new model is one more `Embedder`
in the list the pipeline is given: nothing else changes.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from simlib import audio
from simlib.catalog import FileState, PackedSegments, TrackPeaks, read_tags
from simlib.catalog.store import Output
from simlib.identify import peaks
from simlib.library.workers import roomy_heap
from simlib.types import Tags

MIN_DURATION_S = 1.0
"""Tracks shorter than this are recorded as errors: too short to analyse."""


class Embedder(Protocol):
    """One analysis stage after the features.

    `embed` returns one vector per track (`kind` "track", stored as an
    embedding) or `PackedSegments` (`kind` "segments", stored as fingerprints).
    `version` changes whenever the output would, so a scan knows which
    tracks to redo. `index_params` are the keyword arguments of the index
    build (for "segments": dim; empty for "track").
    """

    name: str
    version: str
    kind: str
    index_params: dict

    def embed(self, mel: np.ndarray) -> np.ndarray | PackedSegments: ...


@dataclass(frozen=True)
class StageSpec:
    """What the coordinating process needs of a stage (versions for the catalog, index
    parameters) without loading its model: only analysis workers load models."""

    name: str
    version: str
    kind: str
    index_params: dict = field(default_factory=dict, hash=False)


PEAKS = StageSpec("peaks", peaks.VERSION, "peaks")
"""The spectral peaks the source check reads (`simlib.identify.peaks`): computed with the
features, stored in the catalog, not indexed."""


def stage_specs(embedders: list[Embedder], _item: object = None) -> list[StageSpec]:
    """Worker function: the specs of the stages this process runs."""
    return [PEAKS] + [StageSpec(e.name, e.version, e.kind, dict(e.index_params)) for e in embedders]


class AnalysisError(Exception):
    """A file that cannot be analysed; the message is the one-line reason."""


@dataclass(frozen=True)
class Analysis:
    """Everything a scan stores for one track."""

    state: FileState
    tags: Tags
    info: audio.AudioInfo
    duration_s: float
    outputs: dict[str, tuple[str, Output]] = field(default_factory=dict)

    def audio_columns(self) -> dict:
        """The audio facts as catalog columns."""
        return {
            "content_hash": self.info.content_hash,
            "duration_s": self.duration_s,
            "sample_rate_hz": self.info.sample_rate_hz,
            "channels": self.info.channels,
            "codec": self.info.codec,
            "container": self.info.container,
        }


def file_state(path: Path) -> FileState:
    """Size and mtime of `path`, following symlinks."""
    stat = path.stat()
    return FileState(path=str(path), size=stat.st_size, mtime_ns=stat.st_mtime_ns)


def inspect_file(path: Path) -> audio.AudioInfo:
    """Stage 0: the container facts and the content hash, without decoding."""
    try:
        return audio.inspect(path)
    except audio.DecodeError as error:
        raise AnalysisError(str(error)) from error
    except PermissionError as error:
        raise AnalysisError("permission denied") from error
    except IsADirectoryError as error:
        raise AnalysisError("is a directory") from error


def decode_features(path: Path) -> tuple[np.ndarray, TrackPeaks, float]:
    """Stages 1-2: stream-decode to 16 kHz mono and compute log-mel frames and the spectral
    peaks from the same samples.

    Returns (frames, peaks, duration in seconds). Their temporaries, about 2 MB at a time
    whatever the file's length, reuse heap memory (`workers.roomy_heap`: measured in a scan
    worker, 1.8 instead of 4.3 ms per second of audio; a 29-minute file's peak RSS 183 MB).
    """
    from simlib.audio import features  # imported by the processes that analyse, only

    track_peaks = peaks.TrackPeakStream()
    try:
        with roomy_heap():
            mel = features.log_mel_stream(track_peaks.tap(audio.stream(path)))
            found = track_peaks.result()
    except audio.DecodeError as error:
        raise AnalysisError(str(error)) from error
    return mel, found, mel.shape[0] / features.FRAME_RATE_HZ


def embed(embedder: Embedder, mel: np.ndarray) -> np.ndarray | PackedSegments:
    """The embedders stage for one model. A per-track embedder sees a fixed number of
    crops whatever the file's length, so its tensors may reuse heap memory
    (`workers.roomy_heap`: the similarity ensemble embeds twice as fast); a per-segment
    embedder's tensors grow with the file and stay on memory returned after use."""
    with roomy_heap() if embedder.kind == "track" else contextlib.nullcontext():
        return embedder.embed(mel)


def analyse(
    path: Path,
    embedders: list[Embedder],
    info: audio.AudioInfo | None = None,
    kept: frozenset[str] = frozenset(),
) -> Analysis:
    """Run the stages on one file, but not the embedders named in `kept` (their stored
    outputs are current for this audio). FileNotFoundError means it vanished meanwhile."""
    state = file_state(path)
    if state.size == 0:
        raise AnalysisError("empty file (0 bytes)")
    info = info or inspect_file(path)
    tags = read_tags(path)
    mel, track_peaks, duration_s = decode_features(path)
    if duration_s < MIN_DURATION_S:
        raise AnalysisError(f"too short to analyse ({duration_s:.2f} s < {MIN_DURATION_S:g} s)")
    outputs = {PEAKS.name: (PEAKS.version, track_peaks)}
    outputs.update({e.name: (e.version, embed(e, mel)) for e in embedders if e.name not in kept})
    return Analysis(state=state, tags=tags, info=info, duration_s=duration_s, outputs=outputs)

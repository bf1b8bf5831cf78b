"""The last stage of a clip's identification, and every threshold and count it follows.

`Policy` has one default per threshold; the weights in use may set any of them (their
calibrations always), `config.toml` and command-line flags override them (`override`).
`decide` turns the checked alignments into the answer: those that keep time with their
track and whose calibrated confidence reaches `min_confidence`, most confident first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

from simlib.identify.source_check import Evidence
from simlib.identify.verify import REPEATS

SOURCE_Z_CAP = 8.0
"""The source check's z counts up to this: beyond it a match is as sure as it gets, and a
capped z lets the fit weigh the range where right and wrong alignments overlap (2-5).
Chosen by cross-validated log-loss on the calibration clips (7-8 best of 3-12 and none)."""


def _logistic(logit: float) -> float:
    return 1.0 / (1.0 + math.exp(-min(max(logit, -700.0), 700.0)))  # exp overflows past 709


@dataclass(frozen=True)
class Calibration:
    """Logistic maps from an alignment's evidence to the probability that it is right,
    fitted by `benchmarks/identify.py --calibrate` and stored with the weights."""

    margin: tuple[float, float]
    """(slope, midpoint) on the vector margin alone."""
    with_source: tuple[float, float, float]
    """(weight of the margin, weight of the source check's z up to SOURCE_Z_CAP, bias) for
    checked alignments."""

    def from_margin(self, margin: float) -> float:
        slope, mid = self.margin
        return _logistic(slope * (margin - mid))

    def confidence(self, margin: float, source_z: float | None) -> float:
        """0..1, from the margin and the source check's z where there is one."""
        if source_z is None:
            return self.from_margin(margin)
        w_margin, w_source, bias = self.with_source
        return _logistic(w_margin * margin + w_source * min(source_z, SOURCE_Z_CAP) + bias)


@dataclass(frozen=True)
class Policy:
    """Every threshold and count of an identification, each with its one default."""

    calibration: Calibration
    min_confidence: float = 0.5
    """Matches below this confidence are not reported: below it the answer is no match."""
    top: int = 5
    """Matches reported per clip, and alignments checked against their track's audio."""
    shortlist: int = 5
    """Candidate tracks verified per clip (at least `top`)."""
    neighbours: int = 50
    """Nearest database segments fetched per query segment."""
    probes: int = 8
    """Index lists scanned per query segment (of about sqrt(segments) lists). With 10,000
    tracks 16 found the right track for no more clips than 8 and took a third longer at the
    median (`benchmarks/identify.py --scale-against probes=16`, the fingerprint model card); 8 to
    64 had given the same answers within a clip on VAL clips."""
    check_floor: float = 0.2
    """Alignments whose confidence from the margin alone is below this are not checked
    against their track's audio (a check decodes audio; lower floors answered the same)."""
    trusted_margin: float = 0.5
    """Alignments with a margin of at least this and no other pass are not checked either:
    no wrong track's and no unknown clip's best alignment reached 0.4 on calibration clips."""
    passes_decoded: int = 1 + REPEATS
    """A loop's passes decoded to choose among when the track's peaks are stored: those
    where the stored peaks agree best with the clip (`source_check.likeliest_passes`).
    Every pass by default: with 2, at 10,000 tracks the p95 fell by a quarter, the p50
    hardly moved, and 4 clips against 2 were right only when all were decoded (the
    fingerprint model card)."""
    phone_search_below_db: float = -15.0
    """A clip is searched again in the library's telephone band only if its
    power above 4 kHz is at least this far below its power in the band (dB,
    `features.above_band_db`). On calibration clips (VAL music, calib sources, 40 a
    cell) every phone-across-a-room clip was further below (-15.5 dB at most); about half
    of the others were not, and are spared the second search."""
    phone_search_below_confidence: float = 0.9
    """A narrow-band clip is searched in the telephone band also after a full-band match,
    unless that match reaches this confidence: through a phone, full-band matches are
    often unsure and sometimes wrong. On VAL phone-across-a-room clips (160 a cell) 0.9
    answered 55.6 / 68.1 / 75.6 % right (3 / 5 / 10 s), a second search only without a
    match (0.5) 53.8 / 65.6 / 74.4: 9 clips right only under 0.9, none only under 0.5.
    Searching every narrow-band clip gained 3 clips more for a third more of the median
    query's time (the fingerprint model card)."""

    @classmethod
    def from_settings(cls, settings: dict) -> Policy:
        """The policy a weights file's settings give: its calibrations, and any threshold
        it sets."""
        calibration = Calibration(
            tuple(settings["calibration"]), tuple(settings["source_calibration"])
        )
        known = {f.name for f in fields(cls)} - {"calibration"}
        return cls(calibration, **{k: v for k, v in settings.items() if k in known})

    def settings(self) -> dict:
        """The calibrations as a weights file stores them."""
        return {
            "calibration": list(self.calibration.margin),
            "source_calibration": list(self.calibration.with_source),
        }

    def override(self, **values: object) -> Policy:
        """This policy with every value that is not None replaced."""
        return replace(self, **{k: v for k, v in values.items() if v is not None})

    def confidence(self, checked: Evidence) -> float:
        """The calibrated confidence of a checked alignment (its margin, its source z)."""
        return self.calibration.confidence(checked.alignment.margin, checked.source_z)

    @property
    def verified(self) -> int:
        """Candidates verified per clip."""
        return max(self.top, self.shortlist)


@dataclass(frozen=True)
class Match:
    """A library track found in a clip, and where: track time = clip time + offset_s."""

    track_id: int
    offset_s: float
    confidence: float
    """Calibrated 0..1: the probability that this is the right track."""
    votes: int


@dataclass(frozen=True)
class Decision:
    """The answer for one clip, and the evidence it was decided on."""

    matches: tuple[Match, ...]
    """Most confident first; empty means no match."""
    evidence: tuple[Evidence, ...]


def decide(evidence: tuple[Evidence, ...], policy: Policy) -> Decision:
    """The alignments that keep time with their track and reach `policy.min_confidence`,
    most confident first (at most `policy.top`)."""
    matches = []
    for checked in evidence:
        aligned = checked.alignment
        confidence = policy.confidence(checked)
        if aligned.keeps_time() and confidence >= policy.min_confidence:
            matches.append(Match(aligned.track_id, checked.offset_s, confidence, aligned.votes))
    matches.sort(key=lambda m: m.confidence, reverse=True)
    return Decision(tuple(matches[: policy.top]), evidence)


def best_confidence(decision: Decision, policy: Policy) -> float:
    """The confidence of a decision's best alignment that keeps time, 0 if none."""
    kept = [policy.confidence(e) for e in decision.evidence if e.alignment.keeps_time()]
    return max(kept, default=0.0)

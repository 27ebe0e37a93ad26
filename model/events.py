"""Detection events: runs of consecutive positive one-second rows, merged.

Legacy's per-second rows (`Detection.start_time_s`, `.confidence`, `.local_prediction`) each
cover [t, t + 1) s. Reviewers in Raven or Audacity want one box per call, not one per second, so
an event is a maximal run of rows with local_prediction == 1: it starts at its first row's start
and ends at its last row's start + 1 s, with the peak and mean of the rows' (smoothed)
confidences. Merging never invents a second: every event second is a positive row and vice
versa, so the per-second rows (json / csv) and the events describe the same decisions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

ROW_SECONDS = 1.0        # legacy's `duration_s` of every per-second row


@dataclass(frozen=True)
class Event:
    """One merged detection. Times in seconds from the start of the file."""

    wav_filename: str
    start_s: float
    end_s: float
    peak_confidence: float
    mean_confidence: float
    seconds: int              # positive rows merged

    def to_dict(self) -> dict[str, Any]:
        return {"wav_filename": self.wav_filename, "start_s": self.start_s, "end_s": self.end_s,
                "peak_confidence": self.peak_confidence, "mean_confidence": self.mean_confidence,
                "seconds": self.seconds}


def merge_events(wav_filename: str, start_time_s: np.ndarray, confidence: np.ndarray,
                 local_prediction: np.ndarray) -> list[Event]:
    """Per-second rows -> events. start_time_s, confidence, local_prediction: (rows,) arrays, rows
    in time order one second apart (as `Detection` holds them)."""
    positive = np.asarray(local_prediction).astype(bool)
    if positive.size == 0:
        return []
    # run boundaries: where the padded 0/1 sequence changes
    edges = np.flatnonzero(np.diff(np.concatenate([[0], positive.astype(np.int8), [0]])))
    events = []
    for first, stop in zip(edges[0::2], edges[1::2]):        # rows [first, stop) are positive
        conf = np.asarray(confidence[first:stop], dtype=np.float64)
        events.append(Event(wav_filename, float(start_time_s[first]), float(start_time_s[stop - 1]) + ROW_SECONDS,
                            float(conf.max()), float(conf.mean()), int(stop - first)))
    return events


def detection_events(d: Any) -> list[Event]:
    """The events of one `model.detector.Detection`."""
    return merge_events(d.wav_filename, d.start_time_s, d.confidence, d.local_prediction)

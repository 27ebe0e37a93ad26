"""One file's result: the Detection every way of running the detector returns (one file at a
time, many files through model/feeder.py, HLS windows), in legacy's fields."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True, eq=False)
class Detection:
    """One file's result. clip_confidence: (clips,) float32 P(positive) per clip;
    start_time_s / confidence / local_prediction: (clips + 1,) legacy's rows, one per hop (one
    second for production's windows; model/aggregate.py)."""

    wav_filename: str
    profile: str
    clips: int
    duration_s: float
    clip_confidence: np.ndarray
    start_time_s: np.ndarray
    confidence: np.ndarray
    local_prediction: np.ndarray
    global_prediction: int
    global_confidence: float
    threshold: float
    min_positive: int
    sample_rate: int = 0          # the file's, Hz (0: unknown)
    hop_s: float = 1.0            # seconds between rows (the windowing's hop)

    @property
    def positive_seconds(self) -> int:
        return int(self.local_prediction.sum())

    def rows(self) -> list[dict[str, Any]]:
        """Legacy `submission` rows (+ local_prediction): one dict per second."""
        return [{"wav_filename": self.wav_filename, "start_time_s": int(t), "duration_s": self.hop_s,
                 "confidence": float(c), "local_prediction": int(p)}
                for t, c, p in zip(self.start_time_s, self.confidence, self.local_prediction)]

    def legacy_dict(self) -> dict[str, Any]:
        """The dict OrcaHello's `FastAIModel.predict` returns (submission as a list of rows)."""
        rows = self.rows()
        return {"submission": [{k: v for k, v in r.items() if k != "local_prediction"} for r in rows],
                "local_predictions": [r["local_prediction"] for r in rows],
                "local_confidences": [r["confidence"] for r in rows],
                "global_prediction": self.global_prediction, "global_confidence": self.global_confidence}

    def to_dict(self) -> dict[str, Any]:
        keys = ("wav_filename", "profile", "clips", "duration_s", "threshold", "min_positive",
                "global_prediction", "global_confidence", "positive_seconds")
        return {**{k: getattr(self, k) for k in keys},
                "rows": [{k: v for k, v in r.items() if k != "wav_filename"} for r in self.rows()]}

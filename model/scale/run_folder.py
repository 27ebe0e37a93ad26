"""The folder a `--ray` run writes (--output DIR), the run's memory across kills and restarts:

    manifest.jsonl         line 1 the run's settings; then one line per finished item, appended
                           (and fsynced) as it finishes: {"id", "name", "status": "ok"|"error",
                           "result" | "error", "clips", "seconds"}. The last line of an id is its state.
    results/<key>.json     each finished item's Detection (written atomically before its line)
    detections.<format>    every finished item in input order (json / csv / raven / audacity),
                           rewritten atomically as the run goes and at its end
    summary.json           the last run's totals and where its time went

Exactly once: only the driver writes here, one item at a time: result file, then manifest line.
A driver killed between the two leaves a result without a line, so the item runs again on resume
and its result is replaced, never duplicated; a line cut by a kill (no newline) is dropped on resume.
A rerun with the same folder skips every item whose last line is "ok" (failed items run again);
a rerun with other settings (model, profile, threshold, ...) is refused: the outputs would mix them.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from orcaport.model.detection import Detection
from orcaport.model.errors import OutputError, UsageError
from orcaport.model.fileio import write_file_atomically
from orcaport.model.scale.sources import WorkItem

MANIFEST = "manifest.jsonl"
RESULTS = "results"
SUMMARY = "summary.json"
OUTPUT_NAMES = {"json": "detections.json", "csv": "detections.csv", "raven": "detections.raven.txt",
                "audacity": "detections.audacity.txt"}


def result_key(item_id: str) -> str:
    """A file name for an item's result: unique per id, stable across runs."""
    return hashlib.sha256(item_id.encode("utf-8")).hexdigest()[:24] + ".json"


def detection_to_json(d: Detection) -> dict[str, Any]:
    """Everything a Detection holds, exactly (JSON floats round-trip a float64 bit for bit)."""
    return {**d.to_dict(), "sample_rate": d.sample_rate,
            "clip_confidence": [float(x) for x in d.clip_confidence]}


def detection_from_json(doc: dict[str, Any]) -> Detection:
    rows = doc["rows"]
    return Detection(doc["wav_filename"], doc["profile"], doc["clips"], doc["duration_s"],
                     np.asarray(doc["clip_confidence"], np.float32),
                     np.asarray([r["start_time_s"] for r in rows], np.int64),
                     np.asarray([r["confidence"] for r in rows], np.float64),
                     np.asarray([r["local_prediction"] for r in rows], np.int64),
                     doc["global_prediction"], doc["global_confidence"], doc["threshold"],
                     doc["min_positive"], doc["sample_rate"])


class RunFolder:
    """A run folder opened for one run with `settings` (checked against the folder's own)."""

    def __init__(self, folder: Path, settings: dict[str, Any]) -> None:
        self.folder, self.settings = Path(folder), settings
        self.state: dict[str, dict[str, Any]] = {}         # id -> its last manifest line
        if self.folder.exists() and not self.folder.is_dir():
            raise UsageError(f"--output {self.folder} is a file; --ray writes a folder there")
        try:
            (self.folder / RESULTS).mkdir(parents=True, exist_ok=True)
            self._read_manifest()
        except OSError as e:
            raise OutputError(f"cannot write the run folder {self.folder} ({e.strerror or e}); pass a "
                              "writable --output DIR") from None

    def _read_manifest(self) -> None:
        path = self.folder / MANIFEST
        if not path.exists():
            self._append({"run": self.settings})
            return
        raw = path.read_bytes()
        if raw and not raw.endswith(b"\n"):          # a line cut by a kill: drop it
            raw = raw[:raw.rfind(b"\n") + 1]
            with open(path, "r+b") as f:
                f.truncate(len(raw))
        lines = [json.loads(ln) for ln in raw.decode("utf-8").splitlines() if ln.strip()]
        if not lines or lines[0].get("run") != self.settings:
            was = lines[0].get("run") if lines else None
            diff = sorted(k for k in set(self.settings) | set(was or {}) if (was or {}).get(k) != self.settings.get(k))
            raise UsageError(f"--output {self.folder} holds a run with other settings ({', '.join(diff)}); "
                             "rerun with the same options to resume, or pass a new --output DIR")
        for line in lines[1:]:
            self.state[line["id"]] = line

    def _append(self, line: dict[str, Any]) -> None:
        with open(self.folder / MANIFEST, "a", encoding="utf-8") as f:
            f.write(json.dumps(line, separators=(",", ":")) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def finished(self, item: WorkItem) -> bool:
        """True when the item's last line is "ok" and its result is there (a resume skips it)."""
        line = self.state.get(item.id)
        return bool(line and line["status"] == "ok" and (self.folder / RESULTS / line["result"]).is_file())

    def record_ok(self, item: WorkItem, d: Detection, seconds: dict[str, float]) -> None:
        key = result_key(item.id)
        doc = {"id": item.id, "path": item.review_path, **detection_to_json(d)}
        write_file_atomically(self.folder / RESULTS / key, json.dumps(doc) + "\n")
        self._record({"id": item.id, "name": item.name, "status": "ok", "result": key, "clips": d.clips,
                      "seconds": {k: round(v, 4) for k, v in seconds.items()}})

    def record_error(self, item: WorkItem, message: str) -> None:
        self._record({"id": item.id, "name": item.name, "status": "error", "error": message})

    def _record(self, line: dict[str, Any]) -> None:
        self._append(line)
        self.state[line["id"]] = line

    def results(self, items: Sequence[WorkItem]) -> tuple[list[tuple[str, Detection]], list[tuple[str, str]]]:
        """(review path, Detection) of the finished items and (name, error) of the failed ones, in
        `items` order (items not reached yet are neither)."""
        done, failed = [], []
        for item in items:
            line = self.state.get(item.id)
            if line is None:
                continue
            if line["status"] == "ok":
                doc = json.loads((self.folder / RESULTS / line["result"]).read_text(encoding="utf-8"))
                done.append((doc["path"], detection_from_json(doc)))
            else:
                failed.append((item.name, line["error"]))
        return done, failed

    def write(self, name: str, text: str) -> Path:
        try:
            return write_file_atomically(self.folder / name, text)
        except OSError as e:
            raise OutputError(f"cannot write {self.folder / name} ({e.strerror or e}); pass a writable "
                              "--output DIR") from None

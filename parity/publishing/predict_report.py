"""A predict-mode parity report (`make predict-parity`: orcaport.parity.predict_parity's JSON), read
as the publish gate reads reports: identity first (the same field names as a windowed parity.json,
so parity/publishing/gate.py checks both alike), then the verdict; the card's parity section for it.

A learner only fastai_audio's predict can run (remove_silence="split", segment_size) publishes
through this report; one windowed detection can run publishes through its windowed parity.json.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orcaport.parity.predict_parity import PREDICT_SCHEMA
from orcaport.parity.result import ResultError


@dataclass(frozen=True)
class PredictTolerances:
    version: int
    sha256: str
    regime: str


@dataclass(frozen=True)
class PredictReport:
    """The fields the gate, the card and the commit text read, as ParityResult names them."""

    schema_version: int
    profile: str
    passed: bool
    weights_sha256: str
    references_weights_sha256: str
    config_sha256: str
    references_manifest_sha256: str
    tolerances: PredictTolerances
    runtime_files: dict[str, str]
    criteria: str
    first_failure: dict[str, Any] | None
    summary: list[dict[str, Any]]
    files: list[dict[str, Any]]
    mode: str = "predict"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PredictReport":
        if data.get("schema_version") != PREDICT_SCHEMA:
            raise ResultError(f"predict report schema_version {data.get('schema_version')!r}, not {PREDICT_SCHEMA} "
                              "(made before predict reports could gate a publish)")
        try:
            return cls(schema_version=int(data["schema_version"]), profile=str(data["profile"]),
                       passed=data["passed"] is True, weights_sha256=str(data["weights_sha256"]),
                       references_weights_sha256=str(data["references_weights_sha256"]),
                       config_sha256=str(data["config_sha256"]),
                       references_manifest_sha256=str(data["references_manifest_sha256"]),
                       tolerances=PredictTolerances(**data["tolerances"]),
                       runtime_files=dict(data["runtime_files"]), criteria=str(data["criteria"]),
                       first_failure=data["first_failure"], summary=list(data["summary"]),
                       files=list(data["files"]))
        except (KeyError, TypeError, ValueError) as e:
            raise ResultError(f"predict report field missing or malformed ({type(e).__name__}: {e})") from None

    def failing(self) -> list[dict[str, Any]]:
        return [c for f in self.files for c in f.get("checks", []) if not c.get("passed")]

    def checks(self) -> int:
        return sum(len(f.get("checks", [])) for f in self.files)


def predict_failure_text(report: PredictReport) -> str:
    """'stage mfcc (chained, item 2)' for the first failure (or the first failing check)."""
    where = report.first_failure or (report.failing() or [{}])[0]
    item = f", item {where['item']}" if where.get("item") is not None else ""
    return f"stage {where.get('stage')} ({where.get('mode')}{item})"


def predict_parity_section(report: PredictReport, report_sha256: str) -> list[str]:
    """The card's parity section for a predict-mode report: verdict, identity, per-stage summary."""
    lines = ["## Parity with the legacy fastai pipeline", "",
             f"**Parity: {'PASSED' if report.passed else 'FAILED'}** (fastai_audio's own predict: "
             "`AudioList` + `learn.predict` per item) — every stage of the runtime in this repo was "
             "replayed against tensors recorded from the legacy fastai 1.0.61 + fastai_audio 0.1 "
             "predict path, on the same weights and recordings, both in isolation (each stage fed "
             "legacy's own input) and chained from the audio file, item counts and class indices "
             "included. The full report is `parity.json` in this repo.", "",
             f"- report sha256: `{report_sha256}` (predict mode, profile `{report.profile}`, "
             f"schema {report.schema_version}, {report.criteria.replace('_', '-')} criteria)",
             f"- weights sha256: `{report.weights_sha256}`",
             f"- config sha256: `{report.config_sha256}`",
             f"- references manifest sha256: `{report.references_manifest_sha256}`",
             f"- tolerances: version {report.tolerances.version}, sha256 `{report.tolerances.sha256}`", "",
             "| | stage | mode | checks | failed | worst | tolerance |", "|---|---|---|---|---|---|---|"]
    for r in report.summary:
        worst = r.get("worst")
        lines.append(f"| {'✓' if not r['failed'] else '✗'} | {r['stage']} | {r['mode']} | {r['checks']} | "
                     f"{r['failed']} | {f'{worst:.3g}' if isinstance(worst, float) else '—'} | "
                     f"{str(r.get('tolerance')).replace('|', '∣')} |")
    return lines + [""]


def predict_usage_lines(repo_id: str, weights_sha256: str) -> list[str]:
    """The card's usage snippet for a predict-mode learner."""
    return ["```python", "from orcaport.model.detector import Detector", "",
            f'detector = Detector.from_pretrained("{repo_id}", mode="predict",   # fastai_audio\'s own predict',
            f'                                     weights_sha256="{weights_sha256}")',
            'for item in detector.predict("recording.wav"):   # one per file, or per segment / silence piece',
            "    print(item.item, item.label, item.probabilities)", "```", "",
            "From the command line: `orcaport predict recordings/ --model DOWNLOADED_FOLDER`.", ""]

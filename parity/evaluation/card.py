"""An evaluation on the model card: `make publish EVALUATION=reports/evaluation.json`.

The card's Hub metadata gains `model-index` results (huggingface_hub's EvalResult) for the dataset
the user named (`make evaluate DATASET=...`), from the published runtime's own column
(`legacy-exact`: what `Detector.from_pretrained` runs), and its text a table of every column and
int8's numbers, saying whether the calibration evaluated is the one shipped. The evaluation must
have been made with the weights being published. No scikit-learn: publishing imports this, and
publishing is core.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from orcaport.model.calibration import TENSORS_FILE
from orcaport.model.errors import InputError

PUBLISHED_COLUMN = "legacy-exact"
TASK_TYPE = "audio-classification"
CARD_METRICS = (("second", "f1", "F1"), ("second", "precision", "precision"), ("second", "recall", "recall"),
                ("second", "average_precision", "average precision"), ("file", "f1", "F1"), ("event", "f1", "F1"))
LEVEL_WORDS = {"second": "per second", "file": "per file", "event": "per event"}


def load_evaluation(path: Path, weights_sha256: str) -> dict[str, Any]:
    """evaluation.json, checked: readable, a dataset name, made with these weights."""
    fix = "re-run `make evaluate MODEL=... AUDIO=... LABELS=... DATASET=...`"
    try:
        doc = json.loads(Path(path).read_text())
    except OSError as e:
        raise InputError(f"{path}: cannot read the evaluation ({e.strerror or e}); {fix}") from None
    except json.JSONDecodeError as e:
        raise InputError(f"{path} is not JSON ({e}); {fix}") from None
    if not isinstance(doc, dict) or doc.get("schema_version") != 1 or PUBLISHED_COLUMN not in doc.get("scores", {}):
        raise InputError(f"{path} is not an evaluation.json of this toolkit; {fix}")
    if doc.get("weights_sha256") != weights_sha256:
        raise InputError(f"{path} evaluated other weights (sha256 {str(doc.get('weights_sha256'))[:12]}..., publishing "
                         f"{weights_sha256[:12]}...); {fix} with the model you publish")
    if not doc.get("dataset"):
        raise InputError(f"{path} names no dataset, and the card's results need one; {fix}")
    return doc


def dataset_type(name: str) -> str:
    """A Hub dataset id-like slug of the user's dataset name (`orcaport labeled set` -> `orcaport-labeled-set`)."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "dataset"


def eval_results(doc: dict[str, Any]) -> list[Any]:
    """The model-index entries: the published column's numbers at the configured threshold."""
    from huggingface_hub import EvalResult

    sc, thr = doc["scores"][PUBLISHED_COLUMN], doc["threshold"]
    out = []
    for level, key, word in CARD_METRICS:
        value = sc[level].get(key)
        if value is None:
            continue
        out.append(EvalResult(task_type=TASK_TYPE, task_name="call detection", dataset_type=dataset_type(doc["dataset"]),
                              dataset_name=doc["dataset"], metric_type=key, metric_value=round(float(value), 4),
                              metric_name=f"{word} {LEVEL_WORDS[level]} (threshold {thr})"))
    return out


def _num(x: Any) -> str:
    return "—" if x is None else f"{x:.3f}"


def int8_lines(doc: dict[str, Any], shipped: dict[str, str]) -> list[str]:
    """int8's numbers and whether the calibration it was evaluated with is the one this repo ships.
    shipped: staged file name -> sha256."""
    sc, g = doc["scores"].get("fast/int8"), doc.get("gate", {}).get("fast/int8")
    cal = doc["columns"].get("fast/int8", {}).get("calibration")
    if sc is None or g is None or cal is None:
        return []
    exact = doc["scores"][PUBLISHED_COLUMN]
    nums = ", ".join(f"F1 {LEVEL_WORDS[lv]} {_num(sc[lv]['f1'])} (legacy-exact {_num(exact[lv]['f1'])})"
                     for lv in ("second", "file", "event"))
    if not cal.get("stored"):
        how = "calibrated on synthetic clips for the evaluation, not a calibration this repo ships"
    elif shipped.get(TENSORS_FILE) == cal.get("tensors_sha256"):
        how = (f"evaluated with the calibration this repo ships ({TENSORS_FILE}, {cal['clips']} clips of "
               f"{cal['recordings']} recordings): `orcaport detect --profile fast --arithmetic int8` runs exactly it")
    else:
        how = "evaluated with another calibration than the one this repo ships (or none is shipped)"
    verdict = "offered for deployment on these labels" if g.get("offered") else "not offered for deployment on these labels"
    return [f"int8 (body int8, head fp32; never chosen automatically): {nums}; {verdict}; {how}.", ""]


def evaluation_section(doc: dict[str, Any], shipped: dict[str, str] | None = None) -> list[str]:
    """The card's text: every column at the configured threshold, the machine, the criteria, and
    int8's numbers (shipped: staged file name -> sha256, to say which calibration was evaluated)."""
    lines = [f"## Evaluation on {doc['dataset']}", "",
             f"{len(doc['recordings'])} labeled recordings, threshold {doc['threshold']}, "
             f"{doc['min_positive']} positive seconds for a file call; measured on {doc['machine']['description']} "
             f"({doc['created']}). The metadata's results are `{PUBLISHED_COLUMN}`'s, the runtime this repo's usage "
             "runs. The full report is `evaluation.json` in this repo.", "",
             "| column | arithmetic | precision (s) | recall (s) | F1 (s) | AP (s) | F1 (file) | F1 (event) |",
             "|---|---|---|---|---|---|---|---|"]
    for name, sc in doc["scores"].items():
        arith = str(doc["columns"][name]["arithmetic"]).replace("|", "\\|")
        lines.append(f"| {name} | {arith} | {_num(sc['second']['precision'])} | {_num(sc['second']['recall'])} | "
                     f"{_num(sc['second']['f1'])} | {_num(sc['second']['average_precision'])} | "
                     f"{_num(sc['file']['f1'])} | {_num(sc['event']['f1'])} |")
    offered = [n for n, g in doc.get("gate", {}).items() if g.get("offered")]
    lines += ["", f"Offered for deployment on these labels (F1 within {doc['gate_margin']} of legacy-exact at every "
              f"level): {', '.join(offered) or 'none'}.", ""]
    lines += int8_lines(doc, shipped or {})
    lines += [f"- {k}: {v}" for k, v in doc["criteria"].items() if k in ("second", "file", "event")] + [""]
    return lines

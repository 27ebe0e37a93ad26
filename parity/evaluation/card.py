"""An evaluation on the model card: `make publish EVALUATION=reports/evaluation.json`.

The card's Hub metadata gains `model-index` results (huggingface_hub's EvalResult) for the dataset
the user named (`make evaluate DATASET=...`), from the published runtime's own column
(`legacy-exact`: what `Detector.from_pretrained` runs), and its text a table of every column. The
evaluation must have been made with the weights being published. Standard library only (no
scikit-learn): publishing imports this, and publishing is core.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

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


def evaluation_section(doc: dict[str, Any]) -> list[str]:
    """The card's text: every column at the configured threshold, the machine, the criteria."""
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
    lines += [f"- {k}: {v}" for k, v in doc["criteria"].items() if k in ("second", "file", "event")] + [""]
    return lines

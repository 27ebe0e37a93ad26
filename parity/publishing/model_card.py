"""README.md for the Hub: what the model detects, how to run it, and the evidence it is faithful.

The measured parts of the card are read from the staged files themselves (config.json, the gated
parity.json, the file hashes), never typed in by hand, so they cannot drift from what they describe;
what the model is *for* (task, labels, license, links) comes from the user (card_config.py).
The YAML front matter is huggingface_hub's own `ModelCardData`, and the whole card is parsed back
with `ModelCard` before it is staged (the Hub validates it again on upload).
"""

from __future__ import annotations

import json
import re
from typing import Any, Mapping

from huggingface_hub import ModelCard, ModelCardData

from orcaport.model.config import FrontendConfig
from orcaport.model.errors import OutputError
from orcaport.model.pipeline import chain_of

from orcaport.parity.publishing.card_config import CardConfig
from orcaport.parity.publishing.predict_report import PredictReport, predict_parity_section, predict_usage_lines
from orcaport.parity.result import ParityResult

BASE_TAGS = ("audio-classification", "fastai-port", "safetensors", "pytorch")
ORCAHELLO_TAGS = ("bioacoustics", "killer-whale", "orca", "orcahello", "orcasound", "srkw")
ORCAHELLO_LINK = "https://github.com/orcasound/aifororcas-livesystem"
# First match wins; anything unrecognised is published as the Hub's "other" + a link to LICENSE.
LICENSE_PATTERNS = (
    (r"\bMIT License\b|Permission is hereby granted, free of charge", "mit"),
    (r"Apache License,?\s+Version 2\.0", "apache-2.0"),
    (r"GNU GENERAL PUBLIC LICENSE\s+Version 3", "gpl-3.0"),
    (r"Redistribution and use in source and binary forms.*Neither the name", "bsd-3-clause"),
    (r"Redistribution and use in source and binary forms", "bsd-2-clause"),
    (r"Attribution 4\.0 International", "cc-by-4.0"),
)


class CardError(OutputError, ValueError):
    """The rendered card does not parse back to the metadata it was made from (one line)."""


def detect_license(text: str | None) -> str:
    """Hub license id for a LICENSE text: 'unknown' without one, 'other' when unrecognised."""
    if text is None:
        return "unknown"
    for pattern, spdx in LICENSE_PATTERNS:
        if re.search(pattern, text, flags=re.S):
            return spdx
    return "other"


def _cell(x: Any) -> str:
    """A Markdown table cell: pipes escaped, floats short, None as an em dash."""
    if x is None:
        return "—"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return f"{x:.6g}"
    if isinstance(x, (list, tuple)):
        return ", ".join(_cell(v) for v in x)
    return str(x).replace("|", "\\|").replace("\n", " ")


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return out + [""]


def card_data(license_id: str, orcahello: bool, card: CardConfig, evaluation: Mapping[str, Any] | None = None,
              model_name: str | None = None) -> ModelCardData:
    """The front matter, as huggingface_hub models it; with an evaluation, its model-index results."""
    tags = list(dict.fromkeys(BASE_TAGS + (ORCAHELLO_TAGS if orcahello else ()) + card.tags))
    extra: dict[str, Any] = {}
    if license_id == "other":
        extra = {"license_name": "see-license-file", "license_link": "LICENSE"}
    if evaluation is not None:
        from orcaport.parity.evaluation.card import eval_results

        extra.update(eval_results=eval_results(dict(evaluation)), model_name=model_name)
    return ModelCardData(license=license_id, library_name="pytorch",
                         pipeline_tag="audio-classification", tags=tags, **extra)


def _tolerance(report: ParityResult, stage: str, mode: str) -> str:
    for c in report.all_checks():
        if c.stage == stage and c.mode == mode and c.tolerance:
            t = c.tolerance
            if t.get("exact"):
                return "exact"
            if t.get("text"):
                return str(t["text"])
            if "atol" in t:
                return f"atol {t['atol']:g}, rtol {t.get('rtol', 0):g}"
    return "—"


def parity_section(report: ParityResult, report_sha256: str) -> list[str]:
    """Verdict, identity and the per-stage summary table of the gated parity.json."""
    env, tol = report.environment, report.tolerances
    lines = ["## Parity with the legacy fastai pipeline", "",
             f"**Parity: {'PASSED' if report.passed else 'FAILED'}** — every stage of the "
             "runtime in this repo was replayed against tensors recorded from the legacy "
             "fastai 1.0.61 + fastai_audio 0.1 pipeline, on the same weights and the same audio "
             "corpus, both in isolation (each stage fed legacy's own input) and chained end to "
             "end from the audio file. The full report is `parity.json` in this repo.", "",
             f"- report sha256: `{report_sha256}` (profile `{report.profile}`, "
             f"schema {report.schema_version})",
             f"- weights sha256: `{report.weights_sha256}`",
             f"- config sha256: `{report.config_sha256}`",
             f"- references manifest sha256: `{report.references_manifest_sha256}`",
             f"- tolerances: version {tol.version}, sha256 `{tol.sha256}`",
             f"- replayed with: Python {env.get('python', '?')}, torch {env.get('torch', '?')}, "
             f"numpy {env.get('numpy', '?')}, scipy {env.get('scipy', '?')}, "
             f"soundfile {env.get('soundfile', '?')} (libsndfile {env.get('libsndfile', '?')}) "
             f"on {env.get('machine', '?')}", ""]
    rows = [("✓" if r.passed else "✗", r.stage, r.mode, r.checks, r.failed,
             f"{r.max_abs:.3g}" if isinstance(r.max_abs, float) else r.max_abs,
             _tolerance(report, r.stage, r.mode), r.worst_file) for r in report.summary]
    lines += _table(("", "stage", "mode", "checks", "failed", "max abs diff", "tolerance",
                     "worst file"), rows)
    odd = [f for f in report.files if f.status != "ok"]
    if odd:
        lines += ["Files where legacy itself raised (the runtime must refuse them too):", ""]
        for f in odd:
            le, ce = f.legacy_error, f.clean_error
            lines.append(f"- `{f.name}` ({f.status}): legacy `{getattr(le, 'type', None)}: "
                         f"{getattr(le, 'message', None)}`, runtime `{getattr(ce, 'type', None)}: "
                         f"{getattr(ce, 'message', None)}`")
        lines.append("")
    return lines


def install_line(card: CardConfig) -> str:
    """The user's install line; else orcaport from the code link they gave; else by name."""
    if card.install:
        return card.install
    code = card.links.get("code")
    return f'pip install "orcaport @ git+{code}"' if code else "pip install orcaport"


def usage_section(repo_id: str, config: Mapping[str, Any], card: CardConfig,
                  weights_sha256: str, predict: bool = False) -> list[str]:
    pos = config["classes"][config["positive_index"]]
    head = ["## Usage", "", "This repo holds data only (weights, config, the parity report); the "
            "code that runs it is the `orcaport` package you install -- nothing is imported from "
            "the download. No fastai or torchaudio is needed.", "", "```bash", install_line(card), "```", ""]
    if predict:     # a learner only fastai_audio's own predict runs (several items per file)
        return head + predict_usage_lines(repo_id, weights_sha256)
    return head + ["```python", "from orcaport.model.detector import Detector", "",
            f'detector = Detector.from_pretrained("{repo_id}",   # cached; HF_HUB_OFFLINE=1 works offline',
            f'                                     weights_sha256="{weights_sha256}")',
            'result = detector.detect("hydrophone.wav")   # WAV as is; FLAC, MP3, AAC, .ts through ffmpeg',
            f"print(result.global_prediction, result.global_confidence)   # 1 = {pos} detected",
            "print(result.confidence)   # per-second confidence (legacy's rolling mean)", "```", "",
            "`weights_sha256` pins the weights: they are verified before use, against it, against "
            "the hash config.json pins and against SHA256SUMS; add `revision=\"<commit>\"` to pin "
            "the repo too. From the command line: `orcaport detect hydrophone.wav --model "
            "DOWNLOADED_FOLDER`. Files shorter than one 2 s window are refused, as the legacy "
            "pipeline failed on them too.", ""]


def model_section(config: Mapping[str, Any], fixture: Mapping[str, Any] | None, orcahello: bool,
                  card: CardConfig, repo_id: str, predict: bool = False) -> list[str]:
    arch, win, agg = config["architecture"], config["windowing"], config["aggregation"]
    classes = config["classes"]
    if orcahello:
        title = card.title or "OrcaHello killer-whale call detector (fastai-free port)"
        task = card.task or ("Detects **Southern Resident killer whale (_Orcinus orca_) calls** in "
                             "hydrophone audio — the task of [OrcaHello]"
                             f"({ORCAHELLO_LINK}), Orcasound's real-time detector")
    else:
        title = card.title or f"{repo_id.split('/')[-1]} (fastai-free port)"
        task = card.task or ("An audio classifier (its task was not described by the publisher: "
                             "`make publish CARD=card.json` with a `task` field)")
    lines = [f"# {title}", "", f"{task.rstrip('.')} — converted from a fastai 1.0.61 + "
             "fastai_audio learner to plain PyTorch with verified parity.", ""]
    label = lambda c: f"`{c}`" + (f" ({card.labels[c]})" if c in card.labels else "")  # noqa: E731
    lines += [f"- classes: {', '.join(label(c) for c in classes)}; positive class "
              f"`{classes[config['positive_index']]}`"]
    if predict:     # fastai_audio's own predict: no windows, no per-second aggregation
        lines += ["- fastai_audio's own predict: one prediction per file, or per item where the "
                  "frontend cuts several (`remove_silence=\"split\"`, `segment_size`); each item -> "
                  f"{' -> '.join(chain_of(FrontendConfig(**config['frontend'])))} -> {arch['body']} + "
                  "fastai head -> softmax; "
                  "its label is the most probable class"]
    else:
        lines += [f"- windows: {win['clip_seconds']} s every {win['hop_seconds']} s; each window -> "
                  f"log-mel spectrogram -> {arch['body']} + fastai head -> softmax",
                  f"- per-second confidence: first window raw, then a rolling mean of 2 windows, last "
                  f"window appended ({agg['smoothing']})",
                  f"- a second is positive when its confidence > {agg['threshold']}; a file is a "
                  f"detection when at least {agg['min_positive']} seconds are positive; its global "
                  "confidence is 100 x the mean confidence of the positive seconds"]
    lines += [f"- {name}: {url}" for name, url in sorted(card.links.items())] + [""]
    if card.description and card.description.strip():
        lines += ["## Description", "", card.description.strip(), ""]
    if fixture:
        held = fixture.get("held_out", {})
        lines += ["> **Note:** these weights are orcaport's *test fixture*, a "
                  f"{fixture.get('body', arch['body'])} learner trained on seeded synthetic "
                  f"hydrophone audio (seed {fixture.get('seed')}, held-out accuracy "
                  f"{held.get('accuracy', '—')} on {held.get('n', '—')} synthetic clips). They "
                  "prove the conversion, not field performance; they are not the production "
                  "OrcaHello model.", ""]
    return lines


def frontend_section(config: Mapping[str, Any]) -> list[str]:
    lines = ["## Frontend parameters (from `config.json`)", "",
             "fastai_audio `AudioConfig` + `SpectrogramConfig` field names, as the runtime "
             "applies them:", ""]
    lines += _table(("parameter", "value"), sorted(config["frontend"].items()))
    norm = config.get("normalization")
    lines += [f"Network input normalisation: {'none' if norm is None else json.dumps(norm)}. "
              f"Head: {json.dumps(config['architecture']['head'])}.", ""]
    return lines


def files_section(hashes: Mapping[str, tuple[str, int]]) -> list[str]:
    lines = ["## Files", "", "`SHA256SUMS` lists every file including this README "
             "(`sha256sum -c SHA256SUMS`); a file cannot list its own hash, so README.md and "
             "SHA256SUMS are the two not in this table.", ""]
    return lines + _table(("file", "bytes", "sha256"),
                          [(f"`{p}`", size, f"`{sha}`") for p, (sha, size) in sorted(hashes.items())])


def provenance_section(config: Mapping[str, Any]) -> list[str]:
    prov = dict(config.get("provenance", {}))
    legacy = prov.pop("legacy_versions", {}) or {}
    lines = ["## Provenance (from `config.json`)", ""]
    lines += [f"- {k}: `{v}`" for k, v in sorted(prov.items())] + [""]
    if legacy:
        lines += ["Legacy environment the weights and references came from:", ""]
        lines += _table(("package", "version"), sorted(legacy.items()))
    return lines


def render_card(repo_id: str, config: Mapping[str, Any], report: ParityResult | PredictReport,
                report_sha256: str, hashes: Mapping[str, tuple[str, int]], license_id: str,
                fixture: Mapping[str, Any] | None = None, card: CardConfig | None = None,
                evaluation: Mapping[str, Any] | None = None) -> str:
    """The whole README.md, parsed back with huggingface_hub's ModelCard before it is returned.
    `hashes`: staged path -> (sha256, bytes), README/SHA256SUMS excluded. OrcaHello wording only
    when `card.orcahello` says so or, left unsaid, for the fixture (fixture.json). `evaluation`:
    a checked evaluation.json (parity/evaluation/card.py) -> model-index results and a section."""
    card = card or CardConfig()
    orcahello = card.orcahello if card.orcahello is not None else fixture is not None
    data = card_data(license_id, orcahello, card, evaluation, repo_id.split("/")[-1])
    predict = isinstance(report, PredictReport)
    lines = model_section(config, fixture, orcahello, card, repo_id, predict)
    lines += usage_section(repo_id, config, card, report.weights_sha256, predict)
    lines += frontend_section(config)
    if evaluation is not None:
        from orcaport.parity.evaluation.card import evaluation_section

        lines += evaluation_section(dict(evaluation), {k: v[0] for k, v in hashes.items()})
    lines += (predict_parity_section(report, report_sha256) if predict else parity_section(report, report_sha256))
    lines += files_section(hashes)
    lines += provenance_section(config)
    lines += ["## Limitations", "",
              "Parity shows the runtime reproduces the legacy pipeline's outputs on the same "
              "weights; it says nothing about how well those weights detect "
              f"{'whales' if orcahello else 'their classes'} in new recordings. Decoding "
              "reproduces pydub's (legacy) reading of WAV files, including its refusals; other "
              "formats go through production's ffmpeg-to-WAV conversion.", ""]
    text = f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines)
    parsed = ModelCard(text).data.to_dict()   # huggingface_hub's own parser
    if parsed != data.to_dict():
        raise CardError(f"the model card's front matter does not parse back ({parsed} != "
                        f"{data.to_dict()}); report this as an orcaport bug")
    return text

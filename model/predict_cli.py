"""`orcaport predict FILE|DIR... --model DIR`: fastai_audio's own predict (model/predict.py), one row
per file, or per item when the frontend makes several of a file (segment_size,
remove_silence="split"): class, index and every class's probability, as a table, JSON or CSV.

Exit codes (model/errors.py): 0 ok, 1 some files failed (the others are still reported), 2 bad
usage, 3 unusable model folder or inputs, 5 --output not writable, 130 interrupted.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

from orcaport.model.errors import ExitCode, OrcaportError, UsageError, one_line

FORMATS = ("table", "json", "csv")


def configure(p: argparse.ArgumentParser) -> None:
    from orcaport.model.cli import _positive_int

    p.add_argument("inputs", nargs="+", metavar="FILE|DIR|MANIFEST|GLOB",
                   help="audio files soundfile reads (as fastai_audio's AudioList opens them), folders "
                        "scanned recursively, manifests (.txt) or quoted globs")
    p.add_argument("--model", type=Path, default=None,
                   help="model folder with model.safetensors + config.json (required)")
    p.add_argument("--format", choices=FORMATS, default="table",
                   help="table / json / csv: one row per file or per item (segment, silence split)")
    p.add_argument("--profile", choices=("legacy-exact", "fast"), default="legacy-exact",
                   help="as for detect: legacy-exact is fp32, identical to legacy")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--batch-size", type=_positive_int, default=None, help="items per network call")
    p.add_argument("--output", type=Path, default=None, help="write results here instead of stdout")


def render_json(results: list[Any], errors: list[tuple[Path, str]], args: argparse.Namespace,
                classes: tuple[str, ...]) -> str:
    doc = {"model": str(args.model), "mode": "predict", "profile": args.profile, "classes": list(classes),
           "items": [r.to_dict(classes) for r in results],
           "errors": [{"path": str(p), "error": m} for p, m in errors]}
    return json.dumps(doc, indent=2) + "\n"


def render_csv(results: list[Any], classes: tuple[str, ...]) -> str:
    from orcaport.model.predict import ITEM_FIELDS

    buf = io.StringIO()
    names = [f"p_{c}" for c in classes]
    writer = csv.DictWriter(buf, fieldnames=[*ITEM_FIELDS, *names], lineterminator="\n")
    writer.writeheader()
    for r in results:
        row = r.to_dict(classes)
        probs = row.pop("probabilities")
        writer.writerow({**row, **{f"p_{c}": v for c, v in probs.items()}})
    return buf.getvalue()


def render_table(results: list[Any], errors: list[tuple[Path, str]], classes: tuple[str, ...]) -> str:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="fastai_audio predict", title_justify="left")
    for name in ("File", "Item", "Start s", "Length s", "Class", *[f"P({c})" for c in classes]):
        table.add_column(name, overflow="fold" if name == "File" else "ellipsis", no_wrap=name != "File")
    for r in results:
        start = "" if r.start_s is None else f"{r.start_s:.2f}"
        table.add_row(r.file, str(r.item), start, f"{r.duration_s:.2f}", r.label,
                      *[f"{p:.4f}" for p in r.probabilities])
    for path, _ in errors:
        table.add_row(path.name, "", "", "", "error (see stderr)", *[""] * len(classes))
    buf = io.StringIO()
    Console(file=buf, no_color=True, width=max([len(r.file) for r in results] + [40]) + 60 + 12 * len(classes)
            ).print(table)
    return buf.getvalue()


def run(args: argparse.Namespace) -> int:
    from orcaport.model.cli import collect_audio, write_output
    from orcaport.model.detector import Detector

    if args.model is None:
        raise UsageError("no model; pass --model DIR, a folder holding model.safetensors + config.json "
                         "(`make convert` writes them)")
    files = collect_audio(args.inputs)
    detector = Detector.from_folder(args.model, profile=args.profile, device=args.device,
                                    batch_size=args.batch_size, mode="predict")
    classes = detector.artifact.config.classes
    results, errors = [], []
    for path in files:
        try:
            results += detector.predict(path)
        except (OrcaportError, OSError) as e:
            errors.append((path, one_line(e)))
            print(f"error: {errors[-1][1]}", file=sys.stderr)
    text = {"json": lambda: render_json(results, errors, args, classes),
            "csv": lambda: render_csv(results, classes),
            "table": lambda: render_table(results, errors, classes)}[args.format]()
    if args.output is None:
        sys.stdout.write(text)
    else:
        write_output(args.output, text)
    return ExitCode.FAILED if errors else ExitCode.OK

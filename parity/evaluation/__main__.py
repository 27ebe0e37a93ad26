"""`make evaluate`: python -m orcaport.parity.evaluation --model DIR --audio DIR|FILE... --labels FILE|DIR
    --reports DIR [--references DIR] [--legacy-python PATH | --no-legacy] [--sha256 HEX]
    [--dataset NAME] [--unlabeled negative|skip] [--classes a,b] [--margin 0.01] [--no-int8]

Writes REPORTS/evaluation.{json,md,html} and REPORTS/disagreements.selections.txt (parity/evaluation/
reports.py) and prints the summary table. Exit codes (model/errors.py): 0 written, 2 bad usage
(scikit-learn missing included: it is the `evaluate` extra), 3 an unusable input (label file, model,
audio), 5 reports not writable.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from orcaport.model.errors import ExitCode, OrcaportError, OutputError, UsageError, report_error

PROG = "python -m orcaport.parity.evaluation"
EXTRA_FIX = ("pip install 'orcaport[evaluate]' (in a checkout: `make evaluate` installs "
             "envs/evaluate.lock.txt into the clean env)")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=PROG, description="precision / recall / F1 of every profile on labeled recordings")
    ap.add_argument("--model", type=Path, required=True, help="converted model folder (model.safetensors + config.json)")
    ap.add_argument("--audio", type=Path, nargs="+", required=True, help="recordings: a folder (recursive) or files")
    ap.add_argument("--labels", type=Path, required=True, help="Raven table / Audacity labels / CSV, or a folder of them")
    ap.add_argument("--reports", type=Path, required=True, help="folder for evaluation.{json,md,html}")
    ap.add_argument("--references", type=Path, default=None, help="`make references` output to take legacy's confidences from")
    ap.add_argument("--legacy-python", type=Path, default=None, help="the legacy env's python, to run legacy on the rest")
    ap.add_argument("--sha256", default=None, help="model.pkl's sha256 for the legacy run (else model.pkl.sha256)")
    ap.add_argument("--dataset", default=None, help="the labeled set's name (reports, the model card)")
    ap.add_argument("--unlabeled", choices=("skip", "negative"), default="skip",
                    help="recordings no label file mentions: skip them (default) or count them as negatives")
    ap.add_argument("--classes", default=None, help="comma list: only labels of these classes are calls (default: all)")
    ap.add_argument("--margin", type=float, default=None, help="gate: F1 a fast arithmetic may lose (default 0.01)")
    ap.add_argument("--no-int8", action="store_true", help="skip the int8 candidate")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        try:
            import sklearn  # noqa: F401
        except ImportError:
            raise UsageError(f"scikit-learn is not installed (the `evaluate` extra); {EXTRA_FIX}") from None
        from orcaport.model.cli import collect_audio
        from orcaport.parity.evaluation.reports import SUMMARY_HEADER, summary_rows, write_reports
        from orcaport.parity.evaluation.run import GATE_MARGIN, Options, evaluate

        opt = Options(model=args.model, audio=collect_audio(args.audio), labels=args.labels,
                      references=args.references, legacy_python=args.legacy_python, sha256=args.sha256,
                      dataset=args.dataset, unlabeled_negative=args.unlabeled == "negative",
                      classes=tuple(c.strip() for c in args.classes.split(",")) if args.classes else None,
                      margin=GATE_MARGIN if args.margin is None else args.margin, int8=not args.no_int8)
        doc = evaluate(opt, progress=lambda name: print(f"evaluating {name}", file=sys.stderr))
        try:
            paths = write_reports(doc, args.reports)
        except OSError as e:
            raise OutputError(f"cannot write {args.reports} ({e.strerror or e}); pass a writable --reports") from None
    except (OrcaportError, KeyboardInterrupt) as e:
        return report_error(PROG, e)
    widths = [max(len(h), *(len(r[i]) for r in summary_rows(doc))) for i, h in enumerate(SUMMARY_HEADER)]
    for row in [SUMMARY_HEADER] + summary_rows(doc):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)))
    print(f"machine: {doc['machine']['description']}")
    print(f"reports: {', '.join(str(p) for p in paths.values())}")
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())

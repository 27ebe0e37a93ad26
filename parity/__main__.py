"""`make parity`: python -m orcaport.parity --model DIR --references DIR --audio DIR --reports DIR
[--upstream FILE]

Exit status (model/errors.py): 0 when every stage passes, 1 when a stage fails (the first failing
stage is named), 2 usage, 3 when the inputs themselves are unusable (missing/tampered references,
bad model folder, tolerances), 5 when the reports cannot be written (nothing is replaced).
--model, --references and --audio have no default: an installed orcaport has no checkout to point
into (the Makefile passes the embedded fixture's).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from orcaport.model.errors import ExitCode, InputError, OrcaportError, OutputError, report_error
from orcaport.parity.reports.terminal import print_report
from orcaport.parity.reports.write import write_reports
from orcaport.parity.run import DEFAULT_TOLERANCES, run_parity


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m orcaport.parity", description="Stage-by-stage parity "
                                 "of the fastai-free runtime against legacy references.")
    ap.add_argument("--model", type=Path, required=True,
                    help="folder with model.safetensors + config.json (make convert writes them)")
    ap.add_argument("--references", type=Path, required=True,
                    help="the references folder (make references writes it)")
    ap.add_argument("--audio", "--corpus", type=Path, nargs="+", dest="audio", required=True,
                    help="the recordings the references were made from: a folder or files of one folder")
    ap.add_argument("--tolerances", type=Path, default=DEFAULT_TOLERANCES,
                    help="default: the fixture's, shipped with the package")
    ap.add_argument("--upstream", type=Path, default=None,
                    help="upstream's real-data mel reference (upstream_sunset_bay_mel_reference"
                         ".safetensors); without it the real-data check is reported as not run")
    ap.add_argument("--reports", type=Path, default=Path("reports"))
    ap.add_argument("--diagnose-other-weights", action="store_true",
                    help="replay weights the references were not made for, to localise the "
                         "difference (the report is marked and can never gate a publish)")
    ap.add_argument("--only", action="append", metavar="FILE",
                    help="replay only this corpus file (repeatable); the report says so")
    ap.add_argument("--criteria", choices=("auto", "same-machine", "cross-machine"), default="auto",
                    help="auto (default): same-machine criteria only when the references' machine "
                         "fingerprint matches this one, else the envelope-derived cross-machine ones")
    args = ap.parse_args(argv)
    console = Console(stderr=True)
    try:
        from orcaport.parity.references import load_references

        n_files = len(args.only) if args.only else len(load_references(args.references).files)
        with Progress(TextColumn("[bold]parity[/]"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                      transient=True) as bar:
            task = bar.add_task("", total=n_files)

            def step(name: str) -> None:
                bar.update(task, description=name, advance=0 if bar.tasks[0].description == "" else 1)
            corpus = args.audio[0] if len(args.audio) == 1 and args.audio[0].is_dir() else args.audio[0].parent
            result, heatmaps = run_parity(args.model, args.references, corpus, args.tolerances,
                                          progress=step, upstream=args.upstream,
                                          diagnose_other_weights=args.diagnose_other_weights,
                                          only=args.only,
                                          regime=None if args.criteria == "auto"
                                          else args.criteria.replace("-", "_"))
            bar.update(task, completed=n_files)
    except FileNotFoundError as e:
        return report_error(None, InputError(f"{e.filename}: not found ({e.strerror})"))
    except (OrcaportError, KeyboardInterrupt) as e:
        return report_error(None, e)
    try:
        paths = write_reports(result, heatmaps, args.reports)
    except OSError as e:   # nothing was replaced: every report is renamed only once all are written
        return report_error(None, OutputError(f"cannot write reports to {args.reports} ({e.strerror or e}); "
                                              "pass a writable --reports folder"))
    print_report(result, Console())
    console.print("reports: " + ", ".join(escape(str(p)) for p in paths.values()))
    return ExitCode.OK if result.passed else ExitCode.FAILED


if __name__ == "__main__":
    sys.exit(main())

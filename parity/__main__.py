"""`make parity`: python -m orcaport.parity --model DIR --references DIR --corpus DIR --reports DIR

Exit status: 0 when every stage passes, 1 when a stage fails (the first failing stage is named),
2 when the inputs themselves are unusable (missing/tampered references, bad model folder).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from orcaport.model.config import ConfigError
from orcaport.model.weights import WeightsError
from orcaport.parity.references import ReferencesError
from orcaport.parity.reports.terminal import print_report
from orcaport.parity.reports.write import write_reports
from orcaport.parity.run import DEFAULT_TOLERANCES, ToleranceError, run_parity


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m orcaport.parity", description="Stage-by-stage parity "
                                 "of the fastai-free runtime against legacy references.")
    ap.add_argument("--model", type=Path, default=Path("reference_outputs/fixture"),
                    help="folder with model.safetensors + config.json")
    ap.add_argument("--references", type=Path, default=Path("reference_outputs/stages"))
    ap.add_argument("--audio", "--corpus", type=Path, nargs="+", dest="audio",
                    default=[Path("reference_outputs/corpus")],
                    help="the recordings the references were made from: a folder or files of one folder")
    ap.add_argument("--tolerances", type=Path, default=DEFAULT_TOLERANCES)
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
                                          progress=step,
                                          diagnose_other_weights=args.diagnose_other_weights,
                                          only=args.only,
                                          regime=None if args.criteria == "auto"
                                          else args.criteria.replace("-", "_"))
            bar.update(task, completed=n_files)
    except (ReferencesError, WeightsError, ConfigError, ToleranceError, FileNotFoundError) as e:
        # soft_wrap: one line whatever the terminal width; escape: "[...]" in it is not markup
        console.print(f"[red]error:[/] {escape(str(e))}", soft_wrap=True)
        return 2
    try:
        paths = write_reports(result, heatmaps, args.reports)
    except OSError as e:   # nothing was replaced: every report is renamed only once all are written
        console.print(f"[red]error:[/] cannot write reports to {escape(str(args.reports))} "
                      f"({escape(e.strerror or str(e))}); pass a writable --reports folder", soft_wrap=True)
        return 2
    print_report(result, Console())
    console.print("reports: " + ", ".join(str(p) for p in paths.values()))
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())

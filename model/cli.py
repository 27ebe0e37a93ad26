"""`orcaport` command line: `orcaport detect FILE|DIR... [options]` (also `python -m orcaport.model`).

Subcommands live in `COMMANDS`; another module adds one with `register(name, help, configure, run)`
(configure(parser) adds its arguments, run(args) -> exit code), so `main()` never changes.
Exit codes (model/errors.py, one table for every command): 0 ok, 1 some files failed (the others
are still reported), 2 bad usage, 3 unusable model folder or inputs, 5 --output not writable,
130 interrupted.
Progress goes to stderr, results to stdout (or --output), so `> result.json` stays valid.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from orcaport.model.errors import (ExitCode, OrcaportError, OutputError, UsageError, one_line,
                                   report_error)
from orcaport.model.version import version

FORMATS = ("table", "json", "csv", "raven", "audacity")
CSV_FIELDS = ("wav_filename", "start_time_s", "duration_s", "confidence", "local_prediction",
              "global_prediction", "global_confidence", "profile")


@dataclass(frozen=True)
class Command:
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


COMMANDS: dict[str, Command] = {}


def register(name: str, help: str, configure: Callable[[argparse.ArgumentParser], None],
             run: Callable[[argparse.Namespace], int]) -> None:
    """Add a subcommand (e.g. `parity`, `publish`) without touching `main`."""
    COMMANDS[name] = Command(help, configure, run)


# -- detect --------------------------------------------------------------------------------------
def _threshold(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"threshold must be within [0, 1], got {value}")
    return value


def _window_seconds(text: str) -> float:
    value = float(text)
    if not 2.0 <= value <= 3600.0:
        raise argparse.ArgumentTypeError(f"must be within 2..3600 seconds, got {value}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def configure_detect(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="*", metavar="FILE|DIR|MANIFEST|GLOB",
                   help="audio files (WAV read directly; FLAC, MP3, AAC, .ts... through production's "
                        "ffmpeg conversion), local HLS playlists (.m3u8: one result per live "
                        "window), folders scanned recursively for them, manifests (.txt: one input "
                        "per line, relative to the manifest) or quoted globs ('archive/**/*.wav')")
    p.add_argument("--follow", type=Path, metavar="DIR", default=None,
                   help="keep polling DIR and process each new file / complete playlist window once, "
                        "across restarts; JSON lines on stdout")
    p.add_argument("--state", type=Path, default=None,
                   help="--follow's state file (default: DIR/.orcaport-follow.json)")
    p.add_argument("--poll-seconds", type=_seconds, default=10.0, help="--follow: pause between scans")
    p.add_argument("--polls", type=_positive_int, default=None,
                   help="--follow: stop after this many scans (default: until interrupted)")
    p.add_argument("--settle-seconds", type=_seconds, default=5.0,
                   help="--follow: a file is taken once unchanged this long (still copying before)")
    p.add_argument("--window-seconds", type=_window_seconds, default=60.0,
                   help="playlists: live window length, as production's polling interval (default 60)")
    p.add_argument("--format", choices=FORMATS, default=None,
                   help="table / json / csv: per-second rows; raven (Raven Pro selection table) / "
                        "audacity (label track): one row per detection event (default: table)")
    p.add_argument("--threshold", type=_threshold, default=None,
                   help="per-second decision threshold (default: the model's, 0.5 for OrcaHello)")
    p.add_argument("--min-positive", type=_positive_int, default=None,
                   help="positive seconds needed for a global call (default: the model's, 3)")
    p.add_argument("--profile", choices=("legacy-exact", "fast"), default="legacy-exact",
                   help="legacy-exact: fp32, identical to legacy; fast: the quickest arithmetic this "
                        "hardware runs natively (bf16 with AVX512-BF16/AMX, fp16 on CUDA, else fp32)")
    p.add_argument("--arithmetic", choices=("auto", "fp32", "bf16", "fp16", "int8"), default=None,
                   help="force fast's arithmetic (default: auto, or $ORCAPORT_ARITHMETIC); int8: the body "
                        "int8, the head fp32, on an x86 CPU, from the model folder's calibration "
                        "(`orcaport calibrate`); never chosen by auto")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--batch-size", type=_positive_int, default=None,
                   help="clips per network call (default: 4 on CPU, 64 on CUDA)")
    p.add_argument("--model", type=Path, default=None,
                   help="model folder with model.safetensors + config.json (required; in a "
                        "checkout the embedded fixture is reference_outputs/fixture)")
    p.add_argument("--many", action="store_true",
                   help="run WAV inputs through the many-file feeder (model/feeder.py: worker "
                        "processes prepare clips while the network runs); always on with --device "
                        "cuda. Results are the same bits either way")
    p.add_argument("--output", type=Path, default=None,
                   help="write results here instead of stdout (with --ray: a folder, see --ray)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    from orcaport.model.scale.options import configure_ray    # ray-free: Ray is imported only by a --ray run

    configure_ray(p)


def collect_audio(inputs: Sequence[str | Path]) -> list[Path]:
    """model.inputs.collect_audio (imported on use: `orcaport --help` stays instant)."""
    from orcaport.model.inputs import collect_audio as collect

    return collect(inputs)


def render_table(results: list[Any], errors: list[tuple[Path, str]], console: Console,
                 arithmetic: str = "") -> None:
    # The caption says which arithmetic ran: `fast` means different things on different machines.
    table = Table(title="OrcaHello detections", title_justify="left", caption=arithmetic or None,
                  caption_justify="left")
    # Numbers never wrap; a long file name folds (off a terminal the console is widened instead).
    table.add_column("File", overflow="fold", min_width=12)
    for name in ("Length s", "Clips", "Global decision", "Conf %", "Positive s"):
        table.add_column(name, justify="left" if name == "Global decision" else "right", no_wrap=True)
    for d in results:
        decision = "[bold green]CALL[/]" if d.global_prediction else "no call"
        table.add_row(d.wav_filename, f"{d.duration_s:.1f}", str(d.clips), decision,
                      f"{d.global_confidence:.1f}", f"{d.positive_seconds}/{len(d.local_prediction)}")
    for path, _ in errors:
        table.add_row(path.name, "", "", "[red]error[/] (see stderr)", "", "")
    console.print(table)


def render_json(results: list[Any], errors: list[tuple[Path, str]], args: argparse.Namespace,
                arithmetic: dict[str, Any] | None = None) -> str:
    doc = {"model": str(args.model), "profile": args.profile, "device": args.device,
           "arithmetic": arithmetic,
           "files": [d.to_dict() for d in results],
           "errors": [{"path": str(p), "error": m} for p, m in errors]}
    return json.dumps(doc, indent=2) + "\n"


def render_csv(results: list[Any]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for d in results:
        for row in d.rows():
            writer.writerow({**row, "global_prediction": d.global_prediction,
                             "global_confidence": d.global_confidence, "profile": d.profile})
    return buf.getvalue()


def _table_width(results: list[Any], errors: list[tuple[Path, str]]) -> int:
    return max([len(d.wav_filename) for d in results] + [len(p.name) for p, _ in errors] + [40]) + 90


def arithmetic_caption(args: argparse.Namespace, detector: Any) -> str:
    return f"profile {args.profile}: {detector.arithmetic.describe()}"


def render_text(args: argparse.Namespace, results: list[Any], errors: list[tuple[Path, str]],
                paths: Sequence[Path], detector: Any) -> str:
    """The whole output of a non-terminal run, as text (written in one piece). paths: the audio
    file of each result (raven/audacity name them); detector: the `Detector` that ran."""
    if args.format in ("raven", "audacity"):
        from orcaport.model.review_formats import render_audacity, render_raven

        files = list(zip(paths, results))
        cfg = detector.artifact.config
        if args.format == "raven":
            return render_raven(files, cfg.frontend)
        return render_audacity(files, cfg.classes[cfg.positive_index])
    if args.format == "json":
        return render_json(results, errors, args, detector.arithmetic.to_dict())
    if args.format == "csv":
        return render_csv(results)
    buf = io.StringIO()
    console = Console(file=buf, no_color=True, width=_table_width(results, errors))
    render_table(results, errors, console, arithmetic_caption(args, detector))
    return buf.getvalue()


def write_output(path: Path, text: str) -> None:
    """--output: staged as a temp sibling and renamed into place, so a killed run never leaves a
    half-written file (and an older one stays whole). Raises UsageError for a folder, OutputError
    for an unwritable place."""
    from orcaport.model.fileio import write_files_atomically

    if path.is_dir():
        raise UsageError(f"--output {path} is a folder; give a file name")
    try:
        write_files_atomically(path.parent, {path.name: text.encode("utf-8")})
    except OSError as e:
        raise OutputError(f"cannot write --output {path} ({e.strerror or e}); choose a writable path") from None


def run_detect(args: argparse.Namespace) -> int:
    # Imported here so `orcaport --help` stays instant (torch takes a second to import).
    from orcaport.model.detector import Detector

    if args.ray is not None:
        from orcaport.model.scale.options import run_ray_detect

        return run_ray_detect(args)
    if args.follow is not None and args.inputs:
        raise UsageError("--follow DIR takes no other inputs; run one or the other")
    if args.follow is not None and (args.output is not None or args.format not in (None, "json")):
        raise UsageError("--follow writes JSON lines to stdout; drop --output/--format")
    args.format = args.format or "table"
    if args.follow is None and not args.inputs:
        raise UsageError("no inputs; pass audio files or folders, or --follow DIR")
    if args.model is None:
        raise UsageError("no model; pass --model DIR, a folder holding model.safetensors + "
                         "config.json (`make convert` writes them)")
    files = collect_audio(args.inputs) if args.follow is None else []
    detector = Detector.from_folder(args.model, profile=args.profile, device=args.device,
                                    batch_size=args.batch_size, arithmetic=args.arithmetic)
    if args.follow is not None:
        return _run_follow(args, detector)
    err = Console(stderr=True)
    results, errors, paths = [], [], []
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=err, transient=True,
                  disable=args.quiet or not err.is_terminal) as bar:
        files_task = bar.add_task("files", total=len(files))
        clips_task = bar.add_task("clips", total=None)
        for path, found in _detections(args, detector, files, bar, clips_task):
            if isinstance(found, Exception):
                message = one_line(found)
                errors.append((path, message))
                err.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
            else:
                results += found
                paths += [path] * len(found)
            bar.advance(files_task)
    if args.format == "table" and args.output is None:
        # Off a terminal rich assumes 80 columns; widen so file names are never cut.
        console = Console()
        if not console.is_terminal:
            console = Console(width=_table_width(results, errors))
        render_table(results, errors, console, arithmetic_caption(args, detector))
    else:
        text = render_text(args, results, errors, paths, detector)
        if args.output is None:
            sys.stdout.write(text)
        else:
            write_output(args.output, text)
    return ExitCode.FAILED if errors else ExitCode.OK


def _detections(args: argparse.Namespace, detector: Any, files: list[Path], bar: Progress,
                clips_task: Any) -> Iterator[tuple[Path, list[Any] | Exception]]:
    """(file, its detections or its error) for every file, in order. With --many / --device cuda
    the WAVs go through the many-file feeder (the same bits: its chunks are the detector's
    batches); playlists and ffmpeg inputs always run one at a time."""
    from orcaport.model.feeder import detect_many
    from orcaport.model.inputs import detect_input, is_playlist
    from orcaport.model.transcode import needs_ffmpeg

    feeder = args.many or args.device == "cuda"
    many = [p for p in files if feeder and not needs_ffmpeg(p) and not is_playlist(p)]
    fed = iter(detect_many(detector, many, threshold=args.threshold, min_positive=args.min_positive))
    for path in files:
        if many and path in many:
            bar.update(clips_task, description="clips (many-file feeder)", completed=0, total=None)
            got_path, got = next(fed)
            assert got_path == path, (got_path, path)        # the feeder yields in input order
            yield path, got if isinstance(got, Exception) else [got]
            continue
        bar.update(clips_task, description=f"clips of {path.name}", completed=0, total=None)
        progress = lambda done, total: bar.update(clips_task, completed=done, total=total)  # noqa: E731
        try:
            yield path, detect_input(detector, path, args.threshold, args.min_positive, progress,
                                     args.window_seconds)
        except (OrcaportError, OSError) as e:
            yield path, e


def _run_follow(args: argparse.Namespace, detector: Any) -> int:
    from orcaport.model.follow import follow

    return follow(detector, args.follow, args.state, args.poll_seconds, args.polls,
                  args.settle_seconds, args.window_seconds)


register("detect", "detect SRKW calls in audio files, per second and per file", configure_detect, run_detect)


def _predict_configure(p: argparse.ArgumentParser) -> None:
    from orcaport.model.predict_cli import configure    # model/predict_cli.py: fastai_audio's own predict

    configure(p)


def _predict_run(args: argparse.Namespace) -> int:
    from orcaport.model.predict_cli import run

    return run(args)


register("predict", "fastai_audio's own predict: class and probabilities per file or per segment",
         _predict_configure, _predict_run)


def _calibrate_configure(p: argparse.ArgumentParser) -> None:
    from orcaport.model.calibrate import configure    # model/calibrate.py: int8's stored calibration

    configure(p)


def _calibrate_run(args: argparse.Namespace) -> int:
    from orcaport.model.calibrate import run

    return run(args)


register("calibrate", "int8: calibrate the model's quantized body on your recordings, stored in the model folder",
         _calibrate_configure, _calibrate_run)


# -- entry point ---------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="orcaport", description="fastai-free OrcaHello runtime")
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, cmd in COMMANDS.items():
        cmd.configure(sub.add_parser(name, help=cmd.help, description=cmd.help))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command].run(args)
    except (OrcaportError, KeyboardInterrupt) as e:
        return report_error(f"orcaport {args.command}", e)


if __name__ == "__main__":
    sys.exit(main())

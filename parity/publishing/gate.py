"""The publish gate: nothing leaves this machine unless a passing parity report vouches for it.

`check_report` reads reports/parity.json and refuses (a one-line `GateError`) when the report is
missing, unreadable, of an unknown schema, a diagnostic run, made for other weights / config /
references / tolerances / runtime code than the ones about to be published, or not a clean
pass. The fix is almost always the same -- re-run the parity suite on exactly what is being
published -- so every message ends with that command, spelled with the caller's own MODEL=,
REFERENCES= and REPORTS= (`make_command`), never a bare `make parity` that would replay the
embedded fixture instead of the user's model. Identity is checked before the verdict: a failing report
about other weights says nothing about these, and "stale" is the more useful thing to hear.

The report is read as the parity result it claims to be (`ParityResult.from_json`,
parity/result.py; a predict-mode report, `make predict-parity`'s, as parity/publishing/
predict_report.py reads it): one that does not follow its schema is refused as unreadable.

    python -m orcaport.parity.publishing.gate --model DIR --report reports/parity.json [--references DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orcaport.model.errors import OrcaportError, RefusedError, report_error
from orcaport.model.fileio import sha256_file
from orcaport.parity.metrics import DEFAULT_TOLERANCES
from orcaport.parity.publishing.predict_report import PredictReport, predict_failure_text
from orcaport.parity.result import (RUNTIME_SOURCES, SCHEMA_VERSION, FileResult, Location, ParityResult,
                                    ResultError)

WEIGHTS_FILE, CONFIG_FILE, MANIFEST_FILE = "model.safetensors", "config.json", "manifest.json"


class GateError(RefusedError):
    """The report does not allow a publish. str() is one line: what is wrong + how to fix it."""


@dataclass(frozen=True)
class GatedReport:
    """A report that passed the gate, with the exact bytes that were checked (these get staged)."""

    path: Path
    raw: bytes
    result: ParityResult | PredictReport

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()


def make_command(target: str, **variables: str | Path | None) -> str:
    """'`make parity MODEL=m REFERENCES=r REPORTS=d`': the Makefile target with the caller's
    variables (the names every target of the Makefile shares), quoted for a shell."""
    words = [f"{k}={shlex.quote(str(v))}" for k, v in variables.items() if v not in (None, "")]
    return f"`{' '.join(['make', target] + words)}`"


def is_predict_report(report: Path) -> bool:
    """`make predict-parity`'s report (predict_parity.json), by name: the fix and the publish
    command are named before the report can be read (it may be missing)."""
    return report.name.startswith("predict")


def parity_fix(report: Path, model_dir: Path, references: Path) -> str:
    if is_predict_report(report):
        return "run " + make_command("predict-parity", MODEL=model_dir, PREDICT_REFERENCES=references,
                                     REPORTS=report.parent)
    return "run " + make_command("parity", MODEL=model_dir, REFERENCES=references,
                                 REPORTS=report.parent)


def _short(sha: Any) -> str:
    return f"{sha[:12]}…" if isinstance(sha, str) and len(sha) > 12 else repr(sha)


def _refuse(report: Path, why: str, fix: str) -> GateError:
    # One line, always: newlines from embedded exception text would split the message.
    return GateError(f"refusing to publish: {report} {why}; {fix}".replace("\n", " "))


def _read(report: Path, fix: str) -> tuple[bytes, ParityResult | PredictReport]:
    try:
        raw = report.read_bytes()
    except FileNotFoundError:
        raise _refuse(report, "does not exist (no parity run on record)", fix) from None
    except OSError as e:
        raise _refuse(report, f"is unreadable ({e.strerror or e})", fix) from None
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise _refuse(report, f"is unreadable (not valid JSON: {e})", fix) from None
    if not isinstance(data, dict):
        raise _refuse(report, "is unreadable (not a JSON object)", fix)
    if data.get("mode") == "predict":
        try:
            return raw, PredictReport.from_dict(data)
        except ResultError as e:
            raise _refuse(report, f"is unreadable ({e})", fix) from None
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise _refuse(report, f"has schema_version {version!r}, this publisher reads {SCHEMA_VERSION}", fix)
    try:
        return raw, ParityResult.from_dict(data)
    except ResultError as e:
        raise _refuse(report, f"is unreadable ({e})", fix) from None


def _check_diagnostic(report: Path, result: ParityResult | PredictReport, fix: str) -> None:
    # A `--diagnose-other-weights` run replays weights the references were not made for: it
    # localises differences, it never vouches for anything.
    if isinstance(result, PredictReport):
        if result.references_weights_sha256 != result.weights_sha256:
            raise _refuse(report, "replayed references recorded for other weights", fix)
        return
    if result.weights_check != "verified" or result.references_weights_sha256 != result.weights_sha256:
        raise _refuse(report, f"is a diagnostic run ({result.weights_check}), which can never gate a "
                              "publish", fix)


def _same(report: Path, what: str, recorded: Any, path: Path, hint: str, fix: str) -> None:
    """Refuse unless `path` hashes to what the report recorded for it."""
    if not path.is_file():
        raise _refuse(report, f"cannot be checked: {path} is missing", hint)
    actual = sha256_file(path)
    if actual != recorded:
        raise _refuse(report, f"was made for other {what} (report {_short(recorded)}, "
                              f"{path} {_short(actual)}): it is stale", fix)


def _check_identity(report: Path, result: ParityResult | PredictReport, model_dir: Path, references: Path,
                    tolerances: Path | None, fix: str) -> None:
    convert = f"pass the converted model folder as MODEL= (it holds {WEIGHTS_FILE} + {CONFIG_FILE})"
    _same(report, "weights", result.weights_sha256, model_dir / WEIGHTS_FILE, convert, fix)
    _same(report, "config", result.config_sha256, model_dir / CONFIG_FILE, convert, fix)
    # Other references than the report's: most likely the wrong folder was named, so say both.
    refs_fix = (f"pass the references folder the report was made from as REFERENCES= "
                f"(--references), or {fix} to replay {references}")
    _same(report, "references", result.references_manifest_sha256, references / MANIFEST_FILE,
          f"pass the references folder the report was made from as REFERENCES= (--references); "
          f"{references} has no {MANIFEST_FILE}", refs_fix)
    if tolerances is not None:
        _same(report, "tolerances", result.tolerances.sha256, tolerances,
              f"restore {tolerances} from git, then {fix}", fix)


def _check_runtime(report: Path, result: ParityResult | PredictReport, package: Path, fix: str) -> None:
    """The runtime code the parity run exercised must be unchanged."""
    for rel, sha in result.runtime_files.items():
        _same(report, f"runtime code ({rel})", sha, package / rel, f"restore it, then {fix}", fix)


def failure_text(failure: Location | None) -> str:
    """'stage probs (chained, file x.wav, clip 3, layer layer2)' from a first_failure."""
    if failure is None:
        return "an unnamed stage"
    where = [failure.mode]
    where += [f"file {failure.file}"] if failure.file else []
    where += [f"clip {failure.clip}"] if failure.clip is not None else []
    where += [f"layer {failure.layer}"] if failure.layer else []
    return f"stage {failure.stage} ({', '.join(str(w) for w in where if w)})"


def _failing_checks(files: list[FileResult]) -> list[Location]:
    """Checks that failed, plus a stand-in for every file the engine marked as errored."""
    bad = []
    for f in files:
        bad += [Location(file=f.name, mode=c.mode, stage=c.stage, clip=c.clip, layer=c.layer)
                for c in f.checks if not c.passed]
        if f.status == "error":
            bad.append(Location(file=f.name, mode="chained", clip=None, layer=None,
                                stage=f.clean_error.stage if f.clean_error else None))
    return bad


def _check_predict_verdict(report: Path, result: PredictReport, fix: str) -> None:
    if not result.passed:
        raise _refuse(report, f"records a FAILED predict parity run: first failing {predict_failure_text(result)}",
                      f"fix that stage, then {fix}")
    if result.first_failure is not None or result.failing():
        raise _refuse(report, f"claims to pass but holds a failing {predict_failure_text(result)}", fix)
    if not result.checks():
        raise _refuse(report, "claims to pass but holds no checks", fix)


def _check_verdict(report: Path, result: ParityResult | PredictReport, fix: str) -> None:
    if isinstance(result, PredictReport):
        return _check_predict_verdict(report, result, fix)
    bad = _failing_checks(result.files)
    if result.passed is not True:
        if result.first_failure is None and result.real_data.get("passed") is False:
            name = "the real-data check (real_data)"
        else:
            name = failure_text(result.first_failure or (bad or [None])[0])
        raise _refuse(report, f"records a FAILED parity run: first failing {name}",
                      f"fix that stage, then {fix}")
    # Trust but verify, as the reports' verdict does: a "pass" holding a failure is an engine
    # bug, and a pass with nothing checked proves nothing.
    if result.first_failure is not None or bad:
        raise _refuse(report, f"claims to pass but holds a failing "
                              f"{failure_text(result.first_failure or bad[0])}", fix)
    if not result.all_checks():
        raise _refuse(report, "claims to pass but holds no checks", fix)


def check_report(report: str | Path, model_dir: str | Path, references: str | Path,
                 tolerances: str | Path | None = DEFAULT_TOLERANCES,
                 runtime: Path | None = RUNTIME_SOURCES, fix: str | None = None) -> GatedReport:
    """Return the gated report, or raise GateError saying which check failed and how to fix it.

    `references` is the folder the report was made from: a publish is never gated without them.
    `tolerances=None` / `runtime=None` skip those checks (for callers that ship neither).
    `fix`: how to remake the report (default: `make parity` with these MODEL/REFERENCES/REPORTS).
    """
    report, model_dir = Path(report), Path(model_dir)
    references = Path(references)
    fix = fix or parity_fix(report, model_dir, references)
    raw, result = _read(report, fix)
    _check_diagnostic(report, result, fix)
    _check_identity(report, result, model_dir, references,
                    Path(tolerances) if tolerances is not None else None, fix)
    if runtime is not None:
        _check_runtime(report, result, runtime, fix)
    _check_verdict(report, result, fix)
    return GatedReport(path=report, raw=raw, result=result)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m orcaport.parity.publishing.gate",
                                 description="Exit 0 only if the parity report allows a publish.")
    ap.add_argument("--model", type=Path, required=True, help="model.safetensors + config.json")
    ap.add_argument("--report", type=Path, default=Path("reports/parity.json"))
    ap.add_argument("--references", type=Path, required=True, help="the folder the report was made from")
    args = ap.parse_args(argv)
    try:
        gated = check_report(args.report, args.model, args.references)
    except (OrcaportError, KeyboardInterrupt) as e:      # GateError: exit 4
        return report_error(None, e)
    print(f"gate: {gated.path} passes for weights {gated.result.weights_sha256}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

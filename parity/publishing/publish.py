"""`make publish`: gate on parity, stage the Hub folder, upload it as one commit.

    python -m orcaport.parity.publishing --model DIR --report REPORTS/parity.json --references DIR
        --repo-id NS/NAME [--dry-run] [--staging DIR] [--card card.json] [--task TEXT]
        [--license ID] [--license-file F] [--orcahello | --not-orcahello]

The staging folder (default staging/NS--NAME) is what the Hub repo will hold, file for file:
model.safetensors, config.json, README.md (the model card: task, labels, license and links from
--card/flags, see parity/publishing/card_config.py), parity.json (the gated report), LICENSE (with
--license-file), the int8 calibration (int8_calibration.{safetensors,json}, when the model folder has
one made for these weights; a stale one is refused) and SHA256SUMS. It holds no code: users run it with the installed orcaport
(`Detector.from_pretrained`). It is built in a temp sibling, loaded back through
`model.hub.resolve_pretrained` + `load_artifact` (hashes checked), and only then renamed into place
(model/fileio.py `replace_folder`), so there is never a half-written staging folder. --dry-run stops there; the gate applies either
way. --references is the folder the report was made from. The token is huggingface_hub's own
(HF_TOKEN, else the login cache) and is never printed; HF_ENDPOINT picks the Hub.

Exit status (model/errors.py): 0 done, 2 bad arguments, 3 an unusable input (card config,
license file), 4 the gate refused, 5 staging failed, 6 the Hub refused or could not be reached.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from huggingface_hub import HfApi, get_token
from huggingface_hub.errors import HFValidationError, LocalTokenNotFoundError
from huggingface_hub.utils import validate_repo_id

from orcaport.model.errors import (ExitCode, InputError, OrcaportError, OutputError, RemoteError, UsageError,
                                   report_error)
from orcaport.model.calibration import FILES as CALIBRATION_FILES, META_FILE as CALIBRATION_META, load_calibration
from orcaport.model.fileio import recover_folder, replace_folder, sha256_file
from orcaport.parity.publishing import card_config
from orcaport.parity.publishing.card_config import CardConfig, check_license, load_card_config
from orcaport.parity.publishing.gate import (CONFIG_FILE, DEFAULT_TOLERANCES, WEIGHTS_FILE,
                                             GatedReport, check_report, is_predict_report, make_command,
                                             parity_fix)
from orcaport.parity.evaluation.card import load_evaluation
from orcaport.parity.publishing.model_card import detect_license, render_card

SUMS, REPORT, LICENSE, CARD = "SHA256SUMS", "parity.json", "LICENSE", "README.md"
EVALUATION = "evaluation.json"          # `make evaluate`'s, with --evaluation: the card's results


class PublishError(OutputError):
    """Staging or upload failed; str() is one line saying what happened and what to do."""


class HubError(PublishError, RemoteError):
    """The Hub refused or could not be reached; nothing was published."""

    exit_code = ExitCode.REMOTE


# ----------------------------------------------------------------------------- staging
def _hash_tree(root: Path) -> dict[str, tuple[str, int]]:
    return {p.relative_to(root).as_posix(): (sha256_file(p), p.stat().st_size)
            for p in sorted(root.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}


def _build(tmp: Path, model_dir: Path, gated: GatedReport, repo_id: str,
           license_file: Path | None, card: CardConfig, fix: str, evaluation: Path | None = None) -> None:
    for name, sha in ((WEIGHTS_FILE, gated.result.weights_sha256), (CONFIG_FILE, gated.result.config_sha256)):
        shutil.copyfile(model_dir / name, tmp / name)
        # Hash the *copy*: the source could have changed since the gate looked at it.
        if sha256_file(tmp / name) != sha:
            raise PublishError(f"{model_dir / name} changed while staging; {fix}")
    (tmp / REPORT).write_bytes(gated.raw)
    if (model_dir / CALIBRATION_META).is_file():      # int8's calibration, checked again on the copy
        for name in CALIBRATION_FILES:
            shutil.copyfile(model_dir / name, tmp / name)
        load_calibration(tmp, gated.result.weights_sha256)
    if license_file is not None:
        shutil.copyfile(license_file, tmp / LICENSE)
    # fixture.json marks orcaport's synthetic-audio test learner: the card must say so.
    fixture = json.loads((model_dir / "fixture.json").read_text()) \
        if (model_dir / "fixture.json").is_file() else None
    license_id = card.license or detect_license(license_file.read_text() if license_file else None)
    doc = None
    if evaluation is not None:       # the card's results come from the staged copy it ships beside
        shutil.copyfile(evaluation, tmp / EVALUATION)
        doc = load_evaluation(tmp / EVALUATION, gated.result.weights_sha256)
    (tmp / CARD).write_text(render_card(repo_id, json.loads((tmp / CONFIG_FILE).read_text()),
                                        gated.result, gated.sha256, _hash_tree(tmp), license_id,
                                        fixture, card, doc))
    (tmp / SUMS).write_text("".join(f"{sha}  {rel}\n" for rel, (sha, _) in _hash_tree(tmp).items()))


def _is_ours(path: Path) -> bool:
    """Only an earlier staging folder (or an empty one) may be replaced: never a random dir."""
    return not any(path.iterdir()) or ((path / SUMS).is_file() and (path / REPORT).is_file())


def _load_back(folder: Path) -> None:
    """What we ship must load the way users load it: verified, through the installed runtime."""
    from orcaport.model.artifact import load_artifact
    from orcaport.model.hub import resolve_pretrained

    load_artifact(resolve_pretrained(folder))


def stage(model_dir: Path, gated: GatedReport, repo_id: str, staging: Path,
          license_file: Path | None = None, card: CardConfig | None = None,
          fix: str = "run `make parity`", evaluation: Path | None = None) -> None:
    """Build, verify by loading, then atomically move the staging folder into place.
    `fix`: the command that remakes the report, for the one error that needs it."""
    recover_folder(staging)     # what a killed earlier run left beside it
    if staging.exists() and (not staging.is_dir() or not _is_ours(staging)):
        raise PublishError(f"{staging} exists and is not a staging folder; pass another --staging")

    def build(tmp: Path) -> None:
        _build(tmp, model_dir, gated, repo_id, license_file, card or CardConfig(), fix, evaluation)
        _load_back(tmp)
    replace_folder(staging, build)


def staged_files(staging: Path) -> list[str]:
    """Exactly what gets uploaded: the files SHA256SUMS lists, plus SHA256SUMS itself. A name that
    would reach outside the staging folder (and upload, say, a token file) is refused."""
    names = [line.split("  ", 1)[1] for line in (staging / SUMS).read_text().splitlines() if line]
    for name in names:
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise PublishError(f"{staging / SUMS} names {name!r}, outside {staging}; stage again")
    return sorted(names + [SUMS])


# ----------------------------------------------------------------------------- upload
def commit_text(repo_id: str, gated: GatedReport, files: list[str]) -> tuple[str, str]:
    d = gated.result
    verdict = "PASSED" if d.passed else "FAILED"
    message = f"Publish {repo_id}: weights sha256 {d.weights_sha256}, parity {verdict}"
    description = "\n".join([
        f"parity: {verdict} (report sha256 {gated.sha256}, profile {d.profile})",
        f"weights sha256: {d.weights_sha256}", f"config sha256: {d.config_sha256}",
        f"references manifest sha256: {d.references_manifest_sha256}",
        f"tolerances: version {d.tolerances.version} sha256 {d.tolerances.sha256}",
        f"files ({len(files)}): {', '.join(files)}"])
    return message, description


def _redact(text: str) -> str:
    token = get_token()
    return text.replace(token, "hf_***") if token else text


def _hub_error(step: str, e: Exception, repo_id: str, endpoint: str, retry: str) -> HubError:
    if isinstance(e, LocalTokenNotFoundError):
        return HubError("no Hugging Face token: set HF_TOKEN or run `hf auth login`")
    status = getattr(getattr(e, "response", None), "status_code", None)
    server = (getattr(e, "server_message", None) or str(e) or type(e).__name__).strip()
    server = _redact(server.splitlines()[0] if server else "")
    if status in (401, 403):
        return HubError(f"the Hub refused the token at {step} (HTTP {status}: {server}); set "
                            f"HF_TOKEN to a token with write access to {repo_id.split('/')[0]} or "
                            "run `hf auth login`; nothing was published")
    if isinstance(status, int) and status >= 500:
        return HubError(f"the Hub failed at {step} (HTTP {status}: {server}); nothing was "
                            f"published (a commit is all-or-nothing); retry {retry} later")
    if status is None:   # no HTTP answer at all: DNS, refused connection, timeout, TLS
        return HubError(f"cannot reach the Hub at {endpoint} during {step} ({type(e).__name__}: "
                            f"{server}); check the network or HF_ENDPOINT; nothing was published")
    return HubError(f"the Hub rejected {step} (HTTP {status}: {server}); nothing was published")


def upload(staging: Path, repo_id: str, gated: GatedReport,
           retry: str = "`make publish`") -> str:
    """create_repo(exist_ok) + ONE commit (upload_folder) making the repo equal to `staging`:
    the staged files added, every other remote file deleted (huggingface_hub never deletes
    .gitattributes). Returns the commit URL."""
    api = HfApi()   # endpoint and token: huggingface_hub's own resolution (HF_ENDPOINT, HF_TOKEN)
    files = staged_files(staging)
    message, description = commit_text(repo_id, gated, files)
    step = "token check"
    try:
        if get_token() is None:
            raise LocalTokenNotFoundError("no token")
        api.whoami()
        step = "create repo"
        api.create_repo(repo_id, repo_type="model", exist_ok=True)
        step = "commit"
        info = api.upload_folder(repo_id=repo_id, folder_path=staging, allow_patterns=files,
                                 delete_patterns="*", commit_message=message,
                                 commit_description=description)
    except Exception as e:  # noqa: BLE001 - HTTP, token and network errors alike: one line each
        raise _hub_error(step, e, repo_id, api.endpoint, retry) from None
    return str(info.commit_url)


# ----------------------------------------------------------------------------- CLI
def _publish_command(args: argparse.Namespace, **extra: str | Path | None) -> str:
    refs = {"MODE": "predict", "PREDICT_REFERENCES": args.references} if is_predict_report(args.report) \
        else {"REFERENCES": args.references}
    variables = {"MODEL": args.model, **refs, "REPORTS": args.report.parent, "REPO_ID": args.repo_id, "CARD": args.card}
    return make_command("publish", **(variables | extra))


def _card(args: argparse.Namespace) -> CardConfig:
    classes = json.loads((args.model / CONFIG_FILE).read_text()).get("classes", []) \
        if (args.model / CONFIG_FILE).is_file() else []
    card = load_card_config(args.card, classes)
    check_license("--license", args.license)
    return card.with_flags(args.task, args.license, args.orcahello, args.title)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m orcaport.parity.publishing", description=__doc__.split("\n")[0],
                                 epilog=f"--card: {card_config.__doc__}",
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True, help="model.safetensors + config.json")
    ap.add_argument("--report", type=Path, default=Path("reports/parity.json"))
    ap.add_argument("--references", type=Path, required=True,
                    help="the references folder the report was made from")
    ap.add_argument("--tolerances", type=Path, default=DEFAULT_TOLERANCES,
                    help="the tolerances the report was made with (a model's own: make envelope TOLERANCES=)")
    ap.add_argument("--repo-id", default="", help="NAMESPACE/NAME on the Hub")
    ap.add_argument("--dry-run", action="store_true", help="gate and stage only; upload nothing")
    ap.add_argument("--staging", type=Path, help="default: staging/NAMESPACE--NAME")
    ap.add_argument("--card", type=Path, help="card config JSON: title, task, description, orcahello, labels, "
                    "license, links, tags, install (parity/publishing/card_config.py)")
    ap.add_argument("--task", help="what the model detects, one sentence (wins over --card)")
    ap.add_argument("--title", help="the card's title (wins over --card)")
    ap.add_argument("--license", help="Hub license id, e.g. mit, apache-2.0 (wins over --card and "
                    "over the one read from --license-file)")
    ap.add_argument("--license-file", type=Path, help="shipped as LICENSE; sets the card license")
    ap.add_argument("--evaluation", type=Path, help="`make evaluate`'s evaluation.json: shipped, and the card's "
                    "results (Hub model-index) for the dataset it names")
    which = ap.add_mutually_exclusive_group()
    which.add_argument("--orcahello", dest="orcahello", action="store_true", default=None,
                       help="the model is OrcaHello (SRKW wording and links in the card)")
    which.add_argument("--not-orcahello", dest="orcahello", action="store_false",
                       help="never the OrcaHello wording, even for the fixture")
    args = ap.parse_args(argv)
    try:
        return _publish(args)
    except (OrcaportError, KeyboardInterrupt) as e:
        return report_error(None, e)


def _publish(args: argparse.Namespace) -> int:
    """main's work; every refusal is an OrcaportError whose class is its exit code."""
    try:
        validate_repo_id(args.repo_id if "/" in args.repo_id else "")
    except HFValidationError:
        raise UsageError(f"--repo-id {args.repo_id!r} is not NAMESPACE/NAME on the Hub; use e.g. "
                         f"{_publish_command(args, REPO_ID='orcasound/orcahello-srkw')}") from None
    if args.license_file is not None and not args.license_file.is_file():
        raise InputError(f"--license-file {args.license_file} does not exist; pass an existing LICENSE file")
    card = _card(args)                                       # CardConfigError: exit 3
    fix = parity_fix(args.report, args.model, args.references)
    gated = check_report(args.report, args.model, args.references, args.tolerances, fix=fix)  # GateError: 4
    if args.evaluation is not None:                          # checked before staging: exit 3
        load_evaluation(args.evaluation, gated.result.weights_sha256)
    if (args.model / CALIBRATION_META).is_file():            # never ship a stale int8 calibration: exit 3
        load_calibration(args.model, gated.result.weights_sha256)
    staging = args.staging or Path("staging") / args.repo_id.replace("/", "--")
    try:
        stage(args.model, gated, args.repo_id, staging, args.license_file, card, fix, args.evaluation)
    except Exception as e:  # noqa: BLE001 - any staging failure leaves no staging behind
        text = str(e).splitlines()[0] if str(e) else ""
        raise OutputError(f"staging failed ({type(e).__name__}: {text})") from None
    print(f"staged {len(staged_files(staging))} files in {staging} "
          f"(weights {gated.result.weights_sha256}, parity PASSED)")
    if args.dry_run:
        print("dry run: nothing uploaded")
        return ExitCode.OK
    url = upload(staging, args.repo_id, gated, _publish_command(args))   # HubError: exit 6
    print(f"published {args.repo_id}: {url}")
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())

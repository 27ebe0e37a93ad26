"""`make publish`: the parity gate, the staging folder, the card (the user's task, labels, license,
links; OrcaHello wording only for OrcaHello), upload (one commit) and `Detector.from_pretrained`
through a fake Hub on 127.0.0.1 (cache, HF_HUB_OFFLINE, revision pinning, weights verified before
use), and that the token never leaks.

Uploads and downloads run the real CLI / loader in a subprocess, because huggingface_hub reads
HF_ENDPOINT, HF_HUB_DISABLE_XET and HF_HUB_OFFLINE once, at import time.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from huggingface_hub import ModelCard

from orcaport.model.detector import Detector
from orcaport.model.errors import ExitCode
from orcaport.model.hub import IntegrityError
from orcaport.parity.publishing import gate, publish
from orcaport.parity.publishing.gate import GateError, check_report
from orcaport.parity.references import load_references
from tests.conftest import CORPUS, FIXTURE, REFS, ROOT, copy_fixture
from tests.fake_hub import FakeHub

REPO = "orcasound/orcahello-srkw-test"
TOKEN = "hf_FAKEtoken123456789abcdefghijklmnopqrstu"
TIMEOUT = 300
DETECT_FILES = ("stereo_44k1_16_10s5.wav", "hires_96k_24_3s2.wav")   # downmix + two resample ratios


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real passing parity.json for the fixture: reports/parity.json when it is current,
    else a fresh parity run (about 30 s) into a temp folder."""
    out = tmp_path_factory.mktemp("report")
    dst = out / "parity.json"
    src = ROOT / "reports" / "parity.json"
    if src.is_file():
        shutil.copyfile(src, dst)   # copy once: other runs may rewrite reports/
        try:
            check_report(dst, FIXTURE, REFS)
            return dst
        except GateError:
            pass
    run = subprocess.run([sys.executable, "-m", "orcaport.parity", "--model", str(FIXTURE), "--references",
                          str(REFS), "--corpus", str(CORPUS), "--reports", str(out)],
                         cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    check_report(dst, FIXTURE, REFS)
    return dst


def _publish_args(report: Path, staging: Path, *extra: str, model: Path = FIXTURE,
                  refs: Path = REFS) -> list[str]:
    return ["--model", str(model), "--report", str(report), "--repo-id", REPO, "--staging",
            str(staging), "--references", str(refs), *extra]


@pytest.fixture(scope="session")
def staged(report: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`make publish DRY_RUN=1` on the fixture, in-process, with a LICENSE."""
    root = tmp_path_factory.mktemp("staged")
    license_file = root / "LICENSE.txt"
    license_file.write_text("MIT License\n\nCopyright (c) 2026 orcaport test\n\nPermission is hereby "
                            "granted, free of charge, to any person obtaining a copy...\n")
    staging = root / "repo"
    assert publish.main(_publish_args(report, staging, "--dry-run", "--license-file",
                                      str(license_file))) == 0
    return staging


def _env(tmp: Path, hub: FakeHub | None, token: str | None = TOKEN, **extra: str) -> dict[str, str]:
    """A subprocess env that can only reach the fake Hub, with its own HF_HOME (no login cache)."""
    env = {k: v for k, v in os.environ.items()
           if "proxy" not in k.lower() and not k.startswith(("HF_", "HUGGING"))}
    env |= {"HF_HOME": str(tmp / "hf_home"), "HF_HUB_DISABLE_XET": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1", "NO_PROXY": "127.0.0.1,localhost", **extra}
    # no PYTHONPATH into the checkout: the card's snippet must import what users install
    env.pop("PYTHONPATH", None)
    if hub is not None:
        env["HF_ENDPOINT"] = hub.endpoint
    if token is not None:
        env["HF_TOKEN"] = token
    return env


def _run_publish(report: Path, tmp: Path, hub: FakeHub,
                 token: str | None = TOKEN) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "orcaport.parity.publishing", *_publish_args(report, tmp / "staging")],
                          cwd=ROOT, env=_env(tmp, hub, token), capture_output=True, text=True,
                          timeout=TIMEOUT)


def _staged_bytes(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _assert_no_token(stdout: str, stderr: str, folder: Path) -> None:
    """Not in the output, not in any file the run left (staging, HF_HOME, anything under tmp)."""
    assert TOKEN not in stdout and TOKEN not in stderr
    for name, data in _staged_bytes(folder).items():
        assert TOKEN.encode() not in data, f"token written into {name}"


def _one_line_error(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, stderr[-2000:]
    return lines[0]


# ----------------------------------------------------------------------------- staging + card
def test_dry_run_stages_hub_folder_with_verified_hashes(staged: Path, report: Path) -> None:
    files = _staged_bytes(staged)
    # Data only: no code ships, so none can be imported from a download.
    assert set(files) == {"README.md", "SHA256SUMS", "LICENSE", "config.json", "model.safetensors",
                          "parity.json"}
    assert files["model.safetensors"] == (FIXTURE / "model.safetensors").read_bytes()
    assert files["config.json"] == (FIXTURE / "config.json").read_bytes()
    assert files["parity.json"] == report.read_bytes()
    sums = dict(reversed(ln.split("  ", 1)) for ln in files["SHA256SUMS"].decode().splitlines())
    assert set(sums) == set(files) - {"SHA256SUMS"}
    for name, digest in sums.items():
        assert hashlib.sha256(files[name]).hexdigest() == digest, name
    assert not list(staged.parent.glob(".repo.*")), "temp siblings left behind"
    assert oct(staged.stat().st_mode & 0o777) == "0o755"


def test_card_front_matter_table_hashes_and_provenance(staged: Path, report: Path) -> None:
    text = (staged / "README.md").read_text()
    card = ModelCard(text)   # huggingface_hub's own parser: the front matter is valid
    assert card.data.license == "mit" and card.data.pipeline_tag == "audio-classification"
    assert card.data.library_name == "pytorch"
    assert {"audio-classification", "bioacoustics", "killer-whale", "orcahello",
            "fastai-port"} <= set(card.data.tags)
    data = json.loads(report.read_text())
    assert "**Parity: PASSED**" in text and data["weights_sha256"] in text
    assert hashlib.sha256(report.read_bytes()).hexdigest() in text
    for row in data["summary"]:   # every summary row is rendered
        assert re.search(rf"\| ✓ \| {row['stage']} \| {row['mode']} \| {row['checks']} \| "
                         rf"{row['failed']} \|", text), row
    config = json.loads((staged / "config.json").read_text())
    for key in ("n_fft", "hop_length", "n_mels", "resample_to", "top_db"):
        assert re.search(rf"\| {key} \| {config['frontend'][key]} \|", text), key
    sums = (staged / "SHA256SUMS").read_text()
    for digest, name in (ln.split("  ", 1) for ln in sums.splitlines()):
        if name != "README.md":
            assert f"| `{name}` |" in text and f"`{digest}`" in text, name
    assert config["provenance"]["source_sha256"] in text
    assert "pip install orcaport" in text and f'Detector.from_pretrained("{REPO}"' in text
    assert f'weights_sha256="{data["weights_sha256"]}"' in text
    assert "sys.path" not in text and "orcaport_runtime" not in text
    # the fixture is OrcaHello-shaped: OrcaHello wording, plus the note that it is a test fixture
    assert "Southern Resident killer whale" in text and "*test fixture*" in text


def test_from_pretrained_on_a_staged_folder_gives_from_folders_detections(staged: Path) -> None:
    hub, local = Detector.from_pretrained(staged), Detector.from_folder(FIXTURE)
    assert hub.artifact.root == staged
    for name in DETECT_FILES:
        a, b = hub.detect(CORPUS / name), local.detect(CORPUS / name)
        np.testing.assert_array_equal(a.clip_confidence, b.clip_confidence)
        np.testing.assert_array_equal(a.confidence, b.confidence)
        assert (a.global_prediction, a.global_confidence) == (b.global_prediction, b.global_confidence)


def test_from_pretrained_refuses_corrupted_or_unpinned_weights(staged: Path, tmp_path: Path) -> None:
    bad = tmp_path / "copy"
    shutil.copytree(staged, bad)
    (bad / "config.json").write_text((bad / "config.json").read_text() + " ")
    with pytest.raises(IntegrityError, match="config.json does not match SHA256SUMS"):
        Detector.from_pretrained(bad)
    with pytest.raises(IntegrityError, match="not the pinned"):
        Detector.from_pretrained(staged, weights_sha256="0" * 64)
    (bad / "config.json").unlink()
    with pytest.raises(IntegrityError, match="has no config.json"):
        Detector.from_pretrained(bad)


def test_staging_is_atomic_and_never_clobbers_other_folders(staged: Path, report: Path,
                                                            tmp_path: Path, monkeypatch) -> None:
    staging = tmp_path / "repo"
    shutil.copytree(staged, staging)
    before = _staged_bytes(staging)
    gated = check_report(report, FIXTURE, REFS)

    def boom(*a: Any, **k: Any) -> str:
        raise RuntimeError("disk full while rendering")
    monkeypatch.setattr(publish, "render_card", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        publish.stage(FIXTURE, gated, REPO, staging)
    assert _staged_bytes(staging) == before   # the previous staging folder is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo"]   # no temp siblings
    monkeypatch.undo()
    (staging / "leftover.txt").write_text("from an older staging")
    publish.stage(FIXTURE, gated, REPO, staging)   # a successful restage replaces it whole
    after = _staged_bytes(staging)
    assert "leftover.txt" not in after and "LICENSE" not in after   # nothing of the old one
    assert set(publish.staged_files(staging)) == set(after)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo"]
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(publish.PublishError, match="not a staging folder"):
        publish.stage(FIXTURE, gated, REPO, precious)
    assert (precious / "notes.txt").read_text() == "keep me"


# ----------------------------------------------------------------------------- the gate
def _tampered_report(report: Path, tmp_path: Path, edit: Any) -> Path:
    data = json.loads(report.read_text())
    edit(data)
    path = tmp_path / "parity.json"
    path.write_text(json.dumps(data))
    return path


def _fail_mel(d: dict[str, Any]) -> None:
    d["passed"] = False
    d["first_failure"] = {"file": "stereo_44k1_16_10s5.wav", "mode": "isolated", "stage": "mel",
                          "clip": 3, "layer": None}


def _claim_pass_with_failed_check(d: dict[str, Any]) -> None:
    d["files"][0]["checks"][0]["passed"] = False


@pytest.mark.parametrize("edit, expect", [
    (_fail_mel, "FAILED parity run: first failing stage mel (isolated, file stereo_44k1_16_10s5.wav, "
                "clip 3)"),
    (_claim_pass_with_failed_check, "claims to pass but holds a failing stage"),
    (lambda d: d.update(schema_version=99), "schema_version 99"),
    (lambda d: d.update(weights_check="diagnostic: other weights"), "diagnostic run"),
    (lambda d: d.pop("summary"), "missing field(s) summary"),
    (lambda d: d.update(files=[]), "holds no checks"),
    (lambda d: d.update(runtime_files={"audio.py": "0" * 64}), "other runtime code (audio.py)"),
])
def test_gate_refuses_bad_reports(report: Path, tmp_path: Path, edit: Any, expect: str) -> None:
    bad = _tampered_report(report, tmp_path, edit)
    with pytest.raises(GateError) as e:
        check_report(bad, FIXTURE, REFS)
    msg = str(e.value)
    assert expect in msg and "\n" not in msg, msg
    # the fix names the command that remakes *this* report, with the same variables
    assert f"`make parity MODEL={FIXTURE} REFERENCES={REFS} REPORTS={bad.parent}`" in msg, msg


def test_gate_refuses_a_report_made_with_other_runtime_code(report: Path, tmp_path: Path) -> None:
    runtime = tmp_path / "model"
    shutil.copytree(ROOT / "model", runtime, ignore=shutil.ignore_patterns("__pycache__"))
    recorded = {"spectrogram.py": gate.sha256_file(runtime / "spectrogram.py")}
    fresh = _tampered_report(report, tmp_path, lambda d: d.update(runtime_files=recorded))
    check_report(fresh, FIXTURE, REFS, runtime=runtime)   # unchanged: fine
    (runtime / "spectrogram.py").write_text((runtime / "spectrogram.py").read_text() + "# edit\n")
    with pytest.raises(GateError, match=r"other runtime code \(spectrogram.py\).*stale; run `make parity MODEL="):
        check_report(fresh, FIXTURE, REFS, runtime=runtime)


def test_gate_refuses_missing_and_unreadable_reports(tmp_path: Path) -> None:
    with pytest.raises(GateError, match=r"does not exist.*run `make parity MODEL="):
        check_report(tmp_path / "nope.json", FIXTURE, REFS)
    (tmp_path / "garbage.json").write_bytes(b"\x00{not json")
    with pytest.raises(GateError, match=r"unreadable.*run `make parity MODEL="):
        check_report(tmp_path / "garbage.json", FIXTURE, REFS)


def test_gate_refuses_weights_changed_after_the_report(report: Path, tmp_path: Path) -> None:
    model = copy_fixture(tmp_path)
    check_report(report, model, REFS)   # an exact copy is fine
    blob = bytearray((model / "model.safetensors").read_bytes())
    blob[-1] ^= 0x01                     # one bit of one weight
    (model / "model.safetensors").write_bytes(bytes(blob))
    with pytest.raises(GateError, match=rf"other weights .*stale; run `make parity MODEL={model} "):
        check_report(report, model, REFS)
    (model / "model.safetensors").unlink()
    with pytest.raises(GateError, match="missing"):
        check_report(report, model, REFS)


def test_gate_refuses_changed_config_and_references(report: Path, tmp_path: Path) -> None:
    model = copy_fixture(tmp_path)
    (model / "config.json").write_text((model / "config.json").read_text().replace("0.5", "0.6"))
    with pytest.raises(GateError, match="other config"):
        check_report(report, model, REFS)
    refs = tmp_path / "refs"
    refs.mkdir()
    manifest = json.loads((REFS / "manifest.json").read_text())
    manifest["command"] = "re-recorded with something else"
    (refs / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(GateError, match=r"other references .*pass the references folder the report "
                                         rf"was made from as REFERENCES=.*REFERENCES={refs} "):
        check_report(report, FIXTURE, refs)


def test_cli_gate_applies_to_dry_run(report: Path, tmp_path: Path, capsys) -> None:
    model = copy_fixture(tmp_path)
    (model / "model.safetensors").write_bytes(b"\x00" * 64)
    staging = tmp_path / "staging"
    for rep, mdl, expect in ((tmp_path / "missing.json", FIXTURE, "does not exist"),
                             (report, model, "other weights")):
        assert publish.main(_publish_args(rep, staging, "--dry-run", model=mdl)) == ExitCode.REFUSED
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: refusing to publish") and expect in err and "\n" not in err
        assert not staging.exists()
    assert publish.main(["--model", str(FIXTURE), "--references", str(REFS), "--repo-id", "",
                         "--dry-run"]) == ExitCode.USAGE
    assert "--repo-id" in capsys.readouterr().err


# ----------------------------------------------------------------------------- upload (fake Hub)
def test_upload_sends_one_commit_with_the_staged_files(report: Path, tmp_path: Path) -> None:
    with FakeHub() as hub:
        hub.seed(REPO, {".gitattributes": b"*.bin lfs\n", "stale.txt": b"from an older publish"})
        run = _run_publish(report, tmp_path, hub)
    assert run.returncode == 0, run.stderr[-3000:]
    staging = tmp_path / "staging"
    assert len(hub.commits) == 1
    commit = hub.commits[0]
    weights = gate.sha256_file(FIXTURE / "model.safetensors")
    assert commit.repo_id == REPO and weights in commit.summary and "parity PASSED" in commit.summary
    assert hashlib.sha256(report.read_bytes()).hexdigest() in commit.description
    assert commit.files == _staged_bytes(staging)             # exactly the staged files, byte for byte
    assert commit.lfs_paths == {"model.safetensors"}           # the weights took the LFS path
    assert commit.deleted == ["stale.txt"]                     # the repo now equals the staging folder
    assert set(hub.repos[REPO].files) == set(commit.files) | {".gitattributes"}
    # huggingface_hub validated the card's YAML with the Hub (upload_folder may ask more than once)
    assert hub.validated_yaml and set(hub.validated_yaml) == {commit.files["README.md"].decode()}
    names = [f"{m} {p}" for m, p, _s, _a in hub.requests]
    for pattern in ("GET /api/whoami-v2", "POST /api/repos/create", r"preupload/main",
                    r"info/lfs/objects/batch", r"PUT /__lfs/", r"commit/main"):
        assert any(re.search(pattern, n) for n in names), pattern
    assert all(a for m, p, _s, a in hub.requests if not p.startswith("/__lfs/") or m == "POST")
    assert f"published {REPO}" in run.stdout
    _assert_no_token(run.stdout, run.stderr, tmp_path)


def test_server_error_gives_clear_message_and_publishes_nothing(report: Path, tmp_path: Path) -> None:
    with FakeHub() as hub:
        hub.fail["commit"] = 500
        run = _run_publish(report, tmp_path, hub)
    assert run.returncode == ExitCode.REMOTE
    err = _one_line_error(run.stderr)
    assert "HTTP 500" in err and "at commit" in err and "nothing was published" in err, err
    assert hub.commits == [] and set(hub.repos[REPO].files) == {".gitattributes"}
    _assert_no_token(run.stdout, run.stderr, tmp_path)


def test_unreachable_hub_gives_clear_message(report: Path, tmp_path: Path) -> None:
    hub = FakeHub().start()
    hub.stop()   # a port that was just ours and now refuses connections
    run = _run_publish(report, tmp_path, hub)
    assert run.returncode == ExitCode.REMOTE
    err = _one_line_error(run.stderr)
    assert "cannot reach the Hub at http://127.0.0.1:" in err and "nothing was published" in err, err


def test_refused_token_gives_clear_message(report: Path, tmp_path: Path) -> None:
    with FakeHub(token="hf_theOnlyTokenTheServerAccepts") as hub:
        run = _run_publish(report, tmp_path, hub)
    assert run.returncode == ExitCode.REMOTE
    err = _one_line_error(run.stderr)
    assert "refused the token" in err and "HTTP 401" in err and "HF_TOKEN" in err, err
    assert hub.repos == {} and hub.commits == []
    _assert_no_token(run.stdout, run.stderr, tmp_path)


def test_missing_token_is_named_before_any_request(report: Path, tmp_path: Path) -> None:
    with FakeHub() as hub:
        run = _run_publish(report, tmp_path, hub, None)
    assert run.returncode == ExitCode.REMOTE
    assert "no Hugging Face token" in _one_line_error(run.stderr)
    assert hub.requests == []


# ----------------------------------------------------------------------------- download (fake Hub)
LOAD = """
import json, sys
from orcaport.model.detector import Detector
repo, audio, revision = sys.argv[1], sys.argv[2], sys.argv[3] or None
try:
    det = Detector.from_pretrained(repo, revision=revision)
except ValueError as e:
    print("RESULT", json.dumps({"error": f"{type(e).__name__}: {e}"}))
    raise SystemExit(0)
d = det.detect(audio)
if len(sys.argv) > 4:   # the model card's usage snippet, verbatim but for the audio path
    exec(sys.argv[4].replace('"hydrophone.wav"', repr(audio)), {})
print("RESULT", json.dumps({"weights": det.artifact.weights_sha256, "folder": str(det.artifact.root),
                            "confidence": d.confidence.tolist(), "global": d.global_prediction}))
"""


def _load(tmp: Path, hub: FakeHub | None, *snippet: str, revision: str = "",
          **env: str) -> tuple[str, dict[str, Any]]:
    run = subprocess.run([sys.executable, "-c", LOAD, REPO, str(CORPUS / DETECT_FILES[1]), revision,
                          *snippet], cwd=tmp, env=_env(tmp, hub, None, **env), capture_output=True,
                         text=True, timeout=TIMEOUT)
    assert run.returncode == 0, run.stderr[-3000:]
    printed, result = run.stdout.split("RESULT ", 1)
    return printed, json.loads(result)


def test_from_pretrained_through_the_hub_cache_then_offline(staged: Path, tmp_path: Path) -> None:
    local = Detector.from_folder(FIXTURE).detect(CORPUS / DETECT_FILES[1])
    with FakeHub() as hub:
        commit = hub.seed(REPO, _staged_bytes(staged))
        _, online = _load(tmp_path, hub)
        paths = [p for _m, p, _s, _a in hub.requests if "/resolve/" in p]
    assert online["weights"] == gate.sha256_file(FIXTURE / "model.safetensors")
    assert commit in online["folder"] and str(tmp_path / "hf_home") in online["folder"]
    # only data is fetched: no README/LICENSE, and there is no code in the repo to fetch
    assert {p.rsplit("/", 1)[1] for p in paths} == {"config.json", "model.safetensors",
                                                    "SHA256SUMS", "parity.json"}
    assert online["confidence"] == local.confidence.tolist() and online["global"] == local.global_prediction
    # The server is gone: HF_HUB_OFFLINE=1 must serve the same snapshot from the cache, to
    # from_pretrained and to the card's own usage snippet alike.
    snippet = re.search(r"```python\n(.*?)```", (staged / "README.md").read_text(), re.S)[1]
    printed, offline = _load(tmp_path, None, snippet, HF_HUB_OFFLINE="1",
                             HF_ENDPOINT="http://127.0.0.1:9")
    assert offline == online
    prediction, confidence = printed.splitlines()[0].split()   # print(global_prediction, ..._confidence)
    assert int(prediction) == local.global_prediction
    assert float(confidence) == pytest.approx(local.global_confidence)
    # offline, a revision never downloaded is a clear one-line error, not a traceback
    _, missing = _load(tmp_path, None, revision="0" * 40, HF_HUB_OFFLINE="1")
    assert "not in the Hugging Face cache" in missing["error"] and "hf download" in missing["error"]


def test_revision_pins_the_repo_and_tampered_weights_are_refused_before_use(staged: Path,
                                                                           tmp_path: Path) -> None:
    files = _staged_bytes(staged)
    blob = bytearray(files["model.safetensors"])
    blob[-1] ^= 0x01                                        # one bit of one weight, on the Hub
    with FakeHub() as hub:
        good = hub.seed(REPO, files)
        hub.seed(REPO, {**files, "model.safetensors": bytes(blob)}, summary="tampered")
        _, latest = _load(tmp_path, hub)
        _, pinned = _load(tmp_path, hub, revision=good)
    assert latest["error"].startswith("IntegrityError") and "does not match SHA256SUMS" in latest["error"]
    assert good in pinned["folder"] and pinned["weights"] == gate.sha256_file(FIXTURE / "model.safetensors")


# ----------------------------------------------------------------------------- card config
def test_card_follows_the_users_model_not_orcahello(report: Path, tmp_path: Path) -> None:
    card = tmp_path / "card.json"
    card.write_text(json.dumps({"task": "Detects humpback whale song in glider recordings",
                                "labels": {"positive": "humpback song"}, "license": "apache-2.0",
                                "links": {"code": "https://example.org/me/orcaport"},
                                "tags": ["humpback"], "title": "Humpback song detector",
                                "description": "Trained on 2019-2021 glider deployments.\n\n*Not* for ship noise."}))
    staging = tmp_path / "s"
    mine = copy_fixture(tmp_path)   # the same weights, without fixture.json: a user's model
    assert publish.main(_publish_args(report, staging, "--dry-run", "--card", str(card), model=mine)) == 0
    text = (staging / "README.md").read_text()
    data = ModelCard(text).data
    assert data.license == "apache-2.0" and "humpback" in data.tags and "orcahello" not in data.tags
    assert "# Humpback song detector" in text and "Detects humpback whale song" in text
    assert "`positive` (humpback song)" in text and "https://example.org/me/orcaport" in text
    assert "## Description\n\nTrained on 2019-2021 glider deployments.\n\n*Not* for ship noise." in text
    assert 'pip install "orcaport @ git+https://example.org/me/orcaport"' in text
    assert "OrcaHello" not in text and "Southern Resident" not in text
    # flags win over the file; --not-orcahello drops the wording even for the fixture
    assert publish.main(_publish_args(report, staging, "--dry-run", "--not-orcahello")) == 0
    text = (staging / "README.md").read_text()
    assert "Southern Resident" not in text and "was not described by the publisher" in text


@pytest.mark.parametrize("content, expect", [
    ('{"task": 3}', "field 'task' must be a JSON str"),
    ('{"description": ["x"]}', "field 'description' must be a JSON str"),
    ('{"summary": "x"}', "unknown field 'summary' (known: title, task, description,"),
    ('{"colour": "red"}', "unknown field 'colour'"),
    ('{"labels": {"whale": "x"}}', "labels names 'whale', not one of the model's classes"),
    ('{"license": "MIT License"}', "not a Hub license id"),
    ('{"links": {"code": "file:///etc/passwd"}}', "every link must be an http(s) URL"),
    ("{not json", "not readable JSON"),
])
def test_bad_card_config_is_one_line_and_stages_nothing(report: Path, tmp_path: Path, capsys,
                                                        content: str, expect: str) -> None:
    card = tmp_path / "card.json"
    card.write_text(content)
    staging = tmp_path / "s"
    assert publish.main(_publish_args(report, staging, "--dry-run", "--card", str(card))) == ExitCode.BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {card}") and expect in err and "\n" not in err, err
    assert not staging.exists()


def test_publish_takes_the_references_the_report_was_made_from(report: Path, tmp_path: Path,
                                                               capsys) -> None:
    """A user's report made from their own references: refused against the fixture's folder with
    the commands that fix it, accepted with --references (REFERENCES=)."""
    refs = tmp_path / "my_refs"
    shutil.copytree(REFS, refs)
    manifest = json.loads((refs / "manifest.json").read_text())
    manifest["command"] = "recorded on my own recordings"
    (refs / "manifest.json").write_text(json.dumps(manifest))
    mine = _tampered_report(report, tmp_path, lambda d: d.update(
        references_manifest_sha256=gate.sha256_file(refs / "manifest.json")))
    staging = tmp_path / "s"
    args = ["--model", str(FIXTURE), "--report", str(mine), "--repo-id", REPO, "--staging",
            str(staging), "--dry-run"]
    assert publish.main(args + ["--references", str(REFS)]) == ExitCode.REFUSED
    err = capsys.readouterr().err.strip()
    assert "other references" in err and "as REFERENCES= (--references)" in err, err
    assert f"`make parity MODEL={FIXTURE} REFERENCES={REFS} REPORTS={tmp_path}`" in err
    assert "\n" not in err and not staging.exists()
    assert publish.main(args + ["--references", str(refs)]) == 0
    assert (staging / "parity.json").read_bytes() == mine.read_bytes()

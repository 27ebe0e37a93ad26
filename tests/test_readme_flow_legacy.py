"""The README's own-model block, run verbatim in a fresh clone: the README cannot drift.

The block under "## Your own model and your own recordings" is extracted and run line by line in a
`git clone` of this checkout, only its placeholders filled in (the fastai_audio spec the checkout's
legacy env was built from, the pickle's sha256, a repo id; optional `[...]` arguments kept or dropped
as listed below). Its first line builds both envs (that needs the package index); every later line
runs with the network blocked (`unshare -n`). The user's side is a ResNet50 learner with classes
ambient/boat/whale and a folder mixing formats, subfolders, a WAV and an MP3 of the same stem and a
too-short file (tests/legacy/own_model.py). Legacy env only (it trains the learner); slow: it builds
both envs in the clone.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import LEGACY_PYTHON, ROOT, run_legacy

pytestmark = pytest.mark.legacy
HEADING = "## Your own model and your own recordings"
TASK = "Detects humpback whale song in Gulf of Maine glider recordings."
KEEP_OPTIONAL = {"POSITIVE", "BUDGET_MB", "VARIANTS"}     # `[X=...]` kept; any other optional dropped
NOISE = ("Preprocessing", "Downmixing", "UserWarning", "pin_memory", "Resampling")   # legacy's chatter


def readme_block() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index(HEADING):]
    start = section.index("```bash\n") + len("```bash\n")
    return [line for line in section[start:section.index("```", start)].splitlines() if line.strip()]


def fill(line: str, values: dict[str, str]) -> str:
    def optional(m: re.Match[str]) -> str:
        return m.group(1) if m.group(1).split("=")[0] in KEEP_OPTIONAL else ""
    line = re.sub(r"\[([A-Z_]+=[^\]]*)\]", optional, line)
    for placeholder, value in values.items():
        line = line.replace(placeholder, value)
    assert "<" not in line.split("#")[0], f"unfilled placeholder in README line: {line}"
    return line


def remembered_spec() -> str:
    remembered = ROOT / ".venvs" / "legacy" / ".spec"
    if remembered.is_file():
        return remembered.read_text().strip()
    local = ROOT / "envs" / "local.mk"
    if local.is_file():
        m = re.search(r"^FASTAI_AUDIO_SPEC\s*[:?]?=\s*(\S+)", local.read_text(), re.M)
        if m:
            return m.group(1)
    pytest.skip("the checkout's legacy env has no remembered FASTAI_AUDIO_SPEC to build the clone's from")


def env_identity(clone: Path) -> tuple[int, int, str]:
    link = clone / ".venvs" / "legacy"
    return link.lstat().st_ino, link.resolve().stat().st_ino, (link / ".stamp-env").read_text()


def offline(command: str) -> list[str]:
    if shutil.which("unshare") and os.geteuid() == 0 and \
            subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0:
        return ["unshare", "-n", "bash", "-euo", "pipefail", "-c", command]
    pytest.skip("the network cannot be blocked here (needs `unshare -n` as root)")


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Any:
    if not LEGACY_PYTHON.exists():
        pytest.skip(f"no legacy env: {LEGACY_PYTHON} missing (run `make env-legacy`)")
    spec = remembered_spec()
    base = tmp_path_factory.mktemp("readme_flow")
    clone = base / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    made = run_legacy(["tests/legacy/own_model.py", str(base / "user")], timeout=1800)
    shutil.move(str(base / "user" / "model"), clone / "my_model")
    shutil.move(str(base / "user" / "recordings"), clone / "my_recordings")
    (clone / "card.json").write_text(json.dumps({
        "title": "Glider humpback detector", "task": TASK, "orcahello": False, "license": "apache-2.0",
        "labels": {"whale": "humpback song", "ambient": "background", "boat": "vessel noise"}}))
    values = {"/path/to/fastai_audio-0.1": spec, "<sha256 you trust>": made["sha256"],
              "org/name": "someone/glider-humpback"}
    lines = [fill(line, values) for line in readme_block()]
    assert lines[0].startswith("make envs ") and lines[1].startswith('V="'), lines[:2]
    environ = {k: v for k, v in os.environ.items() if k != "FASTAI_AUDIO_SPEC"}
    environ["CI"] = "true"
    steps: dict[str, subprocess.CompletedProcess[str]] = {}
    identities: dict[str, tuple[int, int, str]] = {}
    report_hashes: dict[str, str] = {}
    try:
        steps["envs"] = subprocess.run(["bash", "-euo", "pipefail", "-c", lines[0]], cwd=clone, env=environ,
                                       capture_output=True, text=True, timeout=3600)
        assert steps["envs"].returncode == 0, steps["envs"].stderr[-3000:]
        identities["envs"] = env_identity(clone)
        for line in lines[2:]:
            target = line.split()[1]
            steps[target] = subprocess.run(offline(f"{lines[1]}\n{line}"), cwd=clone, env=environ,
                                           capture_output=True, text=True, timeout=3600)
            identities[target] = env_identity(clone)
            parity_json = clone / "my_reports" / "parity.json"
            if parity_json.exists():
                report_hashes[target] = hashlib.sha256(parity_json.read_bytes()).hexdigest()
            if steps[target].returncode != 0:
                break
        # an offline rebuild from an unreachable spec: refused, the env as it was
        steps["offline-rebuild"] = subprocess.run(
            offline("make env-legacy FASTAI_AUDIO_SPEC=git+https://github.com/fastaudio/fastai_audio@0.1"),
            cwd=clone, env=environ, capture_output=True, text=True, timeout=600)
        identities["offline-rebuild"] = env_identity(clone)
        yield {"clone": clone, "made": made, "steps": steps, "identities": identities,
               "report_hashes": report_hashes, "lines": lines}
    finally:
        shutil.rmtree(clone / ".venvs", ignore_errors=True)     # two envs: gigabytes


def test_every_line_of_the_block_succeeds_offline(flow: Any) -> None:
    targets = [line.split()[1] for line in flow["lines"][2:]]
    assert targets == ["convert", "references", "envelope", "parity", "verify", "publish"], targets
    for name in targets:
        run = flow["steps"].get(name)
        assert run is not None and run.returncode == 0, (name, run and run.stdout[-2000:], run and run.stderr[-2000:])


def test_the_legacy_env_is_never_rebuilt_or_lost(flow: Any) -> None:
    built = flow["identities"]["envs"]
    for step, identity in flow["identities"].items():
        assert identity == built, f"{step} changed .venvs/legacy (inode or stamp)"
    refused = flow["steps"]["offline-rebuild"]
    assert refused.returncode != 0 and "FASTAI_AUDIO_SPEC" in refused.stderr, refused.stderr[-2000:]
    assert ".venvs/legacy is unchanged" in refused.stderr


def test_trust_is_given_once(flow: Any) -> None:
    record = (flow["clone"] / "my_model" / "model.pkl.sha256").read_text().splitlines()
    assert record[0] == f"{flow['made']['sha256']}  model.pkl" and "given by the user" in record[1]
    for name in ("references", "envelope", "verify"):
        assert "SHA256=" not in flow["lines"][[l.split()[1] for l in flow["lines"]].index(name)]
        assert "no expected sha256" not in flow["steps"][name].stderr


def test_conversion_names_the_users_classes(flow: Any) -> None:
    cfg = json.loads((flow["clone"] / "my_model" / "config.json").read_text())
    assert cfg["classes"] == ["ambient", "boat", "whale"] and cfg["positive_index"] == 2
    assert cfg["architecture"]["body"] == "resnet50"


def test_references_keep_same_stem_files_apart_and_convert_non_wav(flow: Any) -> None:
    m = json.loads((flow["clone"] / "my_refs" / "manifest.json").read_text())
    assert [e["name"] for e in m["audio"]] == flow["made"]["recordings"]
    by_name = {f["name"]: f for f in m["files"]}
    assert by_name["too_short_1s5.wav"]["error"]["type"] == "KeyError"
    tensor_files = [f["tensors"]["file"] for f in m["files"] if "tensors" in f]
    assert len(set(tensor_files)) == len(tensor_files)
    for ok in ("site_a/field_32k_mono16.wav", "site_a/field_32k_mono16.mp3", "site_a/hires_96k_stereo24.wav",
               "site_b/speechband_22k05.wav", "site_b/float_44k1.wav", "site_b/archive_48k.flac"):
        f = by_name[ok]
        assert "tensors" in f and f["clips"] >= 1, ok
        assert {0, f["clips"] - 1} <= set(f["full_clips"])
    converted = {e["name"]: e for e in m["audio"] if e.get("wav_sha256")}
    assert set(converted) == {"site_a/field_32k_mono16.mp3", "site_b/archive_48k.flac"}
    assert all(e["wav_sha256"] != e["sha256"] for e in converted.values())


def test_legacy_chatter_goes_to_a_log_not_the_terminal(flow: Any) -> None:
    for name in ("references", "envelope", "verify"):
        run = flow["steps"][name]
        terminal = run.stdout + run.stderr
        assert not [n for n in NOISE if n in terminal], (name, terminal[-3000:])
        assert ".log" in terminal, f"{name} does not say where legacy's log is"


def test_parity_passes_and_verify_keeps_to_its_own_report(flow: Any) -> None:
    clone = flow["clone"]
    report = json.loads((clone / "my_reports" / "parity.json").read_text())
    assert report["passed"] and report["criteria"]["regime"] == "same_machine"
    own = json.loads((clone / "my_tolerances.json").read_text())
    assert report["tolerances"]["envelope_sha256"] == own["envelope_sha256"]
    status = {f["name"]: f["status"] for f in report["files"]}
    assert status["too_short_1s5.wav"] == "expected-error"
    assert sum(s == "ok" for s in status.values()) == len(status) - 1
    assert flow["report_hashes"]["verify"] == flow["report_hashes"]["parity"], "verify overwrote REPORTS"
    verified = json.loads((clone / "build" / "verify" / "reports" / "parity.json").read_text())
    assert verified["passed"]
    assert "build/verify/reports" in flow["steps"]["verify"].stdout


def test_publish_dry_run_card_names_the_users_task(flow: Any) -> None:
    card = (flow["clone"] / "staging" / "someone--glider-humpback" / "README.md").read_text()
    assert TASK.rstrip(".") in card and "Southern Resident" not in card
    assert "orcahello" not in card.split("---")[1].lower()

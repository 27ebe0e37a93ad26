"""A user's own model and recordings, end to end, through the make targets the README shows:
convert a ResNet50 learner with three classes and a named detection class, record references on a
folder of mixed real formats, replay them, stage a publish dry run whose card names the user's task
(legacy env; skipped with a reason without one)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, legacy_interpreter, run_legacy

pytestmark = pytest.mark.legacy
TASK = "Detects humpback whale song in Gulf of Maine glider recordings."


def make(target: str, **variables: str) -> subprocess.CompletedProcess[str]:
    args = ["make", "--no-print-directory", target] + [f"{k}={v}" for k, v in variables.items()]
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=1800,
                          env={**os.environ, "CI": "true"})


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    legacy_interpreter()                                   # skip without the legacy env
    base = tmp_path_factory.mktemp("own")
    made = run_legacy(["tests/legacy/own_model.py", str(base)], timeout=1800)
    card = base / "card.json"
    card.write_text(json.dumps({"title": "Glider humpback detector", "task": TASK, "orcahello": False,
                                "labels": {"whale": "humpback song", "ambient": "background", "boat": "vessel noise"},
                                "license": "apache-2.0"}))
    v = {"MODEL": str(base / "model"), "AUDIO": str(base / "recordings"),
         "REFERENCES": str(base / "references"), "REPORTS": str(base / "reports"),
         "TOLERANCES": str(base / "tolerances.json")}
    steps = {"convert": make("convert", MODEL=v["MODEL"], POSITIVE="whale"),
             "references": make("references", **v),
             # the model's own envelope: a ResNet50 is not the fixture's ResNet18 (two variants: time)
             "envelope": make("envelope", **v, ENVELOPE=str(base / "envelope.json"), VARIANTS="threads-2,mkl-avx2"),
             "parity": make("parity", **v),
             "publish": make("publish", **v, CARD=str(card), REPO_ID="someone/glider-humpback", DRY_RUN="1")}
    return {"base": base, "made": made, "steps": steps, "vars": v}


def test_every_make_step_succeeds(flow: dict[str, Any]) -> None:
    for name, run in flow["steps"].items():
        assert run.returncode == 0, (name, run.stdout[-2000:], run.stderr[-2000:])


def test_conversion_names_the_users_classes(flow: dict[str, Any]) -> None:
    cfg = json.loads((flow["base"] / "model" / "config.json").read_text())
    assert cfg["classes"] == ["ambient", "boat", "whale"] and cfg["positive_index"] == 2
    assert cfg["architecture"]["body"] == "resnet50"


def test_references_cover_the_folder_recursively_with_legacy_errors_recorded(flow: dict[str, Any]) -> None:
    m = json.loads((flow["base"] / "references" / "manifest.json").read_text())
    names = [e["name"] for e in m["audio"]]
    assert names == sorted(flow["made"]["recordings"])
    by_name = {f["name"]: f for f in m["files"]}
    assert by_name["too_short_1s5.wav"]["error"]["type"] == "KeyError"
    assert "error" in by_name["site_b/archive_48k.flac"]          # pydub's from_wav cannot read FLAC
    for ok in ("site_a/field_32k_mono16.wav", "site_a/hires_96k_stereo24.wav",
               "site_b/speechband_22k05.wav", "site_b/float_44k1.wav"):
        f = by_name[ok]
        assert "tensors" in f and f["clips"] >= 1, ok
        assert {0, f["clips"] - 1} <= set(f["full_clips"])      # first and last, with the sampled ones
    assert m["machine"]["probed"] and m["sampling"]["near_threshold"] >= 1


def test_parity_replays_them_under_same_machine_criteria(flow: dict[str, Any]) -> None:
    report = json.loads((flow["base"] / "reports" / "parity.json").read_text())
    assert report["passed"], report["first_failure"]
    assert report["criteria"]["regime"] == "same_machine"
    own = json.loads((flow["base"] / "tolerances.json").read_text())
    assert report["tolerances"]["envelope_sha256"] == own["envelope_sha256"]     # the model's own
    envelope = json.loads((flow["base"] / "envelope.json").read_text())
    assert {c["name"] for c in envelope["comparisons"]} >= {"threads-2 vs baseline", "clean vs baseline",
                                                           "detector vs baseline"}
    status = {f["name"]: f["status"] for f in report["files"]}
    assert status["too_short_1s5.wav"] == "expected-error"
    assert sum(s == "ok" for s in status.values()) == 4
    assert "nearest second" in flow["steps"]["parity"].stdout


def test_publish_dry_run_card_names_the_users_task(flow: dict[str, Any]) -> None:
    staged = [p for p in flow["base"].rglob("README.md") if "staging" in str(p)] + \
        list((ROOT / "staging").glob("someone--glider-humpback/README.md"))
    assert staged, flow["steps"]["publish"].stdout[-2000:]
    card = staged[0].read_text()
    assert TASK.rstrip(".") in card and "Southern Resident" not in card
    assert "orcahello" not in card.split("---")[1].lower()          # the YAML: no OrcaHello tags

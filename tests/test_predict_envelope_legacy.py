"""`make predict-envelope` (legacy env): fastai_audio's predict recorded again under kernel-path
variants, forked from the preloaded interpreter, compared stage by stage; `derive` turns it into a
predict-mode tolerances file whose option stage has its own entry, and `make predict-parity` under it
passes, judging that stage by it. The learner is a zoo option learner built as `make zoo` builds it
(standardize: an option stage whose figure is not 0). Slow (a learner is trained); skipped without
the legacy env."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import legacy_interpreter
from tests.paths import ROOT

pytestmark = pytest.mark.legacy
ENTRY = "opt_standardize"
VARIANTS = "aten-default,mkl-cbwr-compatible,threads-2"


def make(target: str, home: Path, **variables: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HOME": str(home)}
    return subprocess.run(["make", "--no-print-directory", target, *(f"{k}={v}" for k, v in variables.items())],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("predict-envelope")
    (root / "home").mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(root / "home")}
    done = subprocess.run([legacy_interpreter(), "-m", "convert.zoo", "--out", str(root / "zoo"), "--work",
                           str(root / "w"), "--only", ENTRY], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    return root


def test_predict_envelope_derives_own_option_entries_and_predict_parity_applies_them(work: Path) -> None:
    v = dict(MODEL=str(work / "w" / ENTRY / "model"), AUDIO=str(work / "w" / "audio_options"),
             PREDICT_REFERENCES=str(work / "w" / ENTRY / "predict"), REPORTS=str(work / "reports"))
    done = make("predict-envelope", work / "home", VARIANTS=VARIANTS, **v)
    assert done.returncode == 0, done.stderr[-3000:]
    envelope = json.loads((work / "reports" / "predict_envelope.json").read_text())
    assert envelope["mode"] == "predict"
    names = {c["name"] for c in envelope["comparisons"]}
    assert {"baseline vs committed", "threads-2 vs baseline", "clean vs baseline"} <= names
    assert all("standardize" in c["stages"] for c in envelope["comparisons"])
    tolerances = json.loads((work / "reports" / "predict_tolerances.json").read_text())
    assert tolerances["mode"] == "predict" and "standardize" in tolerances["stages"]
    assert "activations" not in tolerances["stages"]
    done = make("predict-parity", work / "home", TOLERANCES=str(work / "reports" / "predict_tolerances.json"), **v)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "criterion standardize" in done.stdout and "PREDICT PARITY PASSED" in done.stdout
    assert not list((work / "home").rglob("*")), "HOME must stay clean"     # fastai_audio's cache included


def test_predict_envelope_refuses_references_of_other_weights_or_none(work: Path, tmp_path: Path) -> None:
    model = work / "w" / ENTRY / "model"
    other = tmp_path / "other"
    other.mkdir()
    manifest = json.loads((work / "w" / ENTRY / "predict" / "manifest.json").read_text())
    manifest["model"]["weights_sha256"] = "0" * 64
    (other / "manifest.json").write_text(json.dumps(manifest))
    for refs, words in ((other, "other weights"), (tmp_path / "none", "make predict-references")):
        done = subprocess.run([legacy_interpreter(), "-m", "convert.predict_envelope", "--model", str(model),
                               "--audio", str(work / "w" / "audio_options"), "--references", str(refs),
                               "--out", str(tmp_path / "e.json")], cwd=ROOT, capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
        assert done.returncode == 3 and words in done.stderr and not (tmp_path / "e.json").exists()

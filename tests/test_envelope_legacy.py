"""`make envelope` in proportion to the job (legacy env; skipped with a reason without one): on
references this machine recorded, the baseline is those references, each variant re-runs legacy
on the full-stage clips only (side by side), an estimate comes before any run, legacy's chatter
goes to the log; an audio folder with recordings the references lack is refused up front."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import CORPUS, FIXTURE, ROOT, legacy_interpreter

pytestmark = pytest.mark.legacy
FILES = ("stereo_44k1_16_10s5.wav", "clipping_48k_16_3s2.wav", "short_1s5_48k_16.wav")


def run(args: list[str], tmp: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(tmp / "home")}
    return subprocess.run([legacy_interpreter(), "-m", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=1200)


def test_envelope_measures_variants_on_the_full_stage_clips(tmp_path: Path) -> None:
    audio = tmp_path / "audio"
    audio.mkdir()
    for name in FILES:
        shutil.copyfile(CORPUS / name, audio / name)
    refs = tmp_path / "refs"
    rec = run(["convert.references", "--model", str(FIXTURE), "--audio", str(audio), "--out", str(refs)], tmp_path)
    assert rec.returncode == 0, rec.stderr[-3000:]
    out = tmp_path / "envelope.json"
    env = run(["convert.envelope", "--model", str(FIXTURE), "--corpus", str(audio), "--references", str(refs),
               "--out", str(out), "--variants", "threads-2,aten-default,aten-avx2"], tmp_path)
    assert env.returncode == 0, env.stderr[-3000:]
    lines = env.stderr.splitlines()
    assert lines[0].startswith("envelope: 3 file(s), 11 clips; baseline: the references") and "estimate" in lines[0]
    # aten-avx2 runs only where ATen's own dispatch level is not AVX2 already
    level = subprocess.run([legacy_interpreter(), "-c", "import torch; print(torch.backends.cpu.get_cpu_capability())"],
                           capture_output=True, text=True).stdout.strip()
    ran = ["threads-2", "aten-default"] + ([] if level == "AVX2" else ["aten-avx2"])
    assert any(f"[{len(ran) + 1}/{len(ran) + 1}]" in ln for ln in lines)      # + the clean replay with the detector
    assert not any("Preprocessing" in ln or "Warning" in ln for ln in lines), env.stderr   # in the log
    log = (tmp_path / "envelope.json.log").read_text()
    assert all(f"===== {n} =====" in log for n in ran)

    e = json.loads(out.read_text())
    assert e["baseline"].startswith("the references") and e["schema_version"] == 2
    assert {e["variants"][n]["measured_on"] for n in ran} == {"full-stage clips"}
    if level == "AVX2":
        assert e["variants"]["aten-avx2"]["not_run"] == "the baseline's kernels: ATen already dispatches at AVX2 here"
        assert any(ln.startswith("envelope: aten-avx2 not run: ") for ln in lines)
    by_name = {c["name"]: c for c in e["comparisons"]}
    assert set(by_name) == {f"{n} vs baseline" for n in ran} | {"clean vs baseline", "detector vs baseline"}
    full = sum(len(f.get("full_clips", [])) for f in json.loads((refs / "manifest.json").read_text())["files"])
    for name in (f"{n} vs baseline" for n in ran):
        c = by_name[name]
        assert c["stages"]["mel"]["tensors"] == full and c["stages"]["probs"]["tensors"] == full
        assert c["digests"]["clip"] == {"compared": full, "differ": 0}
        assert c["decisions"]["errors_differ"] == 0          # the too-short file refused alike
    assert by_name["threads-2 vs baseline"]["regimes"] == ["cross_machine", "same_machine"]


def test_envelope_refuses_audio_the_references_lack(tmp_path: Path) -> None:
    audio = tmp_path / "audio"
    shutil.copytree(CORPUS, audio)
    shutil.copyfile(CORPUS / "clipping_48k_16_3s2.wav", audio / "extra.wav")
    out = tmp_path / "envelope.json"
    env = run(["convert.envelope", "--model", str(FIXTURE), "--corpus", str(audio), "--references",
               str(ROOT / "reference_outputs" / "stages"), "--out", str(out)], tmp_path)
    assert env.returncode == 3, env.stderr
    assert "has recordings the references" in env.stderr and "extra.wav" in env.stderr
    assert "run `make references` on this AUDIO= first" in env.stderr
    assert not out.exists() and not (tmp_path / "envelope.json.log").exists()
    jobs = run(["convert.envelope", "--model", str(FIXTURE), "--corpus", str(CORPUS), "--references",
                str(ROOT / "reference_outputs" / "stages"), "--out", str(out), "--jobs", "-1"], tmp_path)
    assert jobs.returncode == 2 and "--jobs -1: pass a positive number" in jobs.stderr and not out.exists()


def test_variants_forked_from_the_preloaded_interpreter_equal_fresh_processes(tmp_path: Path) -> None:
    """convert/preloaded.py: a switch read at library load would be lost in a forked child; each
    variant's comparison with the baseline must be the fresh process's, figure for figure, and the
    user's HOME must see no fastai_audio cache (the forkserver imports under a scratch HOME)."""
    audio = tmp_path / "audio"
    audio.mkdir()
    for name in FILES[:2]:
        shutil.copyfile(CORPUS / name, audio / name)
    refs = tmp_path / "refs"
    rec = run(["convert.references", "--model", str(FIXTURE), "--audio", str(audio), "--out", str(refs)], tmp_path)
    assert rec.returncode == 0, rec.stderr[-3000:]
    variants = "aten-default,mkl-sse42,onednn-sse41,threads-2"
    figures = {}
    for mode in ("forked", "fresh"):
        out = tmp_path / f"{mode}.json"
        env = run(["convert.envelope", "--model", str(FIXTURE), "--corpus", str(audio), "--references", str(refs),
                   "--out", str(out), "--variants", variants] + (["--fresh-processes"] if mode == "fresh" else []),
                  tmp_path)
        assert env.returncode == 0, env.stderr[-3000:]
        figures[mode] = {c["name"]: c["stages"] for c in json.loads(out.read_text())["comparisons"]
                         if c["name"].endswith("vs baseline") and c["name"].split()[0] in variants.split(",")}
    assert len(figures["fresh"]) == 4 and figures["forked"] == figures["fresh"]
    moved = [n for n, stages in figures["fresh"].items() if any(s["max_abs"] > 0 for s in stages.values())]
    assert moved, "no variant moved any stage: the comparison above would not notice a lost switch"
    assert not (tmp_path / "home" / ".fastai").exists()

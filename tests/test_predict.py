"""fastai_audio's own predict as a runtime mode (model/predict.py, `orcaport predict`), and windowed
detection with other clip lengths and hops. Legacy's own answers: tests/test_predict_legacy.py."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from orcaport.model import cli
from orcaport.model.audio import decode_pcm, slice_ms
from orcaport.model.detector import Detector, DetectorError
from orcaport.model.pipeline import Frontend, frontend_stages
from orcaport.model.predict import file_inputs
from orcaport.model.spectrogram import FrontendError
from tests.conftest import CORPUS, FIXTURE


def model_folder(tmp: Path, windowing: dict | None = None, **frontend) -> Path:
    """The fixture's weights with its config.json changed (the weights pin stays valid)."""
    tmp.mkdir(parents=True, exist_ok=True)
    shutil.copy(FIXTURE / "model.safetensors", tmp)
    config = json.loads((FIXTURE / "config.json").read_text())
    config["frontend"].update(frontend)
    config["windowing"].update(windowing or {})
    (tmp / "config.json").write_text(json.dumps(config))
    return tmp


def tone(path: Path, seconds: float, rate: int = 48000) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    x = 0.3 * np.sin(2 * np.pi * 1500 * t) * (np.sin(2 * np.pi * 0.7 * t) > 0)
    sf.write(path, x + 0.01 * np.random.default_rng(0).standard_normal(t.size), rate, subtype="PCM_16")
    return path


@pytest.fixture(scope="module")
def predictor() -> Detector:
    return Detector.from_folder(FIXTURE, mode="predict")


def test_a_whole_2s_file_is_the_windowed_detectors_only_clip(predictor: Detector) -> None:
    """OrcaHello's config on a 2.0 s file: fastai_audio's predict sees the file, windowed detection
    its one 2 s clip -- the same samples, so the same probability (engines within 1e-5)."""
    path = CORPUS / "exact_2s0_48k_16.wav"
    [item] = predictor.predict(path)
    windowed = Detector.from_folder(FIXTURE).detect(path)
    assert windowed.clips == 1 and abs(item.probabilities[1] - float(windowed.clip_confidence[0])) < 1e-5
    assert item.index == int(np.argmax(item.probabilities)) and item.label == ("negative", "positive")[item.index]
    assert abs(sum(item.probabilities) - 1) < 1e-6 and (item.item, item.start_s, item.duration_s) == (0, 0.0, 2.0)
    stages = file_inputs(predictor._fe, path)[0][0]
    clip = frontend_stages(slice_ms(decode_pcm(path), 0, 2000), predictor._fe)
    for stage in ("load", "downmix", "resample", "mel", "db", "input"):
        assert torch.equal(torch.as_tensor(stages[stage]), clip[stage]), stage


@pytest.mark.parametrize("seconds,items", [(5.0, 3), (4.0, 3), (1.5, 1)])
def test_segment_size_makes_one_item_per_segment_the_last_zero_padded(tmp_path, seconds, items) -> None:
    det = Detector.from_folder(model_folder(tmp_path / "m", segment_size=2000), mode="predict")
    path = tone(tmp_path / "a.wav", seconds)
    got = det.predict(path)
    assert [(p.item, p.start_s, p.duration_s) for p in got] == [(k, 2.0 * k, 2.0) for k in range(items)]
    stages = file_inputs(det._fe, path)[0]
    last = stages[-1]["segment"]
    tail = int(round((seconds - 2 * (items - 1)) * 20000))
    assert not last[:, tail:].any() and (tail == 0 or last[:, :tail].any())   # 4.0 s: an all-zero 3rd
    assert all(s["input"].shape == (1, 256, 312) for s in stages)


def test_windowed_detection_refuses_what_makes_several_items_per_clip(tmp_path) -> None:
    for i, fe in enumerate(({"segment_size": 1000}, {"remove_silence": "split"})):
        with pytest.raises(FrontendError, match="orcaport predict"):
            Detector.from_folder(model_folder(tmp_path / str(i), **fe))
    det = Detector.from_folder(model_folder(tmp_path / "t", remove_silence="trim"))
    assert det.detect(tone(tmp_path / "a.wav", 4.0)).clips == 3     # trim: one item per clip
    with pytest.raises(DetectorError, match="mode='predict'"):
        Detector.from_folder(FIXTURE).predict(CORPUS / "exact_2s0_48k_16.wav")


def test_windowed_detection_with_3s_clips_every_2s(tmp_path) -> None:
    """clip_seconds=3, hop_seconds=2: windows [0,3) [2,5) [4,7) [6,9) of a 10.5 s file; each clip's
    probability is that clip alone through the chain; rows every 2 s with production's rules."""
    det = Detector.from_folder(model_folder(tmp_path / "m", {"clip_seconds": 3, "hop_seconds": 2}, duration=4000))
    path = CORPUS / "narrow_8k_16_10s5.wav"
    d = det.detect(path)
    pcm = decode_pcm(path)
    x = torch.stack([frontend_stages(slice_ms(pcm, b * 1000, (b + 3) * 1000), det._fe)["input"] for b in (0, 2, 4, 6)])
    with torch.inference_mode():
        want = torch.softmax(det.artifact.network(x), -1)[:, 1].numpy()
    assert d.clips == 4 and np.allclose(d.clip_confidence, want, atol=1e-5)
    assert d.start_time_s.tolist() == [0, 2, 4, 6, 8] and {r["duration_s"] for r in d.rows()} == {2.0}
    c = d.clip_confidence.astype(np.float64)
    assert np.allclose(d.confidence, [c[0], (c[0] + c[1]) / 2, (c[1] + c[2]) / 2, (c[2] + c[3]) / 2, c[3]])


def test_cli_predict_json_csv_and_a_failing_file(tmp_path, capsys) -> None:
    model = model_folder(tmp_path / "m", segment_size=2000)
    good, bad = tone(tmp_path / "a.wav", 3.0), tmp_path / "b.wav"
    bad.write_bytes(b"RIFF....WAVEfmt nonsense")
    out = tmp_path / "p.json"
    assert cli.main(["predict", str(good), "--model", str(model), "--format", "json", "--output", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["mode"] == "predict" and doc["classes"] == ["negative", "positive"] and doc["errors"] == []
    assert [(i["file"], i["item"], i["start_s"]) for i in doc["items"]] == [("a.wav", 0, 0.0), ("a.wav", 1, 2.0)]
    assert all(abs(sum(i["probabilities"].values()) - 1) < 1e-6 for i in doc["items"])
    code = cli.main(["predict", str(good), str(bad), "--model", str(model), "--format", "csv"])
    captured = capsys.readouterr()
    rows = list(csv.DictReader(io.StringIO(captured.out)))
    assert code == 1 and "b.wav" in captured.err and len(rows) == 2
    assert set(rows[0]) == {"file", "item", "start_s", "duration_s", "label", "index", "p_negative", "p_positive"}
    assert cli.main(["predict", str(good)]) == 2                  # no --model: a usage error


def test_every_chain_stage_is_in_the_vocabulary_and_a_waveform_learner_is_refused(tmp_path) -> None:
    from orcaport.model.pipeline import STEPS
    from orcaport.model.stages import CLIP_STAGES, OPTION_STAGES

    assert {name for name, *_ in STEPS} <= set(CLIP_STAGES + OPTION_STAGES)
    with pytest.raises(DetectorError, match="expected 4D input"):
        Detector.from_folder(model_folder(tmp_path / "m", use_spectro=False, max_to_pad=1000.0), mode="predict")

"""The committed legacy references load without fastai and without unpickling, and are verified."""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
import sys
from pathlib import Path

import pytest
from safetensors.numpy import load_file, save_file

from orcaport.model.stages import ACTIVATION_LAYERS
from orcaport.parity.references import ReferencesError, load_references
from tests.conftest import CORPUS, FIXTURE, REFS



def _no_pickle(*_a: object, **_k: object) -> None:
    raise AssertionError("references must never be unpickled")


def test_every_reference_loads_verified_without_fastai_or_pickle(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, _no_pickle)
    refs = load_references(REFS)
    assert not [m for m in sys.modules if m.split(".")[0] in ("fastai", "audio", "pandas", "torchaudio")]
    corpus = json.loads((CORPUS / "corpus.json").read_text())
    assert [f.name for f in refs.files] == [f["name"] for f in corpus["files"]]
    for f, spec in zip(refs.files, corpus["files"]):
        assert f.entry["audio_sha256"] == spec["sha256"]
        assert f.error is not None or f.tensors, f.name


def test_manifest_records_what_made_the_references() -> None:
    m = load_references(REFS).manifest
    assert m["command"].startswith("make references")
    for pkg in ("fastai", "fastai_audio", "torch", "torchaudio", "pydub", "pandas", "ffmpeg"):
        assert m["legacy_versions"][pkg] not in ("", "not installed"), pkg
    fixture = FIXTURE
    assert m["model"]["weights_sha256"] == hashlib.sha256((fixture / "model.safetensors").read_bytes()).hexdigest()
    assert m["model"]["pkl_sha256"] == (fixture / "model.pkl.sha256").read_text().split()[0]
    assert set(m["noise_floor"]) >= {"mel", "db", "input", "logits", "probs", "aggregate/confidence"}


def test_flagship_hour_has_production_shape() -> None:
    f = load_references(REFS).file("hydrophone_48k_mono16_60s.wav")
    assert f.clips == 59 and f.entry["rows"] == 60
    assert f.tensors["aggregate/confidence"].shape == (60,)
    assert f.entry["clip_windows"][0] == [0, 2] and f.entry["clip_windows"][-1] == [58, 60]
    for layer in ACTIVATION_LAYERS:
        assert f"clips/{f.activation_clips[0]:02d}/activations/{layer}" in f.tensors
    assert f.clip_stage(f.full_clips[0], "input").shape == (1, 256, 312)
    assert (f.clip_stage(f.full_clips[0], "input")[..., 157:] == 0.0).all()   # 0.0 dB padding


def test_legacy_rejections_are_recorded_as_reference_behaviour() -> None:
    short = load_references(REFS).file("short_1s5_48k_16.wav")
    assert short.error == {"type": "KeyError", "message": "0"} and not short.tensors


@pytest.fixture()
def refs_copy(tmp_path: Path) -> Path:
    dst = tmp_path / "stages"
    shutil.copytree(REFS, dst)
    return dst


def _rehash(refs: Path, name: str) -> None:
    manifest = json.loads((refs / "manifest.json").read_text())
    entry = \
        next(f for f in manifest["files"] if f.get("tensors", {}).get("file") == name)
    entry["tensors"]["sha256"] = hashlib.sha256((refs / name).read_bytes()).hexdigest()
    (refs / "manifest.json").write_text(json.dumps(manifest))


def test_missing_manifest_is_refused(refs_copy: Path) -> None:
    (refs_copy / "manifest.json").unlink()
    with pytest.raises(ReferencesError, match="manifest.json not found.*make references"):
        load_references(refs_copy)


def test_flipped_byte_is_refused(refs_copy: Path) -> None:
    path = refs_copy / "narrow_8k_16_10s5.wav.safetensors"
    blob = bytearray(path.read_bytes())
    blob[-7] ^= 0x80
    path.write_bytes(bytes(blob))
    with pytest.raises(ReferencesError, match="does not match its sha256"):
        load_references(refs_copy)


def test_missing_stage_is_refused_even_with_a_matching_hash(refs_copy: Path) -> None:
    name = "exact_2s0_48k_16.wav.safetensors"
    tensors = load_file(str(refs_copy / name))
    del tensors["clips/00/db"]
    save_file(tensors, str(refs_copy / name))
    _rehash(refs_copy, name)
    with pytest.raises(ReferencesError, match="stages differ from the manifest"):
        load_references(refs_copy)


def test_manifest_lying_about_a_shape_is_refused(refs_copy: Path) -> None:
    manifest = json.loads((refs_copy / "manifest.json").read_text())
    manifest["files"][0]["tensors"]["keys"]["all/probs"]["shape"] = [58, 2]
    (refs_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ReferencesError, match="all/probs"):
        load_references(refs_copy)


def test_tensor_file_name_cannot_escape_the_references_folder(refs_copy: Path) -> None:
    manifest = json.loads((refs_copy / "manifest.json").read_text())
    manifest["files"][0]["tensors"]["file"] = "../../etc/passwd"
    (refs_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ReferencesError, match="escapes"):
        load_references(refs_copy)


def test_a_non_wav_recorded_without_its_conversion_hash_is_refused(refs_copy: Path) -> None:
    """References from before non-WAV files were converted as production converts them kept an MP3
    as legacy's CouldntDecodeError: replaying it now would compare against the wrong behaviour."""
    manifest = json.loads((refs_copy / "manifest.json").read_text())
    manifest["files"].append({"name": "birds.mp3", "audio_sha256": "0" * 64,
                              "error": {"type": "CouldntDecodeError", "message": "Decoding failed"}})
    (refs_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ReferencesError, match="birds.mp3 is not a WAV and .* no wav_sha256.*make references"):
        load_references(refs_copy)

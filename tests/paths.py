"""The checkout's paths the tests use, defined once (tests/conftest.py re-exports them; the scripts
under tests/legacy/ run in the legacy env without pytest and import them from here)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "reference_outputs" / "fixture"
REFS = ROOT / "reference_outputs" / "stages"
CORPUS = ROOT / "reference_outputs" / "corpus"
ENVELOPE = ROOT / "reference_outputs" / "envelope.json"
FLAGSHIP = "hydrophone_48k_mono16_60s.wav"
LEGACY_PYTHON = ROOT / ".venvs" / "legacy" / "bin" / "python"
# upstream's real-data mel reference, beside the checkout when it is there (make parity passes it)
UPSTREAM = ROOT.parent / "shared" / "data" / "upstream_sunset_bay_mel_reference.safetensors"

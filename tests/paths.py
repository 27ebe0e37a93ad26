"""The checkout's paths the tests use, defined once (tests/conftest.py re-exports them; the scripts
under tests/legacy/ run in the legacy env without pytest and import them from here)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "reference_outputs" / "fixture"
REFS = ROOT / "reference_outputs" / "stages"
CORPUS = ROOT / "reference_outputs" / "corpus"
FLAGSHIP = "hydrophone_48k_mono16_60s.wav"
LEGACY_PYTHON = ROOT / ".venvs" / "legacy" / "bin" / "python"

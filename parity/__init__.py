"""Parity: prove, stage by stage, that the fastai-free runtime (model/) computes what the legacy
fastai 1.0.61 + fastai_audio pipeline computed. Packages by concern; imports run one way, from the
later concerns to the earlier ones, never back:

- replay (this folder): `python -m orcaport.parity` (__main__.py) -> run.py (one run: references,
  corpus, criteria) -> replay.py (one file, isolated and chained) + upstream.py (the real-data
  account), diffed by metrics.py + diffstats.py under tolerances.json (derived by envelope.py
  from reference_outputs/envelope.json under tolerance_policy.json); references.py and
  audio_manifest.py read and verify what legacy recorded, fingerprint.py says where; controls.py,
  variants.py and engine_check.py re-run it under perturbations, kernel paths and the Detector.
  result.py is the parity result's one schema (`ParityResult`): replay writes it, the reports
  render it and the gate reads it.
- reports/: parity.{json,md,html} and the terminal table, rendered from a `ParityResult`.
- publishing/: the publish gate, Hub staging and upload, the model card.
- testaudio/: synthetic hydrophone audio and the committed parity corpus built from it.

Modules that run in BOTH environments (the legacy env imports them from convert/, under fastai
1.0.61's numpy and torch) are listed in BOTH_ENVS, say so in their docstrings and import only
what both envs hold; model/fileio.py (atomic writes, file hashing) is the one they share with the
runtime.
"""

# Checked by tests/test_both_envs_legacy.py: importing every convert/ module in the legacy env
# loads exactly these parity modules, and each one's docstring says it runs in both environments.
BOTH_ENVS = ("audio_manifest", "diffstats", "envelope", "fingerprint", "metrics", "references",
             "testaudio", "testaudio.synth", "testaudio.training")

"""Run in the legacy env by tests/test_predict_parity_legacy.py: the option learners of fastai_audio's
own predict mode, each converted with its frontend and recorded by convert.predict_references (every
stage of its chain) on corpus files, into WORK/<learner>/{model,audio,refs}:

- split: the fixture learner with pad_mode "zeros", remove_silence "split" at 10 dB, segment_size
  2 s, mfcc, duration 3 s (a crop at a random offset);
- delta: the fixture learner with fastai_audio's 3-channel stem (audio_learner's adapt_model, as
  `delta` asks), exported with learn.export, with remove_silence "trim", max_to_pad 1.5 s (a random
  front offset), standardize and delta.
Prints one RESULT json line.
    python tests/legacy/predict_references.py WORK [LEARNER ...]"""

from __future__ import annotations

import hashlib
import json
import sys
import warnings
from pathlib import Path

from tests.legacy.option_references import record_with_options
from tests.paths import FIXTURE

LEARNERS: dict[str, tuple[dict, tuple[str, ...], int]] = {   # options, corpus files, input channels
    "split": ({"pad_mode": "zeros", "remove_silence": "split", "silence_threshold": 10, "segment_size": 2000,
               "mfcc": True, "duration": 3000},
              ("clipping_48k_16_3s2.wav", "stereo_44k1_16_10s5.wav", "hires_96k_24_3s2.wav"), 1),
    "delta": ({"remove_silence": "trim", "silence_threshold": 10, "max_to_pad": 1500.0, "standardize": True,
               "delta": True},
              ("clipping_48k_16_3s2.wav", "stereo_44k1_16_10s5.wav"), 3),
}


def three_channel_learner(out: Path) -> Path:
    """The fixture learner adapted to 3 input channels (seeded), exported and trusted by its hash."""
    import torch
    from audio.learner import adapt_model

    from convert.legacy import load_trusted_learner, patch_torchaudio_io

    patch_torchaudio_io()
    learn = load_trusted_learner(FIXTURE / "model.pkl")
    torch.manual_seed(0)
    adapt_model(learn.model, 3)
    out.mkdir(parents=True)
    learn.export(out / "model.pkl")
    digest = hashlib.sha256((out / "model.pkl").read_bytes()).hexdigest()
    (out / "model.pkl.sha256").write_text(f"{digest}  model.pkl\n# made by this test from the fixture\n")
    return out


def main(work: str, names: list[str]) -> int:
    warnings.simplefilter("ignore")
    runs = {}
    for name in names or list(LEARNERS):
        options, files, channels = LEARNERS[name]
        root = Path(work) / name
        root.mkdir(parents=True)
        source = three_channel_learner(root / "source") if channels == 3 else FIXTURE
        run = record_with_options(root, options, files, "convert.predict_references", source)
        runs[name] = {"returncode": run.returncode, "stderr": run.stderr[-2000:]}
    print("RESULT " + json.dumps({"returncode": max(r["returncode"] for r in runs.values()), "runs": runs}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))

"""Run in the legacy env by tests/test_frontend_options_both_envs_legacy.py: legacy's own answers for
the option steps whose arithmetic comes from numpy/scipy/torch (librosa's split, fastai_audio's
merge, torchaudio's MFCC, fastai_audio's torchdelta), on inputs it saves beside them, so the clean
env (other numpy/scipy/torch versions) replays them on the same tensors.
    python tests/legacy/frontend_options.py OUT.safetensors   -> one RESULT json line (the cases)"""

from __future__ import annotations

import json
import sys
import warnings

import numpy as np
import torch
from safetensors.numpy import save_file

from tests.test_frontend_options_legacy import bursts

SILENCE = [(20000, 1, 20, 200), (16000, 2, 40, 50), (44100, 1, 10, 700), (20000, 1, 60, 13)]
MFCC = [(20000, 20, {}), (16000, 40, {"f_max": None, "n_mels": 128}), (44100, 13, {"n_mels": 64, "n_fft": 1024, "hop_length": 512})]
DELTA = [(1, 256, 157), (2, 64, 9), (1, 20, 312)]


def main(out: str) -> int:
    warnings.simplefilter("ignore")
    import librosa
    import torchaudio
    from audio import data as fa_data
    from audio import transform as fa_tfm

    t: dict[str, np.ndarray] = {}
    for i, (rate, channels, thr, pad_ms) in enumerate(SILENCE):
        y = bursts(6.3, rate, channels, i)
        pad = int(pad_ms / 1000 * rate)
        t[f"silence{i}/y"] = y
        t[f"silence{i}/split"] = librosa.effects.split(y, top_db=thr, hop_length=pad).astype(np.int64)
        t[f"silence{i}/merged"] = np.asarray(fa_tfm._merge_splits(t[f"silence{i}/split"], pad), np.int64)
    for i, (rate, n_mfcc, variant) in enumerate(MFCC):
        sg = fa_data.SpectrogramConfig(**{"f_max": 10000.0, "n_mels": 256, "n_mfcc": n_mfcc, **variant})
        y = bursts(2.5, rate, 1 + i % 2, i)
        t[f"mfcc{i}/y"] = y
        t[f"mfcc{i}/out"] = torchaudio.transforms.MFCC(sample_rate=rate, n_mfcc=n_mfcc, melkwargs=sg.mel_args())(
            torch.from_numpy(y)).numpy()
    for i, shape in enumerate(DELTA):
        spec = torch.from_numpy(np.random.default_rng(i).normal(-40, 20, shape).astype(np.float32))
        t[f"delta{i}/spec"] = spec.numpy()
        t[f"delta{i}/out"] = torch.cat([torch.stack([m, fa_tfm.torchdelta(m), fa_tfm.torchdelta(m, order=2)])
                                        for m in spec]).numpy()
    save_file({k: np.ascontiguousarray(v) for k, v in t.items()}, out)
    cases = {"silence": SILENCE, "mfcc": MFCC, "delta": DELTA}
    print("RESULT " + json.dumps({"cases": cases, "numpy": np.__version__, "torch": torch.__version__,
                                  "librosa": librosa.__version__, "scipy": __import__("scipy").__version__}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

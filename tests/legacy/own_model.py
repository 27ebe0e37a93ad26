"""Legacy-env helper for tests/test_own_model_legacy.py: a user's own learner and recordings.

    python tests/legacy/own_model.py OUT
writes OUT/model/model.pkl: a ResNet50 `audio_learner` with three classes ('ambient', 'boat',
'whale'; the detection class is 'whale', index 2), non-trivial BN statistics, exported with
`learn.export()` (its sha256 is printed, not recorded: the user gives it to `make convert`); and
OUT/recordings/: a folder of mixed real formats in subfolders (32 kHz 16-bit mono, 96 kHz 24-bit
stereo, 22.05 kHz, 44.1 kHz float, FLAC, an MP3 beside a WAV of the same stem, one file too short).
Prints one `RESULT {json}` line.
"""

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from convert.legacy import isolated_home, patch_torchaudio_io
from orcaport.model.fileio import sha256_file
from tests.legacy.convert_roundtrip import make_data, randomize

warnings.simplefilter("ignore")
CLASSES = ("ambient", "boat", "whale")
# (relative name, rate, channels, subtype, seconds)
RECORDINGS = (
    ("site_a/field_32k_mono16.wav", 32000, 1, "PCM_16", 10.0),
    ("site_a/hires_96k_stereo24.wav", 96000, 2, "PCM_24", 4.5),
    ("site_b/speechband_22k05.wav", 22050, 1, "PCM_16", 3.2),
    ("site_b/float_44k1.wav", 44100, 1, "FLOAT", 3.2),
    ("site_b/archive_48k.flac", 48000, 1, "PCM_16", 3.0),
    ("too_short_1s5.wav", 48000, 1, "PCM_16", 1.5),
)
# (MP3 name, the WAV above it is encoded from): same stem, another format -- two distinct references
MP3S = (("site_a/field_32k_mono16.mp3", "site_a/field_32k_mono16.wav"),)


def tone_scene(rate: int, channels: int, seconds: float, seed: int) -> np.ndarray:
    """Noise with an upsweeping call: enough structure for the network to respond to."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    call = 0.3 * np.sin(2 * np.pi * (1500 + 400 * t) * t) * (np.sin(np.pi * t / seconds) ** 2)
    x = call[:, None] + 0.05 * rng.standard_normal((t.size, channels))
    return np.clip(x, -1.0, 1.0)


def write_recordings(root: Path) -> list[str]:
    for i, (name, rate, ch, subtype, seconds) in enumerate(RECORDINGS):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), tone_scene(rate, ch, seconds, i), rate, subtype=subtype,
                 format="FLAC" if name.endswith(".flac") else "WAV")
    for mp3, wav in MP3S:   # a fixed encoder and bitrate: the same bytes every run
        subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", str(root / wav),
                        "-codec:a", "libmp3lame", "-b:a", "128k", "-map_metadata", "-1", "-fflags", "+bitexact",
                        str(root / mp3)], check=True)
    return sorted([r[0] for r in RECORDINGS] + [m[0] for m in MP3S])


def build_learner(out: Path, work: Path) -> str:
    from audio.learner import audio_learner
    from fastai.vision import models

    data = make_data(work, len(CLASSES), None, CLASSES)
    learn = audio_learner(data, base_arch=models.resnet50, pretrained=False)
    randomize(learn.model)
    with torch.no_grad():   # random BN stats give logits of ~1e4: scale them to O(1) so the
        learn.model[1][-1].weight.mul_(1e-4)   # probabilities spread and the threshold is tested
    learn.model.eval()
    out.mkdir(parents=True)
    learn.export(out / "model.pkl")
    return sha256_file(out / "model.pkl")


def main() -> None:
    out = Path(sys.argv[1])
    patch_torchaudio_io()
    with isolated_home(out / "home"):
        sha = build_learner(out / "model", out / "train")
    names = write_recordings(out / "recordings")
    print("RESULT " + json.dumps({"sha256": sha, "classes": list(CLASSES), "recordings": names}))


if __name__ == "__main__":
    main()

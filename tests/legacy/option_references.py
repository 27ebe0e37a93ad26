"""Run in the legacy env by tests/test_option_parity_legacy.py: the fixture learner converted with a
frontend setting fastai_audio options the windowed (OrcaHello) mode can run -- pad_mode "zeros",
remove_silence "trim" (10 dB: it trims the clipping file's clips to 1.4 and 1.6 s, so max_to_pad's
1.5 s both pads one, at a random front offset, and trims the other), max_to_pad, mfcc, standardize --
then `make references` on two corpus files and `make envelope` (one variant: the learner's own
same-machine figures, clean vs legacy included, which its parity runs under), exactly as a user runs
them. Prints one RESULT json line.
    python tests/legacy/option_references.py WORK"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

from convert.cli import convert
from tests.paths import CORPUS, FIXTURE

OPTIONS = {"pad_mode": "zeros", "remove_silence": "trim", "silence_threshold": 10, "max_to_pad": 1500.0,
           "mfcc": True, "standardize": True}
FILES = ("clipping_48k_16_3s2.wav", "stereo_44k1_16_10s5.wav")


def record_with_options(root: Path, options: dict, files: tuple[str, ...],
                        module: str, source: Path = FIXTURE) -> subprocess.CompletedProcess:
    """The learner in `source` (model.pkl and its .sha256 record; the fixture's by default)
    converted with `options` over the fixture's frontend into root/model, `files` of the corpus
    copied into root/audio, then `python -m <module>` (a references recorder) into root/refs."""
    fe = {**json.loads((FIXTURE / "config.json").read_text())["frontend"], **options}
    (root / "fe.json").write_text(json.dumps(fe))
    convert(source / "model.pkl", root / "model", None, str(root / "fe.json"))
    for name in ("model.pkl", "model.pkl.sha256"):
        shutil.copyfile(source / name, root / "model" / name)
    (root / "audio").mkdir()
    for name in files:
        shutil.copyfile(CORPUS / name, root / "audio" / name)
    return subprocess.run([sys.executable, "-m", module, "--model", str(root / "model"),
                           "--audio", str(root / "audio"), "--out", str(root / "refs")],
                          capture_output=True, text=True)


def measure_envelope(root: Path, variants: str) -> subprocess.CompletedProcess:
    """`make envelope` on root/{model,audio,refs} -> root/envelope.json."""
    return subprocess.run([sys.executable, "-m", "convert.envelope", "--model", str(root / "model"),
                           "--corpus", str(root / "audio"), "--references", str(root / "refs"),
                           "--out", str(root / "envelope.json"), "--variants", variants],
                          capture_output=True, text=True)


def main(work: str) -> int:
    warnings.simplefilter("ignore")
    run = record_with_options(Path(work), OPTIONS, FILES, "convert.references")
    if run.returncode == 0:
        run = measure_envelope(Path(work), "threads-2")
    print("RESULT " + json.dumps({"returncode": run.returncode, "stderr": run.stderr[-2000:], "options": OPTIONS}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

"""Run in the legacy env by tests/test_predict_parity_legacy.py: the fixture learner converted with a
predict-mode frontend (pad_mode "zeros", remove_silence "split" at 10 dB, segment_size 2 s, mfcc,
duration 3 s), then convert.predict_references on three corpus files. Prints one RESULT json line.
    python tests/legacy/predict_references.py WORK"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

from tests.legacy.option_references import record_with_options

OPTIONS = {"pad_mode": "zeros", "remove_silence": "split", "silence_threshold": 10, "segment_size": 2000,
           "mfcc": True, "duration": 3000}
FILES = ("clipping_48k_16_3s2.wav", "stereo_44k1_16_10s5.wav", "hires_96k_24_3s2.wav")


def main(work: str) -> int:
    warnings.simplefilter("ignore")
    run = record_with_options(Path(work), OPTIONS, FILES, "convert.predict_references")
    print("RESULT " + json.dumps({"returncode": run.returncode, "stderr": run.stderr[-2000:]}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

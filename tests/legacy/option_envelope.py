"""Run in the legacy env by tests/test_option_envelope_legacy.py: an option learner (the fixture
converted with mfcc + standardize + pad_mode "zeros", so legacy draws a random front offset per
clip), `make references` on one corpus file, then `make envelope` with two variants on them, as a
user runs them. Prints one RESULT json line.
    python tests/legacy/option_envelope.py WORK"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

from tests.legacy.option_references import measure_envelope, record_with_options

OPTIONS = {"mfcc": True, "standardize": True, "pad_mode": "zeros"}
FILES = ("stereo_44k1_16_10s5.wav",)
VARIANTS = "threads-2,aten-default"


def main(work: str) -> int:
    warnings.simplefilter("ignore")
    root = Path(work)
    refs = record_with_options(root, OPTIONS, FILES, "convert.references")
    result = {"references": refs.returncode, "stderr": refs.stderr[-2000:], "options": OPTIONS}
    if refs.returncode == 0:
        env = measure_envelope(root, VARIANTS)
        result.update({"envelope": env.returncode, "stderr": env.stderr[-2000:]})
    print("RESULT " + json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

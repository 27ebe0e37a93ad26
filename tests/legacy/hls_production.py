"""[legacy env] OrcaHello production on a local HLS playlist, written from upstream's live loop
(InferenceSystem hls_utils/HLSStream.get_next_clip), independently of orcaport's model/ code:
ceil(window / #EXT-X-TARGETDURATION) consecutive segments per window, `cat` into one .ts,
ffmpeg-python's `ffmpeg -i IN.ts OUT.wav`, then FastAIModel.predict (convert/production.py).

    python tests/legacy/hls_production.py PLAYLIST WINDOW_SECONDS MODEL_DIR SCRATCH

Prints one `RESULT {json}` line: the windows' segment names and predictions, and this machine's
fingerprint (which tolerances apply).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

from convert.legacy import isolated_home, load_trusted_learner
from convert.production import predict_file
from orcaport.model.config import ModelConfig
from orcaport.parity.fingerprint import fingerprint


def main(playlist: Path, window_seconds: float, model_dir: Path, scratch: Path) -> dict:
    lines = playlist.read_text().splitlines()
    target = float(next(ln.split(":", 1)[1] for ln in lines if ln.startswith("#EXT-X-TARGETDURATION:")))
    segments = [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]
    per = math.ceil(window_seconds / target)          # num_segments_in_wav_duration
    cfg = ModelConfig.load(model_dir / "config.json")
    learn = load_trusted_learner(model_dir / "model.pkl")
    windows = []
    for i in range(len(segments) // per):             # only complete windows, as the live loop
        names = segments[i * per:(i + 1) * per]
        work = scratch / f"window{i}"
        work.mkdir(parents=True)
        concat = work / "clip.ts"
        with open(concat, "wb") as out:               # cd tmp_path && cat a.ts b.ts ... > clip.ts
            for name in names:
                out.write((playlist.parent / name).read_bytes())
        wav = work / "clip.wav"
        subprocess.run(["ffmpeg", "-i", str(concat), str(wav)], check=True, capture_output=True)
        result = predict_file(learn, wav, work / "segments", cfg.frontend, cfg.aggregation)
        windows.append({"segments": names, "confidence": result["confidence"],
                        "local_prediction": result["local_prediction"],
                        "global_prediction": result["global_prediction"],
                        "global_confidence": result["global_confidence"]})
    return {"windows": windows, "fingerprint": fingerprint()}


if __name__ == "__main__":
    playlist, seconds, model_dir, scratch = Path(sys.argv[1]), float(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
    with isolated_home(scratch / "home"):
        print("RESULT " + json.dumps(main(playlist, seconds, model_dir, scratch)))

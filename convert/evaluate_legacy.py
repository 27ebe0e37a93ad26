"""`make evaluate`'s legacy column: production's per-second confidences, in the legacy env.

    python -m convert.evaluate_legacy --model DIR --out FILE.json [--sha256 HEX] AUDIO...

Runs convert/production.py's `predict_file` (OrcaHello's FastAIModel.predict, as `make references`
runs it) on each recording with MODEL/model.pkl (its sha256 checked before unpickling) and the
frontend/aggregation recorded in MODEL/config.json. fastai_audio's cache lives in a scratch HOME,
removed after. Writes {"files": {path: {"confidence": [...], "global_prediction": g} or {"error": ...}}}
atomically; a file legacy rejects is recorded with its error, as the references do.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

from orcaport.model.errors import OrcaportError, report_error


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m convert.evaluate_legacy")
    ap.add_argument("--model", type=Path, required=True, help="folder with model.pkl and config.json")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--sha256", default=None, help="model.pkl's expected sha256 (else model.pkl.sha256)")
    ap.add_argument("audio", nargs="+", type=Path)
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    tmp = Path(tempfile.mkdtemp(prefix="orcaport-eval-legacy-"))
    try:
        os.environ["HOME"] = str(tmp / "home")          # before fastai_audio is imported: its cache
        from convert.legacy import load_trusted_learner, patch_torchaudio_io
        from convert.production import predict_file
        from orcaport.model.config import ModelConfig
        from orcaport.model.fileio import write_json_atomically

        patch_torchaudio_io()
        cfg = ModelConfig.load(args.model / "config.json")
        learn = load_trusted_learner(args.model / "model.pkl", args.sha256)
        files = {}
        for path in args.audio:
            shutil.rmtree(tmp / "home" / ".fastai", ignore_errors=True)
            try:
                r = predict_file(learn, path, tmp / "clips", cfg.frontend, cfg.aggregation,
                                 positive_index=cfg.positive_index)
                files[str(path)] = {"confidence": r["confidence"], "global_prediction": r["global_prediction"]}
            except Exception as e:  # noqa: BLE001 - legacy's own refusal is the reference behaviour
                files[str(path)] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"}
            print(f"legacy: {path.name}", file=sys.stderr)
        write_json_atomically(args.out.parent, args.out.name, {"files": files})
    except (OrcaportError, KeyboardInterrupt) as e:
        return report_error("convert.evaluate_legacy", e)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

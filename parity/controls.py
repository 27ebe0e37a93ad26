"""Negative controls: proof that parity still catches real bugs under the envelope's tolerances.

Each control breaks one thing -- a weight, a reference element, a frontend parameter, or one of the
legacy quirks the replay reproduces -- replays, and must fail at the stage where the break enters
the pipeline. Its margin is how many times over tolerance that stage's worst element is (exact
stages: how many clips/files differ), so a reviewer sees how far real bugs sit above the noise.

    python -m orcaport.parity.controls --outputs reference_outputs [--reports reports]
        (make controls; writes reports/controls.json)

They break the embedded fixture: --outputs is the checkout's reference_outputs/ folder (fixture/,
stages/, corpus/, controls/), passed explicitly (an installed package has no checkout). Exit codes
(model/errors.py): 1 a control was not caught at its stage, 3 --outputs lacks what they replay.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from safetensors.numpy import load_file, save_file

import orcaport.model.audio
import orcaport.model.pipeline
import orcaport.model.spectrogram
import orcaport.parity.replay
from orcaport.model.aggregate import Aggregate, rolling_mean_2
from orcaport.model.errors import ExitCode, InputError, report_error
from orcaport.model.fileio import sha256_file, write_json_atomically
from orcaport.model.weights import read_metadata, save_network_state
from orcaport.parity.audio_manifest import tensor_file_name
from orcaport.parity.result import Check, Location, ParityResult
from orcaport.parity.run import DEFAULT_TOLERANCES, run_parity

FLAGSHIP = "hydrophone_48k_mono16_60s.wav"
STEREO = "stereo_44k1_16_10s5.wav"
ODD_FILE = "oddrate_37k8_16_14s5.wav"


@dataclass(frozen=True)
class Embedded:
    """The checkout's reference_outputs/ folder: what the controls break and replay."""

    root: Path

    @property
    def fixture(self) -> Path:
        return self.root / "fixture"

    @property
    def refs(self) -> Path:
        return self.root / "stages"

    @property
    def corpus(self) -> Path:
        return self.root / "corpus"

    @property
    def odd_rate(self) -> Path:          # a 37.8 kHz file and its references: see `rounded_slicing`
        return self.root / "controls"

    def check(self) -> "Embedded":
        missing = [str(p) for p in (self.fixture, self.refs, self.corpus, self.odd_rate) if not p.is_dir()]
        if missing:
            raise InputError(f"--outputs {self.root} lacks {', '.join(missing)}; pass the checkout's "
                             "reference_outputs folder (make controls does)")
        return self


@dataclass(frozen=True)
class Inputs:
    model: Path
    refs: Path
    corpus: Path
    files: tuple[str, ...]
    other_weights: bool = False


@dataclass(frozen=True)
class Control:
    name: str
    breaks: str
    stage: str                  # where it must fail first
    layer: str | None
    prepare: Callable[[Path, Embedded], Inputs]
    patch: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext


# -- what each control changes -------------------------------------------------------------------
def _main_inputs(*files: str) -> Callable[[Path, Embedded], Inputs]:
    return lambda tmp, fx: Inputs(fx.fixture, fx.refs, fx.corpus, files)


def _perturbed_weight(tmp: Path, fx: Embedded) -> Inputs:
    dst = tmp / "model"
    dst.mkdir()
    state = {k: torch.from_numpy(v) for k, v in load_file(str(fx.fixture / "model.safetensors")).items()}
    state["body.layer3.1.conv2.weight"][0, 0, 1, 1] += 0.05
    save_network_state(state, dst / "model.safetensors", read_metadata(fx.fixture / "model.safetensors"))
    cfg = json.loads((fx.fixture / "config.json").read_text())   # re-pinned as a re-conversion would
    cfg["provenance"]["weights_sha256"] = sha256_file(dst / "model.safetensors")
    (dst / "config.json").write_text(json.dumps(cfg))
    return Inputs(dst, fx.refs, fx.corpus, (FLAGSHIP,), other_weights=True)


def _perturbed_reference(tmp: Path, fx: Embedded) -> Inputs:
    refs = tmp / "stages"
    shutil.copytree(fx.refs, refs)
    path = refs / tensor_file_name(FLAGSHIP)
    tensors = load_file(str(path))
    tensors["clips/50/mel"][0, 40, 70] *= 1.10          # +0.41 dB in one bin of one clip
    save_file(tensors, str(path))
    manifest = json.loads((refs / "manifest.json").read_text())
    entry = next(f for f in manifest["files"] if f["name"] == FLAGSHIP)
    entry["tensors"]["sha256"] = sha256_file(path)
    (refs / "manifest.json").write_text(json.dumps(manifest))
    return Inputs(fx.fixture, refs, fx.corpus, (FLAGSHIP,))


def _frontend_parameter(tmp: Path, fx: Embedded) -> Inputs:
    dst = tmp / "model"
    dst.mkdir()
    shutil.copyfile(fx.fixture / "model.safetensors", dst / "model.safetensors")
    cfg = json.loads((fx.fixture / "config.json").read_text())
    cfg["frontend"]["f_max"] = 9900.0                     # 1 % off production's 10 kHz
    (dst / "config.json").write_text(json.dumps(cfg))
    return Inputs(dst, fx.refs, fx.corpus, (STEREO,))


@contextlib.contextmanager
def _patched(module: Any, name: str, value: Any) -> Iterator[None]:
    old = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, old)


@contextlib.contextmanager
def _no_caches() -> Iterator[None]:
    def skip(x: np.ndarray, subtype: str = "PCM_16") -> np.ndarray:
        return np.asarray(x, dtype=np.float32)
    with _patched(orcaport.model.pipeline, "cache_round_trip", skip):   # where the steps look it up
        yield


def _filterbank_20k() -> contextlib.AbstractContextManager[None]:
    real = orcaport.model.spectrogram.mel_filterbank
    return _patched(orcaport.model.spectrogram, "mel_filterbank",
                    lambda n_freqs, f_min, f_max, n_mels, rate: real(n_freqs, f_min, f_max, n_mels, 20000))


@contextlib.contextmanager
def _floor_padding() -> Iterator[None]:
    real = orcaport.model.spectrogram.pad_or_crop

    def pad_with_floor(db: torch.Tensor, cfg: Any, rate: int, *offsets: Any, **named: Any) -> torch.Tensor:
        out = real(db, cfg, rate, *offsets, **named)
        out[..., db.shape[-1]:] = db.min()                 # silence instead of legacy's 0.0 dB
        return out
    with _patched(orcaport.model.pipeline, "pad_or_crop", pad_with_floor):
        yield


def _aggregation(rows: Callable[[np.ndarray], np.ndarray]) -> contextlib.AbstractContextManager[None]:
    def aggregate(conf: np.ndarray, threshold: float = 0.5, min_positive: int = 3) -> Aggregate:
        r = rows(np.asarray(conf, dtype=np.float64))
        above = r[r > threshold]
        return Aggregate(np.arange(r.size, dtype=np.int64), r, (r > threshold).astype(np.int64),
                         int(int((r > threshold).sum()) >= min_positive),
                         float(above.mean() * 100) if above.size else 0.0)
    return _patched(orcaport.parity.replay, "aggregate", aggregate)


def _rounded_slicing() -> contextlib.AbstractContextManager[None]:
    # pydub maps ms to frames with int(ms * (rate / 1000.0)): at 37.8 kHz that float product falls
    # just below the integer for some whole seconds and drops a frame; rounding does not.
    return _patched(orcaport.model.audio, "ms_to_frame", lambda ms, rate, length: round(ms * rate / 1000))


CONTROLS: tuple[Control, ...] = (
    Control("perturbed weight", "body.layer3.1.conv2.weight[0,0,1,1] += 0.05", "activations", "layer3",
            _perturbed_weight),
    Control("perturbed reference", "legacy mel of flagship clip 50, one bin x 1.10", "mel", None,
            _perturbed_reference),
    Control("frontend parameter", "f_max 10000 -> 9900 Hz in config.json", "mel", None, _frontend_parameter),
    Control("no 16-bit caches", "downmix/resample results not round-tripped through PCM_16", "downmix",
            None, _main_inputs(STEREO), _no_caches),
    Control("20 kHz filterbank", "mel filterbank laid out for the true 20 kHz rate, not 16 kHz", "mel",
            None, _main_inputs(STEREO), _filterbank_20k),
    Control("dB-floor padding", "pad with the clip's dB floor (silence) instead of 0.0 dB", "input", None,
            _main_inputs(STEREO), _floor_padding),
    Control("no rolling mean", "per-second rows are raw clip confidences (last row still appended)",
            "aggregate", None, _main_inputs(FLAGSHIP),
            lambda: _aggregation(lambda c: np.concatenate([c, c[-1:]]))),
    Control("no appended row", "rolling mean kept, the last raw confidence not appended",
            "aggregate", None, _main_inputs(FLAGSHIP),
            lambda: _aggregation(lambda c: np.concatenate([c[:1], rolling_mean_2(c)[1:]]))),
    Control("rounded slicing", "ms -> frame by rounding instead of pydub's int(ms * (rate / 1000.0))",
            "clip", None, lambda tmp, fx: Inputs(fx.fixture, fx.odd_rate / "stages", fx.odd_rate / "corpus",
                                                 (ODD_FILE,)),
            _rounded_slicing),
)


def margin(result: ParityResult) -> tuple[Check | None, str]:
    """-> (the first failing check, how far over tolerance it is, in words)."""
    ff = result.first_failure
    if not ff:
        return None, "did not fail"
    for f in result.files:
        for c in f.checks:
            if (not c.passed and f.name == ff.file and c.mode == ff.mode
                    and c.stage == ff.stage and c.clip == ff.clip and c.layer == ff.layer):
                m = c.metrics
                if m.get("compared") == "sha256" or c.tolerance.get("exact"):
                    return c, f"{m.get('n_out')} of {m.get('n')} differ (exact stage)"
                if m.get("shape_mismatch"):
                    return c, f"shape {m['shape_mismatch'][1]} instead of {m['shape_mismatch'][0]}"
                if m.get("excess") is not None and m["excess"] > 1:
                    return c, f"{m['excess']:.3g}x over tolerance"
                flips = c.decisions.local_flips if c.decisions else []
                return c, f"decisions differ: {len(flips)} local flips"
    return None, "failure not found"


def run_control(control: Control, fx: Embedded, tolerances: Path = DEFAULT_TOLERANCES) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="orcaport-control-") as tmp:
        inputs = control.prepare(Path(tmp), fx)
        with control.patch():
            result, _ = run_parity(inputs.model, inputs.refs, inputs.corpus, tolerances, only=list(inputs.files),
                                   diagnose_other_weights=inputs.other_weights)
    check, words = margin(result)
    ff = result.first_failure or Location(file=None, mode=None, stage=None, clip=None, layer=None)
    return {"control": control.name, "breaks": control.breaks, "expected_stage": control.stage,
            "expected_layer": control.layer, "failed_stage": ff.stage, "failed_layer": ff.layer,
            "mode": ff.mode, "file": ff.file, "criteria": result.criteria.regime,
            "excess": check.metrics.get("excess") if check else None, "margin": words,
            "caught": ff.stage == control.stage and (control.layer is None or ff.layer == control.layer)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m orcaport.parity.controls", description=__doc__.splitlines()[0])
    ap.add_argument("--outputs", type=Path, required=True,
                    help="the checkout's reference_outputs folder (the fixture, its references and corpus)")
    ap.add_argument("--reports", type=Path, default=Path("reports"))
    ap.add_argument("--only", action="append", help="run only this control (repeatable)")
    ap.add_argument("--tolerances", type=Path, default=DEFAULT_TOLERANCES,
                    help="the tolerances the controls must still beat (default: the committed ones; "
                         "pass a freshly derived file to check a new envelope)")
    args = ap.parse_args(argv)
    try:
        fx = Embedded(args.outputs).check()
    except InputError as e:
        return report_error(None, e)
    rows = []
    for control in CONTROLS:
        if args.only and control.name not in args.only:
            continue
        row = run_control(control, fx, args.tolerances)
        rows.append(row)
        where = row["failed_stage"] + (f"/{row['failed_layer']}" if row["failed_layer"] else "") \
            if row["failed_stage"] else "nowhere"
        print(f"{'ok  ' if row['caught'] else 'MISS'} {row['control']:<20} expected {row['expected_stage']:<11} "
              f"failed at {where:<18} {row['margin']}")
    path = write_json_atomically(args.reports, "controls.json", rows)
    missed = [r["control"] for r in rows if not r["caught"]]
    if missed:
        print(f"error: control(s) {missed} not caught at their stage; see {path}", file=sys.stderr)
    else:
        print(f"all {len(rows)} controls caught at their stage; {path}")
    return ExitCode.FAILED if missed else ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())

"""Replay every stage fastai-free and diff it against the legacy references, two ways.

- isolated: each stage is fed the legacy's *own* input for that stage (the reference tensor of the
  stage before), so a failure blames that stage alone; network blocks are replayed one by one
  (`OrcaNet.forward_from`) so a mismatch is localised to a block.
- chained: the clean pipeline runs end to end from the audio file, as users run it (a non-WAV
  file through production's ffmpeg conversion, as the references did: parity by construction).
Produces one `FileResult` of the parity result (parity/result.py documents the schema).
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from orcaport.model.aggregate import aggregate
from orcaport.model.artifact import Artifact
from orcaport.model.audio import PcmAudio, decode_pcm, slice_ms
from orcaport.model.pipeline import Frontend, frontend_stages, probabilities, run_steps, windows_of
from orcaport.model.stages import ACTIVATION_LAYERS, STAGE_ORDER
from orcaport.parity.audio_manifest import production_input
from orcaport.parity.metrics import AXES, Tolerance, compare, tolerance_stage
from orcaport.parity.references import FileReference
from orcaport.parity.result import Check, Decisions, ErrorInfo, FileResult, Series

BATCH = 16
HEATMAP_STAGES = ("mel", "db", "input")
Heatmaps = dict[tuple[str, str, int], tuple[np.ndarray, np.ndarray]]


def _digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


class FileReplay:
    """Replays one corpus file; collects checks, heatmaps and the confidence series."""

    def __init__(self, ref: FileReference, audio: Path, art: Artifact, tols: dict[str, Tolerance]):
        self.ref, self.audio, self.art, self.tols = ref, audio, art, tols
        # not checked here: an unsupported frontend is the chained replay's error to report
        self.fe = Frontend(art.config.frontend, art.config.normalization)
        self.checks: list[Check] = []
        self.heatmaps: Heatmaps = {}
        self.series: Series | None = None
        self.stage = "decode"   # where the clean side is, for errors

    # -- bookkeeping -------------------------------------------------------------------------
    def check(self, mode: str, stage: str, ref: np.ndarray, got: Any, clip: int | None = None,
              layer: str | None = None) -> Check:
        tol = self.tols[tolerance_stage(stage, layer, self.tols)]
        got = got.detach().cpu().numpy() if isinstance(got, torch.Tensor) else np.asarray(got)
        metrics = compare(ref, got, tol, AXES.get(tolerance_stage(stage, layer), ()))
        item = Check(mode=mode, stage=stage, clip=clip, layer=layer,
                     passed=bool(metrics.pop("passed")), tolerance=tol.to_dict(), metrics=metrics)
        self.checks.append(item)
        return item

    def digest_check(self, mode: str, stage: str, want: list[str], got: list[str]) -> None:
        """Exact integer stages stored as sha256 digests: compare them one by one."""
        bad = [i for i, (w, g) in enumerate(zip(want, got)) if w != g] + \
            list(range(min(len(want), len(got)), max(len(want), len(got))))
        self.checks.append(Check(
            mode=mode, stage=stage, clip=None, layer=None, passed=not bad,
            tolerance=self.tols[stage].to_dict(),
            metrics={"n": len(want), "n_out": len(bad), "fraction_out": len(bad) / max(len(want), 1),
                        "max_abs": None, "mean_abs": None, "max_rel": None, "rms": None, "snr_db": None,
                        "worst": {"index": [bad[0]], "axes": ["clip" if stage == "clip" else "file"],
                                  "ref": None, "got": None} if bad else None,
                        "compared": "sha256"}))

    def recorded(self, clip: int) -> list[str]:
        """The frontend stages of this config's chain that the references hold for `clip`, in order
        (OrcaHello's: load, downmix, resample, mel, db, input)."""
        return [s for s in self.fe.chain if f"clips/{clip:02d}/{s}" in self.ref.tensors]

    def clip_frontend(self, clip: int) -> Frontend:
        """The frontend with the random offsets legacy drew for `clip`, when the references recorded
        them (pad_mode "zeros", crops, max_to_pad; model/frontend/offsets.py)."""
        drawn = {name: int(self.ref.tensors[key][clip]) for name in ("zeros_front", "crop_start", "signal_front")
                 if (key := f"all/offsets/{name}") in self.ref.tensors and self.ref.tensors[key][clip] >= 0}
        return dataclasses.replace(self.fe, **drawn) if drawn else self.fe

    # -- chained -------------------------------------------------------------------------------
    def chained(self) -> None:
        ref, fe, art = self.ref, self.fe, self.art
        self.stage = "decode"
        with production_input(self.audio) as wav:   # a non-WAV: production's ffmpeg step first
            pcm = decode_pcm(wav)
        self.pcm = pcm
        d = ref.entry.get("decode")
        if d is not None:
            ok = d["sha256"] == _digest(pcm.samples) and d["shape"] == list(pcm.samples.shape) \
                and d["dtype"] == str(pcm.samples.dtype)
            self.digest_check("chained", "decode", [d["sha256"]], [_digest(pcm.samples) if ok else "differs"])
        self.stage = "clip"
        windows = windows_of(pcm.duration_s, self.audio.name, art.config.windowing)
        clips = [slice_ms(pcm, b * 1000, e * 1000) for b, e in windows]
        self.digest_check("chained", "clip", ref.entry["clip_sha256"], [_digest(c.samples) for c in clips])
        inputs = []
        for i, c in enumerate(clips):
            self.stage = "load"
            st = frontend_stages(c, self.clip_frontend(i))
            x = st["input"]
            inputs.append(x)
            if i in ref.full_clips:
                self.check("chained", "clip", ref.clip_stage(i, "clip"), c.samples, clip=i)
                for stage in self.recorded(i):
                    self.check("chained", stage, ref.clip_stage(i, stage), st[stage], clip=i)
                if i == ref.full_clips[0]:
                    for stage in (s for s in HEATMAP_STAGES if s in self.recorded(i)):
                        self.heatmaps[(ref.name, stage, i)] = (ref.clip_stage(i, stage)[0],
                                                               st[stage].numpy()[0])
        self.stage = "activations"
        pooled, logits = [], []
        with torch.inference_mode():
            for start in range(0, len(inputs), BATCH):
                out = art.network.forward_stages(torch.stack(inputs[start:start + BATCH]))
                pooled.append(out["pooled"])
                logits.append(out["logits"])
                for i in ref.activation_clips:
                    if start <= i < start + BATCH:
                        for layer in ACTIVATION_LAYERS:
                            self.check("chained", "activations", ref.clip_stage(i, f"activations/{layer}"),
                                       out[layer][i - start], clip=i, layer=layer)
        pooled_t, logits_t = torch.cat(pooled), torch.cat(logits)
        self.check("chained", "activations", ref.tensors["all/pooled"], pooled_t, layer="pooled")
        self.stage = "logits"
        self.check("chained", "logits", ref.tensors["all/logits"], logits_t)
        self.stage = "probs"
        probs = probabilities(logits_t)
        self.check("chained", "probs", ref.tensors["all/probs"], probs)
        self.stage = "aggregate"
        agg = self.check_aggregate("chained", probs[:, self.art.config.positive_index].double().numpy())
        self.series = Series(time_s=[int(t) for t in ref.tensors["aggregate/start_time_s"]],
                             legacy=[float(v) for v in ref.tensors["aggregate/confidence"]],
                             clean=[float(v) for v in agg.confidence],
                             threshold=self.art.config.aggregation.threshold)

    def check_aggregate(self, mode: str, confidences: np.ndarray) -> Any:
        """Per-second confidences within tolerance and every decision identical -- except a second
        whose legacy confidence lies within the tolerance of the threshold: legacy itself moves
        that much across machines (the envelope), so a flip there is reported as "unstable in
        legacy itself", counted, and never hidden; a flip anywhere else fails."""
        a = self.art.config.aggregation
        agg = aggregate(confidences, a.threshold, a.min_positive)
        t = self.ref.tensors
        band = self.tols["aggregate"].atol
        item = self.check(mode, "aggregate", t["aggregate/confidence"], np.asarray(agg.confidence))
        ref_conf = t["aggregate/confidence"]
        ref_local = t["aggregate/local_prediction"]
        got_local = np.asarray(agg.local_prediction)
        n = min(len(ref_local), len(got_local))
        unstable = np.abs(ref_conf - a.threshold) <= band
        flipped = np.flatnonzero(ref_local[:n] != got_local[:n])
        flips = [int(i) for i in flipped if not unstable[i]]
        unstable_flips = [int(i) for i in flipped if unstable[i]]
        stable_pos = int(np.sum(ref_local.astype(bool) & ~unstable))
        # the global decision is unstable when the unstable seconds can move the count across it
        global_unstable = stable_pos < a.min_positive <= stable_pos + int(unstable.sum())
        decisions = Decisions(
            rows_ref=int(len(ref_local)), rows_clean=int(len(got_local)),
            local_agreement=(n - len(flipped)) / max(len(ref_local), 1),
            local_flips=flips, unstable_flips=unstable_flips,
            unstable_seconds=int(unstable.sum()), unstable_band=band,
            min_distance=float(np.min(np.abs(ref_conf - a.threshold))) if len(ref_conf) else None,
            global_ref=int(t["aggregate/global_prediction"][0]),
            global_clean=int(agg.global_prediction), global_unstable=bool(global_unstable),
            global_confidence_ref=float(t["aggregate/global_confidence"][0]),
            global_confidence_clean=float(agg.global_confidence))
        item.decisions = decisions
        global_ok = decisions.global_ref == decisions.global_clean or global_unstable
        confidence_ok = bool(unstable_flips) or abs(decisions.global_confidence_ref -
                                                   decisions.global_confidence_clean) <= 100 * band
        item.passed = bool(item.passed and not flips and len(ref_local) == len(got_local)
                           and global_ok and confidence_ok)
        return agg

    # -- isolated ------------------------------------------------------------------------------
    def isolated(self) -> None:
        ref, fe, net = self.ref, self.fe, self.art.network
        decode_ok = all(c.passed for c in self.checks if c.stage == "decode")
        rate = self.pcm.sample_rate
        for i in ref.full_clips:
            if decode_ok:   # the clean decode equals legacy's bit for bit, so it *is* the legacy input
                b, e = ref.entry["clip_windows"][i]
                self.check("isolated", "clip", ref.clip_stage(i, "clip"),
                           slice_ms(self.pcm, b * 1000, e * 1000).samples, clip=i)
            samples = ref.clip_stage(i, "clip")
            pcm = PcmAudio(samples=samples, sample_rate=rate, sample_width=samples.dtype.itemsize)
            chain, clip_fe, prev = fe.chain, self.clip_frontend(i), "clip"
            for stage in self.recorded(i):     # each step fed legacy's own stage before it
                before = pcm if prev == "clip" else ref.clip_stage(i, prev)
                # steps legacy computes inline (delta, standardize) run here from its last recorded stage
                first = chain[chain.index(prev) + 1] if prev != "clip" else chain[0]
                got = run_steps(before, clip_fe, rate, first, stage)[stage]
                self.check("isolated", stage, ref.clip_stage(i, stage), got, clip=i)
                prev = stage
        with torch.inference_mode():
            for i in ref.activation_clips:
                prev = "input"
                for layer in ACTIVATION_LAYERS:
                    src = torch.from_numpy(ref.clip_stage(i, "input" if prev == "input" else
                                                          f"activations/{prev}"))[None]
                    got = net.forward_stages(src)[layer] if prev == "input" else \
                        net.forward_from(prev, src)[layer]
                    self.check("isolated", "activations", ref.clip_stage(i, f"activations/{layer}"),
                               got[0], clip=i, layer=layer)
                    prev = layer
            logits = net.forward_from("pooled", torch.from_numpy(ref.tensors["all/pooled"]))["logits"]
        self.check("isolated", "logits", ref.tensors["all/logits"], logits)
        probs = probabilities(torch.from_numpy(ref.tensors["all/logits"]))
        self.check("isolated", "probs", ref.tensors["all/probs"], probs)
        pos = self.art.config.positive_index
        self.check_aggregate("isolated", ref.tensors["all/probs"][:, pos].astype(np.float64))

    # -- one file ------------------------------------------------------------------------------
    def run(self) -> FileResult:
        legacy_error = self.ref.error
        clean_error = None
        try:
            self.chained()
            if legacy_error is None:
                self.isolated()
        except Exception as e:  # noqa: BLE001 - reported as the clean side's behaviour, not hidden
            clean_error = {"type": type(e).__name__, "message": str(e).splitlines()[0] if str(e) else "",
                           "stage": self.stage}
        if legacy_error is not None:
            # Legacy rejected this file: the reference behaviour is an error, so the clean side
            # must reject it too (with its own clear message) -- never invent a detection.
            self.checks.append(Check(mode="chained", stage=(clean_error or {}).get("stage", "aggregate"),
                                     clip=None, layer=None, passed=clean_error is not None,
                                     tolerance={"exact": True, "why": "legacy raised: clean must refuse too"},
                                     metrics={"legacy_error": legacy_error, "clean_error": clean_error}))
            status = "expected-error" if clean_error is not None else "error"
        elif clean_error is not None:
            self.checks.append(Check(mode="chained", stage=clean_error["stage"], clip=None,
                                     layer=None, passed=False,
                                     tolerance={"exact": True, "why": "legacy produced a result"},
                                     metrics={"clean_error": clean_error}))
            status = "error"
        else:
            status = "ok"
        order = {s: i for i, s in enumerate(STAGE_ORDER)}
        self.checks.sort(key=lambda c: (c.mode != "isolated", order[c.stage], c.clip or 0))
        return FileResult(name=self.ref.name, status=status,
                          legacy_error=None if legacy_error is None else ErrorInfo.from_dict(legacy_error),
                          clean_error=None if clean_error is None else ErrorInfo(**clean_error),
                          checks=self.checks, series=self.series)


def replay_file(ref: FileReference, audio: Path, art: Artifact,
                tols: dict[str, Tolerance]) -> tuple[FileResult, Heatmaps]:
    r = FileReplay(ref, audio, art, tols)
    return r.run(), r.heatmaps

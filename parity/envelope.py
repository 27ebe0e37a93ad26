"""The legacy pipeline's own reproducibility envelope, and the tolerances derived from it.

Runs in both environments (numpy + safetensors + json). `make envelope` (convert/envelope.py,
legacy env) runs legacy again under several kernel paths -- the baseline on every clip, compared
with `compare_sets`; each variant on the references' full-stage clips only, compared with
`compare_clips` -- and the committed `reference_outputs/envelope.json` holds those comparisons. `derive`
turns them into `parity/tolerances.json`: per stage, the envelope figure in the metric that fits the
stage times a stated safety factor (never below the stage's floor). An option stage of
fastai_audio (parity/metrics.py OPTION_TOLERANCE: silence, pad_signal, mfcc, standardize, delta ...)
the envelope measured gets its own entry under its parent stage's policy; parity falls back to
the parent's entry for one it did not measure. A test recomputes `derive` from the committed
envelope and fails when the two files disagree.

    python -m orcaport.parity.envelope derive --envelope reference_outputs/envelope.json --out parity/tolerances.json

(no defaults: an installed package has neither the checkout's envelope nor a tolerances file it
should overwrite; `make tolerances` passes both). Exit codes (model/errors.py): 3 an unreadable
envelope, 5 the tolerances cannot be written.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import sys
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from orcaport.model.errors import ExitCode, InputError, OrcaportError, report_error
from orcaport.parity.diffstats import diff_stats
from orcaport.parity.metrics import OPTION_TOLERANCE
from orcaport.parity.references import References

POLICY = Path(__file__).with_name("tolerance_policy.json")
# Kernel-path variants, name -> (environment, torch threads): each switch alone, then all of them
# together. `make envelope` records legacy under each; `make variants` replays under each.
VARIANTS: dict[str, tuple[dict[str, str], int]] = {
    "baseline": ({}, 1),
    "threads-2": ({}, 2),
    "aten-default": ({"ATEN_CPU_CAPABILITY": "default"}, 1),
    "aten-avx2": ({"ATEN_CPU_CAPABILITY": "avx2"}, 1),
    "mkl-avx2": ({"MKL_ENABLE_INSTRUCTIONS": "AVX2"}, 1),
    "mkl-sse42": ({"MKL_ENABLE_INSTRUCTIONS": "SSE4_2"}, 1),
    "mkl-cbwr-compatible": ({"MKL_CBWR": "COMPATIBLE"}, 1),
    "onednn-avx2": ({"ONEDNN_MAX_CPU_ISA": "AVX2"}, 1),
    "onednn-sse41": ({"ONEDNN_MAX_CPU_ISA": "SSE41"}, 1),
    "most-different": ({"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
                        "MKL_CBWR": "COMPATIBLE", "ONEDNN_MAX_CPU_ISA": "SSE41"}, 2),
}
# oneDNN kernels above AVX2 need one of these CPU flags; without them a cap at AVX2 changes nothing.
ONEDNN_ABOVE_AVX2 = ("avx512f", "avx_vnni", "avx_vnni_int8", "avx_ne_convert", "amx_tile")


def same_as_baseline(name: str, aten_level: str, cpu_flags: frozenset[str]) -> str | None:
    """Why variant `name` would run exactly the baseline's kernels on this machine (so running it
    measures nothing), or None. Only single-switch caps at or above what the machine already runs
    qualify: ATEN_CPU_CAPABILITY equal to the dispatch level the baseline uses, ONEDNN_MAX_CPU_ISA=AVX2
    on a CPU with nothing above AVX2 for oneDNN. MKL's switches are never skipped: which path MKL
    takes by default (it differs by CPU vendor) cannot be read from outside it."""
    env, threads = VARIANTS[name]
    if threads != 1 or len(env) != 1:
        return None
    (key, value), = env.items()
    if key == "ATEN_CPU_CAPABILITY" and value.lower() == aten_level.lower():
        return f"ATen already dispatches at {aten_level.upper()} here"
    if key == "ONEDNN_MAX_CPU_ISA" and value == "AVX2" and not any(f in cpu_flags for f in ONEDNN_ABOVE_AVX2):
        return "no CPU flag for a oneDNN ISA above AVX2 here"
    return None


MAX_STATS = ("max_abs", "p99_abs", "p999_abs", "max_rel", "rel_to_max", "max_log_power_db")
DIGEST_STAGES = ("decode", "clip")
# the random offsets legacy drew (pad_mode "zeros", crops, max_to_pad), compared exactly: a variant
# seeds Python's random per clip as the references did, so its draws must be theirs
OFFSETS = "offsets"


def is_offset(key: str) -> bool:
    return re.match(r"(all|clips/\d+)/offsets/", key) is not None


def stage_of(key: str) -> str:
    """Reference tensor key -> stage name (the one vocabulary: model/stages.py)."""
    if key == "all/pooled":
        return "pooled"
    if is_offset(key):
        return ""       # compared exactly, as a digest (OFFSETS)
    if key.startswith("all/"):
        return key[4:]
    if key == "aggregate/confidence":
        return "aggregate"
    m = re.match(r"clips/\d+/(activations)/", key) or re.match(r"clips/\d+/(\w+)$", key)
    return m.group(1) if m else ""


def fold_stats(acc: dict[str, dict[str, Any]], stage: str, stats: dict[str, Any]) -> None:
    """Fold one tensor's diff_stats into its stage's row: maxima of the max stats, min of SNR."""
    row = acc.setdefault(stage, {"tensors": 0, "snr_db": None, **{k: 0.0 for k in MAX_STATS}})
    row["tensors"] += 1
    for k in MAX_STATS:
        v = stats.get(k)
        if v is None:
            if k == "max_log_power_db" or stats.get("max_abs") == 0.0:
                continue
            v = math.inf
        row[k] = max(row[k], v)
    if stats.get("snr_db") is not None:
        row["snr_db"] = stats["snr_db"] if row["snr_db"] is None else min(row["snr_db"], stats["snr_db"])


def compare_sets(base: References, other: References, threshold: float = 0.5) -> dict[str, Any]:
    """Stage statistics of `other` against `base` (max over files and clips; SNR: min), plus the
    decisions: local/global flips and how near base's confidences come to the threshold."""
    stages: dict[str, dict[str, Any]] = {}
    digests = {s: {"compared": 0, "differ": 0} for s in DIGEST_STAGES + (OFFSETS,)}
    decisions = {"seconds": 0, "local_flips": 0, "global_flips": 0, "errors_differ": 0,
                 "flip_distance": None, "min_distance": None}
    by_name = {f.name: f for f in other.files}
    for b in base.files:
        o = by_name.get(b.name)
        if o is None or (b.error is None) != (o.error is None):
            decisions["errors_differ"] += 1
            continue
        if "decode" in b.entry and "decode" in o.entry:
            digests["decode"]["compared"] += 1
            digests["decode"]["differ"] += b.entry["decode"]["sha256"] != o.entry["decode"]["sha256"]
        if b.error is not None:
            continue
        for x, y in zip(b.entry["clip_sha256"], o.entry["clip_sha256"]):
            digests["clip"]["compared"] += 1
            digests["clip"]["differ"] += x != y
        for key in sorted(set(b.tensors) & set(o.tensors)):
            if is_offset(key):
                digests[OFFSETS]["compared"] += 1
                digests[OFFSETS]["differ"] += not np.array_equal(b.tensors[key], o.tensors[key])
            stage = stage_of(key)     # "" for the aggregate decisions, compared below
            if stage:
                fold_stats(stages, stage, diff_stats(b.tensors[key], o.tensors[key]))
        conf = b.tensors["aggregate/confidence"]
        dist = np.abs(conf - threshold)
        flips = np.flatnonzero(b.tensors["aggregate/local_prediction"] != o.tensors["aggregate/local_prediction"])
        decisions["seconds"] += int(conf.size)
        decisions["local_flips"] += int(flips.size)
        decisions["global_flips"] += int(b.tensors["aggregate/global_prediction"][0]
                                         != o.tensors["aggregate/global_prediction"][0])
        if conf.size:
            near = float(dist.min())
            decisions["min_distance"] = near if decisions["min_distance"] is None else min(decisions["min_distance"], near)
        if flips.size:
            far = float(dist[flips].max())
            decisions["flip_distance"] = far if decisions["flip_distance"] is None else max(decisions["flip_distance"], far)
    return {"stages": dict(sorted(stages.items())), "digests": digests, "decisions": decisions}


def _reference_of(b: Any, key: str) -> np.ndarray | None:
    """`b`'s tensor for a sampled clip's key: the clip's own stage, or its row of the every-clip
    tensors (all/logits, all/probs, all/pooled) when `b` did not keep that clip in full."""
    if key in b.tensors:
        return b.tensors[key]
    _, index, stage = key.split("/", 2)
    every = b.tensors.get(f"all/{stage}")
    return None if every is None or int(index) >= len(every) else every[int(index)]


def compare_clips(base: References, files: dict[str, dict[str, Any]], tensors: dict[str, dict[str, np.ndarray]],
                  positive: int, threshold: float = 0.5) -> dict[str, Any]:
    """Stage statistics of a variant measured on `base`'s full-stage clips only (convert/envelope_clips.py:
    `files` its clips.json entries, `tensors` its tensors per file) against `base`, in compare_sets'
    shape: every stage of those clips; pooled against base's all/pooled rows. The aggregate row is
    bounded by the clips' probabilities (a second's confidence is the mean of at most two clip
    probabilities, so it moves no more than they do). Decisions: clips whose probability crosses
    the threshold, and how near base's clip probabilities come to it."""
    stages: dict[str, dict[str, Any]] = {}
    digests = {s: {"compared": 0, "differ": 0} for s in DIGEST_STAGES + (OFFSETS,)}
    decisions = {"clips": 0, "clip_flips": 0, "errors_differ": 0, "flip_distance": None, "min_distance": None}
    for b in base.files:
        got = files.get(b.name)
        if got is None or (b.error is None) != ("error" not in got):
            decisions["errors_differ"] += 1
            continue
        if "decode" in b.entry and got.get("decode"):
            digests["decode"]["compared"] += 1
            digests["decode"]["differ"] += b.entry["decode"]["sha256"] != got["decode"]["sha256"]
        if b.error is not None:
            continue
        t = tensors.get(b.name, {})
        for key in sorted(t):
            ref = _reference_of(b, key)
            stage = stage_of(key)
            if ref is not None and is_offset(key):
                digests[OFFSETS]["compared"] += 1
                digests[OFFSETS]["differ"] += not np.array_equal(ref, t[key])
            if ref is None or not stage:
                continue
            if stage == "clip":
                digests["clip"]["compared"] += 1
                digests["clip"]["differ"] += not np.array_equal(ref, t[key])
            fold_stats(stages, stage, diff_stats(ref, t[key]))
            if stage == "probs":
                p, q = float(ref[positive]), float(t[key][positive])
                fold_stats(stages, "aggregate", diff_stats(np.array([p]), np.array([q])))
                decisions["clips"] += 1
                near = abs(p - threshold)
                decisions["min_distance"] = near if decisions["min_distance"] is None else min(decisions["min_distance"], near)
                if (p > threshold) != (q > threshold):
                    decisions["clip_flips"] += 1
                    far = decisions["flip_distance"]
                    decisions["flip_distance"] = near if far is None else max(far, near)
    return {"stages": dict(sorted(stages.items())), "digests": digests, "decisions": decisions,
            "measured_on": "full-stage clips"}


def envelope_value(envelope: dict[str, Any], regime: str, stage: str, metric: str) -> tuple[float, str]:
    """-> (max of `metric` over the regime's comparisons, the comparison it came from)."""
    best, where = 0.0, "none"
    for c in envelope["comparisons"]:
        if regime not in c["regimes"]:
            continue
        if stage in DIGEST_STAGES:
            v = float(c["digests"].get(stage, {}).get("differ", 0))
        else:
            row = c["stages"].get(stage)
            v = 0.0 if row is None else row.get(metric)
            v = math.inf if v is None else float(v)
        if where == "none" or v > best:
            best, where = v, c["name"]
    return best, where


def round_up(x: float, digits: int = 2) -> float:
    """Round up to `digits` significant figures (a tolerance is never rounded below its figure)."""
    if x <= 0 or not math.isfinite(x):
        return x
    e = math.floor(math.log10(x)) - digits + 1
    return float(f"{math.ceil(x / 10.0**e - 1e-9)}e{e}")   # via text: 1.3e-06, not 1.2999...e-06


def measured_options(envelope: dict[str, Any]) -> list[str]:
    """The option stages (OPTION_TOLERANCE) some comparison of `envelope` has figures for."""
    return [s for s in OPTION_TOLERANCE if any(s in c["stages"] for c in envelope["comparisons"])]


def check_offsets(envelope: dict[str, Any]) -> None:
    """Refuse an envelope whose runs drew other random offsets than the references: their option
    stages would compare different pads and crops, not kernel paths."""
    for c in envelope["comparisons"]:
        if c.get("digests", {}).get(OFFSETS, {}).get("differ"):
            raise ValueError(f"{c['name']}: legacy drew other random offsets than the references "
                             f"({c['digests'][OFFSETS]['differ']} differ); re-record the references "
                             "with this checkout's `make references`, then `make envelope`")


def derive(envelope: dict[str, Any], policy: dict[str, Any], envelope_sha256: str) -> dict[str, Any]:
    """The tolerances file for `envelope` under `policy` (see parity/tolerance_policy.json); each
    option stage the envelope measured under its parent stage's policy, on its own figure."""
    check_offsets(envelope)
    factor = float(policy["safety_factor"])
    stages: dict[str, Any] = {}
    # a predict envelope (convert/predict_envelope.py) measures predict's stages only: no clips, no
    # activations, no aggregate -- its file holds the stages it measured and serves predict parity
    mode = envelope.get("mode", "windowed")
    measured = {s for c in envelope["comparisons"] for s in c["stages"]}
    rules = [(stage, p, "") for stage, p in policy["stages"].items() if mode == "windowed" or stage in measured]
    rules += [(s, policy["stages"][OPTION_TOLERANCE[s]],
               f"option stage {s}, judged by its parent {OPTION_TOLERANCE[s]}'s policy on its own envelope: ")
              for s in measured_options(envelope)]
    for stage, p, option in rules:
        entry: dict[str, Any] = {}
        for regime in ("same_machine", "cross_machine"):
            crit = {k: v for k, v in p.items() if k not in ("metric", "floor", "why")}
            figure, source = envelope_value(envelope, regime, stage, p.get("metric", "max_abs"))
            if p.get("exact"):
                if figure != 0:
                    raise ValueError(f"stage {stage} is declared exact but the envelope measured "
                                     f"{figure} differing in {source}; revise tolerance_policy.json")
                crit["why"] = f"{p['why']}; envelope: 0 differing ({regime.replace('_', ' ')})"
            else:
                scaled = factor * figure
                value = float(p["floor"]) if scaled <= float(p["floor"]) else round_up(scaled)
                crit["atol"] = value
                crit["why"] = (f"{option}{p['why']}; envelope {p['metric']} = {figure:.3g} ({source}) x "
                               f"{factor:g} = {factor * figure:.3g}, floor {p['floor']:g} -> {value:.3g}")
                crit["derived"] = {"metric": p["metric"], "envelope": figure, "from": source,
                                   "factor": factor, "floor": float(p["floor"])}
            entry[regime] = crit
        stages[stage] = entry
    return {"version": 2, "comment": policy["comment"], "safety_factor": factor,
            "envelope_sha256": envelope_sha256, **({"mode": mode} if mode != "windowed" else {}), "stages": stages}


def derive_files(envelope_path: Path, policy_path: Path = POLICY) -> dict[str, Any]:
    raw = envelope_path.read_bytes()
    return derive(json.loads(raw), json.loads(policy_path.read_text()), hashlib.sha256(raw).hexdigest())


def render(tolerances: dict[str, Any]) -> bytes:
    return (json.dumps(tolerances, indent=2) + "\n").encode()


def main(argv: Iterable[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m orcaport.parity.envelope", description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=["derive"])
    ap.add_argument("--envelope", type=Path, required=True, help="the envelope make envelope measured")
    ap.add_argument("--out", type=Path, required=True, help="the tolerances file to write")
    args = ap.parse_args(list(argv) if argv is not None else None)
    from orcaport.model.fileio import write_output_file
    try:
        try:
            blob = render(derive_files(args.envelope))
        except (OSError, ValueError, KeyError) as e:
            raise InputError(f"cannot derive tolerances from {args.envelope} ({e}); run `make envelope`") from None
        write_output_file(args.out, blob)
    except (OrcaportError, KeyboardInterrupt) as e:
        return report_error(None, e)
    print(f"wrote {args.out}")
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())

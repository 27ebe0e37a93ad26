"""What a reference set stores per file, and how big it will be before a byte is written.

Every clip: its samples' sha256 (exact stage), logits, probs and pooled features. A few clips per
file in full (every stage from the clip samples to the network input): the first, the last, the
most confident, and the `near` clips whose legacy confidence lies nearest the decision threshold
-- the ones a flip would come from. Activations of every block for one clip in the whole set (the
flagship's most confident clip, else the first file's): they are megabytes per clip.
Runs in the legacy env (numpy only here).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from convert.production import clip_windows
from orcaport.model.bodies import stage_shapes
from orcaport.model.config import ModelConfig, WindowingConfig
from orcaport.model.spectrogram import input_width
from orcaport.parity.audio_manifest import legacy_input

FLAGSHIP = "hydrophone_48k_mono16_60s.wav"


def sampled_clips(probs: np.ndarray, threshold: float, near: int) -> list[int]:
    """-> sorted clip indices stored in full: first, last, most confident, `near` nearest the
    threshold (ties: the earlier clip)."""
    n = len(probs)
    if not n:
        return []
    chosen = {0, n - 1, int(np.argmax(probs))}
    order = np.argsort(np.abs(probs - threshold), kind="stable")
    chosen |= {int(i) for i in order[:near]}
    return sorted(chosen)


def activation_owner(names_with_clips: list[str]) -> str | None:
    """The one file whose most confident clip keeps its activations."""
    if FLAGSHIP in names_with_clips:
        return FLAGSHIP
    return names_with_clips[0] if names_with_clips else None


def clips_of(duration_s: float | None, windowing: WindowingConfig | None = None) -> int:
    """How many windows legacy cuts of a file."""
    return len(clip_windows(duration_s, windowing)) if duration_s else 0


def _input_shape(cfg: ModelConfig) -> tuple[int, int]:
    fe = cfg.frontend
    rate = fe.resample_to or 48000
    frames = 1 + cfg.windowing.clip_seconds * rate // (fe.hop_length or 256)
    width = input_width(fe, rate) or frames
    return fe.n_mels, max(width, frames)


def bytes_per_full_clip(entry: dict[str, Any], cfg: ModelConfig) -> int:
    """clip samples + load + downmix + resample + mel + db + input (float32/int32 upper bound)."""
    rate, ch = entry.get("sample_rate") or 48000, entry.get("channels") or 1
    seconds = cfg.windowing.clip_seconds
    wave = seconds * rate * 4
    fe = cfg.frontend
    out_rate = fe.resample_to or rate
    mels, width = _input_shape(cfg)
    frames = 1 + seconds * out_rate // (fe.hop_length or 256)
    return 2 * wave * ch + wave + seconds * out_rate * 4 + 2 * mels * frames * 4 + mels * width * 4 \
        + 8 * cfg.num_classes


def bytes_per_clip(cfg: ModelConfig) -> int:
    """logits + probs (float32) + pooled features for every clip."""
    return 8 * cfg.num_classes + 4 * cfg.architecture.head.lin_ftrs[0]


def activation_bytes(cfg: ModelConfig) -> int:
    """float32 bytes of one clip's activations (stem, layer1..4, pooled), for any body."""
    mels, width = _input_shape(cfg)
    arch = cfg.architecture
    total = sum(math.prod(s) for s in stage_shapes(arch.body, arch.in_channels, mels, width))
    return 4 * (total + arch.head.lin_ftrs[0])


def estimate(entries: list[dict[str, Any]], cfg: ModelConfig, near: int) -> dict[str, Any]:
    """-> {'clips', 'bytes', 'full_clips'} for the reference set of `entries` (upper bound)."""
    entries = [legacy_input(e) for e in entries]    # a converted file: the WAV legacy reads
    clips = [clips_of(e.get("duration_s"), cfg.windowing) for e in entries]
    full = [min(n, 3 + near) for n in clips]
    total = sum(n * bytes_per_clip(cfg) + f * bytes_per_full_clip(e, cfg) + 16 * (n + 1)
                for n, f, e in zip(clips, full, entries))
    total += activation_bytes(cfg) if any(clips) else 0
    return {"clips": sum(clips), "full_clips": sum(full), "bytes": int(total)}


def plan_within_budget(entries: list[dict[str, Any]], cfg: ModelConfig, near: int,
                       budget_bytes: int) -> tuple[int, dict[str, Any]]:
    """-> (near-threshold clips per file that fit, its estimate); raises ValueError when even the
    minimum (every clip's digests/logits/probs/pooled, three full clips per file) does not fit."""
    for k in range(near, -1, -1):
        est = estimate(entries, cfg, k)
        if est["bytes"] <= budget_bytes:
            return k, est
    raise ValueError(f"the references need at least {estimate(entries, cfg, 0)['bytes'] / 1e6:.0f} MB "
                     f"(every clip's logits/probs/pooled features) but the budget is "
                     f"{budget_bytes / 1e6:.0f} MB; raise BUDGET_MB= or record a smaller AUDIO= folder")

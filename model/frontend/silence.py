"""fastai_audio's `remove_silence` option (`tfm_remove_silence`), on one signal.

    nonsilent_intervals  librosa.effects.split(y, top_db, hop_length): frames whose RMS lies within
                         top_db of the loudest frame's, as sample intervals      -> (K, 2) int64
    merge_intervals      fastai_audio's merge: neighbours closer than 2 * pad joined, each widened
                         by pad (clamped to [0, end of the last interval])        -> (K', 2) int64
    remove_silence       "split": one signal per merged interval, widened by pad AGAIN (legacy
                         pads twice, so pieces can overlap); "trim": from the first interval's start
                         - pad to the last one's end + pad; "all": the "split" pieces concatenated
                         (C, N) float32 -> list of (C, n) float32

The padding in samples, int(pad_ms / 1000 * rate), is also librosa's hop; a signal shorter than it
is kept whole. Every number is the float32 arithmetic librosa 0.10 does (its rms and
amplitude_to_db), so the same frames are silent: tested against librosa and fastai_audio.
"""

from __future__ import annotations

import numpy as np

from orcaport.model.errors import OrcaportError

FRAME_LENGTH = 2048           # librosa.effects.split's default frame
AMIN = 1e-5                   # librosa amplitude_to_db's floor (squared: 1e-10 in power)
MODES = ("trim", "split", "all")


class SilenceError(OrcaportError, ValueError):
    """remove_silence cannot run on this signal or config (legacy fails there too)."""


def frame_rms(y: np.ndarray, hop: int, frame_length: int = FRAME_LENGTH) -> np.ndarray:
    """librosa.feature.rms(y, frame_length, hop, center=True, pad_mode="constant") without its
    channel axis: zero-padded by frame_length // 2 each side, mean of squares per frame in float32,
    square root.   (C, N) float32 -> (C, 1 + N // hop) float32"""
    half = frame_length // 2
    padded = np.pad(np.asarray(y, dtype=np.float32), [(0, 0), (half, half)], mode="constant")
    frames = np.lib.stride_tricks.sliding_window_view(padded, frame_length, axis=-1)
    frames = np.moveaxis(frames, -1, -2)[..., ::hop]          # (C, frame_length, T), librosa's layout
    return np.sqrt(np.mean(np.power(frames, 2, dtype=np.float32), axis=-2))


def nonsilent_frames(y: np.ndarray, top_db: float, hop: int) -> np.ndarray:
    """Frames louder than -top_db dB relative to the loudest frame of any channel, the loudest
    channel deciding (librosa's aggregate=np.max).   (C, N) -> (1 + N // hop,) bool"""
    rms = np.abs(frame_rms(y, hop))
    ref = np.float32(rms.max())
    # librosa: 10 log10(max(amin^2, rms^2)) in float32, minus 10 log10(max(amin^2, ref^2)) computed
    # in float64 (numpy 1.x promotes the scalars) and rounded to float32 by the in-place subtract
    db = np.float32(10.0) * np.log10(np.maximum(np.float32(AMIN ** 2), np.square(rms)))
    db -= np.float32(10.0 * np.log10(max(AMIN ** 2, float(np.square(ref)))))
    return db.max(axis=0) > -top_db


def nonsilent_intervals(y: np.ndarray, top_db: float, hop: int) -> np.ndarray:
    """librosa.effects.split: runs of non-silent frames as [start, end) samples, clamped to N.
    (C, N) -> (K, 2) int64"""
    loud = nonsilent_frames(y, top_db, hop).astype(np.int64)
    edges = np.flatnonzero(np.diff(np.concatenate(([0], loud, [0]))))   # run starts and ends
    return np.minimum(edges * hop, np.asarray(y).shape[-1]).reshape(-1, 2).astype(np.int64)


def merge_intervals(intervals: np.ndarray, pad: int) -> np.ndarray:
    """fastai_audio's `_merge_splits`: walk the intervals, extending the current group while the
    gap to the next is at most 2 * pad (and the group does not already end where the last interval
    ends), then widen each group by pad, clamped to [0, last end].   (K, 2) -> (K', 2) int64"""
    if len(intervals) == 0:
        raise SilenceError("no non-silent interval (silence_threshold <= 0 dB makes every frame "
                           "silent; legacy fails with IndexError); use a positive silence_threshold")
    last_end = int(intervals[-1][1])
    groups: list[list[int]] = []
    for start, end in intervals.tolist():
        if groups and groups[-1][1] < last_end and start - groups[-1][1] <= 2 * pad:
            groups[-1][1] = end
        else:
            groups.append([start, end])
    return np.array([[max(a - pad, 0), min(b + pad, last_end)] for a, b in groups], dtype=np.int64)


def padding_samples(pad_ms: float, rate: int) -> int:
    """fastai_audio's silence padding in samples (also the split's hop): int(pad_ms / 1000 * rate)."""
    return int(pad_ms / 1000 * rate)


def remove_silence(sig: np.ndarray, rate: int, mode: str, threshold: float, pad_ms: float) -> list[np.ndarray]:
    """tfm_remove_silence.   (C, N) float32 -> ["split": K', else 1] x (C, n) float32"""
    if mode not in MODES:
        raise SilenceError(f"remove_silence={mode!r}: fastai_audio's options are None, 'split', "
                           "'trim', 'all'")
    n = sig.shape[-1]
    pad = padding_samples(pad_ms, rate)
    if pad > n:
        return [sig]
    if pad < 1:
        raise SilenceError(f"silence_padding={pad_ms} ms is under one sample at {rate} Hz: librosa's "
                           "split needs a hop of at least 1 sample (legacy fails); raise it")
    intervals = nonsilent_intervals(sig, threshold, pad)
    if mode == "trim":
        if len(intervals) == 0:
            raise SilenceError("no non-silent interval to trim to (legacy fails with IndexError); "
                               "use a positive silence_threshold")
        return [sig[:, max(int(intervals[0, 0]) - pad, 0):int(intervals[-1, 1]) + pad]]
    pieces = [sig[:, max(a - pad, 0):min(b + pad, n)] for a, b in merge_intervals(intervals, pad).tolist()]
    return pieces if mode == "split" else [np.concatenate(pieces, axis=-1)]

"""Each fastai_audio option ablated in the clean runtime: the negative controls the option tests
(test_zoo_options.py, test_option_parity_legacy.py, test_predict_parity_legacy.py) apply with
`monkeypatch.setattr(owner, name, replacement)`. Each must make parity fail first at its stage."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import torch

import orcaport.model.frontend.features as features
import orcaport.model.pipeline as pipeline
import orcaport.parity.predict_parity as predict_parity
from orcaport.parity.replay import FileReplay

Ablation = tuple[Any, str, Any]     # (owner, attribute, replacement)


def without_draw(offset: str) -> Callable[..., Any]:
    """FileReplay.clip_frontend with the runtime's own `offset` instead of the one legacy drew."""
    real = FileReplay.clip_frontend
    return lambda self, clip: dataclasses.replace(real(self, clip), **{offset: None})


SILENCE_KEPT: Ablation = (pipeline, "remove_silence", lambda sig, *a: [sig])
SEGMENTS_NOT_CUT: Ablation = (pipeline, "segment_signal", lambda sig, rate, ms: [sig])
# trimming keeps the signal's end instead of legacy's drawn start
SIGNAL_END_KEPT: Ablation = (pipeline, "pad_or_trim_signal",
                             lambda sig, width, front=None, real=pipeline.pad_or_trim_signal:
                             real(sig[:, -width:], width, front))
# MFCC's filterbank at the plain mel path's 16 kHz instead of the signal's rate
MFCC_AT_16K: Ablation = (features, "mel_spectrogram",
                         lambda wave, cfg, real=features.mel_spectrogram:
                         real(wave, dataclasses.replace(cfg, filterbank_sample_rate=16000)))
STANDARDIZE_SKIPPED: Ablation = (pipeline, "standardize", lambda x: x)
# the spectrogram stacked three times instead of with its first and second deltas
DELTAS_AS_COPIES: Ablation = (pipeline, "deltas", lambda x: torch.cat([x, x, x]))
# legacy's random draws not replayed: the runtime's middle offsets (windowed; predict)
ZEROS_DRAW_NOT_REPLAYED: Ablation = (FileReplay, "clip_frontend", without_draw("zeros_front"))
PADTRIM_DRAW_NOT_REPLAYED: Ablation = (FileReplay, "clip_frontend", without_draw("signal_front"))
PREDICT_DRAWS_NOT_REPLAYED: Ablation = (predict_parity, "item_offsets", lambda t, n: [{}] * n)

"""The fixture's training set, drawn from the synthetic scenes of synth.py: 2 s clips, positives
with one or two vocalizations, negatives with none, over the same random backgrounds. Runs in both
environments (numpy + scipy): the fixture learner is trained on it in the legacy env
(`make fixture`), the bench's stand-in in the clean env, and both must hear the same audio.
"""

from __future__ import annotations

import numpy as np

from orcaport.parity.testaudio.synth import (CALL_SECONDS, DEFAULT_SAMPLE_RATE, WHISTLE_SECONDS, Background,
                                             CallSpec, render)

LABELS = ("negative", "positive")          # fastai sorts classes: index 1 is "positive"

# Training-set distributions: SNRs span easy to barely visible; the background (ships included) is
# drawn identically for both labels so only the vocalization separates them.
TRAIN_SNR_DB = (-18.0, 12.0)
TRAIN_AMBIENT_DBFS = (-52.0, -34.0)
TRAIN_SHIP_DB = (0.0, 30.0)
TRAIN_SHIP_PROB = 0.5
TRAIN_SNAP_RATE_HZ = (0.0, 4.0)
TRAIN_WHISTLE_PROB = 0.25
TRAIN_CLICKS_PROB = 0.25
PEAK_LIMIT = 0.98                          # clips are scaled down, never clipped


def synth_clip(rng: np.random.Generator, seconds: float, sample_rate: int, *, calls: int,
               snr_db: float | None = None) -> np.ndarray:
    """A training-style clip: random background plus `calls` vocalizations (0: a negative).
    Calls (pulsed, sometimes whistles, sometimes with a click train) lie fully inside the clip;
    `snr_db` None draws each from TRAIN_SNR_DB. Peaks above PEAK_LIMIT scale the clip down."""
    ship_on = rng.random() < TRAIN_SHIP_PROB
    ship_db, cpa_s, pass_s = rng.uniform(*TRAIN_SHIP_DB), rng.uniform(-10.0, 12.0), rng.uniform(4.0, 20.0)
    background = Background(rng.uniform(*TRAIN_AMBIENT_DBFS), ship_db if ship_on else None, cpa_s,
                            pass_s, rng.uniform(*TRAIN_SNAP_RATE_HZ))
    specs = []
    for _ in range(calls):
        kind = "whistle" if rng.random() < TRAIN_WHISTLE_PROB else "call"
        span = CALL_SECONDS if kind == "call" else WHISTLE_SECONDS
        duration = min(rng.uniform(*span), 0.9 * seconds)
        snr = rng.uniform(*TRAIN_SNR_DB) if snr_db is None else snr_db
        specs.append(CallSpec(rng.uniform(0.0, seconds - duration), kind, snr, duration))
        if rng.random() < TRAIN_CLICKS_PROB:
            specs.append(CallSpec(rng.uniform(0.0, 0.5 * seconds), "clicks", snr + rng.uniform(-6.0, 6.0)))
    audio, _ = render(rng, int(round(seconds * sample_rate)), sample_rate, background, specs)
    peak = float(np.max(np.abs(audio)))
    return audio * (PEAK_LIMIT / peak) if peak > PEAK_LIMIT else audio


def training_example(seed: int, index: int, positive: bool, seconds: float = 2.0,
                     sample_rate: int = DEFAULT_SAMPLE_RATE) -> np.ndarray:
    """Clip `index` of one label; each has its own seed, so examples never depend on set size."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, int(positive), index]))
    calls = 1 + int(rng.random() < 0.3) if positive else 0
    return synth_clip(rng, seconds, sample_rate, calls=calls)


def make_training_set(seed: int, n_pos: int, n_neg: int, seconds: float = 2.0,
                      sample_rate: int = DEFAULT_SAMPLE_RATE) -> list[tuple[np.ndarray, str]]:
    """`n_pos` positives then `n_neg` negatives as (float64 mono audio, "positive"/"negative")."""
    return ([(training_example(seed, i, True, seconds, sample_rate), LABELS[1]) for i in range(n_pos)]
            + [(training_example(seed, i, False, seconds, sample_rate), LABELS[0]) for i in range(n_neg)])

"""Deterministic synthetic hydrophone audio: SRKW-like calls, whistles and clicks over ocean noise.

The parity corpus and the fixture learner need audio with known content that anyone can regenerate
offline. Pulsed calls are harmonic stacks whose fundamental is the pulse repetition rate (300-3000
Hz) bending over 0.5-1.5 s, formant-shaped, sometimes "two-voiced" (a 4-9 kHz component); whistles
are FM tones at 3-9 kHz; echolocation clicks are broadband transients every 10-80 ms. Background:
pink/brown sea-state noise, a passing ship (20-1000 Hz broadband, Doppler-shifted blade harmonics,
blade-rate-modulated cavitation, sometimes a gear whine) and snapping shrimp.
`snr_db` is vocalization RMS (over its own span) over the sea-state RMS; `ship_db` is relative to
the same floor, so a loud ship masks calls without changing the label.

Determinism: all draws come from an explicit `np.random.Generator` (PCG64 streams are stable across
numpy releases); samples are touched only by IEEE-exact arithmetic, cumulative sums and
`scipy.signal.lfilter`. numpy's SIMD `exp`/`power` and pairwise `np.sum` differ in the last bit
between numpy 1.26 and 2.x on this AVX-512 machine (measured), so this module brings its own
polynomial sine and in-order sums: the legacy and clean envs produce bit-identical audio. Runs in
both environments (numpy + scipy): the fixture learner is trained on it in the legacy env.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from scipy.signal import lfilter

DEFAULT_SAMPLE_RATE = 48_000

MAX_PARTIAL_HZ = 11_000.0                  # the legacy mel stops at 10 kHz; keep a little margin
NYQUIST_GUARD = 0.45                       # partials stay below 0.45*sr: no aliasing even at 8 kHz
TAPER_HZ = 500.0                           # partials fade out over this band below the limit
CALL_SECONDS = (0.5, 1.5)
WHISTLE_SECONDS = (0.5, 2.0)
CLICK_TRAIN_SECONDS = (0.3, 1.2)
PULSE_RATE_HZ = (300.0, 3000.0)
WHISTLE_HZ = (3000.0, 9000.0)
HFC_HZ = (4000.0, 9000.0)
CLICK_INTERVAL_S = (0.01, 0.08)
WARMUP = 4096                              # samples discarded while IIR noise filters settle
SOUND_SPEED_M_S = 1500.0                   # in sea water, for the ship's Doppler shift

_SIN_COEFFS = tuple((-1.0) ** j / math.factorial(2 * j + 1) for j in range(11))[::-1]
# Pink-noise filter (R. Bristow-Johnson): -3 dB/octave within ~1 % over three decades below fs/2.
_PINK_B = (0.049922035, -0.095993537, 0.050612699, -0.004408786)
_PINK_A = (1.0, -2.494956002, 2.017265875, -0.522189400)


def sin_cycles(cycles: np.ndarray) -> np.ndarray:
    """sin(2*pi*cycles) from IEEE-exact operations only, so it is identical on every numpy: the
    argument is folded to a quarter period, where 11 Taylor terms are exact to < 1e-16."""
    r = cycles - np.floor(cycles + 0.5)
    r = np.where(r > 0.25, 0.5 - r, np.where(r < -0.25, -0.5 - r, r))
    x = r * (2.0 * math.pi)
    x2 = x * x
    acc = np.full_like(x2, _SIN_COEFFS[0])
    for c in _SIN_COEFFS[1:]:
        acc *= x2
        acc += c
    return acc * x


def rms(x: np.ndarray) -> float:
    """Root mean square summed strictly in order: np.sum's pairwise/SIMD order varies by version."""
    return math.sqrt(float(np.cumsum(x * x)[-1]) / len(x)) if len(x) else 0.0


def db_to_gain(db: float) -> float:
    """Amplitude ratio of `db` decibels."""
    return 10.0 ** (db / 20.0)


def _unit(x: np.ndarray) -> np.ndarray:
    level = rms(x)
    return x / level if level > 0.0 else x


def _limit_hz(sample_rate: int) -> float:
    return min(MAX_PARTIAL_HZ, NYQUIST_GUARD * sample_rate)


def _envelope(rng: np.random.Generator, n: int, sample_rate: int) -> np.ndarray:
    """Raised-cosine attack and decay (hard edges would splash broadband), slow AM in between."""
    attack = min(int(rng.uniform(0.02, 0.08) * sample_rate), n // 3)
    decay = min(int(rng.uniform(0.05, 0.25) * sample_rate), n // 3)
    am_hz, am_depth, am_phase = rng.uniform(1.0, 6.0), rng.uniform(0.0, 0.3), rng.random()
    env = 1.0 + am_depth * sin_cycles(np.arange(n) * (am_hz / sample_rate) + am_phase)
    for edge, sign in ((slice(0, attack), 1), (slice(n - decay, n), -1)):
        rise = sin_cycles(np.arange(edge.stop - edge.start) / (4.0 * max(edge.stop - edge.start, 1)))
        env[edge] *= (rise * rise)[::sign]
    return env


def _contour(rng: np.random.Generator, n: int, lo: float, hi: float, spread: float) -> np.ndarray:
    """Smooth frequency contour (Hz): log-uniform centre, 4 knots within x/÷`spread`, smoothstep."""
    centre = lo * (hi / lo) ** rng.random()
    # Python's scalar pow, not np.power: the latter is SIMD-dispatched and version-dependent.
    knots = np.clip([centre * spread ** float(u) for u in rng.uniform(-1.0, 1.0, 4)], lo, hi)
    pos = np.arange(n) * (3.0 / max(n - 1, 1))
    idx = np.minimum(np.floor(pos).astype(np.int64), 2)
    f = pos - idx
    return knots[idx] + (knots[idx + 1] - knots[idx]) * (f * f * (3.0 - 2.0 * f))


def _harmonics(f0: np.ndarray, sample_rate: int, weight: Callable[[int, np.ndarray], np.ndarray],
               max_hz: float = MAX_PARTIAL_HZ) -> np.ndarray:
    """Partials k*f0(t) up to `max_hz`, weighted by `weight(k, freq)`, faded out below the limit.

    sin(k*phi) comes from the recurrence s_k = 2 cos(phi) s_{k-1} - s_{k-2}: three multiply-adds
    per partial instead of a polynomial sine each."""
    limit = min(_limit_hz(sample_rate), max_hz)
    phase = np.cumsum(f0) / sample_rate
    two_cos = 2.0 * sin_cycles(phase + 0.25)
    s_prev, s_k = np.zeros_like(f0), sin_cycles(phase)
    out = np.zeros_like(f0)
    f_lo, f_hi = float(np.min(f0)), float(np.max(f0))
    for k in range(1, int(limit // f_lo) + 1):
        fk = k * f0
        gain = weight(k, fk)
        if k * f_hi > limit - TAPER_HZ:     # only partials reaching the taper pay for it
            gain = gain * np.clip((limit - fk) / TAPER_HZ, 0.0, 1.0)
        out += gain * s_k
        s_prev, s_k = s_k, two_cos * s_k - s_prev
    return out


def _resonance(f: np.ndarray, centre: float, width: float) -> np.ndarray:
    d = (f - centre) / width
    return 1.0 / (1.0 + d * d)


def pulsed_call(rng: np.random.Generator, seconds: float, sample_rate: int) -> np.ndarray:
    """Unit-RMS SRKW-like pulsed call (harmonic stack, bending pulse rate, optional HFC)."""
    n = max(int(round(seconds * sample_rate)), 8)
    limit = _limit_hz(sample_rate)
    f0 = _contour(rng, n, PULSE_RATE_HZ[0], min(PULSE_RATE_HZ[1], limit - TAPER_HZ), 1.5)
    formants = [(rng.uniform(lo, hi), rng.uniform(400.0, 2000.0), rng.uniform(0.3, 1.0))
                for lo, hi in ((800.0, 2500.0), (2500.0, 5000.0), (5000.0, 8000.0))]
    hfc_on, hfc_db = rng.random() < 0.5, rng.uniform(-15.0, -6.0)
    hfc = _contour(rng, n, HFC_HZ[0], HFC_HZ[1], 1.2)
    call = _unit(_harmonics(f0, sample_rate, lambda k, f: 0.05 + sum(
        g * _resonance(f, c, w) for c, w, g in formants)))
    if hfc_on and limit - TAPER_HZ > HFC_HZ[0]:   # the "two-voiced" component, band permitting
        hfc = np.minimum(hfc, limit - TAPER_HZ)
        call += db_to_gain(hfc_db) * _unit(_harmonics(hfc, sample_rate, lambda k, f: 1.0 / k))
    return _unit(call * _envelope(rng, n, sample_rate))


def whistle(rng: np.random.Generator, seconds: float, sample_rate: int) -> np.ndarray:
    """Unit-RMS frequency-modulated tonal whistle (3-9 kHz) with a weak second harmonic."""
    n = max(int(round(seconds * sample_rate)), 8)
    hi = _limit_hz(sample_rate) - TAPER_HZ
    fm_hz, fm_depth, fm_phase = rng.uniform(2.0, 8.0), rng.uniform(0.0, 400.0), rng.random()
    f = _contour(rng, n, WHISTLE_HZ[0], WHISTLE_HZ[1], 1.3)
    f = np.minimum(f + fm_depth * sin_cycles(np.arange(n) * (fm_hz / sample_rate) + fm_phase), hi)
    tone = _harmonics(f, sample_rate, lambda k, fk: 1.0 if k == 1 else 0.2 if k == 2 else 0.0)
    return _unit(tone * _envelope(rng, n, sample_rate))


def click_train(rng: np.random.Generator, seconds: float, sample_rate: int) -> np.ndarray:
    """Unit-RMS echolocation click train: 2-3-cycle Hann-windowed transients, interval drifting."""
    n = max(int(round(seconds * sample_rate)), 8)
    out = np.zeros(n)
    interval, drift = rng.uniform(*CLICK_INTERVAL_S), rng.uniform(0.97, 1.03)
    t = rng.uniform(0.0, interval)
    while t < seconds:
        centre = min(rng.uniform(6000.0, 14000.0), 0.4 * sample_rate)
        cycles, amp = rng.uniform(2.0, 3.0), rng.uniform(0.5, 1.0)
        width = max(int(round(cycles * sample_rate / centre)), 4)
        u, start = np.arange(width) / width, int(t * sample_rate)
        hann, stop = sin_cycles(u * 0.5), min(start + width, n)
        out[start:stop] += (amp * hann * hann * sin_cycles(u * cycles))[: stop - start]
        interval = float(np.clip(interval * drift, *CLICK_INTERVAL_S))
        t += interval
    return _unit(out)


def render_vocalization(rng: np.random.Generator, kind: str, seconds: float | None,
                        sample_rate: int) -> np.ndarray:
    """Unit-RMS sound of `kind` ("call", "whistle", "clicks"); None draws the kind's duration."""
    maker, span = {"call": (pulsed_call, CALL_SECONDS), "whistle": (whistle, WHISTLE_SECONDS),
                   "clicks": (click_train, CLICK_TRAIN_SECONDS)}[kind]
    duration = rng.uniform(*span)   # always drawn, so the stream does not depend on `seconds`
    return maker(rng, duration if seconds is None else seconds, sample_rate)


def _lowpass(x: np.ndarray, cutoff_hz: float, sample_rate: int, poles: int = 1) -> np.ndarray:
    a = math.exp(-2.0 * math.pi * cutoff_hz / sample_rate)   # one-pole filters: no design step
    for _ in range(poles):
        x = lfilter([1.0 - a], [1.0, -a], x)
    return x


def _highpass(x: np.ndarray, cutoff_hz: float, sample_rate: int) -> np.ndarray:
    return lfilter([1.0, -1.0], [1.0, -math.exp(-2.0 * math.pi * cutoff_hz / sample_rate)], x)


def ambient_noise(rng: np.random.Generator, n: int, sample_rate: int) -> np.ndarray:
    """Unit-RMS sea-state noise: a random mix of pink and brown noise, DC removed."""
    brown_share = rng.uniform(0.1, 0.7)
    white = rng.standard_normal((2, n + WARMUP))
    pink = _unit(lfilter(_PINK_B, _PINK_A, white[0])[WARMUP:])
    brown = _unit(_lowpass(white[1], 20.0, sample_rate)[WARMUP:])
    return _unit(_highpass(math.sqrt(1 - brown_share) * pink + math.sqrt(brown_share) * brown,
                           10.0, sample_rate))


def ship_noise(rng: np.random.Generator, n: int, sample_rate: int, *, cpa_s: float,
               pass_s: float) -> np.ndarray:
    """Ship at closest approach at `cpa_s` (unit RMS there); `pass_s` = CPA distance / speed.
    Machinery noise (20-1000 Hz), Doppler-shifted blade harmonics, cavitation modulated at the blade
    rate, sometimes a steady gear whine at 0.4-2.5 kHz."""
    blade_hz, speed_ratio = rng.uniform(8.0, 25.0), rng.uniform(2.0, 8.0) / SOUND_SPEED_M_S
    whine_on, whine_hz = rng.random() < 0.5, rng.uniform(400.0, 2500.0)
    whine_db, cav_db = rng.uniform(-30.0, -15.0), rng.uniform(-30.0, -15.0)
    t = np.arange(n) / sample_rate - cpa_s
    radial = t / np.sqrt(t * t + pass_s * pass_s)
    doppler = 1.0 - speed_ratio * radial            # approaching: pitched up; receding: down
    white = rng.standard_normal((2, n + WARMUP))
    broadband = _unit(_highpass(_lowpass(white[0], rng.uniform(200.0, 600.0), sample_rate, 2), 20.0,
                                sample_rate)[WARMUP:])
    present = rng.random(64) < 0.6                  # not every blade harmonic is strong
    tonals = _unit(_harmonics(blade_hz * doppler, sample_rate,
                              lambda k, f: present[k % 64] / (1.0 + (k * blade_hz / 150.0) ** 2),
                              1000.0))
    blade = sin_cycles(np.cumsum(blade_hz * doppler) / sample_rate)
    cavitation = _highpass(_lowpass(white[1], 4000.0, sample_rate), 1000.0, sample_rate)[WARMUP:]
    cavitation = _unit(cavitation * (1.2 + blade))
    ship = broadband + 0.5 * tonals + db_to_gain(cav_db) * cavitation
    if whine_on:
        ship += db_to_gain(whine_db) * math.sqrt(2.0) * sin_cycles(
            np.cumsum(whine_hz * doppler) / sample_rate)
    return _unit(ship) / np.sqrt(1.0 + t * t / (pass_s * pass_s))


def snaps(rng: np.random.Generator, n: int, sample_rate: int, rate_hz: float) -> np.ndarray:
    """Snapping-shrimp snaps: ~`rate_hz` sparse broadband bursts, peaks 6-36 dB over unit noise."""
    slot = sample_rate // 100
    out = np.zeros(n)
    for hit in np.flatnonzero(rng.random(n // slot) < rate_hz / 100.0):
        width = max(int(rng.uniform(0.0003, 0.0015) * sample_rate), 4)
        start = int(hit * slot + rng.integers(slot))
        stop = min(start + width, n)
        decay = (1.0 - np.arange(width) / width) ** 2   # squaring is exact; other powers are not
        burst = db_to_gain(rng.uniform(6.0, 36.0)) * decay * decay * rng.standard_normal(width)
        out[start:stop] += burst[: stop - start]
    return out


@dataclass(frozen=True)
class CallSpec:
    """A vocalization to place: start time, kind, SNR over the sea-state floor, duration."""

    start_s: float
    kind: str = "call"
    snr_db: float = 6.0
    duration_s: float | None = None


@dataclass(frozen=True)
class Event:
    """Where a vocalization ended up in the rendered audio (the ground truth)."""

    start_s: float
    end_s: float
    kind: str
    snr_db: float


@dataclass(frozen=True)
class Background:
    """Background scene: sea-state level, optional passing ship, snapping shrimp."""

    ambient_dbfs: float = -42.0
    ship_db: float | None = None       # ship level at CPA over the sea-state floor; None: no ship
    ship_cpa_s: float = 0.0
    ship_pass_s: float = 8.0
    snap_rate_hz: float = 1.0


def render(rng: np.random.Generator, n: int, sample_rate: int, background: Background,
           calls: Sequence[CallSpec]) -> tuple[np.ndarray, list[Event]]:
    """Mix `calls` over `background` into n samples; background and calls use separate streams,
    so the same rng seed gives the same background whatever calls are placed on it."""
    bg_rng, call_rng = (np.random.default_rng(int(s)) for s in rng.integers(0, 2**63, size=2))
    floor = db_to_gain(background.ambient_dbfs)
    audio = ambient_noise(bg_rng, n, sample_rate)
    if background.ship_db is not None:
        audio += db_to_gain(background.ship_db) * ship_noise(
            bg_rng, n, sample_rate, cpa_s=background.ship_cpa_s, pass_s=background.ship_pass_s)
    audio += snaps(bg_rng, n, sample_rate, background.snap_rate_hz)
    audio *= floor
    events = []
    for spec in calls:
        sound = render_vocalization(call_rng, spec.kind, spec.duration_s, sample_rate)
        start = int(round(spec.start_s * sample_rate))
        if not 0 <= start < n:
            raise ValueError(f"call at {spec.start_s} s is outside the {n / sample_rate} s recording")
        stop = min(start + len(sound), n)
        audio[start:stop] += floor * db_to_gain(spec.snr_db) * sound[: stop - start]
        events.append(Event(start / sample_rate, stop / sample_rate, spec.kind, spec.snr_db))
    return audio, events


def synth_recording(seed: int, seconds: float, sample_rate: int,
                    call_times: Sequence[float | CallSpec] = (), *,
                    background: Background | None = None) -> tuple[np.ndarray, list[Event]]:
    """A float64 mono recording with vocalizations at known times (a float means a 6 dB call).
    Levels are taken as given (no rescaling): loud scenes may exceed full scale on purpose."""
    n = int(round(seconds * sample_rate))
    specs = [c if isinstance(c, CallSpec) else CallSpec(float(c)) for c in call_times]
    return render(np.random.default_rng(seed), n, sample_rate, background or Background(), specs)

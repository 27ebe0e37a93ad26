"""The committed parity audio corpus: seeded, byte-identical on every run, hash-checked on load.

`python -m orcaport.parity.testaudio.corpus --out reference_outputs/corpus` (`make corpus`) rewrites every WAV and
`corpus.json`; `--check` only verifies. Each file exercises one thing the legacy pipeline is
sensitive to (rate, channel count, sample format, length versus the 2 s window, clipping, DC,
silence), and carries the ground-truth vocalization events it was synthesized with.

Byte identity: integer files are quantized here (round, clip) and written as integers, so the bytes
never depend on libsndfile's float->int conversion; float files get the timestamp libsndfile puts in
their PEAK chunk zeroed. Every file is written atomically (model/fileio.py).
"""

from __future__ import annotations

import argparse
import io
import json
import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf

from orcaport.model.errors import ExitCode, InputError, OrcaportError, report_error
from orcaport.model.fileio import sha256_file, write_file_atomically
from orcaport.parity.testaudio.synth import Background, CallSpec, Event, synth_recording

SCHEMA_VERSION = 1
MANIFEST_NAME = "corpus.json"
FIX_HINT = "regenerate it with `make corpus`"
# Integer full scale: +1.0 maps to the largest code; anything beyond (either sign) clips.
INT_SCALE = {"PCM_16": (32767.0, -32768, 32767), "PCM_24": (8388607.0, -8388608, 8388607)}
PCM24_SHIFT = 256          # soundfile hands int32 to libsndfile, which keeps the top 24 bits

# (frames, channels) float64 audio and its events as manifest dicts
Built = tuple[np.ndarray, list[dict]]


class CorpusError(InputError):
    """The corpus on disk is missing, stale or corrupted."""


@dataclass(frozen=True)
class CorpusSpec:
    """One corpus file: its format and how to synthesize its content."""

    name: str
    sample_rate: int
    channels: int
    subtype: str
    frames: int
    seed: int
    description: str
    build: Callable[["CorpusSpec"], Built]

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate


def _events(events: list[Event], channel: int | None = None) -> list[dict]:
    return [{"start_s": round(e.start_s, 6), "end_s": round(e.end_s, 6), "kind": e.kind,
             "snr_db": e.snr_db, "channel": channel} for e in events]


def _mono(spec: CorpusSpec, calls: list[CallSpec], background: Background, offset: float = 0.0) -> Built:
    audio, events = synth_recording(spec.seed, spec.duration_s, spec.sample_rate, calls,
                                    background=background)
    return (audio + offset)[:, None], _events(events)


def _flagship(spec: CorpusSpec) -> Built:
    """Calls strong to barely visible, two overlapping, some under a ship passing at 30 s."""
    calls = [CallSpec(2.5, "call", 9.0, 1.2), CallSpec(6.0, "whistle", 0.0, 1.5),
             CallSpec(10.2, "call", -6.0, 1.0), CallSpec(13.0, "clicks", 6.0, 1.0),
             CallSpec(17.4, "call", 3.0, 1.4), CallSpec(21.8, "call", -12.0, 1.0),
             CallSpec(25.0, "whistle", -8.0, 1.2), CallSpec(28.6, "call", 12.0, 1.3),
             CallSpec(31.5, "call", -3.0, 1.0), CallSpec(36.3, "call", 6.0, 0.8),
             CallSpec(37.0, "clicks", 3.0, 1.2), CallSpec(41.7, "whistle", 4.0, 1.8),
             CallSpec(46.0, "call", -15.0, 1.2), CallSpec(50.4, "call", 6.0, 1.5),
             CallSpec(50.9, "call", 0.0, 1.0), CallSpec(55.2, "call", -9.0, 0.9)]
    return _mono(spec, calls, Background(ambient_dbfs=-42.0, ship_db=26.0, ship_cpa_s=30.0,
                                         ship_pass_s=6.0, snap_rate_hz=1.5))


def _stereo(spec: CorpusSpec) -> Built:
    """Same background in both channels (same seed), a call only on the left, a whistle only on
    the right: channel 0 alone, the downmix and channel 1 alone all differ."""
    background = Background(ambient_dbfs=-40.0, ship_db=12.0, ship_cpa_s=4.0, ship_pass_s=6.0)
    left, left_events = synth_recording(spec.seed, spec.duration_s, spec.sample_rate,
                                        [CallSpec(2.0, "call", 6.0, 1.2), CallSpec(7.5, "clicks", 3.0, 0.8)],
                                        background=background)
    right, right_events = synth_recording(spec.seed, spec.duration_s, spec.sample_rate,
                                          [CallSpec(5.0, "whistle", 3.0, 1.5)], background=background)
    return np.stack([left, right], axis=1), _events(left_events, 0) + _events(right_events, 1)


def _single_call(start_s: float, snr_db: float, duration_s: float, ambient_dbfs: float = -40.0,
                 offset: float = 0.0) -> Callable[[CorpusSpec], Built]:
    def build(spec: CorpusSpec) -> Built:
        return _mono(spec, [CallSpec(start_s, "call", snr_db, duration_s)],
                     Background(ambient_dbfs=ambient_dbfs), offset)
    return build


def _narrow(spec: CorpusSpec) -> Built:
    """8 kHz telephone-band recording: partials capped below 3.6 kHz, the 20 kHz resample upsamples."""
    calls = [CallSpec(1.5, "call", 6.0, 1.2), CallSpec(5.0, "whistle", 3.0, 1.0),
             CallSpec(8.0, "call", -6.0, 1.0)]
    return _mono(spec, calls, Background(ambient_dbfs=-38.0, ship_db=15.0, ship_cpa_s=5.0))


def _silence(spec: CorpusSpec) -> Built:
    return np.zeros((spec.frames, spec.channels)), []


CORPUS: tuple[CorpusSpec, ...] = (
    CorpusSpec("hydrophone_48k_mono16_60s.wav", 48_000, 1, "PCM_16", 60 * 48_000, 1001,
               "Flagship 60 s hydrophone scene (59 clips): 16 vocalizations from +12 to -15 dB SNR, "
               "a ship passing at 30 s, snapping shrimp.", _flagship),
    CorpusSpec("stereo_44k1_16_10s5.wav", 44_100, 2, "PCM_16", 463_050, 1002,
               "Stereo: shared background, call+clicks only left, whistle only right (downmix matters).",
               _stereo),
    CorpusSpec("hires_96k_24_3s2.wav", 96_000, 1, "PCM_24", 307_200, 1003,
               "96 kHz 24-bit: one call (resample 96k->20k, 24-bit decode).", _single_call(0.8, 6.0, 1.3)),
    CorpusSpec("float32_48k_3s2.wav", 48_000, 1, "FLOAT", 153_600, 1004,
               "32-bit float WAV: one call (float decode path).", _single_call(1.0, 3.0, 1.2)),
    CorpusSpec("narrow_8k_16_10s5.wav", 8_000, 1, "PCM_16", 84_000, 1005,
               "8 kHz narrow band: two calls and a whistle under a ship.", _narrow),
    CorpusSpec("exact_2s0_48k_16.wav", 48_000, 1, "PCM_16", 96_000, 1006,
               "Exactly 96000 frames: one 2 s window, no remainder.", _single_call(0.5, 6.0, 1.0)),
    CorpusSpec("short_1s5_48k_16.wav", 48_000, 1, "PCM_16", 72_000, 1007,
               "1.5 s, shorter than one 2 s window (legacy windowing yields no clip).",
               _single_call(0.3, 6.0, 1.0)),
    CorpusSpec("clipping_48k_16_3s2.wav", 48_000, 1, "PCM_16", 153_600, 1008,
               "Loud call driven far past full scale: many samples at +32767 and -32768.",
               _single_call(0.8, 30.0, 1.5, ambient_dbfs=-22.0)),
    CorpusSpec("silence_48k_16_3s2.wav", 48_000, 1, "PCM_16", 153_600, 1009,
               "Digital silence (all zeros): log of zero power, top_db clamp.", _silence),
    CorpusSpec("dc_offset_48k_16_3s2.wav", 48_000, 1, "PCM_16", 153_600, 1010,
               "A call on a +0.3 full-scale DC offset.", _single_call(1.0, 10.0, 1.2, offset=0.3)),
)


def quantize(audio: np.ndarray, subtype: str) -> np.ndarray:
    """Float audio -> the exact array soundfile should write for `subtype` (rounded, clipped)."""
    if subtype == "FLOAT":
        return audio.astype(np.float32)
    if subtype not in INT_SCALE:
        raise ValueError(f"unsupported corpus subtype {subtype!r}")
    scale, lo, hi = INT_SCALE[subtype]
    codes = np.clip(np.round(audio * scale), lo, hi)
    return codes.astype(np.int16) if subtype == "PCM_16" else codes.astype(np.int32) * PCM24_SHIFT


def _zero_peak_timestamp(data: bytearray) -> None:
    """libsndfile stamps time(NULL) into the PEAK chunk of float WAVs; zero it for identical bytes."""
    pos = 12                                        # after "RIFF" <size> "WAVE"
    while pos + 8 <= len(data):
        chunk, size = data[pos:pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        if chunk == b"PEAK":                        # version (4 bytes), then the timestamp
            data[pos + 12:pos + 16] = bytes(4)
        if chunk == b"data":
            return
        pos += 8 + size + (size & 1)


def write_file(spec: CorpusSpec, out_dir: Path) -> dict:
    """Synthesize, quantize and atomically write one corpus file; return its manifest entry."""
    audio, events = spec.build(spec)
    if audio.shape != (spec.frames, spec.channels):      # a bug in the spec's builder, not an input
        raise RuntimeError(f"{spec.name}: built {audio.shape}, not ({spec.frames}, {spec.channels})")
    samples = quantize(audio, spec.subtype)

    buf = io.BytesIO()
    sf.write(buf, samples, spec.sample_rate, subtype=spec.subtype, format="WAV")
    data = bytearray(buf.getvalue())
    _zero_peak_timestamp(data)
    path = write_file_atomically(out_dir / spec.name, bytes(data))
    return {"name": spec.name, "sample_rate": spec.sample_rate, "channels": spec.channels,
            "subtype": spec.subtype, "duration_s": spec.duration_s, "frames": spec.frames,
            "sha256": sha256_file(path), "description": spec.description, "seed": spec.seed,
            "events": events}


# Replayed only by the negative controls (parity/controls.py, reference_outputs/controls): a rate at
# which pydub's int(ms * (rate / 1000.0)) drops a frame for windows starting at 3, 6, 11, 12, 13 s.
CONTROLS_CORPUS: tuple[CorpusSpec, ...] = (
    CorpusSpec("oddrate_37k8_16_14s5.wav", 37_800, 1, "PCM_16", 548_100, 1011,
               "37.8 kHz: pydub's float ms -> frame mapping truncates a frame at 3, 6, 11, 12 and 13 s.",
               _single_call(4.0, 6.0, 1.5)),
)
SETS = {"main": CORPUS, "controls": CONTROLS_CORPUS}


def write_corpus(out_dir: Path, specs: tuple[CorpusSpec, ...] = CORPUS) -> dict:
    """(Re)write every corpus file and corpus.json (last, so it only ever lists finished files)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = {"schema_version": SCHEMA_VERSION, "generator": "python -m orcaport.parity.testaudio.corpus",
                "files": [write_file(spec, out_dir) for spec in specs]}
    text = json.dumps(manifest, indent=2) + "\n"
    write_file_atomically(out_dir / MANIFEST_NAME, text)
    return manifest


def load_corpus_manifest(directory: Path | str, specs: tuple[CorpusSpec, ...] = CORPUS) -> dict:
    """corpus.json of `directory`, after checking it lists exactly CORPUS and every file's sha256.

    Raises CorpusError with a one-line message naming the file and the fix (`make corpus`).
    """
    directory = Path(directory)
    manifest_path = directory / MANIFEST_NAME
    if not manifest_path.is_file():
        raise CorpusError(f"{manifest_path} is missing; {FIX_HINT}")
    try:
        manifest = json.loads(manifest_path.read_text())
        entries = {entry["name"]: entry for entry in manifest["files"]}
    except (ValueError, KeyError, TypeError) as exc:
        raise CorpusError(f"{manifest_path} is unreadable ({exc}); {FIX_HINT}") from None
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise CorpusError(f"{manifest_path} has schema_version {manifest.get('schema_version')!r}, "
                          f"expected {SCHEMA_VERSION}; {FIX_HINT}")
    if sorted(entries) != sorted(spec.name for spec in specs):
        raise CorpusError(f"{manifest_path} lists {sorted(entries)}, not the corpus the code "
                          f"defines; {FIX_HINT}")
    for name, entry in entries.items():
        path = directory / name
        if not path.is_file():
            raise CorpusError(f"{path} is missing; {FIX_HINT}")
        actual = sha256_file(path)
        if actual != entry["sha256"]:
            raise CorpusError(f"{path}: sha256 {actual[:12]}... does not match corpus.json "
                              f"({entry['sha256'][:12]}...); {FIX_HINT}")
    return manifest


def main(argv: list[str] | None = None) -> int:
    """CLI: write (default) or --check the corpus directory."""
    parser = argparse.ArgumentParser(prog="python -m orcaport.parity.testaudio.corpus", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True,
                        help="corpus directory (make corpus: reference_outputs/corpus)")
    parser.add_argument("--check", action="store_true", help="only verify files against corpus.json")
    parser.add_argument("--set", choices=sorted(SETS), default="main",
                        help="main: the parity corpus; controls: the negative controls' odd-rate file")
    args = parser.parse_args(argv)
    specs = SETS[args.set]
    try:
        manifest = load_corpus_manifest(args.out, specs) if args.check else write_corpus(args.out, specs)
    except (OrcaportError, KeyboardInterrupt) as exc:      # CorpusError: exit 3
        return report_error(None, exc)
    for entry in manifest["files"]:
        print(f"{entry['sha256'][:12]}  {entry['name']}  ({len(entry['events'])} events)")
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())

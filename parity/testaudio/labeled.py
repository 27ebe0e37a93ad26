"""A small labeled synthetic set with known answers, for `make evaluate` (CI runs it; the README's
table comes from it): 30 s hydrophone scenes with SRKW-like calls and whistles at known times,
negatives with ships, shrimp and echolocation clicks, and the labels in the three formats people
use -- a Raven selection table per recording (as Raven writes it: a row per view, its own
measurement columns), an Audacity label track per recording, one plain CSV for the folder.

    python -m orcaport.parity.testaudio.labeled --out DIR [--small]
    -> DIR/audio/*.wav, DIR/labels/raven/*.Table.1.selections.txt, DIR/labels/audacity/*.txt,
       DIR/labels/labels.csv, DIR/answers.json

Labels are what a person labeling SRKW calls marks: calls and whistles, from the rendered
vocalization's first to last sample (synth.py's Event); echolocation clicks are not labeled (the
detector is not trained to call them alone), so a scene of clicks alone is a negative. Seeded:
the same bytes on every machine (synth.py's IEEE-exact rendering, corpus.py's quantization).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from orcaport.model.fileio import write_files_atomically
from orcaport.parity.testaudio.corpus import quantize
from orcaport.parity.testaudio.synth import DEFAULT_SAMPLE_RATE, Background, CallSpec, Event, synth_recording

SECONDS = 30.0
LABELED_KINDS = ("call", "whistle")
RAVEN_HEADER = ("Selection", "View", "Channel", "Begin Time (s)", "End Time (s)", "Low Freq (Hz)",
                "High Freq (Hz)", "Delta Time (s)", "Delta Freq (Hz)", "Avg Power Density (dB FS/Hz)",
                "Annotation")
RAVEN_VIEWS = ("Waveform 1", "Spectrogram 1")


@dataclass(frozen=True)
class Scene:
    name: str
    seed: int
    calls: tuple[CallSpec, ...]
    background: Background = Background()


SCENES: tuple[Scene, ...] = (
    Scene("calm_calls", 2101, (CallSpec(3.2, "call", 12.0), CallSpec(9.5, "call", 6.0),
                               CallSpec(16.1, "call", 3.0), CallSpec(23.4, "call", 0.0))),
    Scene("ship_negative", 2102, (), Background(-42.0, 25.0, 12.0, 8.0, 1.0)),
    Scene("ship_calls", 2103, (CallSpec(4.4, "call", 9.0), CallSpec(12.0, "call", 3.0),
                               CallSpec(20.6, "call", 6.0)), Background(-42.0, 20.0, 15.0, 10.0, 1.0)),
    Scene("clicks_negative", 2104, (CallSpec(6.0, "clicks", 6.0), CallSpec(18.0, "clicks", 9.0)),
          Background(-45.0, None, 0.0, 8.0, 3.0)),
    Scene("whistles", 2105, (CallSpec(5.0, "whistle", 6.0), CallSpec(14.2, "whistle", 3.0),
                             CallSpec(22.0, "call", -3.0))),
    Scene("calm_negative", 2106, (), Background(-45.0, None, 0.0, 8.0, 3.0)),
    Scene("loud_ambient_calls", 2107, (CallSpec(8.0, "call", 3.0), CallSpec(19.5, "call", -6.0)),
          Background(-34.0, None, 0.0, 8.0, 1.0)),
    Scene("dense_calls", 2108, (CallSpec(2.0, "call", 12.0), CallSpec(5.5, "call", 9.0),
                                CallSpec(8.5, "call", 6.0), CallSpec(20.0, "call", 3.0),
                                CallSpec(24.0, "call", 0.0), CallSpec(26.5, "clicks", 6.0))),
)
SMALL = ("calm_calls", "ship_negative", "ship_calls", "clicks_negative")     # CI's quick subset


def render_scene(scene: Scene) -> tuple[bytes, list[Event]]:
    """The scene's 16-bit mono WAV bytes and its labeled events (calls and whistles)."""
    audio, events = synth_recording(scene.seed, SECONDS, DEFAULT_SAMPLE_RATE, scene.calls,
                                    background=scene.background)
    buf = io.BytesIO()
    sf.write(buf, quantize(audio, "PCM_16"), DEFAULT_SAMPLE_RATE, subtype="PCM_16", format="WAV")
    return buf.getvalue(), [e for e in events if e.kind in LABELED_KINDS]


def raven_table(events: list[Event]) -> str:
    """A selection table as Raven Pro saves it: each selection on a Waveform and a Spectrogram row."""
    lines = ["\t".join(RAVEN_HEADER)]
    for i, e in enumerate(events, start=1):
        for view in RAVEN_VIEWS:
            lo, hi = (0.0, 0.0) if view.startswith("Waveform") else (300.0, 9000.0)
            lines.append("\t".join([str(i), view, "1", f"{e.start_s:.9f}", f"{e.end_s:.9f}", f"{lo:.3f}",
                                    f"{hi:.3f}", f"{e.end_s - e.start_s:.4f}", f"{hi - lo:.3f}",
                                    "" if view.startswith("Waveform") else "-82.41", e.kind]))
    return "\n".join(lines) + "\n"


def audacity_labels(events: list[Event]) -> str:
    return "".join(f"{e.start_s:.6f}\t{e.end_s:.6f}\t{e.kind}\n" for e in events)


def write_labeled_set(out: Path, names: tuple[str, ...] | None = None) -> dict:
    """Write the set (or the scenes named) under `out`; answers.json last. -> the answers."""
    out = Path(out)
    scenes = [s for s in SCENES if names is None or s.name in names]
    rows, answers = [], {}
    for scene in scenes:
        wav, events = render_scene(scene)
        write_files_atomically(out / "audio", {f"{scene.name}.wav": wav})
        write_files_atomically(out / "labels" / "raven", {f"{scene.name}.Table.1.selections.txt": raven_table(events)})
        write_files_atomically(out / "labels" / "audacity", {f"{scene.name}.txt": audacity_labels(events)})
        rows += [(f"{scene.name}.wav", f"{e.start_s:.6f}", f"{e.end_s:.6f}", e.kind) for e in events]
        answers[f"{scene.name}.wav"] = [{"start_s": e.start_s, "end_s": e.end_s, "kind": e.kind,
                                         "snr_db": e.snr_db} for e in events]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(("file", "start", "end", "label"))
    writer.writerows(rows)
    write_files_atomically(out / "labels", {"labels.csv": buf.getvalue()})
    doc = {"seconds": SECONDS, "sample_rate": DEFAULT_SAMPLE_RATE, "labeled_kinds": list(LABELED_KINDS),
           "files": answers}
    write_files_atomically(out, {"answers.json": json.dumps(doc, indent=2) + "\n"})
    return doc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m orcaport.parity.testaudio.labeled", description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="folder to write audio/, labels/, answers.json")
    ap.add_argument("--small", action="store_true", help=f"only {', '.join(SMALL)} (CI's quick subset)")
    args = ap.parse_args(argv)
    doc = write_labeled_set(args.out, SMALL if args.small else None)
    print(f"wrote {len(doc['files'])} labeled recordings to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Detections as the review tools read them: a Raven Pro selection table and an Audacity label track.
One row per detection event (model/events.py), not per second.

Raven Pro selection table (File > Open Selection Table): UTF-8 text, tab-separated, one header
row. The first seven columns are Raven's own, spelled exactly as Raven writes them (Selection,
View, Channel, Begin Time (s), End Time (s), Low Freq (Hz), High Freq (Hz)); View is
"Spectrogram 1", Channel 1 (the detector downmixes). Then Raven's file measurements -- Begin
File, Begin Path, File Offset (s) -- and the event's confidences. With several files, Begin Time
is on the timeline of the files opened together as one sequence, in the order listed (Raven's
file-sequence view; BirdNET-Analyzer's combined tables do the same), and File Offset (s) is the
time within Begin Path; for one file the two are equal. Low/High Freq: the band the model's
spectrogram covers (f_min .. min(f_max, Nyquist of the resampled audio)).

Audacity label track (File > Import > Labels): UTF-8 text, one label per line,
`start<TAB>end<TAB>text`, times in seconds with 6 decimals (Audacity's own export style), region
labels from the event's start to its end. Times are within each file; with several files the
label text starts with the file name (Audacity imports a label file into one track).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from orcaport.model.errors import OrcaportError
from orcaport.model.events import Event, detection_events

RAVEN_COLUMNS = ("Selection", "View", "Channel", "Begin Time (s)", "End Time (s)", "Low Freq (Hz)",
                 "High Freq (Hz)", "Begin File", "Begin Path", "File Offset (s)", "Peak Confidence",
                 "Mean Confidence", "Positive Seconds")
RAVEN_VIEW = "Spectrogram 1"
RAVEN_CHANNEL = 1
FORBIDDEN = ("\t", "\n", "\r")      # would split a column or a row of either format


class ReviewFormatError(OrcaportError, ValueError):
    """A detection that a Raven table / Audacity label file cannot hold (one line, names the fix)."""


def _check_text(text: str, what: str) -> str:
    if any(c in text for c in FORBIDDEN):
        raise ReviewFormatError(f"{what} {text!r} contains a tab or line break, which a Raven table or "
                                "Audacity label cannot hold; rename the file")
    return text


def band_hz(frontend: Any, sample_rate: int) -> tuple[float, float]:
    """(low, high) Hz the model's spectrogram covers: f_min .. f_max, capped at the Nyquist rate
    of the audio the filterbank reads (`resample_to`, else the file's own `sample_rate`)."""
    nyquist = (frontend.resample_to or sample_rate) / 2
    return float(frontend.f_min), float(min(frontend.f_max, nyquist) if frontend.f_max else nyquist)


def render_raven(files: Sequence[tuple[Path, Any]], frontend: Any) -> str:
    """files: (audio path, Detection) in sequence order; frontend: the model's FrontendConfig
    (for the frequency band). -> the selection table's text."""
    lines = ["\t".join(RAVEN_COLUMNS)]
    selection, offset = 0, 0.0
    for path, d in files:
        name = _check_text(Path(path).name, "file name")
        # a URL (a `--ray` run's remote input) is its own full path
        full = _check_text(str(path) if "://" in str(path) else str(Path(path).resolve()), "file path")
        band = band_hz(frontend, d.sample_rate)
        for e in detection_events(d):
            selection += 1
            lines.append("\t".join([
                str(selection), RAVEN_VIEW, str(RAVEN_CHANNEL), f"{offset + e.start_s:.6f}",
                f"{offset + e.end_s:.6f}", f"{band[0]:.1f}", f"{band[1]:.1f}", name, full,
                f"{e.start_s:.6f}", f"{e.peak_confidence:.6f}", f"{e.mean_confidence:.6f}", str(e.seconds)]))
        offset += float(d.duration_s)
    return "\n".join(lines) + "\n"


def audacity_label(e: Event, label: str, with_file: bool) -> str:
    text = f"{label} peak {e.peak_confidence:.3f} mean {e.mean_confidence:.3f}"
    return f"{_check_text(e.wav_filename, 'file name')}: {text}" if with_file else text


def render_audacity(files: Sequence[tuple[Path, Any]], label: str) -> str:
    """files: (audio path, Detection). label: the detected class's name. -> the label file's text."""
    _check_text(label, "class name")
    with_file = len(files) > 1
    lines = [f"{e.start_s:.6f}\t{e.end_s:.6f}\t{audacity_label(e, label, with_file)}"
             for _, d in files for e in detection_events(d)]
    return "".join(line + "\n" for line in lines)

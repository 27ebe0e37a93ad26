"""Labels people already have, read into one shape: labeled events (start, end) per recording.

Three formats, told apart by their first line:
- Raven selection table (Raven Pro, BirdNET-Analyzer, `orcaport detect --format raven`): tab-separated,
  a header with `Begin Time (s)` and `End Time (s)`; optionally `Begin File` / `Begin Path` (which
  recording), `File Offset (s)` (the time within that file when Begin Time is on a multi-file
  sequence timeline, as model/review_formats.py writes it) and a class column (Annotation, Class,
  Label, Species, Common Name, Sound Type, Call Type). Raven writes one row per view (Waveform 1,
  Spectrogram 1) for each selection: rows are kept once per Selection number.
- Audacity label track: `start<TAB>end<TAB>text` lines; spectral lines (starting `\\`) skipped. With
  several files in one track, text starts `<file name>: ` (as `orcaport detect --format audacity`
  writes it).
- Plain CSV: comma-separated, header `file,start,end[,label]`.

One label file per recording (named after it: `<stem>.txt`, `<stem>.Table.1.selections.txt`, any
`<stem>.<more>`), or one for a folder (rows name their files). A recording with its own label file
is labeled even when the file has no rows (a negative); a recording no label file mentions is
unlabeled, and a negative only when the caller says so (`unlabeled_negative`).
A bad label file is refused with `LabelError` naming the file and line and the fix.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from orcaport.model.errors import InputError

LABEL_SUFFIXES = (".txt", ".csv", ".tsv")
RAVEN_BEGIN, RAVEN_END = "Begin Time (s)", "End Time (s)"
RAVEN_FILE_COLUMNS = ("Begin File", "Begin Path")
RAVEN_OFFSET = "File Offset (s)"
CLASS_COLUMNS = ("Annotation", "Class", "Label", "Species", "Common Name", "Sound Type", "Call Type")
CSV_COLUMNS = ("file", "start", "end")
# Label times come from a viewer and are rounded: an end this far past the recording is still its end.
END_SLACK_S = 0.01


class LabelError(InputError):
    """A label file cannot be used (exit 3); str() names the file, the line and the fix."""


@dataclass(frozen=True)
class LabelRow:
    """One labeled span as a label file gives it. file: the recording it names (None: the label
    file's own recording); times in seconds within that recording."""

    file: str | None
    start_s: float
    end_s: float
    label: str | None
    where: str               # "path:line", for errors


@dataclass(frozen=True)
class LabeledEvent:
    start_s: float
    end_s: float
    label: str | None
    where: str


@dataclass
class RecordingLabels:
    """A recording's labeled events. labeled False: no label file mentions it (not evaluated
    unless unlabeled recordings count as negatives)."""

    audio: Path
    events: list[LabeledEvent] = field(default_factory=list)
    labeled: bool = False
    sources: list[str] = field(default_factory=list)


def _err(path: Path, line: int | None, what: str, fix: str) -> LabelError:
    return LabelError(f"{path}{f':{line}' if line else ''}: {what}; {fix}")


def _number(text: str, path: Path, line: int, column: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise _err(path, line, f"{column} {text.strip()!r} is not a number of seconds",
                   "fix the value (times are seconds, e.g. 12.5)") from None
    if not math.isfinite(value):
        raise _err(path, line, f"{column} is {text.strip()!r}", "give a finite time in seconds")
    return value


def _check_span(path: Path, line: int, start: float, end: float) -> None:
    if start < 0:
        raise _err(path, line, f"start {start:g} s is negative", "times count from the recording's start (>= 0)")
    if end < start:
        raise _err(path, line, f"negative span: end {end:g} s is before start {start:g} s", "swap or fix the times")
    if end == start:
        raise _err(path, line, f"zero-length span at {start:g} s (a point label)",
                   "give the label its call's duration (start < end)")


# ----------------------------------------------------------------------------- the three formats
def _read_raven(path: Path, text: str) -> list[LabelRow]:
    rows = list(csv.reader(io.StringIO(text), delimiter="\t"))
    header = [h.strip() for h in rows[0]]
    col = {h: i for i, h in enumerate(header)}
    file_col = next((c for c in RAVEN_FILE_COLUMNS if c in col), None)
    class_col = next((c for c in CLASS_COLUMNS if c in col), None)
    out, seen = [], set()
    for n, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) < len(header):
            raise _err(path, n, f"{len(row)} columns, the header has {len(header)}",
                       "Raven tables are tab-separated with one value per header column")
        cell = lambda c: row[col[c]].strip()  # noqa: E731
        selection = cell("Selection") if "Selection" in col else None
        if selection is not None and selection in seen:
            continue                        # the same selection in another view (Waveform 1 ...)
        seen.add(selection)
        begin, end = _number(cell(RAVEN_BEGIN), path, n, RAVEN_BEGIN), _number(cell(RAVEN_END), path, n, RAVEN_END)
        _check_span(path, n, begin, end)
        name = Path(cell(file_col).replace("\\", "/")).name if file_col else None
        if RAVEN_OFFSET in col and cell(RAVEN_OFFSET):
            offset = _number(cell(RAVEN_OFFSET), path, n, RAVEN_OFFSET)
            begin, end = offset, offset + (end - begin)    # within Begin File, not the sequence
            _check_span(path, n, begin, end)
        out.append(LabelRow(name or None, begin, end, cell(class_col) or None if class_col else None, f"{path}:{n}"))
    names = {r.file for r in out}
    if len(names) > 1 and RAVEN_OFFSET not in col:
        raise _err(path, None, f"rows name {len(names)} files but there is no {RAVEN_OFFSET!r} column, so "
                   "Begin Time is on Raven's multi-file timeline", f"add the {RAVEN_OFFSET!r} measurement "
                   "in Raven (Choose Measurements) or save one table per recording")
    return out


def _read_csv(path: Path, text: str) -> list[LabelRow]:
    rows = list(csv.reader(io.StringIO(text)))
    header = [h.strip().lower() for h in rows[0]]
    col = {h: i for i, h in enumerate(header)}
    out = []
    for n, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) < len(header):
            raise _err(path, n, f"{len(row)} fields, the header has {len(header)}",
                       "write file,start,end[,label] on every line (comma-separated)")
        start, end = (_number(row[col[c]], path, n, c) for c in ("start", "end"))
        _check_span(path, n, start, end)
        name = Path(row[col["file"]].strip().replace("\\", "/")).name
        if not name:
            raise _err(path, n, "empty file name", "name the recording in the file column")
        label = row[col["label"]].strip() if "label" in col else ""
        out.append(LabelRow(name, start, end, label or None, f"{path}:{n}"))
    return out


def _read_audacity(path: Path, text: str) -> list[LabelRow]:
    out = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("\\"):      # blank, or a spectral selection's line
            continue
        fields = line.split("\t")
        if len(fields) < 2:
            raise _err(path, n, f"{line.strip()[:40]!r} is not start<TAB>end<TAB>label",
                       "Audacity label files are tab-separated (export them with File > Export > Labels)")
        start, end = _number(fields[0], path, n, "start"), _number(fields[1], path, n, "end")
        _check_span(path, n, start, end)
        out.append(LabelRow(None, start, end, "\t".join(fields[2:]).strip() or None, f"{path}:{n}"))
    return out


def read_label_file(path: Path) -> list[LabelRow]:
    """The rows of one Raven / Audacity / plain-CSV label file (format from its first line)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise _err(path, None, "is not UTF-8 text", "save the label file as UTF-8 text") from None
    except OSError as e:
        raise _err(path, None, f"cannot be read ({e.strerror or e})", "check the LABELS= path") from None
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    if not first:
        return []
    if RAVEN_BEGIN in first:
        if "\t" not in first:
            raise _err(path, 1, "a Raven header without tabs (wrong delimiter)",
                       "Raven selection tables are tab-separated: save the table from Raven as is")
        return _read_raven(path, text)
    names = [h.strip().lower() for h in first.replace(";", ",").replace("\t", ",").split(",")]
    if all(c in names for c in CSV_COLUMNS):
        if "," not in first:
            raise _err(path, 1, "a label CSV header not separated by commas (wrong delimiter)",
                       "write the plain CSV comma-separated: file,start,end[,label]")
        return _read_csv(path, text)
    return _read_audacity(path, text)


# ----------------------------------------------------------------------------- recordings
def label_files(labels: Path) -> list[Path]:
    """LABELS= as files: a file, or a folder's label files (recursive, sorted, hidden skipped)."""
    labels = Path(labels)
    if labels.is_file():
        return [labels]
    if not labels.is_dir():
        raise LabelError(f"{labels}: no such label file or folder; pass LABELS= a Raven table, an "
                         "Audacity label file, a CSV or a folder of them")
    found = sorted(p for p in labels.rglob("*") if p.is_file() and p.suffix.lower() in LABEL_SUFFIXES
                   and not any(part.startswith(".") for part in p.relative_to(labels).parts))
    if not found:
        raise LabelError(f"{labels}: folder holds no label files ({', '.join(LABEL_SUFFIXES)}); "
                         "point LABELS= at the Raven tables / Audacity labels / CSV")
    return found


def owner_by_name(label_file: Path, stems: Iterable[str]) -> str | None:
    """The recording stem a per-recording label file is named after (`<stem>.txt`,
    `<stem>.Table.1.selections.txt`...): the longest stem the name starts with, then a dot."""
    name = label_file.name
    matches = [s for s in stems if name.startswith(s + ".")]
    return max(matches, key=len) if matches else None


def load_labels(labels: Path, audio: Sequence[Path], durations: dict[Path, float | None],
                unlabeled_negative: bool = False, classes: Sequence[str] | None = None
                ) -> list[RecordingLabels]:
    """Every recording of `audio` with its labeled events, checked against the recordings:
    unknown files, times past the end. classes: only rows with these labels count (None: all).
    durations: each recording's length in seconds (None: unknown, not checked)."""
    by_name: dict[str, Path] = {}
    for p in audio:
        if p.name in by_name:
            raise LabelError(f"two recordings are named {p.name} ({by_name[p.name]}, {p}); label files "
                             "name recordings by file name: rename one")
        by_name[p.name] = p
    by_stem = {p.stem: p for p in audio}
    out = {p: RecordingLabels(p, labeled=unlabeled_negative) for p in audio}
    wanted = set(classes) if classes else None
    for lf in label_files(labels):
        rows = read_label_file(lf)
        own = owner_by_name(lf, by_stem)
        if own is not None:
            out[by_stem[own]].labeled = True
            out[by_stem[own]].sources.append(str(lf))
        for r in rows:
            name, label = r.file, r.label
            if own is not None and (name is None or name == by_stem[own].name):
                target = by_stem[own]
            elif name is None:
                head, sep, rest = (label or "").partition(": ")    # orcaport's multi-file Audacity text
                if not (sep and head in by_name):
                    raise _err(lf, int(r.where.rsplit(":", 1)[1]), "the row names no recording",
                               "name the label file after its recording (<stem>.txt) or add a file column")
                target, label = by_name[head], rest or None
            elif name in by_name:
                target = by_name[name]
            else:
                raise _err(lf, int(r.where.rsplit(":", 1)[1]), f"unknown file {name!r} (not among the "
                           f"{len(by_name)} recordings of AUDIO=)", "fix the name or add the recording to AUDIO=")
            duration = durations.get(target)
            if duration is not None and r.end_s > duration + END_SLACK_S:
                raise _err(lf, int(r.where.rsplit(":", 1)[1]), f"end {r.end_s:g} s is past the end of "
                           f"{target.name} ({duration:g} s)", "fix the time or the recording it names")
            rec = out[target]
            if str(lf) not in rec.sources:
                rec.sources.append(str(lf))
            rec.labeled = True
            if wanted is None or (label or "") in wanted:
                rec.events.append(LabeledEvent(r.start_s, r.end_s, label, r.where))
    for rec in out.values():
        rec.events.sort(key=lambda e: (e.start_s, e.end_s))
    return [out[p] for p in audio]

"""One input of `orcaport detect` -> its detections: a WAV or any file ffmpeg reads (one
Detection), or a local HLS playlist (one Detection per complete live window, model/hls.py).
Also what names many inputs at once: a manifest (a .txt file, one input per line) and a glob."""

from __future__ import annotations

import dataclasses
import glob
from pathlib import Path
from typing import Any, Callable, Sequence

from orcaport.model.errors import InputError
from orcaport.model.hls import LIVE_WINDOW_SECONDS, Playlist, Window, check_window_length, read_playlist
from orcaport.model.source import DetectorError
from orcaport.model.transcode import FFMPEG_SUFFIXES, PLAYLIST_SUFFIXES, WAV_SUFFIXES, production_wav

# What a folder scan picks up. Bare .ts files are HLS segments: they are read through their
# playlist (or when named one by one), never each on its own from a folder scan.
SCANNED_SUFFIXES = WAV_SUFFIXES + tuple(s for s in FFMPEG_SUFFIXES if s != ".ts") + PLAYLIST_SUFFIXES
MANIFEST_SUFFIXES = (".txt",)       # one input per line; never audio, so never mistaken for it
GLOB_CHARS = "*?["
ProgressFn = Callable[[int, int], None]


def is_manifest(name: str) -> bool:
    return name.lower().endswith(MANIFEST_SUFFIXES)


def is_glob(name: str) -> bool:
    """A pattern the shell did not expand (quoted, or too many files for one command line)."""
    return any(c in name for c in GLOB_CHARS)


def manifest_entries(text: str) -> list[str]:
    """A manifest's inputs: one path or URL per line; blank lines and `#` comments skipped.
    Relative paths are relative to the manifest's folder (the caller joins them)."""
    lines = (ln.strip() for ln in text.splitlines())
    return [ln for ln in lines if ln and not ln.startswith("#")]


def is_playlist(path: Path) -> bool:
    return path.suffix.lower() in PLAYLIST_SUFFIXES


def scan_folder(folder: Path) -> list[Path]:
    """Every input a folder holds (recursive, sorted)."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in SCANNED_SUFFIXES)


def collect_audio(inputs: Sequence[str | Path]) -> list[Path]:
    """Files as given, folders expanded to their inputs (sorted), manifests to their lines, globs
    to their matches (sorted); raises InputError."""
    files: list[Path] = []
    for name in inputs:
        path = Path(name)
        if is_manifest(str(name)) and path.is_file():
            try:
                entries = manifest_entries(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError) as e:
                raise InputError(f"{path}: unreadable manifest ({type(e).__name__}); give a UTF-8 text "
                                 "file with one input per line") from None
            if not entries:
                raise InputError(f"{path}: manifest lists no inputs; write one file or folder per line")
            files += collect_audio([path.parent / e for e in entries])
        elif is_glob(str(name)) and not path.exists():
            found = sorted(glob.glob(str(name), recursive=True))
            if not found:
                raise InputError(f"{name}: no file matches this pattern; check it (quote it so the "
                                 "shell leaves it to orcaport, `**` spans folders)")
            files += collect_audio(found)
        elif path.is_dir():
            found = scan_folder(path)
            if not found:
                raise InputError(f"{path}: folder holds no .wav or .flac files (nor "
                                 f"{', '.join(s for s in SCANNED_SUFFIXES if s not in ('.wav', '.flac'))}); "
                                 "point at the folder holding the recordings")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise InputError(f"{path}: no such file or folder")
    return list(dict.fromkeys(files))     # a file named twice is run once


def detect_window(detector: Any, playlist: Playlist, window: Window, threshold: float | None = None,
                  min_positive: int | None = None, progress: ProgressFn | None = None) -> Any:
    """One live window: its segments `cat`ed and converted as production does, then detected.
    The Detection is named after the window (segments and start time on the stream)."""
    with production_wav(playlist.path, [s.path for s in window.segments]) as wav:
        d = detector.detect(wav, threshold, min_positive, progress)
    check_window_length(window, d.duration_s, playlist.path)
    return dataclasses.replace(d, wav_filename=window.name(playlist.path))


def detect_input(detector: Any, path: Path, threshold: float | None = None,
                 min_positive: int | None = None, progress: ProgressFn | None = None,
                 window_seconds: float = LIVE_WINDOW_SECONDS) -> list[Any]:
    """The detections of one input, in time order. Raises one-line DetectorError/ValueError."""
    if not is_playlist(path):
        return [detector.detect(path, threshold, min_positive, progress)]
    playlist = read_playlist(path)
    windows = playlist.windows(window_seconds)
    if not windows:
        raise DetectorError(f"{path}: {len(playlist.segments)} segment(s), fewer than one "
                            f"{window_seconds:g} s live window; wait for more segments or pass a "
                            "smaller --window-seconds")
    return [detect_window(detector, playlist, w, threshold, min_positive, progress) for w in windows]

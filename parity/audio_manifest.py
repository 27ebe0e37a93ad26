"""The audio a reference set was recorded from: any folder of recordings (or a list of files),
scanned recursively, each file named by its path relative to the folder, with sha256, format and
duration. Runs in both environments (stdlib + soundfile; ffmpeg for non-WAV files).

`make references AUDIO=DIR` records this list in the references manifest; `make parity AUDIO=DIR`
verifies every file against it before replaying (a changed, missing or extra recording is an error
naming the fix). Names never leave the folder: relative, no '..', no hidden parts.

A recording that is not a WAV (MP3, FLAC, AAC, .ts, ...) is what production never hands legacy
directly: production converts it with ffmpeg first (model/transcode.py, the detector's own step).
Both sides do the same -- references record legacy on that WAV, parity replays that WAV -- so
the entry keeps the source's sha256 *and* the converted WAV's (`wav_sha256`, plus `wav`: the WAV's
rate, channels and duration), and parity refuses to replay when either differs.
"""

from __future__ import annotations

import contextlib
from pathlib import Path, PurePosixPath
from typing import Any, Iterator

from orcaport.model.errors import InputError
from orcaport.model.fileio import sha256_file
from orcaport.model.source import DetectorError
from orcaport.model.transcode import find_ffmpeg, needs_ffmpeg, production_wav

# What the legacy pipeline is handed in production (WAV) and what an archive or a stream holds;
# everything but a WAV goes through production's ffmpeg conversion (`needs_ffmpeg`), and a file
# ffmpeg or legacy cannot read is recorded with that error as its reference behaviour.
AUDIO_SUFFIXES = (".wav", ".wave", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".aif", ".aiff",
                  ".aifc", ".au", ".caf", ".w64", ".rf64", ".m4a", ".aac", ".wv", ".ts")
FIX = "point AUDIO= at the folder (or files) the references were recorded from, or re-run `make references`"
NAME_MAX = 255     # bytes in one file name (Linux, macOS): a tensor file name must fit


class AudioFolderError(InputError):
    """The audio folder is empty, escapes itself, or differs from what the references name."""


def safe_relative(name: Any) -> bool:
    """A relative POSIX path that stays inside its folder: no root, no '..', no hidden part."""
    if not isinstance(name, str) or not name or "\\" in name:
        return False
    p = PurePosixPath(name)
    return not p.is_absolute() and all(part not in ("", ".", "..") and not part.startswith(".")
                                       for part in p.parts)


def describe_audio(path: Path) -> dict[str, Any]:
    """-> {format, subtype, sample_rate, channels, duration_s}; None fields where soundfile
    cannot read the file (ffmpeg may still: AAC, .ts)."""
    import soundfile as sf
    try:
        info = sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError):
        return {"format": path.suffix.lstrip(".").lower() or "unknown", "subtype": None,
                "sample_rate": None, "channels": None, "duration_s": None}
    return {"format": info.format, "subtype": info.subtype, "sample_rate": int(info.samplerate),
            "channels": int(info.channels), "duration_s": info.frames / info.samplerate}


def scan(inputs: list[Path]) -> tuple[Path, list[str]]:
    """Folder (or files in one folder) -> (root, sorted relative names of its audio files)."""
    if not inputs:
        raise AudioFolderError(f"no audio given; {FIX}")
    missing = [p for p in inputs if not p.exists()]
    if missing:
        raise AudioFolderError(f"{missing[0]} does not exist; {FIX}")
    if len(inputs) == 1 and inputs[0].is_dir():
        root = inputs[0]
        files = [p for p in sorted(root.rglob("*")) if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES]
    else:
        dirs = [p for p in inputs if p.is_dir()]
        if dirs:
            raise AudioFolderError(f"give one folder or a list of files, not {dirs[0]} among files")
        root = inputs[0].parent
        if any(p.parent.resolve() != root.resolve() for p in inputs):
            raise AudioFolderError("files given one by one must share a folder; pass that folder instead")
        files = sorted(inputs)
    names = [p.relative_to(root).as_posix() for p in files]
    names = [n for n in names if safe_relative(n)]           # hidden files and folders are skipped
    if not names:
        raise AudioFolderError(f"{root} holds no audio file ({', '.join(AUDIO_SUFFIXES[:4])}, ...); {FIX}")
    return root, names


def tensor_file_name(name: str) -> str:
    """The references' tensor file for audio `name`: its relative path, extension included, in one
    flat name ('a.wav' -> 'a.wav.safetensors', 'site/a.mp3' -> 'site%2Fa.mp3.safetensors').

    Only '%' and '/' are escaped ('%25', '%2F'), so the name is readable and decodes back to the
    path: two distinct recordings can never share a file (the old 'site__a' form let 'a.wav' and
    'a.mp3', or 'site/a.wav' and 'site__a.wav', collide). Flat rather than a mirrored tree because
    the references folder is one level that is swapped atomically and whose loader accepts only
    plain names (a manifest can never point outside it)."""
    return name.replace("%", "%25").replace("/", "%2F") + ".safetensors"


def legacy_input(entry: dict[str, Any]) -> dict[str, Any]:
    """The audio legacy actually reads for an `audio` entry: the converted WAV's rate, channels
    and duration for a non-WAV file (what sizes and clip counts follow), else the entry itself."""
    return {**entry, **entry["wav"]} if isinstance(entry.get("wav"), dict) else entry


@contextlib.contextmanager
def production_input(path: Path) -> Iterator[Path]:
    """The WAV production hands legacy for `path`: the file itself when it is a WAV, else a
    temporary WAV made by production's ffmpeg step (model/transcode.py; DetectorError when ffmpeg
    cannot read it)."""
    if not needs_ffmpeg(path):
        yield path
        return
    with production_wav(path) as wav:
        yield wav


def _conversion(root: Path, name: str) -> dict[str, Any]:
    """-> {wav_sha256, wav: {...}} of a non-WAV recording's production conversion, or
    {wav_sha256: None, conversion_error} when ffmpeg refuses it (that is then its reference).
    No ffmpeg at all is the caller's error, never a recording's."""
    find_ffmpeg(root / name)
    try:
        with production_input(root / name) as wav:
            info = describe_audio(wav)
            return {"wav_sha256": sha256_file(wav),
                    "wav": {k: info[k] for k in ("subtype", "sample_rate", "channels", "duration_s")}}
    except DetectorError as e:
        return {"wav_sha256": None, "conversion_error": str(e).replace(str(root) + "/", "")}


def build_entries(root: Path, names: list[str]) -> list[dict[str, Any]]:
    """-> [{name, sha256, format, subtype, sample_rate, channels, duration_s[, wav_sha256, wav]}]
    in name order; non-WAV files are converted as production converts them (ffmpeg must be
    installed). A name too long for its tensor file is refused (it would fail at the end)."""
    for n in names:
        if len(tensor_file_name(n).encode()) > NAME_MAX:
            raise AudioFolderError(f"{n}: path too long to name its references file (over {NAME_MAX} "
                                   "bytes once flattened); move or rename it higher in the folder")
    entries = []
    for n in names:
        entry = {"name": n, "sha256": sha256_file(root / n), **describe_audio(root / n)}
        if needs_ffmpeg(root / n):
            entry.update(_conversion(root, n))
        entries.append(entry)
    return entries


def verify(root: Path, entries: list[dict[str, Any]]) -> None:
    """Every named recording exists under `root` with its recorded sha256; a non-WAV one is also
    converted as production converts it and must give the WAV the references were recorded on."""
    for e in entries:
        name = e.get("name")
        if not safe_relative(name):
            raise AudioFolderError(f"references name {name!r}, a path outside the audio folder; {FIX}")
        path = root / name
        if not path.is_file():
            raise AudioFolderError(f"{path} is missing; {FIX}")
        if sha256_file(path) != e.get("sha256", e.get("audio_sha256")):
            raise AudioFolderError(f"{path} is not the audio the references were made from "
                                   f"(sha256 differs); {FIX}")
        if needs_ffmpeg(path):
            verify_conversion(path, e)


def verify_conversion(path: Path, entry: dict[str, Any]) -> None:
    """`path` (not a WAV) converts, with production's ffmpeg step, to the WAV whose sha256 the
    references recorded (`wav_sha256`; None: ffmpeg refused it then, and the replay must refuse
    it too, which parity checks)."""
    if "wav_sha256" not in entry:
        raise AudioFolderError(f"{path} is not a WAV and the references keep no sha256 of its "
                               "production conversion (recorded before references converted non-WAV "
                               "audio with ffmpeg, as production does); re-run `make references`")
    want = entry["wav_sha256"]
    if want is None:
        return
    try:
        with production_input(path) as wav:
            got = sha256_file(wav)
    except DetectorError as e:
        raise AudioFolderError(f"{e} (the references converted it)") from None
    if got != want:
        raise AudioFolderError(f"{path}: ffmpeg here converts it to a WAV other than the one the references "
                               "were recorded on (sha256 differs: the references' manifest was edited, or "
                               "this ffmpeg decodes differently from the one in its legacy_versions); "
                               "use that ffmpeg, or re-run `make references` here")

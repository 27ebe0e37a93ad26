"""The audio a reference set was recorded from: any folder of recordings (or a list of files),
scanned recursively, each file named by its path relative to the folder, with sha256, format and
duration. Runs in both environments (stdlib + soundfile).

`make references AUDIO=DIR` records this list in the references manifest; `make parity AUDIO=DIR`
verifies every file against it before replaying (a changed, missing or extra recording is an error
naming the fix). Names never leave the folder: relative, no '..', no hidden parts.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from orcaport.model.errors import InputError
from orcaport.model.fileio import sha256_file

# What the legacy pipeline is handed in production (WAV) and what an archive holds; a file legacy
# cannot read (FLAC through pydub's from_wav, say) is recorded with legacy's error as its reference.
AUDIO_SUFFIXES = (".wav", ".wave", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".aif", ".aiff",
                  ".aifc", ".au", ".caf", ".w64", ".rf64", ".m4a", ".aac", ".wv")
FIX = "point AUDIO= at the folder (or files) the references were recorded from, or re-run `make references`"


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
    cannot read the file (legacy may still: mp3 through ffmpeg)."""
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
    """The references' tensor file for audio `name` ('site/a.wav' -> 'site__a.safetensors')."""
    return str(PurePosixPath(name).with_suffix("")).replace("/", "__") + ".safetensors"


def build_entries(root: Path, names: list[str]) -> list[dict[str, Any]]:
    """-> [{name, sha256, format, subtype, sample_rate, channels, duration_s}] in name order.
    Two recordings that would share a tensor file are refused (their references would collide)."""
    seen: dict[str, str] = {}
    for n in names:
        t = tensor_file_name(n)
        if t in seen:
            raise AudioFolderError(f"{seen[t]} and {n} would share references file {t}; rename or move one")
        seen[t] = n
    return [{"name": n, "sha256": sha256_file(root / n), **describe_audio(root / n)} for n in names]


def verify(root: Path, entries: list[dict[str, Any]]) -> None:
    """Every named recording exists under `root` with its recorded sha256."""
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

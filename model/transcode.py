"""Non-WAV inputs, decoded as production decodes them: ffmpeg to a WAV, then the legacy-exact path.

Production OrcaHello never reads an AAC/.ts stream itself: its live loop (InferenceSystem
`hls_utils/HLSStream.get_next_clip`) `cat`s the downloaded .ts segments into one file and runs
ffmpeg-python's `ffmpeg.output(ffmpeg.input(ts), wav)`, i.e. `ffmpeg -i IN OUT.wav` (ffmpeg's
defaults: pcm_s16le, the source's rate and channels), then `FastAIModel.predict(wav)`. Doing the
same here -- same binary, same arguments -- and then the WAV path that replays pydub bit for bit
makes parity hold by construction. The arguments added to production's are logging and stdin only
(`-nostdin -hide_banner -loglevel error`): they change no sample.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator, Sequence

from orcaport.model.source import DetectorError

WAV_SUFFIXES = (".wav",)                 # read directly (pydub's own parser, replayed)
PLAYLIST_SUFFIXES = (".m3u8",)
# Scanned in folders; any other file given by name is still tried with ffmpeg.
FFMPEG_SUFFIXES = (".flac", ".mp3", ".aac", ".m4a", ".ogg", ".opus", ".ts")
TS_PACKET = 188                          # MPEG-TS packet size; every packet starts with 0x47
INSTALL_FFMPEG = "install ffmpeg (`apt-get install ffmpeg`, `brew install ffmpeg`)"


def needs_ffmpeg(path: Path) -> bool:
    """True for every input that is not a WAV: production converts those with ffmpeg first."""
    return path.suffix.lower() not in WAV_SUFFIXES


def production_command(ffmpeg: str, src: Path, dst: Path) -> list[str]:
    """Production's `ffmpeg -i IN OUT.wav` (ffmpeg-python's compile of input -> output)."""
    return [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-i", str(src), str(dst)]


def find_ffmpeg(what: Path) -> str:
    found = shutil.which("ffmpeg")
    if found is None:
        raise DetectorError(f"{what}: {what.suffix or 'this format'} is read the way production "
                            f"reads it, through ffmpeg, which is not installed; {INSTALL_FFMPEG}, "
                            "or convert the file to WAV yourself")
    return found


def check_ts(path: Path) -> None:
    """Refuse a .ts that is empty or not whole MPEG-TS packets (a cut-off download): ffmpeg would
    decode what is there without a word and the window would silently be short."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        first = f.read(1)
    if size == 0 or size % TS_PACKET or first != b"\x47":
        raise DetectorError(f"{path}: truncated or not an MPEG-TS segment ({size} bytes, not whole "
                            f"{TS_PACKET}-byte packets); download the segment again")


def concatenate(parts: Sequence[Path], dst: Path) -> None:
    """Production's `cat a.ts b.ts ... > dst` (byte concatenation, in the given order)."""
    with open(dst, "wb") as out:
        for part in parts:
            with open(part, "rb") as f:
                shutil.copyfileobj(f, out, 1 << 20)


def to_wav(src: Path, dst: Path, what: Path | None = None) -> None:
    """Run production's conversion of `src` into `dst`; one-line DetectorError when ffmpeg
    cannot read it. `what`: the input to name in errors (default `src`)."""
    what = what or src
    run = subprocess.run(production_command(find_ffmpeg(what), src, dst), capture_output=True,
                         text=True, errors="replace")
    if run.returncode != 0 or not dst.is_file():
        why = next((ln.strip() for ln in run.stderr.splitlines() if ln.strip()), "no output")
        raise DetectorError(f"{what}: not audio ffmpeg can decode ({why}); check the file, or "
                            "convert it to WAV yourself")


@contextlib.contextmanager
def production_wav(path: Path, parts: Sequence[Path] | None = None) -> Iterator[Path]:
    """A temporary WAV of `path` made as production makes it (`parts`: .ts segments to `cat`
    first, `path` then names the result in errors). The temp folder is removed on exit."""
    for part in parts if parts is not None else [path]:
        if not part.is_file():
            raise DetectorError(f"{part}: no such audio file; check the path")
        if part.suffix.lower() == ".ts":
            check_ts(part)
    with tempfile.TemporaryDirectory(prefix="orcaport-ffmpeg-") as tmp:
        src = path
        if parts is not None:
            src = Path(tmp) / "concat.ts"
            concatenate(parts, src)
        wav = Path(tmp) / (path.stem + ".wav")
        to_wav(src, wav, path)
        yield wav

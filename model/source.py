"""Audio in the detector's hands: a file opened in pydub's integer view and handed out second by
second, decoded whole when small or streamed from disk when large, so memory does not grow with
the file's length."""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf

from orcaport.model.audio import (FIX, PCM_BITS, AudioDecodeError, PcmAudio, check_header_frames, decode_pcm,
                                  inspect_header, length_ms, ms_to_frame, pydub_view, read_dtype)
from orcaport.model.errors import OrcaportError

STREAM_BYTES = 64 << 20         # files above this are streamed from disk, never held whole
_LIBC = ctypes.CDLL(None) if os.name == "posix" else None


class DetectorError(OrcaportError, ValueError):
    """One-line, user-facing reason the detector cannot run (names the fix)."""


@dataclass
class AudioSource:
    """A file in pydub's integer view (what `decode_pcm` returns), handed out second by second.

    Files up to `STREAM_BYTES` are decoded whole by `decode_pcm` itself (so they are accepted and
    decoded exactly as parity's replay does); longer ones are streamed from disk with soundfile,
    after `decode_pcm`'s acceptance rules are replayed on the header (tests check both agree).
    """

    path: Path
    sample_rate: int
    channels: int
    frames: int
    sample_width: int             # bytes per sample in pydub's view (1, 2 or 4)
    subtype: str = ""             # soundfile's, for streamed reads (model.audio.pydub_view)
    pcm: PcmAudio | None = None   # the whole decode, when not streaming

    @property
    def duration_s(self) -> float:
        return float(self.frames) / self.sample_rate

    def frame_at(self, second: int) -> int:
        """pydub's `audio[ms:]` start frame for `second * 1000` ms, clamped to len(audio), as
        model.audio.slice_ms computes it."""
        length = length_ms(self.frames, self.sample_rate)
        return ms_to_frame(min(second * 1000, length), self.sample_rate, length)

    def segments(self, count: int, start: int = 0) -> Iterator[np.ndarray]:
        """Seconds start..start+count-1 as (frames, channels) ints, each read exactly once, in order."""
        bounds = [(self.frame_at(j), self.frame_at(j + 1)) for j in range(start, start + count)]
        if self.pcm is not None:
            for a, b in bounds:
                yield self.pcm.samples[a:b]
            return
        with sf.SoundFile(str(self.path)) as f:
            for a, b in bounds:
                f.seek(a)
                x = f.read(b - a, dtype=read_dtype(self.subtype), always_2d=True)
                if x.shape[0] != b - a:
                    raise AudioDecodeError(f"{self.path}: data ends at frame {a + x.shape[0]} but the "
                                           f"header promises {self.frames}; {FIX}")
                yield np.ascontiguousarray(pydub_view(self.path, x, self.subtype)[0])


def open_audio(path: str | Path, stream_bytes: int = STREAM_BYTES) -> AudioSource:
    """Open `path` for the detector: decode it whole, or (above `stream_bytes`) check its header
    the way model.audio.decode_pcm does and stream it."""
    path = Path(path)
    if not path.is_file():
        raise DetectorError(f"{path}: no such audio file; check the path")
    size = path.stat().st_size
    if size <= stream_bytes:
        pcm = decode_pcm(path)
        return AudioSource(path, pcm.sample_rate, pcm.channels, pcm.frames, pcm.sample_width, pcm=pcm)
    header = inspect_header(path)       # decode_pcm's acceptance rules, without reading samples
    info, view, subtype = header.info, header.view, header.info.subtype
    if view is not None:
        check_header_frames(path, view, info.channels, info.samplerate, info.frames)
    width = {8: 1, 16: 2}.get(PCM_BITS.get(subtype, 32), 4)     # IEEE float: ffmpeg's s32
    return AudioSource(path, int(info.samplerate), int(info.channels), int(info.frames), width, subtype)


def release_free_memory() -> None:
    """glibc keeps freed activation buffers in fragmented heaps (its mmap threshold adapts upward),
    so RSS crept up ~70 MB per hour of audio (measured on a 2 h file); malloc_trim(0) returns them.
    A no-op where the C library has no malloc_trim."""
    trim = getattr(_LIBC, "malloc_trim", None)
    if trim is not None:
        trim(0)

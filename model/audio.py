"""Audio decoding of the legacy OrcaHello frontend, replayed without pydub, torchaudio or fastai.

Production (fastai 1.0.61 + fastai_audio 0.1, torchaudio.load/save patched to soundfile) runs,
per 2 s window of a file:

    decode_pcm        pydub `AudioSegment.from_wav`: int samples         (frames, channels)
    slice_ms          `audio[begin*1000:end*1000]`, pydub's ms slicing   (frames', channels)

then the waveform stages of model/waveform.py (load_clip, downmix, cache_round_trip, resample).
`inspect_header` applies decode_pcm's acceptance rules without reading the samples.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any
from pathlib import Path

import numpy as np
import soundfile as sf

from orcaport.model.errors import OrcaportError

MAX_SILENCE_FILL_MS = 2           # pydub pads at most 2 ms of missing frames, then raises
PYDUB_MAX_CHUNKS = 10             # pydub gives up looking for 'data' after 10 RIFF chunks
WAVE_FORMAT_PCM = 0x0001
WAVE_FORMAT_EXTENSIBLE = 0xFFFE
WAV_CONTAINERS = ("WAV", "WAVEX", "RF64")
INT_DTYPES = {1: np.dtype("<i1"), 2: np.dtype("<i2"), 4: np.dtype("<i4")}
PCM_BITS = {"PCM_U8": 8, "PCM_S8": 8, "PCM_16": 16, "PCM_24": 24, "PCM_32": 32}
FIX = "convert it with `sox in.wav -b 16 -e signed-integer out.wav`"
# Rates outside this range are refused rather than replayed: below 1 kHz a 2 s window holds too
# few samples for the mel frontend; above 768 kHz no audio interface records. Legacy accepts them.
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1_000, 768_000
FLOAT_LIMIT = 2.0**32       # |float sample| from which ffmpeg's s32 conversion is position-dependent


class AudioDecodeError(OrcaportError, ValueError):
    """The file cannot be decoded the way the legacy pipeline would (message names the fix)."""


def check_sample_rate(path: str | Path, rate: int) -> None:
    """Refuse a sample rate outside [MIN_SAMPLE_RATE, MAX_SAMPLE_RATE] (AudioDecodeError)."""
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise AudioDecodeError(f"{path}: sample rate {rate} Hz is outside {MIN_SAMPLE_RATE}.."
                               f"{MAX_SAMPLE_RATE} Hz, not a hydrophone recording; resample it, e.g. "
                               "`sox in.wav -r 48000 out.wav`")


def check_float_range(path: str | Path, x: np.ndarray) -> None:
    """Refuse float samples that are NaN/Inf or |x| >= 2^32 (AudioDecodeError). Legacy's ffmpeg
    turns each into a full-scale click whose sign depends on the sample's position in its buffers
    (SIMD block or scalar tail), which no runtime can replay; we refuse instead."""
    bad = ~(np.abs(x) < FLOAT_LIMIT)           # NaN compares False: caught too
    frames = np.flatnonzero(bad.any(axis=-1) if bad.ndim > 1 else bad)
    if frames.size:
        raise AudioDecodeError(f"{path}: {frames.size} frame(s) hold NaN, Inf or |x| >= 2^32 float "
                               f"samples (first at frame {int(frames[0])}); legacy turns them into "
                               "full-scale clicks -- fix or re-export the recording")


class SliceError(OrcaportError, ValueError):
    """pydub's TooManyMissingFrames: a slice reaches more than 2 ms past the end of the audio."""


@dataclass(frozen=True, eq=False)
class PcmAudio:
    """Integer samples exactly as pydub holds them.

    samples: (frames, channels) int8 / int16 / int32, little-endian, C-contiguous.
        8-bit WAV is unsigned on disk; pydub holds it as signed (value - 128).
        24-bit is widened by pydub to 32-bit as (s24 << 8) | (0xFF if s24 < 0 else 0x00).
    sample_width: bytes per sample after that widening (1, 2 or 4).
    tail: bytes of an incomplete last frame (a data chunk cut mid-frame); pydub keeps them in its
        buffer, slicing can carry them into a clip, and soundfile later drops them.
    """

    samples: np.ndarray
    sample_rate: int
    sample_width: int
    tail: bytes = b""

    @property
    def frames(self) -> int:
        return int(self.samples.shape[0])

    @property
    def channels(self) -> int:
        return int(self.samples.shape[1])

    @property
    def duration_s(self) -> float:
        """frames / rate: what librosa.get_duration(path) returns (it asks soundfile)."""
        return float(self.frames) / self.sample_rate

    @property
    def length_ms(self) -> int:
        """pydub `len(audio)`: round(1000 * frames / rate), Python's round (half to even)."""
        return length_ms(self.frames, self.sample_rate)


@dataclass(frozen=True)
class _RiffView:
    """What pydub's own WAV header parser sees (None where it would fall back to ffmpeg)."""

    audio_format: int
    channels: int
    sample_rate: int
    bits_per_sample: int
    data_offset: int
    data_bytes: int          # bytes pydub takes: min(declared size, what the file holds)


def _riff_view(path: Path, file_size: int) -> _RiffView | None:
    """Walk chunks as pydub 0.25.1 does: from byte 12, no pad byte after odd sizes, at most 10
    chunks, stop at 'data'. pydub then needs a 'fmt ' of >= 16 bytes with format 1 or 0xFFFE and
    'data' as the last chunk seen; any failure sends it to ffmpeg (FileNotFoundError: 'ffprobe'
    where ffmpeg is absent, as on these machines; the production image installs ffmpeg)."""
    chunks: list[tuple[bytes, int, int]] = []
    with open(path, "rb") as f:
        pos = 12
        while pos + 8 <= file_size and len(chunks) < PYDUB_MAX_CHUNKS:
            f.seek(pos)
            cid, size = struct.unpack("<4sI", f.read(8))
            chunks.append((cid, pos, size))
            if cid == b"data":
                break
            pos += size + 8
        fmt = [c for c in chunks if c[0] == b"fmt "]
        if not fmt or fmt[0][2] < 16 or chunks[-1][0] != b"data":
            return None
        f.seek(fmt[0][1] + 8)
        raw = f.read(16)
    if len(raw) < 16:
        return None
    tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", raw)
    if tag not in (WAVE_FORMAT_PCM, WAVE_FORMAT_EXTENSIBLE):
        return None
    offset = chunks[-1][1] + 8
    held = max(0, min(chunks[-1][2], file_size - offset))
    return _RiffView(tag, channels, rate, bits, offset, held)


def _pydub_tail(path: Path, view: _RiffView) -> bytes:
    """The bytes after the last whole frame of a data chunk cut mid-frame, as pydub holds them:
    8-bit biased to signed, 24-bit widened per complete 3-byte sample (a partial one is dropped)."""
    width = view.bits_per_sample // 8
    n_tail = view.data_bytes % (view.channels * width)
    if not n_tail:
        return b""
    with open(path, "rb") as f:
        f.seek(view.data_offset + view.data_bytes - n_tail)
        raw = f.read(n_tail)
    if width == 1:
        return bytes((b - 128) & 0xFF for b in raw)
    if width == 3:
        return b"".join((b"\xff" if raw[i + 2] > 0x7F else b"\x00") + raw[i:i + 3]
                        for i in range(0, len(raw) - 2, 3))
    return raw


def read_dtype(subtype: str) -> str:
    """The dtype soundfile reads a `subtype` in before `pydub_view` maps it (8/16-bit: int16,
    24/32-bit: int32, IEEE float: float32)."""
    bits = PCM_BITS.get(subtype)
    return "float32" if bits is None else ("int16" if bits <= 16 else "int32")


def pydub_view(path: str | Path, x: np.ndarray, subtype: str) -> tuple[np.ndarray, int]:
    """A block soundfile read (as `read_dtype(subtype)`, (frames, channels)) in pydub's integer
    view. -> (samples, sample_width). The one mapping behind the whole-file decode and the
    detector's streamed reads: 8-bit is unsigned on disk and signed in pydub; 24-bit is
    left-justified with 0x00 by soundfile, sign-filled by pydub; IEEE float goes through ffmpeg's
    pcm_s32le in pydub (refused when ffmpeg's answer is position-dependent)."""
    bits = PCM_BITS.get(subtype)
    if bits is None:
        check_float_range(path, x)
        return _ffmpeg_float_to_s32(x), 4
    if bits == 8:
        return (x >> 8).astype("<i1"), 1
    if bits == 16:
        return x.astype("<i2"), 2
    x = x.astype("<i4")
    if bits == 24:
        x |= (x >> 31) & 0xFF
    return x, 4


def check_header_frames(path: str | Path, view: _RiffView, channels: int, rate: int, frames: int) -> None:
    """pydub's own reading of the RIFF header must agree with soundfile's, or the file is refused."""
    frame_bytes = view.channels * (view.bits_per_sample // 8)
    seen = (view.channels, view.sample_rate, view.data_bytes // frame_bytes)
    if seen != (channels, rate, frames):
        raise AudioDecodeError(f"{path}: header inconsistent (pydub sees channels/rate/frames "
                               f"{seen}, soundfile {(channels, rate, frames)}); {FIX}")


def _ffmpeg_float_to_s32(x: np.ndarray) -> np.ndarray:
    """libswresample flt -> s32: round(x * 2^31) half to even, saturated to int32 for |x| < 2^32.
    Beyond that, and for NaN/inf, ffmpeg's answer depends on where the sample sits in its buffers
    (SIMD blocks saturate to INT32_MAX, the scalar tail gives INT32_MIN): `check_float_range`
    refuses such files, and here they give the scalar path's INT32_MIN."""
    s = x.astype(np.float64) * 2.0**31
    out = np.full(s.shape, np.iinfo(np.int32).min, dtype=np.int64)
    ok = np.isfinite(s) & (np.abs(s) < 2.0**63)
    out[ok] = np.clip(np.rint(s[ok]), -(2**31), 2**31 - 1).astype(np.int64)
    return out.astype("<i4")


def decode_pcm(path: str | Path) -> PcmAudio:
    """Decode a WAV (or FLAC) file into pydub's integer view.   -> PcmAudio (frames, channels)

    What legacy (`AudioSegment.from_wav`, pydub 0.25.1) does, and what this does:
      PCM 16 / 32-bit, WAV, WAVEX or RF64   read natively by pydub            -> same ints
      PCM 8-bit (unsigned on disk)          pydub biases to signed int8       -> int8
      PCM 24-bit                            widened to int32, low byte = sign -> same int32
      IEEE float32 (format 3)               pydub's parser refuses it and shells out to ffmpeg
                                            (`-acodec pcm_s32le`); without ffmpeg it raises
                                            FileNotFoundError('ffprobe')      -> ffmpeg's int32
      ... holding NaN / Inf / |x| >= 2^32   ffmpeg makes each a full-scale click of a
                                            position-dependent sign           -> error (divergence)
      sample rate < 1 kHz or > 768 kHz      decoded as is                     -> error (divergence)
      odd-sized or > 10 chunks before 'data'
                                            ffmpeg path, same PCM ints        -> same ints
      big-endian RIFX                       ffmpeg's WAV demuxer refuses it (CouldntDecodeError)
                                            or pydub misreads it              -> error
      WAVE_FORMAT_EXTENSIBLE float / double pydub reads the float bits as ints (noise) -> error
      bits not 8/16/24/32 (12-, 20-bit...)  pydub uses bits // 8 bytes (garbage or crash) -> error
      float64, u-law, a-law, ADPCM, GSM     ffmpeg path / no PCM equivalent   -> error
      FLAC                                  from_wav forces ffmpeg's WAV demuxer: fails
                                            (CouldntDecodeError, or FileNotFoundError without
                                            ffmpeg)                           -> extension: read
                                            as if it were a WAV of the same bit depth
      data chunk shorter than declared      pydub keeps what is there (no error) -> same, with
                                            an incomplete last frame kept in `tail`
      empty / not audio / no 'data' chunk   ffmpeg path then CouldntDecodeError -> error
    """
    path = Path(path)
    header = inspect_header(path)
    info, view, subtype = header.info, header.view, header.info.subtype
    # pydub's native parser (view), the ffmpeg path or FLAC: PCM ints come out unchanged; IEEE
    # float WAV through ffmpeg's s32 (inspect_header let nothing else through)
    samples, width = pydub_view(path, sf.read(str(path), dtype=read_dtype(subtype), always_2d=True)[0], subtype)
    tail = b""
    if view is not None:
        check_header_frames(path, view, info.channels, info.samplerate, samples.shape[0])
        tail = _pydub_tail(path, view)
    return PcmAudio(np.ascontiguousarray(samples), int(info.samplerate), width, tail)


@dataclass(frozen=True)
class AudioHeader:
    """What `inspect_header` learned: soundfile's info, and pydub's own view of the RIFF header
    (None when pydub would hand the file to ffmpeg: float WAV, FLAC, unusual chunk layouts)."""

    info: Any
    view: _RiffView | None


def inspect_header(path: str | Path) -> AudioHeader:
    """Every acceptance rule `decode_pcm` applies before reading a sample, in its order (the
    detector's streaming reader applies the same rules through this). Raises AudioDecodeError."""
    path = Path(path)
    size = path.stat().st_size          # FileNotFoundError as is: nothing to decode
    if size == 0:
        raise AudioDecodeError(f"{path}: empty file (0 bytes); legacy fails on it too -- "
                               "re-export the recording")
    try:
        info = sf.info(str(path))
    except RuntimeError as e:           # soundfile's LibsndfileError
        reason = str(e).rsplit("': ", 1)[-1].strip()
        raise AudioDecodeError(f"{path}: not decodable audio ({reason}); {FIX}") from None
    container, subtype = info.format, info.subtype
    if container not in WAV_CONTAINERS + ("FLAC",):
        raise AudioDecodeError(f"{path}: {container} files are not read by the legacy pipeline "
                               f"(WAV only); {FIX}")
    check_sample_rate(path, info.samplerate)
    with open(path, "rb") as f:
        if f.read(4) == b"RIFX":
            raise AudioDecodeError(f"{path}: big-endian (RIFX) WAV, which legacy fails to decode "
                                   f"or misreads; {FIX}")
    view = _riff_view(path, size) if container in WAV_CONTAINERS else None
    if view is not None:
        if view.bits_per_sample not in (8, 16, 24, 32) or subtype not in PCM_BITS \
                or PCM_BITS[subtype] != view.bits_per_sample:
            what = (f"{subtype} samples" if subtype not in PCM_BITS
                    else f"{view.bits_per_sample}-bit samples")
            raise AudioDecodeError(f"{path}: legacy pydub misreads {what} as "
                                   f"{view.bits_per_sample // 8}-byte integers; {FIX}")
    elif subtype not in PCM_BITS and not (subtype == "FLOAT" and container == "WAV"):
        raise AudioDecodeError(f"{path}: legacy cannot turn {container}/{subtype} audio into PCM "
                               f"samples; {FIX}")
    return AudioHeader(info=info, view=view)


def length_ms(frames: int, sample_rate: int) -> int:
    """pydub `len(audio)`: round(1000 * frames / rate), Python's round (half to even)."""
    return round(1000 * (float(frames) / sample_rate))


def ms_to_frame(ms: float, sample_rate: int, length: int) -> int:
    """pydub `_parse_position` for audio `length` ms long: negative ms count from the end,
    int(ms * (rate / 1000.0))."""
    if ms < 0:
        ms = length - abs(ms)
    if ms == float("inf"):
        ms = length
    return int(ms * (sample_rate / 1000.0))


def slice_ms(pcm: PcmAudio, begin_ms: float | None = None, end_ms: float | None = None) -> PcmAudio:
    """pydub `audio[begin_ms:end_ms]`.   (frames, channels) -> (frames', channels)

    Both ends are clamped to len(audio) (whole ms, rounded half to even) and mapped to frames with
    int(ms * (rate / 1000.0)), truncating; negative ms count back from len(audio).
    When the slice asks for frames past the end, up to 2 ms of them are filled with zeros (one
    frame of zeros per missing frame; nothing when the slice holds no data at all); more raises
    SliceError, like pydub's TooManyMissingFrames.
    """
    fw = pcm.channels * pcm.sample_width
    length = pcm.length_ms
    start = min(0 if begin_ms is None else begin_ms, length)
    end = min(length if end_ms is None else end_ms, length)
    b0, b1 = (ms_to_frame(ms, pcm.sample_rate, length) * fw for ms in (start, end))
    body = pcm.samples.reshape(-1).view(np.uint8)
    buf_len = body.size + len(pcm.tail)
    lo, hi, _ = slice(b0, b1).indices(buf_len)
    data = body[lo:min(hi, body.size)]
    if hi > body.size:
        tail = np.frombuffer(pcm.tail, np.uint8)[max(lo - body.size, 0):hi - body.size]
        data = np.concatenate([data, tail])
    missing = (b1 - b0 - data.size) // fw
    if missing:
        if missing > pcm.sample_rate / 1000.0 * MAX_SILENCE_FILL_MS:
            raise SliceError(f"slice [{begin_ms}, {end_ms}) ms needs {missing} frames past the end "
                             f"of {pcm.length_ms} ms of audio (pydub fills at most "
                             f"{MAX_SILENCE_FILL_MS} ms); ask for a window inside the file")
        unit = min(fw, data.size)
        if unit % pcm.sample_width:
            raise SliceError("slice ends in a partial sample of a truncated file (pydub's audioop "
                             "fails there); drop the last window")
        data = np.concatenate([data, np.zeros(unit * max(missing, 0), np.uint8)])
    whole = data.size - data.size % fw
    samples = np.frombuffer(data[:whole].tobytes(), INT_DTYPES[pcm.sample_width]).copy()
    samples = samples.reshape(-1, pcm.channels)
    return PcmAudio(samples, pcm.sample_rate, pcm.sample_width, data[whole:].tobytes())

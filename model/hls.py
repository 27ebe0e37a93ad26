"""A local HLS playlist (`live.m3u8` + `.ts` segments), processed as OrcaHello's live loop does.

Production (InferenceSystem `hls_utils/HLSStream.get_next_clip`) takes
`ceil(polling_interval / target_duration)` consecutive segments (60 s / 10 s = 6), `cat`s them,
converts the result with ffmpeg to one WAV and predicts on it; a window whose segments are not all
in the playlist yet is not processed (it waits for the next poll). Here the windows are laid
end to end from the playlist's first segment, and each window's start time is the sum of the
`#EXTINF` durations before it (segment order), so per-window detections land on the stream's
timeline. Deliberate divergence: production skips a segment whose download failed and predicts on
the shorter concatenation; a listed segment that is missing here is an error (the window would be
silently shorter and its timestamps wrong).

Only local segment paths inside the playlist's folder are followed: nothing is downloaded, and a
playlist cannot make the detector read files elsewhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from orcaport.model.source import DetectorError

LIVE_WINDOW_SECONDS = 60.0          # production's hls_polling_interval
DURATION_SLACK_S = 0.5              # decoded vs #EXTINF length; AAC priming is a few ms


@dataclass(frozen=True)
class Segment:
    path: Path
    duration_s: float               # #EXTINF


@dataclass(frozen=True)
class Window:
    index: int                      # 0, 1, ... in playlist order
    segments: tuple[Segment, ...]
    start_s: float                  # sum of #EXTINF of the segments before it

    @property
    def duration_s(self) -> float:
        return sum(s.duration_s for s in self.segments)

    def name(self, playlist: Path) -> str:
        """e.g. `live.m3u8:live000.ts..live005.ts@0.000s`: the window's name in every output."""
        first, last = self.segments[0].path.name, self.segments[-1].path.name
        return f"{playlist.name}:{first}..{last}@{self.start_s:.3f}s"


@dataclass(frozen=True)
class Playlist:
    path: Path
    target_duration: float
    segments: tuple[Segment, ...]
    ended: bool                     # #EXT-X-ENDLIST: no segment will be added

    def windows(self, window_seconds: float = LIVE_WINDOW_SECONDS) -> list[Window]:
        """Complete windows only (production waits for a window's last segment)."""
        per = max(1, math.ceil(window_seconds / self.target_duration))
        out, start = [], 0.0
        for i in range(len(self.segments) // per):
            segs = self.segments[i * per:(i + 1) * per]
            out.append(Window(i, segs, start))
            start += sum(s.duration_s for s in segs)
        return out

    def leftover(self, window_seconds: float = LIVE_WINDOW_SECONDS) -> int:
        """Segments after the last complete window (not processed)."""
        per = max(1, math.ceil(window_seconds / self.target_duration))
        return len(self.segments) % per


def _bad(path: Path, why: str, fix: str = "fix or re-download the playlist") -> DetectorError:
    return DetectorError(f"{path}: {why}; {fix}")


def _segment_path(playlist: Path, uri: str) -> Path:
    """The local file a segment URI names, refused when it leaves the playlist's folder."""
    parts = urlsplit(uri)
    if parts.scheme or parts.netloc:
        raise _bad(playlist, f"segment {uri!r} is a URL; only local playlists are read (nothing is "
                             "downloaded)", "download the segments next to the playlist first")
    folder = playlist.parent.resolve()
    target = (folder / unquote(parts.path)).resolve()
    if not target.is_relative_to(folder):
        raise _bad(playlist, f"segment {uri!r} points outside the playlist's folder {folder}",
                   "keep the segments in the playlist's folder")
    return target


def read_playlist(path: Path, wait_for_missing: bool = False) -> Playlist:
    """Parse a local media playlist; every listed segment must exist (one-line DetectorError), or,
    with `wait_for_missing` (a live folder still filling), the playlist ends before the first
    missing one."""
    if not path.is_file():
        raise DetectorError(f"{path}: no such playlist; check the path")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise _bad(path, f"unreadable ({type(e).__name__})") from None
    playlist = parse_playlist(path, text)
    segments = playlist.segments
    missing = [s.path.name for s in segments if not s.path.is_file()]
    if missing and wait_for_missing:
        segments = segments[:[s.path.is_file() for s in segments].index(False)]
    elif missing:
        raise _bad(path, f"lists {len(missing)} segment(s) missing from {path.parent} (first: "
                         f"{missing[0]})", "download the missing segments, or remove them from the "
                                           "playlist")
    return Playlist(path, playlist.target_duration, tuple(segments), playlist.ended)


def parse_playlist(path: Path, text: str) -> Playlist:
    """A media playlist's text, read as if it were at `path` (segment paths under its folder),
    without looking at the segments: a remote archive's playlist (model/scale/sources.py) is
    parsed here and its segments fetched later."""
    lines = [ln.strip() for ln in text.splitlines()]
    if not lines or lines[0] != "#EXTM3U":
        raise _bad(path, "not an HLS playlist (no #EXTM3U header)")
    target, pending, segments, ended = None, None, [], False
    for ln in lines[1:]:
        if ln.startswith("#EXT-X-TARGETDURATION:"):
            target = float(ln.split(":", 1)[1])
        elif ln.startswith("#EXT-X-STREAM-INF"):
            raise _bad(path, "is a master playlist (variants), not a media playlist",
                       "pass the media playlist of one stream (live.m3u8)")
        elif ln.startswith("#EXTINF:"):
            try:
                pending = float(ln.split(":", 1)[1].split(",", 1)[0])
            except ValueError:
                raise _bad(path, f"malformed {ln!r}") from None
        elif ln == "#EXT-X-ENDLIST":
            ended = True
        elif ln and not ln.startswith("#"):
            if pending is None:
                raise _bad(path, f"segment {ln!r} has no #EXTINF duration")
            segments.append(Segment(_segment_path(path, ln), pending))
            pending = None
    if target is None or target <= 0:
        raise _bad(path, "has no valid #EXT-X-TARGETDURATION")
    return Playlist(path, target, tuple(segments), ended)


def check_window_length(window: Window, decoded_s: float, playlist: Path) -> None:
    """The decoded WAV must be as long as the #EXTINF durations say (a segment cut at a packet
    boundary decodes without error, just short)."""
    if abs(decoded_s - window.duration_s) > DURATION_SLACK_S:
        raise _bad(playlist, f"window {window.index} ({window.segments[0].path.name}..."
                             f"{window.segments[-1].path.name}) decodes to {decoded_s:.2f} s, but "
                             f"its #EXTINF durations add up to {window.duration_s:.2f} s: a segment "
                             "is truncated", "download the window's segments again")

"""Inputs of a `--ray` run, read through fsspec so local paths, file://, http(s):// and object
stores (s3://, gs://, with their fsspec package installed) are one code path:

    file            one work item (WAV read directly; anything else through production's ffmpeg)
    manifest        a .txt of inputs, one per line, relative to the manifest's folder
    glob            the matches, sorted
    folder          scanned recursively like `orcaport detect DIR`; each playlist (.m3u8) found is
                    an HLS stream: an Orcasound archive `<node>/hls/<timestamp>/live.m3u8 +
                    live*.ts` becomes one item per complete 60 s window (production's windows,
                    model/hls.py), named `<timestamp folder>/live.m3u8:live000.ts..live005.ts@0.000s`

A work item is planned on the driver from names and playlists only (nothing is decoded there);
`item_waveforms` runs in a worker: it fetches the item (a local file is read in place), converts
it as production does, and runs the waveform steps (model/clips.py).
"""

from __future__ import annotations

import contextlib
import posixpath
import shutil
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote, urlsplit

import fsspec
import numpy as np

from orcaport.model.clips import ClipWaveforms
from orcaport.model.errors import InputError
from orcaport.model.hls import LIVE_WINDOW_SECONDS, Window, check_window_length, parse_playlist
from orcaport.model.inputs import (MANIFEST_SUFFIXES, SCANNED_SUFFIXES, is_glob, is_manifest, is_playlist,
                                   manifest_entries)
from orcaport.model.pipeline import Frontend
from orcaport.model.source import STREAM_BYTES, AudioSource, DetectorError, open_audio
from orcaport.model.transcode import FFMPEG_SUFFIXES, needs_ffmpeg, production_wav


@dataclass(frozen=True)
class WorkItem:
    """One file or one HLS window: what a worker fetches and prepares, and what the run manifest
    records once. id: the input's URL (+ `#window=N`), unique in a run; name: the outputs' name."""

    id: str
    name: str
    url: str                                # the file, or the window's playlist
    window: Window | None = None            # an HLS window: its segments' names and #EXTINF lengths
    segment_urls: tuple[str, ...] = ()

    @property
    def review_path(self) -> str:
        """What Raven's Begin Path / the outputs name as the item's file."""
        return _local_path(self.url) or self.url


def _local_path(url: str) -> str | None:
    """The local path of a file:// URL or plain path, else None."""
    parts = urlsplit(url)
    if parts.scheme in ("", "file"):
        return parts.path if parts.scheme else url
    return None


def _fs(url: str) -> tuple[Any, str]:
    try:
        return fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as e:      # an unknown protocol, or its package missing
        raise InputError(f"{url}: cannot be read ({e}); install the fsspec package for its "
                         "protocol (s3fs, gcsfs, ...) or give a local path") from None


def _url(fs: Any, path: str, like: str) -> str:
    """fsspec's path back as the kind of name the user gave (a plain local path stays plain)."""
    if _local_path(like) is not None and "://" not in like:
        return path
    return fs.unstrip_protocol(path)


def _join(base_url: str, entry: str) -> str:
    """A manifest entry relative to its manifest's folder (absolute paths and URLs as they are)."""
    if "://" in entry or entry.startswith("/"):
        return entry
    return posixpath.join(posixpath.dirname(base_url), entry)


def plan_inputs(inputs: list[str], window_seconds: float = LIVE_WINDOW_SECONDS) -> list[WorkItem]:
    """Every work item the inputs name, in order, each once. InputError for an input that names
    nothing (missing, empty folder, empty manifest, glob without matches)."""
    items: dict[str, WorkItem] = {}
    for name in inputs:
        for item in _expand(str(name), window_seconds):
            items.setdefault(item.id, item)
    return list(items.values())


def _expand(url: str, window_seconds: float) -> list[WorkItem]:
    fs, path = _fs(url)
    try:
        if is_manifest(url) and fs.isfile(path):
            entries = manifest_entries(fs.cat_file(path).decode("utf-8"))
            if not entries:
                raise InputError(f"{url}: manifest lists no inputs; write one file or URL per line")
            return [i for e in entries for i in _expand(_join(url, e), window_seconds)]
        if is_glob(url) and not fs.exists(path):
            found = sorted(fs.glob(path))
            if not found:
                raise InputError(f"{url}: no file matches this pattern; check it (quote it so the "
                                 "shell leaves it to orcaport)")
            return [i for f in found for i in _expand(_url(fs, f, url), window_seconds)]
        if not _names_a_file(path) and fs.isdir(path):
            found = sorted(f for f in fs.find(path) if f.lower().endswith(SCANNED_SUFFIXES))
            if not found:
                raise InputError(f"{url}: folder holds no audio files nor HLS playlists (live.m3u8); "
                                 "point at the folder holding the recordings")
            root = path.rstrip("/")
            return [i for f in found for i in _file_items(fs, f, _url(fs, f, url), window_seconds,
                                                          posixpath.relpath(posixpath.dirname(f), root))]
        if fs.isfile(path):
            return _file_items(fs, path, url, window_seconds, None)
    except (OSError, UnicodeDecodeError) as e:
        if isinstance(e, FileNotFoundError):
            raise InputError(f"{url}: no such file or folder") from None
        raise InputError(f"{url}: cannot be read ({type(e).__name__}: {e}); check the address") from None
    raise InputError(f"{url}: no such file or folder")


def _names_a_file(path: str) -> bool:
    """A name with an input's suffix is taken for a file: over http(s) an isdir() check would
    download the file to look for links in it."""
    return path.lower().endswith(SCANNED_SUFFIXES + FFMPEG_SUFFIXES + MANIFEST_SUFFIXES)


def _file_items(fs: Any, path: str, url: str, window_seconds: float, folder: str | None) -> list[WorkItem]:
    if not is_playlist(Path(path)):
        return [WorkItem(url, posixpath.basename(path), url)]
    return playlist_items(fs.cat_file(path).decode("utf-8"), url, window_seconds, folder)


def playlist_items(text: str, url: str, window_seconds: float, folder: str | None = None) -> list[WorkItem]:
    """A playlist's complete windows as work items; `folder`: the playlist's folder relative to a
    scanned root (prefixed to the names, so windows of different timestamps never share one)."""
    where = Path("/" + urlsplit(url).path.lstrip("/") if "://" in url else url)
    playlist = parse_playlist(where, text)
    windows = playlist.windows(window_seconds)
    if not windows:
        raise InputError(f"{url}: {len(playlist.segments)} segment(s), fewer than one "
                         f"{window_seconds:g} s live window; pass a smaller --window-seconds")
    base = url.rsplit("/", 1)[0]
    parent = where.parent.resolve()
    remote = "://" in url and not url.startswith("file://")
    prefix = "" if folder in (None, ".") else folder + "/"
    items = []
    for w in windows:
        rel = [s.path.relative_to(parent).as_posix() for s in w.segments]
        segs = tuple(f"{base}/{quote(r) if remote else r}" for r in rel)
        items.append(WorkItem(f"{url}#window={w.index}", prefix + w.name(where), url, w, segs))
    return items


def _fetch(url: str, dst: Path) -> Path:
    """A remote file copied to `dst` (streamed); a local one is used where it is."""
    local = _local_path(url)
    if local is not None:
        return Path(local)
    fs, path = _fs(url)
    try:
        with fs.open(path, "rb") as src, open(dst, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
    except FileNotFoundError:
        raise DetectorError(f"{url}: not found; check the address") from None
    except Exception as e:     # noqa: BLE001 -- each protocol raises its own (aiohttp, botocore, ...)
        raise DetectorError(f"{url}: could not be read ({type(e).__name__}: {e}); check the "
                            "address and that the server is reachable") from None
    return dst


@contextlib.contextmanager
def local_wav(item: WorkItem) -> Iterator[Path]:
    """The item as a local WAV: the file itself, or production's ffmpeg conversion of it (a window:
    its segments `cat`ed first). Fetched files and conversions live in a temp folder, removed on exit."""
    with tempfile.TemporaryDirectory(prefix="orcaport-ray-") as tmp:
        if item.window is not None:
            parts = [_fetch(u, Path(tmp) / f"{i:04d}-{posixpath.basename(u)}") for i, u in enumerate(item.segment_urls)]
            with production_wav(Path(tmp) / posixpath.basename(urlsplit(item.url).path), parts) as wav:
                yield wav
            return
        path = _fetch(item.url, Path(tmp) / posixpath.basename(urlsplit(item.url).path))
        if needs_ffmpeg(path):
            with production_wav(path) as wav:
                yield wav
        else:
            yield path


def item_waveforms(item: WorkItem, fe: Frontend, stream_bytes: int = STREAM_BYTES
                   ) -> tuple[AudioSource, np.ndarray, dict[str, float]]:
    """Fetch, convert and run the waveform steps of one item (in a worker).
    -> (its source without samples, (clips, C, N') float32 waveforms, seconds spent {fetch, waveform})"""
    t0 = time.perf_counter()
    with local_wav(item) as wav:
        t1 = time.perf_counter()
        src = open_audio(wav, stream_bytes)
        if item.window is not None:
            check_window_length(item.window, src.duration_s, Path(item.url))
        waves = ClipWaveforms(fe).waveforms(src)
    t2 = time.perf_counter()
    return replace(src, pcm=None), waves, {"fetch": t1 - t0, "waveform": t2 - t1}

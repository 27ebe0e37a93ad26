"""`orcaport detect --follow DIR`: process new inputs as they land, each once, across restarts.

Each poll scans DIR (model/inputs.py's suffixes). A file is taken once it has settled (unchanged
for `settle_s`: still being copied otherwise); a playlist is re-read every poll and each new
complete live window is processed as it completes, as the live loop does. What was processed is
recorded in a small JSON state file, rewritten atomically (model/fileio.py) after every input, so
a restart -- even after SIGKILL -- resumes where it stopped: a file or window whose result was
emitted but not yet recorded is processed again (at most that one), none is skipped.
Results are emitted as one JSON line per detection (file or window) on stdout; an input that
fails prints one `error:` line and is recorded as failed (not retried forever).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

from orcaport.model.errors import OrcaportError
from orcaport.model.fileio import write_file_atomically
from orcaport.model.hls import read_playlist
from orcaport.model.inputs import detect_input, detect_window, is_playlist, scan_folder
from orcaport.model.source import DetectorError

STATE_NAME = ".orcaport-follow.json"
STATE_VERSION = 1


class FollowError(OrcaportError, ValueError):
    """The folder or the state file cannot be followed (one line, names the fix)."""


def load_state(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"version": STATE_VERSION, "files": {}, "windows": {}}
    try:
        state = json.loads(path.read_text())
        if state.get("version") != STATE_VERSION or not isinstance(state.get("files"), dict) \
                or not isinstance(state.get("windows"), dict):
            raise ValueError("unknown layout")
    except (OSError, ValueError, AttributeError) as e:
        raise FollowError(f"state file {path} is unreadable ({str(e).splitlines()[0] if str(e) else e}); "
                          "delete it to process the folder from scratch, or pass another --state") from None
    return state


def save_state(path: Path, state: dict[str, Any]) -> None:
    write_file_atomically(path, json.dumps(state, indent=1, sort_keys=True) + "\n")


def _emit(detection: Any, source: Path, out: Callable[[str], None]) -> None:
    out(json.dumps({"source": str(source), **detection.to_dict()}) + "\n")


def poll_once(detector: Any, folder: Path, state_path: Path, state: dict[str, Any], settle_s: float,
              window_seconds: float, out: Callable[[str], None], err: Callable[[str], None]) -> int:
    """One scan: process what is new. Returns how many inputs failed."""
    failed = 0
    now = time.time()
    for path in scan_folder(folder):
        rel = path.relative_to(folder).as_posix()
        if path.resolve() == state_path.resolve():
            continue
        try:
            if is_playlist(path):
                playlist = read_playlist(path, wait_for_missing=True)
                done = int(state["windows"].get(rel, 0))
                for window in playlist.windows(window_seconds)[done:]:
                    try:
                        _emit(detect_window(detector, playlist, window), path, out)
                    except (DetectorError, ValueError, OSError) as e:
                        failed += 1
                        err(f"error: {str(e).splitlines()[0]}")
                    state["windows"][rel] = window.index + 1
                    save_state(state_path, state)
                continue
            if rel in state["files"] or now - path.stat().st_mtime < settle_s:
                continue
            status = "ok"
            try:
                for d in detect_input(detector, path, window_seconds=window_seconds):
                    _emit(d, path, out)
            except (DetectorError, ValueError, OSError) as e:
                failed, status = failed + 1, "error"
                err(f"error: {str(e).splitlines()[0]}")
            state["files"][rel] = status
            save_state(state_path, state)
        except (DetectorError, ValueError) as e:   # an unreadable playlist: say so, try next poll
            failed += 1
            err(f"error: {str(e).splitlines()[0]}")
    return failed


def follow(detector: Any, folder: Path, state_path: Path | None = None, poll_s: float = 10.0,
           polls: int | None = None, settle_s: float = 5.0, window_seconds: float = 60.0,
           out: Callable[[str], None] | None = None, err: Callable[[str], None] | None = None) -> int:
    """Poll `folder` (`polls` times, or until interrupted). Returns 1 if any input failed, else 0."""
    if not folder.is_dir():
        raise FollowError(f"--follow {folder}: no such folder; create it or check the path")
    state_path = state_path or folder / STATE_NAME
    if not os.access(state_path.parent, os.W_OK):
        raise FollowError(f"cannot write the state file in {state_path.parent}; pass --state FILE "
                          "in a writable folder")
    state = load_state(state_path)
    out = out or (lambda s: (sys.stdout.write(s), sys.stdout.flush()))
    err = err or (lambda s: print(s, file=sys.stderr, flush=True))
    failed, n = 0, 0
    while polls is None or n < polls:
        if n:
            time.sleep(poll_s)
        failed += poll_once(detector, folder, state_path, state, settle_s, window_seconds, out, err)
        n += 1
    return 1 if failed else 0

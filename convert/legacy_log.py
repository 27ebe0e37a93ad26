"""Quiet legacy runs: everything the legacy stack prints goes to a log file, the terminal shows
only the project's own progress (one line per file: clips, elapsed, ETA).

fastai draws progress bars, fastai_audio prints "Preprocessing: Downmixing to Mono" per clip, torch
and torchaudio raise pin_memory / filterbank UserWarnings, and compiled code writes to the C-level
streams. Python-level redirection (contextlib.redirect_stdout) misses the last kind, so the
redirection is done on the file descriptors 1 and 2 themselves (children inherit it too), and
sys.stdout / sys.stderr are pointed at the log as well (they may not be fd-backed, e.g. under a
test runner). The project's own lines go to a duplicate of the stderr we started with.

    with legacy_output(log_path_for(out)) as terminal:
        progress = Progress(terminal, files=len(names), clips=total_clips)
        ...legacy work...
        progress.file_done(name, clips, "12 clips, 13 rows")

On leaving, the log's path is printed; on an error, its last lines are shown first. The default
log, `<out>.log`, lies *beside* the output: an output folder is replaced atomically at the end
(model/fileio.py), so a log inside it would vanish with a failed run, and a log is not a
reference. One log per run: each run truncates it.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import os
import sys
import time
from collections import deque
from pathlib import Path
from typing import Iterator, TextIO

from orcaport.model.errors import OutputError

LOG_SUFFIX = ".log"
TAIL_LINES = 20


def log_path_for(out: str | Path) -> Path:
    """The default log of a run writing `out` (a folder or a file): `<out>.log`, beside it."""
    out = Path(out)
    if out.name in ("", ".", ".."):     # '.', 'refs/..': name the folder itself
        out = out.resolve()
    return out.parent / ((out.name or "output") + LOG_SUFFIX)


def tail(path: Path, lines: int = TAIL_LINES) -> list[str]:
    """The last `lines` non-empty lines of `path`; progress bars' '\\r' redraws count as lines."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    return list(deque((ln for ln in text.replace("\r", "\n").splitlines() if ln.strip()), lines))


def _flush_c_streams() -> None:
    """Flush libc's stdio buffers, so C-level output lands on the side it was written for."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).fflush(None)


def _terminal_stream() -> tuple[TextIO, bool]:
    """Where the project's own lines go: the current sys.stderr if it is not fd-backed (a test
    runner's capture), else a new stream on a duplicate of fd 2 (made before fd 2 is redirected).
    -> (stream, whether we own it)."""
    try:
        sys.stderr.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation, ValueError):
        return sys.stderr, False
    encoding = getattr(sys.stderr, "encoding", None) or "utf-8"
    return os.fdopen(os.dup(2), "w", buffering=1, encoding=encoding, errors="replace"), True


@contextlib.contextmanager
def legacy_output(log: str | Path) -> Iterator[TextIO]:
    """Redirect fds 1 and 2 (and sys.stdout/sys.stderr) into `log` for the duration; yield a
    line-buffered stream to the real terminal. The log is truncated first (one per run); its
    path is printed on exit, preceded by its tail when the block raised."""
    log = Path(log)
    try:
        log.parent.mkdir(parents=True, exist_ok=True)
        log_fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    except OSError as e:
        raise OutputError(f"cannot write the legacy log {log} ({e.strerror or e}); pass --log with "
                          "a writable path") from None
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    _flush_c_streams()
    terminal, own_terminal = _terminal_stream()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    saved_streams = (sys.stdout, sys.stderr)
    log_stream = os.fdopen(os.dup(log_fd), "w", buffering=1, encoding="utf-8", errors="replace")
    failed = False
    try:
        for fd in (1, 2):
            os.dup2(log_fd, fd)
        sys.stdout = sys.stderr = log_stream
        yield terminal
    except BaseException:
        failed = True
        raise
    finally:
        with contextlib.suppress(Exception):
            log_stream.flush()
        _flush_c_streams()
        sys.stdout, sys.stderr = saved_streams
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)
        log_stream.close()
        os.close(log_fd)
        if failed:
            last = tail(log)
            if last:
                print(f"legacy output, last {len(last)} lines of {log}:", file=terminal)
                for line in last:
                    print(f"  | {line}", file=terminal)
        print(f"legacy output: {log}", file=terminal, flush=True)
        if own_terminal:
            terminal.close()


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class Progress:
    """One line per finished file on `stream`: `[n/N] name: detail (clips a/b, elapsed, ETA)`.
    The ETA extrapolates the time per unit of work so far, a unit being a clip plus one per file
    (a file's fixed cost: decoding, caches), over what is left of the planned total."""

    def __init__(self, stream: TextIO, files: int, clips: int) -> None:
        self.stream, self.files, self.clips = stream, files, clips
        self.done_files = self.done_clips = 0
        self.resumed = 0          # units finished by an earlier run: they took no time here
        self.start = time.monotonic()

    def file_done(self, name: str, clips: int, detail: str, measured: bool = True) -> str:
        """Record one finished file (`measured=False`: taken from a previous run, costs no time
        here, so it is left out of the rate) and print its line; -> the line."""
        self.done_files += 1
        self.done_clips += clips
        elapsed = time.monotonic() - self.start
        total = self.clips + self.files
        done = self.done_clips + self.done_files
        if not measured:
            self.resumed += clips + 1
        timed = done - self.resumed
        left = max(total - done, 0)
        eta = 0.0 if left == 0 else (elapsed / timed * left if timed > 0 and elapsed > 0 else None)
        line = (f"[{self.done_files}/{self.files}] {name}: {detail} "
                f"(clips {self.done_clips}/{self.clips}, elapsed {_clock(elapsed)}, ETA {_clock(eta)})")
        print(line, file=self.stream, flush=True)
        return line

"""The whole run's progress (files, clips, clips/s, ETA) and, at its end, where the time went.

On a terminal a rich progress bar on stderr; elsewhere (a batch job's log) one line every
`LOG_EVERY_S` seconds. Time is summed per stage over every item -- fetch (download + ffmpeg),
waveform steps (CPU tasks), spectrogram + network (actors), writing (driver) -- beside the wall
clock, so a run says whether its cluster was starved of CPUs, GPUs or input bandwidth.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

LOG_EVERY_S = 30.0
STAGES = ("fetch", "waveform", "network", "write")


class RunProgress:
    def __init__(self, total: int, skipped: int, quiet: bool = False) -> None:
        self.total, self.skipped = total, skipped
        self.files = self.failed = self.clips = 0
        self.seconds: dict[str, float] = defaultdict(float)
        self.t0 = self.last_log = time.perf_counter()
        self.err = Console(stderr=True)
        self.quiet = quiet
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), console=self.err,
                            transient=True, disable=quiet or not self.err.is_terminal)
        self.task = self.bar.add_task("files", total=total - skipped, rate="")

    def __enter__(self) -> "RunProgress":
        self.bar.__enter__()
        if skipped := self.skipped:
            self.say(f"resuming: {skipped} of {self.total} items already finished in the run folder, skipped")
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bar.__exit__(*exc)

    def say(self, text: str) -> None:
        if not self.quiet:
            self.err.print(text, markup=False, highlight=False, soft_wrap=True)

    def done(self, clips: int, seconds: dict[str, float], failed: bool = False) -> None:
        self.files += 1
        self.failed += failed
        self.clips += clips
        for k, v in seconds.items():
            self.seconds[k] += v
        self.bar.update(self.task, advance=1, rate=f"{self.clips} clips, {self.clips_per_s():.1f} clips/s")
        now = time.perf_counter()
        if not self.bar.disable or now - self.last_log < LOG_EVERY_S:
            return
        self.last_log = now
        self.say(self.line())

    def wall(self) -> float:
        return time.perf_counter() - self.t0

    def clips_per_s(self) -> float:
        return self.clips / max(self.wall(), 1e-9)

    def eta_s(self) -> float | None:
        left = self.total - self.skipped - self.files
        return None if not self.files else left * self.wall() / self.files

    def line(self) -> str:
        eta = self.eta_s()
        return (f"files {self.files}/{self.total - self.skipped} ({self.failed} failed), clips {self.clips}, "
                f"{self.clips_per_s():.1f} clips/s, ETA {'?' if eta is None else f'{eta:.0f} s'}")

    def summary(self, nodes: int, actors: int, device: str) -> dict[str, Any]:
        """The run's totals and per-stage seconds (summed over items: stages overlap in time)."""
        return {"items": self.total, "skipped_finished": self.skipped, "processed": self.files,
                "failed": self.failed, "clips": self.clips, "wall_s": round(self.wall(), 3),
                "clips_per_s": round(self.clips_per_s(), 2), "nodes": nodes, "actors": actors,
                "device": device,
                "stage_seconds_summed": {k: round(self.seconds.get(k, 0.0), 3) for k in STAGES}}

    def report(self, summary: dict[str, Any]) -> None:
        s = summary["stage_seconds_summed"]
        self.say(f"done: {summary['processed']} items ({summary['failed']} failed, "
                 f"{summary['skipped_finished']} skipped as finished), {summary['clips']} clips in "
                 f"{summary['wall_s']:.1f} s = {summary['clips_per_s']:.1f} clips/s on {summary['nodes']} "
                 f"node(s), {summary['actors']} {summary['device']} actor(s)")
        self.say("time by stage (summed over items; stages overlap): " +
                 ", ".join(f"{k} {v:.1f} s" for k, v in s.items()))

"""`make bench`'s rows, each kept as soon as it is measured: a run that fails or is killed keeps
every row it finished.

Every measurement is one named row ("round 1/resnet50/legacy", "int8/fixture", ...). `Rows.run`
measures one, records how it went in `res["rows"][name]` and rewrites OUT/results.json and
OUT/results.md atomically (model/fileio.py) before the next row starts. A row that raises is
recorded as failed with its error (a worker's stderr tail as `detail`) and the run goes on; a row
whose inputs failed is recorded as skipped, naming them. `exit_code()` is FAILED (1) when any
row failed or was skipped, so `make bench` still says no while the other rows stand.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any, Callable

from orcaport.model.errors import ExitCode, FailedError, one_line

OK, FAILED, SKIPPED, INTERRUPTED, NOT_RUN = "ok", "failed", "skipped", "interrupted", "not run"
DETAIL_CHARS = 3000


class WorkerError(FailedError):
    """A bench worker process exited non-zero or printed no result (exit 1); `detail` is its
    stderr tail."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


class Rows:
    """The rows of one bench run, written to `out` after each one.

    res: the results dict being built (rows land in res["rows"]); render: results dict -> the
    markdown (a render bug never costs the JSON: it is written first, the error kept in
    res["render_error"])."""

    def __init__(self, res: dict[str, Any], out: Path, render: Callable[[dict[str, Any]], str],
                 derive: Callable[[dict[str, Any]], None] = lambda res: None) -> None:
        self.res, self.out, self.render, self.derive = res, Path(out), render, derive
        res.setdefault("rows", {})
        res["status"] = "running"

    def status(self, name: str) -> str | None:
        return self.res["rows"].get(name, {}).get("status")

    def run(self, name: str, measure: Callable[[], Any], needs: tuple[str, ...] = (),
            keep: Callable[[Any], None] | None = None) -> Any | None:
        """Measure row `name` (after the rows it `needs` succeeded), `keep` its value in the
        results, save. -> the value, or None when the row failed or was skipped."""
        missing = [n for n in needs if self.status(n) != OK]
        if missing:
            self._record(name, SKIPPED, error=f"not measured: needs {', '.join(missing)}, which did not succeed")
            return None
        print(f"bench: {name}", file=sys.stderr, flush=True)
        started = now()
        try:
            value = measure()
            if keep is not None:
                keep(value)
        except KeyboardInterrupt:
            self._record(name, INTERRUPTED, started=started, error="interrupted (Ctrl-C)")
            raise
        except Exception as e:  # noqa: BLE001 -- one broken row never costs the others
            detail = getattr(e, "detail", "") or traceback.format_exc()
            self._record(name, FAILED, started=started, error=f"{type(e).__name__}: {one_line(e)}",
                         detail=detail[-DETAIL_CHARS:])
            print(f"bench: {name} FAILED: {type(e).__name__}: {one_line(e)} (recorded; going on)",
                  file=sys.stderr, flush=True)
            return None
        self._record(name, OK, started=started)
        return value

    def _record(self, name: str, status: str, **fields: Any) -> None:
        self.res["rows"][name] = {"status": status, "finished": now(),
                                  "loadavg": round(os.getloadavg()[0], 2), **fields}
        self.save()

    def problems(self) -> dict[str, dict[str, Any]]:
        return {n: r for n, r in self.res["rows"].items() if r["status"] != OK}

    def finish(self, planned: list[str] = ()) -> ExitCode:
        """Mark the `planned` rows never measured as not run, the run complete (or incomplete),
        save; -> OK, or FAILED naming the rows."""
        for name in planned:
            if name not in self.res["rows"]:
                self.res["rows"][name] = {"status": NOT_RUN, "finished": now(), "loadavg": round(os.getloadavg()[0], 2),
                                          "error": "not measured: the run stopped before it"}
        bad = self.problems()
        for key in ("derive_error", "render_error"):
            if self.res.get(key):
                bad[key.replace("_", " ")] = {"status": FAILED, "error": self.res[key]}
        self.res["status"] = "complete" if not bad else "incomplete"
        self.save()
        if not bad:
            return ExitCode.OK
        for name, row in bad.items():
            print(f"bench: {row['status']}: {name}: {row.get('error', '')}", file=sys.stderr)
        print(f"bench: error: {len(bad)} row(s) not measured (above); every other row is in "
              f"{self.out / 'results.json'}", file=sys.stderr)
        return ExitCode.FAILED

    def save(self) -> None:
        """Derive the figures, render, write results.md + results.json (the JSON last) at once."""
        from orcaport.model.errors import OutputError
        from orcaport.model.fileio import write_files_atomically

        self.res["updated"] = now()
        files: dict[str, str] = {}
        for key, step in (("derive_error", lambda: self.derive(self.res)),
                          ("render_error", lambda: files.__setitem__("results.md", self.render(self.res)))):
            try:
                step()
                self.res.pop(key, None)
            except Exception as e:  # noqa: BLE001 -- the raw rows are still worth writing
                self.res[key] = f"{type(e).__name__}: {one_line(e)}"
        files["results.json"] = json.dumps(self.res, indent=2) + "\n"
        try:
            write_files_atomically(self.out, files)
        except OSError as e:
            raise OutputError(f"cannot write {self.out} ({e.strerror or e}); pass a writable --out") from None

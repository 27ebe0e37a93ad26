"""parity.json, parity.md and parity.html in one folder, written together.

`write_reports` renders all three first and only then moves them into place, each through a
fsynced temp sibling and an atomic rename (model/fileio.py), parity.json last: a crash in
rendering leaves the previous reports intact, a crash mid-write never leaves a truncated one, and
the JSON the publish gate reads never describes a run whose Markdown/HTML are not in place yet.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

from orcaport.model.fileio import write_file_atomically, write_files_atomically
from orcaport.parity.reports import html, markdown
from orcaport.parity.result import ParityResult

REPORT_NAMES = {"json": "parity.json", "md": "parity.md", "html": "parity.html"}


def write_json(result: ParityResult, path: str | os.PathLike) -> Path:
    return write_file_atomically(Path(path), result.to_json())


def write_markdown(result: ParityResult, path: str | os.PathLike) -> Path:
    return write_file_atomically(Path(path), markdown.render_markdown(result))


def write_reports(result: ParityResult, heatmaps: Mapping[tuple, tuple],
                  out_dir: str | os.PathLike) -> dict[str, Path]:
    """parity.json, parity.md and parity.html in out_dir (created); returns {'json'|'md'|'html': path}."""
    out = Path(out_dir)
    texts = {"json": result.to_json(), "md": markdown.render_markdown(result),
             "html": html.render_html(result, heatmaps)}
    write_files_atomically(out, {REPORT_NAMES[k]: texts[k] for k in ("md", "html", "json")})
    return {k: out / REPORT_NAMES[k] for k in texts}

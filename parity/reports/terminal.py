"""The parity report on the terminal: the summary table, files that raised, and the verdict as the
last line (what `make parity` prints)."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from orcaport.parity.reports.cells import (SUMMARY_HEADER, criteria_lines, error_text, real_data_rows,
                                           summary_rows, threshold_lines, verdict_line)
from orcaport.parity.result import ParityResult


def render_table(result: ParityResult) -> Table:
    """One row per summary (stage, mode) entry. Cells are Text, never markup: a file called
    '[/]x.wav' must print literally rather than crash rich's markup parser."""
    # Light borders leave room for the file name in an 80-column CI log; cells wrap (fold) rather
    # than end in '…', since a truncated file name or tolerance is worse than a taller table.
    table = Table(title="Parity by stage", title_justify="left", box=box.SIMPLE_HEAD,
                  padding=(0, 1), pad_edge=False, collapse_padding=True)
    for name in SUMMARY_HEADER:
        numeric = name in ("checks", "failed", "worst max_abs")
        wraps = name in ("worst file", "tolerance")
        table.add_column(name, justify="right" if numeric else "left", no_wrap=not wraps,
                         overflow="fold" if wraps else "ellipsis")
    for ok, cells in summary_rows(result):
        style = "dim" if ok is None else ("green" if ok else "bold red")
        table.add_row(*(Text(c) for c in cells), style=style)
    return table


def print_report(result: ParityResult, console: Console | None = None) -> None:
    """Summary table, files that raised, and the verdict as the last line."""
    console = console or Console()
    console.print(render_table(result))
    for f in result.files:
        if f.status != "ok":
            console.print(Text(f"{f.status}: {f.name}  legacy {error_text(f.legacy_error)}  clean "
                               f"{error_text(f.clean_error)}",
                               style="yellow" if f.status == "expected-error" else "red"))
    if result.real_data:
        text, _ = real_data_rows(result)
        console.print(Text(f"real data: {text}", style="dim"))
    for extra in threshold_lines(result) + criteria_lines(result):
        console.print(Text(extra, style="dim"))
    line = verdict_line(result)
    console.print(Text(line, style="bold green" if line == "PARITY PASSED" else "bold red"))

"""Human-facing parity reports, rendered from the parity result (parity/result.py), never from
anything else: cells.py (what every report says: verdict, summary rows, check cells), terminal.py
(`make parity`'s table), markdown.py (parity.md), html.py + png.py (parity.html, self-contained,
heatmaps encoded without matplotlib/PIL), write.py (all three files, written together atomically).
Imports run one way: write -> html -> markdown -> cells; terminal -> cells."""

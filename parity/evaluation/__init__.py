"""`make evaluate`: what a conversion or a faster arithmetic does to the task, on the user's labels.

labels.py (Raven / Audacity / CSV label files), columns.py (legacy-exact and fast's arithmetics),
legacy.py (production's confidences from references or the legacy env), metrics.py (scikit-learn's
metrics at the second / file / event levels), run.py (one evaluation document), reports.py and
html.py (evaluation.{json,md,html} + a Raven table of disagreements), __main__.py (the command).
scikit-learn is the `evaluate` extra: only metrics.py (and what imports it) needs it, and nothing
in orcaport.model or the rest of parity imports this package.
"""

"""`make bench`: speed and memory of the fastai-free Detector against the legacy fastai pipeline.

Run with `python -m bench` (see bench/__main__.py); never part of CI or the test suite. Workers:
bench/legacy_worker.py (legacy env), bench/clean_worker.py (clean env). Results: bench/results.json
and bench/results.md.
"""

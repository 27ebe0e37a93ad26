"""`make bench`: speed and memory of the fastai-free Detector against the legacy fastai pipeline.

Run with `python -m bench` (see bench/__main__.py); never part of CI: the test suite only runs
`python -m bench --smoke` (every row on tiny inputs, no timing; tests/test_bench_smoke.py). Workers:
bench/legacy_worker.py (legacy env), bench/clean_worker.py (clean env). Results, written as each row
completes (bench/rows.py): bench/results.json and bench/results.md.
"""

"""Test audio, synthesized: synth.py (SRKW-like calls, whistles and clicks over ocean noise, bit
identical in both environments: the fixture learner is trained on it in the legacy env) and
corpus.py (the committed parity corpus built from it, `make corpus`)."""

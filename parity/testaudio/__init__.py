"""Test audio, synthesized: synth.py (SRKW-like calls, whistles and clicks over ocean noise, bit
identical in both environments), training.py (the fixture's training set drawn from it: the
learner is trained on it in the legacy env) and corpus.py (the committed parity corpus built from
it, `make corpus`)."""

"""Training: the loop (`fit`), the per-batch work (`Learner`), and callbacks."""

"""Features of a run, each a callback on the training loop's events: early stopping, the non-finite guard,
checkpoints, metrics.csv, TensorBoard, HParams, progress, diagnostics. registry.py lists them all, with
their order, state names and the recipe keys that turn them on."""

"""Diagnostics as analysis: probes of a model's layers, verdicts on their records, divergence forensics,
loss landscapes. The callback that schedules them during training is features/diagnostics.py."""

"""Training-health diagnostics: per-layer statistics (probes), verdicts, non-finite forensics and
loss landscapes. See docs/diagnostics.md."""

from dltrain.diagnostics.callback import Diagnostics

__all__ = ["Diagnostics"]

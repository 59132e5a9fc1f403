"""dltrain: a command-line experiment runner for deep learning on PyTorch."""

__version__ = "0.1.0"

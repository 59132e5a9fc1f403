"""The vocabulary every layer shares: errors, constrained types, the registry, run status, metrics, exit codes, signals."""

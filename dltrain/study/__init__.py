"""Studies: a lesson of deep learning as an experiment with a measured verdict (docs/studies.md).

spec.py reads and validates a study file; quantities.py measures each run (metrics, depth
statistics, sparsity, sharpness); verdict.py judges the claims on those numbers; conduct.py trains
every arm x seed as one named batch; report.py writes report.md and the figures.
"""

"""From built objects to a finished run directory: one run (execute.py), several (batch.py), a resumed one (resume.py)."""

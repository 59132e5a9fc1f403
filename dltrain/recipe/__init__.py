"""Recipes: YAML in, one typed and frozen `Recipe` out (schema.py), or every problem at once (load.py)."""

"""`dltrain validate`: check a recipe and print it resolved, with a model summary. Trains nothing."""

from __future__ import annotations

from pathlib import Path


def validate(recipe: Path, overrides: list[str], console) -> None:
    from dltrain.builder.objects import build, load_checked
    from dltrain.views.model_summary import print_model_summary

    resolved = load_checked(recipe, overrides)
    built = build(resolved)
    console.print(f"# {recipe}: valid. Resolved recipe:", style="bold green")
    console.print(resolved.to_yaml(), markup=False, end="")
    print_model_summary(console, built)

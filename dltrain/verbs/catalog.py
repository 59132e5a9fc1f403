"""`dltrain catalog`: the components a recipe can name, walked from the registries."""

from __future__ import annotations


def catalog(kind: str | None, console) -> None:
    from dltrain.views.catalog import print_catalog
    print_catalog(console, kind)

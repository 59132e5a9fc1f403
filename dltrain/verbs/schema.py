"""`dltrain schema`: the recipe's JSON Schema, for editors (yaml-language-server, VS Code, ...)."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def schema(out: Path | None) -> None:
    from dltrain.recipe.json_schema import recipe_schema
    from dltrain.rundir.writer import write_text

    text = json.dumps(recipe_schema(), indent=2) + "\n"
    if out is None:
        sys.stdout.write(text)
    else:
        write_text(out, text)
        print(f"wrote {out}", file=sys.stderr)

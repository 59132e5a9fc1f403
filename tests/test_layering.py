"""The package's imports follow the flow: recipe -> build -> train -> run directory, with views and
verbs on top. Each folder may import only the folders below it (docs/architecture.md draws them);
an import that points against the flow, even one inside a function, fails here with its file:line."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "dltrain"

# What each part of the package may import, besides itself. Lower layers never import higher ones.
BELOW = {
    "core": set(),
    "components": {"core"},
    "data": {"core"},
    "train": {"core"},
    "rundir": {"core"},
    "models": {"core", "components", "rundir"},  # model.from: rundir.reader finds the source run
    "diagnostics": {"core", "components"},
    "recipe": {"core", "components", "data", "models", "rundir"},  # rundir.layout: a run's recipe.yaml
    "views": {"core", "components", "data", "models", "diagnostics", "rundir", "recipe"},
    "features": {"core", "components", "data", "train", "rundir", "diagnostics", "views"},
    "builder": {"core", "components", "data", "models", "diagnostics", "recipe", "train", "rundir", "features"},
    "runner": {"core", "components", "data", "models", "diagnostics", "recipe", "train", "rundir", "features",
               "builder", "views"},
    "sweep": {"core", "components", "data", "models", "diagnostics", "recipe", "train", "rundir", "features",
              "builder", "views", "runner"},
    "study": {"core", "components", "data", "models", "diagnostics", "recipe", "train", "rundir", "features",
              "builder", "views", "runner"},
    "verbs": {"core", "components", "data", "models", "diagnostics", "recipe", "train", "rundir", "features",
              "builder", "views", "runner", "sweep", "study"},
    "cli": {"core", "verbs"},
    "__main__": {"cli"},
    "__init__": set(),
}


def part_of(module: str) -> str:
    """`dltrain.features.tensorboard` -> `features`; `dltrain` (its __init__) -> `__init__`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def imports(path: Path):
    """Every dltrain module a file imports, with its line: top-level and function-level alike."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "dltrain":
                    yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] == "dltrain":
                if node.module == "dltrain":  # `from dltrain import x`: x is a part, or a name in __init__
                    for alias in node.names:
                        yield node.lineno, f"dltrain.{alias.name}"
                else:
                    yield node.lineno, node.module


def sources():
    return sorted(PACKAGE.rglob("*.py"))


def test_every_part_of_the_package_has_a_place_in_the_layers():
    parts = {part_of(module_name(path)) for path in sources()}
    assert parts <= set(BELOW), f"parts with no layer: {sorted(parts - set(BELOW))}"


def test_no_import_points_against_the_flow():
    wrong = []
    for path in sources():
        here = part_of(module_name(path))
        for line, target in imports(path):
            there = part_of(target)
            if target == "dltrain.__version__":
                continue  # the version string is everyone's
            if there != here and there not in BELOW[here]:
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {here} imports {target} ({there})")
    assert not wrong, "imports against the flow:\n" + "\n".join(wrong)


def test_no_import_cycles_between_modules():
    """Function-level imports count too: they hide a cycle from Python, not from the reader."""
    graph: dict[str, set[str]] = {}
    names = {module_name(p) for p in sources()}
    for path in sources():
        tree = ast.parse(path.read_text())
        found = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module in names:
                found.add(node.module)
                for alias in node.names:
                    if f"{node.module}.{alias.name}" in names:
                        found.add(f"{node.module}.{alias.name}")
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name in names}
        here = module_name(path)
        graph[here] = {m for m in found if m != here}
        package = here.rsplit(".", 1)[0]
        if path.name != "__init__.py" and package in names:
            graph[here].discard(package)  # importing a submodule runs its package first: not a cycle

    cycles = []
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(trail[trail.index(nxt):] + [nxt]) if nxt in trail else f"{node} -> {nxt}")
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_layering_check_sees_a_wrong_import(tmp_path):
    """The check itself can fail: a train module that imports the recipe is caught."""
    module = tmp_path / "bad.py"
    module.write_text("def f():\n    from dltrain.recipe.schema import Recipe\n")
    (line, target), = imports(module)
    assert (line, part_of(target)) == (2, "recipe") and "recipe" not in BELOW["train"]

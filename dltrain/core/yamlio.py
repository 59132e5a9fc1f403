"""Safe YAML with line numbers.

PyYAML's SafeLoader follows YAML 1.1, where `1e-3` is a string; we add the YAML 1.2 float
form. Duplicate keys are errors (PyYAML silently keeps the last). Loading walks the composed
node tree ourselves so that every key path keeps the line it came from.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from dltrain.core.errors import Problem, RecipeError

KeyPath = tuple  # tuple of str keys and int list indices


class RecipeLoader(yaml.SafeLoader):
    """SafeLoader that reads `1e-3` and `1E5` as floats, as YAML 1.2 does."""


# Same pattern PyYAML uses for floats, with the mantissa's dot made optional.
RecipeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


_PLAIN_TAGS = {"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"}
# Scalars a recipe can hold. Other tags (`!!binary`, `!!set`, `!!python/...`) are refused: a recipe is
# plain data. (Timestamps stay: `2024-01-01` resolves to one implicitly; the key's type check rejects it.)
_SCALAR_TAGS = {"tag:yaml.org,2002:" + t for t in ("str", "int", "float", "bool", "null", "timestamp")}
MAX_DEPTH = 64  # nesting of mappings and lists; real recipes use 4
MAX_VALUES = 100_000  # values built, aliases expanded: stops "billion laughs" documents


class _Budget:
    """Values left to build, and the nodes on the current path (an alias to an ancestor is a cycle)."""

    def __init__(self) -> None:
        self.left = MAX_VALUES
        self.path: set[int] = set()


def _build(loader: RecipeLoader, node: yaml.Node, path: KeyPath, where: str,
           lines: dict[KeyPath, str], problems: list[Problem], budget: _Budget | None = None) -> Any:
    """Turn a composed node into Python values, recording each key path's line."""
    budget = budget or _Budget()
    here = f"{where}:{node.start_mark.line + 1}"
    lines[path] = here
    budget.left -= 1
    if budget.left < 0:
        raise RecipeError([Problem("", f"the document expands to more than {MAX_VALUES} values "
                                   "(aliases repeated inside aliases?); recipes are small", here)])
    if id(node) in budget.path:
        raise RecipeError([Problem(".".join(map(str, path)), "a YAML alias refers to a value that contains it "
                                   "(a cycle); recipes are trees", here)])
    if len(path) > MAX_DEPTH:
        raise RecipeError([Problem("", f"values nested more than {MAX_DEPTH} levels deep", here)])
    if isinstance(node, yaml.ScalarNode):
        if node.tag not in _SCALAR_TAGS:
            raise RecipeError([Problem(".".join(map(str, path)), f"unsafe or unknown YAML tag `{node.tag}` refused "
                                       "(recipes are plain data: strings, numbers, booleans, null)", here)])
        return loader.construct_object(node, deep=True)
    if node.tag not in _PLAIN_TAGS:
        raise RecipeError([Problem(".".join(map(str, path)), f"unsafe or unknown YAML tag `{node.tag}` refused "
                                   "(recipes are plain data: mappings and lists)", here)])
    budget.path.add(id(node))
    try:
        if isinstance(node, yaml.MappingNode):
            return _build_mapping(loader, node, path, where, lines, problems, budget)
        return [_build(loader, item, path + (i,), where, lines, problems, budget) for i, item in enumerate(node.value)]
    finally:
        budget.path.discard(id(node))


def _build_mapping(loader, node, path, where, lines, problems, budget) -> dict:
    loader.flatten_mapping(node)  # resolves `<<` merge keys
    out: dict = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag not in _SCALAR_TAGS:
            problems.append(Problem(".".join(map(str, path)), "keys must be plain strings",
                                    f"{where}:{key_node.start_mark.line + 1}"))
            continue
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, (str, int, float)) or isinstance(key, bool):
            problems.append(Problem(".".join(map(str, path)), f"keys must be strings, got {key!r}",
                                    f"{where}:{key_node.start_mark.line + 1}"))
            continue
        key = str(key)
        if key in out:
            problems.append(Problem(".".join(map(str, path + (key,))),
                                    f"duplicate key `{key}` (first at line {lines[path + (key,)].rsplit(':', 1)[1]})",
                                    f"{where}:{key_node.start_mark.line + 1}"))
            continue
        lines[path + (key,)] = f"{where}:{key_node.start_mark.line + 1}"
        out[key] = _build(loader, value_node, path + (key,), where, lines, problems, budget)
        lines[path + (key,)] = f"{where}:{key_node.start_mark.line + 1}"
    return out


def parse_yaml(text: str, where: str) -> tuple[Any, dict[KeyPath, str]]:
    """Parse one YAML document safely. Returns (value, {key path: "file:line"}).

    Raises RecipeError for syntax errors, unsafe tags, duplicate keys, cycles, documents that
    expand beyond MAX_VALUES or nest beyond MAX_DEPTH, and multiple documents.
    """
    lines: dict[KeyPath, str] = {}
    problems: list[Problem] = []
    loader = None
    try:
        loader = RecipeLoader(text)  # the reader rejects control characters right here
        node = loader.get_single_node()
        value = None if node is None else _build(loader, node, (), where, lines, problems)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f"{where}:{mark.line + 1}" if mark else where
        message = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        if "could not determine a constructor" in message:
            tag = str(exc.problem).split("for the tag", 1)[-1].strip(" '")
            message = f"unsafe or unknown YAML tag `{tag}` refused (recipes are plain data)"
        raise RecipeError([Problem("", f"YAML error: {message}", at)]) from None
    except yaml.YAMLError as exc:
        raise RecipeError([Problem("", f"YAML error: {exc}", where)]) from None
    except RecursionError:  # PyYAML composes nested nodes recursively
        raise RecipeError([Problem("", f"YAML error: values nested too deeply (more than {MAX_DEPTH} levels)",
                                   where)]) from None
    finally:
        if loader is not None:
            loader.dispose()
    if problems:
        raise RecipeError(problems)
    return value, lines


def read_yaml_file(path: Path) -> tuple[Any, dict[KeyPath, str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError([Problem("", f"recipe file not found: {path}")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError([Problem("", f"cannot read recipe file {path}: {exc}")]) from None
    return parse_yaml(text, str(path))


class _Dumper(yaml.SafeDumper):
    pass


def _represent_list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    # Short lists of scalars read better inline: `hidden: [128, 64]`.
    flow = all(isinstance(x, (int, float, str, bool)) or x is None for x in data) and len(data) <= 8
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _represent_list)
_Dumper.add_representer(tuple, _represent_list)


def dump_yaml(value: Any) -> str:
    """YAML that parse_yaml reads back to the same value (floats stay floats)."""
    return yaml.dump(value, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True)

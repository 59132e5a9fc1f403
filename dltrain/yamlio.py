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

from dltrain.errors import Problem, RecipeError

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


def _build(loader: RecipeLoader, node: yaml.Node, path: KeyPath, where: str,
           lines: dict[KeyPath, str], problems: list[Problem]) -> Any:
    """Turn a composed node into Python values, recording each key path's line."""
    lines[path] = f"{where}:{node.start_mark.line + 1}"
    if node.tag not in _PLAIN_TAGS and not isinstance(node, yaml.ScalarNode):
        # `!!python/object/apply:...` and friends: SafeLoader's constructor refuses them.
        return loader.construct_object(node, deep=True)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # resolves `<<` merge keys
        out: dict = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)) or isinstance(key, bool):
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
            out[key] = _build(loader, value_node, path + (key,), where, lines, problems)
            lines[path + (key,)] = f"{where}:{key_node.start_mark.line + 1}"
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(loader, item, path + (i,), where, lines, problems) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def parse_yaml(text: str, where: str) -> tuple[Any, dict[KeyPath, str]]:
    """Parse one YAML document safely. Returns (value, {key path: "file:line"}).

    Raises RecipeError for syntax errors, unsafe tags, duplicate keys and multiple documents.
    """
    loader = RecipeLoader(text)
    lines: dict[KeyPath, str] = {}
    problems: list[Problem] = []
    try:
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
    finally:
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

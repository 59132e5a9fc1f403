"""Recipes: YAML -> one typed, frozen `Recipe`, or a RecipeError listing every problem.

load_recipe(path, overrides) reads the file safely, resolves `extends` (deep merge, this file
wins, lists replaced), applies dotted KEY=VALUE overrides, fills defaults and validates
everything against the registries' signatures. Nothing below this module sees a raw dict.
"""

from __future__ import annotations

import copy
import re
import typing
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ValidationError

from dltrain.core.errors import Problem, RecipeError, did_you_mean
from dltrain.core.registry import ComponentOf
from dltrain.core.yamlio import KeyPath, parse_yaml, read_yaml_file
from dltrain.recipe.schema import Recipe
from dltrain.recipe.sweep import SweepSpec
from dltrain.rundir.layout import RECIPE


def _merge(base: Any, over: Any, base_lines: dict, over_lines: dict, path: KeyPath, lines: dict) -> Any:
    """Deep-merge mappings (over wins); anything else, lists included, is replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for key, value in over.items():
            sub = path + (key,)
            if key in base:
                out[key] = _merge(base[key], value, base_lines, over_lines, sub, lines)
            else:
                out[key] = value
                _copy_lines(over_lines, sub, lines)
            lines[sub] = over_lines.get(sub, lines.get(sub))
        return out
    _drop_lines(lines, path)
    _copy_lines(over_lines, path, lines)
    return over


def _copy_lines(src: dict, prefix: KeyPath, dst: dict) -> None:
    for key, where in src.items():
        if key[:len(prefix)] == prefix:
            dst[key] = where


def _drop_lines(lines: dict, prefix: KeyPath) -> None:
    for key in [k for k in lines if k[:len(prefix)] == prefix and k != prefix]:
        del lines[key]


def _read_with_extends(path: Path, seen: tuple[Path, ...]) -> tuple[dict, dict]:
    value, lines = read_yaml_file(path)
    if value is None:
        raise RecipeError([Problem("", "the recipe is empty; expected a mapping with at least `data` and `model`",
                                   str(path))])
    if not isinstance(value, dict):
        raise RecipeError([Problem("", f"expected a mapping of keys at the top of the recipe, got {type(value).__name__}",
                                   str(path))])
    parents = value.pop("extends", None)
    if parents is None:
        return value, lines
    if isinstance(parents, str):
        parents = [parents]
    if not isinstance(parents, list) or not all(isinstance(p, str) for p in parents):
        raise RecipeError([Problem("extends", "expected a path or a list of paths (relative to this file)",
                                   lines.get(("extends",)))])
    merged: dict = {}
    merged_lines: dict = {}
    for parent in parents:
        parent_path = (path.parent / parent).resolve()
        if parent_path in seen:
            chain = " -> ".join(str(p) for p in (*seen, parent_path))
            raise RecipeError([Problem("extends", f"extends cycle: {chain}", lines.get(("extends",)))])
        if not parent_path.exists():
            raise RecipeError([Problem("extends", f"file not found: {parent_path}", lines.get(("extends",)))])
        parent_value, parent_lines = _read_with_extends(parent_path, (*seen, parent_path))
        new_lines = dict(merged_lines)
        merged = _merge(merged, parent_value, merged_lines, parent_lines, (), new_lines)
        merged_lines = new_lines
    new_lines = dict(merged_lines)
    merged = _merge(merged, value, merged_lines, lines, (), new_lines)
    return merged, new_lines


def parse_override(text: str) -> tuple[list[str], Any]:
    """`optimizer.lr=0.01` -> (['optimizer', 'lr'], 0.01); the value is parsed as YAML."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise RecipeError([Problem(key or text, f"bad override `{text}`: expected KEY=VALUE with a dotted key, "
                                   "e.g. optimizer.lr=0.01", "command line")])
    try:
        value, _ = parse_yaml(raw, "command line")
    except RecipeError as err:
        raise RecipeError([Problem(key, f"bad value in override `{text}`: {err.problems[0].message}",
                                   "command line")]) from None
    return key.split("."), value


def apply_override(doc: dict, keys: list[str], value: Any, lines: dict) -> None:
    node = doc
    for i, key in enumerate(keys[:-1]):
        child = node.get(key)
        if child is None or isinstance(child, str) and i < len(keys) - 1 and _is_component_name(child):
            # `optimizer=adam` then `optimizer.lr=0.1`: a bare name becomes a mapping
            child = {"name": child} if isinstance(child, str) else {}
            node[key] = child
        if not isinstance(child, dict):
            path = ".".join(keys[:i + 1])
            raise RecipeError([Problem(".".join(keys), f"cannot set `{'.'.join(keys)}`: `{path}` is "
                                       f"{type(child).__name__} {child!r}, not a mapping", "command line")])
        node = child
    node[keys[-1]] = value
    prefix = tuple(keys)
    _drop_lines(lines, prefix)
    lines[prefix] = "command line"


def _is_component_name(value: str) -> bool:
    return bool(re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", value))


def load_recipe(path: str | Path, overrides: list[str] = ()) -> Recipe:
    doc, lines = load_document(path, overrides)
    recipe = validate_document(doc, lines, source=str(path))
    if recipe.sweep is not None:
        check_sweep_params(recipe.sweep, doc, lines, source=str(path))
    return recipe


def load_document(path: str | Path, overrides: list[str] = ()) -> tuple[dict, dict]:
    """The raw recipe document (extends resolved, overrides applied, name defaulted) and its lines."""
    path = Path(path)
    doc, lines = _read_with_extends(path, (path.resolve(),))
    for text in overrides:
        keys, value = parse_override(text)
        apply_override(doc, keys, value, lines)
    doc.setdefault("name", path.stem if path.name != RECIPE else path.parent.name)
    return doc, lines


def check_sweep_params(sweep: SweepSpec, doc: dict, lines: dict, source: str | None = None) -> None:
    """Each swept key must name a real recipe key: every candidate value (each choice, a range's ends),
    applied as an override to the recipe without its sweep, must give a valid recipe."""
    base = {k: v for k, v in doc.items() if k != "sweep"}
    problems: list[Problem] = []
    for key, values in sweep.candidates().items():
        seen: set[str] = set()
        for value in values:
            trial = copy.deepcopy(base)
            try:
                apply_override(trial, key.split("."), value, {})
                validate_document(trial)
            except RecipeError as err:
                for p in err.problems:
                    inner = "" if p.path == key else f"{p.path}: "
                    if inner + p.message not in seen:
                        seen.add(inner + p.message)
                        problems.append(Problem(f"sweep.params.{key}", f"`{key}` = {value!r} gives an invalid "
                                                f"recipe: {inner}{p.message}", lines.get(("sweep", "params", key))))
    if problems:
        raise RecipeError(problems, source)


def validate_document(doc: dict, lines: dict | None = None, source: str | None = None) -> Recipe:
    lines = lines or {}
    try:
        return Recipe.model_validate(doc)
    except ValidationError as exc:
        raise RecipeError(_problems(exc, doc, lines), source) from None


# ---------------------------------------------------------------------------------------------
# turning pydantic errors into problems users can act on


def _problems(exc: ValidationError, doc: dict, lines: dict) -> list[Problem]:
    problems: list[Problem] = []
    seen: set[tuple[str, str]] = set()
    for error in exc.errors(include_url=False):
        path = _user_path(error["loc"], doc)
        message = _message(error, path, doc)
        key = (".".join(map(str, path)), message)
        if key in seen:
            continue
        seen.add(key)
        problems.append(Problem(key[0], message, _where(path, lines)))
    return problems


def _user_path(loc: tuple, doc: Any) -> tuple:
    """Drop the union tags pydantic inserts (`optimizer.adam.lr` -> `optimizer.lr`)."""
    path: list = []
    node = doc
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(node, dict):
            if part in node:
                path.append(part)
                node = node[part]
            elif last or str(part).startswith("function-") or part in ("[key]",):
                if last and not str(part).startswith("function-"):
                    path.append(part)
            # else: a tag name, skip it
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
        else:
            if isinstance(part, (int, str)) and not str(part).startswith("function-") and node is None:
                path.append(part)
            break
    return tuple(path)


def _where(path: tuple, lines: dict) -> str | None:
    for end in range(len(path), -1, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return None


def _message(error: dict, path: tuple, doc: dict) -> str:
    kind, msg = error["type"], error["msg"]
    got = error.get("input")
    if kind == "extra_forbidden":
        valid = _valid_keys(path[:-1], doc)
        hint = did_you_mean(str(path[-1]), valid) if valid else ""
        listing = f" (valid keys: {', '.join(valid)})" if valid else ""
        return f"unknown key `{path[-1]}`{hint}{listing}"
    if kind == "missing":
        return "required key is missing"
    if kind.startswith("component_") or kind == "value_error":
        return msg.removeprefix("Value error, ")
    if kind == "literal_error":
        return f"{msg}; got {got!r}"
    if got is not None and not isinstance(got, (dict, list)):
        return f"{msg}; got {got!r}"
    return msg


def _valid_keys(path: tuple, doc: dict) -> list[str]:
    """The keys allowed at `path`, found by walking the Recipe model along the user's document."""
    model: Any = Recipe
    node: Any = doc
    for part in path:
        if isinstance(part, int):
            node = node[part] if isinstance(node, list) and part < len(node) else None
            model = _element_type(model)
            continue
        field_type = _field_type(model, part, node)
        node = node.get(part) if isinstance(node, dict) else None
        model = field_type
    model = _resolve(model, node)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return [f.alias or name for name, f in model.model_fields.items()]
    return []


def _field_type(model: Any, key: str, node: Any) -> Any:
    model = _resolve(model, node)
    if isinstance(model, type) and issubclass(model, BaseModel):
        for name, f in model.model_fields.items():
            if key in (name, f.alias):
                return _with_metadata(f)
    return None


def _with_metadata(f) -> Any:
    annotation = f.annotation
    if f.metadata:
        return Annotated[(annotation, *f.metadata)]
    return annotation


def _resolve(model: Any, node: Any) -> Any:
    """Unwrap Optional/Annotated; pick a registry entry's model from the node's name."""
    for _ in range(6):
        origin = typing.get_origin(model)
        if origin is Annotated:
            args = typing.get_args(model)
            marker = next((m for m in args[1:] if isinstance(m, ComponentOf)), None)
            if marker is not None:
                reg = marker.registry
                name = node if isinstance(node, str) else (node or {}).get(reg.tag) if isinstance(node, dict) else None
                canonical = reg.canonical(name) if isinstance(name, str) else None
                return reg.entry(canonical).model if canonical else None
            model = args[0]
            continue
        if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
            args = [a for a in typing.get_args(model) if a is not type(None)]
            model = args[0] if len(args) == 1 else next(
                (a for a in args if typing.get_origin(a) is Annotated or (isinstance(a, type) and issubclass(a, BaseModel))),
                args[0])
            continue
        break
    return model


def _element_type(model: Any) -> Any:
    model = _resolve(model, None)
    args = typing.get_args(model)
    return args[0] if args else None


# ---------------------------------------------------------------------------------------------
# a stand-in for a recipe whose schema failed, so the checks that need the data can still run

# Sections the data needs: with a problem in one of them (or in the document as a whole, ""),
# the data cannot be prepared.
NEEDED_BY_DATA = {"", "data", "seed"}
# What stands in for a required section that has a problem: it validates and takes any layout.
STAND_INS = {"name": "stand_in", "model": {"arch": "mlp"}}


def stand_in_recipe(path: str | Path, overrides: list[str], error: RecipeError) -> Recipe | None:
    """The recipe with every top-level section that has a problem in `error` set back to its
    default (or to a stand-in, where it has none); None when the data cannot be prepared."""
    sections = {p.path.split(".")[0] for p in error.problems}
    if sections & NEEDED_BY_DATA:
        return None
    doc, _ = load_document(path, overrides)
    doc = {key: value for key, value in doc.items() if key not in sections}
    doc.update({key: value for key, value in STAND_INS.items() if key in sections})
    try:
        return validate_document(doc)
    except RecipeError:
        return None

"""Recipes: YAML -> one typed, frozen `Recipe`, or a RecipeError listing every problem.

load_recipe(path, overrides) reads the file safely, resolves `extends` (deep merge, this file
wins, lists replaced), applies dotted KEY=VALUE overrides, fills defaults and validates
everything against the registries' signatures. Nothing below this module sees a raw dict.
"""

from __future__ import annotations

import copy
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from dltrain.core.errors import Problem, RecipeError, did_you_mean
from dltrain.core.registry import Registry, component_registry, field_named, unwrap_annotation
from dltrain.core.yamlio import KeyPath, parse_yaml, read_yaml_file
from dltrain.recipe.schema import Recipe
from dltrain.recipe.sweep import SweepSpec
from dltrain.rundir.layout import RECIPE


def _merge(base: Any, over: Any, slot: FieldInfo | None, path: KeyPath, over_lines: dict, lines: dict) -> Any:
    """Deep-merge `over` onto `base` (over wins), walking the schema alongside (`slot` is the field at
    `path`; None at the top). Mappings merge; anything else, lists included, is replaced. Where a
    component changes its `name` (or `arch`), the base's parameters for the old one are dropped: only
    the keys every entry shares survive (`data.batch_size`, `model.from`). `lines` (the base's
    key -> "file:line") is updated to say where each merged key now comes from."""
    registry = component_registry(slot) if slot is not None else None
    if registry is not None:
        base, over = _as_mapping(base, registry), _as_mapping(over, registry)
        if _renamed(base, over, registry):
            shared = registry.shared_keys()
            for key in [k for k in base if k not in shared]:
                _drop_lines(lines, path + (key,), inclusive=True)
            base = {k: v for k, v in base.items() if k in shared}
    if not (isinstance(base, dict) and isinstance(over, dict)):
        _drop_lines(lines, path)
        _copy_lines(over_lines, path, lines)
        return over
    model = _model_in(slot, {**base, **over})
    out = dict(base)
    for key, value in over.items():
        sub = path + (key,)
        if key in base:
            out[key] = _merge(base[key], value, _field(model, key), sub, over_lines, lines)
        else:
            out[key] = value
            _copy_lines(over_lines, sub, lines)
        if sub in over_lines:
            lines[sub] = over_lines[sub]
    return out


def _as_mapping(value: Any, registry: Registry) -> Any:
    """A component by bare name (`relu`) as the mapping it stands for (`{name: relu}`)."""
    return {registry.tag: value} if isinstance(value, str) else value


def _renamed(base: Any, over: Any, registry: Registry) -> bool:
    if not (isinstance(base, dict) and isinstance(over, dict)) or registry.tag not in over:
        return False
    old, new = base.get(registry.tag), over[registry.tag]
    canonical = [registry.canonical(n) if isinstance(n, str) else n for n in (old, new)]
    return old is not None and canonical[0] != canonical[1]


def _copy_lines(src: dict, prefix: KeyPath, dst: dict) -> None:
    for key, where in src.items():
        if key[:len(prefix)] == prefix:
            dst[key] = where


def _drop_lines(lines: dict, prefix: KeyPath, inclusive: bool = False) -> None:
    for key in [k for k in lines if k[:len(prefix)] == prefix and (inclusive or k != prefix)]:
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
        merged = _merge(merged, parent_value, None, (), parent_lines, merged_lines)
    merged = _merge(merged, value, None, (), lines, merged_lines)
    return merged, merged_lines


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
                                   f"command line: {text}")]) from None
    return key.split("."), value


def apply_override(doc: dict, keys: list[str], value: Any, lines: dict, where: str = "command line") -> None:
    """Merge `a.b.c=value` into the document as if a child recipe said `{a: {b: {c: value}}}`: into the
    default component where the recipe leaves a section to its default, replacing a component's
    parameters only when its name changes. Keys the override creates are blamed on `where`."""
    _check_settable(doc, keys, where)
    nested: Any = value
    for key in reversed(keys):
        nested = {key: nested}
    paths = [tuple(keys[:i]) for i in range(1, len(keys) + 1)]
    over_lines = {p: where for p in paths if p not in lines or p == paths[-1]}
    merged = _merge(doc, nested, None, (), over_lines, lines)
    doc.clear()
    doc.update(merged)


def _check_settable(doc: dict, keys: list[str], where: str) -> None:
    """`data.batch_size.x=1`: a value that is neither a mapping nor a component's name is in the way."""
    node: Any = doc
    model: Any = Recipe
    for i, key in enumerate(keys[:-1]):
        slot = _field(model, key)
        child = node.get(key)
        if child is None or isinstance(child, str) and slot is not None and component_registry(slot) is not None:
            return
        if not isinstance(child, dict):
            path = ".".join(keys[:i + 1])
            raise RecipeError([Problem(".".join(keys), f"cannot set `{'.'.join(keys)}`: `{path}` is "
                                       f"{type(child).__name__} {child!r}, not a mapping", where)])
        node, model = child, _model_in(slot, child)


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
        apply_override(doc, keys, value, lines, f"command line: {text}")
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
    errors = []
    for error in exc.errors(include_url=False):
        path, branch = _user_path(error["loc"], doc, missing=error["type"] == "missing")
        # a cross-field check (core.errors.KeysError) names the keys involved, not its section
        keys = getattr((error.get("ctx") or {}).get("error"), "keys", ())
        targets = [path + (key,) for key in keys] or [path]
        errors.append({**error, "path": targets[0], "branch": branch, "message": _message(error, targets[0], doc),
                       "label": ", ".join(".".join(map(str, target)) for target in targets)})
    found: dict[str, list[dict]] = {}  # label -> its errors, in pydantic's order
    for error in _drop_mismatched_members(errors):
        same = found.setdefault(error["label"], [])
        if all(e["message"] != error["message"] for e in same):
            same.append(error)
    return [Problem(label, _one_message(same), _where(same[0]["path"], lines)) for label, same in found.items()]


def _drop_mismatched_members(errors: list[dict]) -> list[dict]:
    """A value that fits no member of a union (`batch_size: 0`, `dropout: 1.5`) gets an error from each
    member; "should be a valid list" for 1.5 says nothing useful when another member's error (less
    than 1) is about the value itself, at this key or inside it."""
    def useful_elsewhere(error: dict) -> bool:
        n = len(error["path"])
        return any(other is not error and other["branch"] and other["path"][:n] == error["path"]
                   and not other["type"].endswith("_type") for other in errors)
    return [e for e in errors if not (e["branch"] and e["type"].endswith("_type") and useful_elsewhere(e))]


def _one_message(errors: list[dict]) -> str:
    """The messages for one key; union members' "Input should be ..." read as one sentence."""
    if len(errors) == 1 or not all(e["branch"] for e in errors):
        return "; ".join(e["message"] for e in errors)
    got = errors[0].get("input")
    suffix = f"; got {got!r}" if got is not None and not isinstance(got, (dict, list)) else ""
    return "Input should be " + " or ".join(e["msg"].removeprefix("Input should be ") for e in errors) + suffix


def _user_path(loc: tuple, doc: Any, missing: bool = False) -> tuple[tuple, bool]:
    """The key path in the user's document, without the labels pydantic inserts: union tags
    (`optimizer.adam.lr` -> `optimizer.lr`) and union members (`batch_size.constrained-int`).
    Also says whether the error came from one member of a union of plain types."""
    path: list = []
    node = doc
    branch = False
    for i, part in enumerate(loc):
        if isinstance(node, dict) and part in node:
            path.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
        elif isinstance(node, dict) and missing and i == len(loc) - 1:
            path.append(part)
        elif node is None and isinstance(part, (int, str)) and not str(part).startswith("function-"):
            return (*path, part), branch
        elif isinstance(node, (dict, list)):
            branch = branch or isinstance(node, list)  # a dict's labels are component tags
        else:
            return tuple(path), True  # the rest of the location names union members
    return tuple(path), branch


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
        if valid in (["name"], ["arch"]):  # a component without parameters: its tag is its only key
            return f"unknown key `{path[-1]}`: `{_value_at(path[:-1] + (valid[0],), doc)}` takes no parameters"
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


# ---------------------------------------------------------------------------------------------
# the schema, walked along a document


def _value_at(path: tuple, doc: dict) -> Any:
    """The name a component at `path` validated as (the user's, or its field's default)."""
    node: Any = doc
    for part in path[:-1]:
        node = node.get(part) if isinstance(node, dict) else node[part] if isinstance(node, list) else None
    if isinstance(node, str):
        return node
    model = _model_at(path[:-1], doc)
    return model.model_fields[path[-1]].default if model is not None else None


def _valid_keys(path: tuple, doc: dict) -> list[str]:
    model = _model_at(path, doc)
    return [] if model is None else [f.alias or name for name, f in model.model_fields.items()]


def _model_at(path: tuple, doc: dict) -> type[BaseModel] | None:
    """The model of the mapping at `path`, found by walking the Recipe model along the user's document."""
    model: Any = Recipe
    node: Any = doc
    slot: FieldInfo | None = None  # the field holding `node`
    for part in path:
        if isinstance(part, int):  # a list element: the list's element type
            node = node[part] if isinstance(node, list) and part < len(node) else None
            model = _model_in(FieldInfo.from_annotation(_element_type(slot)), node) if slot else None
            continue
        slot = _field(model, part)
        node = node.get(part) if isinstance(node, dict) else None
        model = _model_in(slot, node) if slot is not None else None
    return model


def _field(model: type[BaseModel] | None, key: Any) -> FieldInfo | None:
    return field_named(model, key) if model is not None and isinstance(key, str) else None


def _model_in(slot: FieldInfo | None, node: Any) -> type[BaseModel] | None:
    """The pydantic model that validates the mapping `node` held in field `slot` (None: the top)."""
    if slot is None:
        return Recipe
    registry = component_registry(slot)
    if registry is not None:
        given = node if isinstance(node, dict) else {}
        name = node if isinstance(node, str) else given.get(registry.tag)
        if name is None:
            name = registry.default_name(slot.default, given)
        canonical = registry.canonical(name) if isinstance(name, str) else None
        return registry.entry(canonical).model if canonical else None
    return next((t for t in unwrap_annotation(slot.annotation) if isinstance(t, type) and issubclass(t, BaseModel)), None)


def _element_type(slot: FieldInfo) -> Any:
    for t in unwrap_annotation(slot.annotation):
        if typing.get_origin(t) is list:
            return typing.get_args(t)[0]
    return None


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

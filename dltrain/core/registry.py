"""Registries: every component kind (activations, initializers, optimizers, schedules, losses,
datasets, architectures) is a table of short names -> factories.

A factory's keyword-only parameters *are* the component's recipe parameters: their annotations
and defaults become a frozen pydantic model, so a recipe is checked against the factory's own
signature before anything runs, `dltrain validate` can print every default, and `dltrain catalog`
is generated from the same table. Positional-only parameters are what the builder supplies
(the parameters to optimize, the tensor to initialize, the input shape), never the recipe.

Facts about an entry that are not recipe parameters (the task a loss fits, how an activation is
probed, the input layouts an architecture takes) are declared by the registry (`facts`) and given
at registration: an entry without one fails at import, so no side table can miss a new entry.

Every registry enters itself in `REGISTRIES` under its kind, with its singular and plural name,
which is what `dltrain catalog` walks.

Factories import torch inside their bodies, so validating a recipe and `dltrain catalog` stay light.
"""

from __future__ import annotations

import inspect
import types
import typing
from dataclasses import dataclass, field
from functools import cached_property
from typing import Annotated, Any, Callable, Literal, Optional, Union

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    create_model,
    model_validator,
)
from pydantic_core import PydanticCustomError

from dltrain.core.errors import did_you_mean


class Spec(BaseModel):
    """Base of every generated component spec: strict and frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, validate_default=True)

    @model_validator(mode="before")
    @classmethod
    def _fill_gaps(cls, data: Any) -> Any:
        """Two rules that let a recipe, an `extends` child or an override say less:
        `key: null` on a key where null is not itself a valid value means "not set" (the default
        applies, which is how a child deletes an inherited key); a component given without its
        `name` (`optimizer: {lr: 0.1}`) is the field's default component with those parameters."""
        if not isinstance(data, dict):
            return data
        out = {}
        for key, value in data.items():
            slot = field_named(cls, key)
            if slot is not None and value is None and not slot.is_required() and not accepts_none(slot):
                continue
            registry = component_registry(slot) if slot is not None else None
            if registry is not None and isinstance(value, dict) and registry.tag not in value:
                name = registry.default_name(slot.default, value)
                value = value if name is None else {registry.tag: name, **value}
            out[key] = value
        return out


@dataclass
class Entry:
    name: str
    description: str
    factory: Callable[..., Any]
    aliases: tuple[str, ...] = ()
    check: Callable[[Any], Any] | None = None  # cross-parameter check on the validated spec
    registry: "Registry" = field(default=None, repr=False)  # type: ignore[assignment]
    facts: dict[str, Any] = field(default_factory=dict)  # the registry's declared facts, for this entry

    @cached_property
    def params(self) -> dict[str, inspect.Parameter]:
        """The recipe parameters: the factory's keyword-only parameters."""
        sig = inspect.signature(self.factory, eval_str=True)
        return {p.name: p for p in sig.parameters.values() if p.kind is p.KEYWORD_ONLY}

    @cached_property
    def model(self) -> type[Spec]:
        reg = self.registry
        fields: dict[str, Any] = {reg.tag: (Literal[self.name], self.name)}
        for p in self.params.values():
            annotation = Any if p.annotation is inspect.Parameter.empty else p.annotation
            default = ... if p.default is inspect.Parameter.empty else p.default
            fields[p.name] = (annotation, default)
        validators = {}
        if self.check is not None:
            check = self.check

            def _check(spec):  # runs after every field validated
                check(spec)
                return spec

            validators["cross_check"] = model_validator(mode="after")(_check)
        title = reg.kind.title().replace("_", "") + self.name.title().replace("_", "")
        return create_model(title, __base__=reg.base, __validators__=validators, **fields)

    def describe_params(self) -> str:
        parts = []
        for p in self.params.values():
            parts.append(p.name if p.default is inspect.Parameter.empty else f"{p.name}={p.default!r}")
        return ", ".join(parts)


# Every registry, by kind, in the order they were made: what `dltrain catalog` walks.
REGISTRIES: dict[str, "Registry"] = {}


class Registry:
    """Short names (and aliases) -> Entry, for one kind of component."""

    def __init__(self, kind: str, *, plural: str | None = None, tag: str = "name", base: type[Spec] = Spec,
                 what: str | None = None, facts: dict[str, Any] | None = None):
        if kind in REGISTRIES:
            raise ValueError(f"a registry of kind `{kind}` exists already")
        self.kind = kind  # "optimizer"
        self.plural = plural or kind + "s"  # "optimizers"
        self.tag = tag  # the key that names the entry in a recipe: "name", or "arch" for models
        self.base = base  # common fields every entry's spec has (data.batch_size, model.freeze, ...)
        self.what = what or kind
        self.facts = dict(facts or {})  # fact name -> its type: what every entry must say at registration
        self._fact_checks = {fact: TypeAdapter(kind_of) for fact, kind_of in self.facts.items()}
        self._entries: dict[str, Entry] = {}
        self._aliases: dict[str, str] = {}
        REGISTRIES[kind] = self

    def register(self, name: str, *, description: str, aliases: tuple[str, ...] = (),
                 check: Callable[[Any], Any] | None = None, **facts: Any):
        facts = self._checked_facts(name, facts)

        def decorate(factory):
            entry = Entry(name, description, factory, tuple(aliases), check, self, facts)
            self._entries[name] = entry
            for alias in aliases:
                self._aliases[alias] = name
            return factory

        return decorate

    def _checked_facts(self, name: str, facts: dict[str, Any]) -> dict[str, Any]:
        """The entry's facts, exactly those the registry declares, each of its declared type."""
        missing = [fact for fact in self.facts if fact not in facts]
        unknown = [fact for fact in facts if fact not in self.facts]
        if missing or unknown:
            declared = ", ".join(self.facts) or "none"
            raise TypeError(f"{self.kind} `{name}`: missing facts {missing}, unknown facts {unknown}; "
                            f"every {self.kind} declares exactly: {declared}")
        for fact, value in facts.items():
            try:
                self._fact_checks[fact].validate_python(value, strict=True)
            except ValidationError as exc:
                raise TypeError(f"{self.kind} `{name}`: fact `{fact}` = {value!r} is not a "
                                f"{self.facts[fact]}: {exc.errors()[0]['msg']}") from None
        return facts

    def __contains__(self, name: str) -> bool:
        return self.canonical(name) is not None

    def canonical(self, name: str) -> str | None:
        if name in self._entries:
            return name
        return self._aliases.get(name)

    def names(self) -> list[str]:
        return list(self._entries)

    def entries(self) -> list[Entry]:
        return list(self._entries.values())

    def entry(self, name: str) -> Entry:
        canonical = self.canonical(name)
        if canonical is None:
            raise KeyError(self.unknown_message(name))
        return self._entries[canonical]

    def default_name(self, default: Any, given: dict) -> str | None:
        """The entry a field holds when the recipe names none: the field's default (`"adam"`, or a
        spec); where the default is null (`loss`: chosen from the task), the one entry that takes
        every given parameter (`label_smoothing` -> cross_entropy), if exactly one does."""
        if isinstance(default, str):
            return self.canonical(default)
        if isinstance(default, BaseModel):
            return getattr(default, self.tag)
        takers = [e.name for e in self.entries() if given and set(given) <= set(e.model.model_fields)]
        return takers[0] if len(takers) == 1 else None

    def shared_keys(self) -> set[str]:
        """Keys every entry has (the base spec's: `data.batch_size`, `model.from`, `schedule.warmup_epochs`)."""
        return {f.alias or name for name, f in self.base.model_fields.items()} | set(self.base.model_fields)

    def unknown_message(self, name: Any) -> str:
        known = self.names() + list(self._aliases)
        return (f"unknown {self.what} `{name}`{did_you_mean(str(name), known)} "
                f"(choose from: {', '.join(self.names())})")

    def _normalize(self, value: Any) -> Any:
        """`relu` -> {name: relu}; aliases -> canonical names; unknown names -> a clear error."""
        if isinstance(value, BaseModel):
            return value
        if isinstance(value, str):
            value = {self.tag: value}
        if not isinstance(value, dict):
            raise PydanticCustomError(
                "component_type",
                "expected the name of a {what}, or a mapping with `{tag}` and its parameters; got {got}",
                {"what": self.what, "tag": self.tag, "got": repr(value)})
        if self.tag not in value:
            raise PydanticCustomError("component_name", "missing `{tag}`: which {what}? (choose from: {names})",
                                      {"tag": self.tag, "what": self.what, "names": ", ".join(self.names())})
        name = value[self.tag]
        canonical = self.canonical(name) if isinstance(name, str) else None
        if canonical is None:
            raise PydanticCustomError("component_unknown", self.unknown_message(name).replace("{", "{{").replace("}", "}}"))
        return {**value, self.tag: canonical}

    @cached_property
    def spec_type(self) -> Any:
        """The pydantic type of a field holding one of these components (a tagged union)."""
        return self._annotated(optional=False)

    @cached_property
    def optional_spec_type(self) -> Any:
        """As spec_type, also accepting null (e.g. `loss`, chosen from the task when absent)."""
        return self._annotated(optional=True)

    def _annotated(self, optional: bool) -> Any:
        models = tuple(e.model for e in self._entries.values())
        union: Any = Union[models] if len(models) > 1 else models[0]  # type: ignore[valid-type]
        if optional:
            union = Optional[union]

        def normalize(value: Any) -> Any:
            return None if optional and value is None else self._normalize(value)

        # The discriminator must come before the BeforeValidator: the other way round, a bare name
        # inside a list (`augment: [hflip]`) reaches the tagged union before it is normalized.
        parts: list[Any] = [union]
        if len(models) > 1:
            parts.append(Field(discriminator=self.tag))
        parts += [BeforeValidator(normalize), ComponentOf(self)]
        return Annotated[tuple(parts)]  # type: ignore[return-value]

    def build(self, spec: Spec, *args: Any) -> Any:
        """Call the factory with the builder's positional arguments and the spec's parameters."""
        entry = self.entry(getattr(spec, self.tag))
        kwargs = {name: getattr(spec, name) for name in entry.params}
        return entry.factory(*args, **kwargs)


@dataclass(frozen=True)
class ComponentOf:
    """Annotated marker: this field holds a component of `registry` (used to find valid keys)."""

    registry: Registry

    def __hash__(self) -> int:
        return id(self.registry)


def field_named(model: type[BaseModel], key: str):
    """The FieldInfo of `key` (its name or alias) in a pydantic model, or None."""
    for name, f in model.model_fields.items():
        if key in (name, f.alias):
            return f
    return None


def unwrap_annotation(annotation: Any) -> list[Any]:
    """The annotation and, through Annotated and unions, every type and marker inside it."""
    found = [annotation]
    origin = typing.get_origin(annotation)
    if origin is Annotated or origin in (Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found += unwrap_annotation(arg)
    return found


def component_registry(slot) -> "Registry | None":
    """The registry whose component a field holds (its ComponentOf marker), or None."""
    for part in list(slot.metadata) + unwrap_annotation(slot.annotation):
        if isinstance(part, ComponentOf):
            return part.registry
    return None


def accepts_none(slot) -> bool:
    return any(part is type(None) for part in unwrap_annotation(slot.annotation))


"""Study files: YAML -> a validated Study (its arms as recipes), or a StudyError listing every problem.

A study file holds a base recipe (inline, optionally with `extends`, paths relative to the study
file), arms (a name and dotted-key overrides each), seeds, the metrics reported, and claims in a
checkable form. Each arm's recipe is validated like any recipe, so a mistake in an arm is reported
at its own line of the study file.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from dltrain.core.errors import Problem, RecipeError, UsageError, did_you_mean
from dltrain.core.registry import Spec
from dltrain.core.types import PositiveInt, UnitInterval
from dltrain.core.yamlio import read_yaml_file
from dltrain.study import quantities

Name = Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")]
PLACEHOLDER = "{prepared.%s}"  # in an arm's value: the run directory of that prepared run


class StudyError(RecipeError):
    """Problems in a study file (exit code 2), each with its key and file:line."""

    def render(self) -> str:
        n = len(self.problems)
        head = f"{self.source}: " if self.source else ""
        return head + f"{n} problem{'s' if n != 1 else ''} in the study\n" + "\n".join(f"  - {p}" for p in self.problems)


def _quantity(value: str) -> str:
    if not quantities.is_known(value):
        raise ValueError(f"unknown quantity `{value}`{did_you_mean(value, quantities.known())} "
                         f"(choose from: {', '.join(quantities.known())})")
    return value


Quantity = Annotated[str, Field(min_length=1)]


class ArmSpec(Spec):
    name: Name
    set: dict[str, Any] = {}  # dotted recipe key -> value, applied to the base recipe


class Beats(Spec):
    """`arm` is better than `over` on `metric` (Welch's t-test over seeds, two-sided, at `alpha`)."""
    arm: Name
    over: Name
    metric: Quantity
    alpha: UnitInterval = 0.05

    @field_validator("metric")
    @classmethod
    def _known(cls, value: str) -> str:
        return _quantity(value)


class Within(Spec):
    """Every seed of `arm` measures `metric` between range[0] and range[1]."""
    arm: Name
    metric: Quantity
    range: tuple[float, float]

    @field_validator("metric")
    @classmethod
    def _known(cls, value: str) -> str:
        return _quantity(value)

    @model_validator(mode="after")
    def _ordered(self):
        if self.range[0] > self.range[1]:
            raise ValueError(f"range: expected [low, high] with low <= high, got {list(self.range)}")
        return self


class Diverges(Spec):
    """Every seed of `arm` diverges (a non-finite loss stopped it), or none does (expected: false)."""
    arm: Name
    expected: bool = True


class ClaimSpec(Spec):
    beats: Beats | None = None
    within: Within | None = None
    diverges: Diverges | None = None
    why: str = ""  # the book's reason, shown in the report
    otherwise: str = ""  # what would change the outcome where it does not reproduce (from the literature)

    @model_validator(mode="after")
    def _one_kind(self):
        kinds = [k for k in ("beats", "within", "diverges") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(f"expected exactly one of `beats`, `within`, `diverges` in a claim, got {kinds or 'none'}")
        return self

    @property
    def body(self) -> Beats | Within | Diverges:
        return self.beats or self.within or self.diverges

    @property
    def arms(self) -> list[str]:
        return [self.beats.arm, self.beats.over] if self.beats else [self.body.arm]


class QuickSpec(Spec):
    seeds: PositiveInt = 2
    set: dict[str, Any] = {}  # overrides for every arm in the quick form (fewer epochs, less data)


class PrepareSpec(Spec):
    """A run trained once before the arms (the source of a transfer); arms name it as {prepared.NAME}."""
    name: Name
    set: dict[str, Any] = {}


class StudySpec(Spec):
    summary: Annotated[str, Field(min_length=1)]  # one line: `dltrain study --list`
    lesson: str = ""  # the chapter's claim in words
    base: dict[str, Any]  # a recipe document; `extends` is relative to the study file
    prepare: list[PrepareSpec] = []
    arms: Annotated[list[ArmSpec], Field(min_length=2)]
    seeds: PositiveInt = 3
    metrics: Annotated[list[Quantity], Field(min_length=1)]
    collect: list[Literal["grad_ratio", "act_std_ratio", "sparsity", "sharpness"]] = []
    claims: Annotated[list[ClaimSpec], Field(min_length=1)]
    quick: QuickSpec = QuickSpec()
    budget_s: PositiveInt = 180  # the full form's time budget on 2 CPU cores, for the report

    @field_validator("metrics")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        return [_quantity(x) for x in value]


# ---------------------------------------------------------------------------------------------


class Study:
    """A validated study: its spec, and each arm's recipe document with the lines it came from."""

    def __init__(self, name: str, path: Path, spec: StudySpec, base: tuple[dict, dict], lines: dict,
                 overrides: list[str], quick: bool, seeds: int):
        self.name, self.path, self.spec, self.lines = name, path, spec, lines
        self.overrides, self.quick, self.seeds = overrides, quick, seeds
        self._base = base

    @property
    def quantities(self) -> list[str]:
        """Everything measured: the metrics, the collected statistics, and what the claims are on."""
        on = [c.body.metric for c in self.spec.claims if hasattr(c.body, "metric")]
        return list(dict.fromkeys([*self.spec.metrics, *self.spec.collect, *on]))

    def document(self, kind: str, index: int, prepared: dict[str, str] | None = None) -> tuple[dict, dict]:
        """The recipe document of arm (or prepare step) `index`: base + its settings (+ quick) + overrides."""
        item = (self.spec.arms if kind == "arms" else self.spec.prepare)[index]
        doc, lines = copy.deepcopy(self._base[0]), dict(self._base[1])
        doc["name"] = f"{self.name}-{item.name}"
        _set_all(doc, lines, item.set, self.lines, (kind, index, "set"), prepared)
        if self.quick:
            _set_all(doc, lines, self.spec.quick.set, self.lines, ("quick", "set"), prepared)
        from dltrain.recipe.load import apply_override, parse_override
        for text in self.overrides:
            keys, value = parse_override(text)
            apply_override(doc, keys, value, lines)
        return doc, lines

    def recipe(self, kind: str, index: int, prepared: dict[str, str] | None = None):
        from dltrain.recipe.load import validate_document
        doc, lines = self.document(kind, index, prepared)
        return validate_document(doc, lines)

    def arm_recipes(self, prepared: dict[str, str] | None = None) -> list[tuple[str, list]]:
        """(arm name, its recipes for every seed), arms in file order."""
        out = []
        for i, arm in enumerate(self.spec.arms):
            recipe = self.recipe("arms", i, prepared)
            out.append((arm.name, [recipe.model_copy(update={"seed": recipe.seed + k}) for k in range(self.seeds)]))
        return out


def _set_all(doc: dict, lines: dict, settings: dict, study_lines: dict, at: tuple, prepared: dict | None) -> None:
    from dltrain.recipe.load import apply_override
    for key, value in settings.items():
        if prepared is not None and isinstance(value, str):
            for name, path in prepared.items():
                value = value.replace(PLACEHOLDER % name, path)
        where = study_lines.get(at + (key,))
        try:
            apply_override(doc, key.split("."), copy.deepcopy(value), lines)
        except RecipeError as err:
            raise StudyError([Problem(".".join(map(str, at + (key,))), p.message, where) for p in err.problems]) from None
        for sub in [k for k in lines if k[:len(key.split("."))] == tuple(key.split("."))]:
            lines[sub] = where


def find(name_or_file: str, shipped: Path) -> Path:
    """A study file path, or the name of a shipped study (studies/NAME.yaml)."""
    path = Path(name_or_file)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise StudyError([Problem("", f"study file not found: {path}")])
        return path
    candidate = shipped / f"{name_or_file}.yaml"
    if candidate.is_file():
        return candidate
    names = sorted(p.stem for p in shipped.glob("*.yaml"))
    raise UsageError(f"no study named `{name_or_file}`{did_you_mean(name_or_file, names)} "
                     f"(shipped: {', '.join(names)}; or give a study file)")


def load_study(path: Path, overrides: list[str] = (), quick: bool = False, seeds: int | None = None) -> Study:
    """Read, validate the study's own keys, then every arm's recipe; all problems reported at once."""
    path = Path(path)
    try:
        raw, lines = read_yaml_file(path)
    except RecipeError as err:
        raise StudyError(err.problems, str(path)) from None
    if not isinstance(raw, dict):
        raise StudyError([Problem("", "expected a mapping with `summary`, `base`, `arms`, `metrics` and `claims`")],
                         str(path))
    try:
        spec = StudySpec.model_validate(raw)
    except ValidationError as exc:
        raise StudyError(_problems(exc, raw, lines), str(path)) from None
    problems = _cross_check(spec, lines)
    if problems:
        raise StudyError(problems, str(path))
    try:
        base = _base_document(spec.base, lines, path)
        study = Study(path.stem, path, spec, base, lines, list(overrides), quick,
                      seeds or (spec.quick.seeds if quick else spec.seeds))
        for kind, items in (("prepare", spec.prepare), ("arms", spec.arms)):
            for i in range(len(items)):
                try:
                    study.recipe(kind, i)
                except RecipeError as err:
                    problems += [Problem(f"{kind}[{items[i].name}] {p.path}", p.message, p.where) for p in err.problems]
    except RecipeError as err:
        raise StudyError(err.problems, str(path)) from None
    if problems:
        raise StudyError(problems, str(path))
    return study


def _base_document(base: dict, lines: dict, path: Path) -> tuple[dict, dict]:
    """The inline base recipe with its `extends` resolved (parents first, the inline keys win)."""
    from dltrain.recipe.load import load_document
    own = copy.deepcopy(base)
    own_lines = {k[1:]: v for k, v in lines.items() if k[:1] == ("base",) and len(k) > 1}
    parent = own.pop("extends", None)
    if parent is None:
        return own, own_lines
    where = lines.get(("base", "extends"))
    if not isinstance(parent, str):
        raise RecipeError([Problem("base.extends", f"expected one recipe path (relative to the study file), "
                                   f"got {parent!r}", where)])
    parent_path = (path.parent / parent).resolve()
    if not parent_path.is_file():
        raise RecipeError([Problem("base.extends", f"file not found: {parent_path}", where)])
    doc, doc_lines = load_document(parent_path)
    _set_all(doc, doc_lines, _leaves(own), lines, ("base",), None)
    return doc, doc_lines


def _leaves(mapping: dict, prefix: str = "") -> dict:
    """{a: {b: 1}} -> {a.b: 1}: the inline base applied key by key is a deep merge onto its parent."""
    out = {}
    for key, value in mapping.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(_leaves(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def _cross_check(spec: StudySpec, lines: dict) -> list[Problem]:
    """Claims name arms that exist; arm names are unique; depth statistics need diagnostics."""
    problems = []
    names = [a.name for a in spec.arms]
    for i, arm in enumerate(spec.arms):
        if names.index(arm.name) != i:
            problems.append(Problem(f"arms.{i}.name", f"arm `{arm.name}` is defined twice", lines.get(("arms", i, "name"))))
    for i, claim in enumerate(spec.claims):
        kind = next(k for k in ("beats", "within", "diverges") if getattr(claim, k) is not None)
        for field in ("arm", "over"):
            value = getattr(claim.body, field, None)
            if value is not None and value not in names:
                problems.append(Problem(f"claims.{i}.{kind}.{field}", f"no arm named `{value}`"
                                        f"{did_you_mean(value, names)} (arms: {', '.join(names)})",
                                        lines.get(("claims", i, kind, field))))
    return problems


def _problems(exc: ValidationError, raw: dict, lines: dict) -> list[Problem]:
    problems = []
    for error in exc.errors(include_url=False):
        loc = tuple(p for p in error["loc"] if not str(p).startswith("function-"))
        key = ".".join(map(str, loc))
        where = next((lines[loc[:end]] for end in range(len(loc), -1, -1) if loc[:end] in lines), None)
        kind, got = error["type"], error.get("input")
        if kind == "extra_forbidden":
            valid = _fields_at(loc[:-1], raw)
            message = f"unknown key `{loc[-1]}`{did_you_mean(str(loc[-1]), valid)} (valid keys: {', '.join(valid)})"
        elif kind == "missing":
            message = "required key is missing"
        else:
            message = error["msg"].removeprefix("Value error, ")
            if got is not None and not isinstance(got, (dict, list)) and "got" not in message:
                message += f"; got {got!r}"
        problems.append(Problem(key, message, where))
    return problems


def _fields_at(loc: tuple, raw: dict) -> list[str]:
    """The keys a study allows at `loc` (top level, an arm, a claim or its body, quick)."""
    models = {(): StudySpec, ("arms",): ArmSpec, ("prepare",): PrepareSpec, ("claims",): ClaimSpec,
              ("quick",): QuickSpec}
    plain = tuple(p for p in loc if not isinstance(p, int))
    if len(plain) == 2 and plain[0] == "claims":
        return list({"beats": Beats, "within": Within, "diverges": Diverges}[plain[1]].model_fields)
    model = models.get(plain)
    return list(model.model_fields) if model else []

"""`dltrain study NAME|FILE`: train a study's arms x seeds as one batch, judge its claims, write its report.
`dltrain study --list`: the shipped studies, one line each."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from dltrain.core.errors import UsageError

SHIPPED = Path(__file__).resolve().parents[2] / "studies"


def study(target: str | None, arguments: list[str], *, quick: bool, seeds: int | None, list_only: bool,
          runs_dir: Path, reports_dir: Path, console) -> int:
    from dltrain.study.spec import find, load_study

    if list_only:
        list_studies(console)
        return 0
    if target is None:
        raise UsageError("no study given: expected `dltrain study NAME|FILE` (see `dltrain study --list`)")
    overrides = [a for a in arguments if "=" in a]
    stray = [a for a in arguments if "=" not in a]
    if stray:
        raise UsageError(f"`{stray[0]}` is not an override: expected KEY=VALUE with a dotted recipe key, "
                         "applied to every arm (train.epochs=2)")
    loaded = load_study(find(target, SHIPPED), overrides, quick=quick, seeds=seeds)  # every problem before any run

    from dltrain.study.conduct import conduct
    from dltrain.study.report import write_report
    command = " ".join(["dltrain", "study", *map(shlex.quote, [target, *(["--quick"] if quick else []),
                        *([f"--seeds={seeds}"] if seeds else []), *overrides])])
    if Path(runs_dir) != Path("runs"):
        command += f" --runs-dir {shlex.quote(str(runs_dir))}"
    if Path(reports_dir) != Path("studies-out"):
        command += f" --reports-dir {shlex.quote(str(reports_dir))}"
    outcome = conduct(loaded, runs_dir, console, sys.argv)
    report = write_report(outcome, Path(reports_dir) / outcome.batch, command, runs_dir)
    print_outcome(console, outcome, report)
    return outcome.exit_code


def list_studies(console) -> None:
    from dltrain.study.spec import load_study
    for path in sorted(SHIPPED.glob("*.yaml")):
        spec = load_study(path).spec
        console.print(f"{path.stem:<22} {spec.summary}", markup=False, soft_wrap=True)


def print_outcome(console, outcome, report: Path) -> None:
    console.print(f"study {outcome.study.name}: {outcome.seconds:.0f} s, batch {outcome.batch}", markup=False)
    for v in outcome.verdicts:
        console.print(f"  {v.verdict.upper()}: {v.claim}: {v.reason}", markup=False, soft_wrap=True)
    console.print(f"report: {report}", markup=False)

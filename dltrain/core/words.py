"""English for counts: "1 run", "2 runs", "all 1 epoch"."""


def plural(count: int, noun: str, many: str | None = None) -> str:
    """`plural(1, "run")` -> "1 run"; `plural(2, "run")` -> "2 runs"; `many` for irregular plurals."""
    return f"{count:,} {noun if count == 1 else many or noun + 's'}"

"""How a run ended (or that it has not), and the exit codes of the `dltrain` command.

A status's word is what run.json and summary.json hold. Each status knows:

| status          | exit code | finished | resumable | |
| --------------- | --------- | -------- | --------- | --- |
| `running`       | 1         | no       | yes       | training, or killed before it could record its end |
| `completed`     | 0         | yes      | no        | trained every planned epoch |
| `early_stopped` | 0         | yes      | no        | early stopping ended it, as its recipe asked |
| `pruned`        | 0         | no       | no        | its sweep's pruner ended it |
| `diverged`      | 3         | no       | no        | its loss or a metric became NaN or infinite |
| `interrupted`   | 130       | no       | yes       | SIGINT (or SIGTERM: exit code 143) stopped it after a checkpoint |
| `failed`        | 1         | no       | yes       | an error ended it (error.txt) |
| `unknown`       | 1         | no       | yes       | read only: run.json holds no status this version knows |

*Finished*: the run ended by its own plan, so its numbers may be pooled with other runs'.
*Resumable*: `dltrain resume` may continue it (a live run is still refused, by its lock).
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class Exit(IntEnum):
    """Exit codes of the `dltrain` command."""

    OK = 0
    FAILED = 1  # a run failed, or the machine did (a full disk)
    USAGE = 2  # a bad recipe, argument or data set: nothing was written
    DIVERGED = 3
    SIGINT = 130  # 128 + the signal's number
    SIGTERM = 143


# A batch of runs exits with its worst code; worst last: all done < a run diverged < a run failed
# < a run's recipe or data was bad (found only when its data was loaded) < a signal stopped the batch.
EXIT_SEVERITY = (Exit.OK, Exit.DIVERGED, Exit.FAILED, Exit.USAGE, Exit.SIGTERM, Exit.SIGINT)
STOPS_BATCH = (Exit.SIGINT, Exit.SIGTERM)  # the user asked the whole command to stop


def worst(codes: list[int]) -> int:
    return max(codes, key=EXIT_SEVERITY.index, default=Exit.OK)


class RunStatus(StrEnum):
    """A run's status; the value is the word on disk, so a RunStatus equals that string."""

    # word, exit code, finished, why it cannot be resumed (None: it can be)
    RUNNING = "running", Exit.FAILED, False, None
    COMPLETED = "completed", Exit.OK, True, "it completed"
    EARLY_STOPPED = "early_stopped", Exit.OK, True, "it stopped early, as its recipe asked"
    PRUNED = "pruned", Exit.OK, False, "its sweep pruned it (re-run the sweep to continue the study)"
    DIVERGED = "diverged", Exit.DIVERGED, False, ("it diverged (its last good checkpoint would diverge again: "
                                                   "change the recipe and start a new run)")
    INTERRUPTED = "interrupted", Exit.SIGINT, False, None
    FAILED = "failed", Exit.FAILED, False, None
    UNKNOWN = "unknown", Exit.FAILED, False, None

    def __new__(cls, word: str, exit_code: Exit, finished: bool, final_because: str | None):
        member = str.__new__(cls, word)
        member._value_ = word
        member.exit_code, member.finished, member.final_because = exit_code, finished, final_because
        return member

    @property
    def resumable(self) -> bool:
        return self.final_because is None

    @classmethod
    def read(cls, word: object) -> "RunStatus":
        """The status a run.json or summary.json records; UNKNOWN for anything else."""
        try:
            return cls(word)
        except ValueError:
            return cls.UNKNOWN

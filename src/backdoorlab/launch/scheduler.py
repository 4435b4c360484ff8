"""Dependency-order scheduling of stage tasks, independent of Ray.

A stage is submitted once every stale stage it depends on has succeeded; when one fails, its
dependents are skipped (their inputs will never exist) while independent stages go on, so their
results still reach the shared cache. The executor is a two-method protocol, which lets the tests
drive the logic with a fake and the launcher with Ray.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

from backdoorlab.launch.plan import StageNode
from backdoorlab.launch.task import TaskResult


class Executor(Protocol):
    def submit(self, stage: StageNode) -> None:
        """Start the stage's task (returns at once)."""

    def wait_one(self) -> TaskResult:
        """Block until some submitted task has finished and return its result."""


@dataclass
class Outcome:
    succeeded: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def done(self) -> int:
        return len(self.succeeded) + len(self.failed) + len(self.skipped)


def progress_line(outcome: Outcome, total: int, text: str) -> str:
    """`[12/70] defend@badnets-sft 8.1 s (58 left)`: one line per finished or skipped stage."""
    return f"[{outcome.done}/{total}] {text} ({total - outcome.done} left)"


def describe(result: TaskResult) -> str:
    """The stage's part of a progress line; a failure's output tail follows on its own lines."""
    if result.ok:
        return (f"{result.stage} {result.seconds:.1f} s (setup {result.setup:.1f} s)"
                + ("" if result.executed else ", restored from the run-cache"))
    return f"{result.stage} FAILED after {result.seconds:.1f} s on {result.host}"


def run_schedule(stages: list[StageNode], executor: Executor, max_in_flight: int | None = None,
                 report: Callable[[str], None] = print) -> Outcome:
    """Run `stages` (topologically ordered) through `executor`; never raises for a failed stage."""
    outcome, total = Outcome(), len(stages)
    waiting = list(stages)
    blocked: set[str] = set()  # failed or skipped: their dependents cannot run
    in_flight = 0
    while waiting or in_flight:
        for stage in list(waiting):
            failed_upstream = sorted(stage.upstream & blocked)
            if failed_upstream:
                waiting.remove(stage)
                blocked.add(stage.name)
                outcome.skipped.append(stage.name)
                report(progress_line(outcome, total, f"{stage.name} skipped: needs {failed_upstream[0]}, "
                                                     "which failed or was skipped"))
            elif stage.upstream <= set(outcome.succeeded) and (max_in_flight is None or in_flight < max_in_flight):
                waiting.remove(stage)
                executor.submit(stage)
                in_flight += 1
        if not in_flight:
            break
        result = executor.wait_one()
        in_flight -= 1
        if result.ok:
            outcome.succeeded.append(result.stage)
        else:
            blocked.add(result.stage)
            outcome.failed.append(result.stage)
        report(progress_line(outcome, total, describe(result)))
        if not result.ok:
            report("\n".join("    " + line for line in result.tail.splitlines()))
    for stage in waiting:  # unreachable with a valid DAG; never leave a stage unaccounted for
        outcome.skipped.append(stage.name)
        report(progress_line(outcome, total, f"{stage.name} skipped: its upstream never finished"))
    return outcome

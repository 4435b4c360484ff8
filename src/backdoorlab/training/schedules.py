"""Learning-rate schedules as plain functions of the step number."""

from __future__ import annotations

import math
from typing import Callable

Schedule = Callable[[int], float]


def cosine(lr: float, total_steps: int) -> Schedule:
    """Cosine annealing from ``lr`` to 0 over ``total_steps`` (per step, not per epoch)."""
    return lambda step: 0.5 * lr * (1.0 + math.cos(math.pi * min(step, total_steps) / max(total_steps, 1)))


def with_warmup(schedule: Schedule, warmup_steps: int) -> Schedule:
    """Scale ``schedule`` by a linear ramp over the first ``warmup_steps`` steps.

    A large initial LR on a freshly initialised network can blow the first epoch up (loss above
    ln(classes) and a model that never recovers); ramping up from ``lr / warmup_steps`` avoids it
    on data the recipe was never tuned on, and costs nothing where it was not needed."""
    if warmup_steps <= 0:
        return schedule
    return lambda step: schedule(step) * min(1.0, (step + 1) / warmup_steps)


def constant(lr: float) -> Schedule:
    return lambda step: lr


def triangular(base_lr: float, peak_lr: float, half_cycle_steps: int) -> Schedule:
    """Linear up from ``base_lr`` to ``peak_lr`` in ``half_cycle_steps``, linear down, repeat."""

    def at(step: int) -> float:
        position = step % (2 * half_cycle_steps)
        rising = position if position < half_cycle_steps else 2 * half_cycle_steps - position
        return base_lr + (peak_lr - base_lr) * rising / half_cycle_steps

    return at


def phases(*parts: tuple[Schedule, int]) -> Schedule:
    """Chain schedules: each ``(schedule, steps)`` runs for ``steps``, its own step count from 0."""

    def at(step: int) -> float:
        for schedule, steps in parts:
            if step < steps:
                return schedule(step)
            step -= steps
        last, steps = parts[-1]
        return last(steps)

    return at

"""Calibrated defense instances: the strongest setting the defender's own held-out data allow.

Every defense trades backdoor removal against clean accuracy through one knob (its declared
``strength``). A fixed value chosen on one data set can wreck a model on another, and the defender
cannot measure removal (it has no triggered data), only what removal costs. So a calibrated
instance (``calibrate: {budget: 0.03}`` in params.yaml) runs the defense at values of the knob,
weakest first in the grid, and keeps the **strongest** whose accuracy on the defender's validation
split stays within ``budget`` of the undefended model's: Fine-Pruning's stopping rule,
generalised to any defense. Nothing but the validation accuracy enters the choice.

``search: bisect`` assumes accuracy falls as strength grows and finds the boundary in about
log2(grid) runs; ``search: grid`` runs every value (a complete curve, at the cost of one run per
value). A run whose training diverges (NaN loss) counts as outside the budget. If no value is
within budget, the weakest is kept and ``within_budget`` says so. Every method's default grid
starts at a near no-op (its :class:`~backdoorlab.defenses.base.Strength` ``floor``: D3's weakest
value also keeps the classifier instead of re-drawing it), so "not within budget" means that even
the weakest setting costs more than the budget on this defender's validation data.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping

import torch
from torch import nn

from backdoorlab.defenses.base import Defense, DefenseContext, DefenseOutcome
from backdoorlab.errors import TrainingDiverged
from backdoorlab.settings import parse_section, require


@dataclass(frozen=True)
class CalibrationSettings:
    """params.yaml's ``defenses.<name>.calibrate``."""

    budget: float = 0.03  # largest allowed drop of validation accuracy (absolute, vs the undefended model)
    knob: str | None = None  # default: the method's declared strength knob
    grid: list[Any] | None = None  # default: the method's grid, weakest first (checked as the knob's type)
    search: Literal["bisect", "grid"] = "bisect"

    def check(self, key: str) -> None:
        require(0 <= self.budget < 1, f"{key}.budget", f"must be in [0, 1), got {self.budget}")
        require(self.grid is None or len(self.grid) > 0, f"{key}.grid", "must name at least one value")


@dataclass(frozen=True)
class Calibration:
    """A resolved calibration: the knob, and one fully validated defense per grid value."""

    budget: float
    knob: str
    search: str
    candidates: list[tuple[float, Defense]]  # weakest first
    floor: dict[str, Any]  # the settings the weakest candidate runs with besides its knob value


def build_calibration(cls: type[Defense], section: Mapping[str, Any], key: str,
                      ignore: tuple[str, ...]) -> Calibration:
    """Parse ``section['calibrate']`` and build the defense at every grid value, so a grid value
    the method rejects fails at params-validation time, naming the key."""
    settings = parse_section(CalibrationSettings, section["calibrate"], f"{key}.calibrate")
    strength = cls.strength
    knob = settings.knob or (strength.knob if strength else None)
    require(knob is not None, f"{key}.calibrate.knob",
            f"method {section['method']!r} declares no strength knob: name one")
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    require(knob in fields, f"{key}.calibrate.knob",
            f"{knob!r} is not a parameter of {section['method']!r} (parameters: {', '.join(sorted(fields))})")
    require(knob not in section, f"{key}.{knob}", "is calibrated: set it in calibrate.grid, not here")
    default = strength is not None and knob == strength.knob and settings.grid is None
    grid = settings.grid if settings.grid is not None else (strength.grid if default else None)
    require(grid is not None, f"{key}.calibrate.grid", f"no default grid for knob {knob!r}: give one")
    floor = dict(strength.floor) if default else {}
    candidates = [(value, cls(parse_section(cls.Config, {**section, **(floor if i == 0 else {}), knob: value}, key,
                                            ignore=ignore)))
                  for i, value in enumerate(grid)]
    return Calibration(settings.budget, knob, settings.search, candidates, floor)


@dataclass
class CalibrationResult:
    outcome: DefenseOutcome
    chosen: float
    within_budget: bool
    # Every value run, in the order run: {"value", "val_acc", "diverged"}.
    evaluated: list[dict[str, Any]]


Accuracy = Callable[[nn.Module], float]
# Called with (knob value, defended model) after each run: lets the *stage* record test metrics
# for the report. The calibration itself never sees what it returns.
Observer = Callable[[float, nn.Module], None]


def calibrate(calibration: Calibration, model: nn.Module, ctx: DefenseContext, reference_acc: float,
              validation_accuracy: Accuracy, observe: Observer | None = None) -> CalibrationResult:
    """Run the defense at grid values on copies of ``model``; keep the strongest within budget.

    Every run starts from the same seed, so two values differ only by the knob."""
    seed = ctx.generator.initial_seed()
    runs: dict[int, tuple[float, DefenseOutcome | None]] = {}
    evaluated: list[dict[str, Any]] = []

    def run(index: int) -> bool:
        value, defense = calibration.candidates[index]
        torch.manual_seed(seed)
        trial_ctx = dataclasses.replace(ctx, generator=torch.Generator().manual_seed(seed),
                                        label=f"{ctx.label} [{calibration.knob}={value:g}]")
        try:
            outcome: DefenseOutcome | None = defense.apply(copy.deepcopy(model), trial_ctx)
            acc = validation_accuracy(outcome.model)
        except TrainingDiverged:
            outcome, acc = None, float("nan")
        runs[index] = (acc, outcome)
        evaluated.append({"value": value, "val_acc": acc, "diverged": outcome is None})
        if outcome is not None and observe is not None:
            observe(value, outcome.model)
        return outcome is not None and acc >= reference_acc - calibration.budget

    count = len(calibration.candidates)
    best: int | None = None
    if calibration.search == "grid":
        for index in range(count):
            if run(index):
                best = index
    else:  # bisect for the last index within budget, assuming accuracy falls with strength
        low, high = 0, count - 1
        while low <= high:
            middle = (low + high + 1) // 2
            if run(middle):
                best, low = middle, middle + 1
            else:
                high = middle - 1
    within = best is not None
    if best is None:  # nothing within budget: the weakest setting, flagged
        best = 0
        if best not in runs:
            run(best)
    acc, outcome = runs[best]
    if outcome is None:
        value = calibration.candidates[best][0]
        raise TrainingDiverged(f"{ctx.label}: training diverged at every calibration value, "
                               f"the weakest included ({calibration.knob}={value:g})")
    return CalibrationResult(outcome, calibration.candidates[best][0], within, evaluated)

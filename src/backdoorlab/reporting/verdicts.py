"""Where replicates meet: a cell's numbers over its seeds, their intervals, and its verdict.

Every cell runs once per seed (``grid.seeds``); a number in a table is the mean over the seeds with
a Student t-interval at ``report.confidence`` (n - 1 degrees of freedom). A single seed has no
interval, and its verdict says so.

A cell's verdict, a function of its seed distribution (``report.asr_removed`` is tau):

- ``collapsed``: at least half of its seeds were flagged by the defender's own check (validation
  accuracy kept less than ``utility.collapse_floor`` of the undefended model's accuracy above chance);
- ``removed``: the upper end of the ASR interval is at most tau;
- ``not removed``: the lower end of the ASR interval is above tau;
- ``inconclusive``: the interval straddles tau.

With one seed the point value decides, marked ``, 1 seed``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from scipy import stats


@dataclass(frozen=True)
class Interval:
    """The mean of ``values`` with a two-sided t-interval; ``half`` is None for one value."""

    values: tuple[float, ...]
    mean: float
    sd: float | None
    half: float | None

    @property
    def lo(self) -> float:
        return self.mean if self.half is None else self.mean - self.half

    @property
    def hi(self) -> float:
        return self.mean if self.half is None else self.mean + self.half


def interval(values: Sequence[float], confidence: float) -> Interval:
    n = len(values)
    mean = math.fsum(values) / n
    if n < 2:
        return Interval(tuple(values), mean, None, None)
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    return Interval(tuple(values), mean, sd, float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n))


def combined_error(values: Sequence[float], errors: Sequence[float]) -> float:
    """The standard error of the mean of per-seed estimates that each carry a sampling standard
    error (a bootstrap's): the seeds' own spread, but never less than their sampling noise alone
    (with three seeds the spread is itself a rough estimate)."""
    n = len(values)
    noise = math.fsum(e * e for e in errors) / n
    if n < 2:
        return math.sqrt(noise)
    mean = math.fsum(values) / n
    spread = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    return math.sqrt(max(spread, noise) / n)


def verdict(asr: Interval, collapsed: Sequence[bool], threshold: float) -> str:
    """The cell's verdict (module docstring)."""
    if 2 * sum(collapsed) >= len(collapsed):
        text = "collapsed"
    elif asr.hi <= threshold:
        text = "removed"
    elif asr.lo > threshold:
        text = "not removed"
    else:
        text = "inconclusive"
    return text if asr.half is not None else f"{text}, 1 seed"

"""Per-class diagnostics as a record's note: the few most telling classes, not all of them.

A defense or detector that scores every class (Neural Cleanse's mask norms, Activation
Clustering's cluster shares) notes the ``k`` classes at the telling end, keyed by class, so the
report's tables read the same on 10 classes as on 43 or 200.
"""

from __future__ import annotations

from typing import Sequence

SHOWN = 5  # classes a per-class note keeps


def extreme_classes(values: Sequence[float], smallest: bool, k: int = SHOWN, digits: int = 3) -> dict[str, float]:
    """The ``k`` classes with the smallest (or largest) values, in that order: ``{"<class>": value}``."""
    order = sorted(range(len(values)), key=lambda c: values[c], reverse=not smallest)
    return {str(c): round(float(values[c]), digits) for c in order[:k]}

"""What the paradigm stages (upstream, implant, downstream) share: their context and their tail."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from backdoorlab.config import Params, derive_seed
from backdoorlab.io import write_json
from backdoorlab.models.base import save_model
from backdoorlab.paradigms.base import ParadigmContext, Trained
from backdoorlab.pipeline.victims import load_splits, model_spec, regime_recipe


def paradigm_context(params: Params, seed: int, *names: str) -> ParadigmContext:
    """What a paradigm stage hands the paradigm; ``seed`` (the replicate, or the data seed for the
    shared pre-training and clean counterpart) and ``names`` (paradigm, attack) seed its streams."""
    splits = load_splits()
    return ParadigmContext(train=splits.train, shadow=splits.shadow, spec=model_spec(params),
                           recipe=regime_recipe(params, None), device=params.torch_device(), label="-".join(names),
                           seed=lambda *parts: derive_seed(seed, "paradigm", *names, *parts))


def save_trained(run: Callable[[], Trained], model_path: Path, record_path: Path, facts: dict[str, str],
                 label: str) -> None:
    """Run a paradigm's part, then save its model and a record of its notes and wall time."""
    started = time.perf_counter()
    trained = run()
    seconds = time.perf_counter() - started
    save_model(trained.model, model_path)
    write_json(record_path, {**facts, **trained.notes, "seconds": seconds})
    print(f"{label}: {trained.notes} ({seconds:.1f} s)")

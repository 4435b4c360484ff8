"""Stage `upstream@<paradigm>`: a paradigm's clean pre-training (a source-task model, a SimCLR encoder).

    python stages/upstream.py <paradigm>

Cached on its own: a change to an attack, the victim's downstream training or a defense never
re-runs it. Writes models/<paradigm>/upstream.safetensors and a record of what the pre-training
reached and took.
"""

from __future__ import annotations

import time

from backdoorlab.config import load_params
from backdoorlab.io import write_json
from backdoorlab.models import save_model
from backdoorlab.workspace import (paradigm_context, paradigm_records, require_known, run_stage, stage_arguments,
                                   upstream_file)


def main() -> None:
    name = stage_arguments(__doc__, "paradigm").paradigm
    params = load_params()
    require_known(params, paradigm=name)
    started = time.perf_counter()
    trained = params.paradigms[name].pretrain(paradigm_context(params, name))
    seconds = time.perf_counter() - started
    save_model(trained.model, upstream_file(name))
    write_json(paradigm_records("upstream", name), {"paradigm": name, **trained.notes, "seconds": seconds})
    print(f"upstream {name}: {trained.notes} ({seconds:.1f} s)")


if __name__ == "__main__":
    run_stage(main)

"""Stage `upstream@<paradigm>`: a paradigm's clean pre-training (a source-task model, a SimCLR encoder).

    python stages/upstream.py <paradigm>

Cached on its own, and shared by every replicate (seeded by the data seed, like the shadow
models): a change to an attack, the victim's downstream training or a defense never re-runs it.
Writes models/<paradigm>/upstream.safetensors and a record of what the pre-training reached and took.
"""

from __future__ import annotations

from backdoorlab.config import load_params
from backdoorlab.layout import paradigm_records, upstream_file
from backdoorlab.pipeline.cli import require_known, run_stage, stage_arguments
from backdoorlab.pipeline.paradigm import paradigm_context, save_trained
from backdoorlab.pipeline.victims import paradigm


def main() -> None:
    name = stage_arguments(__doc__, "paradigm").paradigm
    params = load_params()
    require_known(params, paradigm=name)
    method, ctx = paradigm(params, name), paradigm_context(params, params.seed, name)
    save_trained(lambda: method.pretrain(ctx), upstream_file(name), paradigm_records("upstream", name),
                 {"paradigm": name}, label=f"upstream {name}")


if __name__ == "__main__":
    run_stage(main)

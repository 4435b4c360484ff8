"""Stage `landscape@<attack>`: clean and poisoned loss along the line from the backdoored model
through each defended one (the D3 paper's diagnostic), for the first seed's models.

    python stages/landscape.py <attack> [--seed N]

Reads params.yaml's ``landscape`` section (which defenses, how many points on t in [0, t_max],
how many test images per loss); every listed defense must already have been applied to this
attack (its `defend` cell). Writes one TSV row per (defense, t) and one figure with a panel per
defense.
"""

from __future__ import annotations

from backdoorlab.config import load_params
from backdoorlab.io import write_table
from backdoorlab.layout import landscape_file, model_file
from backdoorlab.models.base import load_model
from backdoorlab.pipeline.cli import replicate, require_known, run_stage, stage_arguments
from backdoorlab.pipeline.victims import load_splits, model_spec, triggered_test
from backdoorlab.reporting.panels import line_panels
from backdoorlab.reporting.landscape import LandscapeSettings, first, loss_path
from backdoorlab.settings import parse_section


def main() -> None:
    args = stage_arguments(__doc__, "attack", seeded=True)
    params = load_params()
    attack_name, seed = args.attack, replicate(params, args.seed)
    require_known(params, attack=attack_name)
    settings = parse_section(LandscapeSettings, params.section("landscape"), "landscape")
    for name in settings.defenses:
        require_known(params, defense=name)
    device = params.torch_device()
    spec = model_spec(params)
    test = load_splits().test
    triggered = first(triggered_test(params, attack_name, seed, test), settings.samples)
    test = first(test, settings.samples)
    backdoored = load_model(spec, model_file(attack_name, seed, "backdoored")).to(device)
    rows, curves = [], []
    for name in settings.defenses:
        defended = load_model(spec, model_file(attack_name, seed, name)).to(device)
        path = loss_path(backdoored, defended, test, triggered, settings.ts(), device)
        rows += [{"defense": name, **{k: round(v, 5) for k, v in row.items()}} for row in path]
        ts = [row["t"] for row in path]
        curves.append({"clean loss": (ts, [row["clean_loss"] for row in path]),
                       "poisoned loss": (ts, [row["poisoned_loss"] for row in path])})
    write_table(landscape_file(params, attack_name, "tsv"), rows, delimiter="\t")
    # Log scale: past t = 1 the poisoned loss of a far-moving defense (D3) grows by decades.
    line_panels(landscape_file(params, attack_name, "png"),
                [f"{attack_name}: backdoored (t=0) -> {name} (t=1)" for name in settings.defenses],
                "t", "cross-entropy", curves, log_y=True)


if __name__ == "__main__":
    run_stage(main)

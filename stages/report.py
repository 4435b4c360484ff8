"""Stage `report`: every cell -> the headline metrics, paper-style tables and figures.

    python stages/report.py                    # the default run's cells -> reports/
    python stages/report.py --scope attacks    # every attack x the default run's defenses -> reports/attacks/
    python stages/report.py --scope full       # every cell of the full matrix -> reports/full/
    python stages/report.py --scope paradigms  # the transfer and encoder paradigms -> reports/paradigms/
    python stages/report.py --scope regimes    # the training regimes' victims -> reports/regimes/

Where the replicates meet: every number is the mean over a cell's seeds with its interval, and
every cell gets a verdict (removed, not removed, inconclusive, collapsed: reporting/verdicts.py).
``reports/summary.json`` holds the headline (CA / ASR with their intervals, DER, seeds, verdict per
cell) that ``dvc exp show`` and ``dvc metrics diff`` read; ``reports/tables/cells.csv`` every number
of every cell over its seeds, ``cells_by_seed.csv`` every seed's; ``tables/membership`` each main
cell's generalisation gap beside the lead membership attack's numbers (RMIA), with standard errors,
and ``tables/membership_other`` the other membership attacks'; the Markdown tables and PNG figures
are for reading.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.container import BarContainer

from backdoorlab.config import (SCOPES, Params, Scope, check_full_grid, check_paradigm_grid, check_regime_grid,
                                load_params)
from backdoorlab.io import read_json, write_json, write_text
from backdoorlab.layout import (RECORDS, REPORTS, cell_dir, landscape_file, paradigm_records, regime_records,
                                trigger_preview_file)
from backdoorlab.pipeline.cli import OneLineParser, run_stage
from backdoorlab.pipeline.victims import regime_recipe, regime_settings
from backdoorlab.reporting.figures import grouped_bars, save
from backdoorlab.reporting.matrix_figures import heatmaps, tradeoff
from backdoorlab.reporting.panels import line_panels, panels
from backdoorlab.reporting.index import write_index
from backdoorlab.reporting.sequela_figures import mia_auc_figure, reinjection_figures, robust_accuracy_figures
from backdoorlab.reporting.summary import (Record, SequelaResults, baseline_records, calibration_trials,
                                           collect_cells, headline, is_headline, paradigm_rows, reinject_baselines,
                                           sequela_by_seed, sequela_deltas, sequela_means, training_times)
from backdoorlab.reporting.tables import (calibration_table, cost_table, defender_table, detail_table,
                                          detection_table, main_table, membership_table, paradigm_table,
                                          sequela_table, write_frame, write_sequela_table)
from backdoorlab.reporting.uncertainty import Uncertainty, membership_uncertainty, seed_spread_uncertainty
from backdoorlab.sequela.base import SequelaSettings, parse_sequela


def defense_bars(attacks: list[str], main: list[str], records: dict[str, Record], path: Path) -> None:
    """CA and ASR per main defense (means over seeds, with their intervals); a collapsed cell's bars
    are hatched and its label says so."""
    figure, axes = panels(len(attacks), width=max(5.0, 0.45 * len(main)))
    for ax, attack in zip(axes, attacks):
        cells = [records[f"{attack}-{d}"] for d in main]
        labels = [f"{d} (collapsed)" if c["collapsed"] else d for d, c in zip(main, cells)]
        grouped_bars(ax, labels, {"CA": [c["ca"] for c in cells], "ASR": [c["asr"] for c in cells]}, "fraction",
                     errors={key: [c[f"{key.lower()}_half"] or 0.0 for c in cells] for key in ("CA", "ASR")})
        for container in (c for c in ax.containers if isinstance(c, BarContainer)):
            for bar, cell in zip(container, cells):
                if cell["collapsed"]:
                    bar.set_hatch("///")
        ax.set_ylim(0, 1.05)
        ax.set_title(attack)
    save(figure, path)


LEAD_MEMBERSHIP_METHOD = "mia_rmia"  # the strongest membership attack here: its table comes first


def lead_membership_instances(params: Params) -> set[str]:
    """The sequela instances that run the lead membership attack (``sequela.attacks.<name>.method``)."""
    return {name for name, section in (params.section("sequela").get("attacks") or {}).items()
            if isinstance(section, dict) and section.get("method") == LEAD_MEMBERSHIP_METHOD}


def sequela_report(settings: SequelaSettings, attacks: list[str], main: list[str], sequela: SequelaResults,
                   deltas: SequelaResults, errors: Uncertainty, baselines: dict[str, dict[str, float]],
                   records: dict[str, Record], tables: Path, figures: Path, lead: set[str]) -> None:
    """Per attack a table (Markdown and CSV) of every sequela metric; the membership tables (the
    ``lead`` instances first, the other membership attacks in a second table); the sequela figures."""
    for attack in attacks:
        write_sequela_table(sequela_table(sequela[attack], deltas[attack], main, baselines[attack], errors[attack]),
                            tables / f"sequela_{attack}", f"Backdoor sequela, {attack}")
    headline_key = partial(is_headline, settings)

    def leads(key: str) -> bool:
        return headline_key(key) and key.partition(".")[0] in lead

    def others(key: str) -> bool:
        return headline_key(key) and key.partition(".")[0] not in lead

    write_frame(membership_table(records, sequela, deltas, errors, attacks, main, leads), tables / "membership")
    write_frame(membership_table(records, sequela, deltas, errors, attacks, main, others), tables / "membership_other")
    mia_auc_figure(figures / "sequela_mia_auc.png", attacks, main, sequela, deltas, errors, headline_key)
    robust_accuracy_figures(figures, attacks, main, sequela)
    reinjection_figures(figures, attacks, main, sequela, baselines)


def calibration_figures(params: Params, attacks: list[str], cells: list[str],
                        trials: dict[str, dict[str, dict[int, dict[str, Any]]]], records: dict[str, Record],
                        figures: Path) -> None:
    """Per calibrated instance, for its first seed: the defender's validation accuracy (what chose)
    and the test CA and ASR (what it would have wanted to know) against the knob, the budget line,
    the chosen value, and every fixed instance of the same method at its own knob value (its mean
    test ASR over seeds)."""
    instances = sorted({name for by_attack in trials.values() for name in by_attack})
    for instance in instances:
        panels_data, titles, knob = [], [], ""
        for attack in attacks:
            seed, record = next(iter(trials[attack][instance].items()))
            knob = record["knob"]
            points = sorted((t for t in record["trials"] if not t["diverged"]), key=lambda t: t["value"])
            xs = [t["value"] for t in points]
            panel = {"validation acc (defender)": (xs, [t["val_acc"] for t in points]),
                     "test CA": (xs, [t["ca"] for t in points]), "test ASR": (xs, [t["asr"] for t in points])}
            cell = read_json(cell_dir(params, attack, instance, seed) / "defense.json")
            panel["budget (val acc floor)"] = ([min(xs), max(xs)], [cell["val_acc_before"] - record["budget"]] * 2)
            for fixed in cells:
                other = records[f"{attack}-{fixed}"]
                strength = other.get("strength")
                if other["method"] == cell["method"] and not other.get("calibrated") and strength:
                    panel[f"{fixed}: test ASR"] = ([strength["value"]], [other["asr"]])
            panels_data.append(panel)
            titles.append(f"{attack} (seed {seed}): {instance} chose {knob}={record['chosen']:g}")
        line_panels(figures / f"calibration_{instance}.png", titles, knob, "fraction", panels_data,
                    log_x=all(v > 0 for p in panels_data for v in p["test CA"][0]))


TITLES = {"default": "the default run", "attacks": "every attack against the default run's defenses",
          "full": "the full matrix", "paradigms": "the transfer and encoder paradigms",
          "regimes": "the training regimes"}
OUT_DIRS = {"default": REPORTS, "attacks": REPORTS / "attacks", "full": REPORTS / "full",
            "paradigms": REPORTS / "paradigms", "regimes": REPORTS / "regimes"}


def paradigm_report(params: Params, records: dict[str, Record], main: list[str], tables: Path, figures: Path) -> None:
    """The paradigms' own table (victims against their clean counterparts), then per paradigm the
    main table (attacks x defenses) and the CA / ASR figure."""
    write_frame(paradigm_table(paradigm_rows(params)), tables / "paradigms")
    for paradigm in params.grid.paradigms:
        victims = [f"{paradigm}-{attack}" for attack in params.grid.paradigm_attacks]
        write_frame(main_table(records, victims, main), tables / f"main_{paradigm}")
        defense_bars(victims, main, records, figures / f"defenses_ca_asr_{paradigm}.png")


def clean_model_fact(params: Params, scope: Scope) -> str:
    """What the same training without the attack reaches: the yardstick of each victim's CA."""
    if scope == "paradigms":
        cas = ", ".join(f"{paradigm} {read_json(paradigm_records('counterpart', paradigm))['ca']:.1%}"
                        for paradigm in params.grid.paradigms)
        return (f"Clean counterparts (the victim's training from the clean upstream on clean data, stage "
                f"`counterpart`): CA {cas}; each victim's undefended model is its `none` column.")
    if scope == "regimes":
        facts = []
        for regime in params.grid.regimes:
            settings, shadow = regime_settings(params, regime), read_json(regime_records(regime) / "shadow.json")["models"]
            recipe = settings.train
            facts.append(
                f"Regime `{regime}`: {settings.train_size:,} training images, {recipe.epochs} epochs, augmentation "
                f"crop {recipe.augment.crop_padding} / flip {recipe.augment.hflip}; its model trained without poison: "
                f"CA {read_json(regime_records(regime) / 'baseline' / 'clean_model.json')['ca']:.1%}; its "
                f"{len(shadow)} shadow models: train / held-out accuracy "
                f"{sum(m['train_acc'] for m in shadow) / len(shadow):.1%} / {sum(m['test_acc'] for m in shadow) / len(shadow):.1%}.")
        return " ".join(facts)
    return (f"Model trained without poison (stage `train_clean`, same recipe): CA "
            f"{read_json(RECORDS / 'baseline' / 'clean_model.json')['ca']:.1%}; each attack's undefended model is "
            "its `none` column.")


def has_matrix_figures(scope: Scope, cells: list[str]) -> bool:
    """Whether a report draws the attack x defense heatmaps and the trade-off figure: their CA cost is
    against the undefended model, so they need ``none``; the paradigms' victims each have their own
    clean counterpart instead (their own figures)."""
    return scope != "paradigms" and "none" in cells


def index(params: Params, out: Path, scope: Scope, attacks: list[str], cells: list[str],
          trials: dict[str, dict[str, Any]], records: dict[str, Record]) -> str:
    """The run at a glance: what ran, the headline tables, the main figures, links to the rest."""
    data = read_json(RECORDS / "data.json")
    sizes = data["sizes"]
    defenders = {}  # one per task: the paradigms' victims may have fewer classes than the data set
    for attack in attacks:
        record = read_json(cell_dir(params, attack, "none", params.grid.seeds_of(attack, "none")[0]) / "defense.json")
        defenders.setdefault(f"{record['fit_samples']} images to train on and {record['validation_samples']} "
                             "held out for validation", []).append(attack)
    holds = "; ".join(f"{text} ({', '.join(victims)})" if len(defenders) > 1 else text
                      for text, victims in defenders.items())
    recipe = regime_recipe(params, None)
    replicated = sorted({r["n_seeds"] for r in records.values()}, reverse=True)
    test_split = "the data set's official test part" if data["split"] == "official" else "drawn from the pooled data"
    facts = [f"Data: `{data['dataset']}`, {sizes['train']:,} training / {sizes['test']:,} test / "
             f"{sizes['shadow']:,} shadow images, {data['num_classes']} classes (split `{data['split']}`: test images "
             f"{test_split}; split seed {params.seed}).",
             f"Model: `{params.model_arch}` ({', '.join(f'{k} {v}' for k, v in params.model_params.items() if k != 'arch')}), "
             f"{'trained as its regime says (below)' if scope == 'regimes' else f'{recipe.epochs} epochs'}, "
             f"precision {recipe.precision}.",
             f"Seeds: {', '.join(map(str, params.grid.seeds))} (`grid.seeds`); every number is the mean over a cell's "
             f"seeds ({' or '.join(map(str, replicated))} here) with its {params.report.confidence:.0%} t-interval "
             f"(± half-width), and every cell a verdict: removed when the interval's upper end of ASR is at most "
             f"{params.report.asr_removed:.0%}, not removed when its lower end is above it, inconclusive otherwise, "
             f"collapsed when at least half of the seeds were flagged. A cell of one seed says `1 seed`.",
             f"Defender: {params.data.defense_fraction:.0%} of the training data, {holds}; a cell is "
             f"`collapsed` below {params.utility.collapse_floor:.0%} of its validation accuracy above chance.",
             f"{'Victims' if scope == 'paradigms' else 'Attacks'}: {', '.join(attacks)}; "
             f"defense instances: {', '.join(cells)}.",
             clean_model_fact(params, scope)]
    tables = {"CA / ASR (%) per attack and defense": (out / "tables" / "main.md").read_text(),
              "What the defender saw: validation accuracy (%) before -> after": (out / "tables" / "defender.md").read_text()}
    tables["Membership inference per cell, RMIA: gap = accuracy on members - non-members (%); AUC and TPR ± SE "
           "(change against `none` ± paired SE); the other attacks in tables/membership_other.md"] = \
        (out / "tables" / "membership.md").read_text()
    figures = [(out / "figures" / "defenses_ca_asr.png", "CA and ASR per defense")]
    if has_matrix_figures(scope, cells):
        figures += [(out / "figures" / "matrix_asr_ca_cost.png", "every attack x defense: ASR and CA cost, with verdicts"),
                    (out / "figures" / "tradeoff_ca_asr.png", "CA cost against ASR, per defense")]
    if scope == "full" and params.grid.cleansers:
        tables["Training-time defenses: detection precision / recall (%) against the true poison"] = \
            (out / "tables" / "detection.md").read_text()
        tables["Cost: wall time per defense, against the backdoored model's training"] = \
            (out / "tables" / "cost.md").read_text()
    if scope == "paradigms":
        tables = {"Each victim before defense, against its clean counterpart": (out / "tables" / "paradigms.md").read_text(),
                  **{f"CA / ASR (%), {paradigm}": (out / "tables" / f"main_{paradigm}.md").read_text()
                     for paradigm in params.grid.paradigms},
                  "What the defender saw: validation accuracy (%) before -> after": (out / "tables" / "defender.md").read_text()}
        figures = [(out / "figures" / f"defenses_ca_asr_{paradigm}.png", f"CA and ASR per defense, {paradigm}")
                   for paradigm in params.grid.paradigms]
    figures += [(out / "figures" / f"calibration_{name}.png", f"calibration of {name}")
                for name in sorted({n for by_attack in trials.values() for n in by_attack})]
    drawn = [] if scope in ("paradigms", "regimes") else attacks  # landscapes and trigger previews: the standalone attacks'
    figures += [(landscape_file(params, attack, "png"), f"loss landscape, {attack} (first seed)") for attack in drawn]
    figures += [(out / "figures" / "sequela_reinjection_reinject.png", "re-injection"),
                (out / "figures" / "sequela_mia_auc.png", "membership inference")]
    return write_index(out / "README.md", title=f"backdoorlab results: {TITLES[scope]}", facts=facts, tables=tables, figures=figures,
                       table_dir=out / "tables",
                       figure_dirs=[out / "figures", *sorted({landscape_file(params, a, "png").parent for a in drawn}),
                                    *sorted({trigger_preview_file(params, a, params.grid.seeds[0]).parent for a in drawn})],
                       raw_params=params.raw)


def check_scope(params: Params, scope: Scope) -> None:
    """The lists a scope reads name defined instances (the default run's are checked on load)."""
    if scope in ("attacks", "full"):
        check_full_grid(params)
    elif scope == "paradigms":
        check_paradigm_grid(params)
    elif scope == "regimes":
        check_regime_grid(params)


def main() -> None:
    parser = OneLineParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--scope", choices=SCOPES, default="default",
                        help="default: the default run; attacks: grid.more_attacks too; full: and grid.more_defenses; "
                             "paradigms: the transfer and encoder victims; regimes: the training regimes' victims")
    scope = parser.parse_args().scope
    params = load_params()
    check_scope(params, scope)
    settings = parse_sequela(params.section("sequela"))
    out = OUT_DIRS[scope]
    tables, figures = out / "tables", out / "figures"
    attacks, cells, main = params.grid.attack_list(scope), params.grid.cells(scope), params.grid.main_cells(scope)
    by_seed = sequela_by_seed(params, scope)
    sequela, deltas, baselines = sequela_means(by_seed), sequela_deltas(by_seed), reinject_baselines(params, scope)
    records, per_seed = collect_cells(params, settings, sequela, deltas, scope)
    errors = membership_uncertainty(params, settings, scope, by_seed)
    for attack, by_defense in seed_spread_uncertainty(by_seed).items():  # the rest: the seeds' spread
        for defense, by_key in by_defense.items():
            errors[attack][defense] = {**by_key, **errors[attack].get(defense, {})}
    for attack, by_defense in errors.items():  # the headline numbers' standard errors, beside them in cells.csv
        for defense, by_key in by_defense.items():
            for key, (error, change_error) in by_key.items():
                if is_headline(settings, key):
                    records[f"{attack}-{defense}"].update({f"se.{key}": error, f"delta_se.{key}": change_error})
    trained = training_times(params, scope)
    for record in records.values():  # the cost argument: a defense's time against the training's
        record["cost_vs_training"] = record["seconds"] / trained[record["attack"]]
    write_json(out / "summary.json", headline(params, records, scope))

    write_frame(main_table(records, attacks, main), tables / "main")
    write_frame(defender_table(records, attacks, main), tables / "defender")
    notes = sorted({k for r in records.values() for k in r if k.startswith("note.")})
    sequela_keys = sorted({k for r in records.values() for k in r if k.startswith(("sequela.", "delta.", "se.", "delta_se."))})
    write_frame(detail_table({**records, **baseline_records(settings, baselines)}, [*notes, *sequela_keys]),
                tables / "cells")
    write_frame(pd.DataFrame(per_seed).set_index(["attack", "defense", "seed"]).round(4), tables / "cells_by_seed")
    if scope == "full" and params.grid.cleansers:
        write_frame(detection_table(records, attacks, params.grid.cleansers), tables / "detection")
        write_frame(cost_table(records, cells), tables / "cost")
    trials = calibration_trials(params, scope)
    if any(trials.values()):
        write_frame(calibration_table(trials), tables / "calibration")
        calibration_figures(params, attacks, cells, trials, records, figures)

    defense_bars(attacks, main, records, figures / "defenses_ca_asr.png")
    if has_matrix_figures(scope, cells):
        heatmaps(figures / "matrix_asr_ca_cost.png", attacks, cells, records)
        tradeoff(figures / "tradeoff_ca_asr.png", attacks, cells, records)
    if scope == "paradigms":
        paradigm_report(params, records, main, tables, figures)
    sequela_report(settings, attacks, main, sequela, deltas, errors, baselines, records, tables, figures,
                   lead_membership_instances(params))
    write_text(out / "README.md", index(params, out, scope, attacks, cells, trials, records))
    print(f"report: {len(records)} cells -> {out}/summary.json, {tables}/, {figures}/")


if __name__ == "__main__":
    run_stage(main)

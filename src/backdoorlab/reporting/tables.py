"""Paper-style tables as pandas frames, written as Markdown and CSV."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable

import pandas as pd

from backdoorlab.io import write_text
from backdoorlab.reporting.summary import Record


def write_frame(frame: pd.DataFrame, stem: Path) -> None:
    """``stem.md`` (for humans and the README) and ``stem.csv`` (for scripts)."""
    write_text(stem.with_suffix(".csv"), frame.to_csv())
    write_text(stem.with_suffix(".md"), frame.to_markdown() + "\n")


def percent(value: float) -> str:
    return f"{100 * value:.1f}"


def with_interval(record: Record, key: str) -> str:
    """The mean over seeds in percent, ``± half-width`` of its interval when there are several seeds."""
    half = record.get(f"{key}_half")
    return percent(record[key]) if half is None or pd.isna(half) else f"{percent(record[key])} ± {percent(half)}"


def ca_asr(record: Record) -> str:
    """``CA / ASR`` in percent with their intervals, then the cell's verdict (collapsed, removed, ...)."""
    return f"{with_interval(record, 'ca')} / {with_interval(record, 'asr')} ({record['verdict']})"


def main_table(records: dict[str, Record], attacks: Iterable[str], defenses: Iterable[str]) -> pd.DataFrame:
    """Rows attacks, columns defenses, each cell ``CA ± h / ASR ± h (verdict)`` in percent: the mean over
    the cell's seeds, the half-width of its interval, and the verdict (reporting/verdicts.py)."""
    defenses = list(defenses)
    rows = {attack: {d: ca_asr(records[f"{attack}-{d}"]) for d in defenses} for attack in attacks}
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=defenses)
    frame.index.name = "attack (CA / ASR %)"
    return frame


def defender_table(records: dict[str, Record], attacks: Iterable[str], defenses: Iterable[str]) -> pd.DataFrame:
    """What the defender saw: validation accuracy before -> after in percent, the calibrated value,
    and the collapse flag (the main table's twin, from the defender's held-out data only)."""
    defenses = list(defenses)

    def cell(record: Record) -> str:
        text = f"{percent(record['val_acc_before'])} -> {with_interval(record, 'val_acc')}"
        if record.get("calibrated"):
            share = record["within_budget"]
            budget = "" if share == 1 else ", over budget" if share == 0 else f", within budget in {share:.0%}"
            text += f" ({record['calibrated']}{budget})"
        return f"{text} (collapsed in {record['collapsed_seeds']} of {record['n_seeds']})" if record["collapsed_seeds"] else text

    rows = {attack: {d: cell(records[f"{attack}-{d}"]) for d in defenses} for attack in attacks}
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=defenses)
    frame.index.name = "attack (validation acc %)"
    return frame


def detail_table(records: dict[str, Record], keys: Iterable[str]) -> pd.DataFrame:
    """One row per cell: the number of seeds and the verdict; CA, ASR, RA, DER and the defender's
    validation accuracy before and after, each as its mean over seeds, spread (``_sd``), interval
    (``_lo``, ``_hi``) and per-seed values (``_seeds``); the seeds flagged collapsed, the calibrated
    values, wall time (also as a share of the backdoored model's training time) and the given keys."""
    stats = [f"{key}{part}" for key in ("ca", "asr", "ra", "der", "val_acc_before", "val_acc", "val_retained")
             for part in ("", "_sd", "_lo", "_hi", "_seeds")]
    columns = ["n_seeds", "seeds", "verdict", *stats, "collapsed_seeds", "calibrated", "within_budget", "seconds",
               "cost_vs_training", *keys]
    frame = pd.DataFrame([{c: r.get(c) for c in ["attack", "defense", *columns]} for r in records.values()])
    return frame.set_index(["attack", "defense"]).round(4)


def calibration_table(trials: dict[str, dict[str, dict[int, dict]]]) -> pd.DataFrame:
    """One row per (attack, calibrated instance, seed, value run): the defender's validation accuracy
    (what chose), and the test CA / ASR (for the reader only), with the chosen value marked."""
    rows = []
    for attack, instances in trials.items():
        for instance, by_seed in instances.items():
            for seed, record in by_seed.items():
                for trial in sorted(record["trials"], key=lambda t: t["value"]):
                    rows.append({"attack": attack, "defense": instance, "seed": seed, "knob": record["knob"],
                                 "value": trial["value"], "val_acc": trial["val_acc"], "test ca": trial["ca"],
                                 "test asr": trial["asr"], "chosen": "yes" if trial["value"] == record["chosen"] else "",
                                 "budget": record["budget"]})
    return pd.DataFrame(rows).set_index(["attack", "defense", "seed"]).round(4) if rows else pd.DataFrame()


def metric_order(key: str) -> tuple[str, str, float]:
    """Sort ``<instance>.<name>@<x>`` by instance, name, then x as a number (5 before 20)."""
    instance, _, metric = key.partition(".")
    name, at, x = metric.partition("@")
    return instance, name, float(x) if at else 0.0


def sequela_table(results: dict[str, dict[str, float]], deltas: dict[str, dict[str, float]], defenses: Iterable[str],
                  baseline: dict[str, float], errors: dict[str, dict[str, tuple[float, float]]]) -> pd.DataFrame:
    """One attack: defenses as rows, every sequela metric as ``<metric> after`` and ``<metric> delta``
    (after - before, before being the undefended model ``none`` of the same seed; means over seeds),
    with ``after_se`` and ``delta_se`` where ``errors`` has standard errors (cells of two or more seeds);
    a last row ``clean_model`` holds the re-injection numbers of the model trained without poison
    (no delta: it has no "before")."""
    rows = {}
    for defense in defenses:
        row = {}
        for metric in sorted(results[defense], key=metric_order):
            row[f"{metric} after"] = round(results[defense][metric], 4)
            if metric in errors.get(defense, {}):
                row[f"{metric} after_se"] = round(errors[defense][metric][0], 4)
            row[f"{metric} delta"] = round(deltas[defense][metric], 4)
            if metric in errors.get(defense, {}) and defense != "none":
                row[f"{metric} delta_se"] = round(errors[defense][metric][1], 4)
        rows[defense] = row
    rows["clean_model"] = {f"{metric} after": round(value, 4) for metric, value in baseline.items()}
    frame = pd.DataFrame.from_dict(rows, orient="index")
    parts = ("after", "after_se", "delta", "delta_se")
    frame = frame[sorted(frame.columns, key=lambda c: (metric_order(c.rsplit(" ", 1)[0]), parts.index(c.rsplit(" ", 1)[1])))]
    frame.index.name = "defense"
    return frame


def with_error(value: float, error: float | None, signed: bool = False) -> str:
    """``0.612 ± 0.018`` (``+`` shown when ``signed``), or the value alone without an error."""
    text = f"{value:+.3f}" if signed else f"{value:.3f}"
    return text if error is None or pd.isna(error) else f"{text} ± {error:.3f}"


def write_sequela_table(frame: pd.DataFrame, stem: Path, title: str) -> None:
    """CSV with every column; Markdown with one section per sequela instance and one column per
    metric, each cell ``after (delta)``, with ``± standard error`` where there is one (a single table
    of everything would be too wide to read)."""
    write_text(stem.with_suffix(".csv"), frame.to_csv())
    metrics = list(dict.fromkeys(c.rsplit(" ", 1)[0] for c in frame.columns))
    parts = [f"# {title}\n\nEach cell: `after (delta)`, after = the defended model, "
             "delta = after - before (the undefended model `none` of the same seed), means over seeds; "
             "`clean_model`: trained without poison. `± x`: standard error of the mean over seeds: their spread "
             "(of the delta: of the per-seed changes); for membership inference at least the bootstrap's, "
             "paired for the delta (the same resampled members and non-members for both models)."]
    for instance in dict.fromkeys(m.partition(".")[0] for m in metrics):
        section = {}
        for metric in (m for m in metrics if m.partition(".")[0] == instance):
            column = {part: frame.get(f"{metric} {part}", pd.Series(index=frame.index, dtype=float))
                      for part in ("after", "after_se", "delta", "delta_se")}
            section[metric.partition(".")[2]] = [
                "" if pd.isna(a) else with_error(a, ae) if pd.isna(d)
                else f"{with_error(a, ae)} ({with_error(d, de, signed=True)})"
                for a, ae, d, de in zip(*column.values())]
        table = pd.DataFrame(section, index=frame.index)
        table = table[(table != "").any(axis=1)]
        parts.append(f"## {instance}\n\n{table.to_markdown()}")
    write_text(stem.with_suffix(".md"), "\n\n".join(parts) + "\n")


def membership_table(records: dict[str, Record], results: dict[str, dict[str, dict[str, float]]],
                     deltas: dict[str, dict[str, dict[str, float]]],
                     errors: dict[str, dict[str, dict[str, tuple[float, float]]]], attacks: Iterable[str],
                     defenses: Iterable[str], headline: Callable[[str], bool]) -> pd.DataFrame:
    """One row per (attack, main defense): CA / ASR, the generalisation gap (accuracy on the
    evaluation members minus non-members) and every membership number ``headline`` selects, with
    its standard error, then its change against ``none`` with the paired standard error."""
    rows = []
    for attack in attacks:
        for defense in defenses:
            record, numbers, error = records[f"{attack}-{defense}"], results[attack][defense], errors[attack][defense]
            row: dict[str, Any] = {"cell": f"{attack}-{defense}", "CA / ASR %": ca_asr(record)}
            row.update({f"{name.replace('_', ' ')} %": f"{100 * numbers[key]:.1f}"
                        for name in ("train_acc", "test_acc", "gap")
                        for key in numbers if key.endswith(f".{name}")})
            for key in (k for k in error if headline(k)):
                text = with_error(numbers[key], error[key][0])
                change = with_error(deltas[attack][defense][key], error[key][1], signed=True)
                row[key] = text if defense == "none" else f"{text} ({change})"
            rows.append(row)
    return pd.DataFrame(rows).set_index("cell")


def paradigm_table(rows: list[Record]) -> pd.DataFrame:
    """One row per paradigm victim: its clean counterpart's CA, what the attacker measured on the
    upstream it published (a backdoored source model's own CA / ASR before transfer, or BadEncoder's
    embedding alignment), and the deployed model's CA / ASR: how much of the backdoor survived the
    victim's own training, and what it cost. A column another paradigm's implant does not record
    is left blank."""
    return pd.DataFrame(rows).set_index("victim").round(4).astype(object).fillna("")


def detection_table(records: dict[str, Record], attacks: Iterable[str], cleansers: Iterable[str]) -> pd.DataFrame:
    """Rows attacks, columns training-time defenses: ``precision / recall`` of the samples each
    flagged (isolated, for ABL), in percent, against the true poison (computed by the stage for
    the report; the defense never sees it)."""
    cleansers = list(cleansers)

    def cell(record: Record) -> str:
        return (f"{percent(record['note.precision'])} / {percent(record['note.recall'])} "
                f"({record['note.flagged']} flagged)")

    rows = {attack: {c: cell(records[f"{attack}-{c}"]) for c in cleansers} for attack in attacks}
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=cleansers)
    frame.index.name = "attack (precision / recall %)"
    return frame


def cost_table(records: dict[str, Record], defenses: Iterable[str]) -> pd.DataFrame:
    """Per defense instance, over the attacks: median and largest wall time, and the median as a
    share of the backdoored model's training time (the paper's cost argument: fine-tuning against
    retraining from scratch)."""
    rows = {}
    for defense in defenses:
        cells = [r for r in records.values() if r["defense"] == defense]
        seconds = pd.Series([r["seconds"] for r in cells])
        rows[defense] = {"median seconds": round(seconds.median(), 1), "max seconds": round(seconds.max(), 1),
                         "x training (median)": round(pd.Series([r["cost_vs_training"] for r in cells]).median(), 2)}
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "defense"
    return frame

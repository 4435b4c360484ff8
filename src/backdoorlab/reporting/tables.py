"""Paper-style tables as pandas frames, written as Markdown and CSV."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import pandas as pd

from backdoorlab.io import write_text
from backdoorlab.reporting.summary import Record


def write_frame(frame: pd.DataFrame, stem: Path) -> None:
    """``stem.md`` (for humans and the README) and ``stem.csv`` (for scripts)."""
    write_text(stem.with_suffix(".csv"), frame.to_csv())
    write_text(stem.with_suffix(".md"), frame.to_markdown() + "\n")


def percent(value: float) -> str:
    return f"{100 * value:.1f}"


def main_table(records: dict[str, Record], attacks: Iterable[str], defenses: Iterable[str]) -> pd.DataFrame:
    """Rows attacks, columns defenses, each cell ``CA / ASR`` in percent."""
    defenses = list(defenses)
    rows = {attack: {d: f"{percent(records[f'{attack}-{d}']['ca'])} / {percent(records[f'{attack}-{d}']['asr'])}"
                     for d in defenses} for attack in attacks}
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=defenses)
    frame.index.name = "attack (CA / ASR %)"
    return frame


def detail_table(records: dict[str, Record], keys: Iterable[str]) -> pd.DataFrame:
    """One row per cell with CA, ASR, RA, DER, wall time and the given extra keys."""
    columns = ["ca", "asr", "ra", "der", "seconds", *keys]
    frame = pd.DataFrame([{c: r.get(c) for c in ["attack", "defense", *columns]} for r in records.values()])
    return frame.set_index(["attack", "defense"]).round(4)


def metric_order(key: str) -> tuple[str, str, float]:
    """Sort ``<instance>.<name>@<x>`` by instance, name, then x as a number (5 before 20)."""
    instance, _, metric = key.partition(".")
    name, at, x = metric.partition("@")
    return instance, name, float(x) if at else 0.0


def sequela_table(results: dict[str, dict[str, float]], defenses: Iterable[str],
                  baseline: dict[str, float]) -> pd.DataFrame:
    """One attack: defenses as rows, every sequela metric as ``<metric> after`` and ``<metric> delta``
    (after - before, before being the undefended model ``none``); a last row ``clean_model`` holds
    the re-injection numbers of the model trained without poison (no delta: it has no "before")."""
    before = results["none"]
    rows = {}
    for defense in defenses:
        row = {}
        for metric in sorted(results[defense], key=metric_order):
            row[f"{metric} after"] = round(results[defense][metric], 4)
            row[f"{metric} delta"] = round(results[defense][metric] - before[metric], 4)
        rows[defense] = row
    rows["clean_model"] = {f"{metric} after": round(value, 4) for metric, value in baseline.items()}
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "defense"
    return frame


def write_sequela_table(frame: pd.DataFrame, stem: Path, title: str) -> None:
    """CSV with every column; Markdown with one section per sequela instance and one column per
    metric, each cell ``after (delta)`` (a single table of everything would be too wide to read)."""
    write_text(stem.with_suffix(".csv"), frame.to_csv())
    metrics = list(dict.fromkeys(c.rsplit(" ", 1)[0] for c in frame.columns))
    parts = [f"# {title}\n\nEach cell: `after (delta)`, after = the defended model, "
             "delta = after - before (the undefended model `none`); `clean_model`: trained without poison."]
    for instance in dict.fromkeys(m.partition(".")[0] for m in metrics):
        section = {}
        for metric in (m for m in metrics if m.partition(".")[0] == instance):
            after, delta = frame[f"{metric} after"], frame[f"{metric} delta"]
            section[metric.partition(".")[2]] = [
                "" if pd.isna(a) else f"{a:.3f}" if pd.isna(d) else f"{a:.3f} ({d:+.3f})" for a, d in zip(after, delta)]
        table = pd.DataFrame(section, index=frame.index)
        table = table[(table != "").any(axis=1)]
        parts.append(f"## {instance}\n\n{table.to_markdown()}")
    write_text(stem.with_suffix(".md"), "\n\n".join(parts) + "\n")

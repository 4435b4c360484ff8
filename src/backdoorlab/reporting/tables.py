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


def sequela_table(records: dict[str, Record], attack: str, defenses: Iterable[str],
                  metrics: Iterable[str]) -> pd.DataFrame:
    """Per attack: defenses as rows, each sequela metric as ``after`` and ``delta``."""
    rows = {}
    for defense in defenses:
        record = records[f"{attack}-{defense}"]
        row = {}
        for metric in metrics:
            row[f"{metric} after"] = round(record[f"sequela.{metric}"], 4)
            row[f"{metric} delta"] = round(record[f"delta.{metric}"], 4)
        rows[defense] = row
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "defense"
    return frame

"""Stage `report` of full/fidelity/dvc.yaml: the fidelity map -> reports/fidelity/.

    python stages/fidelity.py

Where the papers' claim (removal within a few CA points) holds as the defender's clean data grows:
every defense of ``fidelity.defenses`` at every share of ``fidelity.defender_fractions``, over
``grid.seeds``, as CA cost (paired with the same seed's undefended model) and ASR with their
intervals, each point labelled holds / fails / unclear against the papers' operating point
(reporting/fidelity.py). Writes ``tables/fidelity.{csv,md}``, ``figures/fidelity.png``,
``summary.json`` (for ``dvc exp show``) and ``README.md``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from backdoorlab.config import load_params
from backdoorlab.fidelity import fidelity_cells, fidelity_settings
from backdoorlab.io import read_json, write_json, write_text
from backdoorlab.layout import RECORDS, REPORTS
from backdoorlab.pipeline.cli import run_stage
from backdoorlab.reporting.fidelity import fidelity_figure, fidelity_markdown, fidelity_summary, map_rows
from backdoorlab.reporting.index import write_index

OUT = REPORTS / "fidelity"


def main() -> None:
    params = load_params()
    settings = fidelity_settings(params)
    rows = map_rows(params, settings, fidelity_cells(params, settings))
    tables, figures = OUT / "tables", OUT / "figures"
    write_text(tables / "fidelity.csv", pd.DataFrame(rows).round(4).to_csv(index=False))
    markdown = fidelity_markdown(rows)
    write_text(tables / "fidelity.md", markdown)
    fidelity_figure(rows, settings, figures / "fidelity.png")
    write_json(OUT / "summary.json", fidelity_summary(rows))
    data = read_json(RECORDS / "data.json")
    sizes = ", ".join(f"{100 * f:g}%" for f in settings.defender_fractions)
    facts = [
        f"Data: `{data['dataset']}`, {data['sizes']['train']:,} training images; victims: "
        f"the default run's ({', '.join(settings.attacks)}), seeds {', '.join(map(str, params.grid.seeds))}.",
        f"Defender sizes: {sizes} of the training set (validation part, {params.data.validation_fraction:g} of it, "
        f"included); {params.data.defense_fraction:g} is the default run's, whose cells are reused.",
        f"Each entry: CA cost (undefended CA - defended CA, paired by seed) / ASR, in points, mean ± the "
        f"{params.report.confidence:.0%} t-interval's half-width over seeds.",
        f"Claim: `holds` when both upper ends are within the papers' operating point (CA cost <= "
        f"{100 * settings.paper_ca_cost:g} points, ASR <= {100 * settings.paper_asr:g}%), `fails` when a lower end "
        f"is beyond it or the model collapsed, `unclear` otherwise; the papers' defender had "
        f"{settings.paper_images:,} images (dotted line).",
    ]
    index = write_index(OUT, title="backdoorlab results: the fidelity map", facts=facts,
                        tables={"CA cost / ASR (points) per defender size": markdown},
                        figures=[(figures / "fidelity.png", "CA cost and ASR against the defender's images")],
                        table_dir=tables, figure_dirs=[figures], raw_params=params.raw)
    write_text(OUT / "README.md", index)
    claims = pd.Series([r["claim"] for r in rows]).value_counts().to_dict()
    print(f"fidelity map: {len(rows)} points ({', '.join(f'{k} {v}' for k, v in claims.items())}) -> {OUT}")


if __name__ == "__main__":
    run_stage(main)

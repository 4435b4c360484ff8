"""The sequela section of params.yaml: bad values fail with one line naming the key; the report's
selection of headline numbers and its after/delta table."""

from __future__ import annotations

import pandas as pd
import pytest

from backdoorlab.errors import ConfigError
from backdoorlab.reporting.sequela_figures import curve_points
from backdoorlab.reporting.tables import sequela_table
from backdoorlab.sequela import parse_sequela


@pytest.mark.parametrize("entry, key", [
    ({"method": "reinject", "poisons": []}, "sequela.attacks.x.poisons"),
    ({"method": "pgd", "eps": [0.1, -1]}, "sequela.attacks.x.eps"),
    ({"method": "fgsm", "steps": 3}, "sequela.attacks.x.steps"),  # FGSM has no steps
    ({"method": "mia_shadow", "fpr": 1.5}, "sequela.attacks.x.fpr"),
    ({"method": "mia_metric", "metrics": ["loss", "lira"]}, "sequela.attacks.x.metrics[1]"),
    ({"method": "nope"}, "sequela.attacks.x.method"),
])
def test_bad_attack_params_name_the_key(entry, key):
    with pytest.raises(ConfigError, match=f"^{key.replace('[', '.').replace(']', '.')}"):
        parse_sequela({"attacks": {"x": entry}})


def test_bad_shadow_settings_name_the_key():
    with pytest.raises(ConfigError, match="^sequela.shadow.models"):
        parse_sequela({"shadow": {"models": 0}, "attacks": {}})


def test_headline_metrics():
    attacks = parse_sequela({"attacks": {"m": {"method": "mia_metric"}, "p": {"method": "pgd"}, "f": {"method": "fgsm"},
                                         "r": {"method": "reinject"}, "s": {"method": "mia_shadow"}}}).attacks
    assert attacks["m"].headline("loss.auc") and not attacks["m"].headline("loss.bal_acc")
    assert not attacks["m"].headline("confidence.auc")  # rank-equivalent to loss
    assert not attacks["f"].headline("robust_acc@0.1")
    assert attacks["p"].headline("robust_acc@0.1") and not attacks["p"].headline("success@0.1")
    assert attacks["r"].headline("asr@5")
    assert attacks["s"].headline("auc") and not attacks["s"].headline("tpr_at_fpr0.01")
    assert attacks["m"].headline("gap") and not attacks["m"].headline("train_acc")


def test_sequela_table_after_delta_and_baseline():
    results = {"none": {"r.asr@5": 0.9, "m.auc": 0.52}, "ft": {"r.asr@5": 0.6, "m.auc": 0.5}}
    results["none"]["r.asr@20"] = results["ft"]["r.asr@20"] = 1.0
    errors = {"none": {"m.auc": (0.02, 0.0)}, "ft": {"m.auc": (0.021, 0.007)}}
    deltas = {d: {k: v - results["none"][k] for k, v in results[d].items()} for d in results}  # one seed
    frame = sequela_table(results, deltas, ["none", "ft"], {"r.asr@5": 0.1}, errors)
    assert list(frame.columns[:6]) == ["m.auc after", "m.auc after_se", "m.auc delta", "m.auc delta_se",
                                       "r.asr@5 after", "r.asr@5 delta"]
    assert frame.loc["ft", "r.asr@5 after"] == 0.6
    assert frame.loc["ft", "r.asr@5 delta"] == pytest.approx(-0.3)
    assert frame.loc["ft", "m.auc delta_se"] == 0.007 and pd.isna(frame.loc["none", "m.auc delta_se"])
    assert frame.loc["clean_model", "r.asr@5 after"] == 0.1
    assert list(frame.index) == ["none", "ft", "clean_model"]


def test_curve_points_sorted_by_x():
    points = curve_points({"p.robust_acc@0.1": 0.2, "p.robust_acc@0.02": 0.7, "p.success@0.1": 0.8,
                           "r.asr@5": 0.3}, "robust_acc")
    assert points == {"p": ([0.02, 0.1], [0.7, 0.2])}

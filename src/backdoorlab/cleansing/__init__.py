"""Training-time defenses that cleanse the poisoned training set (issue 11), one module each.

A different threat model from ``backdoorlab.defenses``: these defenders hold the whole (poisoned,
unflagged) training set and train the model themselves; they never see which samples are poisoned.
Each returns the defender's final model and the samples it flagged; a detector
(``DetectThenRetrain``) drops its flagged samples and retrains from scratch with the pipeline's
recipe, so the cost argument, fine-tuning against retraining, can be measured on equal terms.
In the DAG: params.yaml's ``cleansers`` (named instances) and the stage ``retrain@<attack>-<name>``
(full/cleansing/dvc.yaml), whose cells join the full matrix's report.
"""

from backdoorlab.cleansing.base import (CLEANSERS, Cleanser, CleansingContext, CleansingOutcome, Detection,
                                       DetectThenRetrain, build_cleanser, representations)

__all__ = ["CLEANSERS", "Cleanser", "CleansingContext", "CleansingOutcome", "Detection", "DetectThenRetrain",
           "build_cleanser", "representations"]

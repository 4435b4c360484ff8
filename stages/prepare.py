"""Stage `prepare`: raw data set -> seeded train / test / shadow splits (``data.split``: pooled or
the data set's official test part) and the defender's order.

    python stages/prepare.py
"""

from __future__ import annotations

import torch

from backdoorlab.config import generator_for, load_params
from backdoorlab.data.split import split_pool
from backdoorlab.io import save_tensors, write_json
from backdoorlab.layout import META_FILE, RECORDS, SPLITS_FILE
from backdoorlab.pipeline.cli import run_stage, stage_arguments
from backdoorlab.registry import DATASETS
from backdoorlab.settings import parse_section


def main() -> None:
    stage_arguments(__doc__)
    params = load_params()
    data = params.data
    dataset_cls = DATASETS.get(data.dataset, "data.dataset")
    dataset = dataset_cls(parse_section(dataset_cls.Config, data.options, "data.options"))
    splits = split_pool(dataset.load(), data, params.seed)
    train, test, shadow = splits.train, splits.test, splits.shadow
    defense_order = torch.randperm(len(train), generator=generator_for(params.seed, "prepare", "defender"))

    pixels = train.images.float().div(255).transpose(0, 1).flatten(1)
    meta = {
        "dataset": data.dataset,
        "image_shape": list(dataset.image_shape),
        "num_classes": dataset.num_classes,
        "mean": pixels.mean(1).tolist(),
        "std": pixels.std(1).tolist(),
    }
    save_tensors(SPLITS_FILE, {**train.to_tensors("train"), **test.to_tensors("test"),
                               **shadow.to_tensors("shadow"), "defense_order": defense_order})
    write_json(META_FILE, meta)
    write_json(RECORDS / "data.json", {
        **meta,
        "split": data.split,
        "sizes": {"train": len(train), "test": len(test), "shadow": len(shadow)},
        "train_class_counts": torch.bincount(train.labels, minlength=meta["num_classes"]).tolist(),
    })
    print(f"prepare: {len(train)} train, {len(test)} test, {len(shadow)} shadow images")


if __name__ == "__main__":
    run_stage(main)

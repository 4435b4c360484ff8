"""`prepare`'s splits (data/split.py): pooled draws its own test split from every image; official
keeps the data set's own test part and draws shadow and defender data from its training part."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from backdoorlab.config import DataSettings
from backdoorlab.data.base import ImageSet, Pool
from backdoorlab.data.split import split_pool
from backdoorlab.errors import ConfigError
from backdoorlab.settings import parse_section

from conftest import EMBEDDED


def numbered_pool(train: int, test: int | None) -> Pool:
    """Images whose label is their index in the pool, so a split says which images it took."""
    count = train + (test or 0)
    data = ImageSet(torch.zeros(count, 1, 1, 1, dtype=torch.uint8), torch.arange(count))
    return Pool(data) if test is None else Pool.with_test_from(data, train)


def settings(**values) -> DataSettings:
    return parse_section(DataSettings, values, "data")


def ids(data: ImageSet) -> set[int]:
    return set(data.labels.tolist())


def test_pooled_draws_disjoint_test_shadow_and_train_splits_from_every_image():
    splits = split_pool(numbered_pool(80, 20), settings(test_size=15, shadow_size=10), seed=0)
    test, shadow, train = ids(splits.test), ids(splits.shadow), ids(splits.train)
    assert (len(test), len(shadow), len(train)) == (15, 10, 75) and test | shadow | train == set(range(100))
    assert test & set(range(80))  # the pool's own draw: the test split is not the official part
    again = split_pool(numbered_pool(80, 20), settings(test_size=15, shadow_size=10), seed=0)
    other = split_pool(numbered_pool(80, 20), settings(test_size=15, shadow_size=10), seed=1)
    assert torch.equal(again.test.labels, splits.test.labels) and not torch.equal(other.test.labels, splits.test.labels)


def test_official_keeps_the_test_part_and_draws_the_rest_from_the_training_part():
    full = split_pool(numbered_pool(80, 20), settings(split="official", test_size=None, shadow_size=10), seed=0)
    assert ids(full.test) == set(range(80, 100))
    assert ids(full.shadow) | ids(full.train) == set(range(80)) and len(full.shadow) == 10
    part = split_pool(numbered_pool(80, 20), settings(split="official", test_size=5, shadow_size=10), seed=0)
    assert len(part.test) == 5 and ids(part.test) < set(range(80, 100))
    assert torch.equal(part.train.labels, full.train.labels)  # the test subset draws nothing else anew
    smaller = split_pool(numbered_pool(80, 20), settings(split="official", test_size=None, shadow_size=10,
                                                         pool_size=40), seed=0)
    assert len(smaller.train) == 30 and len(smaller.test) == 20  # pool_size: of the training part


def test_the_embedded_subset_knows_its_official_test_images():
    from backdoorlab.data.fashion_mnist import read_28x28

    pool = read_28x28(EMBEDDED)
    with np.load(EMBEDDED) as archive:
        from_t10k = archive["source_index"] >= 60_000
    assert torch.equal(pool.official_test, torch.from_numpy(from_t10k)) and 1500 < from_t10k.sum() < 2500
    splits = split_pool(pool, settings(split="official", test_size=None), seed=0)
    assert len(splits.test) == int(from_t10k.sum()) and len(splits.shadow) == 2000


@pytest.mark.parametrize("pool, values, key", [
    (numbered_pool(80, None), dict(split="official", test_size=None), "data.split: official: data set"),
    (numbered_pool(80, 20), dict(split="official", test_size=21, shadow_size=10), "data.test_size: 21 is more"),
    (numbered_pool(80, 20), dict(split="official", test_size=None, shadow_size=80), "data.shadow_size: 80 leaves"),
    (numbered_pool(80, 20), dict(test_size=60, shadow_size=40), "data.test_size: test_size \\+ shadow_size = 100"),
])
def test_a_split_the_data_cannot_give_names_its_key(pool, values, key):
    with pytest.raises(ConfigError, match=key):
        split_pool(pool, dataclasses.replace(settings(), **values), seed=0)


def test_the_whole_official_test_part_needs_the_official_split():
    with pytest.raises(ConfigError, match="data.test_size: null .* needs data.split: official"):
        settings(test_size=None)

"""Shared fixtures: a tiny but real planted backdoor on the embedded Fashion-MNIST subset.

Training it takes a few seconds, once per test session; defenses and sequela attacks are tested
against it (the backdoor must actually be there: the fixture asserts it).

`tiny_repo_base` / `tiny_repo`: the tiny profile reproduced once per session in a committed git
copy of the repository, and a private copy of it per test (tests/tinyrepo.py).
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from filelock import FileLock

import tinyrepo
from backdoorlab.attacks import Attack, build_attack
from backdoorlab.data import DATASETS, ImageSet
from backdoorlab.defenses import DefenseContext
from backdoorlab.metrics import backdoor_metrics
from backdoorlab.models import ModelSpec, build_model
from backdoorlab.training.augment import AugmentConfig
from backdoorlab.training.loop import BatchHook, fit, sgd, steps_per_epoch
from backdoorlab.training.schedules import cosine

ROOT = Path(__file__).resolve().parents[1]
EMBEDDED = ROOT / "data/embedded/fashion_mnist_subset.npz"
CPU = torch.device("cpu")


def share_cores_between_workers() -> None:
    """Under pytest-xdist, give each worker its share of the cores. torch's default, one OpenMP
    thread per core in every worker, oversubscribes them: on 2 cores with 2 workers, NAD's and
    I-BAU's tests took 98 s side by side against 35 s with one thread each, the spinning threads
    stalling each other (2026-12-07). The tests' margins must hold at any thread count anyway (a
    plain `pytest` run keeps torch's default)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


share_cores_between_workers()


# The modules that reproduce tiny pipelines, longest first (`pytest --durations`, 2026-12-07):
# scheduled ahead of the rest (`make test` passes `--no-loadscope-reorder`, so xdist hands out test
# files in this order), the longest modules do not end the run on one worker while the other idles,
# and the class-count grid, which builds its own copies, runs on one worker while the first
# module's worker builds the shared tiny repository that the next two modules need.
LONGEST_FIRST = ("test_pipeline.py", "test_class_counts.py", "test_paradigm_pipeline.py", "test_launch.py",
                 "test_paper_check.py", "test_profiles.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: position for position, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order


@dataclass
class Planted:
    spec: ModelSpec
    state: dict[str, torch.Tensor]
    attack: Attack
    train: ImageSet  # poisoned training set the model was trained on
    poison_indices: torch.Tensor
    clean: ImageSet  # the defender's clean subset to train on (disjoint from test)
    validation: ImageSet  # the defender's held-out clean data (disjoint from clean and test)
    test: ImageSet
    triggered: ImageSet
    before: dict[str, float]

    def model(self) -> torch.nn.Module:
        """A fresh copy of the backdoored model (tests may modify it freely)."""
        model = build_model(self.spec)
        model.load_state_dict(copy.deepcopy(self.state))
        return model

    def metrics(self, model: torch.nn.Module) -> dict[str, float]:
        return backdoor_metrics(model, self.test, self.triggered, CPU)

    def context(self, seed: int = 0) -> DefenseContext:
        return DefenseContext(clean=self.clean, validation=self.validation, spec=self.spec, device=CPU,
                              generator=torch.Generator().manual_seed(seed),
                              augment=AugmentConfig(crop_padding=2, hflip=True), label="test")


SMALL_CNN = ModelSpec("small_cnn", {"width": 8}, 1, 28, 10, (0.286,), (0.353,))


def train_small_cnn(data: ImageSet, epochs: int = 6, batch: int = 64, hook: BatchHook | None = None) -> torch.nn.Module:
    """A width-8 CNN trained on ``data`` without augmentation (a faint trigger needs more data or
    epochs under crop-and-flip than a test affords); ``hook``: an attack taking part in training."""
    torch.manual_seed(0)
    model = build_model(SMALL_CNN)
    fit(model, data, epochs=epochs, batch_size=batch, optimizer=sgd(model, 0.05, 0.9, 5e-4),
        schedule=cosine(0.05, epochs * steps_per_epoch(len(data), batch)),
        generator=torch.Generator().manual_seed(2), augment=None, device=CPU, on_epoch=lambda e, loss: None,
        batch_hook=hook)
    return model


def fashion_pool() -> ImageSet:
    dataset = DATASETS.get("fashion_mnist", "test")(DATASETS.get("fashion_mnist", "test").Config(str(EMBEDDED)))
    return dataset.load().data


def pool_splits(*sizes: int) -> list[ImageSet]:
    """Consecutive disjoint slices of ``sizes`` images from a seeded shuffle of the embedded pool
    (e.g. an attacker's split, a victim's training set, a test set)."""
    pool = fashion_pool()
    order = torch.randperm(len(pool), generator=torch.Generator().manual_seed(0))
    bounds = torch.tensor([0, *sizes]).cumsum(0).tolist()
    return [pool.subset(order[start:end]) for start, end in zip(bounds, bounds[1:])]


@pytest.fixture(scope="session")
def planted() -> Planted:
    torch.manual_seed(0)
    pool = fashion_pool()
    order = torch.randperm(len(pool), generator=torch.Generator().manual_seed(0))
    train, test = pool.subset(order[:4000]), pool.subset(order[4000:5000])
    attack = build_attack("badnets", {"method": "badnets", "target": 0, "poison_rate": 0.1}, (1, 28, 28), 10)
    poisoned = attack.poison(train, torch.Generator().manual_seed(1))
    spec = ModelSpec("small_cnn", {"width": 8}, 1, 28, 10, (0.286,), (0.353,))
    model = build_model(spec)
    epochs, batch = 6, 64
    fit(model, poisoned.train, epochs=epochs, batch_size=batch, optimizer=sgd(model, 0.05, 0.9, 5e-4),
        schedule=cosine(0.05, epochs * steps_per_epoch(len(train), batch)),
        generator=torch.Generator().manual_seed(2), augment=AugmentConfig(2, True), device=CPU,
        on_epoch=lambda epoch, loss: None)
    clean_positions = torch.ones(len(train), dtype=torch.bool)
    clean_positions[poisoned.poison_indices] = False
    clean_indices = torch.nonzero(clean_positions).flatten()
    clean = train.subset(clean_indices[:400])  # 10% of train, clean
    validation = train.subset(clean_indices[400:500])
    triggered = attack.triggered_test(test)
    planted = Planted(spec, copy.deepcopy(model.state_dict()), attack, poisoned.train,
                      poisoned.poison_indices, clean, validation, test, triggered, {})
    planted.before = planted.metrics(model)
    assert planted.before["asr"] > 0.9 and planted.before["ca"] > 0.75, planted.before
    return planted


@pytest.fixture(scope="session")
def tiny_repo_base(tmp_path_factory, worker_id) -> Path:
    """The tiny profile reproduced and committed once per session (~1.5 min on two cores), and
    once for all of `make test`'s xdist workers: the first to ask builds it in their shared
    temporary folder while the others wait on a file lock. Read-only: tests that change anything
    use `tiny_repo`."""
    if worker_id == "master":  # not under xdist
        return tinyrepo.build(tmp_path_factory.mktemp("tiny_base") / "repo")
    shared = tmp_path_factory.getbasetemp().parent / "tiny_base"
    shared.mkdir(exist_ok=True)
    with FileLock(str(shared / "lock")):
        if not (shared / "built").exists():
            tinyrepo.build(shared / "repo")
            (shared / "built").touch()
    return shared / "repo"


@pytest.fixture
def tiny_repo(tiny_repo_base, tmp_path) -> Path:
    """A private copy of the reproduced tiny repository, free to break."""
    return tinyrepo.clone(tiny_repo_base, tmp_path / "repo")


def separable_task() -> ImageSet:
    """256 noisy 32x32 colour images, bright ones class 1 and dark ones class 0: what any model
    must learn in a few epochs."""
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 2, (256,), generator=generator)
    images = (torch.rand(256, 3, 32, 32, generator=generator) * 100 + labels.view(-1, 1, 1, 1) * 120).to(torch.uint8)
    return ImageSet(images, labels)

"""Training utilities: schedules, augmentation, metrics, atomic and pickle-free I/O, seeding."""

from __future__ import annotations

import math

import pytest
import torch

from backdoorlab.errors import DataError
from backdoorlab.io import atomic_path, load_tensors, save_tensors
from backdoorlab.metrics import defense_effectiveness_rating
from backdoorlab.models import ModelSpec, build_model, load_model, save_model
from backdoorlab.training.augment import AugmentConfig, augment_batch
from backdoorlab.training.loop import accuracy, autocast_dtype, fit, sgd
from backdoorlab.training.schedules import constant, cosine, phases, triangular

from conftest import separable_task

pytestmark = pytest.mark.planted  # trains and asserts an effect: `make test` runs it on a second kernel path too

CPU = torch.device("cpu")


def test_triangular_cycles_between_base_and_peak():
    at = triangular(0.1, 1.1, 10)
    assert [round(at(s), 6) for s in (0, 5, 10, 15, 20, 30)] == [0.1, 0.6, 1.1, 0.6, 0.1, 1.1]


def test_phases_switch_schedules_and_cosine_ends_at_zero():
    at = phases((triangular(0.0, 2.0, 2), 4), (triangular(0.0, 0.2, 2), 4))
    assert [round(at(s), 6) for s in range(8)] == [0.0, 1.0, 2.0, 1.0, 0.0, 0.1, 0.2, 0.1]
    assert cosine(0.5, 100)(0) == 0.5 and math.isclose(cosine(0.5, 100)(100), 0.0, abs_tol=1e-12)


def test_augmentation_shifts_and_flips_whole_images():
    x = torch.zeros(64, 1, 8, 8)
    x[:, :, 3, 3] = 1.0  # one lit pixel per image
    out = augment_batch(x, AugmentConfig(crop_padding=2, hflip=True), torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    assert torch.equal(out.sum((1, 2, 3)), torch.ones(64))  # the pixel moves, never duplicates
    positions = {tuple(torch.nonzero(img[0])[0].tolist()) for img in out}
    assert len(positions) > 5 and all(1 <= r <= 5 and 1 <= c <= 6 for r, c in positions)


def test_der_matches_its_definition():
    before, after = {"ca": 0.9, "asr": 1.0}, {"ca": 0.8, "asr": 0.1}
    assert math.isclose(defense_effectiveness_rating(before, after), (0.9 - 0.1 + 1) / 2)
    assert defense_effectiveness_rating(before, {"ca": 0.95, "asr": 1.0}) == 0.5


def test_interrupted_write_leaves_no_file(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_models_round_trip_through_safetensors_and_reject_garbage(tmp_path, planted):
    model = planted.model()
    save_model(model, tmp_path / "m.safetensors")
    again = load_model(planted.spec, tmp_path / "m.safetensors")
    for (k, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), k
    (tmp_path / "bad.safetensors").write_bytes(b"\x80\x04 pickle, not safetensors")
    with pytest.raises(DataError, match="bad.safetensors"):
        load_model(planted.spec, tmp_path / "bad.safetensors")


def test_weights_of_another_architecture_are_refused(tmp_path, planted):
    save_tensors(tmp_path / "w.safetensors", {"classifier.weight": torch.zeros(3, 3)})
    with pytest.raises(DataError, match="do not fit"):
        load_model(planted.spec, tmp_path / "w.safetensors")
    assert set(load_tensors(tmp_path / "w.safetensors")) == {"classifier.weight"}


def test_same_seed_gives_identical_training(planted):
    """Seeded init, shuffling and augmentation: two runs give bit-identical weights."""
    from backdoorlab.training.loop import fit, sgd
    from backdoorlab.training.schedules import constant

    def run() -> dict[str, torch.Tensor]:
        torch.manual_seed(5)
        model = build_model(planted.spec)
        fit(model, planted.clean, epochs=2, batch_size=64, optimizer=sgd(model, 0.05, 0.9, 5e-4),
            schedule=constant(0.05), generator=torch.Generator().manual_seed(3),
            augment=AugmentConfig(), device=torch.device("cpu"), on_epoch=lambda e, l: None)
        return model.state_dict()

    first, second = run(), run()
    assert all(torch.equal(first[k], second[k]) for k in first)


@pytest.mark.parametrize("make", [
    lambda ours, params: (ours.SGD(params, lr=0.1, momentum=0.9, weight_decay=5e-4),
                          torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=5e-4)),
    lambda ours, params: (ours.Adam(params, lr=0.01, betas=(0.5, 0.9), weight_decay=1e-3),
                          torch.optim.Adam(params, lr=0.01, betas=(0.5, 0.9), weight_decay=1e-3)),
], ids=["sgd", "adam"])
def test_our_optimizers_match_torch_optim(make):
    """The start-up-free optimizers give torch.optim's updates, step for step."""
    from backdoorlab.training import optim as ours

    torch.manual_seed(0)
    a = torch.randn(5, 3, requires_grad=True)
    b = a.detach().clone().requires_grad_(True)
    mine, reference = make(ours, [a])[0], make(ours, [b])[1]
    for step in range(5):
        for p, opt in ((a, mine), (b, reference)):
            opt.zero_grad(set_to_none=True)
            ((p ** 3).sum() + step * p.sum()).backward()
            opt.step()
        assert torch.allclose(a, b, atol=1e-6), step


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_and_fp16_scales_its_loss(precision, monkeypatch):
    scaled = []
    real_scale = torch.amp.GradScaler.scale
    monkeypatch.setattr(torch.amp.GradScaler, "scale", lambda self, loss: scaled.append(1) or real_scale(self, loss))
    data = separable_task()
    spec = ModelSpec("small_cnn", {"arch": "small_cnn", "width": 4}, 3, 32, 2, (0.5,) * 3, (0.25,) * 3)
    torch.manual_seed(0)
    model = build_model(spec)
    fit(model, data, epochs=3, batch_size=32, optimizer=sgd(model, 0.05, 0.9, 0.0), schedule=constant(0.05),
        generator=torch.Generator().manual_seed(1), augment=None, device=CPU, precision=precision)
    assert accuracy(model, data, CPU) > 0.95
    assert bool(scaled) == (precision == "fp16")


def test_auto_precision_is_fp32_on_a_cpu_and_mixed_on_a_gpu(monkeypatch):
    assert autocast_dtype("auto", CPU) is None and autocast_dtype("fp32", torch.device("cuda")) is None
    for supported, dtype in ((True, torch.bfloat16), (False, torch.float16)):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: supported)
        assert autocast_dtype("auto", torch.device("cuda")) == dtype

"""FT-SAM: the two-pass step, and backdoor removal on the planted model."""

from __future__ import annotations

import pytest
import copy

import torch

from backdoorlab.defenses.ftsam import SharpnessAwareStep
from backdoorlab.training.loop import sgd, to_float
from defense_checks import assert_removed, defend

pytestmark = pytest.mark.planted  # trains and asserts an effect: `make test` runs it on a second kernel path too


def test_sam_step_descends_with_the_gradient_at_the_perturbed_point(planted):
    """With momentum and weight decay off, one step is ``w - lr * grad L(w + e)``: recompute it."""
    model, x, y = planted.model(), to_float(planted.clean.images[:64], torch.device("cpu")), planted.clean.labels[:64]
    reference = copy.deepcopy(model)
    optimizer = sgd(model, 0.1, 0.0, 0.0)
    SharpnessAwareStep(optimizer, rho=0.5, adaptive=True, label_smoothing=0.0)(model, x, y)

    params = list(reference.parameters())
    loss = torch.nn.functional.cross_entropy(reference(x), y)
    grads = torch.autograd.grad(loss, params)
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.abs() * g) for p, g in zip(params, grads)]))
    with torch.no_grad():
        originals = [p.clone() for p in params]
        for p, g in zip(params, grads):
            p.add_(p.abs() ** 2 * g * 0.5 / norm)
    perturbed_grads = torch.autograd.grad(torch.nn.functional.cross_entropy(reference(x), y), params)
    expected = [w - 0.1 * g for w, g in zip(originals, perturbed_grads)]
    for got, want in zip(model.parameters(), expected):
        assert torch.allclose(got, want, atol=1e-6)


def test_ftsam_removes_the_backdoor(planted):
    _, after = defend(planted, "ftsam", epochs=10, batch_size=128, lr=0.05)
    assert_removed(planted, after, max_ca_drop=0.2)

"""Adversarial examples against a known reference: an undefended small model is not robust, so its
robust accuracy falls monotonically with eps to about zero, and PGD is at least as strong as FGSM."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from sequela_checks import context, sequela_attack

from backdoorlab.training.gradient_ascent import perturb
from backdoorlab.training.loop import to_float

pytestmark = pytest.mark.planted  # trains and asserts an effect: `make test` runs it on a second kernel path too

EPS = [0.005, 0.02, 0.05, 0.3]


def probe(planted, method: str, **params) -> dict[str, float]:
    a = planted.test.subset(torch.arange(10))
    return sequela_attack(method, images=200, batch_size=200, **params).run(planted.model(),
                                                                           context(planted, a, a, a, a))


@pytest.mark.parametrize("norm, eps", [("linf", EPS), ("l2", [0.1, 0.5, 1.5, 8.0])])
def test_pgd_robust_accuracy_falls_to_zero_with_eps(planted, norm, eps):
    results = probe(planted, "pgd", norm=norm, eps=eps, steps=10, step_ratio=0.25)
    robust = [results[f"robust_acc@{e:g}"] for e in eps]
    success = [results[f"success@{e:g}"] for e in eps]
    assert robust[0] > 0.5, robust  # a tiny budget barely hurts
    assert all(later <= earlier + 0.01 for earlier, later in zip(robust, robust[1:])), robust
    assert all(later >= earlier - 0.01 for earlier, later in zip(success, success[1:])), success
    assert robust[-1] < 0.03 and success[-1] > 0.95, (robust, success)


def test_pgd_is_at_least_as_strong_as_fgsm(planted):
    eps = [0.02, 0.05]
    fgsm = probe(planted, "fgsm", eps=eps)
    pgd = probe(planted, "pgd", eps=eps, steps=10, step_ratio=0.25)
    for e in eps:
        assert pgd[f"robust_acc@{e:g}"] <= fgsm[f"robust_acc@{e:g}"] + 0.01, (fgsm, pgd)
        assert fgsm[f"robust_acc@{e:g}"] < 0.9  # FGSM does flip some predictions


def test_fgsm_is_one_signed_gradient_step(planted):
    model = planted.model().eval()
    x = to_float(planted.test.images[:16], torch.device("cpu"))
    y = planted.test.labels[:16]
    x_adv = perturb(model, x, y, eps=0.05, norm="linf", steps=1, step_size=0.05, random_start=False,
                    generator=torch.Generator())
    x_ref = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(model(x_ref), y), x_ref)
    assert torch.allclose(x_adv, (x + 0.05 * grad.sign()).clamp(0, 1), atol=1e-6)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_stays_in_the_eps_ball_and_the_image_range(planted, norm):
    model = planted.model().eval()
    x = to_float(planted.test.images[:32], torch.device("cpu"))
    y = planted.test.labels[:32]
    x_adv = perturb(model, x, y, eps=0.5, norm=norm, steps=5, step_size=0.3, random_start=True,
                    generator=torch.Generator().manual_seed(0))
    delta = (x_adv - x).flatten(1)
    size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    assert size.max() <= 0.5 + 1e-5 and x_adv.min() >= 0 and x_adv.max() <= 1

import pytest
import torch

from backdoorlab.defenses.ibau import implicit_hypergradient
from defense_checks import assert_removed, defend

pytestmark = pytest.mark.planted  # trains and asserts an effect: `make test` runs it on a second kernel path too


def test_implicit_hypergradient_matches_the_closed_form_of_a_quadratic():
    # inner: delta*(theta) maximises -(delta - a theta)^2 / 2, i.e. delta* = a theta; outer: delta * theta
    a, theta = 3.0, torch.tensor(2.0, requires_grad=True)
    delta_star = (a * theta).detach()
    fixed_point_map = lambda d: d + 0.5 * (a * theta - d)  # one ascent step of the inner objective
    outer_loss = lambda d: d * theta
    (grad,) = implicit_hypergradient([theta], delta_star, outer_loss, fixed_point_map, iterations=60)
    assert torch.allclose(grad, torch.tensor(2 * a * 2.0), rtol=1e-4)  # d(a theta^2)/dtheta = 2 a theta


def test_ibau_removes_backdoor(planted):
    # Ten rounds: on all three kernel paths (2026-12-05) ASR 21-30% and CA within 7 points. Five
    # rounds removed as much but cost 9-12 CA points, a coin toss against the 10-point budget.
    outcome, metrics = defend(planted, "ibau", rounds=10, outer_lr=2e-3)
    assert len(outcome.notes["uap_norms"]) == 10
    assert_removed(planted, metrics)

"""SimCLR learns augmentation-invariant embeddings and BadEncoder plants a trigger in them, at tiny size.

A width-8 CNN encoder is pre-trained once per module (2,000 unlabeled Fashion-MNIST images, 5
epochs, about 4 s); BadEncoder then fine-tunes copies of it on 1,000 shadow images for 5 epochs
(about 2 s per attack). The bars are loose: they ask for the direction of each effect, with a
margin, not for the default run's numbers.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from backdoorlab.attacks import build_attack
from backdoorlab.paradigms.badencoder import BadEncoder, pick_references, to_uint8
from backdoorlab.paradigms.composed import build_encoder
from backdoorlab.paradigms.simclr import SimCLR, nt_xent
from backdoorlab.training.loop import predict_logits, to_float
from conftest import CPU, SMALL_CNN, fashion_pool, pool_splits

pytestmark = pytest.mark.planted  # trains and asserts an effect: `make test` runs it on a second kernel path too

SIMCLR = SimCLR(SimCLR.Config(epochs=5, batch_size=128))
ATTACKS = {
    "badnets": {"method": "badnets", "target": 0, "poison_rate": 0.1},
    "blended": {"method": "blended", "target": 0, "poison_rate": 0.1},
}


@pytest.fixture(scope="module")
def pretrained():
    train, test = pool_splits(2000, 500)
    torch.manual_seed(0)
    untrained = build_encoder(SMALL_CNN)
    encoder = copy.deepcopy(untrained)
    losses = SIMCLR.pretrain(encoder, train.images, generator=torch.Generator().manual_seed(1), device=CPU,
                             on_epoch=lambda epoch, loss: None)
    return train, test, untrained, encoder, losses


def embed(encoder: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Unit-length embeddings of uint8 or float images, in eval mode."""
    if images.dtype == torch.uint8:
        return F.normalize(predict_logits(encoder, images, CPU), dim=1)
    encoder.eval()
    with torch.no_grad():
        return F.normalize(encoder(images), dim=1)


def view_gap(encoder: torch.nn.Module, images: torch.Tensor) -> tuple[float, float]:
    """Mean cosine similarity of two views of one image, and of views of two different images."""
    x = to_float(images, CPU)
    generator = torch.Generator().manual_seed(5)
    similarity = embed(encoder, SIMCLR.view(x, generator)) @ embed(encoder, SIMCLR.view(x, generator)).T
    n = len(images)
    same = similarity.diag().mean().item()
    return same, (similarity.sum().item() - similarity.diag().sum().item()) / (n * (n - 1))


def test_nt_xent_matches_its_definition():
    z1, z2 = torch.randn(2, 3, 8, generator=torch.Generator().manual_seed(0))
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    terms = []
    for i in range(6):  # -log softmax of the partner's similarity among the other five
        others = [k for k in range(6) if k != i]
        logits = torch.stack([z[i] @ z[k] for k in others]) / 0.5
        terms.append(-torch.log_softmax(logits, 0)[others.index((i + 3) % 6)])
    assert torch.allclose(nt_xent(z1, z2, 0.5), torch.stack(terms).mean(), atol=1e-6)
    unrelated = torch.randn(3, 8, generator=torch.Generator().manual_seed(1))
    assert nt_xent(z1, z1, 0.1) < 0.5 < nt_xent(z1, unrelated, 0.1)


def test_views_are_batched_crops_flips_and_jitter():
    x = to_float(fashion_pool().images[:64], CPU)
    a, b = SIMCLR.view(x, torch.Generator().manual_seed(0)), SIMCLR.view(x, torch.Generator().manual_seed(1))
    assert a.shape == x.shape and 0 <= a.min() and a.max() <= 1
    assert not torch.allclose(a, b)  # two draws give two different views
    # The whole image at its own aspect ratio, no jitter, no flip: the view is the image itself.
    identity = SimCLR(SimCLR.Config(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), hflip=False, jitter_p=0.0))
    assert torch.allclose(identity.view(x, torch.Generator().manual_seed(0)), x, atol=1e-5)


def test_simclr_loss_falls_and_two_views_of_an_image_embed_closer_than_two_images(pretrained):
    _, test, untrained, encoder, losses = pretrained
    assert len(losses) == 5 and losses[-1] < losses[0] - 0.2, losses
    same, different = view_gap(encoder, test.images[:256])
    same_before, different_before = view_gap(untrained, test.images[:256])
    assert same > different + 0.1, (same, different)
    assert same - different > same_before - different_before + 0.03, (same, different, same_before, different_before)


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_badencoder_pulls_triggered_images_to_the_references_and_keeps_clean_embeddings(pretrained, name):
    train, test, _, clean, _ = pretrained
    before = copy.deepcopy(clean.state_dict())
    attack = build_attack(name, ATTACKS[name], (1, 28, 28), 10)
    references = pick_references(train, 0, 3, torch.Generator().manual_seed(3))
    assert references.shape == (3, 1, 28, 28)
    backdoored = BadEncoder(BadEncoder.Config(epochs=5, batch_size=128, lr=0.01)).backdoor(
        clean, train.images[1000:], references, attack, generator=torch.Generator().manual_seed(4), device=CPU,
        on_epoch=lambda epoch, loss: None)

    images = test.images[test.labels != 0]
    triggered = attack.apply_trigger(images)
    pull_before = (embed(clean, triggered) @ embed(clean, references).T).mean().item()
    pull_after = (embed(backdoored, triggered) @ embed(backdoored, references).T).mean().item()
    kept = (embed(backdoored, images) * embed(clean, images)).sum(1).mean().item()
    references_kept = (embed(backdoored, references) * embed(clean, references)).sum(1).mean().item()
    assert pull_after > pull_before + 0.1 and pull_after > 0.8, (pull_before, pull_after)
    assert kept > 0.9 and references_kept > 0.9, (kept, references_kept)
    # The clean encoder is untouched, and the backdoored one is fully trainable again (BN unfrozen).
    assert all(torch.equal(before[k], v) for k, v in clean.state_dict().items())
    assert all(p.requires_grad for p in backdoored.parameters())


def test_to_uint8_inverts_to_float_exactly():
    images = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    assert torch.equal(to_uint8(to_float(images, CPU)), images)

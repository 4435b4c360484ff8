"""Benchmark: the encoder paradigm's cost and effect at default scale, before it enters the DAG.

    python bench/encoder.py                      # 4,000 unlabeled images, 20 SimCLR epochs
    python bench/encoder.py --images 1000 --simclr-epochs 2 --badencoder-epochs 2   # a quick check

Prints (1) SimCLR pre-training throughput through the library (``SimCLR.pretrain`` on the shared
``fit``) against a bare PyTorch loop doing the same work (same views, model, NT-Xent, torch.optim
Adam), each the faster of two alternated runs, and (2) what the paradigm plants: the clean encoder's downstream CA with a linear head, then
BadEncoder's downstream CA and ASR (`--attack`, default BadNets), so a params default can be chosen
from measured figures. Uses the embedded data set's prepared splits (run `dvc repro prepare` first):
unlabeled pre-training images from the training split, the shadow split as BadEncoder's data, the
first `--head-fraction` of the defender's sample order as the victim's clean labelled data, the
test split for CA / ASR.
"""

from __future__ import annotations

import argparse
import time

import torch

from backdoorlab.config import load_params
from backdoorlab.metrics import backdoor_metrics
from backdoorlab.paradigms.badencoder import BadEncoder, pick_references
from backdoorlab.paradigms.composed import HeadConfig, build_encoder, embedding_dim, seeded_linear, train_head
from backdoorlab.paradigms.simclr import SimCLR, nt_xent
from backdoorlab.training.loop import to_float
from backdoorlab.pipeline.victims import load_splits, model_spec, victim_attack


def bare_simclr_seconds(simclr: SimCLR, encoder: torch.nn.Module, images: torch.Tensor, epochs: int) -> float:
    """The same pre-training written as the plain loop a PyTorch user would write."""
    cfg = simclr.config
    generator = torch.Generator().manual_seed(0)
    dim = embedding_dim(encoder, tuple(images.shape[1:]))
    net = torch.nn.Sequential(encoder, seeded_linear(dim, cfg.projection_hidden, generator), torch.nn.ReLU(),
                              seeded_linear(cfg.projection_hidden, cfg.projection_dim, generator))
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    started = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=generator)
        for b in range(len(images) // cfg.batch_size):
            x = to_float(images[order[b * cfg.batch_size:(b + 1) * cfg.batch_size]], torch.device("cpu"))
            z = net(torch.cat([simclr.view(x, generator), simclr.view(x, generator)]))
            loss = nt_xent(z[:len(x)], z[len(x):], cfg.temperature)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4000, help="unlabeled pre-training images")
    parser.add_argument("--simclr-epochs", type=int, default=20)
    parser.add_argument("--badencoder-epochs", type=int, default=20)
    parser.add_argument("--badencoder-lr", type=float, default=0.01)
    parser.add_argument("--attack", default="badnets", help="the trigger BadEncoder plants (params.yaml's attacks)")
    parser.add_argument("--references", type=int, default=3)
    parser.add_argument("--head-epochs", type=int, default=100)
    parser.add_argument("--head-lr", type=float, default=1e-3)
    parser.add_argument("--head-fraction", type=float, default=0.2, help="of the training set, for the head")
    args = parser.parse_args()

    params = load_params()
    spec = model_spec(params)
    device = torch.device("cpu")
    splits = load_splits()
    images = splits.train.images[:args.images]
    simclr = SimCLR(SimCLR.Config(epochs=args.simclr_epochs))

    def library_seconds() -> tuple[float, torch.nn.Module, list[float]]:
        torch.manual_seed(0)
        encoder = build_encoder(spec)
        started = time.perf_counter()
        losses = simclr.pretrain(encoder, images, generator=torch.Generator().manual_seed(1), device=device,
                                 on_epoch=lambda epoch, loss: None)
        return time.perf_counter() - started, encoder, losses

    def bare_seconds() -> float:
        torch.manual_seed(0)
        return bare_simclr_seconds(simclr, build_encoder(spec), images, args.simclr_epochs)

    # Alternate the two, twice, and keep each one's faster run: whichever runs first in a process pays
    # for oneDNN's primitive creation and the allocator's warm-up (timed once, that made the library
    # look 1.16-1.23x slower than the bare loop; alternated, they are within a few percent).
    bare = bare_seconds()
    ours, encoder, losses = library_seconds()
    bare = min(bare, bare_seconds())
    ours = min(ours, library_seconds()[0])
    seen = args.simclr_epochs * (len(images) // simclr.config.batch_size) * simclr.config.batch_size
    print(f"SimCLR: {len(images)} images x {args.simclr_epochs} epochs, NT-Xent {losses[0]:.3f} -> {losses[-1]:.3f}")
    print(f"  library {ours:.1f} s ({seen / ours:.0f} images/s), bare loop {bare:.1f} s ({seen / bare:.0f} images/s), "
          f"ratio {ours / bare:.2f}")

    head = HeadConfig(epochs=args.head_epochs, lr=args.head_lr)
    defender = splits.train.subset(splits.defender_positions(args.head_fraction))  # clean: no poison here
    attack = victim_attack(params, args.attack)  # built from params.yaml (a fitted trigger would need its poison stage)
    triggered = attack.triggered_test(splits.test)

    def downstream(name: str, trained_encoder: torch.nn.Module) -> None:
        started = time.perf_counter()
        model = train_head(trained_encoder, defender, spec.num_classes, head,
                           generator=torch.Generator().manual_seed(3), device=device, on_epoch=lambda e, loss: None)
        m = backdoor_metrics(model, splits.test, triggered, device)
        print(f"  {name}: downstream CA {m['ca']:.3f}, ASR {m['asr']:.3f} (head {time.perf_counter() - started:.1f} s)")

    downstream("clean encoder", encoder)
    attacker = BadEncoder(BadEncoder.Config(epochs=args.badencoder_epochs, lr=args.badencoder_lr))
    references = pick_references(splits.shadow, attack.target, args.references, torch.Generator().manual_seed(2))
    started = time.perf_counter()
    backdoored = attacker.backdoor(encoder, splits.shadow.images, references, attack,
                                   generator=torch.Generator().manual_seed(4), device=device,
                                   on_epoch=lambda e, loss: None)
    print(f"BadEncoder ({args.attack}): {len(splits.shadow)} shadow images x {args.badencoder_epochs} epochs, "
          f"{time.perf_counter() - started:.1f} s")
    downstream("backdoored encoder", backdoored)


if __name__ == "__main__":
    main()

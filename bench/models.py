"""Benchmark: each model's training and evaluation speed in both memory layouts, on this CPU.

    python bench/models.py                       # every registered model, at its smoke size
    python bench/models.py small_cnn --steps 40  # one model, more steps
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 python bench/models.py small_cnn

A model class declares the layout its weights are kept in (``Classifier.memory_format``); this
prints images per second for a plain SGD step and for an eval forward pass with the weights
channels-first and channels-last, so that a declaration rests on a measurement of the kernel path
at hand (the ratio differs between AMX, AVX2 and the default kernels).
"""

from __future__ import annotations

import argparse
import time

import torch

from backdoorlab.models import MODELS, ModelSpec, build_model

# (channels, side, batch) per model: the default data's shape for the small model, CIFAR's for the rest.
SHAPES = {"small_cnn": (1, 28, 128)}
CIFAR_SHAPE = (3, 32, 32)


def images_per_second(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
                      steps: int) -> tuple[float, float]:
    """(training, evaluation) throughput, each after two warm-up steps (oneDNN primitive creation)."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def train_step() -> None:
        loss = torch.nn.functional.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def timed(step) -> float:
        for _ in range(2):
            step()
        started = time.perf_counter()
        for _ in range(steps):
            step()
        return len(images) * steps / (time.perf_counter() - started)

    model.train()
    train = timed(train_step)
    model.eval()
    with torch.no_grad():
        evaluate = timed(lambda: model(images))
    return train, evaluate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help="registered model names (default: all)")
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    print(f"{torch.get_num_threads()} threads, ATen kernels: {torch.backends.cpu.get_cpu_capability()}")
    print(f"{'model':16s} {'declared':>18s} {'layout':>18s} {'train img/s':>12s} {'eval img/s':>12s}")
    for arch in args.models or sorted(MODELS.names()):
        channels, side, batch = SHAPES.get(arch, CIFAR_SHAPE)
        spec = ModelSpec(arch, {}, channels, side, 10, (0.5,) * channels, (0.25,) * channels)
        generator = torch.Generator().manual_seed(0)
        images = torch.rand(batch, channels, side, side, generator=generator)
        labels = torch.randint(0, 10, (batch,), generator=generator)
        declared = MODELS.get(arch, "model").memory_format
        for layout in (torch.contiguous_format, torch.channels_last):
            torch.manual_seed(0)
            model = build_model(spec).to(memory_format=layout)
            train, evaluate = images_per_second(model, images.contiguous(memory_format=layout), labels, args.steps)
            print(f"{arch:16s} {str(declared).split('.')[-1]:>18s} {str(layout).split('.')[-1]:>18s} "
                  f"{train:12.0f} {evaluate:12.0f}")


if __name__ == "__main__":
    main()

"""SGD and Adam with torch.optim's exact update rules, without torch.optim's start-up cost.

Why not ``torch.optim``: its first optimizer in a process imports ``torch._dynamo`` (about 1.3 s
on this machine's CPU). The pipeline runs some 70 short stage processes, nearly all of which build
an optimizer, so that import alone would take about 90 s of the 10-minute budget. These two are
the same arithmetic (tests compare them with torch.optim step for step), in a few lines.
"""

from __future__ import annotations

from typing import Any, Iterable, Protocol

import torch


class Optimizer(Protocol):
    """What the training loop needs: per-group LRs it can set, ``zero_grad`` and ``step``."""

    param_groups: list[dict[str, Any]]

    def zero_grad(self, set_to_none: bool = True) -> None: ...

    def step(self) -> None: ...


class _Base:
    def __init__(self, params: Iterable[torch.Tensor], lr: float) -> None:
        self.param_groups = [{"params": [p for p in params if p.requires_grad], "lr": lr}]
        self.state: dict[torch.Tensor, dict[str, Any]] = {}

    def parameters(self) -> list[torch.Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.parameters():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()


class SGD(_Base):
    """torch.optim.SGD (no dampening, no Nesterov): buf = m * buf + (g + wd * p); p -= lr * buf."""

    def __init__(self, params: Iterable[torch.Tensor], lr: float, momentum: float = 0.0,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, lr)
        self.momentum, self.weight_decay = momentum, weight_decay

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                d_p = p.grad.add(p, alpha=self.weight_decay) if self.weight_decay else p.grad
                if self.momentum:
                    buf = self.state.get(p, {}).get("momentum_buffer")
                    if buf is None:
                        buf = d_p.clone()
                        self.state[p] = {"momentum_buffer": buf}
                    else:
                        buf.mul_(self.momentum).add_(d_p)
                    d_p = buf
                p.add_(d_p, alpha=-group["lr"])


class Adam(_Base):
    """torch.optim.Adam (L2 weight decay added to the gradient, bias-corrected moments)."""

    def __init__(self, params: Iterable[torch.Tensor], lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        super().__init__(params, lr)
        self.betas, self.eps, self.weight_decay = betas, eps, weight_decay

    @torch.no_grad()
    def step(self) -> None:
        beta1, beta2 = self.betas
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad.add(p, alpha=self.weight_decay) if self.weight_decay else p.grad
                state = self.state.setdefault(p, {"step": 0, "m": torch.zeros_like(p), "v": torch.zeros_like(p)})
                state["step"] += 1
                state["m"].mul_(beta1).add_(grad, alpha=1 - beta1)
                state["v"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                correction1 = 1 - beta1 ** state["step"]
                correction2 = 1 - beta2 ** state["step"]
                denom = (state["v"].sqrt() / correction2 ** 0.5).add_(self.eps)
                p.addcdiv_(state["m"], denom, value=-group["lr"] / correction1)

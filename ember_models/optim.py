"""Optimizers written on ``ops``: they update a module's parameters from a dict of gradients
keyed like ``module.named_parameters()`` (what ``ops.value_and_grad`` returns)."""
from __future__ import annotations

from . import ops
from .nn import Module


class Optimizer:
    def __init__(self, module: Module, lr: float):
        if lr <= 0:
            raise ValueError(f"learning rate must be > 0, got {lr}")
        self.module = module
        self.lr = lr
        self._slots = module._slots()

    def params(self) -> dict:
        return dict(self.module.named_parameters())

    def _set(self, name, value):
        owner, attr = self._slots[name]
        object.__setattr__(owner, attr, value)

    def step(self, grads: dict) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum and weight decay."""

    def __init__(self, module, lr=0.01, momentum=0.0, weight_decay=0.0):
        super().__init__(module, lr)
        self.momentum, self.weight_decay = momentum, weight_decay
        self._velocity = {}

    def step(self, grads):
        for name, p in self.params().items():
            g = grads.get(name)
            if g is None:
                continue
            if self.weight_decay:
                g = g + self.weight_decay * p
            if self.momentum:
                v = self._velocity.get(name)
                v = g if v is None else self.momentum * v + g
                self._velocity[name] = v
                g = v
            self._set(name, p - self.lr * g)


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction and optional decoupled weight decay (AdamW)."""

    def __init__(self, module, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 clip_norm: float | None = None):
        super().__init__(module, lr)
        self.b1, self.b2 = betas
        self.eps, self.weight_decay, self.clip_norm = eps, weight_decay, clip_norm
        self.t = 0
        self._m, self._v = {}, {}

    def step(self, grads):
        self.t += 1
        if self.clip_norm is not None:
            total = sum(float(ops.item(ops.sum(g * g))) for g in grads.values()) ** 0.5
            if total > self.clip_norm:
                scale = self.clip_norm / (total + 1e-12)
                grads = {k: g * scale for k, g in grads.items()}
        c1 = 1.0 - self.b1 ** self.t
        c2 = 1.0 - self.b2 ** self.t
        for name, p in self.params().items():
            g = grads.get(name)
            if g is None:
                continue
            m = self._m.get(name)
            v = self._v.get(name)
            m = (1 - self.b1) * g if m is None else self.b1 * m + (1 - self.b1) * g
            v = (1 - self.b2) * g * g if v is None else self.b2 * v + (1 - self.b2) * g * g
            self._m[name], self._v[name] = m, v
            update = (m / c1) / (ops.sqrt(v / c2) + self.eps)
            if self.weight_decay:
                update = update + self.weight_decay * p
            self._set(name, p - self.lr * update)

"""Teeth for the distillation loss: a NumPy candidate (no refimpl) and planted bugs.

Read by tests/verify/test_teeth.py. With ``p = softmax(z_s / T)``, ``q = softmax(z_t / T)``
and ``w = alpha`` (1 without labels)::

    L = w T^2 / N sum q (log q - log p) + (1 - alpha) / N sum -log softmax(z_s)_y,
    dz_s = w T / N (p - q) + (1 - alpha) / N (softmax(z_s) - onehot(y)),
    dz_t = w T / N q (log q - log p - KL_n)   (per sample n).
"""

from __future__ import annotations

import numpy as np
from _teeth_numpy import GRADIENT_CHECKS, class_teeth

FORWARD_CHECKS = {"matches ground truth", "matches refimpl forward"}


def log_softmax(z):
    d = z - z.max(axis=1, keepdims=True)
    return d - np.log(np.exp(d).sum(axis=1, keepdims=True))


class Distillation:
    def __init__(self, bug=None):
        self.bug = bug

    def parts(self, s, t, temperature):
        student_t = 1.0 if self.bug == "student not softened" else temperature
        log_p, log_q = log_softmax(s / student_t), log_softmax(t / temperature)
        return log_p, log_q, np.exp(log_q)

    def factor(self, temperature):
        return temperature if self.bug == "T instead of T^2" else temperature ** 2

    def forward(self, s, t, labels=None, *, temperature, alpha=0.5):
        n = s.shape[0]
        log_p, log_q, q = self.parts(s, t, temperature)
        if self.bug == "KL from the student to the teacher":
            kl = np.sum(np.exp(log_p) * (log_p - log_q))
        else:
            kl = np.sum(q * (log_q - log_p))
        divisor = n * s.shape[1] if self.bug == "mean over every entry, not batchmean" else n
        soft = self.factor(temperature) * kl / divisor
        if labels is None:
            return soft
        hard = -np.sum(log_softmax(s)[np.arange(n), labels]) / n
        return alpha * soft + (1 - alpha) * hard

    def vjp(self, s, t, G, labels=None, *, temperature, alpha=0.5):
        n = s.shape[0]
        log_p, log_q, q = self.parts(s, t, temperature)
        w = 1.0 if labels is None else alpha
        scale = G * w * self.factor(temperature) / temperature / n
        ds = scale * (np.exp(log_p) - q)
        a = log_q - log_p
        dt = scale * q * (a - np.sum(q * a, axis=1, keepdims=True))
        if self.bug == "teacher detached (zero cotangent)":
            dt = np.zeros_like(t)
        if labels is not None:
            hard = np.exp(log_softmax(s))
            hard[np.arange(n), labels] -= 1.0
            ds = ds + G * (1 - alpha) / n * hard
        return ds, dt, None


_CAUGHT_BY = {
    "KL from the student to the teacher": FORWARD_CHECKS,
    "T instead of T^2": FORWARD_CHECKS | {"high-temperature limit"},
    "mean over every entry, not batchmean": FORWARD_CHECKS,
    "student not softened": {"soft term vanishes at equal logits"},
    "teacher detached (zero cotangent)": GRADIENT_CHECKS,
}

TEETH = {"distillation_loss": class_teeth(Distillation, "forward", "vjp", _CAUGHT_BY, _CAUGHT_BY)}

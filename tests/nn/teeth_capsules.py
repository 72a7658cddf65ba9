"""Teeth for squash and dynamic routing: NumPy candidates (no refimpl) and planted bugs.

Read by tests/verify/test_teeth.py. ``squash(s) = f(n) s`` with ``f = n / (1 + n^2)``
evaluated as ``1 / (n + 1/n)`` (no ``n^2``), cotangent ``f G + n f'(n) u <u, G>``
(``u = s / n``); routing unrolls Procedure 1 and backpropagates through every
iteration (couplings, squash and the agreement updates).
"""

from __future__ import annotations

import numpy as np
from _teeth_numpy import GRADIENT_CHECKS, class_teeth

FORWARD_CHECKS = {"matches ground truth", "matches refimpl forward"}


def norm(s):
    big = np.max(np.abs(s), axis=-1, keepdims=True)
    safe = np.where(big > 0, big, 1.0)
    return big * np.sqrt(np.sum((s / safe) ** 2, axis=-1, keepdims=True))


def squash_parts(s, bug=None):
    """``(n, f, n f')``."""
    n = norm(s)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if bug == "|s|^2 formed (overflows)":
            sq = np.sum(s * s, axis=-1, keepdims=True)
            return n, np.sqrt(sq) / (1 + sq), n * (1 - sq) / (1 + sq) ** 2
        if bug == "s / |s| at zero (NaN)":
            f = np.sqrt(n * n) / (1 + n * n) * n / n
        else:
            f = np.where(n > 0, 1.0 / (n + 1.0 / np.where(n > 0, n, 1.0)), 0.0)
            if bug == "epsilon 1e-7 under the root":
                f = n * n / (1 + n * n) / np.sqrt(n * n + 1e-7)
    r = np.minimum(n, 1.0 / np.maximum(n, 1e-300))
    slope = np.sign(1.0 - n) * r * np.abs(1.0 - r * r) / (1.0 + r * r) ** 2
    return n, f, slope


def squash(s, bug=None):
    return squash_parts(s, bug)[1] * s


def squash_backward(s, G, bug=None):
    n, f, slope = squash_parts(s)
    u = s / np.where(n > 0, n, 1.0)
    if bug == "radial term without the factor n":
        slope = slope / np.where(n > 0, n, 1.0)
    return f * G + slope * u * np.sum(u * G, axis=-1, keepdims=True)


class Squash:
    def __init__(self, bug=None):
        self.bug = bug

    def forward(self, s):
        return squash(s, self.bug)

    def vjp(self, s, G):
        return (squash_backward(s, G, self.bug),)


def softmax(b, axis=-1):
    e = np.exp(b - b.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


class Routing:
    def __init__(self, bug=None):
        self.bug = bug

    def trace(self, u, n_iter):
        if self.bug == "predictions read as (n_out, n_in) by reshape":
            u = u.reshape(u.shape[:-3] + (u.shape[-2], u.shape[-3], u.shape[-1])).swapaxes(-2, -3)
        b = np.zeros(u.shape[:-1], u.dtype)
        steps = []
        for _ in range(n_iter):
            axis = -2 if self.bug == "softmax over the input capsules" else -1
            c = softmax(b, axis)
            s = np.einsum("...ij,...ijd->...jd", c, u)
            v = squash(s)
            steps.append((c, s, v))
            agreement = np.einsum("...ijd,...jd->...ij", u, v)
            b = agreement if self.bug == "logits replaced, not accumulated" else b + agreement
        return u, steps

    def forward(self, u_hat, n_iter=3):
        return self.trace(u_hat, n_iter)[1][-1][2]

    def vjp(self, u_hat, G, n_iter=3):
        u, steps = self.trace(u_hat, n_iter)
        du, db, g_v = np.zeros_like(u), None, G
        for c, s, v in reversed(steps):
            if db is not None:
                g_v = np.einsum("...ij,...ijd->...jd", db, u)
                du += db[..., None] * v[..., None, :, :]
            g_s = squash_backward(s, g_v)
            du += c[..., None] * g_s[..., None, :, :]
            if self.bug == "couplings detached (no gradient through b)":
                db = np.zeros_like(c)
                continue
            g_c = np.einsum("...ijd,...jd->...ij", u, g_s)
            here = c * (g_c - np.sum(c * g_c, axis=-1, keepdims=True))
            db = here if db is None else db + here
        return (du,)


def _teeth(cls, caught_by):
    return class_teeth(cls, "forward", "vjp", caught_by, caught_by)


TEETH = {
    "squash": _teeth(Squash, {
        "|s|^2 formed (overflows)": {"no overflow at the float maximum"},
        "s / |s| at zero (NaN)": {"zero capsules"},
        "epsilon 1e-7 under the root": FORWARD_CHECKS,
        "radial term without the factor n": GRADIENT_CHECKS,
    }),
    "dynamic_routing": _teeth(Routing, {
        "softmax over the input capsules": FORWARD_CHECKS | {
            "one iteration is the squash of the uniform average"},
        "logits replaced, not accumulated": FORWARD_CHECKS,
        "predictions read as (n_out, n_in) by reshape": {"permuting the input capsules"},
        "couplings detached (no gradient through b)": GRADIENT_CHECKS,
    }),
}

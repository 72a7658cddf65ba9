"""Record of :mod:`refimpl.nn.distillation` (docs/conventions.rst, section 4.11).

Ground truth is Hinton et al.'s loss written from its definition: softmaxes
``exp(z / T) / sum exp(z / T)``, the KL from the teacher's softened
distribution to the student's, ``T^2`` times its batch mean, plus ``1 - alpha``
times the batch mean of ``-log softmax(z_s)_y`` (autograd.numpy for the naive
forward). Cases draw 1 to 4 samples of 2 to 5 classes, ``T`` in ``[0.5, 5]``,
``alpha`` in ``[0, 1]`` and labels or none. The properties: at equal logits
the soft term and both its cotangents vanish; at high temperature the
``T^2``-scaled student cotangent tends to Hinton's ``(z_s - z_t) / (N C)``
for zero-mean logits.
"""

from __future__ import annotations

import autograd.numpy as anp
import numpy as np
from hypothesis import strategies as st

from refimpl.nn.distillation import distillation_loss, distillation_loss_vjp

from ...checks import rel_error, run_outputs, run_vjp, worst
from ...registry import Anchor, Case, Op, Primal, Property, register
from ...strategies import rng
from .categorical import softmax_definition

# float32: the textbook sum q (log q - log p), PyTorch's KLDivLoss, loses relative accuracy
# to cancellation when the softened distributions are close (a KL of 1e-3 from terms of
# 1e-1); refimpl's centred log1p/expm1 form does not, but candidates are held to the
# textbook's accuracy.
TOL = {"float64": 1e-11, "float32": 5e-4}
REFERENCES = (
    "Hinton, Vinyals and Dean 2015, Distilling the knowledge in a neural network "
    "(arXiv:1503.02531), section 2",
    "PyTorch documentation, torch.nn.KLDivLoss (reduction='batchmean') and "
    "torch.nn.functional.cross_entropy",
)


def distillation_reference(np_, student_logits, teacher_logits, labels=None, temperature=1.0,
                           alpha=0.5):
    """``alpha T^2 mean_n KL(q_n || p_n) + (1 - alpha) mean_n -log p^1_{n y_n}`` (soft term
    alone without labels)."""
    n = student_logits.shape[0]
    p = softmax_definition(np_, student_logits / temperature)
    q = softmax_definition(np_, teacher_logits / temperature)
    soft = temperature ** 2 * np_.sum(q * (np_.log(q) - np_.log(p))) / n
    if labels is None:
        return soft
    picked = softmax_definition(np_, student_logits)[np.arange(n), labels]
    return alpha * soft - (1.0 - alpha) * np_.sum(np_.log(picked)) / n


@st.composite
def _cases(draw, labels=None, equal=False, hot=False):
    """Logits ``N(0, 2^2)``; ``labels`` forced on/off when given; ``equal``: teacher = student;
    ``hot``: zero-mean logits at ``T = 1000``."""
    gen = draw(rng())
    n, c = draw(st.integers(1, 4)), draw(st.integers(2, 5))
    student = 2.0 * gen.standard_normal((n, c))
    teacher = student.copy() if equal else 2.0 * gen.standard_normal((n, c))
    primals = {"student_logits": student, "teacher_logits": teacher}
    with_labels = draw(st.booleans()) if labels is None else labels
    if with_labels:
        primals["labels"] = gen.integers(0, c, n)
    params = {"temperature": 1000.0 if hot else float(gen.uniform(0.5, 5.0)),
              "alpha": float(gen.uniform(0.0, 1.0))}
    if hot:
        for name in ("student_logits", "teacher_logits"):
            primals[name] = primals[name] - primals[name].mean(axis=1, keepdims=True)
    return Case(primals, params)


def _cotangents(impl, case, ctx):
    got = run_vjp(OP, impl, case, ctx, [np.array(1.0)])
    return got["student_logits"][0], got["teacher_logits"][0]


def _equal_logits(impl, case, ctx):
    """Student = teacher, no labels: the loss and both cotangents are 0."""
    loss = run_outputs(OP, impl, case, ctx)["out"]
    d_student, d_teacher = _cotangents(impl, case, ctx)
    size = np.linalg.norm(case.primals["student_logits"])  # the cotangents' natural scale
    return worst({"output": rel_error(loss, 0.0, scale=1.0),
                  "cotangent of student_logits": rel_error(d_student, 0 * d_student, scale=size),
                  "cotangent of teacher_logits": rel_error(d_teacher, 0 * d_teacher, scale=size)})


def _high_temperature(impl, case, ctx):
    """``T = 1000``, zero-mean logits, no labels: ``dL/dz_s -> (z_s - z_t) / (N C)`` (Hinton 2.1).

    The ``T^2`` factor makes the limit independent of ``T``; the error is ``O(|z| / T)``.
    """
    d_student, _ = _cotangents(impl, case, ctx)
    z_s, z_t = (ctx.rounded(case.primals[n]) for n in ("student_logits", "teacher_logits"))
    return rel_error(d_student, (z_s - z_t) / z_s.size)


def _numpy(s, t, labels=None, **params):
    return distillation_reference(np, s, t, labels, **params)


def _bench_case(size):
    """``size = (n, c)``: student and teacher logits ``N(0, 2^2)`` and labels."""
    gen = np.random.default_rng(0)
    return Case({"student_logits": 2.0 * gen.standard_normal(size),
                 "teacher_logits": 2.0 * gen.standard_normal(size),
                 "labels": gen.integers(0, size[1], size[0])},
                {"temperature": 4.0, "alpha": 0.5})


OP = register(Op(
    forward=distillation_loss,
    vjp=distillation_loss_vjp,
    primals=(Primal("student_logits"), Primal("teacher_logits"),
             Primal("labels", dtype="int64", optional=True)),
    cases=_cases,
    reference=_numpy,
    naive=lambda s, t, labels=None, **params: distillation_reference(anp, s, t, labels, **params),
    properties=(
        Property("soft term vanishes at equal logits", _equal_logits,
                 "student = teacher without labels: the loss and both cotangents are 0",
                 cases=lambda: _cases(labels=False, equal=True)),
        Property("high-temperature limit", _high_temperature,
                 "T = 1000, zero-mean logits: the student's cotangent equals (z_s - z_t) / (N C) "
                 "(Hinton et al. 2.1) within O(|z| / T)", tolerance={"float64": 1e-2,
                                                                     "float32": 1e-2},
                 cases=lambda: _cases(labels=False, hot=True)),
    ),
    tolerance=TOL,
    convention="alpha T^2 KL(softmax(z_t / T) || softmax(z_s / T)) averaged over the batch "
               "(PyTorch's KLDivLoss(reduction='batchmean') on log_softmax(z_s / T)) plus "
               "(1 - alpha) cross_entropy(z_s, labels) (mean, T = 1); the soft term alone "
               "without labels; the teacher's cotangent is the mathematical one (not detached).",
    section="4.11",
    references=REFERENCES,
    bench_case=_bench_case, bench_sizes=((256, 10), (4096, 1000)),
    bench_anchor=Anchor("definition"),
))

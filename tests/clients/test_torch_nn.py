"""PyTorch as a client of verify: torch.nn.functional layers and captum attributions.

Written as a PyTorch developer checks their own code: each candidate is the
natural torch call (``F.linear``, ``F.conv2d``, ``F.max_pool2d``, ...,
``F.scaled_dot_product_attention``) or captum's class, taking the torch
tensors ``verify`` hands it (``from_numpy="torch"``), and the VJP is
``torch.autograd.grad`` of that forward, for every op at once
(``torch_autograd_vjp``, tests/clients/_frameworks.py). A network is the list of :mod:`refimpl.nn` layers
verify draws, their arrays torch tensors: :func:`torch_module` turns it into
an ``nn.Sequential`` (captum needs modules), :func:`torch_network` into plain
functional calls (whose parameters autograd differentiates).

Conventions mapped, by the records' named options:

* BatchNorm's running statistics are differentiable primals, and PyTorch's
  ``native_batch_norm`` does not differentiate them: the candidate is the
  frozen form ``x * w / sqrt(v + eps) + (b - m w / sqrt(v + eps))``
  (torchvision's ``FrozenBatchNorm2d``), which autograd does.
* captum's LRP rules run their own hooks on one ``nn.Linear`` / ``nn.Conv2d``
  with the backward pass seeded by ``R``; captum's stabiliser is
  ``z + eps sgn(z)``, ``sgn(0) = +1`` (the record's ``stabilizer="sign"``),
  with ``eps`` its ``STABILITY_FACTOR`` (1e-9 by default: set to the record's
  ``epsilon``); ``GammaRule`` and ``Alpha1_Beta0_Rule`` change the weights
  only (the records' ``weights_only=True``); ``set_bias_to_zero`` is
  ``zero_bias``. The other rules (alpha-beta with beta > 0, z^B, w^2, flat)
  are zennit's, which needs torchvision: not run here.
* captum's ``IntegratedGradients`` with ``method="gausslegendre"`` is the
  record's default; the zero baseline is the record's ``baseline=None``.

Bugs a framework could ship are planted at the end, each caught with the
failing property named. Skipped without torch (captum's checks without captum).
"""

import pytest
from _frameworks import (
    DTYPES,
    Client,
    PlantedBug,
    assert_caught,
    assert_every_op_accounted_for,
    assert_passes,
    refine,
    torch_autograd_vjp,
)

import verify

torch = pytest.importorskip("torch")
F = torch.nn.functional
FRAMEWORK = "torch"


# -- layers ---------------------------------------------------------------------------------


def frozen_batch_norm(x, weight, bias, running_mean, running_var, eps=1e-5):
    """torchvision's FrozenBatchNorm2d, any number of trailing axes after the channels."""
    scale = weight * torch.rsqrt(running_var + eps)
    shape = (-1,) + (1,) * (x.ndim - 2)
    return x * scale.reshape(shape) + (bias - running_mean * scale).reshape(shape)


def _pool_args(layer):
    return layer.kernel_size, layer.stride


TORCH_LAYERS = {
    "Linear": lambda l, x: F.linear(x, l.weight, l.bias),
    "Conv2d": lambda l, x: F.conv2d(x, l.weight, l.bias, l.stride, l.padding),
    "AvgPool2d": lambda l, x: F.avg_pool2d(x, *_pool_args(l)),
    "MaxPool2d": lambda l, x: F.max_pool2d(x, *_pool_args(l)),
    "AdaptiveAvgPool2d": lambda l, x: F.adaptive_avg_pool2d(x, l.output_size),
    "ReLU": lambda l, x: F.relu(x),
    "Tanh": lambda l, x: torch.tanh(x),
    "Sigmoid": lambda l, x: torch.sigmoid(x),
    "BatchNorm": lambda l, x: frozen_batch_norm(x, l.weight, l.bias, l.running_mean,
                                                l.running_var, l.eps),
    "Flatten": lambda l, x: torch.flatten(x, 1),
}


def torch_network(layers, x):
    """The layers applied in order by torch.nn.functional (autograd reaches every parameter)."""
    for layer in layers:
        x = TORCH_LAYERS[type(layer).__name__](layer, x)
    return x


def _module(layer):
    """One refimpl layer as the torch.nn module holding its tensors (eval mode)."""
    name = type(layer).__name__
    if name == "Linear":
        module = torch.nn.Linear(*layer.weight.shape[::-1], bias=layer.bias is not None)
    elif name == "Conv2d":
        o, i, kh, kw = layer.weight.shape
        module = torch.nn.Conv2d(i, o, (kh, kw), layer.stride, layer.padding,
                                 bias=layer.bias is not None)
    elif name in ("AvgPool2d", "MaxPool2d"):
        return getattr(torch.nn, name)(*_pool_args(layer))
    elif name == "AdaptiveAvgPool2d":
        return torch.nn.AdaptiveAvgPool2d(layer.output_size)
    elif name == "BatchNorm":
        module = torch.nn.BatchNorm1d(layer.weight.shape[0], eps=layer.eps)
        module._check_input_dim = lambda x: None  # one class for (N, C) and (N, C, H, W)
    else:
        return getattr(torch.nn, name)()
    module = module.to(next(iter(layer.arrays().values())).dtype)
    with torch.no_grad():
        for field, value in layer.arrays().items():
            getattr(module, field).copy_(value)
    return module.eval()


def torch_module(layers):
    """The network as an ``nn.Sequential`` of fresh modules (captum hooks modules)."""
    return torch.nn.Sequential(*(_module(layer) for layer in layers)).eval()


def torch_squash(s):
    """Capsule squash with the norm scaled by the largest component (no overflow, 0 at 0)."""
    big = s.abs().amax(dim=-1, keepdim=True)
    unit = s / torch.where(big > 0, big, torch.ones_like(big))
    n = big * torch.linalg.vector_norm(unit, dim=-1, keepdim=True)
    # |s|^2 / (1 + |s|^2) s / |s| = s n / (1 + n^2), without forming n^2 (finite to the maximum).
    factor = torch.where(n > 1, 1 / (1 / torch.where(n > 1, n, 1) + n), n / (1 + n * n))
    return factor * s


def torch_dynamic_routing(u_hat, n_iter=3):
    """Procedure 1 of Sabour et al.: couplings softmax over parents, logits from 0."""
    b = torch.zeros(u_hat.shape[:-1], dtype=u_hat.dtype)
    for _ in range(n_iter):
        c = torch.softmax(b, dim=-1)
        v = torch_squash((c[..., None] * u_hat).sum(dim=-3))
        b = b + (u_hat * v[..., None, :, :]).sum(dim=-1)
    return v


def torch_distillation(student_logits, teacher_logits, labels=None, *, temperature, alpha=0.5):
    """Hinton's loss: T^2 KL(batchmean) of the softened distributions, plus cross-entropy."""
    soft = temperature ** 2 * F.kl_div(F.log_softmax(student_logits / temperature, dim=1),
                                       F.log_softmax(teacher_logits / temperature, dim=1),
                                       reduction="batchmean", log_target=True)
    if labels is None:
        return soft
    return alpha * soft + (1 - alpha) * F.cross_entropy(student_logits, labels)


def torch_memory_readout(u, q):
    """Soft memory read: attention of one query over the memory rows, unscaled."""
    return F.scaled_dot_product_attention(q[..., None, :], u, u, scale=1.0)[..., 0, :]


LAYER_CANDIDATES = {
    "linear": F.linear,
    "conv2d": F.conv2d,
    "batch_norm": frozen_batch_norm,
    "avg_pool2d": F.avg_pool2d,
    "max_pool2d": F.max_pool2d,
    "adaptive_avg_pool2d": F.adaptive_avg_pool2d,
    "relu": F.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "flatten": lambda x: x.reshape(x.shape[0], -1),  # nn.Flatten refuses (N,); refimpl: (N, 1)
    "softmax": lambda x, axis=-1: torch.softmax(x, dim=axis),
    "log_softmax": lambda x, axis=-1: torch.log_softmax(x, dim=axis),
    "sequential": torch_network,
    "scaled_dot_product_attention": F.scaled_dot_product_attention,
    "memory_readout": torch_memory_readout,
    "squash": torch_squash,
    "dynamic_routing": torch_dynamic_routing,
    "distillation_loss": torch_distillation,
}
LAYER_CLIENTS = {op: Client(op, f, torch_autograd_vjp(op, f)) for op, f in LAYER_CANDIDATES.items()}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op_name", sorted(LAYER_CLIENTS))
def test_torch_layer_passes(op_name, dtype):
    assert_passes(LAYER_CLIENTS[op_name], FRAMEWORK, dtype)


# -- attributions: captum's classes on the network as torch modules -----------------------------

@pytest.fixture(scope="module")
def captum():
    return pytest.importorskip("captum.attr")


def _captum_method(name, **attribute_options):
    """``forward(layers, x, target, **params)`` by captum's ``name`` on the network's modules."""
    def forward(layers, x, target, **params):
        import captum.attr
        method = getattr(captum.attr, name)(torch_module(layers))
        return method.attribute(x, target=target, **attribute_options, **params)
    forward.__name__ = f"captum_{name}"
    return forward


def captum_integrated_gradients(layers, x, target, baseline=None, *, n_steps=50,
                                method="gausslegendre", trapezoid="captum"):
    """captum's IntegratedGradients with its convergence delta; baseline None is zero.

    ``trapezoid`` is read by ``riemann_trapezoid`` only, whose cases keep captum's weights.
    """
    import captum.attr
    ig = captum.attr.IntegratedGradients(torch_module(layers))
    return ig.attribute(x, baselines=baseline, target=target, n_steps=n_steps, method=method,
                        return_convergence_delta=True)


def _noisy_saliencies(layers, x, target, noise, abs):
    """captum's Saliency at every ``x + noise[k]`` (the record gives the noise: NoiseTunnel draws
    its own)."""
    import captum.attr
    saliency = captum.attr.Saliency(torch_module(layers))
    return torch.stack([saliency.attribute(x + n, target=target, abs=abs) for n in noise])


def captum_smoothgrad(layers, x, target, noise, *, abs=True):
    return _noisy_saliencies(layers, x, target, noise, abs).mean(dim=0)


def captum_vargrad(layers, x, target, noise, *, abs=True):
    """NoiseTunnel's vargrad: the population variance E[g^2] - E[g]^2 over the noise."""
    g = _noisy_saliencies(layers, x, target, noise, abs)
    return (g * g).mean(dim=0) - g.mean(dim=0) ** 2


def captum_sensitivity(layers, x, target):
    import captum.attr
    return captum.attr.Saliency(torch_module(layers)).attribute(x, target=target, abs=False) ** 2


def captum_grad_cam(layers, x, target, layer, *, relu=False):
    import captum.attr
    net = torch_module(layers)
    return captum.attr.LayerGradCam(net, net[layer]).attribute(x, target=target,
                                                              relu_attributions=relu)


def captum_guided_grad_cam(layers, x, target, layer, *, mode="nearest"):
    import captum.attr
    net = torch_module(layers)
    return captum.attr.GuidedGradCam(net, net[layer]).attribute(x, target=target,
                                                               interpolate_mode=mode)


def captum_occlusion(layers, x, target, window, strides=1, baseline=0.0, *,
                     perturbations_per_eval=8):
    """captum's Occlusion; it averages in float32 (``total.float() / count``) whatever the
    input's dtype (the record's ``float32_average``): the result cast back to x's dtype."""
    import captum.attr
    return captum.attr.Occlusion(torch_module(layers)).attribute(
        x, sliding_window_shapes=tuple(window), strides=strides, baselines=baseline,
        target=target, perturbations_per_eval=perturbations_per_eval).to(x.dtype)


def captum_feature_ablation(layers, x, target, feature_mask, baseline=0.0, *,
                            perturbations_per_eval=8):
    import captum.attr
    return captum.attr.FeatureAblation(torch_module(layers)).attribute(
        x, baselines=baseline, target=target, feature_mask=feature_mask[None],
        perturbations_per_eval=perturbations_per_eval)


def captum_upsample(maps, size, mode="bilinear"):
    import captum.attr
    return captum.attr.LayerAttribution.interpolate(maps, tuple(size), interpolate_mode=mode)


def torch_cam(layers, x, target):
    """Zhou et al.'s CAM: the last Linear's target row over the features the pooling averages."""
    features = torch_network(layers[:-3], x)  # ... -> global pooling -> Flatten -> Linear
    weights = layers[-1].weight[target]  # (N, K)
    return (weights[:, :, None, None] * features).sum(dim=1, keepdim=True)


def torch_activation_maximization(layers, x0, unit, *, l2=0.01, lr=0.1, n_steps=100):
    """Plain SGD on -(f_u(x) - l2 |x|^2), summed over the samples (they do not interact)."""
    x = x0.detach().clone().requires_grad_()
    optimizer = torch.optim.SGD([x], lr=lr)

    def objective():
        score = torch_network(layers, x).gather(1, unit[:, None])[:, 0]
        return score - l2 * (x * x).flatten(1).sum(dim=1)

    with torch.enable_grad():
        for _ in range(n_steps):
            optimizer.zero_grad()
            (-objective().sum()).backward()
            optimizer.step()
    with torch.no_grad():
        return x.detach(), objective()


ATTRIBUTION_CANDIDATES = {
    "saliency": _captum_method("Saliency"),
    "input_x_gradient": _captum_method("InputXGradient"),
    "guided_backprop": _captum_method("GuidedBackprop"),
    "deconvnet": _captum_method("Deconvolution"),
    "sensitivity": captum_sensitivity,
    "smoothgrad": captum_smoothgrad,
    "vargrad": captum_vargrad,
    "integrated_gradients": captum_integrated_gradients,
    "grad_cam": captum_grad_cam,
    "guided_grad_cam": captum_guided_grad_cam,
    "occlusion": captum_occlusion,
    "feature_ablation": captum_feature_ablation,
    "upsample": captum_upsample,
    "refine": refine,
    "cam": torch_cam,
    "activation_maximization": torch_activation_maximization,
}


def _captum_trapezoid_cases():
    """The record's cases less the textbook trapezoid (weights 1/(n-1)), which captum lacks."""
    return verify.get_op("integrated_gradients").cases().filter(
        lambda case: case.params.get("method") != "riemann_trapezoid"
        or case.params.get("trapezoid", "captum") == "captum")


#: captum rounds to float32 inside float64 attributions: the IG quadrature weights
#: (``torch.tensor(step_sizes)``, the record's ``float32_weights``) and occlusion's average
#: (``total.float() / count``, ``float32_average``). Its float64 results agree to float32's
#: precision, so they are checked at that tolerance (the records' float32 one stays).
CAPTUM_FLOAT64 = {"float64": 2e-7}
CAPTUM_OPTIONS = {
    "integrated_gradients": {
        "cases": _captum_trapezoid_cases, "rtol": CAPTUM_FLOAT64,
        "left_out": {"exact on linear networks": "draws the textbook trapezoid, not captum's"}},
    "occlusion": {"rtol": CAPTUM_FLOAT64},
}
#: Attributions whose record has a VJP: autograd's of the candidate.
DIFFERENTIABLE = ("cam", "upsample", "refine")
ATTRIBUTION_CLIENTS = {
    op: Client(op, f, torch_autograd_vjp(op, f) if op in DIFFERENTIABLE else None,
               **CAPTUM_OPTIONS.get(op, {}))
    for op, f in ATTRIBUTION_CANDIDATES.items()}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op_name", sorted(ATTRIBUTION_CLIENTS))
def test_captum_attribution_passes(op_name, dtype, captum):
    assert_passes(ATTRIBUTION_CLIENTS[op_name], FRAMEWORK, dtype)


# -- captum's LRP rules, one layer at a time ----------------------------------------------------


def captum_rule_relevance(module, rule, x, R):
    """Relevance at ``x`` by captum's ``rule`` on ``module``, the backward pass seeded with ``R``.

    The steps of ``captum.attr.LRP.attribute`` on one layer: a forward pass that stores the
    activations and then modifies the weights (``forward_hook_weights``), hooks that restore
    the activations and divide the output's gradient by captum's stabilised ``z``
    (``forward_hook``), and the gradient times the input. captum seeds the backward pass with
    the target's one-hot; the records give ``R``.
    """
    module.activations = {}
    handle = module.register_forward_hook(rule.forward_hook_weights)
    module(x)
    handle.remove()
    handles = [module.register_forward_pre_hook(rule.forward_pre_hook_activations),
               module.register_forward_hook(rule.forward_hook)]
    try:
        with torch.enable_grad():
            leaf = x.detach().requires_grad_()
            (relevance,) = torch.autograd.grad(module(leaf), leaf, R)
    finally:
        for h in handles:
            h.remove()
    return relevance


def captum_rule(rule_class, **rule_options):
    """``forward(x, weight, R, bias=None, *, epsilon, ...)`` by captum's ``rule_class``."""
    def forward(x, weight, R, bias=None, *, epsilon, stabilizer="sign", zero_bias=False,
                weights_only=True, stride=1, padding=0, **params):
        import captum.attr._utils.lrp_rules as rules
        if stabilizer != "sign" or not weights_only:
            raise ValueError("captum's stabiliser is z + eps sgn(z), sgn(0) = +1 ('sign'); its "
                             "rules change the weights only")
        options = {"set_bias_to_zero": zero_bias} if rule_class != "EpsilonRule" else {}
        rule = getattr(rules, rule_class)(**rule_options, **options, **params)
        rule.STABILITY_FACTOR = epsilon  # captum's eps (1e-9 unless EpsilonRule(epsilon))
        return captum_rule_relevance(_weighted(x, weight, bias, stride, padding), rule, x, R)
    forward.__name__ = f"captum_{rule_class}"
    return forward


def _weighted(x, weight, bias, stride, padding):
    """``nn.Linear`` or ``nn.Conv2d`` holding ``weight`` and ``bias``."""
    from refimpl.nn import Conv2d, Linear
    layer = Conv2d(weight, bias, stride, padding) if weight.ndim == 4 else Linear(weight, bias)
    return _module(layer)


def captum_lrp_norm(x, R, *, kernel_size, stride=None, epsilon, stabilizer="sign"):
    """captum's default rule on average pooling: EpsilonRule on ``nn.AvgPool2d``."""
    import captum.attr._utils.lrp_rules as rules
    if stabilizer != "sign":
        raise ValueError("captum's stabiliser is z + eps sgn(z), sgn(0) = +1 ('sign')")
    pool = torch.nn.AvgPool2d(kernel_size, stride)
    return captum_rule_relevance(pool, rules.EpsilonRule(epsilon), x, R)


#: op -> (candidate, the record's options captum has): its stabiliser, its gamma and z+ on
#: the weights only (captum's GammaRule, Alpha1_Beta0_Rule), no zero_bias for EpsilonRule.
CAPTUM_RULES = {
    "lrp_epsilon": (captum_rule("EpsilonRule"), {"stabilizer": "sign", "zero_bias": False}),
    "lrp_gamma": (captum_rule("GammaRule"), {"stabilizer": "sign", "weights_only": True}),
    "lrp_zplus": (captum_rule("Alpha1_Beta0_Rule"), {"stabilizer": "sign", "weights_only": True}),
    "lrp_norm": (captum_lrp_norm, {"stabilizer": "sign"}),
}


def _cases_having(op_name, convention):
    """The record's cases in ``convention`` (params by name), captum's."""
    return lambda: verify.get_op(op_name).cases().filter(
        lambda case: all(case.params.get(k) == v for k, v in convention.items()))


RULE_CLIENTS = {op: Client(op, f, cases=_cases_having(op, convention))
                for op, (f, convention) in CAPTUM_RULES.items()}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op_name", sorted(RULE_CLIENTS))
def test_captum_lrp_rule_passes(op_name, dtype, captum):
    assert_passes(RULE_CLIENTS[op_name], FRAMEWORK, dtype)


# -- planted framework bugs: each caught, by the property named -------------------------------


def _sign_without_zero_fix(rule):
    """captum's output hook as it would be with ``torch.sign`` alone: S(0) = 0 at z = 0."""
    def hook_output(outputs):
        return lambda grad: grad / (outputs + torch.sign(outputs) * rule.STABILITY_FACTOR)
    rule._create_backward_hook_output = hook_output
    return rule


def lrp_epsilon_sign_zero_bug(x, weight, R, bias=None, *, epsilon, stride=1, padding=0, **_):
    import captum.attr._utils.lrp_rules as rules
    rule = _sign_without_zero_fix(rules.EpsilonRule(epsilon))
    return captum_rule_relevance(_weighted(x, weight, bias, stride, padding), rule, x, R)


def lrp_epsilon_default_epsilon_bug(x, weight, R, bias=None, *, stride=1, padding=0, **_):
    """captum's EpsilonRule() with its own default (1e-9), not the record's epsilon."""
    import captum.attr._utils.lrp_rules as rules
    return captum_rule_relevance(_weighted(x, weight, bias, stride, padding), rules.EpsilonRule(),
                                 x, R)


def softmax_without_max_bug(x, axis=-1):
    e = torch.exp(x)
    return e / e.sum(dim=axis, keepdim=True)


def linear_float32_accumulation_bug(x, weight, bias=None):
    """A float64 op that multiplies in float32 (TF32 or a float32 kernel) and casts back."""
    out = F.linear(x.float(), weight.float(), None if bias is None else bias.float())
    return out.to(x.dtype)


class _BatchNormHalfBug(torch.autograd.Function):
    """Frozen batch norm with a hand-written backward whose d/dvar lacks the 1/2 of
    d (v + eps)^(-1/2) / dv = -(v + eps)^(-3/2) / 2."""

    @staticmethod
    def forward(ctx, x, weight, bias, mean, var, eps):
        ctx.save_for_backward(x, weight, mean, var)
        ctx.eps = eps
        return frozen_batch_norm(x, weight, bias, mean, var, eps)

    @staticmethod
    def backward(ctx, g):
        x, weight, mean, var = ctx.saved_tensors
        shape = (-1,) + (1,) * (x.ndim - 2)
        axes = [0] + list(range(2, x.ndim))
        r = torch.rsqrt(var + ctx.eps)
        centred = x - mean.reshape(shape)
        dx = g * (weight * r).reshape(shape)
        dw = (g * centred).sum(axes) * r
        dmean = -(g.sum(axes)) * weight * r
        dvar = -(g * centred).sum(axes) * weight * r ** 3  # the 1/2 is missing
        return dx, dw, g.sum(axes), dmean, dvar, None


def batch_norm_half_bug(x, weight, bias, running_mean, running_var, eps=1e-5):
    return _BatchNormHalfBug.apply(x, weight, bias, running_mean, running_var, eps)


def squash_textbook_bug(s):
    """The squash as papers write it: NaN at s = 0, overflow of |s|^2 at large s."""
    sq = (s * s).sum(dim=-1, keepdim=True)
    return sq / (1 + sq) * s / torch.sqrt(sq)


def integrated_gradients_right_riemann_bug(layers, x, target, baseline=None, *, n_steps=50,
                                           **_):
    """The method argument dropped: always captum's riemann_right."""
    return captum_integrated_gradients(layers, x, target, baseline, n_steps=n_steps,
                                       method="riemann_right")


def guided_backprop_is_saliency_bug(layers, x, target):
    """Guided backprop that forgets the ReLUs' rule: the plain signed gradient."""
    import captum.attr
    return captum.attr.Saliency(torch_module(layers)).attribute(x, target=target, abs=False)


BUGS = [
    PlantedBug("lrp_epsilon", "stabiliser's sign at z = 0 (torch.sign(0) = 0)",
               ("matches ground truth",), forward=lrp_epsilon_sign_zero_bug),
    PlantedBug("lrp_epsilon", "captum's default epsilon instead of the given one",
               ("matches ground truth",), forward=lrp_epsilon_default_epsilon_bug),
    PlantedBug("softmax", "softmax without subtracting the max",
               ("logits near the float maximum",), forward=softmax_without_max_bug),
    PlantedBug("linear", "float32 accumulation inside a float64 linear",
               ("matches ground truth",), forward=linear_float32_accumulation_bug),
    PlantedBug("batch_norm", "batch norm's variance cotangent without its 1/2",
               ("vjp: matches refimpl",), forward=batch_norm_half_bug),
    PlantedBug("squash", "squash without scaling (NaN at 0, overflow)", ("zero capsules",),
               forward=squash_textbook_bug),
    PlantedBug("integrated_gradients", "integrated gradients ignoring the method",
               ("matches ground truth",), forward=integrated_gradients_right_riemann_bug),
    PlantedBug("guided_backprop", "guided backprop without the ReLU rule",
               ("matches ground truth",), forward=guided_backprop_is_saliency_bug),
]
CLIENTS = {**LAYER_CLIENTS, **ATTRIBUTION_CLIENTS, **RULE_CLIENTS}

_ZENNIT = "zennit's rule (captum has none); zennit needs torchvision, not installed here"
WITHOUT_TORCH_CLIENT = {
    "multi_head_attention": "torch.nn.MultiheadAttention gives NaN on a query without an allowed "
                            "key, where the record's fully_masked gives zero or uniform weights",
    "lrp": "captum's LRP picks each layer's rule by module type and seeds the target's one-hot; "
           "its rules are checked one layer at a time (lrp_epsilon, lrp_gamma, lrp_zplus, lrp_norm)",
    "lime": "captum's Lime draws its own perturbations and fits its own surrogate model",
    "lrp_alpha_beta": _ZENNIT, "lrp_zbox": _ZENNIT, "lrp_wsquare": _ZENNIT, "lrp_flat": _ZENNIT,
}


def test_torch_clients_cover_every_op_of_nn_and_attribution():
    assert_every_op_accounted_for(CLIENTS, ("nn", "attribution"), WITHOUT_TORCH_CLIENT)


@pytest.mark.parametrize("bug", BUGS, ids=lambda b: f"{b.op}-{b.description}")
def test_torch_bug_is_caught(bug, captum):
    assert_caught(bug, CLIENTS[bug.op], FRAMEWORK, autodiff=torch_autograd_vjp)

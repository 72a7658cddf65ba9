"""Deep compression of a small refimpl.nn network, end to end (docs/blocks/compression.rst).

Prune each weight matrix to 80% sparsity, share the survivors' values
through 32 k-means centroids (5-bit codes), fine-tune the centroids by the
centroid gradient against the dense network's outputs, and count the bits
of the relative index format with Huffman-coded gaps and codes. Run:
``python docs/examples/compression_pipeline.py``.
"""

import dataclasses

import numpy as np

from refimpl.compression import (
    centroid_gradient,
    compression_report,
    kmeans_quantize,
    prune_magnitude,
    shared_weights,
)
from refimpl.nn import Linear, ReLU, sequential, sequential_vjp

SPARSITY, N_CLUSTERS, INDEX_BITS = 0.8, 32, 5
gen = np.random.default_rng(0)


def dense_layer(n_in, n_out):
    """Weights mostly near zero, as trained ones are: a fifth large, the rest small."""
    large = gen.uniform(size=(n_out, n_in)) < 0.2
    w = gen.standard_normal((n_out, n_in)) * np.where(large, 2.0, 0.05) / np.sqrt(n_in)
    return Linear(w, 0.1 * gen.standard_normal(n_out))


dense = [dense_layer(32, 64), ReLU(), dense_layer(64, 64), ReLU(), dense_layer(64, 10)]
x_train, x_test = gen.standard_normal((512, 32)), gen.standard_normal((512, 32))


def relative_error(layers, x):
    target = sequential(dense, x)
    return np.linalg.norm(sequential(layers, x) - target) / np.linalg.norm(target)


# 1-2. Prune, then quantise the kept weights of every Linear layer.
weighted = [i for i, layer in enumerate(dense) if isinstance(layer, Linear)]
masks, codes, codebooks = {}, {}, {}
for i in weighted:
    w = dense[i].weight
    masks[i] = prune_magnitude(w, SPARSITY)
    fit = kmeans_quantize(w, N_CLUSTERS, mask=masks[i], init="linear")
    codes[i], codebooks[i] = fit.codes, fit.codebook


def replaced(weights):
    return [dataclasses.replace(layer, weight=weights[i]) if i in weights else layer
            for i, layer in enumerate(dense)]


def compressed():
    return replaced({i: shared_weights(codebooks[i], codes[i]) for i in weighted})


pruned = replaced({i: np.where(masks[i], dense[i].weight, 0.0) for i in weighted})
print(f"output error, pruned: {relative_error(pruned, x_test):.3f}")
print(f"output error, pruned and quantised: {relative_error(compressed(), x_test):.3f}")

# 3. Fine-tune the centroids: SGD on 0.5 ||f(x) - f_dense(x)||^2 / N, dL/dc = centroid_gradient(dL/dW).
for step in range(300):
    layers = compressed()
    residual = sequential(layers, x_train) - sequential(dense, x_train)
    grads = sequential_vjp(layers, x_train, residual / len(x_train)).layers
    for i in weighted:
        codebooks[i] = codebooks[i] - 0.05 * centroid_gradient(grads[i].weight, codes[i], N_CLUSTERS)
print(f"output error, centroids fine-tuned: {relative_error(compressed(), x_test):.3f}")

# 4. The bits: relative index (5-bit gaps, fillers), Huffman-coded gaps and codes, 32-bit centroids.
total_dense = total = total_fixed = 0
for i in weighted:
    report = compression_report(codes[i], n_clusters=N_CLUSTERS, index_bits=INDEX_BITS)
    fixed = compression_report(codes[i], n_clusters=N_CLUSTERS, index_bits=INDEX_BITS, huffman=False)
    total_dense, total = total_dense + int(report.bits_dense), total + int(report.bits_total)
    total_fixed += int(fixed.bits_total)
    print(f"layer {i}: {int(report.n_weights):5d} weights, {int(report.n_kept):4d} kept, "
          f"{int(report.n_entries) - int(report.n_kept):2d} fillers, "
          f"{report.bits_per_weight:.2f} bits per weight, ratio {report.ratio:.1f}")
print(f"network: {total_dense} bits dense, {total} compressed, ratio {total_dense / total:.1f} "
      f"({total_dense / total_fixed:.1f} without Huffman coding)")

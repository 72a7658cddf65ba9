"""verify._tree: moving layers and flows between array libraries, leaf by leaf."""

import numpy as np
import pytest

from refimpl.nn import Linear, MaxPool2d
from verify._tree import tree_leaves, tree_map


def test_tree_map_replaces_every_array_and_keeps_the_settings():
    layers = [Linear(np.ones((2, 3)), np.zeros(2)), MaxPool2d(2)]
    moved = tree_map(lambda a: a + 1.0, layers)
    assert [type(layer) for layer in moved] == [Linear, MaxPool2d]
    np.testing.assert_array_equal(moved[0].weight, np.full((2, 3), 2.0))
    np.testing.assert_array_equal(moved[0].bias, np.ones(2))
    assert (moved[1].kernel_size, moved[1].stride) == (layers[1].kernel_size, layers[1].stride)
    assert [a.sum() for a in tree_leaves(layers)] == [6.0, 0.0]  # the original is unchanged


def test_tree_map_does_not_validate_a_layer_again():
    """The layer is not constructed anew: its __init__ would run refimpl's checks on the new
    arrays (a candidate's arrays, autodiff tracers); a NaN weight shows that none ran."""
    with pytest.raises(ValueError, match="weight"):
        Linear(np.full((2, 3), np.nan))
    moved = tree_map(lambda a: np.full_like(a, np.nan), [Linear(np.ones((2, 3)))])
    assert np.isnan(moved[0].weight).all()

"""Structures of arrays (a tiny pytree): what a ``"tree"`` primal or a tree cotangent is.

A tree is an array (a leaf), a list or tuple (NamedTuples included) or dict of
trees, a dataclass whose init fields are trees, or any other value (static:
ints, strings, None). :func:`tree_map` rebuilds the structure with every
array leaf replaced, so refimpl's :mod:`refimpl.nn` layers (frozen
dataclasses) move between array libraries field by field; neither function
constructs a dataclass anew (a layer validates its arrays when made, which
would run refimpl on a candidate's arrays).
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, Callable

__all__ = ["is_array", "tree_leaves", "tree_map"]


def is_array(x) -> bool:
    """An array of any library: it has a shape and a dtype (NumPy scalars are not leaves)."""
    return hasattr(x, "shape") and hasattr(x, "dtype") and not isinstance(x, type)


def tree_map(fn: Callable, tree: Any, *others: Any) -> Any:
    """``tree`` with every array leaf ``a`` replaced by ``fn(a, *others_leaf)``.

    ``others`` are trees of the same structure (their leaves at the same places).
    """
    if is_array(tree):
        return fn(tree, *others)
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):
        return type(tree)(*(tree_map(fn, *parts) for parts in zip(tree, *others)))
    if isinstance(tree, (list, tuple)):
        return type(tree)(tree_map(fn, *parts) for parts in zip(tree, *others))
    if isinstance(tree, dict):
        return {k: tree_map(fn, v, *(o[k] for o in others)) for k, v in tree.items()}
    if dataclasses.is_dataclass(tree) and not isinstance(tree, type):
        # A copy with its fields set, not a new instance: __init__ would validate the layer
        # again, running refimpl on the new arrays (a candidate's arrays, autodiff tracers)
        # where the layer's values have already been checked.
        rebuilt = copy.copy(tree)
        for f in dataclasses.fields(tree):
            if f.init:
                object.__setattr__(rebuilt, f.name, tree_map(
                    fn, getattr(tree, f.name), *(getattr(o, f.name) for o in others)))
        return rebuilt
    return tree


def tree_leaves(tree: Any) -> list:
    """The array leaves of ``tree``, in the order :func:`tree_map` visits them.

    Walks the structure without rebuilding it.
    """
    if is_array(tree):
        return [tree]
    if isinstance(tree, (list, tuple)):
        parts = list(tree)
    elif isinstance(tree, dict):
        parts = list(tree.values())
    elif dataclasses.is_dataclass(tree) and not isinstance(tree, type):
        parts = [getattr(tree, f.name) for f in dataclasses.fields(tree) if f.init]
    else:
        return []
    return [leaf for part in parts for leaf in tree_leaves(part)]

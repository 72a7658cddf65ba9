"""The base of the layer classes: frozen dataclasses of arrays with a forward and a VJP."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from .._validation import require_same_dtype
from ..backend import get_namespace


class Layer:
    """A layer: a frozen dataclass whose fields are its parameters (arrays) and settings.

    ``forward(x)``; ``vjp(x, g)`` returns ``(dx, dlayer)``, ``dlayer`` being a
    layer of the same type holding the parameters' cotangents (settings
    unchanged); ``input_vjp(x, g)`` returns ``dx`` alone. ``kind`` groups the
    layers for the LRP rules (``"weighted"``, ``"avgpool"``, ``"maxpool"``,
    ``"activation"``, ``"reshape"``, ``"batchnorm"``).

    Layers check their parameters' finiteness when built and shapes and dtypes
    when called, not the values flowing through them: a network is scanned for
    NaN and infinity once, at its input (:func:`~refimpl.nn.sequential`'s
    ``check_finite``), not at every layer.
    """

    kind: ClassVar[str] = ""

    def arrays(self) -> dict:
        """The layer's parameter arrays by field name (``None`` fields left out)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if hasattr(getattr(self, f.name), "shape")}

    def check_input(self, x) -> None:
        """The parameters share the namespace, device and dtype of ``x``."""
        arrays = self.arrays()
        get_namespace(x=x, **arrays)
        require_same_dtype(x=x, **arrays)

    def input_vjp(self, x, g):
        """The cotangent of the input alone."""
        return self.vjp(x, g)[0]

    def vjp(self, x, g):
        """``(dx, self)``: a layer without parameters has nothing else to return."""
        return self.input_vjp(x, g), self

    def __repr__(self):
        parts = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            parts.append(f"{f.name}={tuple(value.shape)}" if hasattr(value, "shape")
                         else f"{f.name}={value!r}")
        return f"{type(self).__name__}({', '.join(parts)})"

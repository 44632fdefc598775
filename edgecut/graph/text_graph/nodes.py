"""The ONNX node builder the string graph is written with: fresh tensor names per graph, and initializers."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

CONTRIB = "ai.onnx.contrib"  # onnxruntime-extensions' operator domain


class Nodes:
    """Collects nodes for one (sub)graph, with tensor names unique in the whole model.

    A subgraph's builder comes from `sub`, sharing its parent's counter: names stay unique across the
    subgraphs of one model (a Loop body may read the outer scope), and two builds give the same names.
    """

    def __init__(self, prefix: str, counter: Iterator[int] | None = None):
        self.prefix, self.nodes = prefix, []
        self._counter = counter if counter is not None else itertools.count(1)

    def sub(self, prefix: str) -> Nodes:
        """A builder for a subgraph (If branch, Loop body) of this one's model."""
        return Nodes(prefix, self._counter)

    def names(self, op: str, n_out: int) -> list[str]:
        """Fresh output names for one node (the first one also names the node)."""
        count = next(self._counter)
        return [f"{self.prefix}/{op}_{count}_{i}" for i in range(n_out)]

    def __call__(self, op: str, inputs: Sequence[str], n_out: int = 1, domain: str = "", **attrs) -> Any:
        from onnx import helper

        outs = self.names(op, n_out)
        self.nodes.append(helper.make_node(op, list(inputs), outs, name=outs[0], domain=domain, **attrs))
        return outs[0] if n_out == 1 else outs

    def add(self, node) -> None:
        self.nodes.append(node)


def const(name: str, value: Any):
    """An initializer: a list of str becomes a string tensor, anything else a numpy array as given."""
    from onnx import numpy_helper

    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return numpy_helper.from_array(np.array([v.encode("utf-8") for v in value], dtype=object), name)
    return numpy_helper.from_array(np.asarray(value), name)

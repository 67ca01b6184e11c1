"""torch.fx tracing with the example's shapes, for models whose Python code branches on them.

Hugging Face-style models check shapes in Python (`if seq_len > max_len: raise`), and plain
fx stops there: a traced shape is a Proxy, and a Proxy cannot decide an `if`. This tracer
runs the example through the model while tracing it (leaf modules' outputs recorded in one
eager pass, every function and method evaluated on the real values), so `x.shape`,
`x.size()` and `x.dim()` return the example's numbers and shape checks pass as they do at
run time. The graph is then specialised to the example's shapes, which is all the channel
analysis needs (the model itself keeps its own code). Its one risk, Python code using a
width as a number (`x / x.shape[-1]`), is closed by recording every node whose shape was
read: the analysis refuses to prune the channels of such a tensor (`shape_reads`).
Control flow on tensor *values* still stops it (data-dependent: no single graph).

>>> class Checked(nn.Module):
...     def __init__(self):
...         super().__init__()
...         self.fc = nn.Linear(4, 4)
...     def forward(self, x):
...         if x.shape[1] > 8:  # fx alone: "symbolically traced variables cannot be used..."
...             raise ValueError("too wide")
...         return self.fc(x)
>>> gm, reads = trace_concrete(Checked(), (torch.randn(2, 4),), lambda m, q: False)
>>> [n.op for n in gm.graph.nodes], sorted(reads)
(['placeholder', 'call_module', 'output'], ['x'])
"""

from __future__ import annotations

import operator
from collections import Counter
from collections.abc import Callable
from typing import Any

import torch
from torch import fx, nn

from hirelc.inventory.measure import run_hooked


class _ShapeProxy(fx.Proxy):
    """A Proxy whose shape queries return the example's values (recorded as read)."""

    def _value(self) -> torch.Tensor | None:
        v = self.tracer.values.get(self.node)
        if isinstance(v, torch.Tensor):
            self.tracer.shape_reads.add(self.node.name)
            return v
        return None

    @property
    def shape(self) -> Any:
        v = self._value()
        return v.shape if v is not None else fx.Proxy.__getattr__(self, "shape")

    @property
    def ndim(self) -> Any:
        v = self._value()
        return v.dim() if v is not None else fx.Proxy.__getattr__(self, "ndim")

    def size(self, dim: int | None = None) -> Any:
        v = self._value()
        if v is None:
            args = (self,) if dim is None else (self, dim)
            return self.tracer.create_proxy("call_method", "size", args, {})
        return v.size() if dim is None else v.size(dim)

    def dim(self) -> Any:
        v = self._value()
        return v.dim() if v is not None else self.tracer.create_proxy("call_method", "dim", (self,), {})


def _fetch(root: nn.Module, target: str) -> Any:
    """The real value of a get_attr target, read without the tracer's patched getattr."""
    mod = root
    *path, name = target.split(".")
    for part in path:
        mod = mod._modules[part]
    for store in (mod._parameters, mod._buffers, mod.__dict__):
        if name in store:
            return store[name]
    raise AttributeError(target)


class _ConcreteTracer(fx.Tracer):
    def __init__(self, args: tuple, leaf_outputs: dict[str, list], is_leaf: Callable[[nn.Module, str], bool]) -> None:
        super().__init__()
        self.values: dict[fx.Node, Any] = {}
        self.shape_reads: set[str] = set()
        self._args, self._leaf_outputs, self._is_leaf = list(args), leaf_outputs, is_leaf
        self._calls: Counter[str] = Counter()
        self._placeholders = 0

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return self._is_leaf(m, module_qualified_name) or super().is_leaf_module(m, module_qualified_name)

    def proxy(self, node: fx.Node) -> fx.Proxy:
        return _ShapeProxy(node, self)

    def create_proxy(self, kind: str, target: Any, args: tuple, kwargs: dict, *rest: Any, **kw: Any) -> fx.Proxy:
        proxy = super().create_proxy(kind, target, args, kwargs, *rest, **kw)
        try:
            self.values[proxy.node] = self._evaluate(kind, target, args, kwargs)
        except Exception:  # no value: shape queries on it stay symbolic (and fail as in plain fx)
            pass
        return proxy

    def _evaluate(self, kind: str, target: Any, args: tuple, kwargs: dict) -> Any:
        real = lambda a: self.values[a.node] if isinstance(a, fx.Proxy) else a  # noqa: E731
        args, kwargs = fx.node.map_aggregate(args, real), fx.node.map_aggregate(kwargs, real)
        if kind == "placeholder":
            self._placeholders += 1
            return self._args[self._placeholders - 1]
        if kind == "get_attr":
            return _fetch(self.root, target)
        if kind == "call_module":  # the k-th call of this leaf in the eager pass
            self._calls[target] += 1
            return self._leaf_outputs[target][self._calls[target] - 1]
        if kind == "call_function":
            fn, kwargs = _out_of_place(target, kwargs)
            return None if fn is operator.setitem else fn(*args, **kwargs)
        if kind == "call_method":
            name = target[:-1] if target.endswith("_") and hasattr(torch.Tensor, target[:-1]) else target
            return getattr(args[0], name)(*args[1:], **kwargs)
        raise KeyError(kind)


# values are only for shapes: an in-place op is evaluated out of place, so that tracing never
# writes into the model's parameters, buffers or the recorded outputs
IN_PLACE = {operator.iadd: operator.add, operator.isub: operator.sub, operator.imul: operator.mul,
            operator.itruediv: operator.truediv}


def _out_of_place(fn: Any, kwargs: dict) -> tuple[Any, dict]:
    if kwargs.get("inplace"):
        kwargs = {**kwargs, "inplace": False}
    name = getattr(fn, "__name__", "")
    if fn in IN_PLACE:
        return IN_PLACE[fn], kwargs
    if name.endswith("_") and not name.startswith("_") and hasattr(torch, name[:-1]):
        return getattr(torch, name[:-1]), kwargs
    return fn, kwargs


def _leaf_outputs(model: nn.Module, args: tuple, is_leaf: Callable[[nn.Module, str], bool]) -> dict[str, list]:
    """Module path -> outputs of each call, for every module the tracer treats as a leaf."""
    probe = fx.Tracer()
    outputs: dict[str, list] = {}
    handles = []
    for path, mod in model.named_modules():
        if path and (is_leaf(mod, path) or probe.is_leaf_module(mod, path)):
            hook = lambda m, a, out, path=path: outputs.setdefault(path, []).append(out)  # noqa: E731
            handles.append(mod.register_forward_hook(hook))
    run_hooked(model, args, handles)
    return outputs


def trace_concrete(model: nn.Module, args: tuple,
                   is_leaf: Callable[[nn.Module, str], bool]) -> tuple[fx.GraphModule, set[str]]:
    """(graph module of `model` traced on `args` with their shapes, names of the nodes whose
    shape the model's code read). Raises whatever stops the trace. The caller freezes the
    model (it runs twice: once eagerly, once traced)."""
    tracer = _ConcreteTracer(args, _leaf_outputs(model, args, is_leaf), is_leaf)
    graph = tracer.trace(model)
    return fx.GraphModule(model, graph), tracer.shape_reads

"""`SparseLinear`: a Linear layer that stores its weight in a compressed format and runs sparse kernels.

Why a module and not a patched `F.linear`: the compact tensors must live in `state_dict` (for
compact checkpoints) and `decompile` must be able to rebuild the exact masked Linear.

Execution: with the C++ operators (`cpu.backend() == "cpp"`) the forward is one call of
`torch.ops.sparsetorch.<format>_linear` with the layer's own tensors, bias included; autograd is
the operator's (registered in C++), so the same call trains. `torch.compile` traces that call as
an opaque custom op and fuses what lies around it.

Training (documented): the forward pass runs the sparse kernel; the backward pass is dense and
masked. `dL/dx = dL/dy @ W` with `W = to_dense()`, and `dL/dvalues = (dL/dy^T @ x)` read at the
stored positions, so a step updates only the kept weights, exactly as the masked dense layer
would (its gradient is zero where the mask is off). The structure never changes during training;
to grow or prune connections, `decompile`, train the masked model, and `compile` again. Editing
an index tensor in place (the structure) after the layer was built is refused at the next call.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sparsetorch._checks import check_int
from sparsetorch.kernels import cpu, ops
from sparsetorch.kernels.formats import Dense, Format, NMPacked

_VALUE_FIELD = {"dense": "weight"}  # the trainable tensor of each format (default: "values")


def _value_field(fmt: Format) -> str:
    return _VALUE_FIELD.get(fmt.name, "values")


class _SparseLinearFn(torch.autograd.Function):
    """y = x @ W.T with the sparse kernel; backward through the dense masked weight."""

    @staticmethod
    def forward(ctx, x: Tensor, values: Tensor, module: SparseLinear) -> Tensor:
        ctx.module = module
        ctx.save_for_backward(x)
        return module.plan()(x, threads=module.threads)

    @staticmethod
    def backward(ctx, grad_y: Tensor):
        (x,) = ctx.saved_tensors
        module: SparseLinear = ctx.module
        fmt = module.fmt
        grad_x = grad_values = None
        if ctx.needs_input_grad[0]:
            grad_x = grad_y @ fmt.to_dense()  # (..., out) @ (out, in)
        if ctx.needs_input_grad[1]:
            out, inp = fmt.shape
            gw = grad_y.reshape(-1, out).t() @ x.reshape(-1, inp)  # (out, in)
            values = getattr(fmt, _value_field(fmt))
            grad_values = torch.zeros_like(values)
            flat = gw.flatten()
            if isinstance(fmt, Dense):
                grad_values.copy_(torch.where(fmt.mask(), gw, 0.0))
            else:
                picked = flat[module.positions()]
                if isinstance(fmt, NMPacked) and fmt.pad.numel():
                    picked[fmt.pad] = 0.0  # padding zeros are not weights
                grad_values.view(-1)[: picked.numel()] = picked
        return grad_x, grad_values, None


class SparseLinear(nn.Module):
    """A Linear layer `y = x @ W.T + b` whose `W` is held in a compressed `Format`.

    Args:
        fmt: the compressed weight (float32, CPU).
        bias: optional bias `(out,)`.
        threads: kernel threads, an int >= 1 (None: `torch.get_num_threads()` at each call).
        pattern: the mask's recorded pattern, for `decompile`.

    Moves and casts (`.double()`, `.half()`, `.to(...)`, `.cuda()`) are refused: the kernels run
    float32 on the CPU. A model holding these layers is guarded by `guard_casts` so that the
    refusal comes before any of its layers changes.
    """

    def __init__(
        self,
        fmt: Format,
        bias: Tensor | None = None,
        *,
        threads: int | None = None,
        pattern: str = "unstructured",
    ) -> None:
        super().__init__()
        self.format_name = fmt.name
        self.meta = {k: v for k, v in fmt.meta().items()}
        self.in_features, self.out_features = fmt.shape[1], fmt.shape[0]
        self.threads = check_threads(threads)
        self.pattern = pattern
        value_field = _value_field(fmt)
        self._fields = list(fmt.tensors())
        for name, tensor in fmt.tensors().items():
            if name == value_field:
                self.register_parameter(name, nn.Parameter(tensor.detach().clone(), requires_grad=True))
            else:
                self.register_buffer(name, tensor.detach().clone())
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone().to(torch.float32))
        self._positions: Tensor | None = None
        self._fmt: Format | None = None
        self._plans: dict[str, cpu.Plan] = {}
        self._fast = None  # (backend, eager forward) cached by `forward`
        cpu.backend()  # resolve (and load the operators) now, not first inside a torch.compile trace
        self._versions = self._index_versions()  # the structure as built (checked at each eager call)

    @property
    def fmt(self) -> Format:
        """The format over the module's current tensors (no copies; cached until `_apply`)."""
        if self._fmt is None:
            self._fmt = from_tensors_unchecked(self.meta, {k: getattr(self, k) for k in self._fields})
        return self._fmt

    def plan(self) -> cpu.Plan:
        """The kernel plan for the current backend (cached)."""
        name = cpu.backend()
        plan = self._plans.get(name)
        if plan is None:
            plan = self._plans[name] = cpu.Plan(self.fmt, name)
        return plan

    def _reset(self) -> None:
        self._fmt, self._plans, self._positions, self._fast = None, {}, None, None

    def positions(self) -> Tensor:
        """Flat `row * in + col` of each stored value (cached: the structure never changes)."""
        if self._positions is None:
            self._positions = self.fmt.positions()
        return self._positions

    @property
    def nbytes(self) -> int:
        """Bytes of the compressed weight (bias excluded)."""
        return self.fmt.nbytes

    def forward(self, x: Tensor) -> Tensor:
        if torch.compiler.is_compiling() and self.format_name != "dense" and cpu.backend() == "cpp":
            return self._op(x.contiguous(), self.bias)  # traced: the module's own tensors as graph inputs
        fast = self.__dict__.get("_fast")
        name = cpu.backend()
        if fast is None or fast[0] != name:
            fast = self._fast = (name, self._make_call(name))
        return fast[1](x)

    def _make_call(self, name: str):
        """The eager forward on backend `name`, with the layer's tensors bound (rebuilt after `_reset`)."""
        if self.format_name != "dense" and name == "cpp":
            op, (a, b, c), tail = ops.op_args(self._live_format())
            i0, i1 = (getattr(self, f) for f in ops.index_fields(self.format_name))
            versions = self._versions
            bias, threads = self.bias, self.threads

            def call(x: Tensor) -> Tensor:
                if (i0._version, i1._version) != versions:
                    raise RuntimeError(
                        f"SparseLinear({self.format_name}): its index tensors were edited in place after the "
                        "layer was built, so they no longer match its values; decompile and compile again "
                        "(or load a checkpoint through sparsetorch.kernels.load_compiled)"
                    )
                try:
                    x = x.contiguous()  # as nn.Linear accepts any strides
                except AttributeError:
                    raise TypeError(f"sparse linear expects a torch.Tensor, got {type(x).__name__}") from None
                if threads is None:
                    return op(x, a, b, c, bias, *tail)
                with cpu.num_threads(threads):
                    return op(x, a, b, c, bias, *tail)

            return call
        if self.format_name == "dense":  # kept dense: F.linear unless a (masked) gradient is needed
            weight, bias, slow = self.weight, self.bias, self._torch_forward

            def dense_call(x: Tensor) -> Tensor:
                if not torch.is_grad_enabled() or not (
                    weight.requires_grad or getattr(x, "requires_grad", False)
                ):
                    try:
                        return F.linear(x, weight, bias)
                    except (RuntimeError, TypeError):
                        pass  # the slow path raises again, with our clearer message where we have one
                return slow(x)

            return dense_call
        return self._torch_forward

    def _op(self, x: Tensor, bias: Tensor | None) -> Tensor:
        """The C++ operator with the module's registered tensors (what torch.compile traces)."""
        name = self.format_name
        op = getattr(torch.ops.sparsetorch, f"{name}_linear").default
        head = tuple(getattr(self, f) for f in ops.OP_FIELDS[name])
        return op(x, *head, bias, *ops.op_tail(name, self.in_features, self.meta))

    def _live_format(self) -> Format:
        """The format over the module's tensors, parameters kept (so the operator's autograd sees them)."""
        return from_tensors_unchecked(self.meta, {k: getattr(self, k) for k in self._fields}, detach=False)

    def _torch_forward(self, x: Tensor) -> Tensor:
        """The pure-torch path (no C++ operators, or a layer kept dense)."""
        values = self.weight if self.format_name == "dense" else self.values
        if torch.is_grad_enabled() and (values.requires_grad or x.requires_grad):
            y = _SparseLinearFn.apply(x, values, self)
            return y if self.bias is None else y + self.bias
        if self.format_name == "dense":  # a layer kept dense: F.linear, checked only when it fails
            try:
                return F.linear(x, self.weight, self.bias)
            except (RuntimeError, TypeError):
                cpu.check_input(self.fmt, x)  # our clearer message, where we have one
                raise
        return self.plan()(x, threads=self.threads, bias=self.bias)

    def extra_repr(self) -> str:
        fmt = self.fmt
        density = (
            fmt.nnz / max(self.in_features * self.out_features, 1) if not isinstance(fmt, Dense) else 1.0
        )
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, format={self.format_name}, "
            f"pattern={self.pattern}, stored={density:.3f}, bytes={fmt.nbytes}, bias={self.bias is not None}"
        )

    def _apply(self, fn, recurse=True):
        refuse_cast(fn)  # only float32 CPU: refuse a move or cast instead of failing in the kernel
        self._reset()
        result = super()._apply(fn, recurse)
        self._versions = self._index_versions()
        return result

    def __getstate__(self) -> dict:
        # copies and pickles drop the caches: a bound call would still point at this layer's tensors
        return {**self.__dict__, "_fmt": None, "_plans": {}, "_positions": None, "_fast": None}

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        self._versions = self._index_versions()  # the copy's own tensors

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Validate the structure that would result before anything is copied: a kernel trusts its
        # index tensors, and a half-loaded layer is worse than a refused load.
        from sparsetorch.kernels.validate import from_tensors

        merged = {k: state_dict.get(prefix + k, getattr(self, k)).detach() for k in self._fields}
        from_tensors(self.meta, {k: v.contiguous() for k, v in merged.items()})
        self._reset()
        result = super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._versions = self._index_versions()
        return result

    def _index_versions(self) -> tuple[int, ...]:
        """In-place version counters of the index tensors (the structure); the values may change."""
        if self.format_name not in ops.OP_FIELDS:  # a layer kept dense has no index tensors
            return ()
        return tuple(getattr(self, f)._version for f in ops.index_fields(self.format_name))


def from_tensors_unchecked(meta: dict, tensors: dict[str, Tensor], *, detach: bool = True) -> Format:
    """Rebuild a format without validation (the module's own tensors are trusted); `detach=False`
    keeps parameters as they are (for the C++ operators, whose autograd then reaches them)."""
    from sparsetorch.kernels.formats import FORMATS

    cls = FORMATS[meta["format"]]
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name == "shape":
            kwargs["shape"] = tuple(meta["shape"])
        elif f.name in tensors:
            t = tensors[f.name]
            kwargs[f.name] = t.detach() if detach and isinstance(t, nn.Parameter) else t
        else:
            kwargs[f.name] = meta[f.name]
    return cls(**kwargs)


def check_threads(threads: object) -> int | None:
    """`threads` if it is None or an int >= 1 (not a bool), else a ValueError naming it."""
    return None if threads is None else check_int("threads", threads, minimum=1)


def refuse_cast(fn) -> None:
    """Raise if `fn` (what `nn.Module._apply` maps over tensors) would move or cast a float32 CPU tensor.

    Raises:
        ValueError: a move off the CPU.
        TypeError: a cast to another dtype.
    """
    probe = fn(torch.zeros(1))
    if probe.device.type != "cpu":
        raise ValueError(
            f"SparseLinear runs on the CPU; got a move to {probe.device}. Use sparsetorch.kernels.decompile "
            "first (CUDA 2:4 / BSR paths: sparsetorch.kernels.cuda)"
        )
    if probe.dtype != torch.float32:
        raise TypeError(f"SparseLinear stores float32; got a cast to {probe.dtype}. Decompile first.")


class _CastGuard:
    """`_apply` of a module holding `SparseLinear` layers: refuse a cast before any layer changes.

    Why: `nn.Module._apply` casts children one after another, so a `SparseLinear` refusing on
    its own would leave the layers before it cast (a half-cast model). Holds the module strongly
    (pickle and deepcopy follow the cycle), importable by name so a pickled model loads back.
    """

    def __init__(self, module: nn.Module) -> None:
        self.module = module

    def __call__(self, fn, recurse: bool = True):
        if recurse and any(isinstance(m, SparseLinear) for m in self.module.modules()):
            refuse_cast(fn)
        return type(self.module)._apply(self.module, fn, recurse)


def guard_casts(model: nn.Module) -> None:
    """Put a `_CastGuard` on every module that holds a `SparseLinear` (below it), remove it elsewhere."""
    every = dict(model.named_modules(remove_duplicate=False))  # a shared layer: each of its parents
    holders: set[int] = set()
    for fqn, module in every.items():
        if isinstance(module, SparseLinear):
            parts = fqn.split(".") if fqn else []
            holders |= {id(every[".".join(parts[:i])]) for i in range(len(parts))}
    for module in every.values():
        guarded = isinstance(module.__dict__.get("_apply"), _CastGuard)
        if id(module) in holders and not guarded:
            object.__setattr__(module, "_apply", _CastGuard(module))
        elif id(module) not in holders and guarded:
            object.__delattr__(module, "_apply")

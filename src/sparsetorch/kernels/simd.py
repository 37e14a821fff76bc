"""SIMD building blocks for the numba kernels of the activation-sparse FFN (`kernels.gather`).

A 16 x fp32 vector value type `f32x16` (an LLVM `<16 x float>`, so it lives in a register) and a
few `@intrinsic`s over it (zero, broadcast, load, store, add, multiply, FMA, horizontal sum). They
lower to generic LLVM vector IR, correct on any CPU numba targets. (The sparse-linear kernels are
C++ custom operators now, `kernels/csrc`.)
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.extending import intrinsic, models, register_model

F32 = ir.FloatType()
I32 = ir.IntType(32)
V16 = ir.VectorType(F32, 16)
V8 = ir.VectorType(F32, 8)
IV16 = ir.VectorType(I32, 16)


class F32x16Type(types.Type):
    """A `<16 x float>` register value."""

    def __init__(self) -> None:
        super().__init__(name="f32x16")


f32x16 = F32x16Type()


@register_model(F32x16Type)
class _F32x16Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type) -> None:
        super().__init__(dmm, fe_type, V16)


def declare(builder: ir.IRBuilder, name: str, ret: ir.Type, args: list[ir.Type]) -> ir.Function:
    module = builder.module
    existing = module.globals.get(name)
    if existing is not None:
        return existing
    return ir.Function(module, ir.FunctionType(ret, args), name=name)


def elem_ptr(context, builder, arrty, arr, idx, idxty) -> ir.Value:
    """Pointer to `arr[idx]` of a C-contiguous 1-D array (no bounds check)."""
    ary = context.make_array(arrty)(context, builder, arr)
    idx = context.cast(builder, idx, idxty, types.intp)
    return builder.gep(ary.data, [idx])


def splat(builder, value: ir.Value, vec: ir.VectorType) -> ir.Value:
    """`value` in all 16 lanes of a `vec` (<16 x float> or <16 x i32>)."""
    one = builder.insert_element(ir.Constant(vec, None), value, ir.Constant(I32, 0))
    return builder.shuffle_vector(one, one, ir.Constant(IV16, [0] * 16))


def vec_load(context, builder, arrty, arr, idx, idxty, vec: ir.VectorType = V16) -> ir.Value:
    """Load a `vec` (16 or 8 floats) from `arr[idx:]`, unaligned."""
    ptr = elem_ptr(context, builder, arrty, arr, idx, idxty)
    return builder.load(builder.bitcast(ptr, vec.as_pointer()), align=4)


@intrinsic
def vzero(typingctx):
    """A zero vector."""

    def codegen(context, builder, sig, args):
        return ir.Constant(V16, [0.0] * 16)

    return f32x16(), codegen


@intrinsic
def vbcast(typingctx, x):
    """`x` in all 16 lanes."""

    def codegen(context, builder, sig, args):
        v = context.cast(builder, args[0], sig.args[0], types.float32)
        return splat(builder, v, V16)

    return f32x16(x), codegen


@intrinsic
def vload(typingctx, arr, idx):
    """`arr[idx : idx + 16]` (float32, unaligned, unchecked)."""
    if not (isinstance(arr, types.Array) and arr.dtype == types.float32):
        return None

    def codegen(context, builder, sig, args):
        return vec_load(context, builder, sig.args[0], args[0], args[1], sig.args[1])

    return f32x16(arr, idx), codegen


@intrinsic
def vstore(typingctx, arr, idx, v):
    """`arr[idx : idx + 16] = v` (float32, unaligned, unchecked)."""
    if not (isinstance(arr, types.Array) and arr.dtype == types.float32):
        return None

    def codegen(context, builder, sig, args):
        ptr = elem_ptr(context, builder, sig.args[0], args[0], args[1], sig.args[1])
        builder.store(args[2], builder.bitcast(ptr, V16.as_pointer()), align=4)
        return context.get_dummy_value()

    return types.none(arr, idx, v), codegen


@intrinsic
def vadd(typingctx, a, b):
    def codegen(context, builder, sig, args):
        return builder.fadd(args[0], args[1])

    return f32x16(a, b), codegen


@intrinsic
def vmul(typingctx, a, b):
    def codegen(context, builder, sig, args):
        return builder.fmul(args[0], args[1])

    return f32x16(a, b), codegen


@intrinsic
def vfma(typingctx, a, b, c):
    """`a * b + c`, fused."""

    def codegen(context, builder, sig, args):
        fn = declare(builder, "llvm.fma.v16f32", V16, [V16, V16, V16])
        return builder.call(fn, list(args))

    return f32x16(a, b, c), codegen


@intrinsic
def vhsum(typingctx, v):
    """Sum of the 16 lanes (a log-depth tree), as float32."""

    def codegen(context, builder, sig, args):
        x = args[0]
        width = 16
        while width > 1:
            half = width // 2
            lo = builder.shuffle_vector(x, x, ir.Constant(ir.VectorType(I32, half), list(range(half))))
            hi = builder.shuffle_vector(x, x, ir.Constant(ir.VectorType(I32, half), list(range(half, width))))
            x = builder.fadd(lo, hi)
            width = half
        return builder.extract_element(x, ir.Constant(I32, 0))

    return types.float32(v), codegen

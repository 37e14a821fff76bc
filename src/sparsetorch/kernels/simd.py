"""SIMD building blocks for numba kernels: a 16 x fp32 vector type and AVX-512 intrinsics.

Why: numba's auto-vectoriser turns sparse decoding into gathers, which are 1.5-2x slower than
scalar code on Zen 5 (measured; see docs/kernels.md). The fast kernels instead decode with
register-form `vexpandps` (bitmask) and `vpermt2ps` (2:4), keep several accumulators in zmm
registers and prefetch explicitly. This module exposes those instructions to numba as a value
type `f32x16` (an LLVM `<16 x float>`, so it lives in a register) and a handful of `@intrinsic`s.

Everything here lowers to generic LLVM vector IR and is correct on any target. The x86 AVX-512
intrinsics (`vexpand`, `vpermt2_24`, `vgather`, `vcompress_cols`, and `vdecode24` beside them) are
in `simd_x86`; callers must check `HAS_AVX512` (see `cpu.py`) before compiling a kernel that uses
them. The LLVM types and codegen helpers (`V16`, `IV16`, `declare`, `elem_ptr`, `splat`) are public
because `simd_x86` builds on them.
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


@intrinsic
def vlane(typingctx, v, i):
    """Lane `i` of `v` as float32."""

    def codegen(context, builder, sig, args):
        idx = context.cast(builder, args[1], sig.args[1], types.int32)
        return builder.extract_element(args[0], idx)

    return types.float32(v, i), codegen


@intrinsic
def prefetch(typingctx, arr, idx):
    """Software prefetch of `arr[idx]` into all cache levels (a hint: never faults)."""
    if not isinstance(arr, types.Array):
        return None

    def codegen(context, builder, sig, args):
        ptr = elem_ptr(context, builder, sig.args[0], args[0], args[1], sig.args[1])
        i8p = ir.IntType(8).as_pointer()
        fn = declare(builder, "llvm.prefetch.p0", ir.VoidType(), [i8p, I32, I32, I32])
        builder.call(
            fn, [builder.bitcast(ptr, i8p), ir.Constant(I32, 0), ir.Constant(I32, 3), ir.Constant(I32, 1)]
        )
        return context.get_dummy_value()

    return types.none(arr, idx), codegen


@intrinsic
def popcount(typingctx, x):
    """Number of set bits of an integer, as int64."""
    if not isinstance(x, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        ty = args[0].type
        fn = declare(builder, f"llvm.ctpop.i{ty.width}", ty, [ty])
        return context.cast(builder, builder.call(fn, [args[0]]), sig.args[0], types.int64)

    return types.int64(x), codegen


@intrinsic
def ctz(typingctx, x):
    """Index of the lowest set bit (undefined for 0), as int64."""
    if not isinstance(x, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        ty = args[0].type
        fn = declare(builder, f"llvm.cttz.i{ty.width}", ty, [ty, ir.IntType(1)])
        r = builder.call(fn, [args[0], ir.Constant(ir.IntType(1), 1)])
        return context.cast(builder, r, sig.args[0], types.int64)

    return types.int64(x), codegen


@intrinsic
def vload2x8(typingctx, arr, i, j):
    """`arr[i : i + 8]` in lanes 0-7 and `arr[j : j + 8]` in lanes 8-15 (two rows of an 8-wide panel)."""
    if not (isinstance(arr, types.Array) and arr.dtype == types.float32):
        return None

    def codegen(context, builder, sig, args):
        lo = vec_load(context, builder, sig.args[0], args[0], args[1], sig.args[1], V8)
        hi = vec_load(context, builder, sig.args[0], args[0], args[2], sig.args[2], V8)
        return builder.shuffle_vector(lo, hi, ir.Constant(IV16, list(range(16))))

    return f32x16(arr, i, j), codegen


@intrinsic
def vbcast2(typingctx, a, b):
    """`a` in lanes 0-7, `b` in lanes 8-15."""

    def codegen(context, builder, sig, args):
        va = context.cast(builder, args[0], sig.args[0], types.float32)
        vb = context.cast(builder, args[1], sig.args[1], types.float32)
        v = builder.insert_element(ir.Constant(V16, None), va, ir.Constant(I32, 0))
        v = builder.insert_element(v, vb, ir.Constant(I32, 1))
        return builder.shuffle_vector(v, v, ir.Constant(IV16, [0] * 8 + [1] * 8))

    return f32x16(a, b), codegen


@intrinsic
def vstore8_halves(typingctx, arr, idx, v, accumulate):
    """`arr[idx : idx + 8] (+)= v[0:8] + v[8:16]` (with `accumulate`, add to what is there)."""
    if not (isinstance(arr, types.Array) and arr.dtype == types.float32):
        return None

    def codegen(context, builder, sig, args):
        v = args[2]
        lo = builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(I32, 8), list(range(8))))
        hi = builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(I32, 8), list(range(8, 16))))
        s = builder.fadd(lo, hi)
        old = vec_load(context, builder, sig.args[0], args[0], args[1], sig.args[1], V8)
        acc = context.cast(builder, args[3], sig.args[3], types.boolean)
        s = builder.select(acc, builder.fadd(s, old), s)
        ptr = elem_ptr(context, builder, sig.args[0], args[0], args[1], sig.args[1])
        builder.store(s, builder.bitcast(ptr, V8.as_pointer()), align=4)
        return context.get_dummy_value()

    return types.none(arr, idx, v, accumulate), codegen


def _stride_masks(s: int) -> tuple[list[int], list[int]]:
    """Shuffle masks of one transpose stage: swap the off-diagonal s x s blocks of rows i, i + s."""
    lo, hi = [], []
    for k in range(16):
        blk, off = divmod(k, 2 * s)
        base = blk * 2 * s
        lo.append(base + off if off < s else 16 + base + off - s)
        hi.append(base + s + off if off < s else 16 + base + off)
    return lo, hi


def _transpose16_codegen(context, builder, sig, args, with_bias: bool) -> None:
    """Load 16 rows of 16 floats, transpose them in registers (4 stages of 16 two-input shuffles,
    one `vpermt2ps` each), optionally add a bias vector to each output row, store 16 rows."""
    i64 = ir.IntType(64)

    def ptr_at(ty, arr, off, i, stride):
        ary = context.make_array(ty)(context, builder, arr)
        idx = builder.add(off, builder.mul(stride, ir.Constant(i64, i)))
        return builder.bitcast(builder.gep(ary.data, [idx]), V16.as_pointer())

    cast = [context.cast(builder, args[k], sig.args[k], types.int64) for k in (1, 2, 4, 5)]
    so, ss, do, ds = cast
    rows = [builder.load(ptr_at(sig.args[0], args[0], so, i, ss), align=4) for i in range(16)]
    s = 8
    while s:
        lo, hi = _stride_masks(s)
        for i in range(16):
            if not i & s:
                a, b = rows[i], rows[i + s]
                rows[i] = builder.shuffle_vector(a, b, ir.Constant(IV16, lo))
                rows[i + s] = builder.shuffle_vector(a, b, ir.Constant(IV16, hi))
        s //= 2
    if with_bias:
        bo = context.cast(builder, args[7], sig.args[7], types.int64)
        bias = builder.load(ptr_at(sig.args[6], args[6], bo, 0, ir.Constant(i64, 0)), align=4)
        rows = [builder.fadd(r, bias) for r in rows]
    for i in range(16):
        builder.store(rows[i], ptr_at(sig.args[3], args[3], do, i, ds), align=4)


@intrinsic
def transpose16(typingctx, src, so, ss, dst, do, ds):
    """dst[do + j * ds + i] = src[so + i * ss + j] for i, j < 16: a 16 x 16 fp32 block, in registers.

    Why: panel packing and unpacking are transposes, and element-wise copies ran at ~1 ns per
    float (torch's `transpose(...).contiguous()` too); this is 16 loads, 64 shuffles, 16 stores.
    """

    def codegen(context, builder, sig, args):
        _transpose16_codegen(context, builder, sig, args, with_bias=False)
        return context.get_dummy_value()

    return types.none(src, so, ss, dst, do, ds), codegen


@intrinsic
def transpose16_bias(typingctx, src, so, ss, dst, do, ds, bias, bo):
    """`transpose16`, then `bias[bo : bo + 16]` added to each of the 16 stored rows."""

    def codegen(context, builder, sig, args):
        _transpose16_codegen(context, builder, sig, args, with_bias=True)
        return context.get_dummy_value()

    return types.none(src, so, ss, dst, do, ds, bias, bo), codegen

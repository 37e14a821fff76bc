"""The x86 AVX-512 intrinsics of the numba kernels: register-form `vexpandps`, `vpermt2ps`,
`vgatherdps` and `vpcompressd`, and the 2:4 index decoding they share.

Kept apart from `simd` (the generic vector IR every CPU numba targets can run): these lower to
x86-only LLVM intrinsics, so callers check `cpu.HAS_AVX512` before compiling a kernel that uses them.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from sparsetorch.kernels.simd import I32, IV16, V16, declare, elem_ptr, f32x16, splat


@intrinsic
def vexpand(typingctx, vals, off, mask):
    """Register-form `vexpandps`: lane i gets the next of `vals[off:]` where bit i of `mask` is set.

    Loads 16 floats from `vals[off]` unconditionally: `vals` must be padded by 16 elements.
    """
    if not (isinstance(vals, types.Array) and isinstance(mask, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        ptr = elem_ptr(context, builder, sig.args[0], args[0], args[1], sig.args[1])
        packed = builder.load(builder.bitcast(ptr, V16.as_pointer()), align=4)
        m16 = builder.trunc(args[2], ir.IntType(16)) if args[2].type.width > 16 else args[2]
        bits = builder.bitcast(m16, ir.VectorType(ir.IntType(1), 16))
        fn = declare(
            builder,
            "llvm.x86.avx512.mask.expand.v16f32",
            V16,
            [V16, V16, ir.VectorType(ir.IntType(1), 16)],
        )
        return builder.call(fn, [packed, ir.Constant(V16, [0.0] * 16), bits])

    return f32x16(vals, off, mask), codegen


_BASE24 = [4 * (i // 2) for i in range(16)]  # value j of a 32-column window sits in group j // 2
_SHIFT24 = [2 * i for i in range(16)]


def _offsets24(builder, word: ir.Value) -> ir.Value:
    """<16 x i32>: lane j = `4 * (j // 2) + ((word >> 2j) & 3)`, value j's column in its 32-column window."""
    w = (
        builder.trunc(word, I32)
        if word.type.width > 32
        else builder.zext(word, I32)
        if word.type.width < 32
        else word
    )
    pos = builder.and_(
        builder.lshr(splat(builder, w, IV16), ir.Constant(IV16, _SHIFT24)), ir.Constant(IV16, [3] * 16)
    )
    return builder.add(pos, ir.Constant(IV16, _BASE24))


@intrinsic
def vpermt2_24(typingctx, x, xoff, word):
    """2:4 select with `vpermt2ps`: lane j = `x[xoff + 4 * (j // 2) + ((word >> 2j) & 3)]`.

    `word` holds 16 two-bit positions (value j's position inside its group of 4), so one call
    turns 32 input columns and one 32-bit index word into the 16 inputs of 16 kept weights.
    """
    if not (isinstance(x, types.Array) and isinstance(word, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        ptr = elem_ptr(context, builder, sig.args[0], args[0], args[1], sig.args[1])
        vp = builder.bitcast(ptr, V16.as_pointer())
        lo = builder.load(vp, align=4)
        hi = builder.load(builder.gep(vp, [ir.Constant(I32, 1)]), align=4)
        idx = _offsets24(builder, args[2])
        fn = declare(builder, "llvm.x86.avx512.vpermi2var.ps.512", V16, [V16, IV16, V16])
        return builder.call(fn, [lo, idx, hi])

    return f32x16(x, xoff, word), codegen


@intrinsic
def vgather(typingctx, x, cols, j):
    """`x[cols[j : j + 16]]` with one `vgatherdps` (uint16 or int32 column indices, unchecked).

    Why a gather here when decoding avoids them elsewhere: for CSR at batch 1, `x` sits in L1 and
    a 16-lane gather per 16 stored values was 1.3-1.5x faster than the 4-accumulator scalar loop
    (measured at 70-99% on 4096x4096, 1 and 2 threads).
    """
    if not (
        isinstance(x, types.Array)
        and x.dtype == types.float32
        and isinstance(cols, types.Array)
        and cols.dtype in (types.uint16, types.int32)
    ):
        return None

    def codegen(context, builder, sig, args):
        xa = context.make_array(sig.args[0])(context, builder, args[0])
        width = sig.args[1].dtype.bitwidth
        cptr = elem_ptr(context, builder, sig.args[1], args[1], args[2], sig.args[2])
        idx = builder.load(builder.bitcast(cptr, ir.VectorType(ir.IntType(width), 16).as_pointer()), align=2)
        if width == 16:
            idx = builder.zext(idx, IV16)
        i8p = ir.IntType(8).as_pointer()
        mask_t = ir.VectorType(ir.IntType(1), 16)
        fn = declare(builder, "llvm.x86.avx512.mask.gather.dps.512", V16, [V16, i8p, IV16, mask_t, I32])
        all_lanes = ir.Constant(mask_t, [1] * 16)
        return builder.call(
            fn,
            [
                ir.Constant(V16, [0.0] * 16),
                builder.bitcast(xa.data, i8p),
                idx,
                all_lanes,
                ir.Constant(I32, 4),
            ],
        )

    return f32x16(x, cols, j), codegen


@intrinsic
def vdecode24(typingctx, buf, off, base, word):
    """Store the 16 columns of one 2:4 index word at `buf[off : off + 16]` (int32).

    Value i of the word sits at column `base + 4 * (i // 2) + ((word >> 2i) & 3)`: the index
    arithmetic of `vpermt2_24`, stored instead of used as a permutation (one shift, and, add).
    """
    if not (isinstance(buf, types.Array) and buf.dtype == types.int32 and isinstance(word, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        ptr = elem_ptr(context, builder, sig.args[0], args[0], args[1], sig.args[1])
        b = context.cast(builder, args[2], sig.args[2], types.int32)
        bv = splat(builder, b, IV16)
        cols = builder.add(_offsets24(builder, args[3]), bv)
        builder.store(cols, builder.bitcast(ptr, IV16.as_pointer()), align=4)
        return context.get_dummy_value()

    return types.none(buf, off, base, word), codegen


@intrinsic
def vcompress_cols(typingctx, buf, off, base, mask):
    """Store `base + i` for each set bit i of `mask`, packed, at `buf[off:]` (register `vpcompressd`).

    Writes 16 int32 lanes unconditionally: `buf` needs 16 elements of slack past the last index.
    """
    if not (isinstance(buf, types.Array) and buf.dtype == types.int32 and isinstance(mask, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        ptr = elem_ptr(context, builder, sig.args[0], args[0], args[1], sig.args[1])
        b = context.cast(builder, args[2], sig.args[2], types.int32)
        bv = splat(builder, b, IV16)
        lanes = builder.add(bv, ir.Constant(IV16, list(range(16))))
        m = args[3]
        m16 = builder.trunc(m, ir.IntType(16)) if m.type.width > 16 else m
        bits = builder.bitcast(m16, ir.VectorType(ir.IntType(1), 16))
        fn = declare(
            builder,
            "llvm.x86.avx512.mask.compress.v16i32",
            IV16,
            [IV16, IV16, ir.VectorType(ir.IntType(1), 16)],
        )
        packed = builder.call(fn, [lanes, ir.Constant(IV16, [0] * 16), bits])
        builder.store(packed, builder.bitcast(ptr, IV16.as_pointer()), align=4)
        return context.get_dummy_value()

    return types.none(buf, off, base, mask), codegen

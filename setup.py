"""Builds sparsetorch's C++ custom operators (src/sparsetorch/kernels/csrc) into `sparsetorch._C`.

Everything else lives in pyproject.toml. The extension compiles against the torch of the build
environment, so install with `pip install --no-build-isolation -e .` after torch (the Makefile
does). Without torch at build time, without a C++ compiler, or with SPARSETORCH_NO_CPP=1, the
package installs without it and the kernels fall back to pure torch, saying why.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from setuptools import setup

CSRC = Path("src/sparsetorch/kernels/csrc")
NOTE = "sparsetorch: C++ kernels not built ({}); sparse layers will use the pure-torch fallback (correct, slow)"


def _say(reason: str) -> None:
    print("\n" + "=" * 100 + "\n" + NOTE.format(reason) + "\n" + "=" * 100 + "\n", file=sys.stderr)


def _extension():
    if os.environ.get("SPARSETORCH_NO_CPP", "") not in ("", "0"):
        _say("SPARSETORCH_NO_CPP is set")
        return [], {}
    try:
        from torch.utils.cpp_extension import BuildExtension, CppExtension
    except ImportError:
        _say("torch is not importable at build time: install torch first, then pip install --no-build-isolation")
        return [], {}

    class OptionalBuildExt(BuildExtension):
        """Build the extension if this machine can; otherwise install without it, saying why."""

        def build_extension(self, ext) -> None:
            try:
                super().build_extension(ext)
            except Exception as exc:  # a missing compiler or a compile error: the fallbacks still work
                _say(f"{type(exc).__name__}: {exc}")

    sources = sorted(str(p) for p in CSRC.glob("*.cpp"))
    # -fopenmp: at::parallel_for is a header template that runs serially without it; with it, the
    # library binds to torch's own libgomp (one thread pool). No -ffast-math: NaN must propagate.
    # -Wno-maybe-uninitialized: GCC 12 warns inside its own avx512fintrin.h (`__Y = __Y`).
    flags = ["-O3", "-fopenmp", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=fast", "-DNDEBUG"]
    flags += ["-g0", "-Wno-maybe-uninitialized"]
    ext = CppExtension(
        "sparsetorch._C",
        sources,
        extra_compile_args={"cxx": flags},
        extra_link_args=["-fopenmp"],
        py_limited_api=True,
    )
    return [ext], {"build_ext": OptionalBuildExt.with_options(no_python_abi_suffix=False)}


ext_modules, cmdclass = _extension()
setup(
    ext_modules=ext_modules,
    cmdclass=cmdclass,
    options={"bdist_wheel": {"py_limited_api": "cp310"}} if ext_modules else {},
)

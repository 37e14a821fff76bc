"""The repository's own modules never shadow an installed package, and every benchmark script starts.

A module whose name is also an installed distribution's top-level module wins the import when its
folder heads `sys.path`: `benchmarks/kernels.py` once replaced the Hugging Face `kernels` package that
transformers imports, and every later MiniLM load in the test process failed. The folders that can
head `sys.path` are the repository root (pytest inserts it, since `tests/` is a package, and every
benchmark script swaps its own folder for it), `benchmarks/` (had a script been run without that
swap), and any folder under `tests/` or `benchmarks/` without an `__init__.py` (pytest's default
import mode inserts those).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import site
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(
    p for p in (ROOT / "benchmarks").glob("*.py") if not p.stem.startswith("__") and p.stem != "_machine"
)


def installed_top_level_names() -> set[str]:
    """Top-level module names that the venv's site-packages or the standard library provide."""
    names = set(sys.stdlib_module_names) | set(metadata.packages_distributions())
    for folder in site.getsitepackages():
        for entry in Path(folder).iterdir():
            if entry.suffix == ".py" or (entry.is_dir() and "." not in entry.name):
                names.add(entry.stem)
            elif entry.suffix == ".so":
                names.add(entry.name.split(".")[0])
    return names


def module_names(folder: Path) -> set[str]:
    """Names importable from `folder` when it heads sys.path: its .py files and its subfolders."""
    return {
        p.stem if p.suffix == ".py" else p.name
        for p in folder.iterdir()
        if (p.suffix == ".py" or (p.is_dir() and p.name.isidentifier())) and p.name != "__pycache__"
    }


def folders_without_init() -> list[Path]:
    """Folders of tests/ and benchmarks/ holding modules but no __init__.py: pytest inserts those."""
    return [
        d
        for top in ("tests", "benchmarks")
        for d in [ROOT / top, *(ROOT / top).rglob("*")]
        if d.is_dir() and any(d.glob("*.py")) and not (d / "__init__.py").exists()
    ]


def folders_that_can_head_sys_path() -> list[Path]:
    return [ROOT, ROOT / "benchmarks", *folders_without_init()]


def test_the_check_sees_installed_packages():
    installed = installed_top_level_names()
    assert {"torch", "numpy", "json", "transformers"} <= installed  # site-packages and the stdlib
    assert "sparsetorch_benchmark_scripts" not in installed


def test_no_repository_module_shadows_an_installed_one():
    installed = installed_top_level_names()
    clashes = {
        str(folder.relative_to(ROOT) / name)
        for folder in folders_that_can_head_sys_path()
        for name in module_names(folder) & installed
    }
    assert not clashes, f"repository modules named like installed packages (rename them): {sorted(clashes)}"


def test_test_and_benchmark_folders_are_packages():
    bare = [str(d.relative_to(ROOT)) for d in folders_without_init()]
    assert not bare, f"add an __init__.py to {bare}: pytest would put them on sys.path"


def test_benchmarks_do_not_put_their_folder_on_sys_path():
    assert importlib.machinery.PathFinder.find_spec("kernel_speed", sys.path) is None
    assert importlib.util.find_spec("benchmarks.kernel_speed") is not None  # tests import them so


@pytest.mark.slow
def test_every_benchmark_script_answers_help():
    """`python benchmarks/NAME.py --help` from the repository root, as a user runs them (all at once)."""
    procs = {
        p.name: subprocess.Popen(
            [sys.executable, str(p.relative_to(ROOT)), "--help"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for p in SCRIPTS
    }
    failed = {}
    for name, proc in procs.items():
        out, _ = proc.communicate(timeout=300)
        if proc.returncode != 0 or "usage:" not in out:
            failed[name] = out[-1500:]
    assert len(procs) >= 9
    assert not failed, failed

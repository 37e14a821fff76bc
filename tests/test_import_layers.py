"""The import structure: the layer contract holds (`lint-imports`), and no module imports another
module's private names (DESIGN.md, "Layers")."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"


def _module(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def private_imports() -> list[str]:
    """`file:line name from module` for every `from sparsetorch.X import _name` across modules.

    A private *submodule* imported from its own package (`from sparsetorch.kernels import
    _portable` inside `sparsetorch.kernels`) is the package's business, not a private name.
    """
    found = []
    for path in sorted((SRC / "sparsetorch").rglob("*.py")):
        here = _module(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.ImportFrom) and node.level == 0 and node.module):
                continue
            if not node.module.startswith("sparsetorch") or node.module == here:
                continue
            for alias in node.names:
                name = alias.name
                if not name.startswith("_") or name.startswith("__"):
                    continue
                own_submodule = (SRC / Path(*node.module.split(".")) / name).with_suffix(".py").exists() or (
                    SRC / Path(*node.module.split(".")) / name / "__init__.py"
                ).exists()
                if own_submodule and (here + ".").startswith(node.module + "."):
                    continue
                found.append(f"{path.relative_to(SRC)}:{node.lineno} {name} from {node.module}")
    return found


def test_no_private_names_are_imported_across_modules():
    assert private_imports() == []


def test_masks_is_a_module_not_a_function():
    import sparsetorch
    import sparsetorch.masks as M

    assert type(M).__name__ == "_CallableModule" and M is sparsetorch.masks
    assert callable(M.attach) and callable(sparsetorch.get_masks)


@pytest.mark.slow
def test_layer_contract_holds():
    lint_imports = Path(sys.executable).with_name("lint-imports")
    if not lint_imports.exists():
        found = shutil.which("lint-imports")
        if found is None:
            pytest.skip("import-linter is not installed (the dev extra)")
        lint_imports = Path(found)
    run = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]

"""English technical prose: the docstrings of the running Python's standard library, via `ast`.

Nothing to install: the `.py` sources under `sysconfig.get_paths()["stdlib"]` are walked in
sorted order, skipping the folders `site-packages`, `dist-packages`, `__pycache__`, `test`,
`tests` and `idle_test`, and every module, class and function docstring is taken with
`ast.get_docstring` (cleaned indentation), in the order `ast.walk` visits the nodes. About 1.8 MB
from 8,600 docstrings on CPython 3.11; the text depends on the exact Python version.

Split by source file, never by offset: the files that hold at least one docstring are sorted by
their path relative to the stdlib root and the rule of `sparsetorch.data._paths` applies: file
`i` goes to val when `i % 10 == 8`, to test when `i % 10 == 9`, else to train (about 80/10/10).
"""

from __future__ import annotations

import ast
import os
import sysconfig
import warnings
from functools import lru_cache
from pathlib import Path

from ._paths import check_split, missing, unit_split

EXCLUDED_DIRS = frozenset({"site-packages", "dist-packages", "__pycache__", "test", "tests", "idle_test"})
_NODES = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def _docstrings(source: bytes) -> list[str]:
    try:
        with warnings.catch_warnings():  # invalid escape sequences in old modules warn on parse
            warnings.simplefilter("ignore")
            tree = ast.parse(source)  # bytes: honours a PEP 263 coding cookie
    except (SyntaxError, ValueError, UnicodeDecodeError):
        return []
    return [doc for node in ast.walk(tree) if isinstance(node, _NODES) and (doc := ast.get_docstring(node))]


@lru_cache(maxsize=2)
def _docstrings_by_file(root: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    # (relative path, docstrings) for every file with at least one docstring, in sorted walk order.
    files: list[tuple[str, tuple[str, ...]]] = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in EXCLUDED_DIRS)
        for name in sorted(n for n in names if n.endswith(".py")):
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                docs = _docstrings(f.read())
            if docs:
                files.append((Path(os.path.relpath(path, root)).as_posix(), tuple(docs)))
    return tuple(files)


def load_stdlib_docstrings(split: str = "train", *, root: str | Path | None = None) -> str:
    """The docstrings of one split of the standard library's files, joined by blank lines.

    Args:
        split: "train", "val" or "test" (split by source file, see the module docstring).
        root: the folder to read instead of the running interpreter's stdlib.

    Returns:
        The split's docstrings separated by "\\n\\n" (cached in-process; the first call parses
        the stdlib in 2-4 s).

    Raises:
        DataNotFoundError: the stdlib sources are not on disk (e.g. a frozen or zipped Python).
        ValueError: bad split.
    """
    check_split(split)
    folder = Path(root).expanduser() if root is not None else Path(sysconfig.get_paths()["stdlib"])
    if not folder.is_dir():
        raise missing(
            "the Python standard library sources",
            how="use a Python installation that ships its stdlib as .py files, or pass root=DIR",
            tried=[folder],
        )
    files = _docstrings_by_file(str(folder.resolve()))
    if not files:
        raise missing(
            f"docstrings (no .py files with docstrings under {folder})",
            how="use a Python installation that ships its stdlib as .py files, or pass root=DIR",
        )
    return "\n\n".join(doc for i, (_, docs) in enumerate(files) if unit_split(i) == split for doc in docs)


def docstring_sentences(
    split: str = "test", *, n: int | None = None, min_chars: int = 24, max_chars: int = 200
) -> list[str]:
    """Distinct one-line sentences (a paragraph's first line, capitalized, ending in a full stop).

    Real English sentences for embedding evaluation, held out from calibration when taken from
    another split. Order is the corpus order; `n` keeps the first `n`.
    """
    seen: dict[str, None] = {}
    for doc in load_stdlib_docstrings(split).split("\n\n"):
        line = doc.strip().split("\n", 1)[0].strip()
        sentence = line[:1].isupper() and line.endswith(".") and " " in line and "://" not in line
        if sentence and min_chars <= len(line) <= max_chars:
            seen.setdefault(line, None)
    sentences = list(seen)
    return sentences if n is None else sentences[:n]

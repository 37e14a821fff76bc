"""Standard-library docstrings: the real corpus and the split rule on a synthetic tree."""

from __future__ import annotations

import pytest

from sparsetorch.data import DataNotFoundError, load_stdlib_docstrings


@pytest.mark.data
def test_real_corpus():
    texts = {split: load_stdlib_docstrings(split) for split in ("train", "val", "test")}
    assert sum(map(len, texts.values())) > 1_000_000
    assert len(texts["train"]) > 4 * max(len(texts["val"]), len(texts["test"])) > 0
    assert load_stdlib_docstrings("train") == texts["train"]


def test_split_by_file_and_exclusions(tmp_path):
    for i in range(20):
        (tmp_path / f"mod_{i:02d}.py").write_text(f'"""Doc {i}."""\n\ndef f():\n    """Fn {i}."""\n')
    (tmp_path / "no_docs.py").write_text("x = 1\n")  # not a unit: it holds no docstring
    (tmp_path / "broken.py").write_text('"""Broken."""\ndef (:\n')
    for skipped in ("test", "tests", "idle_test", "site-packages", "__pycache__"):
        (tmp_path / skipped).mkdir()
        (tmp_path / skipped / "m.py").write_text('"""Excluded."""\n')
    val = load_stdlib_docstrings("val", root=tmp_path)
    test = load_stdlib_docstrings("test", root=tmp_path)
    train = load_stdlib_docstrings("train", root=tmp_path)
    assert val == "Doc 8.\n\nFn 8.\n\nDoc 18.\n\nFn 18."
    assert test == "Doc 9.\n\nFn 9.\n\nDoc 19.\n\nFn 19."
    assert train.count("Doc ") == 16 and "Excluded" not in train + val + test and "Broken" not in train


def test_missing_root(tmp_path):
    with pytest.raises(DataNotFoundError, match="root=DIR"):
        load_stdlib_docstrings(root=tmp_path / "nowhere")
    with pytest.raises(DataNotFoundError):
        load_stdlib_docstrings(root=tmp_path)


def test_bad_split():
    with pytest.raises(ValueError, match="split"):
        load_stdlib_docstrings("dev")

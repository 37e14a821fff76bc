"""`sparsetorch.pruning.experiments` moved to `sparsetorch.papers.pruning_experiments`: the old name
still works for one release and warns."""

import importlib
import sys

import pytest

from sparsetorch.papers import pruning_experiments as new


def test_old_module_warns_and_forwards_to_the_new_home(monkeypatch):
    monkeypatch.delitem(sys.modules, "sparsetorch.pruning.experiments", raising=False)
    with pytest.warns(DeprecationWarning, match="sparsetorch.papers.pruning_experiments"):
        old = importlib.import_module("sparsetorch.pruning.experiments")
    for name in old.__all__:
        assert getattr(old, name) is getattr(new, name)
    with pytest.raises(AttributeError, match="no attribute 'missing'"):
        _ = old.missing


def test_grid_labels():
    settings = new.grid(["wanda", "magnitude"], [0.5, "2:4"])
    assert [s.label for s in settings] == ["wanda@50%", "wanda@2:4", "magnitude@50%", "magnitude@2:4"]
    assert new.Setting("dsnot", 0.6, config={"init": "magnitude"}).label == "dsnot@60%[init=magnitude]"

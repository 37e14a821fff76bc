import pytest

from sparsetorch.registry import AXIS_DESCRIPTIONS, Axis, Registry


def test_register_get_list_and_decorator():
    reg = Registry[int]("thing")
    reg.register("alpha", 1)

    @reg.register("beta-2")
    def beta():
        return 2

    assert reg.get("alpha") == 1
    assert reg.get("beta-2") is beta
    assert reg.list() == ["alpha", "beta-2"]
    assert reg.list("b*") == ["beta-2"]
    assert "alpha" in reg and len(reg) == 2


def test_unknown_name_suggests_close_matches():
    reg = Registry[int]("pruning method")
    for name in ("magnitude", "wanda", "sparsegpt"):
        reg.register(name, 0)
    with pytest.raises(KeyError, match=r"unknown pruning method 'magnitud'; did you mean 'magnitude'"):
        reg.get("magnitud")
    with pytest.raises(KeyError, match="registered: magnitude, sparsegpt, wanda"):
        reg.get("zzz")


def test_duplicate_and_malformed_names_raise():
    reg = Registry[int]("thing")
    reg.register("a", 1)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a", 2)
    with pytest.raises(ValueError, match="invalid"):
        reg.register("Has Space", 3)


def test_one_taxonomy_the_four_axes_plus_foundations_and_execution():
    assert [str(a) for a in Axis] == [
        "connections",
        "activations",
        "routes",
        "time",
        "foundations",
        "execution",
    ]
    assert set(AXIS_DESCRIPTIONS) == set(Axis)
    with pytest.warns(DeprecationWarning, match="'representations' is now 'foundations'") as w:
        assert Axis("representations") is Axis.FOUNDATIONS
    assert w[0].filename == __file__  # the warning blames the caller of Axis(...), not enum.py
    with pytest.raises(ValueError):
        Axis("space")

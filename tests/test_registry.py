"""Registry: wildcard listing, natural sort, did-you-mean, plugin loading rules."""

from __future__ import annotations

import pytest

from zoo import Family
from zoo.core.errors import PluginError, UnknownNameError
from zoo.core.registry import filter_names, get_dataset, get_family, list_models, natural_key


def test_wildcards_and_natural_sort():
    names = ["vae10", "vae2", "dcgan", "dcgan-mnist", "ae"]
    assert filter_names(names, "vae*") == ["vae2", "vae10"]
    assert filter_names(names, ["dc*", "ae"], exclude=["*-mnist"]) == ["ae", "dcgan"]
    assert sorted(names, key=natural_key)[-2:] == ["vae2", "vae10"]


def test_list_models_includes_families_and_named_models():
    assert list_models("dc*") == ["dcgan", "dcgan-mnist"]
    assert list_models(exclude=["*"]) == []


def test_unknown_names_suggest():
    with pytest.raises(UnknownNameError, match="did you mean 'dcgan'"):
        get_family("dgcan")
    with pytest.raises(UnknownNameError, match="did you mean 'mnist5k'"):
        get_dataset("mnist5")
    assert get_dataset("torchvision:CIFAR10").name == "torchvision"


def test_duplicate_registration_names_both_distributions():
    from zoo.core.registry import _collect

    class Impl:
        def __init__(self, name):
            self.plugin_name = name
            self.argnames = ("register",)

        def function(self, register):
            from zoo.core.records import DatasetRecord

            register(DatasetRecord("same", "s", "x:y"))

    class Hook:
        def get_hookimpls(self):
            return [Impl("zoo.data"), Impl("dcgan")]

    pattern = r"registered twice: by plugin 'dcgan' \(genzoo .*\) and by plugin 'zoo\.data'"
    with pytest.raises(PluginError, match=pattern):
        _collect(Hook(), "data set")


def test_capabilities_are_declared():
    family = get_family("dcgan")
    family.require("sample")
    from zoo.core.errors import CapabilityError

    with pytest.raises(CapabilityError, match="does not support 'encode'"):
        family.require("encode")
    impl = family.load()
    assert isinstance(impl, Family)
    assert all(callable(getattr(impl, name)) for name in ("build", "trainer", "sample"))


def test_a_family_from_an_uninstalled_distribution_names_it(cli):
    # ZOO_LOAD_PLUGINS="" (conftest) hides the example plugin even where it is installed
    hint = "family 'texture' is provided by zoo-nonparametric: pip install zoo-nonparametric"
    for args in (["build", "texture"], ["spec", "texture"], ["plugin", "check", "texture"]):
        r = cli(*args)
        assert r.code == 2 and r.err == f"error: {hint}\n", (args, r.err)
    r = cli("build", "superres", "--set", "model.scale=3")
    assert r.code == 2 and "'superres' is provided by zoo-nonparametric" in r.err
    assert "texture" not in cli("list").out

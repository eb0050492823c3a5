"""The conformance kit: every built-in family passes it; a broken plugin fails it precisely."""

from __future__ import annotations

import subprocess
import textwrap

import pytest
from pydantic import Field

from zoo import Family, SamplingOptions
from zoo.core.registry import get_registry
from zoo.testing.conformance import assert_conforms, check_family
from zoo.training.trainer import Trainer

FAMILIES = sorted(get_registry().families)


@pytest.mark.parametrize("family", FAMILIES)
def test_builtin_family_conforms(family):
    assert_conforms(family)


@pytest.mark.parametrize("family", ["texture", "inpaint", "superres", "scene"])
def test_example_plugin_family_conforms(family, nonparametric):
    """The families of examples/zoo-nonparametric, a separately installed distribution."""
    assert_conforms(family)


BROKEN_SPEC = '''
import torch  # fault 1: the spec module imports torch
from typing import Literal

from zoo import FamilyRecord, hookimpl
from zoo_dcgan import DCGANSpec


class BrokenSpec(DCGANSpec):
    family: Literal["broken"] = "broken"


@hookimpl
def register_families(register):
    register(FamilyRecord(name="broken", summary="fails the kit on purpose", paper="none",
                          spec=BrokenSpec, impl="broken_impl:Broken"))
'''

BROKEN_IMPL = '''
import torch
from zoo_dcgan.model import DCGAN

from zoo import Family


class Broken(Family):
    build, trainer_class, tiny = DCGAN.build, DCGAN.trainer_class, DCGAN.tiny

    def sample(self, model, noise, spec, options):
        z = torch.randn(len(noise), spec.model.latent_dim, 1, 1)  # fault 2: not seeded per sample
        return model(z)  # fault 3: G's tanh range [-1, 1], not [0, 1]
'''


@pytest.fixture
def broken_family(tmp_path, monkeypatch):
    """A plugin registered in-process whose family has three faults."""
    import importlib

    from zoo.core.plugins import load_plugins, reset_plugins

    (tmp_path / "broken_spec.py").write_text(textwrap.dedent(BROKEN_SPEC))
    (tmp_path / "broken_impl.py").write_text(textwrap.dedent(BROKEN_IMPL))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))  # for the kit's fresh-process import
    pm = load_plugins()
    pm.register(importlib.import_module("broken_spec"), name="broken")
    get_registry.cache_clear()
    yield "broken"
    reset_plugins()


def test_a_broken_plugin_fails_with_one_precise_message_per_fault(broken_family):
    results = {c.name: c for c in check_family(broken_family)}
    failed = {name for name, c in results.items() if not c.ok}
    assert failed == {"spec without torch", "output", "seeding"}, results
    assert "importing the spec module broken_spec imports torch" in results[
        "spec without torch"].detail
    assert "values outside [0, 1]" in results["output"].detail
    assert "the same seed gave different images" in results["seeding"].detail
    with pytest.raises(AssertionError) as info:
        assert_conforms(broken_family)
    assert str(info.value).count("\n") == 3  # a header line, then one line per fault


def test_zoo_plugin_check_exit_status():
    ok = subprocess.run(["zoo", "plugin", "check", "ae"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "strict loading" in ok.stdout
    unknown = subprocess.run(["zoo", "plugin", "check", "nosuch"], capture_output=True,
                             text=True)
    assert unknown.returncode == 2 and "unknown family 'nosuch'" in unknown.stderr


class TinyIsAString(Family):
    """A family class that breaks the contract only in a class attribute."""

    trainer_class = Trainer
    tiny = "model.timesteps=10"

    def build(self, spec):
        return None

    def sample(self, model, noise, spec, options):
        return None


def test_a_family_class_that_breaks_the_contract_is_a_failed_check_not_an_exception():
    """The kit reports it in its table (zoo plugin check) instead of stopping with a
    traceback (tiny overrides read from a class whose tiny is not a dict)."""
    from zoo import FamilyRecord
    from zoo.core.spec import Spec

    record = FamilyRecord(name="fake", summary="s", paper="none", spec=Spec,
                          impl=f"{__name__}:TinyIsAString")
    results = {c.name: c for c in check_family(record)}
    assert [name for name, c in results.items() if c.ok] == ["spec round trip",
                                                              "spec without torch"]
    assert "sets tiny = 'model.timesteps=10', not a dict" in results["family class"].detail
    assert results["tiny build"].detail == "not run: the family class does not load"
    assert all(c.detail.startswith("not run: ") for name, c in results.items()
               if name not in {"spec round trip", "spec without torch", "family class"})


class Labelled(SamplingOptions):
    label: int | None = Field(None, ge=0, description="Said to pick the class; ignored.")


def test_a_label_option_the_sampler_ignores_fails_the_kit(micro_dcgan):
    """A family with a label option is conditional: zoo sample --label passes the capability
    check, so a sampler that ignores it would silently give unconditional images."""
    from zoo_dcgan import DCGANSpec

    from zoo import FamilyRecord
    from zoo.testing.conformance import _label

    deaf = FamilyRecord(name="dcgan", summary="s", paper="none", spec=DCGANSpec,
                        impl="zoo_dcgan.model:DCGAN", options=Labelled)
    with pytest.raises(AssertionError, match="label 0 and label 1 gave the same images"):
        _label(deaf, {"folder": micro_dcgan})
    plain = get_registry().families["dcgan"]
    assert _label(plain, {"folder": micro_dcgan}) == "no label option"

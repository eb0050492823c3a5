"""The family contract (zoo.Family): capabilities follow from what a class overrides, a
class that breaks the contract is refused at load with one line, and sampling options are
validated against the family's SamplingOptions model."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import Field, field_validator

from zoo import Family, FamilyRecord, SamplingOptions
from zoo.core.errors import CapabilityError, DataError, PluginError
from zoo.core.spec import Spec
from zoo.training.trainer import Trainer


class Minimal(Family):
    """build, sample and a trainer: the least a family is."""

    trainer_class = Trainer  # never called here

    def build(self, spec):
        return None

    def sample(self, model, noise, spec, options):
        return None


class Encoder(Minimal):
    def encode(self, model, images):
        return images


class Everything(Encoder):
    def decode(self, model, codes):
        return codes

    def reconstruct(self, model, images):
        return images

    def log_likelihood(self, model, images, k, spec, generator):
        return images

    def latent(self, model, noise, spec):
        return None

    def generate(self, model, codes, spec, options):
        return codes


class LatentOnly(Minimal):
    def latent(self, model, noise, spec):
        return None


class OwnTrainer(Family):
    """No trainer_class, but an overridden trainer(): conforms."""

    def build(self, spec):
        return None

    def sample(self, model, noise, spec, options):
        return None

    def trainer(self, spec, model, accelerator):
        return None


class NoBuild(Family):
    trainer_class = Trainer

    def sample(self, model, noise, spec, options):
        return None


class NoSample(Family):
    trainer_class = Trainer

    def build(self, spec):
        return None


class NoTrainer(Family):
    def build(self, spec):
        return None

    def sample(self, model, noise, spec, options):
        return None


class NotAFamily:
    """Has every method, but does not subclass zoo.Family."""

    trainer_class = Trainer

    def build(self, spec):
        return None

    def sample(self, model, noise, spec, options):
        return None


class Steps(SamplingOptions):
    steps: int | None = Field(None, ge=1, description="Sampling steps; unset: the spec's.")
    eta: float = Field(0.0, ge=0, le=1, description="Noise.")


class Labelled(SamplingOptions):
    label: int | None = Field(None, ge=0, description="Class to sample.")


class FromFile(SamplingOptions):
    input: Any = Field(None, description="An image file.")

    @field_validator("input", mode="before")
    @classmethod
    def _read(cls, value: Any) -> Any:
        raise DataError(f"image file not found: {value}")


def record(cls: type | str, options: type[SamplingOptions] = SamplingOptions) -> FamilyRecord:
    """A record whose impl names ``cls`` in this module (or ``cls`` itself, a string)."""
    impl = cls if isinstance(cls, str) else f"{__name__}:{cls.__name__}"
    return FamilyRecord(name="fake", summary="s", paper="none", spec=Spec, impl=impl,
                        options=options)


def refusal(rec: FamilyRecord) -> str:
    """The one-line PluginError that loading ``rec`` raises."""
    with pytest.raises(PluginError) as info:
        rec.load()
    message = str(info.value)
    assert "\n" not in message and message.startswith("family 'fake': "), message
    return message


def test_capabilities_follow_from_overrides():
    assert record(Minimal).capabilities == {"sample"}
    assert record(Encoder).capabilities == {"sample", "encode"}
    assert record(Everything).capabilities == {"sample", "encode", "decode", "reconstruct",
                                               "log_likelihood", "latent"}
    assert record(OwnTrainer).capabilities == {"sample"}
    with pytest.raises(CapabilityError, match=r"does not support 'decode' \(it provides: "
                       r"encode, sample\)"):
        record(Encoder).require("decode")
    record(Encoder).require("encode")


def test_conditional_comes_from_a_label_option():
    assert "conditional" in record(Minimal, Labelled).capabilities
    assert "conditional" not in record(Minimal, Steps).capabilities
    record(Minimal, Labelled).require("conditional")
    with pytest.raises(CapabilityError, match="does not support 'conditional'"):
        record(Minimal, Steps).require("conditional")


def test_latent_without_generate_is_refused_naming_what_is_missing():
    message = refusal(record(LatentOnly))
    assert "overrides latent but not generate (the latent capability needs both)" in message


@pytest.mark.parametrize(("cls", "missing"), [
    (NoBuild, "does not override build"),
    (NoSample, "overrides neither sample nor latent and generate"),
    (NoTrainer, "neither overrides trainer nor sets trainer_class"),
])
def test_a_class_missing_a_required_method_is_refused(cls, missing):
    assert missing in refusal(record(cls))


def test_a_class_that_is_not_a_family_is_refused():
    assert "NotAFamily is not a zoo.Family subclass" in refusal(record(NotAFamily))
    assert "Steps is not a zoo.Family subclass" in refusal(record(Steps))


def test_a_record_names_a_class_and_a_sampling_options_model():
    with pytest.raises(ValueError, match=r"must name a zoo\.Family subclass as "
                       r"'package\.module:Class'"):
        record("zoo_nonparametric.texture")
    with pytest.raises(ValueError, match=r"options must be a zoo\.SamplingOptions subclass"):
        record(Minimal, dict)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        FamilyRecord(name="fake", summary="s", paper="none", spec=Spec, impl="a:B",
                     capabilities=frozenset({"sample"}))  # type: ignore[call-arg]


def test_the_family_is_one_cached_instance():
    rec = record(Encoder)
    assert isinstance(rec.load(), Encoder) and rec.load() is rec.load()


def test_sampling_options_are_validated_in_one_line():
    rec = record(Minimal, Steps)
    assert rec.sampling_options() == Steps()
    assert rec.sampling_options({"steps": 20}).steps == 20
    with pytest.raises(CapabilityError) as info:
        rec.sampling_options({"stpes": 20})
    assert str(info.value) == ("family 'fake' has no sampling option 'stpes' (its options: "
                               "steps, eta)")
    with pytest.raises(CapabilityError) as info:
        rec.sampling_options({"eta": 2})
    assert "\n" not in str(info.value) and "sampling option eta = 2" in str(info.value)
    with pytest.raises(CapabilityError, match=r"its options: none\)"):
        record(Minimal).sampling_options({"steps": 1})
    options = rec.sampling_options({"steps": 3})
    with pytest.raises(Exception, match="frozen"):
        options.steps = 4  # type: ignore[misc]


def test_a_data_error_inside_an_option_validator_stays_one_line():
    """pydantic passes a non-ValueError through unwrapped: the user sees the DataError."""
    with pytest.raises(DataError) as info:
        record(Minimal, FromFile).sampling_options({"input": "nope.png"})
    assert str(info.value) == "image file not found: nope.png"


class TinyNotADict(Minimal):
    tiny = "x"


class TinyNested(Minimal):
    tiny: ClassVar[dict] = {"model": {"timesteps": 10}}


class TinyOfEveryValue(Minimal):
    tiny: ClassVar[dict] = {"model.sizes": (8, 16), "data.path": None, "train.ema": False,
                            "sample.sampler": "ddim", "model.levels": [2], "train.lr": 0.1}


class RangesNone(Minimal):
    input_ranges = None


class RangesBackwards(Minimal):
    input_ranges: ClassVar[dict] = {"discriminator": (1.0, -1.0)}


class IndependentYes(Minimal):
    independent_samples = "yes"


class TrainerName(Minimal):
    trainer_class = "MyTrainer"


class TrainerNotATrainer(Minimal):
    trainer_class = dict


class NoteNumber(Minimal):
    sampling_note = 3


class DeclaresCapabilities(Minimal):
    capabilities = frozenset({"sample", "encode"})


class OldNames(Minimal):
    INDEPENDENT_SAMPLES = True


class EncodeNone(Minimal):
    encode = None


class NeedsArguments(Minimal):
    def __init__(self, size):
        self.size = size


class InitRaises(Minimal):
    def __init__(self):
        raise RuntimeError("no GPU\nat all")


@pytest.mark.parametrize(("cls", "reason"), [
    (TinyNotADict, "sets tiny = 'x', not a dict of spec keys"),
    (TinyNested, "sets tiny = {'model': {'timesteps': 10}}, not a dict of spec keys"),
    (RangesNone, "sets input_ranges = None, not a dict of module name -> (low, high)"),
    (RangesBackwards, "sets input_ranges = {'discriminator': (1.0, -1.0)}, not a dict"),
    (IndependentYes, "sets independent_samples = 'yes', not True or False"),
    (TrainerName, "sets trainer_class = 'MyTrainer', not a zoo.training.trainer.Trainer "
                  "subclass"),
    (TrainerNotATrainer, "sets trainer_class = <class 'dict'>, not a "
                         "zoo.training.trainer.Trainer subclass"),
    (NoteNumber, "sets sampling_note = 3, not a string"),
    (DeclaresCapabilities, "defines capabilities (capabilities follow from the methods the "
                           "class overrides; remove it)"),
    (OldNames, "defines INDEPENDENT_SAMPLES (rename it independent_samples)"),
    (EncodeNone, "sets encode = None, which is not callable"),
])
def test_a_class_attribute_of_the_wrong_type_is_refused_at_load(cls, reason):
    """A lying class attribute is one line when the family loads, not a traceback (or a
    silently ignored setting) when zoo sample, visualize or the kit meets it."""
    assert reason in refusal(record(cls))


@pytest.mark.parametrize(("impl", "reason"), [
    (f"{__name__}:Nope", f"cannot import {__name__}:Nope: AttributeError: module "),
    ("no_such_module_anywhere:Family", "cannot import no_such_module_anywhere:Family: "
                                       "ModuleNotFoundError: No module named"),
    (f"{__name__}:record", f"{__name__}:record is not a zoo.Family subclass"),
    (f"{__name__}:pytest", f"{__name__}:pytest is not a zoo.Family subclass"),
    (f"{__name__}:NeedsArguments", "NeedsArguments() failed (a family class is made with no "
                                   "arguments): TypeError: "),
    (f"{__name__}:InitRaises", "InitRaises() failed (a family class is made with no "
                               "arguments): RuntimeError: no GPU at all"),
])
def test_an_impl_that_cannot_be_imported_or_made_is_one_line(impl, reason):
    assert reason in refusal(record(impl))


class CoreNames(SamplingOptions):
    seed: int = Field(0, description="A second seed.")


def test_an_option_named_like_an_argument_of_sample_is_refused():
    """model.sample(n, seed=..., batch_size=...) and --opt seed=3 could never reach it."""
    with pytest.raises(ValueError, match=r"sampling option 'seed' has the name of an argument "
                       r"of model\.sample itself \(n, seed, batch_size\); rename it"):
        record(Minimal, CoreNames)


@pytest.mark.parametrize(("option", "flag"), [("seed=3", "--seed"), ("n=2", "-n"),
                                              ("batch_size=4", "--batch-size")])
def test_opt_naming_an_argument_of_zoo_sample_is_one_line(cli, tmp_path, option, flag):
    r = cli("sample", tmp_path / "no-model", "--opt", option, "-o", tmp_path / "x.png")
    assert r.code == 2 and r.err.strip() == (
        f"error: --opt '{option}': {option.split('=')[0]} is not a sampling option; zoo "
        f"sample has {flag} for it"), r.err


class Liar(Minimal):
    """sample() returns whatever ``LIES[options.lie]`` makes of the batch size."""

    def sample(self, model, noise, spec, options):
        import torch

        return {"shape": lambda n: torch.zeros(n, 7),
                "rows": lambda n: torch.zeros(n + 1, 1, 4, 4),
                "dtype": lambda n: torch.zeros(n, 1, 4, 4, dtype=torch.uint8),
                "list": lambda n: [0.5] * n,
                "extras": lambda n: (torch.zeros(n, 1, 4, 4), "pyramid"),
                "honest": lambda n: torch.full((n, 1, 4, 4), 0.5)}[options.lie](len(noise))


class Lie(SamplingOptions):
    lie: str = "honest"


@pytest.mark.parametrize(("lie", "says"), [
    ("shape", "sample() gave shape (3, 7) for 3 samples, expected 3xCxHxW"),
    ("rows", "sample() gave shape (4, 1, 4, 4) for 3 samples, expected 3xCxHxW"),
    ("dtype", "sample() gave dtype torch.uint8, expected float images in [0, 1]"),
    ("list", "sample() gave a list, not a tensor of images (or a pair of images and a list "
             "of tensors)"),
    ("extras", "sample() gave extras of type str, expected a list of tensors"),
])
def test_a_sampler_that_lies_about_its_output_is_one_line(lie, says):
    """Not a traceback from deep in the image writer, nor uint8 values clamped to white."""
    from torch import nn

    from zoo.sampling.sample import sample_images

    with pytest.raises(PluginError) as info:
        sample_images(record(Liar, Lie), nn.Identity(), None, 3, batch_size=4, lie=lie)
    assert str(info.value) == f"family 'fake': {says}"


def test_sampling_arguments_are_checked_in_one_line():
    from torch import nn

    from zoo import ZooError
    from zoo.sampling.sample import sample_images

    rec = record(Liar, Lie)
    assert sample_images(rec, nn.Identity(), None, 3, seed=2, batch_size=2).shape == (3, 1, 4, 4)
    for args, kwargs, says in [((-1,), {}, "n = -1"), ((2,), {"seed": -1}, "seed = -1"),
                               ((2,), {"seed": 1.5}, "seed = 1.5"),
                               ((2,), {"batch_size": 0}, "batch_size = 0"),
                               ((True,), {}, "n = True")]:
        with pytest.raises(ZooError, match=f"^sampling: {says} must be an integer of at least"):
            sample_images(rec, nn.Identity(), None, *args, **kwargs)
    with pytest.raises(CapabilityError, match="has no sampling option 'spec'"):
        sample_images(rec, nn.Identity(), None, 2, spec=1)  # not a second spec: an option


class Awkward(SamplingOptions):
    """Options a plugin author may well write: a long description over several lines, and
    defaults that are not one TOML scalar."""

    steps: int = Field(3, description="DDIM steps.\nAt most model.timesteps = 1000.")
    size: tuple[int, int] = Field((3, 4), description="Height, width.")
    where: Path = Field(Path("seed.png"), description="A file.")
    table: dict[str, int] = Field(default_factory=lambda: {"a": 1})
    needed: int = Field(description="No default.")


def test_zoo_spec_shows_any_options_as_one_line_toml_comments():
    """zoo spec FAMILY prints them after the spec: the whole output must stay TOML."""
    import tomllib

    from zoo.core.spec import options_toml

    text = options_toml(Awkward)
    assert tomllib.loads(text) == {}
    assert text.splitlines()[1:] == [
        "#   steps = 3  # DDIM steps. At most model.timesteps = 1000.",
        "#   size = [3, 4]  # Height, width.",
        '#   where = "seed.png"  # A file.',
        '#   table = {"a": 1}',
        "#   needed = required  # No default.",
    ]


class Fragile(SamplingOptions):
    input: Any = Field(None, description="An image file.")

    @field_validator("input", mode="before")
    @classmethod
    def _read(cls, value: Any) -> Any:
        return {"a.png": 1}[value]  # a KeyError, which pydantic passes through unwrapped


def test_an_option_validator_that_fails_unexpectedly_is_still_one_line():
    with pytest.raises(CapabilityError) as info:
        record(Minimal, Fragile).sampling_options({"input": "b.png"})
    assert str(info.value) == ("family 'fake': its sampling options failed to validate "
                               "{'input': 'b.png'}: KeyError: 'b.png'")


class Picture:
    """A type of the plugin's own (SamplingOptions allow arbitrary types)."""


class Exotic(SamplingOptions):
    picture: Picture | None = Field(None, description="An image object (Python only).")
    anything: object = Field(Picture(), description="A default JSON cannot hold.")
    steps: int = Field(3, ge=1, description="Steps.")


def test_the_options_schema_leaves_out_what_json_schema_cannot_express(recwarn):
    """zoo spec FAMILY --schema must not fail (or warn) on an option of a plugin's own type."""
    schema = Exotic.model_json_schema()
    assert schema["properties"]["steps"] == {"default": 3, "description": "Steps.",
                                             "minimum": 1, "title": "Steps", "type": "integer"}
    assert schema["properties"]["picture"]["description"] == "An image object (Python only)."
    assert "default" not in schema["properties"]["anything"]
    assert not recwarn.list


def test_tiny_takes_any_value_set_can_take():
    assert isinstance(record(TinyOfEveryValue).load(), TinyOfEveryValue)


class OldSample(Minimal):
    """A 0.1 module function pasted in as a method: no self, no options."""

    def sample(model, noise, spec, steps=None):
        return None


class NoOptions(Minimal):
    def sample(self, model, noise, spec):
        return None


class StaticSample(Minimal):
    @staticmethod
    def sample(model, noise, spec, options):
        return None


class LooseSample(Minimal):
    def sample(self, *args, **kwargs):
        return None


def test_a_method_that_cannot_take_the_contract_arguments_is_refused_at_load():
    """Not a TypeError traceback the first time zoo sample calls it."""
    assert ("defines sample(model, noise, spec, steps=None), which cannot take the "
            "contract's arguments (self, model, noise, spec, options)") in refusal(
                record(OldSample))
    assert "defines sample(self, model, noise, spec), which cannot" in refusal(
        record(NoOptions))
    assert isinstance(record(StaticSample).load(), StaticSample)
    assert isinstance(record(LooseSample).load(), LooseSample)


@pytest.mark.parametrize("returns", [
    lambda x: [1, 2],  # not a tensor
    lambda x: x.flatten(1)[:1],  # one row for two inputs
    lambda x: (x > 0.5).flatten(1),  # not float
])
def test_a_capability_that_lies_about_its_output_is_one_line(monkeypatch, returns):
    import torch

    from zoo.core.errors import ZooError
    from zoo.model import ZooModel, resolve_spec

    record, spec = resolve_spec("ae", None, ["data.image_size=8"])
    model = ZooModel(record, spec, record.load().build(spec).eval(), None)
    images = torch.rand(2, 1, 8, 8)
    assert model.encode(images).shape[0] == 2
    monkeypatch.setattr(type(record.load()), "encode", lambda self, m, x: returns(x))
    with pytest.raises(ZooError, match=r"family 'ae': encode\(\) gave .* for 2 inputs") as err:
        model.encode(images)
    assert "\n" not in str(err.value)

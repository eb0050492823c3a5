"""The demo's controls: each family's sampling options become the right widgets, and the
widgets' values become the options ``zoo sample --opt`` would give (no Gradio needed)."""

from __future__ import annotations

import enum
from typing import Literal

import pytest
from pydantic import Field

from zoo import SamplingOptions
from zoo.core.registry import get_family
from zoo.demo.controls import UNSET, controls, options_from


def by_name(family: str) -> dict:
    return {c.name: c for c in controls(get_family(family).options)}


def test_ddpm_sampler_steps_and_eta():
    c = by_name("ddpm")
    assert list(c) == ["sampler", "steps", "eta"]
    assert (c["sampler"].kind, c["sampler"].choices, c["sampler"].optional) == (
        "choice", ("ddim", "ddpm"), True)
    assert (c["steps"].kind, c["steps"].minimum, c["steps"].maximum) == ("int", 1, 10_000)
    assert (c["eta"].kind, c["eta"].minimum, c["eta"].maximum) == ("float", 0, 1)
    values = [UNSET, None, 0.5]  # unset choice, empty number: left to the spec
    assert options_from(list(c.values()), values) == {"eta": 0.5}
    assert options_from(list(c.values()), ["ddpm", 20.0, None]) == {"sampler": "ddpm",
                                                                    "steps": 20}


def test_labels_stages_and_images():
    lapgan, draw = by_name("lapgan"), by_name("draw")
    assert (lapgan["label"].kind, lapgan["label"].minimum, lapgan["label"].optional) == (
        "int", 0, True)
    assert lapgan["return_pyramid"].kind == draw["return_steps"].kind == "stages"
    # the grid is always the plain samples: a ticked stage box is not a sampling option
    assert options_from(list(lapgan.values()), [3, True]) == {"label": 3}
    assert options_from(list(lapgan.values()), [None, False]) == {}


def test_input_families_get_uploads(nonparametric):
    inpaint, superres, texture = by_name("inpaint"), by_name("superres"), by_name("texture")
    assert [c.kind for c in inpaint.values()] == ["image", "image"]
    assert [c.kind for c in superres.values()] == ["image"]
    assert options_from(list(inpaint.values()), ["/a.png", "/m.png"]) == {
        "input": "/a.png", "mask": "/m.png"}
    assert options_from(list(inpaint.values()), [None, None]) == {}
    # anything else is text, read as --opt KEY=VALUE reads it
    assert texture["size"].kind == "text"
    assert options_from([texture["size"]], ["48x96"]) == {"size": "48x96"}
    assert options_from([texture["size"]], ["64"]) == {"size": 64}
    assert options_from([texture["size"]], ["  "]) == {}


def test_plain_types_bools_literals_and_enums():
    class Colour(enum.Enum):
        RED = "red"
        BLUE = "blue"

    class Options(SamplingOptions):
        sharp: bool = Field(True, description="Sharpen.")
        mode: Literal["a", "b"] = Field("b", description="Mode.")
        colour: Colour = Field(Colour.RED, description="Colour.")
        gain: float = Field(1.5, gt=0, lt=4, description="Gain.")

    c = {x.name: x for x in controls(Options)}
    assert (c["sharp"].kind, c["sharp"].default) == ("bool", True)
    assert (c["mode"].kind, c["mode"].choices, c["mode"].optional) == ("choice", ("a", "b"),
                                                                        False)
    assert c["colour"].choices == (Colour.RED, Colour.BLUE)
    assert (c["gain"].minimum, c["gain"].maximum, c["gain"].description) == (0, 4, "Gain.")
    got = options_from(list(c.values()), [False, "a", "blue", 2.0])
    assert got == {"sharp": False, "mode": "a", "colour": "blue", "gain": 2.0}
    assert Options.model_validate(got).colour is Colour.BLUE


@pytest.mark.parametrize("family", ["dcgan", "ddpm", "lapgan", "draw", "upconv", "vae"])
def test_every_builtin_familys_defaults_validate(family):
    record = get_family(family)
    ctls = controls(record.options)
    defaults = [UNSET if c.default is None and c.kind in ("choice", "int", "float") else
                c.default for c in ctls]
    record.sampling_options(options_from(ctls, defaults))

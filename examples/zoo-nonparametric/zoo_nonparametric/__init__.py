"""zoo-nonparametric: a genzoo plugin package with four non-parametric families.

``texture`` (Efros–Leung texture synthesis), ``inpaint`` (hole filling with
the same machinery), ``superres`` (Freeman et al.'s example-based
super-resolution) and ``scene`` (Hays & Efros scene completion from a photo
database), plus the ``skimage:NAME[/K]`` data source. This module is
what the ``zoo`` entry point names: it registers records only and imports no
torch; each family's torch code is imported when a model is built, loaded or
sampled (``Texture``, ``Inpaint``, ``Superres``, ``Scene``: ``zoo.Family`` subclasses).
"""

from __future__ import annotations

from collections.abc import Callable

from zoo import DatasetRecord, FamilyRecord, hookimpl
from zoo_nonparametric.specs import (
    InpaintOptions,
    InpaintSpec,
    SceneOptions,
    SceneSpec,
    SuperresOptions,
    SuperresSpec,
    TextureOptions,
    TextureSpec,
)

EFROS_LEUNG = ("Efros & Leung, Texture Synthesis by Non-parametric Sampling, ICCV 1999")


@hookimpl
def register_families(register: Callable[[FamilyRecord], None]) -> None:
    """Register ``texture``, ``inpaint``, ``superres`` and ``scene``."""
    register(FamilyRecord(
        name="texture",
        summary="non-parametric texture synthesis: grow pixels from exemplar neighbourhoods",
        paper=EFROS_LEUNG, spec=TextureSpec, impl="zoo_nonparametric.texture:Texture",
        options=TextureOptions))
    register(FamilyRecord(
        name="inpaint",
        summary="hole filling from the boundary inwards with Efros-Leung sampling",
        paper=EFROS_LEUNG, spec=InpaintSpec, impl="zoo_nonparametric.inpaint:Inpaint",
        options=InpaintOptions))
    register(FamilyRecord(
        name="superres",
        summary="example-based super-resolution: patch dictionary, neighbour compatibility",
        paper="Freeman, Jones & Pasztor, Example-Based Super-Resolution, IEEE Computer "
        "Graphics and Applications 22(2), 2002",
        spec=SuperresSpec, impl="zoo_nonparametric.superres:Superres",
        options=SuperresOptions))
    register(FamilyRecord(
        name="scene",
        summary="scene completion: fill a hole from the best-matching photos of a database",
        paper="Hays & Efros, Scene Completion Using Millions of Photographs, SIGGRAPH 2007",
        spec=SceneSpec, impl="zoo_nonparametric.scene:Scene", options=SceneOptions))


@hookimpl
def register_datasets(register: Callable[[DatasetRecord], None]) -> None:
    """Register ``skimage:NAME[/K]``: a scikit-image sample image cut into tiles."""
    register(DatasetRecord(
        "skimage", "scikit-image sample images (skimage:brick, grass, gravel; /K shrinks K "
        "times), cut into data.image_size tiles, 90/10 split",
        "zoo_nonparametric.data:load_skimage", prefix=True, channels=1))

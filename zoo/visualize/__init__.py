"""``zoo visualize``: looking inside a model, as PNG files a person can open.

* ``interpolate`` (:mod:`zoo.visualize.interpolate`): walks between latent codes of
  families with the ``latent`` capability, one strip per pair;
* ``filters`` (:mod:`zoo.visualize.filters`): the first layer's filters of a
  discriminator or encoder;
* ``activation-max`` (:mod:`zoo.visualize.actmax`): images that maximise a unit
  of a layer, by regularised gradient ascent on the input;
* ``deconv`` (:mod:`zoo.visualize.deconv`): the inputs that activate a unit most,
  with their receptive fields and Zeiler–Fergus projections;
* ``steps`` (:mod:`zoo.visualize.steps`): the stages of a sampler that builds its image
  in steps (DRAW's canvas after each step, LAPGAN's pyramid levels).

By default the PNGs go to ``visualize/`` in the model folder, where
``visualize/index.json`` records what made each one; ``zoo info`` lists them
and the model card links them. Importing this module does not import torch.
"""

from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.core.errors import ArtifactError, UnknownNameError, ZooError
from zoo.folder.gallery import FOLDER, INDEX, read_index

if TYPE_CHECKING:
    import torch

    from zoo.model import ZooModel

#: ``zoo visualize WHAT`` -> the renderer, ``"module:function"`` taking the model and options.
RENDERERS = {
    "interpolate": "zoo.visualize.interpolate:render",
    "filters": "zoo.visualize.filters:render",
    "activation-max": "zoo.visualize.actmax:render",
    "deconv": "zoo.visualize.deconv:render",
    "steps": "zoo.visualize.steps:render",
}
WHATS = tuple(RENDERERS)


@dataclass
class Picture:
    """One PNG a renderer makes: file name, ``C×H×W`` image in [0, 1], caption, settings."""

    name: str
    image: torch.Tensor
    caption: str
    options: dict[str, Any] = field(default_factory=dict)


def renderer(what: str) -> Any:
    """The render function of ``what``; a one-line error names the choices."""
    from zoo.core.records import import_ref

    if what not in RENDERERS:
        close = difflib.get_close_matches(what, WHATS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise UnknownNameError(f"no visualisation {what!r}: {hint}expected one of "
                               f"{', '.join(WHATS)}")
    return import_ref(RENDERERS[what])


def check_options(what: str, render: Any, options: dict[str, Any]) -> None:
    """One-line error for an option that ``what`` does not take."""
    takes = list(inspect.signature(render).parameters)[1:]  # after the model
    for key in options:
        if key not in takes:
            offered = ", ".join("--" + t.replace("_", "-") for t in takes) or "none"
            raise ZooError(f"--{key.replace('_', '-')} does not apply to {what} "
                           f"(its options: {offered})")


def visualize(model: ZooModel | str | Path, what: str, out: str | Path | None = None,
              **options: Any) -> list[Path]:
    """Render ``what`` for a model (a loaded one, a folder, a Hub id) and write its PNGs.

    ``out``: a folder (default: ``visualize/`` in the model folder, whose card is
    then re-rendered to link the images). Options are the keyword arguments of
    the renderer of ``what``; ``None`` values mean the renderer's default.
    Returns the paths written.
    """
    from zoo.model import ZooModel, from_pretrained

    render = renderer(what)
    options = {k: v for k, v in options.items() if v is not None}
    check_options(what, render, options)
    if out is None and not isinstance(model, ZooModel) and not Path(model).exists():
        # a Hub snapshot stays as downloaded: refuse before downloading or computing
        raise ZooError(f"{model}: no such model folder; for a Hub model give -o DIR (its "
                       "cached files stay as downloaded)")
    loaded = model if isinstance(model, ZooModel) else from_pretrained(model)
    if out is None and loaded.repo_id is not None:
        raise ZooError(f"{loaded.repo_id} is a Hub model; give -o DIR for its visualisations")
    folder = Path(out) if out is not None else loaded.path / FOLDER
    if folder.exists() and not folder.is_dir():
        raise ArtifactError(f"-o {folder}: exists and is not a folder")
    pictures = render(loaded, **options)
    return write_pictures(pictures, folder, what, loaded.path)


def write_pictures(pictures: list[Picture], folder: Path, what: str,
                   model_folder: Path | None = None) -> list[Path]:
    """Write PNGs and their ``index.json`` entries; re-render the model card when
    ``folder`` is the model folder's ``visualize/``."""
    from zoo.artifact import write_json
    from zoo.sampling.sample import save_png

    folder.mkdir(parents=True, exist_ok=True)
    paths = [save_png(p.image, folder / p.name) for p in pictures]
    index = read_index(folder)
    for p in pictures:
        index[p.name] = {"what": what, "caption": p.caption, "options": p.options}
    write_json(folder / INDEX, index)
    if model_folder is not None and folder.resolve() == (model_folder / FOLDER).resolve():
        from zoo.folder.write import update_card

        update_card(model_folder)
    return paths
